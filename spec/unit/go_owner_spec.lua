-- weft.go tasks started by an invocation stop with it (lua_rt.c: a
-- one-shot task's kin): aborted (timeout, cancel, its run failing) or
-- failed, the invocation takes its tasks down at once — their waits
-- cancelled, nothing after them runs — so that a cancelled run's parallel
-- work (weft.flow's parallel batches, an agent's concurrent calls) stops
-- spending; a completed invocation leaves them running, and
-- weft.task.go_detached starts one that works for none.
local weft = require "weft"
local flow = require "weft.flow"
local task = require "weft.task"

-- Spin the loop until ok() or a bound of turns (no clock).
local function until_(ok, what)
  for _ = 1, 10000 do
    if ok() then return end
    weft.sleep(0)
  end
  error("never: " .. what)
end

-- A workflow whose executor starts n go tasks (nested ones too when
-- nested) that each wait on gate, then count in hits; the executor then
-- waits on its tasks, or fails/returns as `how` says.
local function starter(n, gate, counts, how, nested)
  local e = weft.executor("e", function(_, ctx)
    local ts = {}
    for i = 1, n do
      ts[i] = weft.go(function()
        if nested then
          weft.go(function()
            counts.started = counts.started + 1
            gate:wait()
            counts.hits = counts.hits + 1
          end)
        end
        counts.started = counts.started + 1
        gate:wait()
        counts.hits = counts.hits + 1
      end)
    end
    if how == "fail" then
      until_(function() return counts.started == n * (nested and 2 or 1) end, "tasks started")
      error("the executor fails")
    elseif how == "return" then
      ctx:yield_output("left them running")
      return
    end
    for i = 1, n do ts[i]:wait() end
    ctx:yield_output("joined")
  end, how == "timeout" and { timeout = 0.05 } or nil)
  return weft.workflow("owner"):start(e):build()
end

-- Open the gate the tasks waited on, let the loop turn, and check that
-- none of them went past it (they were dropped).
local function none_went_on(gate, counts)
  gate:signal()
  for _ = 1, 20 do weft.sleep(0) end
  assert.equal(0, counts.hits)
end

describe("weft.go tasks of an invocation", function()
  it("stop when their run is cancelled: nothing after their wait runs", function()
    local gate, counts = weft.cond(), { started = 0, hits = 0 }
    local h = starter(3, gate, counts, "join", true):spawn("x")
    until_(function() return counts.started == 6 end, "tasks started")
    h:cancel()
    assert.equal("cancelled", h:wait().status)
    none_went_on(gate, counts) -- the gate would release every task still waiting
  end)

  it("stop when their invocation times out", function()
    local gate, counts = weft.cond(), { started = 0, hits = 0 }
    local res = starter(3, gate, counts, "timeout"):run("x")
    assert.equal("failed", res.status)
    assert.matches("timed out", res.error)
    assert.equal(3, counts.started)
    none_went_on(gate, counts)
  end)

  it("stop when their invocation fails", function()
    local gate, counts = weft.cond(), { started = 0, hits = 0 }
    local res = starter(2, gate, counts, "fail", true):run("x")
    assert.equal("failed", res.status)
    none_went_on(gate, counts)
  end)

  it("go on after their invocation completed, as detached tasks do", function()
    local gate, counts = weft.cond(), { started = 0, hits = 0 }
    local res = starter(2, gate, counts, "return"):run("x")
    assert.equal("completed", res.status)
    until_(function() return counts.started == 2 end, "tasks started")
    gate:signal()
    until_(function() return counts.hits == 2 end, "tasks done")
  end)

  it("but not a detached one, which outlives a cancelled run", function()
    local gate, done = weft.cond(), false
    local e = weft.executor("e", function()
      task.go_detached(function() gate:wait(); done = true end)
      weft.sleep(60)
    end)
    local h = weft.workflow("detached"):start(e):build():spawn("x")
    weft.sleep(0)
    h:cancel()
    assert.equal("cancelled", h:wait().status)
    gate:signal()
    until_(function() return done end, "the detached task ran")
  end)

  it("stop a cancelled run's parallel batch (weft.flow) before its next items run", function()
    local gate, counts = weft.cond(), { started = 0, hits = 0 }
    local node = flow.AsyncParallelBatchNode {
      prep = function() return { 1, 2, 3 } end,
      exec = function(x)
        counts.started = counts.started + 1
        gate:wait()
        counts.hits = counts.hits + 1
        return x
      end,
    }
    local e = weft.executor("batch", function(_, ctx)
      flow.Flow { start = node }:run({})
      ctx:yield_output("done")
    end)
    local h = weft.workflow("batch"):start(e):build():spawn("x")
    until_(function() return counts.started == 3 end, "items started")
    h:cancel()
    assert.equal("cancelled", h:wait().status)
    none_went_on(gate, counts)
  end)
end)
