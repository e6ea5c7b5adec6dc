--- spec/support/finally.lua — busted helper (loaded through .busted for
-- every spec): `finally(fn)` inside a test chains. Busted keeps one
-- finally per test, so a second call replaced the first and its cleanup
-- (a test server killed, a temporary directory removed, a module setting
-- restored) silently never ran. Here every function given to finally runs
-- when the test ends, the last given first, each even when another failed
-- (the first error is raised after all ran).
local busted = require "busted"

local pcall, error = pcall, error

busted.subscribe({ "test", "start" }, function(element)
  local env = element.env
  local set = env and env.finally
  if not set then return end
  local fns = {}
  local function run_all()
    local first
    for i = #fns, 1, -1 do
      local ok, err = pcall(fns[i])
      if not ok and first == nil then first = err end
    end
    if first ~= nil then error(first, 0) end
  end
  env.finally = function(fn)
    fns[#fns + 1] = fn
    set(run_all)
  end
end)
