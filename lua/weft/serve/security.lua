--- weft.serve.security — API keys, scopes, rate limits, CORS and the audit
-- log of `weft serve`. Keys come from a JSON list `[{id, key | sha256,
-- scopes = {"read" | "run" | "admin"}, rate = {per_second, burst}}]` (a
-- keys file, opts.keys, or env WEFT_API_KEYS) and are held only as SHA-256
-- digests; requests carry `Authorization: Bearer <key>` or `X-API-Key`.
-- `install(app, opts)` adds a before hook (CORS preflight, 401/403/429),
-- an after hook (audit of mutating calls, store namespace "audit", one log
-- per UTC day) and `GET /api/v1/audit` (admin). Also `sha256(s)` (hex) and
-- `audit_guard(app, event)` (guardrail events in the audit log).
-- Uses bit (LuaJIT), weft, weft.json, weft.serve.{errors, app}.
local json = require "weft.json"
local errors = require "weft.serve.errors"

local type, pairs, ipairs, tostring, tonumber, error, pcall = type, pairs, ipairs, tostring, tonumber, error, pcall
local fmt, rep = string.format, string.rep
local concat, floor, ceil = table.concat, math.floor, math.ceil
local throw = errors.throw

local _M = {}

--- The SHA-256 digest of string s, as 64 lower-case hex digits.
_M.sha256 = require "weft.sha256"

-- Keys ------------------------------------------------------------------------

local SCOPES = { read = 1, run = 2, admin = 3 }
_M.SCOPES = SCOPES

-- Raise a configuration error naming the source and the problem.
local function bad(source, msg) error(("API keys (%s): %s"):format(source, msg), 0) end

