--- spec/support/lua_hosts.lua — real Lua host programs (nvim, nginx) in
-- specs: the environment that lets them load weft from this tree, a check
-- that the program is installed, and a condition wait that drives weft's
-- loop (the test server runs in the spec's own process).
local weft = require "weft"

local _M = {}

local src = os.getenv("WEFT_SOURCE_DIR") or "."

--- The environment a host program needs to load weft from this tree: its
-- Lua modules (LUA_PATH) and build's core.so (LUA_CPATH, from build, the
-- build dir); under ASan (ASAN_OPTIONS set) the sanitizer runtimes are
-- preloaded, as a program not built with them cannot load core.so. extra:
-- more variables.
function _M.env(build, extra)
  local env = {
    LUA_PATH = src .. "/lua/?.lua;" .. src .. "/lua/?/init.lua;" ..
               src .. "/stdlib/?.lua;" .. src .. "/stdlib/?/init.lua;;",
    LUA_CPATH = build .. "/lib/?.so;;",
  }
  if os.getenv("ASAN_OPTIONS") then
    local libs = {}
    for _, lib in ipairs({ "libasan.so", "libubsan.so" }) do
      local p = assert(io.popen("gcc -print-file-name=" .. lib))
      libs[#libs + 1] = p:read("*l")
      p:close()
    end
    env.LD_PRELOAD = table.concat(libs, " ")
    env.ASAN_OPTIONS = "detect_leaks=0" -- the host's own allocations
  end
  for k, v in pairs(extra or {}) do env[k] = v end
  return env
end

--- Raise naming the Debian packages when prog is not on PATH (such specs
-- fail rather than skip: scripts/deps.sh installs them).
function _M.need(prog, pkgs)
  local rc = os.execute("command -v " .. prog .. " >/dev/null 2>&1")
  if rc ~= 0 and rc ~= true then
    error(prog .. " is not installed: scripts/deps.sh installs it (" .. pkgs .. ")", 2)
  end
end

--- Wait (driving weft's loop) until cond() holds; raises naming what after
-- `seconds` (default 30).
function _M.eventually(what, cond, seconds)
  local c = weft.cond()
  local deadline = weft.clock() + (seconds or 30)
  while not cond() do
    if weft.clock() > deadline then error("timed out waiting for " .. what, 2) end
    c:wait(0.01)
  end
end

return _M
