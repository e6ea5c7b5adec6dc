-- weft.store queues (docs/store.md "Queues") on memory:, sqlite: (a temp
-- dir) and a private redis-server this spec starts on a free port
-- (persistence off; support.procs) — never a system Redis. The same cases
-- run on every backend: order, one delivery per item across consumers,
-- reclaim of idle items, touch, ack, atomic batches, counts, redaction,
-- misuse. Then two real `weft exec` processes take from one SQLite file
-- and from one Redis at once: every item exactly once. The redis cases
-- are tagged #redis and pending when redis-server is not installed.
local weft = require "weft"
local store = require "weft.store"
local secrets = require "weft.secrets"
local proc = require "weft.core.proc"
local procs = require "support.procs"
local files = require "support.files"
require "helpers" -- assert.mentions

local tmp -- the temp dir of this spec
local nq = 0

-- A queue name not used before in this run (backends are shared).
local function qname()
  nq = nq + 1
  return "q" .. nq
end

-- Poll (yielding) until s's clock is at least ms past t0.
local function clock_past(s, t0, ms)
  for _ = 1, 5000 do
    if assert(s:time()) >= t0 + ms then return end
    weft.sleep(0.005)
  end
  error("the store's clock did not move")
end

-- The ids of a list of items.
local function ids_of(items)
  local out = {}
  for i, it in ipairs(items) do out[i] = it.id end
  return out
end

