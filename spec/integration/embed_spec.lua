-- embed_spec.lua — weft inside a host loop that is not weft's: weft.fd(),
-- weft.timeout() and weft.poll(), and examples/embed/host.lua run by a plain
-- luajit (LUA_CPATH at $WEFT_BUILD_DIR/lib) and by `weft exec`; the C
-- embedding API (build/embed_host) loads scripts through weft.script.
local weft = require "weft"
local files = require "support.files"

local src = os.getenv("WEFT_SOURCE_DIR") or "."
local bin = os.getenv("WEFT_BIN")
local build = os.getenv("WEFT_BUILD_DIR")

--- Run a shell command; returns its stdout and whether it exited 0.
local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("*a")
  local ok = p:close()
  return out, ok == true or ok == 0
end

local q = files.quote

describe("weft.fd", function()
  it("returns a descriptor number", function()
    local fd, err = weft.fd()
    assert.is_nil(err)
    assert.is_number(fd)
    assert.is_true(fd >= 0)
  end)
end)

describe("weft.timeout", function()
  it("is 0 while deferred work is queued and the cap otherwise", function()
    local ran = false
    weft.go(function() ran = true end)
    assert.are.equal(0, weft.timeout())
    while not ran do weft.poll() end
    assert.are.equal(0.05, weft.timeout())
    assert.are.equal(0.2, weft.timeout(0.2))
  end)

  it("rejects a negative cap", function()
    assert.has_error(function() weft.timeout(-1) end)
  end)
end)

describe("examples/embed/host.lua", function()
  local function check(out, ok)
    assert.is_true(ok, out)
    local runs, completed, ticks, outputs =
      out:match("host: runs=(%d+) completed=(%d+) ticks=(%d+) outputs=(%S+)")
    assert.are.equal("4", runs, out)
    assert.are.equal("4", completed, out)
    -- the host's own loop advanced while the runs slept
    assert.is_true(tonumber(ticks) >= 2, out)
    assert.are.equal("done:job1;done:job2;done:job3;done:job4", outputs)
  end

  it("completes its runs under a plain luajit while the host ticks", function()
    if os.getenv("ASAN_OPTIONS") or not build then
      pending("a plain luajit cannot load an ASan core.so")
      return
    end
    local lua_path = src .. "/lua/?.lua;" .. src .. "/lua/?/init.lua;" ..
                     src .. "/stdlib/?.lua;" .. src .. "/stdlib/?/init.lua;;"
    local cmd = "LUA_PATH=" .. q(lua_path) .. " LUA_CPATH=" .. q(build .. "/lib/?.so;;") ..
                " luajit " .. q(src .. "/examples/embed/host.lua") .. " 4"
    check(sh(cmd))
  end)

  it("completes its runs under weft exec", function()
    assert.is_string(bin)
    check(sh(q(bin) .. " exec " .. q(src .. "/examples/embed/host.lua") .. " 4"))
  end)
end)

describe("weft_load (the C embedding API, build/embed_host)", function()
  it("lets a script require a module beside it when the host runs elsewhere", function()
    assert.is_string(build)
    local dir = files.tempdir(nil, { "scripts", "cwd" })
    finally(function() files.remove(dir) end)
    files.write(dir .. "/scripts/shout.lua", 'return { suffix = "!!" }\n')
    files.write(dir .. "/scripts/flow.lua", [[
local weft = require "weft"
local shout = require "shout"
return weft.workflow("flow"):start(weft.executor("a", function(m, ctx) ctx:yield_output(m .. shout.suffix) end)):build()
]])
    local out, ok = sh("cd " .. q(dir .. "/cwd") .. " && " .. q(build .. "/embed_host") .. " "
      .. q(dir .. "/scripts/flow.lua") .. " '\"hey\"'")
    assert.is_true(ok, out)
    assert.matches('"outputs":%["hey!!"%]', out)
  end)
end)
