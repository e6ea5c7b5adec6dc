-- A durable run has exactly one owner: real `weft` processes on one run,
-- over SQLite and a real redis-server started here. A second process is
-- refused (naming the owner and when its lease expires) and nothing is
-- corrupted; a stale owner (paused with SIGSTOP until its tiny lease
-- expired and the run was taken over) can never append; a SIGKILLed
-- owner's lease expires and the run resumes; two `runs respond` at the
-- same moment run the fan-in once; the lease and the run record are
-- durable before superstep 0. #redis
local weft = require "weft"
local json = weft.json
local durable = require "weft.durable"
local procs = require "support.procs"
local files = require "support.files"

local root = os.getenv("WEFT_SOURCE_DIR") or "."
local loop_fixture = root .. "/spec/fixtures/durable/loop.lua"
local bin = procs.weft_bin()

-- Private temp dirs (as stores expect), removed after each test.
local scratch = files.scratch()
after_each(scratch.clean)
local tmpdir = scratch.dir

local write = files.write

-- Two requests to humans in one superstep, then a fan-in that outputs
-- both answers (once per run: the spec counts its outputs). A re-executed
-- ask waits WEFT_TEST_ASK_DELAY seconds before asking: two responders that
-- both continued the run would then both find both answers stored.
local TWO_ASKS = [[
local weft = require "weft"
local split = weft.executor("split", function(_, ctx) ctx:send("go") end)
local asks = {}
local delay = tonumber(os.getenv("WEFT_TEST_ASK_DELAY") or "") or 0
for i = 1, 2 do
  asks[i] = weft.executor("ask" .. i, function(_, ctx)
    if delay > 0 then weft.sleep(delay) end
    ctx:send(ctx:request_info({ question = "answer " .. i }))
  end)
end
local join = weft.executor("join", function(list, ctx)
  ctx:yield_output({ joined = list })
end)
return weft.workflow("two_asks"):start(split):fan_out(split, asks):fan_in(asks, join)
]]

-- A start executor with a side effect (a line appended to WEFT_TEST_MARK).
local SIDE_EFFECT = [[
local weft = require "weft"
local start = weft.executor("start", function(_, ctx)
  local fh = assert(io.open(os.getenv("WEFT_TEST_MARK"), "a"))
  fh:write("ran\n")
  fh:close()
  ctx:yield_output("done")
end)
return weft.workflow("side_effect"):start(start)
]]

-- Poll (the loop keeps running) until fn() is truthy; raises after ~20 s.
local function until_true(fn, what)
  for _ = 1, 4000 do
    local v = fn()
    if v then return v end
    weft.sleep(0.005)
  end
  error("timed out waiting for " .. what)
end

-- The checkpoint log of run id must be whole: numbered 1..n without gaps,
-- one entry per superstep, supersteps strictly increasing.
local function assert_log_whole(url, id)
  local st = assert(weft.store.open(url))
  local rows = assert(st:range("ckpt", id))
  local last_ss = -1
  for i, row in ipairs(rows) do
    assert.equal(i, row.seq, "entry numbers of run " .. id)
    local e = json.decode(row.value)
    assert.is_true(e.supersteps > last_ss, ("checkpoint %d repeats superstep %d"):format(i, e.supersteps))
    last_ss = e.supersteps
  end
  st:close()
  return #rows
end

-- Number of checkpoints of run id.
local function checkpoints(url, id)
  local st = assert(weft.store.open(url))
  local rows = st:range("ckpt", id)
  st:close()
  return rows and #rows or 0
end

-- busted defines `finally` only while a test runs: look it up then.
local function each_store(fn)
  procs.each_store({ it = it, pending = pending, defer = function(f) finally(f) end }, tmpdir, fn)
end

