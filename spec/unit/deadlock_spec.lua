--- spec/unit/deadlock_spec.lua — a main-thread wait that deadlocks (a run
-- whose executor waits on a weft.cond nobody signals, a cond:wait with
-- only a stuck weft.go task left) raises the clear deadlock error, and the
-- process goes on running JIT-compiled code afterwards.
--
-- The wait runs the loop inside a C function, which resumes task
-- coroutines; LuaJIT before 2.1 commit e86990f7 (issue #1066, the Debian
-- 12 package) then leaves the task's coroutine as its current thread when
-- that C function raises and a Lua pcall catches the error, and the next
-- trace exit on the main thread restores its snapshot onto the task's
-- stack: a segfault (wf_task_suspend re-points it first). Each case runs
-- in a child `weft exec` so a crash fails the test instead of the suite.
local files = require "support.files"
local procs = require "support.procs"

local q = files.quote

-- The child: compile a loop to a trace, deadlock (case "run" or "cond")
-- inside pcall, then leave the trace through a side exit before anything
-- else enters the VM; prints "ok<TAB>error<TAB>sum".
local CHILD = [[
local weft = require "weft"
local case = ...
local function sum(t)
  local s = 0
  for i = 1, #t do s = s + (tonumber(t[i]) or 0) end
  return s
end
local nums, mixed = {}, {}
for i = 1, 100 do nums[i], mixed[i] = i, i end
mixed[50] = "50" -- not a number: the compiled loop exits here
for _ = 1, 200 do sum(nums) end
local ok, err
if case == "run" then
  local c = weft.cond()
  local a = weft.executor("a", function(msg, ctx) c:wait() ctx:yield_output(msg) end)
  local stuck = weft.workflow("stuck"):start(a):build()
  ok, err = pcall(stuck.run, stuck, "x", { run_id = "stuck-run" })
else
  local c, never = weft.cond(), weft.cond()
  weft.go(function() never:wait() end)
  ok, err = pcall(c.wait, c)
end
local s = sum(mixed)
io.write(tostring(ok), "\t", tostring(err), "\t", s, "\n")
]]

-- The reported case, as a busted spec of its own (it crashed in about
-- half the runs: busted's environment lookups are compiled traces).
local CHILD_SPEC = [[
describe("a run waited on from the main thread", function()
  it("fails with the deadlock error", function()
    local weft = require "weft"
    local c = weft.cond()
    local a = weft.executor("a", function(msg, ctx) c:wait() ctx:yield_output(msg) end)
    local stuck = weft.workflow("stuck"):start(a):build()
    local ok, err = pcall(stuck.run, stuck, "x", { run_id = "core-sched-stuck" })
    assert.is_false(ok)
    assert.matches("run core%-sched%-stuck", err)
    assert.matches("nothing left to wait on", err)
  end)
end)
]]

describe("a main-thread wait with nothing left to wait on", function()
  local dir, child, child_spec

  setup(function()
    dir = files.tempdir("weft_deadlock_")
    child = files.write(dir .. "/child.lua", CHILD)
    child_spec = files.write(dir .. "/stuck_spec.lua", CHILD_SPEC)
  end)
  teardown(function() files.remove(dir) end)

  -- Run the child for case n times; each must exit 0 and print the
  -- deadlock error matching pattern and the right sum.
  local function check(case, n, pattern)
    for i = 1, n do
      local rc, out = files.sh(q(procs.weft_bin()) .. " exec " .. q(child) .. " " .. case)
      assert(rc == 0, ("run %d of case %s: exit %s (crashed?)\n%s"):format(i, case, tostring(rc), out))
      local ok, err, s = out:match("^(%a+)\t(.-)\t(%d+)\n")
      assert.equals("false", ok, out)
      assert.matches(pattern, err)
      assert.equals("5050", s)
    end
  end

  it("raises the deadlock error naming the run, and compiled code runs on", function()
    check("run", 10, "run stuck%-run: nothing left to wait on %(deadlock%)")
  end)

  it("raises the deadlock error of cond:wait, and compiled code runs on", function()
    check("cond", 10, "^cond:wait: nothing left to wait on %(deadlock%)$")
  end)

  it("does not crash a busted spec that catches the error (the reported case)", function()
    for i = 1, 8 do
      local rc, out = files.sh(q(procs.weft_bin()) .. " exec /usr/bin/busted -o plainTerminal "
                               .. q(child_spec))
      assert(rc == 0, ("run %d: exit %s (crashed?)\n%s"):format(i, tostring(rc), out))
      assert.matches("1 success / 0 failures / 0 errors", out)
    end
  end)
end)
