--- spec/support/provider_env.lua — the provider test server (spec/support/
-- provider_server.lua) for a describe block of the weft.llm and weft.agent
-- specs: started in setup on 127.0.0.1 with the caller's environment
-- hidden from weft.llm (no key or host from the environment), reset before
-- each test, stopped in teardown; and each provider's base URL on it.
--
-- Load with `local provider_env = require "support.provider_env"`.
local busted = require "busted" -- setup, teardown, before_each (the spec's are not globals here)
local common = require "weft.llm.common"
local ps = require "support.provider_server"

local _M = {}

--- Register the server's setup, before_each and teardown in the enclosing
-- describe block; returns env: env.srv is the running server (from setup
-- on), env.base(p, faults) the base URL of provider p on it (under the
-- fault spec faults, when given).
function _M.use()
  local env, saved_getenv = {}, nil
  busted.setup(function()
    saved_getenv = common.getenv
    common.getenv = function() return nil end -- the caller's environment must not matter
    env.srv = ps.start { host = "127.0.0.1", port = 0 }
  end)
  busted.teardown(function()
    env.srv:stop()
    common.getenv = saved_getenv
  end)
  busted.before_each(function() env.srv:reset() end)

  function env.base(p, faults)
    local u = env.srv.url .. (faults and ("/_f/" .. faults) or "")
    if p == "openai" then u = u .. "/v1" end
    return u
  end
  return env
end

return _M