describe("run ownership", function()
  describe("refuses a second process while the first runs, and nothing is corrupted", function()
    each_store(function(url)
      -- 40 supersteps of 20 ms: about a second of work
      local a = procs.spawn({ bin, "run", loop_fixture, "40", "0.02", "--input-json", "0", "--store", url, "--run-id", "c1" })
      until_true(function() return checkpoints(url, "c1") >= 2 end, "the first checkpoints")
      local rc, _, err = procs.run({ bin, "runs", "resume", "c1", "--store", url })
      assert.equal(2, rc, err)
      assert.truthy(err:find("run 'c1' is owned by ", 1, true), err)
      assert.truthy(err:find("(pid " .. a.pid .. " on ", 1, true), err) -- the owner
      assert.truthy(err:match("until %d%d%d%d%-%d%d%-%d%dT[%d:]+Z %(in [%d.]+ s%)"), err) -- its expiry
      assert.truthy(err:find("--wait", 1, true), err)
      assert.falsy(err:find("%.lua:%d+:"), err) -- no internal file positions
      local rc1, out1, err1 = procs.wait(a, 60)
      assert.equal(0, rc1, err1)
      assert.truthy(out1:find('"steps":41', 1, true), out1)
      assert.equal(41, assert_log_whole(url, "c1")) -- supersteps 0..40
      local st = assert(weft.store.open(url))
      assert.equal("completed", assert(durable.record(st, "c1")).status)
      assert.is_false(assert(st:lease("c1")).held) -- given up at the end
      st:close()
    end)
  end)

  describe("weft run --run-id waits with --wait for an owner that died before writing the run", function()
    each_store(function(url)
      -- a process took the lease of w1 and was killed before its run
      -- record: only the lease is there, for 0.5 s more
      local st = assert(weft.store.open(url))
      assert(st:lease_acquire("w1", 0.5, { id = "dead", host = "h", pid = 1 }))
      st:close()
      local argv = { bin, "run", loop_fixture, "2", "0", "--input-json", "0", "--store", url, "--run-id", "w1" }
      local rc, _, err = procs.run(argv)
      assert.equal(2, rc, err)
      assert.truthy(err:find("run 'w1' is owned by ", 1, true), err)
      assert.truthy(err:find("--wait", 1, true), err) -- what the message offers, run accepts
      argv[#argv + 1] = "--wait"
      local rc2, out2, err2 = procs.run(argv, nil, 30)
      assert.equal(0, rc2, err2)
      assert.truthy(out2:find('"steps":3', 1, true), out2)
    end)
  end)

  describe("never lets a stale owner append", function()
    each_store(function(url)
      -- a tiny lease: stopped for longer than it lasts, A loses the run
      local a = procs.spawn({ bin, "run", loop_fixture, "30", "0.02", "--input-json", "0", "--store", url, "--run-id", "s1" },
        { WEFT_LEASE_TTL = "0.3" })
      until_true(function() return checkpoints(url, "s1") >= 2 end, "the first checkpoints")
      os.execute("kill -STOP " .. a.pid)
      local st = assert(weft.store.open(url))
      until_true(function() local l = st:lease("s1"); return l and not l.held end, "A's lease to expire")
      local before = assert(st:lease("s1")).token
      -- B takes the run over and finishes it
      local rc, out, err = procs.run({ bin, "runs", "resume", "s1", "--store", url })
      assert.equal(0, rc, err)
      assert.truthy(out:find('"steps":31', 1, true), out)
      local n = assert_log_whole(url, "s1")
      assert.is_true(assert(st:lease("s1")).token > before) -- a newer fencing token
      -- A wakes up: whatever it tries is refused, nothing is appended
      os.execute("kill -CONT " .. a.pid)
      local rc1, _, err1 = procs.wait(a, 60)
      assert.equal(1, rc1, err1)
      assert.truthy(err1:find("no longer owned", 1, true) or err1:find("was lost", 1, true), err1)
      assert.equal(n, assert_log_whole(url, "s1"))
      assert.equal("completed", assert(durable.record(st, "s1")).status)
      st:close()
    end)
  end)

  describe("lets a SIGKILLed owner's lease expire, then resumes", function()
    each_store(function(url)
      local env = { WEFT_LEASE_TTL = "1" }
      local a = procs.spawn({ bin, "run", loop_fixture, "30", "0.02", "--input-json", "0", "--store", url, "--run-id", "k1" }, env)
      until_true(function() return checkpoints(url, "k1") >= 2 end, "the first checkpoints")
      procs.kill(a)
      procs.wait(a, 10)
      local rc, out, err = procs.run({ bin, "runs", "resume", "k1", "--store", url, "--wait" }, env)
      assert.equal(0, rc, err)
      assert.truthy(out:find('"steps":31', 1, true), out)
      assert.equal(31, assert_log_whole(url, "k1"))
    end)
  end)

  describe("runs the fan-in once when two requests are answered at the same moment", function()
    each_store(function(url)
      local script = write(tmpdir() .. "/two_asks.lua", TWO_ASKS)
      for trial = 1, 3 do
        local id = "t" .. trial
        local rc0, _, err0 = procs.run({ bin, "run", script, "--store", url, "--run-id", id })
        assert.equal(3, rc0, err0)
        local st = assert(weft.store.open(url))
        local open = durable.open_requests(st, id)
        st:close()
        assert.equal(2, #open)
        local env = { WEFT_TEST_ASK_DELAY = "0.3" }
        local p1 = procs.spawn({ bin, "runs", "respond", id, open[1].request_id, '"one"', "--store", url }, env)
        local p2 = procs.spawn({ bin, "runs", "respond", id, open[2].request_id, '"two"', "--store", url }, env)
        local rc1, out1, err1 = procs.wait(p1, 60)
        local rc2, out2, err2 = procs.wait(p2, 60)
        -- each one continues the run, hands its answer to the other, or
        -- (answering first) pauses on the other request, which was open then
        assert.truthy(rc1 == 0 or rc1 == 3, err1)
        assert.truthy(rc2 == 0 or rc2 == 3, err2)
        assert.truthy(rc1 == 0 or rc2 == 0, err1 .. err2)
        local outs = 0
        for _ in (out1 .. out2):gmatch('"joined"') do outs = outs + 1 end
        assert.equal(1, outs, "trial " .. trial .. ": " .. out1 .. " / " .. out2 .. " / " .. err1 .. " / " .. err2)
        assert.truthy((out1 .. out2):find('"one"', 1, true))
        assert.truthy((out1 .. out2):find('"two"', 1, true))
        st = assert(weft.store.open(url))
        assert.equal("completed", assert(durable.record(st, id)).status)
        st:close()
        assert_log_whole(url, id)
      end
    end)
  end)

  describe("writes the lease and the run record before superstep 0", function()
    it("with the store down, nothing runs", function()
      local dir = tmpdir()
      local script = write(dir .. "/side.lua", SIDE_EFFECT)
      local mark = dir .. "/mark"
      local url = ("redis://127.0.0.1:%d/0?timeout=1"):format(procs.free_port()) -- nobody listens
      local rc, _, err = procs.run({ bin, "run", script, "--store", url, "--run-id", "d1" },
        { WEFT_TEST_MARK = mark })
      assert.equal(2, rc, err)
      assert.truthy(err:find("redis 127.0.0.1", 1, true), err)
      assert.is_nil(io.open(mark, "r")) -- the start executor never ran
    end)

    each_store(function(url)
      local dir = tmpdir()
      local script = write(dir .. "/side.lua", SIDE_EFFECT)
      local rc, _, err = procs.run({ bin, "run", script, "--store", url, "--run-id", "d2" },
        { WEFT_TEST_MARK = dir .. "/mark" })
      assert.equal(0, rc, err)
      -- the same id again is refused before anything runs
      local rc2, _, err2 = procs.run({ bin, "run", script, "--store", url, "--run-id", "d2" },
        { WEFT_TEST_MARK = dir .. "/mark" })
      assert.equal(2, rc2, err2)
      assert.truthy(err2:find("run 'd2' already exists (status completed)", 1, true), err2)
      local fh = assert(io.open(dir .. "/mark"))
      assert.equal("ran\n", fh:read("*a"))
      fh:close()
    end)
  end)
end)
