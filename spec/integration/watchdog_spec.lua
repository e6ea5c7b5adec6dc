-- spec/integration/watchdog_spec.lua — the blocked-loop watchdog
-- (weft.core.watchdog) in real `weft exec` processes: an executor that
-- never yields (a busy loop LuaJIT compiles, so no hook would run) gets the
-- process SIGKILLed within a few seconds, after one JSON report naming the
-- executor and its run; a loop blocked outside any executor is reported as
-- such; scripts whose executors yield (weft.sleep), or that sit idle for
-- longer than the limit, or that stopped their watchdog, are not killed.
-- Time bounds are generous upper bounds that only catch hangs.
local weft = require "weft"
local json = weft.json
local procs = require "support.procs"
local files = require "support.files"
require "helpers" -- assert.mentions

local scratch = files.scratch()
local bin = procs.weft_bin()
local KILLED = 128 + 9 -- the shell's status of a process killed by SIGKILL

-- The script text with its prelude: weft, and a watchdog of 0.5 s that
-- reports to arg[1].
local function script(body)
  return [[
local weft = require "weft"
local watchdog = require "weft.core.watchdog"
local wd = assert(watchdog.start(0.5, arg[1]))
]] .. body
end

-- Run script text in a child `weft exec`; returns its exit status, the
-- report (decoded, or nil when none was written), stdout, stderr, pid.
local function run(text)
  local dir = scratch.dir()
  local path = files.write(dir .. "/script.lua", text)
  local report = dir .. "/report.json"
  local p = procs.spawn({ bin, "exec", path, report })
  local rc, out, err = procs.wait(p, 60)
  local line = files.slurp(report)
  return rc, line and json.decode(line), out, err, p.pid, line
end

describe("weft.core.watchdog", function()
  after_each(scratch.clean)

  it("kills a process whose executor never yields, naming the executor and its run", function()
    local rc, rep, out, err, pid, line = run(script [[
local spin = weft.executor("spinner", function()
  local x = 0
  while true do x = x + 1 end
end)
local wf = weft.workflow("spin"):start(spin):build()
print("started")
io.stdout:flush()
wf:run("go", { run_id = "run-wd-1" })
print("not reached")
]])
    assert.equal(KILLED, rc, err)
    assert.mentions("started", out)
    assert.is_nil(out:find("not reached", 1, true))
    assert.truthy(rep, "no report written; stderr: " .. err)
    assert.equal(pid, rep.pid)
    assert.equal("run-wd-1", rep.run_id)
    assert.equal("spinner", rep.executor_id)
    assert.is_true(rep.seconds >= 0.5)
    assert.equal(string.format("executor 'spinner' of run run-wd-1 did not yield for %.1f s", rep.seconds), rep.what)
    -- one line, also on stderr
    assert.equal(1, select(2, line:gsub("\n", "")))
    assert.mentions("weft watchdog: " .. line, err)
  end)

  it("escapes the ids it reports", function()
    local rc, rep, _, err = run(script [[
local spin = weft.executor('sp"in\\ner', function() while true do end end)
weft.workflow("spin"):start(spin):build():run("go", { run_id = 'run "q"' })
]])
    assert.equal(KILLED, rc, err)
    assert.equal('sp"in\\ner', rep.executor_id)
    assert.equal('run "q"', rep.run_id)
  end)

  it("reports a loop blocked outside any executor", function()
    local rc, rep, _, err = run(script [[
weft.sleep(0.01)
while true do end
]])
    assert.equal(KILLED, rc, err)
    assert.is_nil(rep.executor_id)
    assert.is_nil(rep.run_id)
    assert.equal(string.format("the event loop did not turn for %.1f s", rep.seconds), rep.what)
  end)

  it("leaves alone a process whose executors yield, and an idle one", function()
    local rc, rep, out, err = run(script [[
local slow = weft.executor("slow", function(msg, ctx)
  for _ = 1, 5 do weft.sleep(0.2) end -- 1 s in all, 0.2 s at a time
  ctx:yield_output(msg .. "!")
end)
local res = weft.workflow("slow"):start(slow):build():run("ok")
weft.sleep(1.2) -- idle for longer than the limit
assert(wd:running())
wd:stop()
assert(not wd:running())
print(res.outputs[1])
]])
    assert.equal(0, rc, err)
    assert.is_nil(rep)
    assert.mentions("ok!", out)
  end)

  it("no longer kills once stopped", function()
    local rc, rep, out, err = run(script [[
wd:stop()
wd:stop() -- idempotent
local t0 = os.clock()
while os.clock() - t0 < 1 do end -- blocked for twice the limit
print("survived")
]])
    assert.equal(0, rc, err)
    assert.is_nil(rep)
    assert.mentions("survived", out)
  end)

  it("runs one watchdog per state and checks its limit", function()
    local watchdog = require "weft.core.watchdog"
    local wd = assert(watchdog.start(60))
    local ok, e = pcall(watchdog.start, 60)
    assert.is_false(ok)
    assert.mentions("a watchdog is running already", e)
    wd:stop()
    ok, e = pcall(watchdog.start, 0)
    assert.is_false(ok)
    assert.mentions("the limit must be > 0 seconds", e)
    -- a stale handle does not stop a later watchdog
    local wd2 = assert(watchdog.start(60))
    wd:stop()
    assert.is_true(wd2:running())
    wd2:stop()
    assert.is_false(wd2:running())
  end)
end)
