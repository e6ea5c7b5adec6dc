-- spec/integration/abort_waits_spec.lua — an executor whose run is ended
-- from inside its own invocation (cancelled, or failed as a budget does)
-- keeps running until its next yield, and is dropped there. Meanwhile it
-- starts no wait and no I/O: weft.sleep, store operations, weft.tcp.connect,
-- weft.sandbox.run and cond:wait return nil, err(, "cancelled") at once; nothing reaches the
-- store or the server, and nothing left behind wakes a dropped task later
-- (under the ASan build these were use-after-frees: a store callback and a
-- cond signal marked a freed task ready). The task still sees its run
-- (weft.task.current), so the run's network policy and budget hold.
local weft = require "weft"
local tcp = require "weft.tcp"
local task = require "weft.task"

-- Values and their count (results may hold nils).
local function pack(...) return { n = select("#", ...), ... } end

-- A run of a one-executor workflow whose handler ends its own run with
-- `end_run` (a function of the run handle; default: cancel), then calls
-- fn() and records what it returned; fn's results packed, and the run's
-- result.
local function after_own_end(fn, end_run)
  local got
  local wf = weft.workflow("abort"):start(weft.executor("a", function()
    local run = task.current()
    if end_run then end_run(run) else run:cancel() end
    got = pack(fn())
  end)):build()
  local res = wf:run("x")
  return got, res
end

-- Asserts that results r are nil, "<fname>: not started: the invocation
-- was aborted", "cancelled".
local function refused(fname, r)
  assert.is_not_nil(r, "the primitive never returned (the task was dropped while waiting)")
  assert.is_nil(r[1])
  assert.equal(fname .. ": not started: the invocation was aborted", r[2])
  assert.equal("cancelled", r[3])
end

describe("a task whose invocation was aborted while it ran", function()
  it("does not sleep", function()
    local r, res = after_own_end(function() return weft.sleep(30) end)
    refused("weft.sleep", r)
    assert.equal("cancelled", res.status)
  end)

  it("starts no store operation: reads and writes are refused, nothing is written", function()
    local st = assert(weft.store.open("memory:"))
    local r = after_own_end(function()
      local b = st:batch()
      b:put("ns", "k", "written after the abort")
      local r1 = pack(b:commit())
      local r2 = pack(st:get("ns", "k"))
      return r1, r2
    end)
    refused("batch:commit", r[1])
    refused("store:get", r[2])
    -- the main thread's read comes after any callback left behind
    assert.is_nil((st:get("ns", "k")))
    st:close()
  end)

  it("connects to nothing", function()
    local srv = assert(tcp.listen("127.0.0.1", 0))
    local r = after_own_end(function() return tcp.connect("127.0.0.1", srv:port(), 5) end)
    refused("weft.tcp.connect", r)
    -- no connection reaches the server (bounded: the assertion is that
    -- none comes, not how fast)
    local c, err = srv:accept(0.2)
    assert.is_nil(c)
    assert.equal("timeout", err)
    srv:close()
  end)

  it("starts no sandboxed process", function()
    local marker = os.tmpname()
    os.remove(marker)
    local r = after_own_end(function()
      return weft.sandbox.run{ argv = { "sh", "-c", "touch " .. marker }, isolation = "none" }
    end)
    assert.is_nil(r[1])
    assert.equal("sandbox.run: weft.sandbox.run: not started: the invocation was aborted", r[2])
    assert.is_nil(io.open(marker)) -- the command never ran
  end)

  it("does not wait on a cond, which then has no waiter to wake", function()
    local cond = weft.cond()
    local r = after_own_end(function() return cond:wait() end)
    refused("cond:wait", r)
    assert.equal(0, cond:signal())
  end)

  it("still sees its run, failed from inside as a budget fails it", function()
    local seen
    local r, res = after_own_end(function()
      local run, _, exec = task.current()
      seen = { run = run, exec = exec }
      return weft.sleep(1)
    end, function(run) require("weft.run").fail(run, "run exceeded its budget: tokens (1)") end)
    refused("weft.sleep", r)
    assert.equal("failed", res.status)
    assert.equal("run exceeded its budget: tokens (1)", res.error)
    assert.is_table(seen.run)
    assert.equal(res.run_id, seen.run.id)
    assert.equal("a", seen.exec)
  end)
end)
