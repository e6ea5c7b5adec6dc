--- weft.store: the persistence layer (records, append-only logs, atomic
-- batches) over SQLite, Redis or memory. See docs/store.md.
--
--     local store = require "weft.store"
--     local s = assert(store.open("sqlite:./.weft/weft.db"))
--     s:put("threads", "t1", weft.json.encode(thread))
--     local v, err = s:get("threads", "t1")   -- v == nil, err == nil: absent
--     local ok, seqs = s:batch()
--       :put("runs", "r1", state)
--       :append("journal", "r1", entry)
--       :commit()                            -- atomic; seqs = { 7 }
--
-- Queues (work items taken by consumers, owned until acknowledged):
--     local id = s:queue_push("runs", payload)
--     for _, it in ipairs(s:queue_take("runs", "worker-1", 10)) do
--       ... s:queue_ack("runs", it.id)
--     end
--
-- Every call that touches the store yields the calling executor or
-- `weft.go` task (on the main thread it runs the loop until done), so
-- concurrent tasks share one store. Values are strings (encode tables with
-- weft.json). Expected failures return `nil, err, code` (err names the
-- backend, e.g. "redis 127.0.0.1:6379: connection refused"; code "io",
-- "closed", "conflict", "error" for open, and for leases "held", "lost",
-- "corrupt"; docs/store.md); misuse raises.
--
-- Nothing written to a store contains a registered secret (weft.secrets):
-- every store mirrors the registry into its C hook (runtime/store/store.c), which
-- replaces each occurrence in keys and values with "[redacted]" for every
-- backend. SQLite files are created private (docs/store.md "File modes");
-- open() prints the store's warning, once per process, when group or others
-- can access an existing directory or file.
--
-- The C primitives are in weft.core.store (runtime/lua/lua_store.c).
local core = require "weft.core.store"
local secrets = require "weft.secrets"

local type, error, tostring, setmetatable, getmetatable, pairs, floor, ceil =
  type, error, tostring, setmetatable, getmetatable, pairs, math.floor, math.ceil
local find, match = string.find, string.match
local raw_get, raw_scan, raw_range, raw_commit, raw_size, raw_time =
  core.get, core.scan, core.range, core.commit, core.size, core.time
local raw_take, raw_reclaim, raw_touch, raw_info =
  core.queue_take, core.queue_reclaim, core.queue_touch, core.queue_info

local _M = {}

local PUT, DEL, DEL_PREFIX, APPEND, TRIM, EXPECT, EXPECT_LAST, QPUSH, QACK = 1, 2, 3, 4, 5, 6, 7, 8, 9

-- The C stores opened here (weak: a collected store drops out), each given
-- every secret registered before or after it was opened.
local live = setmetatable({}, { __mode = "k" })
local add_secret = core.add_secret
secrets.on_add(function(v)
  for u in pairs(live) do add_secret(u, v) end
end)

-- Open-time warnings already printed (one line per distinct warning).
local warned = {}

local Store = {}
Store.__index = Store

local Batch = {}
Batch.__index = Batch

-- Raise (at the caller of the public function) unless ns is a valid
-- namespace (noun "ns") or queue name (noun "queue"): 1..128 characters
-- of A-Z a-z 0-9 _ . : / -
local function check_ns(fname, ns, lvl, noun)
  if type(ns) ~= "string" or #ns == 0 or #ns > 128 or not match(ns, "^[%w_%.:/%-]+$") then
    error(fname .. ": " .. (noun or "ns") .. " must be 1..128 characters of A-Z a-z 0-9 _ . : / -, got "
          .. (type(ns) == "string" and ("'" .. ns .. "'") or type(ns)), lvl or 3)
  end
end

-- Raise unless v is a string without NUL bytes (what names the argument).
local function check_key(fname, what, v, lvl)
  if type(v) ~= "string" then
    error(fname .. ": " .. what .. " must be a string, got " .. type(v), lvl or 3)
  end
  if find(v, "\0", 1, true) then
    error(fname .. ": " .. what .. " must not contain NUL bytes", lvl or 3)
  end
end