--- Parse a key list (a JSON string or a decoded table) into key records
-- {id, hash, level, rate = {per_second, burst}}; raises naming the problem
-- (never the secret).
function _M.parse_keys(v, source)
  source = source or "keys"
  if type(v) == "string" then
    local d, err = json.decode(v)
    if d == nil then bad(source, "invalid JSON: " .. tostring(err)) end
    v = d
  end
  if type(v) ~= "table" or (next(v) ~= nil and not json.is_array(v)) then
    bad(source, "must be a JSON list of {id, key | sha256, scopes}")
  end
  if #v == 0 then bad(source, "the list of keys is empty") end
  local out, ids, hashes = {}, {}, {}
  for i, k in ipairs(v) do
    local where = ("keys[%d]"):format(i)
    if type(k) ~= "table" then bad(source, where .. " must be an object") end
    for f in pairs(k) do
      if f ~= "id" and f ~= "key" and f ~= "sha256" and f ~= "scopes" and f ~= "rate" then
        bad(source, ("%s: unknown field '%s' (id, key, sha256, scopes, rate)"):format(where, tostring(f)))
      end
    end
    if type(k.id) ~= "string" or not k.id:match("^[%w_.%-]+$") or #k.id > 64 then
      bad(source, where .. ".id must be 1-64 characters of A-Z a-z 0-9 _ . -")
    end
    where = ("key '%s'"):format(k.id)
    if ids[k.id] then bad(source, where .. " is listed twice") end
    ids[k.id] = true
    local hash
    if k.key ~= nil and k.sha256 ~= nil then bad(source, where .. ": give key or sha256, not both") end
    if k.key ~= nil then
      if type(k.key) ~= "string" or #k.key < 8 then bad(source, where .. ": key must be a string of 8 characters or more") end
      hash = _M.sha256(k.key)
    elseif k.sha256 ~= nil then
      if type(k.sha256) ~= "string" or not k.sha256:match("^" .. rep("%x", 64) .. "$") then
        bad(source, where .. ": sha256 must be 64 hex digits")
      end
      hash = k.sha256:lower()
    else
      bad(source, where .. ": key or sha256 is required")
    end
    if hashes[hash] then bad(source, where .. ": the same secret as key '" .. hashes[hash] .. "'") end
    hashes[hash] = k.id
    if type(k.scopes) ~= "table" or #k.scopes == 0 then
      bad(source, where .. ": scopes must be a non-empty list of read, run, admin")
    end
    local level = 0
    for _, s in ipairs(k.scopes) do
      if not SCOPES[s] then bad(source, ("%s: unknown scope '%s' (read, run, admin)"):format(where, tostring(s))) end
      if SCOPES[s] > level then level = SCOPES[s] end
    end
    local rate
    if k.rate ~= nil then
      local r = k.rate
      if type(r) ~= "table" or type(r.per_second) ~= "number" or r.per_second <= 0
         or (r.burst ~= nil and (type(r.burst) ~= "number" or r.burst < 1)) then
        bad(source, where .. ": rate must be {per_second > 0, burst >= 1}")
      end
      rate = { per_second = r.per_second, burst = r.burst or math.max(1, ceil(r.per_second)) }
    end
    out[#out + 1] = { id = k.id, hash = hash, level = level, rate = rate }
  end
  return out
end

--- The key records of opts: opts.keys (list or JSON), opts.keys_file (a
-- path), else env WEFT_API_KEYS; nil when none are configured. Raises
-- naming the problem.
function _M.load(opts)
  opts = opts or {}
  if opts.keys ~= nil then return _M.parse_keys(opts.keys, "keys") end
  if opts.keys_file ~= nil then
    local f, err = io.open(opts.keys_file, "rb")
    if not f then bad(opts.keys_file, "cannot read: " .. tostring(err)) end
    local text = f:read("*a")
    f:close()
    return _M.parse_keys(text, opts.keys_file)
  end
  local env = os.getenv("WEFT_API_KEYS")
  if env ~= nil and env ~= "" then return _M.parse_keys(env, "WEFT_API_KEYS") end
  return nil
end

-- Scopes ----------------------------------------------------------------------

--- The scope (read, run, admin) that method on path needs, or nil when the
-- path is open (health).
function _M.needed_scope(method, path)
  if path == "/api/v1/health" or path == "/api/v1/health/" then return nil end
  if path:match("^/api/v1/audit") then return "admin" end
  -- A2A (weft.serve.a2a): cards are public; a JSON-RPC call needs a read key
  -- (the module refuses SendMessage without the run scope)
  if path:match("^/a2a/[^/]+/%.well%-known/agent%-card%.json$") then return nil end
  if method == "POST" and path:match("^/a2a/[^/]+/?$") then return "read" end
  -- MCP (weft.serve.mcp): a session needs a read key (tools/call: run)
  if (method == "POST" or method == "DELETE") and path:match("^/mcp/?$") then return "read" end
  if method == "GET" or method == "HEAD" then return "read" end
  if method == "POST" and (path:match("^/api/v1/workflows/[^/]+/execute/?$")
      or path:match("^/api/v1/tools/[^/]+/execute/?$")
      or path:match("^/api/v1/executions/[^/]+/responses/?$")
      or path:match("^/api/v1/executions/[^/]+/resume/?$")
      or path:match("^/v1/chat/completions/?$")
      or path:match("^/v1/responses/?$")
      or path:match("^/v1/responses/[^/]+/cancel/?$")) then
    return "run"
  end
  if method == "DELETE" and (path:match("^/api/v1/executions/[^/]+/?$")
      or path:match("^/v1/responses/[^/]+/?$")) then
    return "run"
  end
  return "admin"
end

-- The secret a request presents, or nil.
local function presented(req)
  local h = req.headers or {}
  local a = h["authorization"]
  if type(a) == "string" then
    local tok = a:match("^%s*[Bb][Ee][Aa][Rr][Ee][Rr]%s+(%S+)%s*$")
    if tok then return tok end
  end
  local x = h["x-api-key"]
  if type(x) == "string" and x ~= "" then return (x:match("^%s*(.-)%s*$")) end
  return nil
end

-- Token buckets ---------------------------------------------------------------

-- Refill bucket b (rate r) up to time now, then take one token from it:
-- true, or false, the seconds until a token is available.
local function draw(b, r, now)
  local dt = now - b.t
  if dt > 0 then
    b.tokens = math.min(r.burst, b.tokens + dt * r.per_second)
    b.t = now
  end
  if b.tokens >= 1 then
    b.tokens = b.tokens - 1
    return true
  end
  return false, (1 - b.tokens) / r.per_second
end

-- Take one token from key k's bucket at time now: true, or false, the
-- seconds until a token is available.
local function take(buckets, k, now)
  local r = k.rate
  if not r then return true end
  local b = buckets[k.id]
  if not b then
    b = { tokens = r.burst, t = now }
    buckets[k.id] = b
  end
  return draw(b, r, now)
end

--- Attempts at a shared bucket's update before a request is let through
-- (every attempt lost a race with another replica).
_M.SHARED_TRIES = 8

-- take() on the bucket of key k kept in store (record "ratelimit", k.id),
-- so that every replica of a pool draws on one bucket (weft serve
-- --workers): updated with an expectation, retried when another replica
-- updated it meanwhile; the store's clock. A store failure lets the
-- request through (and says so on stderr).
local function take_shared(store, k)
  local r = k.rate
  if not r then return true end
  for _ = 1, _M.SHARED_TRIES do
    local ms, terr = store:time()
    local cur, gerr = store:get("ratelimit", k.id)
    if not ms or (cur == nil and gerr) then
      io.stderr:write("weft serve: rate limit of key ", k.id, ": store: ", tostring(terr or gerr), "\n")
      return true
    end
    local now = ms / 1000
    local ok, b = pcall(json.decode, cur or "")
    if not ok or type(b) ~= "table" then b = { tokens = r.burst, t = now } end
    local took, wait = draw(b, r, now)
    local done, _, code = store:batch():expect("ratelimit", k.id, cur or false)
      :put("ratelimit", k.id, json.encode(b)):commit()
    if done then return took, wait end
    if code ~= "conflict" then return true end
  end
  return true
end

--- Take a token of key record k's bucket (buckets: this process's; the
-- store's with a worker pool), or raise the 429 error object.
function _M.limit(app, buckets, k, clock)
  local ok, wait
  if app.pool then
    ok, wait = take_shared(app.store, k)
  else
    ok, wait = take(buckets, k, clock())
  end
  if not ok then
    local secs = math.max(1, ceil(wait))
    local who = k.id == "*" and "the server" or ("API key '%s'"):format(k.id)
    local e = errors.new(429, "rate_limited",
      ("%s is over its rate limit; retry after %d s"):format(who, secs), { retry_after = secs })
    e.headers = { ["Retry-After"] = tostring(secs) }
    error(e, 0)
  end
end

-- CORS ------------------------------------------------------------------------

local CORS_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
local CORS_HEADERS = "Authorization, Content-Type, X-API-Key, Last-Event-ID"

-- Set the CORS headers for req on res (origin: "*" or one origin).
local function cors_headers(origin, req, res)
  local o = origin
  if origin ~= "*" then
    local ro = req.headers and req.headers["origin"]
    if ro ~= origin then return end
    res:header("Vary", "Origin")
  end
  res:header("Access-Control-Allow-Origin", o)
  res:header("Access-Control-Allow-Methods", CORS_METHODS)
  res:header("Access-Control-Allow-Headers", CORS_HEADERS)
  res:header("Access-Control-Expose-Headers", "Retry-After, Location")
  res:header("Access-Control-Max-Age", "600")
end

-- Audit -----------------------------------------------------------------------

local MUTATING = { POST = true, PUT = true, PATCH = true, DELETE = true }

--- The audit log key of a time (UTC day "YYYY-MM-DD").
function _M.day(t) return os.date("!%Y-%m-%d", floor(t)) end

-- Append audit entry e at time now (best effort: a store failure is logged).
local function append(app, e, now)
  local ok, err = pcall(app.store.append, app.store, "audit", _M.day(now), json.encode(e))
  if not ok or not err then
    io.stderr:write("weft serve: audit: cannot append: ", tostring(err), "\n")
  end
end

-- Append the audit entry of a request.
local function audit(app, req, status, now)
  local a = req.weft_auth
  append(app, { time = os.date("!%Y-%m-%dT%H:%M:%SZ", floor(now)), key = a and a.id or json.null,
                method = req.method, path = req.path, status = status }, now)
end

--- Append the audit entry of a guardrail event ev (weft.guard: guard,
-- stage, field, action, reason, executor_id, agent, tool, run_id; no
-- content) when app keeps an audit log (API keys configured): {time,
-- event = "guardrail_triggered", ...}.
function _M.audit_guard(app, ev)
  if not (app.security and app.security.enabled) then return end
  local now = (app.security.now or os.time)()
  local e = { time = os.date("!%Y-%m-%dT%H:%M:%SZ", floor(now)), event = "guardrail_triggered" }
  for _, k in ipairs({ "guard", "stage", "field", "action", "reason", "executor_id", "agent", "tool", "run_id" }) do
    e[k] = ev[k]
  end
  append(app, e, now)
end

--- Write the guardrail events of this process to app's audit log (as
-- audit_guard) at `level` ("all", or "block": blocks only; "none":
-- nothing); returns the function that stops it. The API process does it
-- when keys are configured, and worker processes of such a server too
-- (weft worker --guardrails FILE --audit).
function _M.observe_guards(app, level)
  if level == "none" then return function() end end
  return require("weft.guard").observe(function(ev)
    if level ~= "block" or ev.action == "block" then _M.audit_guard(app, ev) end
  end)
