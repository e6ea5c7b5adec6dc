-- Threads and memory in a store, and cleanup of durable runs (keep_last,
-- TTL), over memory: and sqlite:.
local weft = require "weft"
local durable = require "weft.durable"

-- Private temp dirs (as stores expect), removed after each test.
local scratch = require("support.files").scratch()
after_each(scratch.clean)

-- A fresh sqlite URL.
local function sqlite_url()
  return "sqlite:" .. scratch.dir() .. "/p.db"
end

-- A loop workflow of n supersteps writing one state key each (a 500-byte
-- value, so that full snapshots recur).
local function loop(n)
  local pad = string.rep("p", 500)
  local function step(id)
    return weft.executor(id, function(i, ctx)
      ctx:set_state("i", pad .. i)
      if i < n then ctx:send(i + 1) else ctx:yield_output(i) end
    end)
  end
  local a, b = step("a"), step("b")
  return weft.workflow("loop" .. n):start(a):edge(a, b):edge(b, a):build()
end

describe("threads in a store", function()
  it("save and load a conversation", function()
    local url = sqlite_url()
    local t = weft.thread.new()
    t:append("hello")
    t:append({ role = "assistant", content = "hi there" })
    assert.is_true(t:save(url))
    local back = assert(weft.thread.load(t.id, url))
    assert.equal(t.id, back.id)
    assert.same(t.messages, back.messages)
  end)

  it("return nil and a message for an unknown thread", function()
    local ok, err = weft.thread.load("thread-nope", "memory:")
    assert.is_nil(ok)
    assert.equal("unknown thread 'thread-nope'", err)
  end)

  it("let an agent continue a conversation loaded from the store", function()
    local url = sqlite_url()
    local agent = weft.agent{ name = "echo", model = "mock:echo" }
    local t = agent:new_thread()
    assert(agent:run("first", t))
    assert(t:save(url))
    local t2 = assert(weft.thread.load(t.id, url))
    local res = assert(agent:run("second", t2))
    assert.equal("echo: second", res.text)
    assert.equal(4, #t2.messages)
  end)
end)

describe("weft.memory.stored", function()
  it("remember facts across providers sharing a store", function()
    local url = sqlite_url()
    local store = weft.store.open(url)
    local agent = weft.agent{ name = "a", model = "mock:echo", memory = weft.memory.stored{ store = store } }
    local t = agent:new_thread()
    assert(agent:run("remember that the sky is green", t))
    -- a new provider (another process would do the same) sees the fact
    local p2 = weft.memory.stored{ store = url }
    local ctx = p2.before_invoke(t, t.messages, agent)
    assert.equal(1, #ctx)
    assert.truthy(ctx[1].content:find("the sky is green", 1, true))
  end)

  it("reject a missing store", function()
    assert.has_error(function() weft.memory.stored{} end,
      "weft.memory.stored: store must be a store URL or a weft.store object, got nothing")
  end)
end)

describe("durable cleanup", function()
  it("keeps the last checkpoints of a run and still resumes from them", function()
    local store = weft.store.open(sqlite_url())
    local wf = loop(60)
    local res = wf:run(1, { store = store, run_id = "k1" })
    assert.equal("completed", res.status)
    local before = #store:range("ckpt", "k1")
    local out = durable.cleanup(store, { keep_last = 5 })
    local after = #store:range("ckpt", "k1")
    assert.is_true(after < before)
    assert.is_true(after >= 5)
    assert.equal(before - after, out.checkpoints_dropped)
    -- the record still resumes from one of the kept checkpoints
    local rec = assert(durable.record(store, "k1"))
    rec.status = "failed"
    assert(store:put("runs", "k1", weft.json.encode(rec)))
    local again = wf:resume("k1", { store = store, from = rec.checkpoints - 2 }):wait()
    assert.equal("completed", again.status)
    assert.same({ 60 }, again.outputs)
  end)

  it("deletes every trace of runs that ended before the TTL", function()
    local store = weft.store.open("memory:")
    local wf = loop(3)
    wf:run(1, { store = store, run_id = "old" })
    local h = wf:spawn(1, { store = store, run_id = "live" })
    local out = durable.cleanup(store, { ttl = 60, now = os.time() + 3600 })
    assert.equal(1, out.runs_deleted)
    assert.is_nil((store:get("runs", "old")))
    assert.equal(0, #store:range("ckpt", "old"))
    h:wait()
  end)
end)