-- Raise unless v is a string (values: encode tables with weft.json).
local function check_value(fname, v, lvl)
  if type(v) ~= "string" then
    error(fname .. ": value must be a string (encode tables with weft.json), got "
          .. type(v), lvl or 3)
  end
end

-- Raise unless v is an integer >= min (or nil, unless required).
local function check_int(fname, what, v, min, required, lvl)
  if (v == nil and required)
     or (v ~= nil and (type(v) ~= "number" or v ~= v or floor(v) ~= v or v < min or v > 2^53)) then
    error(fname .. ": " .. what .. " must be an integer >= " .. min .. ", got "
          .. tostring(v), lvl or 3)
  end
end

-- Raise unless self is an open-or-closed store object.
local function check_self(fname, self)
  if getmetatable(self) ~= Store then
    error(fname .. ": call it as a method (store:" .. fname:match("[%w_]+$") .. "(...))", 3)
  end
end

--- Open a store: "sqlite:PATH", "redis://[[user]:password@]host[:port][/db]
-- [?timeout=SECONDS]" or "memory:". Returns the store, or nil, err;
-- store.warning is what opening found worth a warning (printed to stderr
-- once per process), or nil.
function _M.open(url)
  if type(url) ~= "string" then
    error("weft.store.open: url must be a string, got " .. type(url), 2)
  end
  local u, err, code = core.open(url)
  if not u then return nil, err, code end
  local list = secrets.list()
  for i = 1, #list do add_secret(u, list[i]) end
  live[u] = true
  local warning = core.warning(u)
  if warning and not warned[warning] then
    warned[warning] = true
    io.stderr:write("weft: warning: ", warning, "\n")
  end
  return setmetatable({ _u = u, kind = core.kind(u), url = core.url(u), warning = warning }, Store)
end

--- The value of record (ns, key): a string, nil when absent, or nil, err.
function Store:get(ns, key)
  check_self("get", self)
  check_ns("get", ns)
  check_key("get", "key", key)
  return raw_get(self._u, ns, key)
end

--- The records of ns whose key starts with prefix (default ""), in byte
-- order, at most limit (default: all): a list of {key =, value =}, or nil,
-- err.
function Store:scan(ns, prefix, limit)
  check_self("scan", self)
  check_ns("scan", ns)
  if prefix == nil then prefix = "" end
  check_key("scan", "prefix", prefix)
  check_int("scan", "limit", limit, 0)
  return raw_scan(self._u, ns, prefix, limit or 0)
end

--- Entries of log (ns, key) numbered from..to inclusive (defaults: the
-- first, the last): a list of {seq =, value =} (empty for a log that does
-- not exist), or nil, err.
function Store:range(ns, key, from, to)
  check_self("range", self)
  check_ns("range", ns)
  check_key("range", "key", key)
  check_int("range", "from", from, 0)
  check_int("range", "to", to, 0)
  return raw_range(self._u, ns, key, from or 1, to or 0)
end

--- Bytes held for ns (key and value lengths of its records and log
-- entries), or nil, err.
function Store:size(ns)
  check_self("size", self)
  check_ns("size", ns)
  return raw_size(self._u, ns)
end

--- The store's clock in milliseconds since the epoch (Redis: the server's
-- TIME, shared by every machine; SQLite, memory: this machine's), or nil,
-- err.
function Store:time()
  check_self("time", self)
  return raw_time(self._u)
end

-- ---- leases -------------------------------------------------------------
-- A lease (namespace "lease", key = its name) gives one owner the right to
-- write something (a run) until it expires; its fencing token (namespace
-- "fence", rewritten only when the lease changes hands) increases by one
-- at every acquisition, and writers make their batches conditional on it
-- (batch:fence). Expiry is judged by the store's clock (Store:time).