end

--- Install security on app. opts: keys / keys_file (see load; none: keys
-- are not checked), cors (an origin or "*"), rate ({per_second, burst}:
-- the rate of keys without their own, and of all requests together when
-- no keys are configured), clock (function -> seconds,
-- for rate limits; default weft.core.loop.clock), now (wall clock for the
-- audit log; default os.time). Returns the key records (nil without keys).
function _M.install(app, opts)
  opts = opts or {}
  local keys = _M.load(opts)
  if opts.cors ~= nil and (type(opts.cors) ~= "string" or opts.cors == "") then
    error("security: cors must be an origin or '*'", 2)
  end
  local cors = opts.cors
  local clock = opts.clock or require("weft.core.loop").clock
  local now = opts.now or os.time
  local by_hash = {}
  for _, k in ipairs(keys or {}) do by_hash[k.hash] = k end
  local buckets = {}
  app.security = { enabled = keys ~= nil, cors = cors, key_ids = {}, now = now }
  local rate = opts.rate
  if rate ~= nil then
    if type(rate) ~= "table" or type(rate.per_second) ~= "number" or rate.per_second <= 0
       or type(rate.burst) ~= "number" or rate.burst < 1 then
      error("security: rate must be {per_second > 0, burst >= 1}", 2)
    end
    for _, k in ipairs(keys or {}) do k.rate = k.rate or rate end
  end
  -- without keys, every request draws on one bucket
  local anyone = rate and { id = "*", rate = rate }
  for i, k in ipairs(keys or {}) do app.security.key_ids[i] = k.id end

  app.before[#app.before + 1] = function(_, req, res)
    if cors then
      cors_headers(cors, req, res)
      if req.method == "OPTIONS" then
        res:status(204)
        res:send("")
        return true
      end
    end
    local need = _M.needed_scope(req.method or "", req.path or "")
    if not keys then
      if anyone and need then _M.limit(app, buckets, anyone, clock) end
      return false
    end
    if not need then return false end
    local secret = presented(req)
    if not secret then
      local e = errors.new(401, "unauthorized",
        "an API key is required (Authorization: Bearer <key> or X-API-Key)")
      e.headers = { ["WWW-Authenticate"] = 'Bearer realm="weft"' }
      error(e, 0)
    end
    local k = by_hash[_M.sha256(secret)]
    if not k then
      local e = errors.new(401, "unauthorized", "invalid API key")
      e.headers = { ["WWW-Authenticate"] = 'Bearer realm="weft", error="invalid_token"' }
      error(e, 0)
    end
    req.weft_auth = { id = k.id, level = k.level }
    if k.level < SCOPES[need] then
      throw(403, "forbidden", ("API key '%s' lacks the '%s' scope for %s %s"):format(k.id, need, req.method, req.path),
            { required_scope = need })
    end
    _M.limit(app, buckets, k, clock)
    return false
  end

  if keys then
    app.after[#app.after + 1] = function(self, req, status)
      if MUTATING[req.method] then audit(self, req, status, now()) end
    end
  end

  app:route("GET", "/api/v1/audit", function(self, req)
    if not keys then throw(404, "not_found", "the audit log is kept only when API keys are configured") end
    local q = req.query or {}
    local date = q.date
    if date == nil or date == "" then date = _M.day(now()) end
    if type(date) ~= "string" or not date:match("^%d%d%d%d%-%d%d%-%d%d$") then
      throw(400, "bad_request", ("date must be YYYY-MM-DD, got %q"):format(tostring(date)), { field = "date" })
    end
    local limit, offset = self:page(req)
    local rows, err = self.store:range("audit", date)
    if not rows then throw(503, "store_unavailable", "store: " .. tostring(err)) end
    local list = {}
    for _, r in ipairs(rows) do
      local d = json.decode(r.value)
      if type(d) == "table" then d.seq = r.seq; list[#list + 1] = d end
    end
    local page = require("weft.serve.app").paginate(list, limit, offset)
    page.date = date
    return 200, page
  end)
  return keys
end

return _M
