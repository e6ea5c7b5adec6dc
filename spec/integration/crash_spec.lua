-- Crash tests: a durable multi-superstep run (concurrent invocations, LLM
-- calls to the project's test server) is SIGKILLed at random points in a
-- child `weft run`, then resumed with `weft runs resume`; its final output
-- must equal an uninterrupted run's (no superstep lost or applied twice:
-- the shared-state record of every round is in the output). For sqlite and
-- for a real redis-server started here. Also: a journaled LLM call is not
-- repeated after a crash, and Redis stopped mid-run. #crash #redis
local weft = require "weft"
local json = weft.json
local durable = require "weft.durable"
local procs = require "support.procs"
local ps = require "support.provider_server"

local root = os.getenv("WEFT_SOURCE_DIR") or "."
local fixture = root .. "/spec/fixtures/durable/"
local bin = procs.weft_bin()
local TRIALS = tonumber(os.getenv("WEFT_CRASH_TRIALS")) or 12

local last_line = procs.last_line

describe("crash recovery", function()
  local srv, llm_url
  setup(function()
    srv = ps.start{ port = 0 }
    llm_url = srv.url .. "/_f/latency=15/v1"
  end)
  teardown(function() srv:stop() end)

  -- The final output of an uninterrupted run of crashy.lua (in a child).
  local function reference()
    local rc, out, err = procs.run({ bin, "run", fixture .. "crashy.lua" }, { WEFT_TEST_LLM_URL = llm_url })
    assert.equal(0, rc, err)
    return last_line(out)
  end

  -- The final output of completed run id as stored (the run record and
  -- its checkpoint log), JSON-encoded like `weft run` prints it.
  local function stored_result(url, id)
    local st = assert(weft.store.open(url))
    local rec = assert(durable.record(st, id))
    assert.equal("completed", rec.status, "run " .. id)
    local outs = {}
    for _, row in ipairs(assert(st:range("ckpt", id))) do
      local entry = json.decode(row.value)
      if entry.all_outputs then -- a full snapshot: every output so far
        outs = {}
        for i, v in ipairs(entry.all_outputs) do outs[i] = v end
      else
        for _, v in ipairs(entry.outputs or {}) do outs[#outs + 1] = v end
      end
    end
    st:close()
    assert.equal(rec.outputs, #outs, "run " .. id .. ": outputs in the checkpoints")
    return json.encode(outs[#outs])
  end

  -- One trial: run, kill after delay seconds, resume until done; returns
  -- the final output line and whether the kill came before completion.
  local function trial(store, id, delay)
    -- a short lease: the killed owner's lease expires at once, and the
    -- resume waits for it (--wait)
    local env = { WEFT_TEST_LLM_URL = llm_url, WEFT_LEASE_TTL = "0.5" }
    local p = procs.spawn({ bin, "run", fixture .. "crashy.lua", "--store", store, "--run-id", id }, env)
    weft.sleep(delay)
    procs.kill(p)
    local rc, out = procs.wait(p, 30)
    if rc == 0 then
      -- finished before the kill: what it printed is what it stored
      assert.equal(last_line(out), stored_result(store, id))
      return last_line(out), false
    end
    local rc2, out2, err2 = procs.run({ bin, "runs", "resume", id, "--store", store, "--wait" }, env, 60)
    if err2:find("already completed", 1, true) then
      -- killed after the run completed (while exiting): nothing to resume,
      -- and stdout may be cut short; the stored result must be whole
      assert.equal(0, rc2, err2)
      return stored_result(store, id), false
    end
    if rc2 == 2 and err2:find("unknown run", 1, true) then
      -- killed before the run record was written: nothing started; run it
      -- (its lease may have been taken before the kill: wait for it)
      local rc3, out3, err3 = procs.run({ bin, "run", fixture .. "crashy.lua", "--store", store,
                                          "--run-id", id, "--wait" }, env, 60)
      assert.equal(0, rc3, err3)
      return last_line(out3), false
    end
    assert.equal(0, rc2, err2)
    if not last_line(out2) then
      -- killed after the last checkpoint, before the final record: the
      -- resumed run had nothing left to do (its outputs were committed)
      return stored_result(store, id), true
    end
    return last_line(out2), true
  end

  local function trials(store)
    local want = reference()
    assert.truthy(want:find('"done"', 1, true))
    local killed = 0
    math.randomseed(42)
    for i = 1, TRIALS do
      local got, was_killed = trial(store, "crash-" .. i, 0.01 + math.random() * 0.2)
      assert.equal(want, got, "trial " .. i)
      if was_killed then killed = killed + 1 end
    end
    -- most trials must really have been interrupted
    assert.is_true(killed >= TRIALS / 2, ("only %d of %d trials were interrupted"):format(killed, TRIALS))
  end

  it("resumes sqlite runs killed at random points to the uninterrupted result", function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p -m 700 " .. dir) -- private, as stores expect
    finally(function() os.execute("rm -rf " .. dir) end)
    trials("sqlite:" .. dir .. "/crash.db")
  end)

  it("resumes redis runs killed at random points to the uninterrupted result #redis", function()
    local redis = procs.redis()
    if not redis then return pending("redis-server is not installed") end
    finally(function() redis.stop() end)
    trials(redis.url)
  end)

  it("does not repeat a journaled LLM call after a crash", function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p -m 700 " .. dir) -- private, as stores expect
    finally(function() os.execute("rm -rf " .. dir) end)
    local url = "sqlite:" .. dir .. "/j.db"
    srv:reset()
    local p = procs.spawn({ bin, "run", fixture .. "journal.lua", "--store", url, "--run-id", "j1",
                            "--input", "hello" }, { WEFT_TEST_LLM_URL = llm_url, WEFT_TEST_SLEEP = "30",
                                                    WEFT_LEASE_TTL = "0.5" })
    -- wait until the call is journaled (then the child sleeps)
    local store = weft.store.open(url)
    for _ = 1, 2000 do
      local rows = store:scan("journal", "j1/")
      if rows and #rows > 0 then break end
      weft.sleep(0.005)
    end
    procs.kill(p)
    procs.wait(p, 10)
    local stats = srv:stats()
    local before = stats.requests
    assert.is_true(before >= 1)
    local rc, out, err = procs.run({ bin, "runs", "resume", "j1", "--store", url, "--wait" },
      { WEFT_TEST_LLM_URL = llm_url, WEFT_TEST_SLEEP = "0" })
    assert.equal(0, rc, err)
    assert.equal('"echo: hello"', last_line(out))
    assert.equal(before, srv:stats().requests) -- the model was not asked again
  end)

  it("fails with a clear error when Redis stops mid-run, and resumes once it is back #redis", function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p -m 700 " .. dir) -- private, as stores expect
    finally(function() os.execute("rm -rf " .. dir) end)
    local redis = procs.redis({ dir = dir, persist = true })
    if not redis then return pending("redis-server is not installed") end
    finally(function() redis.stop() end)
    -- the failed owner cannot give its lease up while Redis is down: short
    -- lease, and the resume waits for it
    local env = { WEFT_TEST_LLM_URL = llm_url, WEFT_LEASE_TTL = "0.5" }
    local want = reference()
    local p = procs.spawn({ bin, "run", fixture .. "crashy.lua", "--store", redis.url, "--run-id", "rs" }, env)
    weft.sleep(0.08)
    redis.stop()
    local rc, _, err = procs.wait(p, 30)
    if rc ~= 0 then
      assert.equal(1, rc)
      assert.truthy(err:find("redis", 1, true), err)
    end
    redis.start()
    local rc2, out2, err2 = procs.run({ bin, "runs", "resume", "rs", "--store", redis.url, "--wait" }, env, 60)
    if rc == 0 then
      -- finished before Redis went away: nothing to resume (said plainly)
      assert.equal(0, rc2)
      assert.truthy(err2:find("already completed", 1, true))
    else
      assert.equal(0, rc2, err2)
      assert.equal(want, last_line(out2))
    end
  end)
end)
