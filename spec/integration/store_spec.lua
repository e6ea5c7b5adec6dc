-- weft.store: the Lua API over memory:, sqlite: (a temp dir) and a real
-- redis-server this spec starts on a free port (persistence off) and stops
-- at the end — never a system Redis. The same cases run on every backend:
-- records, scans, logs, atomic batches, binary values, sizes, calls that
-- yield from executors and weft.go tasks, and misuse. Then what is
-- particular to each: sqlite files (reopen, garbage, another schema), the
-- Redis server going away and coming back, a silent server. The redis
-- cases are tagged #redis and pending when redis-server is not installed.
local weft = require "weft"
local store = require "weft.store"
local tcp = require "weft.tcp"
local proc = require "weft.core.proc"
local h = require "helpers"
local procs = require "support.procs"

local tmp -- the temp dir of this spec
local nfile = 0

-- A fresh sqlite url in the temp dir.
local function sqlite_url()
  nfile = nfile + 1
  return "sqlite:" .. tmp .. "/s" .. nfile .. ".db"
end

-- ---- the redis server -------------------------------------------------

local redis_bin do
  local p = io.popen("command -v redis-server 2>/dev/null")
  redis_bin = p and p:read("*l")
  if p then p:close() end
  if redis_bin == "" then redis_bin = nil end
end

local redis = { port = nil, pid = nil }

-- Start redis-server on redis.port and wait until it accepts connections.
function redis.start()
  local pidfile = tmp .. "/redis.pid"
  os.remove(pidfile)
  local cmd = ("%s --port %d --bind 127.0.0.1 --save '' --appendonly no "
               .. "--daemonize yes --pidfile %s --dir %s --logfile %s/redis.log")
    :format(redis_bin, redis.port, pidfile, tmp, tmp)
  assert(os.execute(cmd) == 0, "cannot start " .. cmd)
  for _ = 1, 1000 do -- readiness poll, bounded (10 s)
    local f = io.open(pidfile)
    local c = f and tcp.connect("127.0.0.1", redis.port, 1)
    if f then redis.pid = f:read("*n"); f:close() end
    if c then
      c:send("PING\r\n")
      local line = c:receive("*l", 1)
      c:close()
      if line == "+PONG" then return end
    end
    weft.sleep(0.01)
  end
  error("redis-server did not start on port " .. redis.port)
end

-- Send a signal to the server; "KILL" also waits until it is gone.
function redis.signal(sig)
  if not redis.pid then return end
  os.execute(("kill -%s %d 2>/dev/null"):format(sig, redis.pid))
  if sig == "KILL" then
    for _ = 1, 1000 do
      if os.execute(("kill -0 %d 2>/dev/null"):format(redis.pid)) ~= 0 then break end
      weft.sleep(0.01)
    end
    redis.pid = nil
  end
end

-- FLUSHALL through a raw connection (a fresh state for each case).
function redis.flush()
  local c = assert(tcp.connect("127.0.0.1", redis.port, 2))
  c:send("FLUSHALL\r\n")
  assert.equal("+OK", c:receive("*l", 2))
  c:close()
end

-- ---- the common suite -------------------------------------------------

