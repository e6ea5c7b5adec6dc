--- spec/interop/otel/failing.lua — a run that fails, traced by
-- otel_spec.lua: flaky fails its first attempt and is retried; broken
-- always fails, which fails the run.
local weft = require "weft"

local flaky = weft.executor("flaky", { retry = { max_attempts = 2, backoff = 0.001 }, handle = function(msg, ctx)
  if ctx.attempt == 1 then error("first attempt fails") end
  ctx:send(msg)
end })
local broken = weft.executor("broken", function() error("broken for good") end)

return weft.workflow("failing"):start(flaky):edge(flaky, broken):build()