-- Define the cases for a backend; open() returns a store.
local function suite(open)
  local s, q
  before_each(function()
    s = assert(open())
    q = qname()
  end)
  after_each(function() if s then s:close() end end)

  it("gives items in push order, each once across consumers", function()
    local pushed = {}
    for i = 1, 6 do pushed[i] = assert(s:queue_push(q, "item" .. i)) end
    for i = 2, 6 do assert.is_not.equal(pushed[i - 1], pushed[i]) end
    local a = assert(s:queue_take(q, "c1", 2))
    local b = assert(s:queue_take(q, "c2", 3))
    local c = assert(s:queue_take(q, "c1", 10))
    assert.same({ pushed[1], pushed[2] }, ids_of(a))
    assert.same({ "item1", "item2" }, { a[1].payload, a[2].payload })
    assert.same({ pushed[3], pushed[4], pushed[5] }, ids_of(b))
    assert.same({ pushed[6] }, ids_of(c))
    assert.same({}, s:queue_take(q, "c2", 5))
    assert.same({}, s:queue_take(qname(), "c1")) -- a queue never pushed to
  end)

  it("reclaims only items idle for min_idle, naming their owner", function()
    local id1 = assert(s:queue_push(q, "one"))
    local id2 = assert(s:queue_push(q, "two"))
    assert.equal(2, #s:queue_take(q, "c1", 2))
    local t0 = assert(s:time())
    assert.same({}, s:queue_reclaim(q, "c2", 3600, 10))
    clock_past(s, t0, 60)
    local got = assert(s:queue_reclaim(q, "c2", 0.05, 1))
    assert.same({ { id = id1, payload = "one", owner = "c1" } }, got)
    got = assert(s:queue_reclaim(q, "c3", 0.05, 10))
    assert.same({ { id = id2, payload = "two", owner = "c1" } }, got)
    -- reclaiming restarted the idle time
    assert.same({}, s:queue_reclaim(q, "c4", 3600, 10))
    local info = assert(s:queue_info(q))
    assert.same({ waiting = 0, taken = 2, consumers = { c2 = 1, c3 = 1 } }, info)
  end)

  it("touch keeps an item from being reclaimed and never takes one back", function()
    local a = assert(s:queue_push(q, "a"))
    local b = assert(s:queue_push(q, "b"))
    assert.equal(2, #s:queue_take(q, "c1", 2))
    clock_past(s, assert(s:time()), 600)
    assert.equal(1, s:queue_touch(q, "c1", { a }))
    local got = assert(s:queue_reclaim(q, "c2", 0.5, 10))
    assert.same({ b }, ids_of(got))
    -- b is c2's now: c1 touching it does not take it back
    assert.equal(1, s:queue_touch(q, "c1", { a, b }))
    assert.equal(1, s:queue_touch(q, "c2", { a, b }))
    assert.equal(0, s:queue_touch(q, "c3", { a, b, "999" }))
    assert.equal(0, s:queue_touch(q, "c1", {}))
    assert.same({ c1 = 1, c2 = 1 }, s:queue_info(q).consumers)
  end)

  it("forgets acknowledged items and never gives their ids again", function()
    local a = assert(s:queue_push(q, "a"))
    local b = assert(s:queue_push(q, "b"))
    assert.equal(2, #s:queue_take(q, "c1", 2))
    assert.is_true(s:queue_ack(q, a))
    assert.is_true(s:queue_ack(q, a)) -- twice: no error
    assert.is_true(s:queue_ack(q, "12345")) -- unknown
    assert.is_true(s:queue_ack(qname(), "1")) -- a queue never used
    assert.same({ b }, ids_of(s:queue_reclaim(q, "c2", 0, 10)))
    assert.same({ waiting = 0, taken = 1, consumers = { c2 = 1 } }, s:queue_info(q))
    assert.is_true(s:queue_ack(q, b))
    local c = assert(s:queue_push(q, "c"))
    assert.is_not.equal(a, c)
    assert.is_not.equal(b, c)
    assert.same({ c }, ids_of(s:queue_take(q, "c1", 5)))
    assert.same({ waiting = 0, taken = 1, consumers = { c1 = 1 } }, s:queue_info(q))
  end)

  it("counts waiting and taken items per consumer", function()
    assert.same({ waiting = 0, taken = 0, consumers = {} }, s:queue_info(q))
    for i = 1, 5 do s:queue_push(q, "x" .. i) end
    assert.same({ waiting = 5, taken = 0, consumers = {} }, s:queue_info(q))
    s:queue_take(q, "w1", 2)
    s:queue_take(q, "w2", 1)
    assert.same({ waiting = 2, taken = 3, consumers = { w1 = 2, w2 = 1 } }, s:queue_info(q))
  end)

  it("pushes and acks in atomic batches with expectations", function()
    local ok, err, code = s:batch():expect("qb", "k", "never"):put("qb", "k", "v")
      :queue_push(q, "lost"):commit()
    assert.is_nil(ok)
    assert.equal("conflict", code)
    assert.mentions("conflict", err)
    assert.same({ waiting = 0, taken = 0, consumers = {} }, s:queue_info(q))
    local seqs, ids
    ok, seqs, ids = s:batch():put("qb", "k", "v"):queue_push(q, "p1"):append("qb", "l", "e")
      :queue_push(q, "p2"):commit()
    assert.is_true(ok)
    assert.same({ 1 }, seqs)
    assert.equal(2, #ids)
    local took = s:queue_take(q, "c1", 5)
    assert.same(ids, ids_of(took))
    -- an ack that fails its expectation leaves the item owned
    ok = s:batch():expect("qb", "k", "other"):queue_ack(q, ids[1]):commit()
    assert.is_nil(ok)
    assert.equal(2, s:queue_info(q).taken)
    ok, seqs, ids = s:batch():expect("qb", "k", "v"):queue_ack(q, ids[1]):queue_push(q, "p3"):commit()
    assert.is_true(ok)
    assert.same({}, seqs)
    assert.equal(1, #ids)
    assert.same({ waiting = 1, taken = 1, consumers = { c1 = 1 } }, s:queue_info(q))
    -- an injected failure pushes nothing
    s:inject_failure(1)
    assert.is_nil((s:batch():queue_push(q, "x"):queue_push(q, "y"):commit()))
    assert.equal(1, s:queue_info(q).waiting)
  end)

  it("redacts registered secrets in payloads", function()
    local secret = "sk-queue-secret-0123456789"
    secrets.add(secret)
    s:queue_push(q, "key=" .. secret .. ";")
    s:batch():queue_push(q, secret):commit()
    local got = s:queue_take(q, "c1", 2)
    assert.equal("key=[redacted];", got[1].payload)
    assert.equal("[redacted]", got[2].payload)
  end)

  it("raises on a bad queue name, consumer, id or count", function()
    local function raises(want, f, ...)
      local ok, err = pcall(f, ...)
      assert.is_false(ok)
      assert.mentions(want, err)
    end
    raises("queue_push: queue must be 1..128 characters", s.queue_push, s, "a b", "x")
    raises("got 'x{y}'", s.queue_take, s, "x{y}", "c")
    raises("queue must be", s.queue_info, s, string.rep("q", 129))
    raises("queue must be", s.queue_ack, s, "", "1")
    raises("batch:queue_push: queue must be", s.batch(s).queue_push, s:batch(), "a\0", "x")
    raises("payload must be a string", s.queue_push, s, q, {})
    raises("consumer must not be empty", s.queue_take, s, q, "")
    raises("consumer must be a string", s.queue_reclaim, s, q, nil, 1)
    raises("min_idle must be a number", s.queue_reclaim, s, q, "c", -1)
    raises("n must be an integer >= 1", s.queue_take, s, q, "c", 0)
    raises("id must be a queue item id", s.queue_ack, s, q, "abc")
    raises("id must be a queue item id", s.queue_touch, s, q, "c", { "1-", "2" })
    raises("id must be a queue item id", s.batch(s).queue_ack, s:batch(), q, "1-2-3")
    raises("ids must be a list", s.queue_touch, s, q, "c", "1")
  end)
end

-- The child of the two-process test: open url, say it is ready (file
-- DIR/ready-ME), wait for DIR/go (so that both children take at the same
-- time), then take items of queue q two at a time, acknowledge them and
-- print "id payload" per item, until the queue is empty.
local CHILD = [[
local weft = require "weft"
local store = require "weft.store"
local url, q, me, dir = arg[1], arg[2], arg[3], arg[4]
local s = assert(store.open(url))
assert(s:queue_info(q))
assert(io.open(dir .. "/ready-" .. me, "w")):close()
while not io.open(dir .. "/go") do weft.sleep(0.001) end
while true do
  local items = assert(s:queue_take(q, me, 2))
  if #items == 0 then break end
  for _, it in ipairs(items) do
    io.write(it.id, " ", it.payload, "\n")
    assert(s:queue_ack(q, it.id))
  end
end
io.stdout:flush()
s:close()
]]

-- Push N items to url, let two `weft exec` processes take them at once:
-- every item exactly once, by one of them.
local function two_processes(url)
  local N = 600
  local s = assert(store.open(url))
  local q = qname()
  local want = {}
  local b = s:batch()
  for i = 1, N do b:queue_push(q, "p" .. i) end
  local ok, _, ids = b:commit()
  assert.is_true(ok)
  for i, id in ipairs(ids) do want[id] = "p" .. i end
  local dir = tmp .. "/" .. q
  assert.equal(0, os.execute("mkdir " .. procs.quote(dir)))
  local script = files.write(dir .. "/child.lua", CHILD)
  local kids = {}
  for k = 1, 2 do
    kids[k] = procs.spawn({ procs.weft_bin(), "exec", script, url, q, "worker" .. k, dir })
  end
  for k = 1, 2 do -- a start barrier: both ready (or gone), then go
    for _ = 1, 6000 do
      if io.open(dir .. "/ready-worker" .. k) or procs.slurp(kids[k].rc) then break end
      weft.sleep(0.005)
    end
  end
  files.write(dir .. "/go", "")
  local seen, n = {}, 0
  for k = 1, 2 do
    local rc, out, err = procs.wait(kids[k], 60)
    assert.equal(0, rc, err)
    for id, payload in out:gmatch("(%S+) (%S+)\n") do
      assert.is_nil(seen[id], "item " .. id .. " was given twice")
      assert.equal(want[id], payload)
      seen[id] = true
      n = n + 1
    end
  end
  assert.equal(N, n)
  assert.same({ waiting = 0, taken = 0, consumers = {} }, s:queue_info(q))
  s:close()
end

describe("weft.store queues", function()
  setup(function()
    tmp = assert(proc.mkdtemp("/tmp/weft-queue-spec-XXXXXX"))
  end)
  teardown(function()
    proc.rmtree(tmp)
  end)

  describe("memory:", function()
    suite(function() return store.open("memory:") end)
  end)

  describe("sqlite:", function()
    local n = 0
    suite(function()
      n = n + 1
      return store.open("sqlite:" .. tmp .. "/q" .. n .. ".db")
    end)

    it("adds the queue tables to a store file made before queues existed", function()
      local path = tmp .. "/old.db"
      local schema = "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
        .. "INSERT INTO meta VALUES('schema_version', '1');"
        .. "CREATE TABLE records(ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY(ns, key));"
        .. "CREATE TABLE logs(ns TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL, value BLOB NOT NULL, PRIMARY KEY(ns, key, seq));"
        .. "CREATE TABLE log_heads(ns TEXT NOT NULL, key TEXT NOT NULL, last INTEGER NOT NULL, PRIMARY KEY(ns, key)) WITHOUT ROWID;"
        .. "INSERT INTO records VALUES('old', 'k', 'kept');"
      if os.execute(("umask 077 && sqlite3 %s %s"):format(procs.quote(path), procs.quote(schema))) ~= 0 then
        return pending("the sqlite3 tool is not installed")
      end
      local s = assert(store.open("sqlite:" .. path))
      assert.equal("kept", s:get("old", "k"))
      local id = assert(s:queue_push("old", "work"))
      assert.same({ { id = id, payload = "work" } }, s:queue_take("old", "c1"))
      s:close()
    end)

    it("gives each item once to two processes taking from one file", function()
      two_processes("sqlite:" .. tmp .. "/shared.db")
    end)
  end)

  describe("redis #redis", function()
    if os.execute("command -v redis-server >/dev/null 2>&1") ~= 0 then
      pending("redis-server is not installed (apt-get install redis-server)")
      return
    end
    local redis
    setup(function() redis = procs.redis() end)
    teardown(function() redis.stop() end)

    suite(function() return store.open(redis.url) end)

    it("gives each item once to two processes taking from one server", function()
      two_processes(redis.url)
    end)

    it("recreates the consumer group a restart lost, and carries on", function()
      local s = assert(store.open(redis.url .. "?timeout=2"))
      local q = qname()
      assert(s:queue_push(q, "before"))
      assert.equal(1, #s:queue_take(q, "c1")) -- the group exists now
      redis.stop() -- no persistence: stream and group are gone
      redis.start()
      local id
      for _ = 1, 400 do -- the store reconnects in the background
        id = s:queue_push(q, "after")
        if id then break end
        weft.sleep(0.01)
      end
      assert.is_string(id)
      assert.same({ { id = id, payload = "after" } }, s:queue_take(q, "c1", 5))
      assert.equal(0, s:queue_touch(qname(), "c1", { id })) -- no group, no stream: created
      s:close()
    end)
  end)
end)
