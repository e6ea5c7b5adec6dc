--- examples/hello.lua — the smallest weft workflow: two executors in a row.
--
--   weft run examples/hello.lua --input "hi"      -- outputs "HI!"
--
-- A workflow script returns the built workflow; the `weft` CLI (or any Lua
-- code: `dofile("examples/hello.lua"):run("hi")`) runs it.
local weft = require "weft"

-- An executor is an id plus a handler(message, ctx). `ctx:send` passes a
-- message along the executor's out-edges; it arrives in the next superstep.
local upper = weft.executor("upper", function(msg, ctx)
  ctx:send(tostring(msg):upper())
end)

-- `ctx:yield_output` adds a workflow output (`result.outputs`, and an
-- `output` event for anyone listening).
local exclaim = weft.executor("exclaim", function(msg, ctx)
  ctx:yield_output(msg .. "!")
end)

-- The start executor receives the run's input in superstep 0.
return weft.workflow("hello")
  :start(upper)
  :edge(upper, exclaim)
  :build()
