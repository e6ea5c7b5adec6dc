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
-- Every call that touches the store yields the calling executor or
-- `weft.go` task (on the main thread it runs the loop until done), so
-- concurrent tasks share one store. Values are strings (encode tables with
-- weft.json). Expected failures return `nil, err` (err names the backend,
-- e.g. "redis 127.0.0.1:6379: connection refused"); misuse raises.
--
-- Nothing written to a store contains a registered secret (weft.secrets):
-- every store mirrors the registry into its C hook (runtime/store.c), which
-- replaces each occurrence in keys and values with "[redacted]" for every
-- backend. SQLite files are created private (docs/store.md "File modes");
-- open() prints the store's warning, once per process, when group or others
-- can access an existing directory or file.
--
-- The C primitives are in weft.core.store (runtime/lua_store.c).
local core = require "weft.core.store"
local secrets = require "weft.secrets"

local type, error, tostring, setmetatable, getmetatable, pairs, floor =
  type, error, tostring, setmetatable, getmetatable, pairs, math.floor
local find, match = string.find, string.match
local raw_get, raw_scan, raw_range, raw_commit, raw_size =
  core.get, core.scan, core.range, core.commit, core.size

local _M = {}

local PUT, DEL, DEL_PREFIX, APPEND, TRIM = 1, 2, 3, 4, 5

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
-- namespace: 1..128 characters of A-Z a-z 0-9 _ . : / -
local function check_ns(fname, ns)
  if type(ns) ~= "string" or #ns == 0 or #ns > 128 or not match(ns, "^[%w_%.:/%-]+$") then
    error(fname .. ": ns must be 1..128 characters of A-Z a-z 0-9 _ . : / -, got "
          .. (type(ns) == "string" and ("'" .. ns .. "'") or type(ns)), 3)
  end
end

-- Raise unless v is a string without NUL bytes (what names the argument).
local function check_key(fname, what, v)
  if type(v) ~= "string" then
    error(fname .. ": " .. what .. " must be a string, got " .. type(v), 3)
  end
  if find(v, "\0", 1, true) then
    error(fname .. ": " .. what .. " must not contain NUL bytes", 3)
  end
end

-- Raise unless v is a string (values: encode tables with weft.json).
local function check_value(fname, v)
  if type(v) ~= "string" then
    error(fname .. ": value must be a string (encode tables with weft.json), got "
          .. type(v), 3)
  end
end

-- Raise unless v is nil or an integer >= min.
local function check_int(fname, what, v, min)
  if v ~= nil and (type(v) ~= "number" or v ~= v or floor(v) ~= v or v < min or v > 2^53) then
    error(fname .. ": " .. what .. " must be an integer >= " .. min .. ", got "
          .. tostring(v), 3)
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
  local u, err = core.open(url)
  if not u then return nil, err end
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

--- A new batch of writes, applied atomically by batch:commit().
function Store:batch()
  check_self("batch", self)
  return setmetatable({ _s = self, ops = {}, n = 0 }, Batch)
end

--- Put one record: true, or nil, err.
function Store:put(ns, key, value)
  check_self("put", self)
  check_ns("put", ns)
  check_key("put", "key", key)
  check_value("put", value)
  local ok, err = raw_commit(self._u, { PUT, ns, key, value }, 1)
  if not ok then return nil, err end
  return true
end

--- Append one entry to log (ns, key): its number, or nil, err.
function Store:append(ns, key, value)
  check_self("append", self)
  check_ns("append", ns)
  check_key("append", "key", key)
  check_value("append", value)
  local ok, seqs = raw_commit(self._u, { APPEND, ns, key, value }, 1)
  if not ok then return nil, seqs end
  return seqs[1]
end

--- Delete record (ns, key) and log (ns, key): true, or nil, err.
function Store:del(ns, key)
  check_self("del", self)
  check_ns("del", ns)
  check_key("del", "key", key)
  local ok, err = raw_commit(self._u, { DEL, ns, key, false }, 1)
  if not ok then return nil, err end
  return true
end

--- Delete every record and log of ns whose key starts with prefix: true, or
-- nil, err.
function Store:del_prefix(ns, prefix)
  check_self("del_prefix", self)
  check_ns("del_prefix", ns)
  check_key("del_prefix", "prefix", prefix)
  local ok, err = raw_commit(self._u, { DEL_PREFIX, ns, prefix, false }, 1)
  if not ok then return nil, err end
  return true
end

--- Drop the entries of log (ns, key) numbered below keep_from: true, or
-- nil, err.
function Store:trim(ns, key, keep_from)
  check_self("trim", self)
  check_ns("trim", ns)
  check_key("trim", "key", key)
  if keep_from == nil then error("trim: keep_from must be an integer >= 1, got nil", 2) end
  check_int("trim", "keep_from", keep_from, 1)
  local ok, err = raw_commit(self._u, { TRIM, ns, key, keep_from }, 1)
  if not ok then return nil, err end
  return true
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

-- Add one write to batch b (raises once committed).
local function add(b, fname, code, ns, key, arg)
  if getmetatable(b) ~= Batch then
    error("batch:" .. fname .. ": call it as a method", 3)
  end
  if b.done then error("batch:" .. fname .. ": the batch was committed already", 3) end
  local ops, i = b.ops, b.n * 4
  ops[i + 1], ops[i + 2], ops[i + 3], ops[i + 4] = code, ns, key, arg
  b.n = b.n + 1
  return b
end

--- Put record (ns, key) = value; returns the batch.
function Batch:put(ns, key, value)
  check_ns("batch:put", ns)
  check_key("batch:put", "key", key)
  check_value("batch:put", value)
  return add(self, "put", PUT, ns, key, value)
end

--- Delete record (ns, key) and log (ns, key); returns the batch.
function Batch:del(ns, key)
  check_ns("batch:del", ns)
  check_key("batch:del", "key", key)
  return add(self, "del", DEL, ns, key, false)
end

--- Delete the records and logs of ns whose key starts with prefix; returns
-- the batch.
function Batch:del_prefix(ns, prefix)
  check_ns("batch:del_prefix", ns)
  check_key("batch:del_prefix", "prefix", prefix)
  return add(self, "del_prefix", DEL_PREFIX, ns, prefix, false)
end

--- Append value to log (ns, key); its number is in commit's list; returns
-- the batch.
function Batch:append(ns, key, value)
  check_ns("batch:append", ns)
  check_key("batch:append", "key", key)
  check_value("batch:append", value)
  return add(self, "append", APPEND, ns, key, value)
end

--- Drop the entries of log (ns, key) numbered below keep_from; returns the
-- batch.
function Batch:trim(ns, key, keep_from)
  check_ns("batch:trim", ns)
  check_key("batch:trim", "key", key)
  if keep_from == nil then error("batch:trim: keep_from must be an integer >= 1, got nil", 2) end
  check_int("batch:trim", "keep_from", keep_from, 1)
  return add(self, "trim", TRIM, ns, key, keep_from)
end

--- Number of writes in the batch.
function Batch:count()
  return self.n
end

--- Apply every write atomically: true and the list of the numbers given to
-- the appended entries (in order), or nil, err (then nothing was written;
-- on Redis see docs/store.md). A batch commits once.
function Batch:commit()
  if getmetatable(self) ~= Batch then error("batch:commit: call it as a method", 2) end
  if self.done then error("batch:commit: the batch was committed already", 2) end
  self.done = true
  local ok, seqs = raw_commit(self._s._u, self.ops, self.n)
  self.ops = nil
  if not ok then return nil, seqs end
  return true, seqs
end

return _M