-- Define the cases for a backend; fresh() returns a new empty store.
local function suite(fresh)
  local s
  before_each(function() s = assert(fresh()) end)
  after_each(function() if s then s:close() end end)

  describe("records", function()
    it("puts, gets, overwrites and deletes", function()
      assert.is_nil(s:get("ns", "a"))
      assert.is_true(s:put("ns", "a", "1"))
      assert.equal("1", s:get("ns", "a"))
      assert.is_true(s:put("ns", "a", "two"))
      assert.equal("two", s:get("ns", "a"))
      assert.is_nil(s:get("other", "a"))
      assert.is_true(s:del("ns", "a"))
      local v, err = s:get("ns", "a")
      assert.is_nil(v)
      assert.is_nil(err)
      assert.is_true(s:del("ns", "never there"))
    end)

    it("keeps empty and binary values", function()
      local all = {}
      for i = 0, 255 do all[#all + 1] = string.char(i) end
      all = table.concat(all)
      assert.is_true(s:put("bin", "all", all))
      assert.is_true(s:put("bin", "empty", ""))
      assert.is_true(s:put("bin", "nul", "a\0b"))
      assert.equal(all, s:get("bin", "all"))
      assert.equal("", s:get("bin", "empty"))
      assert.equal("a\0b", s:get("bin", "nul"))
      local big = string.rep("0123456789abcdef", 65536) -- 1 MiB
      assert.is_true(s:put("bin", "big", big))
      assert.equal(big, s:get("bin", "big"))
    end)

    it("scans by prefix in byte order, glob and LIKE characters literally", function()
      local keys = { "a", "a%", "a%b", "a_", "a_b", "a*", "a*x", "a[", "a[]", "a?",
                     "ab", "b", "a\255", "\255" }
      local b = s:batch()
      for _, k in ipairs(keys) do b:put("sc", k, "v" .. k) end
      b:put("sc2", "a", "other ns")
      assert.is_true((b:commit()))
      local function keys_of(rows)
        local out = {}
        for i, r in ipairs(rows) do
          assert.equal("v" .. r.key, r.value)
          out[i] = r.key
        end
        return out
      end
      assert.same({ "a%", "a%b" }, keys_of(s:scan("sc", "a%")))
      assert.same({ "a_", "a_b" }, keys_of(s:scan("sc", "a_")))
      assert.same({ "a*", "a*x" }, keys_of(s:scan("sc", "a*")))
      assert.same({ "a[", "a[]" }, keys_of(s:scan("sc", "a[")))
      assert.same({ "a\255" }, keys_of(s:scan("sc", "a\255")))
      assert.same({ "\255" }, keys_of(s:scan("sc", "\255")))
      assert.same({ "a", "a%", "a%b", "a*", "a*x", "a?", "a[", "a[]", "a_", "a_b",
                    "ab", "a\255" }, keys_of(s:scan("sc", "a")))
      assert.same({ "a", "a%", "a%b" }, keys_of(s:scan("sc", "a", 3)))
      assert.equal(#keys, #s:scan("sc"))
      assert.same({}, s:scan("sc", "zz"))
      assert.same({}, s:scan("empty_ns"))
    end)

    it("deletes by prefix, records and logs", function()
      local b = s:batch()
      for _, k in ipairs{ "run1/a", "run1/b", "run1", "run10/a", "x" } do
        b:put("dp", k, "v"):append("dp", k, "e")
      end
      assert.is_true((b:commit()))
      assert.is_true(s:del_prefix("dp", "run1/"))
      local rows = s:scan("dp")
      assert.equal(3, #rows)
      assert.same({ "run1", "run10/a", "x" }, { rows[1].key, rows[2].key, rows[3].key })
      assert.same({}, s:range("dp", "run1/a"))
      assert.equal(1, #s:range("dp", "run10/a"))
      assert.equal(1, s:append("dp", "run1/a", "numbering restarts"))
    end)
  end)

  describe("logs", function()
    it("numbers entries from 1, reads ranges and trims without renumbering", function()
      assert.same({}, s:range("lg", "l"))
      assert.equal(1, s:append("lg", "l", "a"))
      assert.equal(2, s:append("lg", "l", "b"))
      assert.equal(3, s:append("lg", "l", "c"))
      assert.same({ { seq = 1, value = "a" }, { seq = 2, value = "b" }, { seq = 3, value = "c" } },
                  s:range("lg", "l"))
      assert.same({ { seq = 2, value = "b" } }, s:range("lg", "l", 2, 2))
      assert.same({ { seq = 3, value = "c" } }, s:range("lg", "l", 3))
      assert.is_true(s:trim("lg", "l", 3))
      assert.same({ { seq = 3, value = "c" } }, s:range("lg", "l"))
      assert.equal(4, s:append("lg", "l", "d"))
      assert.is_true(s:trim("lg", "l", 100))
      assert.same({}, s:range("lg", "l"))
      assert.equal(5, s:append("lg", "l", "e"))
    end)
  end)

  describe("batches", function()
    it("apply every write and return the numbers of the appends", function()
      local ok, seqs = s:batch()
        :put("b", "k", "v")
        :append("b", "l", "x")
        :append("b", "l", "y")
        :append("b", "m", "z")
        :commit()
      assert.is_true(ok)
      assert.same({ 1, 2, 1 }, seqs)
      assert.equal("v", s:get("b", "k"))
    end)

    it("write nothing when they fail", function()
      assert.is_true(s:put("b", "k", "old"))
      assert.equal(1, s:append("b", "l", "first"))
      for after = 0, 5 do
        s:inject_failure(after)
        local ok, err, code = s:batch()
          :put("b", "k", "new")
          :append("b", "l", "second")
          :del("b", "k")
          :put("b", "k2", "new")
          :del_prefix("b", "")
          :commit()
        assert.is_nil(ok)
        assert.equal("injected failure", err)
        assert.equal("io", code)
        assert.equal("old", s:get("b", "k"))
        assert.is_nil(s:get("b", "k2"))
        assert.same({ { seq = 1, value = "first" } }, s:range("b", "l"))
      end
      assert.equal(2, s:append("b", "l", "second"))
    end)

    it("commit once", function()
      local b = s:batch():put("b", "k", "v")
      assert.is_true((b:commit()))
      assert.mentions("committed already", h.error_of(b.commit, b))
      assert.mentions("committed already", h.error_of(b.put, b, "b", "k", "v"))
      assert.same({ true, {} }, { s:batch():commit() })
    end)
  end)

  describe("conditional batches", function()
    it("write only when every expectation holds, and say conflict otherwise", function()
      assert.is_true(s:put("c", "k", "v1"))
      assert.equal(1, s:append("c", "log", "a"))
      local ok, seqs = s:batch():expect("c", "k", "v1"):expect("c", "new", false)
        :expect_last("c", "log", 1):append("c", "log", "b"):put("c", "k", "v2"):commit()
      assert.is_true(ok)
      assert.same({ 2 }, seqs)
      local err, code
      ok, err, code = s:batch():append("c", "log", "stale"):expect_last("c", "log", 1):commit()
      assert.is_nil(ok)
      assert.equal("conflict", code)
      assert.equal("conflict: log c/log has 2 entries, expected 1", err)
      ok, err, code = s:batch():put("c", "k", "v3"):expect("c", "k", "v1"):commit()
      assert.equal("conflict", code)
      assert.equal("v2", s:get("c", "k"))
      assert.equal(2, #s:range("c", "log"))
      assert.mentions("last must be an integer >= 0", h.error_of(s:batch().expect_last, s:batch(), "c", "k"))
      assert.mentions("value must be a string", h.error_of(s:batch().expect, s:batch(), "c", "k", 3))
    end)

    it("tell the store's clock in milliseconds", function()
      local now = assert(s:time())
      assert.is_true(math.abs(now - os.time() * 1000) < 86400000)
    end)
  end)

  describe("leases", function()
    local other = { id = "other-owner", host = "elsewhere", pid = 42 }

    it("give one owner at a time a lease, with increasing fencing tokens", function()
      local l = assert(s:lease_acquire("run1", 30))
      assert.equal(1, l.token)
      assert.equal(weft.store.owner().id, l.owner)
      assert.is_true(l.expires - l.now >= 29000)
      local no, err, code, holder = s:lease_acquire("run1", 30, other)
      assert.is_nil(no)
      assert.equal("held", code)
      assert.equal(l.token, holder.token)
      assert.truthy(err:find("lease run1 is held by " .. l.owner .. " (pid " .. l.pid .. " on ", 1, true), err)
      assert.truthy(err:match("until %d+%-%d+%-%d+T%d+:%d+:%d+Z %(in %d+%.%d s%)"), err)
      -- writes fenced by the token commit while it is current
      assert.is_true((s:batch():fence("run1", l.token):put("c", "w", "1"):commit()))
      assert.is_true(s:lease_renew(l, 30))
      assert.is_true(s:lease_release(l))
      assert.is_false(assert(s:lease("run1")).held)
      local l2 = assert(s:lease_acquire("run1", 30, other))
      assert.equal(2, l2.token)
      -- the old owner's fenced writes and renewals are refused
      local ok, cerr, ccode = s:batch():fence("run1", l.token):put("c", "w", "stale"):commit()
      assert.is_nil(ok)
      assert.equal("conflict", ccode, cerr)
      assert.equal("1", s:get("c", "w"))
      local rok, rerr, rcode = s:lease_renew(l, 30)
      assert.is_nil(rok)
      assert.equal("lost", rcode)
      assert.truthy(rerr:find("lost to other-owner", 1, true), rerr)
      assert.is_true(s:lease_release(l)) -- not its lease any more: nothing to do
      assert.is_true(assert(s:lease("run1")).held)
    end)

    it("let an expired lease be taken over", function()
      local l = assert(s:lease_acquire("run2", 0.01))
      local t0 = weft.now()
      while weft.now() - t0 < 0.05 do weft.sleep(0.01) end
      local l2 = assert(s:lease_acquire("run2", 30, other))
      assert.equal(l.token + 1, l2.token)
      assert.equal("lost", select(3, s:lease_renew(l, 30)))
    end)

    it("fail with code 'corrupt' on a lease record that is not one, and pass store failures through with their code", function()
      assert.is_true(s:put("lease", "bad", "not json"))
      assert.same({ nil, "corrupt lease record of bad", "corrupt" }, { s:lease("bad") })
      assert.same({ nil, "corrupt lease record of bad", "corrupt" }, { s:lease_acquire("bad", 30) })
      local l = assert(s:lease_acquire("run3", 30))
      s:inject_failure(0)
      local ok, err, code = s:lease_renew(l, 30)
      assert.is_nil(ok)
      assert.equal("injected failure", err)
      assert.equal("io", code)
    end)
  end)

  it("reports sizes", function()
    assert.equal(0, s:size("sz"))
    s:put("sz", "ab", "12345")
    s:append("sz", "log", "xyz")
    s:put("other", "k", "vvvv")
    assert.equal(13, s:size("sz"))
  end)

  describe("from tasks", function()
    it("yields in executors", function()
      local writer = weft.executor("writer", function(msg, ctx)
        assert(s:put("wf", "k", msg))
        ctx:send(s:get("wf", "k") .. "!")
      end)
      local reader = weft.executor("reader", function(msg, ctx)
        local seq = assert(s:append("wf", "log", msg))
        ctx:yield_output(seq .. ":" .. s:range("wf", "log")[1].value)
      end)
      local wf = weft.workflow("store_exec"):start(writer):edge(writer, reader):build()
      local res = wf:run("hello")
      assert.equal("completed", res.status)
      assert.same({ "1:hello!" }, res.outputs)
    end)

    it("runs many concurrent operations from weft.go tasks", function()
      local n, ts = 60, {}
      for i = 1, n do
        ts[i] = weft.go(function()
          assert(s:put("go", ("k%03d"):format(i), "v" .. i))
          local seq = assert(s:append("go", "log", tostring(i)))
          return s:get("go", ("k%03d"):format(i)), seq
        end)
      end
      local seqs = {}
      for i = 1, n do
        local v, seq = ts[i]:wait()
        assert.equal("v" .. i, v)
        seqs[seq] = true
      end
      for q = 1, n do assert.is_true(seqs[q]) end -- each number given once
      assert.equal(n, #s:scan("go", "k"))
      assert.equal(n, #s:range("go", "log"))
    end)
  end)

  describe("misuse", function()
    it("raises naming the argument", function()
      assert.mentions("get: ns must be", h.error_of(s.get, s, "bad ns", "k"))
      assert.mentions("get: ns must be", h.error_of(s.get, s, "", "k"))
      assert.mentions("get: ns must be", h.error_of(s.get, s, 42, "k"))
      assert.mentions("get: key must be a string, got nil", h.error_of(s.get, s, "ns"))
      assert.mentions("key must not contain NUL", h.error_of(s.get, s, "ns", "a\0b"))
      assert.mentions("put: value must be a string (encode tables with weft.json)",
                      h.error_of(s.put, s, "ns", "k", {}))
      assert.mentions("scan: limit must be an integer >= 0",
                      h.error_of(s.scan, s, "ns", "", -1))
      assert.mentions("range: from must be an integer",
                      h.error_of(s.range, s, "ns", "k", 1.5))
      assert.mentions("trim: keep_from must be an integer >= 1",
                      h.error_of(s.trim, s, "ns", "k"))
      assert.mentions("batch:append: value must be a string",
                      h.error_of(function() s:batch():append("ns", "k", 1) end))
      assert.mentions("call it as a method", h.error_of(s.get, "ns", "k"))
      assert.mentions("weft.store.open: url must be a string",
                      h.error_of(store.open, nil))
    end)

    it("returns nil, 'store closed', 'closed' once closed", function()
      s:close()
      assert.is_true(s:is_closed())
      local closed = { nil, "store closed", "closed" }
      assert.same(closed, { s:get("ns", "k") })
      assert.same(closed, { s:put("ns", "k", "v") })
      assert.same(closed, { s:append("ns", "l", "v") })
      assert.same(closed, { s:del("ns", "k") })
      assert.same(closed, { s:del_prefix("ns", "") })
      assert.same(closed, { s:trim("ns", "l", 1) })
      assert.same(closed, { s:scan("ns", "") })
      assert.same(closed, { s:range("ns", "l") })
      assert.same(closed, { s:size("ns") })
      assert.same(closed, { s:time() })
      assert.same(closed, { s:batch():put("ns", "k", "v"):commit() })
      assert.same(closed, { s:lease("l") })
      assert.is_true(s:close())
    end)

    it("passes a backend failure through with code 'io'", function()
      s:inject_failure(0)
      assert.same({ nil, "injected failure", "io" }, { s:put("ns", "k", "v") })
      s:inject_failure(0)
      assert.same({ nil, "injected failure", "io" }, { s:append("ns", "l", "v") })
      s:inject_failure(0)
      assert.same({ nil, "injected failure", "io" }, { s:del("ns", "k") })
    end)
  end)
end

describe("weft.store", function()
  setup(function()
    tmp = assert(proc.mkdtemp("/tmp/weft-store-spec-XXXXXX"))
  end)
  teardown(function()
    if redis.pid then redis.signal("KILL") end
    proc.rmtree(tmp)
  end)

  describe("open", function()
    it("returns nil and a clear error for a bad url", function()
      local s, err, code = store.open("mysql://x")
      assert.is_nil(s)
      assert.mentions("unknown store url 'mysql://x'", err)
      assert.equal("error", code)
      assert.mentions("bad port", select(2, store.open("redis://h:99999")))
      assert.mentions("missing path", select(2, store.open("sqlite:")))
    end)

    it("names the backend and hides passwords", function()
      local s = assert(store.open("memory:"))
      assert.equal("memory", s.kind)
      assert.equal("memory:", s.url)
      s:close()
      s = assert(store.open("redis://:secret@127.0.0.1:1/0"))
      assert.equal("redis", s.kind)
      assert.equal("redis://:***@127.0.0.1:1/0", s.url)
      local v, err = s:get("ns", "k")
      assert.is_nil(v)
      assert.mentions("redis 127.0.0.1:1: ", err)
      assert.is_nil(err:find("secret", 1, true))
      s:close()
    end)
  end)

  describe("memory:", function()
    suite(function() return store.open("memory:") end)
  end)

  describe("sqlite:", function()
    suite(function() return store.open(sqlite_url()) end)

    it("keeps the data across reopening and creates the directory", function()
      local url = "sqlite:" .. tmp .. "/deep/er/re.db"
      local s = assert(store.open(url))
      s:put("r", "k", "kept")
      s:append("r", "l", "one")
      s:close()
      s = assert(store.open(url))
      assert.equal("kept", s:get("r", "k"))
      assert.equal(2, s:append("r", "l", "two"))
      s:close()
    end)

    it("refuses a file that is not a database, unchanged", function()
      local path = tmp .. "/garbage.db"
      local f = assert(io.open(path, "wb"))
      local junk = string.rep("not a database at all\n", 400)
      f:write(junk)
      f:close()
      local s, err = store.open("sqlite:" .. path)
      assert.is_nil(s)
      assert.mentions(path, err)
      assert.mentions("file is not a database", err)
      f = assert(io.open(path, "rb"))
      assert.equal(junk, f:read("*a"))
      f:close()
    end)

    it("refuses another schema version, naming both", function()
      local path = tmp .. "/v9.db"
      if os.execute(("sqlite3 %s \"CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT); "
                     .. "INSERT INTO meta VALUES('schema_version', '9');\""):format(path)) ~= 0 then
        pending("the sqlite3 tool is not installed")
        return
      end
      local s, err = store.open("sqlite:" .. path)
      assert.is_nil(s)
      assert.mentions(path, err)
      assert.mentions("schema version 9, this weft uses version 1", err)
    end)

    it("is closed when garbage-collected", function()
      local url = sqlite_url()
      do
        local s = assert(store.open(url))
        s:put("gc", "k", "v")
      end
      collectgarbage()
      collectgarbage()
      local s = assert(store.open(url))
      assert.equal("v", s:get("gc", "k"))
      s:close()
    end)
  end)

  describe("redis #redis", function()
    if not redis_bin then
      pending("redis-server is not installed (apt-get install redis-server)")
      return
    end

    setup(function()
      redis.port = procs.free_port()
      redis.start()
    end)

    local function url(db, opts)
      return ("redis://127.0.0.1:%d/%d%s"):format(redis.port, db or 0, opts or "")
    end

    suite(function()
      redis.flush()
      return store.open(url(0))
    end)

    it("writes values larger than the socket's buffer (partial writes) and reads them back", function()
      -- a command is written in the loop turn that queued it; what the
      -- socket does not take then goes when it is writable again
      redis.flush()
      local s = assert(store.open(url(2)))
      local big = {}
      for i = 1, 3 do big[i] = ("%d"):format(i):rep(12 * 1024 * 1024) end
      local tasks = {}
      for i = 1, 3 do tasks[i] = weft.go(function() return s:put("big", "k" .. i, big[i]) end) end
      for i = 1, 3 do assert.is_true(tasks[i]:wait()) end
      for i = 1, 3 do assert.is_true(s:get("big", "k" .. i) == big[i], "value " .. i) end
      assert.equal(1, s:append("big", "l", big[1]))
      assert.equal(2, s:append("big", "l", "x"))
      s:close()
    end)

    it("fails at once while the server is down, and works again once it is back", function()
      redis.flush()
      local s = assert(store.open(url(1)))
      assert.is_true(s:put("rr", "k", "before"))
      redis.signal("KILL")
      local want = ("redis 127.0.0.1:%d: "):format(redis.port)
      for _ = 1, 3 do
        local v, err, code = s:get("rr", "k")
        assert.is_nil(v)
        assert.mentions(want, err)
        assert.equal("io", code)
        local ok, perr, pcode = s:put("rr", "k", "lost")
        assert.is_nil(ok)
        assert.mentions(want, perr)
        assert.equal("io", pcode)
      end
      redis.start()
      local ok
      for _ = 1, 1000 do -- the store reconnects in the background
        ok = s:put("rr", "k", "after")
        if ok then break end
        weft.sleep(0.01)
      end
      assert.is_true(ok)
      assert.equal("after", s:get("rr", "k"))
      s:close()
    end)

    it("fails an operation the server does not answer in time", function()
      local s = assert(store.open(url(2, "?timeout=0.2")))
      assert.is_true(s:put("slow", "k", "v"))
      redis.signal("STOP")
      local v, err, code = s:get("slow", "k")
      redis.signal("CONT")
      assert.is_nil(v)
      assert.mentions("timeout", err)
      assert.equal("io", code)
      for _ = 1, 1000 do
        v = s:get("slow", "k")
        if v then break end
        weft.sleep(0.01)
      end
      assert.equal("v", v)
      s:close()
    end)

    it("lets an executor time out while it waits, and stays usable", function()
      local s = assert(store.open(url(3, "?timeout=5")))
      assert.is_true(s:put("to", "k", "v"))
      redis.signal("STOP")
      local wf = weft.workflow("store_timeout")
        :start(weft.executor("waiter", {
          timeout = 0.05,
          handle = function(_, ctx) ctx:yield_output(s:get("to", "k")) end,
        }))
        :build()
      local res = wf:run("x")
      redis.signal("CONT")
      assert.equal("failed", res.status)
      assert.mentions("waiter", res.error)
      assert.equal("v", s:get("to", "k"))
      s:close()
    end)

    it("resumes the tasks waiting on a store that is closed", function()
      local s = assert(store.open(url(6)))
      assert.is_true(s:put("cl", "k", "v"))
      redis.signal("STOP")
      local started = false
      local t = weft.go(function()
        started = true -- and then waits inside get: the server is stopped
        return s:get("cl", "k")
      end)
      h.poll_until(function() return started end)
      s:close()
      redis.signal("CONT")
      -- closed while it waited: code "closed", not a backend failure
      assert.same({ nil, "store closed", "closed" }, { t:wait() })
    end)

    it("keeps databases apart", function()
      local a, b = assert(store.open(url(4))), assert(store.open(url(5)))
      a:put("db", "k", "four")
      assert.is_nil(b:get("db", "k"))
      assert.equal("four", a:get("db", "k"))
      a:close()
      b:close()
    end)
  end)
end)
