--- spec/interop/otel/workflow.lua — the workflow otel_spec.lua traces with
-- `weft run`: ask -> assistant (an agent as executor: two model calls and
-- one call of the tool `add` on the mock model) -> report, which runs a
-- nested workflow (inner: one executor, shout) and yields its output.
--
--   OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 weft run spec/interop/otel/workflow.lua \
--     --input 'call add {"a": 2, "b": 3}'
local weft = require "weft"

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local agent = dofile(dir .. "agent.lua")

local shout = weft.executor("shout", function(msg, ctx) ctx:yield_output(tostring(msg):upper()) end)
local inner = weft.workflow("inner"):start(shout):build()

local ask = weft.executor("ask", function(msg, ctx) ctx:send(msg) end)
local report = weft.executor("report", function(msg, ctx)
  local res = inner:run(msg.response)
  ctx:yield_output(res.outputs[1])
end)

return weft.workflow("otel_demo")
  :start(ask)
  :edge(ask, agent:as_executor("assistant"))
  :edge("assistant", report)
  :build()
