--- spec/interop/otel/agent.lua — the agent of workflow.lua (the mock
-- model and one tool, `add`), loaded apart so that otel_spec.lua can run
-- it in-process to know the token usage the run's chat spans must add up to.
local weft = require "weft"

local add = weft.tool{
  name = "add", description = "Add two numbers",
  parameters = { type = "object", properties = { a = { type = "number" }, b = { type = "number" } },
                 required = { "a", "b" } },
  handler = function(args) return args.a + args.b end,
}

return weft.agent{ name = "assistant", instructions = "Use the tools.", model = "mock:echo", tools = { add } }