local LEASE_NS, FENCE_NS = "lease", "fence"
local json -- weft.json, loaded on first use (it loads this module's users)

local function codec()
  json = json or require "weft.json"
  return json
end

-- The first line of a file, or nil.
local function read_line(path)
  local fh = io.open(path, "r")
  if not fh then return nil end
  local l = fh:read("*l")
  fh:close()
  return l
end

local me
--- This process as a lease owner: {id = "HOST:PID:RANDOM", host =, pid =}.
function _M.owner()
  if me then return me end
  local host = read_line("/proc/sys/kernel/hostname") or os.getenv("HOSTNAME") or "localhost"
  local stat = read_line("/proc/self/stat")
  local pid = tonumber(stat and stat:match("^(%d+)")) or 0
  local rnd = require("weft.urandom").hex(6) or ("%x"):format(math.random(0, 0x7fffffff))
  me = { id = ("%s:%d:%s"):format(host, pid, rnd), host = host, pid = pid }
  return me
end

--- A one-line description of who holds lease `l` (as returned with
-- "held"): "OWNER (pid P on HOST) until 2026-12-04T20:50:01Z (in 12.5 s)".
function _M.describe_lease(l)
  local left = ((l.expires or 0) - (l.now or 0)) / 1000
  local at = os.time() + math.floor(left + 0.5)
  return ("%s (pid %s on %s) until %s (in %.1f s)"):format(tostring(l.owner), tostring(l.pid),
    tostring(l.host), os.date("!%Y-%m-%dT%H:%M:%SZ", at), left)
end

-- The lease record (ns "lease", key name): body, decoded table | nil, nil
-- when there is none | nil, nil, err, code.
local function lease_read(self, name)
  local body, err, code = raw_get(self._u, LEASE_NS, name)
  if body == nil then return nil, nil, err, code end
  local ok, rec = pcall(codec().decode, body)
  if not ok or type(rec) ~= "table" then return nil, nil, "corrupt lease record of " .. name, "corrupt" end
  return body, rec
end

--- The lease `name` as stored: {name, token, owner, host, pid, expires,
-- now, held = bool} (held: unexpired and not released), or nil when it was
-- never taken, or nil, err.
function Store:lease(name)
  check_self("lease", self)
  check_key("lease", "name", name)
  local now, terr, tcode = raw_time(self._u)
  if not now then return nil, terr, tcode end
  local body, rec, err, code = lease_read(self, name)
  if not body then return nil, err, code end
  rec.name, rec.now, rec.held = name, now, rec.expires > now
  return rec
end

-- Write the lease record `new` (and, with token, the fencing token) if the
-- record is still `cur` (false: absent): true | nil, err, code.
local function lease_write(self, name, cur, new, token)
  local ops = { EXPECT, LEASE_NS, name, cur or false, PUT, LEASE_NS, name, codec().encode(new) }
  if token then
    ops[9], ops[10], ops[11], ops[12] = PUT, FENCE_NS, name, tostring(token)
  end
  return raw_commit(self._u, ops, token and 3 or 2)
end

--- Acquire lease `name` for owner (`store.owner()` by default) for ttl
-- seconds: the lease {name, token, owner, host, pid, expires, now}, or
-- nil, err, "held", holder when another owner holds an unexpired one
-- (err says who and until when), or nil, err (store failure). The token
-- is one more than the last holder's; an owner re-acquiring its own lease
-- gets a new token too.
function Store:lease_acquire(name, ttl, owner)
  check_self("lease_acquire", self)
  check_key("lease_acquire", "name", name)
  if type(ttl) ~= "number" or not (ttl > 0) then
    error("lease_acquire: ttl must be a number of seconds > 0, got " .. tostring(ttl), 2)
  end
  owner = owner or _M.owner()
  for _ = 1, 8 do
    local now, terr, tcode = raw_time(self._u)
    if not now then return nil, terr, tcode end
    local cur, rec, err, rcode = lease_read(self, name)
    if err then return nil, err, rcode end
    if rec and rec.owner ~= owner.id and rec.expires > now then
      rec.name, rec.now, rec.held = name, now, true
      return nil, ("lease %s is held by %s"):format(name, _M.describe_lease(rec)), "held", rec
    end
    local new = { token = (rec and rec.token or 0) + 1, owner = owner.id, host = owner.host,
                  pid = owner.pid, expires = now + math.floor(ttl * 1000), acquired = now }
    local ok, cerr, code = lease_write(self, name, cur, new, new.token)
    if ok then
      new.name, new.now = name, now
      return new
    end
    if code ~= "conflict" then return nil, cerr, code end
  end
  return nil, "lease " .. name .. ": contended (changed 8 times while acquiring)", "conflict"
end

--- Extend lease l (from lease_acquire) by ttl seconds from now: true
-- (l.expires updated), or nil, err, "lost", holder when it changed hands
-- or was released, or nil, err (store failure: retry before it expires).
function Store:lease_renew(l, ttl)
  check_self("lease_renew", self)
  for _ = 1, 8 do
    local now, terr, tcode = raw_time(self._u)
    if not now then return nil, terr, tcode end
    local cur, rec, err, rcode = lease_read(self, l.name)
    if err then return nil, err, rcode end
    if not rec or rec.token ~= l.token or rec.expires == 0 then
      if rec then rec.name, rec.now, rec.held = l.name, now, rec.expires > now end
      return nil, ("lease %s was lost%s"):format(l.name,
        rec and rec.token ~= l.token and (" to " .. _M.describe_lease(rec)) or ""), "lost", rec
    end
    rec.expires = now + math.floor(ttl * 1000)
    local ok, cerr, code = lease_write(self, l.name, cur, rec)
    if ok then
      l.expires, l.now = rec.expires, now
      return true
    end
    if code ~= "conflict" then return nil, cerr, code end
  end
  return nil, "lease " .. l.name .. ": contended (changed 8 times while renewing)", "conflict"
end

--- Give lease l up (it expires now; its token stays, so the next owner's
-- is higher): true (also when it was lost already), or nil, err.
function Store:lease_release(l)
  check_self("lease_release", self)
  for _ = 1, 8 do
    local cur, rec, err, rcode = lease_read(self, l.name)
    if err then return nil, err, rcode end
    if not rec or rec.token ~= l.token or rec.expires == 0 then return true end
    rec.expires = 0
    local ok, cerr, code = lease_write(self, l.name, cur, rec)
    if ok then return true end
    if code ~= "conflict" then return nil, cerr, code end
  end
  return nil, "lease " .. l.name .. ": contended (changed 8 times while releasing)", "conflict"
end

--- A new batch of writes, applied atomically by batch:commit().
function Store:batch()
  check_self("batch", self)
  return setmetatable({ _s = self, ops = {}, n = 0 }, Batch)
end

-- Raise (at the caller of the public write method, which tail-calls the
-- function calling this) unless ns, key and arg suit write op.
local function check_write(fname, op, ns, key, arg)
  check_ns(fname, ns, 4)
  check_key(fname, op == DEL_PREFIX and "prefix" or "key", key, 4)
  if op == PUT or op == APPEND or (op == EXPECT and arg ~= false) then
    check_value(fname, arg, 4)
  elseif op == TRIM then
    check_int(fname, "keep_from", arg, 1, true, 4)
  elseif op == EXPECT_LAST then
    check_int(fname, "last", arg, 0, true, 4)
  end
end

-- Commit the one write (op, ns, key, arg) of store s, for method fname
-- (tail-called by it): true (for APPEND the entry's number), or nil, err,
-- code.
local function commit_one(s, fname, op, ns, key, arg)
  check_self(fname, s)
  check_write(fname, op, ns, key, arg)
  local ok, seqs, code = raw_commit(s._u, { op, ns, key, arg }, 1)
  if not ok then return nil, seqs, code end
  if op == APPEND then return seqs[1] end
  return true
end

-- ---- queues -------------------------------------------------------------
-- A queue (named like an ns) holds items pushed at its tail; a consumer
-- takes the oldest waiting ones and owns them until it acknowledges them
-- (queue_ack); items whose owner stopped touching them for min_idle
-- seconds can be reclaimed by another consumer. docs/store.md "Queues".

-- Raise unless v is a non-empty string without NUL bytes (a consumer).
local function check_consumer(fname, v)
  check_key(fname, "consumer", v, 4)
  if v == "" then error(fname .. ": consumer must not be empty", 4) end
end

-- Raise (lvl: see check_ns) unless id is a queue item id: 1..19 digits,
-- optionally "-" and 1..19 digits.
local function check_id(fname, id, lvl)
  local a, b
  if type(id) == "string" then a, b = match(id, "^(%d+)%-?(%d*)$") end
  if not a or #a > 19 or #b > 19 or (b == "" and find(id, "-", 1, true)) then
    error(fname .. ": id must be a queue item id (digits, or digits-digits), got "
          .. (type(id) == "string" and ("'" .. id .. "'") or type(id)), lvl or 3)
  end
end

-- Raise unless v is an integer >= 1 (nil: 1); returns it.
local function check_n(fname, v)
  check_int(fname, "n", v, 1, false, 4)
  return v or 1
end

--- Append an item holding payload (a string, redacted like a value) at
-- the tail of queue q: its id (a string), or nil, err, code.
function Store:queue_push(q, payload)
  check_self("queue_push", self)
  check_ns("queue_push", q, 3, "queue")
  if type(payload) ~= "string" then
    error("queue_push: payload must be a string, got " .. type(payload), 2)
  end
  local ok, seqs, ids = raw_commit(self._u, { QPUSH, q, "", payload }, 1)
  if not ok then return nil, seqs, ids end
  return ids[1]
end

--- Acknowledge item id of queue q: it is gone for good. true (also for an
-- unknown or already acknowledged id), or nil, err, code.
function Store:queue_ack(q, id)
  check_self("queue_ack", self)
  check_ns("queue_ack", q, 3, "queue")
  check_id("queue_ack", id)
  local ok, err, code = raw_commit(self._u, { QACK, q, id, false }, 1)
  if not ok then return nil, err, code end
  return true
end

--- Take up to n (default 1) waiting items of queue q, oldest first, now
-- owned by consumer: a list of {id =, payload =} (empty when none wait;
-- never waits for items), or nil, err, code.
function Store:queue_take(q, consumer, n)
  check_self("queue_take", self)
  check_ns("queue_take", q, 3, "queue")
  check_consumer("queue_take", consumer)
  return raw_take(self._u, q, consumer, check_n("queue_take", n))
end

--- Take over up to n (default 1) items of queue q, whoever owns them,
-- that nobody touched for at least min_idle seconds (by the store's
-- clock), oldest first; their idle time restarts. A list of {id =,
-- payload =, owner = the previous consumer}, or nil, err, code.
function Store:queue_reclaim(q, consumer, min_idle, n)
  check_self("queue_reclaim", self)
  check_ns("queue_reclaim", q, 3, "queue")
  check_consumer("queue_reclaim", consumer)
  if type(min_idle) ~= "number" or not (min_idle >= 0) or min_idle > 2^31 then
    error("queue_reclaim: min_idle must be a number of seconds >= 0, got " .. tostring(min_idle), 2)
  end
  return raw_reclaim(self._u, q, consumer, ceil(min_idle * 1000), check_n("queue_reclaim", n))
end

--- Restart the idle time of those of ids (a list) that consumer still
-- owns: how many, or nil, err, code. Items reclaimed by another consumer
-- meanwhile stay theirs.
function Store:queue_touch(q, consumer, ids)
  check_self("queue_touch", self)
  check_ns("queue_touch", q, 3, "queue")
  check_consumer("queue_touch", consumer)
  if type(ids) ~= "table" then
    error("queue_touch: ids must be a list of ids, got " .. type(ids), 2)
  end
  for i = 1, #ids do check_id("queue_touch", ids[i]) end
  return raw_touch(self._u, q, consumer, ids)
end

--- Counts of queue q: {waiting = items never taken, taken = items owned
-- and not acknowledged, consumers = {[name] = items it owns}}, or nil,
-- err, code.
function Store:queue_info(q)
  check_self("queue_info", self)
  check_ns("queue_info", q, 3, "queue")
  return raw_info(self._u, q)
end

--- Close the store (operations still pending complete first); true.
function Store:close()
  check_self("close", self)
  return core.close(self._u)
end

--- True once closed.
function Store:is_closed()
  check_self("is_closed", self)
  return core.is_closed(self._u)
end

--- For tests: the next commit fails with "injected failure" after `after`
-- of its writes (and is rolled back: nothing is written).
function Store:inject_failure(after)
  check_self("inject_failure", self)
  check_int("inject_failure", "after", after or -1, 0)
  core.inject_failure(self._u, after)
end

-- ---- batches ----------------------------------------------------------

-- Add one write (checked already) to batch b for method fname (tail-called
-- by it; raises once committed); returns b.
local function push(b, fname, op, ns, key, arg)
  if getmetatable(b) ~= Batch then error(fname .. ": call it as a method", 2) end
  if b.done then error(fname .. ": the batch was committed already", 2) end
  local ops, i = b.ops, b.n * 4
  ops[i + 1], ops[i + 2], ops[i + 3], ops[i + 4] = op, ns, key, arg
  b.n = b.n + 1
  return b
end

-- push after check_write (the same contract).
local function add(b, fname, op, ns, key, arg)
  check_write(fname, op, ns, key, arg)
  return push(b, fname, op, ns, key, arg)
end

--- The single writes, as store methods (they commit at once: true, for
-- append the entry's number, or nil, err) and as batch methods (they
-- return the batch):
--   put(ns, key, value)     record (ns, key) = value
--   append(ns, key, value)  add an entry to log (ns, key)
--   del(ns, key)            delete record (ns, key) and log (ns, key)
--   del_prefix(ns, prefix)  delete the records and logs of ns whose key
--                           starts with prefix
--   trim(ns, key, keep_from) drop the entries of log (ns, key) numbered
--                           below keep_from
for name, op in pairs { put = PUT, append = APPEND, del = DEL, del_prefix = DEL_PREFIX, trim = TRIM } do
  local bname, none = "batch:" .. name, op == DEL or op == DEL_PREFIX
  Store[name] = function(self, ns, key, arg)
    if none then arg = false end
    return commit_one(self, name, op, ns, key, arg)
  end
  Batch[name] = function(self, ns, key, arg)
    if none then arg = false end
    return add(self, bname, op, ns, key, arg)
  end
end

--- Push an item to queue q when the batch commits (its id is in the
-- third result of commit). Returns the batch.
function Batch:queue_push(q, payload)
  check_ns("batch:queue_push", q, 3, "queue")
  if type(payload) ~= "string" then
    error("batch:queue_push: payload must be a string, got " .. type(payload), 2)
  end
  return push(self, "batch:queue_push", QPUSH, q, "", payload)
end

--- Acknowledge item id of queue q when the batch commits. Returns the
-- batch.
function Batch:queue_ack(q, id)
  check_ns("batch:queue_ack", q, 3, "queue")
  check_id("batch:queue_ack", id)
  return push(self, "batch:queue_ack", QACK, q, id, false)
end

--- Make the batch conditional: record (ns, key) must hold exactly value
-- (false: must not exist) when it commits. Returns the batch.
function Batch:expect(ns, key, value)
  return add(self, "batch:expect", EXPECT, ns, key, value)
end

--- Make the batch conditional: log (ns, key) must have given exactly
-- `last` numbers (0: none) when it commits. Returns the batch.
function Batch:expect_last(ns, key, last)
  return add(self, "batch:expect_last", EXPECT_LAST, ns, key, last)
end

--- Make the batch conditional on holding lease `name` with fencing token
-- `token` (a newer owner has a higher one). Returns the batch.
function Batch:fence(name, token)
  check_key("batch:fence", "name", name)
  check_int("batch:fence", "token", token, 1)
  return push(self, "batch:fence", EXPECT, FENCE_NS, name, tostring(token))
end

--- Number of writes in the batch.
function Batch:count()
  return self.n
end

--- Apply every write atomically: true, the list of the numbers given to
-- the appended entries (in order) and, when the batch pushed to queues,
-- the list of the ids given to the pushes (in order), or nil, err (then
-- nothing was written;
-- on Redis see docs/store.md), or nil, err, "conflict" when an expectation
-- (expect, expect_last, fence) did not hold (nothing was written). A batch
-- commits once.
function Batch:commit()
  if getmetatable(self) ~= Batch then error("batch:commit: call it as a method", 2) end
  if self.done then error("batch:commit: the batch was committed already", 2) end
  self.done = true
  local ok, seqs, ids = raw_commit(self._s._u, self.ops, self.n)
  self.ops = nil
  if not ok then return nil, seqs, ids end
  if ids[1] == nil then return true, seqs end -- as before queues
  return true, seqs, ids
end

return _M
