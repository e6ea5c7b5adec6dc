--- examples/nginx/flow.lua — the workflow examples/nginx/nginx.conf runs per
-- request: an agent answers the request body with the model of WEFT_MODEL
-- (default mock:echo, which answers with the input).
local weft = require "weft"

local agent = weft.agent{
  name = "answer",
  model = os.getenv("WEFT_MODEL") or "mock:echo",
  instructions = "Answer the request in one line.",
}

local answer = weft.executor("answer", function(msg, ctx)
  local res, err = agent:run(tostring(msg))
  if not res then error(err, 0) end
  ctx:yield_output(res.text)
end)

return weft.workflow("nginx_answer"):start(answer):build()
