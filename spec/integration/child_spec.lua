-- spec/integration/child_spec.lua — long-lived child processes
-- (weft.core.child) with real processes: the weft executable itself run as
-- a child (environment added, exit code waited for, from the main thread
-- and from tasks), a sleeping child killed by name or number, spawn
-- failures naming the command, misuse raising.
local weft = require "weft"
local child = require "weft.core.child"
local procs = require "support.procs"
local files = require "support.files"
require "helpers" -- assert.mentions

local scratch = files.scratch()
local bin = procs.weft_bin()

describe("weft.core.child", function()
  after_each(scratch.clean)

  it("runs the weft executable with added environment and gives its exit code", function()
    local dir = scratch.dir()
    local script = files.write(dir .. "/exit.lua", [[
local f = assert(io.open(arg[1], "w"))
f:write(os.getenv("WEFT_CHILD_WORD"), " ", os.getenv("HOME") and "home" or "nohome")
f:close()
os.exit(tonumber(os.getenv("WEFT_CHILD_CODE")), true)
]])
    local h = assert(child.spawn{ argv = { bin, "exec", script, dir .. "/out" },
      env = { WEFT_CHILD_WORD = "hello", WEFT_CHILD_CODE = 5 } })
    assert.is_true(h:pid() > 0)
    local res = h:wait()
    assert.same({ code = 5 }, res)
    assert.is_false(h:running())
    assert.same({ code = 5 }, h:wait()) -- again, at once
    -- the environment is this process's plus what was added
    assert.equal(os.getenv("HOME") and "hello home" or "hello nohome", files.read(dir .. "/out"))
  end)

  it("wakes every task waiting for the same child", function()
    local h = assert(child.spawn{ argv = { "/bin/sh", "-c", "exit 3" } })
    local got = {}
    for i = 1, 2 do
      weft.go(function() got[i] = h:wait() end)
    end
    assert.same({ code = 3 }, h:wait())
    weft.sleep(0) -- the tasks resume from the loop
    assert.same({ { code = 3 }, { code = 3 } }, got)
  end)

  it("kills a sleeping child and reports its signal", function()
    local h = assert(child.spawn{ argv = { "sleep", "60" } })
    assert.is_true(h:running())
    assert.is_true(h:kill()) -- SIGTERM
    assert.same({ signal = 15 }, h:wait())
    local ok, err, code = h:kill("KILL")
    assert.is_nil(ok)
    assert.mentions("exited already", err)
    assert.equal("exited", code)
    for _, sig in ipairs({ "KILL", "SIGINT", 1 }) do
      local k = assert(child.spawn{ argv = { "sleep", "60" } })
      assert.is_true(k:kill(sig))
      local want = ({ KILL = 9, SIGINT = 2 })[sig] or sig
      assert.same({ signal = want }, k:wait())
    end
  end)

  it("returns nil and an error naming a command that cannot be started", function()
    local h, err, code = child.spawn{ argv = { "/nonexistent/weft-worker", "x" } }
    assert.is_nil(h)
    assert.equal("cannot start /nonexistent/weft-worker: No such file or directory", err)
    assert.equal("io", code)
    h, err = child.spawn{ argv = { "weft-no-such-command-x" } }
    assert.is_nil(h)
    assert.mentions("cannot start weft-no-such-command-x", err)
  end)

  it("raises on misuse", function()
    local function raises(needle, f, ...)
      local ok, e = pcall(f, ...)
      assert.is_false(ok)
      assert.mentions(needle, e)
    end
    raises("argv must be a non-empty list", child.spawn, { argv = {} })
    raises("argv[2] must be a non-empty string", child.spawn, { argv = { "sh", 1 } })
    raises("env must be a table", child.spawn, { argv = { "sh" }, env = "X=1" })
    raises("env keys must be names without '='", child.spawn, { argv = { "sh" }, env = { ["A=B"] = "x" } })
    raises("env.A must be a string", child.spawn, { argv = { "sh" }, env = { A = true } })
    local h = assert(child.spawn{ argv = { "sleep", "60" } })
    raises("unknown signal 'BOGUS'", h.kill, h, "BOGUS")
    raises("not a signal number", h.kill, h, 0)
    h:kill("KILL")
    h:wait()
  end)
end)
