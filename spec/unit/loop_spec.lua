-- loop_spec.lua — the loop primitives used where they are safe: sleeps and
-- timeouts count from the time of the call (not libev's cached time),
-- weft.step / weft.poll refuse to run the loop from inside a task, and the
-- main thread waits in a primitive the way a task does (the one wait
-- protocol of lua_rt.c): woken by the same events, counted as a waiter,
-- and stopped by the deadlock check when nothing can end its wait.
local weft = require "weft"
local helpers = require "helpers"

-- Lua work (no I/O, no loop iteration) for at least s seconds.
local function busy(s)
  local t0 = weft.clock()
  local x = 0
  while weft.clock() - t0 < s do x = x + 1 end
  return x
end

-- The output of a one-executor workflow running body(ctx) in its handler.
local function in_executor(body)
  local ex = weft.executor("body", function(_, ctx) ctx:yield_output(body(ctx)) end)
  local r = weft.workflow("loop-check"):start(ex):build():run("x")
  assert.equal("completed", r.status, r.error)
  return r.outputs[1]
end

describe("weft.sleep", function()
  -- the run's own executor ends at once; a loop iteration happens before
  -- the measured Lua work, so libev's cached time is that of the iteration
  it("in an executor, lasts its duration from the call even after long Lua work", function()
    local slept = in_executor(function()
      weft.sleep(0)
      busy(0.09)
      local t0 = weft.clock()
      weft.sleep(0.1)
      return weft.clock() - t0
    end)
    assert.is_true(slept >= 0.1, "slept only " .. slept .. " s")
  end)

  it("on the main thread, lasts its duration from the call even after long Lua work", function()
    weft.sleep(0)
    busy(0.09)
    local t0 = weft.clock()
    weft.sleep(0.1)
    local slept = weft.clock() - t0
    assert.is_true(slept >= 0.1, "slept only " .. slept .. " s")
  end)
end)

describe("executor retry backoff", function()
  it("waits its backoff from the failure even after long Lua work", function()
    local failed_at
    local ex = weft.executor("flaky", {
      handle = function(_, ctx)
        if ctx.attempt == 1 then
          weft.sleep(0)
          busy(0.09)
          failed_at = weft.clock()
          error("first attempt fails")
        end
        ctx:yield_output(weft.clock() - failed_at)
      end,
      retry = { max_attempts = 2, backoff = 0.1 },
    })
    local r = weft.workflow("backoff-check"):start(ex):build():run("x")
    assert.equal("completed", r.status, r.error)
    assert.is_true(r.outputs[1] >= 0.1, "waited only " .. r.outputs[1] .. " s")
  end)
end)

describe("cond:wait", function()
  it("with a timeout, waits that long from the call even after long Lua work", function()
    local waited = in_executor(function()
      local c = weft.cond()
      weft.sleep(0)
      busy(0.09)
      local t0 = weft.clock()
      local signalled = c:wait(0.1)
      assert(signalled == false)
      return weft.clock() - t0
    end)
    assert.is_true(waited >= 0.1, "waited only " .. waited .. " s")
  end)

  -- The timeout of a wait expires while the loop is busy and the cond is
  -- signalled in the same loop turn, before the expired timer's callback
  -- runs: the expired one-shot timer is no longer active but still pending,
  -- and the end of the wait must stop it too (it crashed the worker
  -- processes under CPU load: a timer callback for a wait that had ended).
  it("is signalled cleanly in the loop turn where its timeout expired", function()
    local c, go1, go2 = weft.cond(), weft.cond(), weft.cond()
    local result
    weft.go(function() result = c:wait(0.005) end)
    -- y readies b while the loop drains its queue before polling; b then
    -- runs from the loop's check watcher, inside the poll's turn, after
    -- the expired timer was queued and before its callback
    weft.go(function() go2:wait(); c:signal() end) -- b
    weft.go(function() go1:wait(); go2:signal() end) -- y
    weft.sleep(0) -- all three are parked; the first one's timer runs
    busy(0.02) -- that timer expires while the loop does not turn
    go1:signal()
    helpers.poll_until(function() return result ~= nil end)
    assert.is_true(result) -- signalled, not timed out (and no crash)
    weft.sleep(0.01) -- nothing fires for the ended wait afterwards
  end)

  -- A cond that nothing but the waiting task references: the task's C
  -- frame (where the cond was the argument) is gone once it yields, so
  -- only the cond's own anchor keeps it alive until the wait ends.
  it("keeps a cond that only its waiting task references alive through a collection", function()
    local weak = setmetatable({}, { __mode = "k" })
    local waiting, result = false, nil
    local function fresh()
      local c = weft.cond()
      weak[c] = true
      waiting = true
      return c
    end
    weft.go(function() result = fresh():wait(30) end)
    helpers.poll_until(function() return waiting end)
    weft.sleep(0) -- the task is parked in cond:wait
    collectgarbage("collect")
    collectgarbage("collect")
    local c = next(weak)
    assert.is_not_nil(c, "the cond was collected while a task waited on it")
    assert.equal(1, c:signal())
    helpers.poll_until(function() return result ~= nil end)
    assert.is_true(result)
  end)

  it("on the main thread, is woken by a task's signal, which counts it among the waiters it woke", function()
    local c = weft.cond()
    local woken
    weft.go(function() woken = c:signal() end)
    assert.is_true(c:wait())
    assert.equal(1, woken)
  end)

  it("on the main thread, raises naming the deadlock when nothing is left that could signal it", function()
    local c = weft.cond()
    local ok, err = pcall(c.wait, c)
    assert.is_false(ok)
    assert.matches("cond:wait: nothing left to wait on %(deadlock%)", err)
    -- the failed wait left nothing behind: a later signal wakes no one
    assert.equal(0, c:signal())
  end)

  it("on the main thread, with a timeout, returns false when it passes", function()
    assert.is_false(weft.cond():wait(0))
  end)

  it("ends a process whose task still waits on an unreferenced cond cleanly (cancelled at close)", function()
    local procs = require "support.procs"
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write([[
local weft = require "weft"
local waiting = false
weft.go(function()
  local function fresh() waiting = true; return weft.cond() end
  fresh():wait()
end)
while not waiting do weft.sleep(0) end
weft.sleep(0)
collectgarbage("collect")
collectgarbage("collect")
-- reuse the freed memory with bytes that are no valid pointer
local keep = {}
for i = 1, 20000 do keep[i] = ("\255"):rep(24 + i % 40) end
io.write("closing\n")
]])
    f:close()
    local rc, out, err = procs.run({ procs.weft_bin(), "exec", script }, nil, 60)
    os.remove(script)
    assert.equal(0, rc, err)
    assert.equal("closing\n", out)
  end)
end)

describe("weft.step and weft.poll inside a task", function()
  for _, name in ipairs({ "step", "poll" }) do
    it("weft." .. name .. " raises in an executor, naming itself and why", function()
      local err = in_executor(function()
        local ok, e = pcall(weft[name])
        return ok and "no error" or tostring(e)
      end)
      assert.truthy(err:find("weft." .. name .. ": runs the event loop: call it from the main thread only", 1, true), err)
    end)

    it("weft." .. name .. " raises in a weft.go task", function()
      local err
      weft.go(function()
        local ok, e = pcall(weft[name])
        err = ok and "no error" or tostring(e)
      end)
      helpers.poll_until(function() return err ~= nil end)
      assert.truthy(err:find("weft." .. name .. ": runs the event loop: call it from the main thread only", 1, true), err)
    end)

    it("weft." .. name .. " raises in an on_event callback", function()
      local ex = weft.executor("a", function(_, ctx) ctx:yield_output(1) end)
      local errs = {}
      weft.workflow("cb"):start(ex):build():run("x", { on_event = function()
        local ok, e = pcall(weft[name])
        errs[#errs + 1] = ok and "no error" or tostring(e)
      end })
      assert.is_true(#errs > 0)
      for _, e in ipairs(errs) do
        assert.truthy(e:find("weft." .. name .. ": runs the event loop: call it from the main thread only", 1, true), e)
      end
    end)
  end

  it("no other task is resumed inside the task that called them", function()
    -- before the check, weft.poll in a task ran the queued task inside it
    local order = {}
    weft.go(function()
      order[#order + 1] = "outer:start"
      weft.go(function() order[#order + 1] = "inner" end)
      pcall(weft.poll)
      order[#order + 1] = "outer:end"
    end)
    helpers.poll_until(function() return #order == 3 end)
    assert.same({ "outer:start", "outer:end", "inner" }, order)
  end)
end)
