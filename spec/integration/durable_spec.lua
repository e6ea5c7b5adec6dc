-- Durable runs over the real stores (memory:, sqlite: in a temp dir):
-- checkpoints, storage growth, resume, hash checks, requests answered from
-- a stored run, and the errors of bad input.
local weft = require "weft"
local json = weft.json
local durable = require "weft.durable"
local files = require "support.files"

local root = os.getenv("WEFT_SOURCE_DIR") or "."
local fixture = root .. "/spec/fixtures/durable/"

-- A workflow from a fixture script, called with args.
local function load_fixture(name, ...)
  return assert(loadfile(fixture .. name))(...)
end

-- Private temp dirs (as stores expect), removed after each test.
local scratch = files.scratch()
after_each(scratch.clean)

-- A fresh sqlite store URL in a temp dir.
local function sqlite_url()
  local dir = scratch.dir()
  return "sqlite:" .. dir .. "/weft.db", dir
end

for _, kind in ipairs({ "memory", "sqlite" }) do
  describe("durable runs on " .. kind, function()
    local url
    before_each(function()
      url = kind == "memory" and "memory:" or sqlite_url()
    end)

    it("checkpoint every superstep and record the final status", function()
      local store = weft.store.open(url)
      local wf = load_fixture("loop.lua", 6)
      local res = wf:run(0, { store = store })
      assert.equal("completed", res.status)
      local rec = assert(durable.record(store, res.run_id))
      assert.equal("completed", rec.status)
      assert.equal(res.supersteps, rec.checkpoints)
      assert.equal(durable.hash(wf), rec.hash)
      assert.equal(res.supersteps, #store:range("ckpt", res.run_id))
    end)

    it("resume from a checkpoint and reach the uninterrupted result", function()
      local store = weft.store.open(url)
      local wf = load_fixture("loop.lua", 8)
      local ref = wf:run(0).outputs[1]
      local res = wf:run(0, { store = store, run_id = "r-back" })
      assert.same({ ref }, res.outputs)
      -- go back to checkpoint 3 and run again from there
      local rec = assert(durable.record(store, "r-back"))
      rec.status = "failed"
      assert(store:put("runs", "r-back", json.encode(rec)))
      local h = wf:resume("r-back", { store = store, from = 3 })
      local again = h:wait()
      assert.equal("completed", again.status)
      assert.same({ ref }, again.outputs)
    end)

    it("refuse a definition whose hash differs, unless forced", function()
      local store = weft.store.open(url)
      local wf = load_fixture("loop.lua", 3)
      local h = wf:spawn(0, { store = store, run_id = "r-hash" })
      h:cancel()
      h:wait()
      local rec = assert(durable.record(store, "r-hash"))
      rec.status, rec.hash = "failed", "0000000000000000"
      assert(store:put("runs", "r-hash", json.encode(rec)))
      local ok, err = pcall(wf.resume, wf, "r-hash", { store = store })
      assert.is_false(ok)
      assert.truthy(err:find("hash 0000000000000000", 1, true))
      assert.truthy(err:find("force", 1, true))
      local res = wf:resume("r-hash", { store = store, force = true }):wait()
      assert.equal("completed", res.status)
    end)

    it("name an unknown run id", function()
      local wf = load_fixture("loop.lua", 3)
      local ok, err = pcall(wf.resume, wf, "nope", { store = url })
      assert.is_false(ok)
      assert.truthy(err:find("unknown run 'nope'", 1, true))
    end)

    it("refuse a record of another schema version without touching it", function()
      local store = weft.store.open(url)
      local bad = json.encode({ schema = 99, run_id = "r-v", status = "running" })
      assert(store:put("runs", "r-v", bad))
      local wf = load_fixture("loop.lua", 3)
      local ok, err = pcall(wf.resume, wf, "r-v", { store = store })
      assert.is_false(ok)
      assert.truthy(err:find("schema version 99", 1, true))
      assert.equal(bad, store:get("runs", "r-v"))
    end)

    it("report a corrupt checkpoint row clearly", function()
      local store = weft.store.open(url)
      local wf = load_fixture("loop.lua", 4)
      local res = wf:run(0, { store = store, run_id = "r-bad" })
      local rec = assert(durable.record(store, "r-bad"))
      rec.status = "failed"
      assert(store:put("runs", "r-bad", json.encode(rec)))
      local b = store:batch()
      b:del_prefix("ckpt", "r-bad")
      b:append("ckpt", "r-bad", "{not json")
      assert(b:commit())
      rec.checkpoints, rec.fulls = 1, { 1 }
      assert(store:put("runs", "r-bad", json.encode(rec)))
      local ok, err = pcall(wf.resume, wf, "r-bad", { store = store })
      assert.is_false(ok)
      assert.truthy(err:find("corrupt checkpoint 1 of run r-bad", 1, true), err)
      assert.equal("completed", res.status)
    end)

    it("store O(N) bytes, not O(N^2), for a growing conversation", function()
      local store = weft.store.open(url)
      local small = load_fixture("loop.lua", 200):run(0, { store = store, run_id = "g-200", max_supersteps = 1000 })
      local s200 = store:size("ckpt")
      local big = load_fixture("loop.lua", 800):run(0, { store = store, run_id = "g-800", max_supersteps = 1000 })
      local s800 = store:size("ckpt") - s200
      assert.equal("completed", small.status)
      assert.equal("completed", big.status)
      -- 4x the supersteps: linear growth gives ~4x, quadratic ~16x
      assert.is_true(s800 / s200 < 6, ("stored %d then %d bytes"):format(s200, s800))
    end)

    it("continue a paused run from its stored request in a new process state", function()
      local store = weft.store.open(url)
      local wf = dofile(root .. "/examples/approval.lua")
      local h = wf:spawn({ item = "desk", amount = 300 }, { store = store, run_id = "r-ask" })
      local res = h:wait()
      assert.equal("idle", res.status)
      local open = durable.open_requests(store, "r-ask")
      assert.equal(1, #open)
      assert.equal("req-1-0-1-1", open[1].request_id)
      h:cancel() -- the "process" goes away
      local rec = assert(durable.record(store, "r-ask"))
      rec.status = "idle"
      assert(store:put("runs", "r-ask", json.encode(rec)))
      -- another process: a fresh load of the workflow answers from the store
      local wf2 = dofile(root .. "/examples/approval.lua")
      local h2 = assert(wf2:respond("r-ask", "req-1-0-1-1", { approved = true, by = "ana" }, { store = store }))
      local done = h2:wait()
      assert.equal("completed", done.status)
      assert.same({ "booked: desk (300) approved by ana" }, done.outputs)
      assert.same({}, durable.open_requests(store, "r-ask"))
      local ok, err = durable.answer(store, "r-ask", "req-1-0-1-1", true)
      assert.is_nil(ok)
      assert.truthy(err:find("already answered", 1, true))
      ok, err = durable.answer(store, "r-ask", "req-9", true)
      assert.is_nil(ok)
      assert.truthy(err:find("has no request 'req-9'", 1, true))
    end)
  end)
end

-- A workflow whose one executor asks a human, then outputs the answer.
local function asking()
  local ask = weft.executor("ask", function(_, ctx)
    ctx:yield_output(ctx:request_info({ question = "ok?" }))
  end)
  return weft.workflow("asking"):start(ask):build()
end

for _, kind in ipairs({ "memory", "sqlite", "redis" }) do
  describe("durable runs on " .. kind, function()
    local url
    before_each(function()
      url = kind == "memory" and "memory:" or kind == "sqlite" and sqlite_url() or nil
    end)
    -- Run fn(url) (redis: on a redis-server started here).
    local function with_store(fn)
      return function()
        if kind == "redis" then
          local redis = require("support.procs").redis()
          if not redis then return pending("redis-server is not installed") end
          finally(function() redis.stop() end)
          url = redis.url
        end
        fn(url)
      end
    end

    it("delete one run's traces by ttl, not those of a run whose id it prefixes", with_store(function()
      local store = weft.store.open(url)
      local wf = asking()
      assert.equal("idle", wf:run(nil, { store = store, run_id = "team/ticket-7" }).status)
      local h = wf:spawn(nil, { store = store, run_id = "team" })
      assert.equal("idle", h:wait().status)
      assert(h:respond(durable.open_requests(store, "team")[1].request_id, "done"))
      assert.equal("completed", h:wait().status)
      assert.equal("completed", assert(durable.record(store, "team")).status)
      local res = durable.cleanup(store, { ttl = 1, now = os.time() + 10 })
      assert.equal(1, res.runs_deleted)
      assert.is_nil((durable.record(store, "team")))
      assert.same({}, store:scan("req", "team/"))
      -- the paused run keeps its request and its record, and still resumes
      local open = durable.open_requests(store, "team/ticket-7")
      assert.equal(1, #open)
      assert.equal("idle", assert(durable.record(store, "team/ticket-7")).status)
      local done = asking():respond("team/ticket-7", open[1].request_id, "later", { store = store }):wait()
      assert.equal("completed", done.status)
      assert.same({ "later" }, done.outputs)
    end))

    it("refuse an answer for a changed definition and store nothing", with_store(function()
      local store = weft.store.open(url)
      local h = asking():spawn(nil, { store = store, run_id = "changed" })
      assert.equal("idle", h:wait().status)
      h:cancel() -- the process goes away
      local req = durable.open_requests(store, "changed")[1].request_id
      local other = weft.workflow("renamed"):start(weft.executor("ask", function() end)):build()
      local ok, err = other:respond("changed", req, "yes", { store = store })
      assert.is_nil(ok)
      assert.truthy(err:find("hash", 1, true), err)
      assert.equal(1, #durable.open_requests(store, "changed")) -- not answered
      local done = asking():respond("changed", req, "yes", { store = store }):wait()
      assert.same({ "yes" }, done.outputs)
    end))

    it("leave a run alone in cleanup while a process owns it", with_store(function()
      local store = weft.store.open(url)
      assert.equal("completed", load_fixture("loop.lua", 3):run(0, { store = store, run_id = "owned" }).status)
      -- another process took it (to resume it from an earlier checkpoint, say)
      local l = assert(store:lease_acquire("owned", 30, { id = "other", host = "h", pid = 1 }))
      assert.equal(0, durable.cleanup(store, { ttl = 1, now = os.time() + 10 }).runs_deleted)
      assert.truthy(durable.record(store, "owned"))
      assert(store:lease_release(l))
      assert.equal(1, durable.cleanup(store, { ttl = 1, now = os.time() + 10 }).runs_deleted)
      assert.is_nil((durable.record(store, "owned")))
      assert.is_nil((store:lease("owned"))) -- its lease and token went with it
    end))

    it("stop waiting for a run's lease when lease.cancel says so, changing nothing", with_store(function()
      local store = weft.store.open(url)
      local wf = load_fixture("loop.lua", 3)
      local h = wf:spawn(0, { store = store, run_id = "waited" })
      h:wait()
      local l = assert(store:lease_acquire("waited", 30, { id = "other", host = "h", pid = 1 }))
      local polls = 0
      local ok, err = pcall(wf.resume, wf, "waited", { store = store, from = 1,
        lease = { wait = true, cancel = function() polls = polls + 1; return polls >= 2 end } })
      assert.is_false(ok)
      assert.truthy(tostring(err):find("run 'waited': waiting for its lease was cancelled", 1, true), err)
      assert.equal(2, polls)
      assert.equal(l.token, assert(store:lease("waited")).token) -- still the other owner's
      assert(store:lease_release(l))
    end))

    it("record the end of a run the host drives by polling (no wait)", with_store(function()
      local store = weft.store.open(url)
      local h = load_fixture("loop.lua", 5):spawn(0, { store = store, run_id = "polled" })
      while not h:result() do weft.sleep(0.001) end
      local rec = assert(durable.record(store, "polled"))
      assert.equal("completed", rec.status)
      assert.equal(h:result().supersteps, rec.superstep)
      assert.is_false(assert(store:lease("polled")).held)
      local h2 = load_fixture("loop.lua", 5):spawn(0, { store = store, run_id = "polled2" })
      while not h2:result() do weft.poll() end
      assert.equal("completed", assert(durable.record(store, "polled2")).status)
    end))
  end)
end

describe("durable runs on sqlite", function()
  it("report a read-only database clearly and write nothing", function()
    local url, dir = sqlite_url()
    local store = weft.store.open(url)
    assert(store:put("runs", "x", "{}"))
    store:close()
    os.execute("chmod 0444 " .. dir .. "/weft.db; chmod 0555 " .. dir)
    finally(function() os.execute("chmod 0755 " .. dir .. "; chmod 0644 " .. dir .. "/weft.db") end)
    if os.execute("test -w " .. dir .. "/weft.db") == 0 then
      pending("running as a user who can write read-only files (root): covered by store_spec")
      return
    end
    local wf = load_fixture("loop.lua", 3)
    local ok, err = pcall(wf.run, wf, 0, { store = url })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("weft.db", 1, true))
  end)
end)

describe("durability as a hook", function()
  local procs = require "support.procs"

  -- Write text to a temp script `name`, run it with `weft exec`; its last
  -- line of output, JSON-decoded.
  local function exec_json(name, text)
    local path = files.write(scratch.dir() .. "/" .. name, text)
    local rc, out, err = procs.run({ procs.weft_bin(), "exec", path })
    assert.equal(0, rc, err)
    return json.decode(out:match("[^\n]+$") or out)
  end

  it("runs the I/O of a plain run through weft.journal without loading weft.durable", function()
    local got = exec_json("plain.lua", [[
local weft = require "weft"
local ex = weft.executor("io", function(_, ctx)
  local r = assert(require("weft.sandbox").run{ argv = { "true" }, isolation = "none" })
  local res = assert(require("weft.llm").chat{ model = "mock:echo", messages = { { role = "user", content = "hi" } } })
  local _, herr = require("weft.http").request{ url = "http://127.0.0.1:1/", connect_timeout = 1 }
  ctx:yield_output({ exit = r.exit_code, text = res.text, http = herr ~= nil,
                     journal = package.loaded["weft.journal"] ~= nil,
                     durable = package.loaded["weft.durable"] ~= nil })
end)
print(weft.json.encode(weft.workflow("plain"):start(ex):build():run(0).outputs[1]))
]])
    assert.same({ exit = 0, text = "echo: hi", http = true, journal = true, durable = false }, got)
  end)

  it("gives durable invocations their own ctx type, and plain ctx methods record nothing", function()
    local seen = {}
    local ex = weft.executor("x", function(_, ctx)
      seen[#seen + 1] = getmetatable(ctx)
      ctx._fx = {} -- a plain ctx has no recording to fill
      ctx:send("m")
      ctx:set_state("k", 1)
      seen[#seen + 1] = #ctx._fx
    end)
    local sink = weft.executor("sink", function(m, ctx) ctx:yield_output(m) end)
    local wf = weft.workflow("kinds"):start(ex):edge(ex, sink):build()
    assert.equal("completed", wf:run(0).status)
    assert.equal("completed", wf:run(0, { store = "memory:" }).status)
    local Ctx = require("weft.context").Ctx
    assert.equal(Ctx, seen[1])
    assert.equal(0, seen[2])
    assert.equal(durable.Ctx, seen[3])
    assert.are_not.equal(Ctx, durable.Ctx)
  end)

  it("sets the journal hook while a durable run is active, and only then", function()
    local got = exec_json("hook.lua", [[
local weft = require "weft"
local journal = require "weft.journal"
local function hooked() local h = journal.set(nil); journal.set(h); return h ~= nil end
local seen = {}
local ex = weft.executor("x", function() seen[#seen + 1] = hooked() end)
local wf = weft.workflow("hook"):start(ex):build()
seen[#seen + 1] = hooked()
assert(wf:run(0, { store = "memory:" }).status == "completed")
seen[#seen + 1] = hooked()
assert(wf:run(0).status == "completed")
print(weft.json.encode(seen))
]])
    assert.same({ false, true, false, false }, got)
  end)
end)
