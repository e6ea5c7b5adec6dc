--- weft.http — the HTTP client of docs/io.md: `http.request{...}` yields
-- the calling executor or `weft.go` task while libcurl (driven by the weft
-- loop) does the transfer; on the main thread it runs the loop until done.
-- Expected failures return `nil, err, code`; misuse raises.
--
-- Uses weft.core.http (runtime/lua/lua_http.c) for the transfer, SSE/NDJSON
-- framing and per-host queueing; this module checks options, builds the
-- request headers, JSON-encodes table bodies, folds response headers and
-- runs the stream callback in the calling coroutine (so it may yield).
-- Values of secret headers (core.SECRET_HEADERS and the caller's
-- secret_headers) are registered with weft.secrets, so that they are
-- redacted from everything weft writes.
--
-- Network policies (docs/guardrails.md): every request is held to the
-- process's policy (configure{network =}), to the `network` run option of
-- the run it is made for (and of the runs that run is nested in, and the
-- network of their `guardrails` policies) and to
-- its own `network` option, all at once; weft.core.http checks them on
-- every hop and connection (runtime/io/netpolicy.c). weft.tcp's connect
-- takes the same policies (_M.policy).
local core = require "weft.core.http"
local json = require "weft.json"
local secrets = require "weft.secrets"
local check = require "weft.check"
local task = require "weft.task"
local NETWORK = require("weft.run").NETWORK

local type, next, pairs, ipairs, tostring, error, pcall, rawget, rawset, setmetatable =
  type, next, pairs, ipairs, tostring, error, pcall, rawget, rawset, setmetatable
local huge = math.huge
local lower, upper, find, match = string.lower, string.upper, string.find, string.match

local _M = {}

-- A number of seconds > 0 (finite).
local function seconds()
  return { type = "number", expect = "a number of seconds > 0", test = function(v) return v > 0 and v ~= huge end }
end

--- The spec of request options (weft.check).
_M.OPTIONS = check.spec("http.request", { properties = {
  method = { type = "string", expect = 'a name such as "GET" or "POST"', aliases = { "verb" },
             test = function(v) return find(v, "^[%a%-]+$") ~= nil end },
  url = { type = "string", required = true, aliases = { "uri", "href" } },
  headers = { type = "table", expect = "a table of name = value", aliases = { "header" } },
  body = { type = { "string", "table" }, aliases = { "data", "json", "payload" } },
  timeout = seconds(), connect_timeout = seconds(), idle_timeout = seconds(),
  max_body = { type = "integer", minimum = 1, expect = "a positive integer", aliases = { "max_size" } },
  stream = { type = "function", expect = "a function(chunk)", aliases = { "on_data", "on_chunk" } },
  framing = { enum = { "raw", "sse", "ndjson" } },
  max_redirects = { type = "integer", minimum = 0, maximum = 1000, aliases = { "redirects", "follow_redirects" } },
  cross_origin_redirects = { enum = { "strip", "refuse" } },
  secret_headers = { type = "table", expect = "a list of header names" },
  network = NETWORK,
} })

--- The spec of configure options (weft.check).
_M.CONFIGURE = check.spec("http.configure", { properties = {
  max_per_host = { type = "integer", minimum = 1, maximum = 1000000, aliases = { "per_host", "max_connections" } },
  network = NETWORK,
} })

-- NETWORK tables -> policy objects of weft.core.http (a table is read at
-- its first use), and policy a -> {policy b -> a and b}.
local compiled = setmetatable({}, { __mode = "k" })
local combined = setmetatable({}, { __mode = "k" })
local process_policy -- configure{network =}, or nil

local function compile(net)
  local p = compiled[net]
  if not p then
    p = core.policy(net)
    compiled[net] = p
  end
  return p
end

-- The policy allowing what both a (may be nil) and b allow.
local function both(a, b)
  if a == nil or a == b then return b end
  local t = combined[a]
  if not t then
    t = setmetatable({}, { __mode = "k" })
    combined[a] = t
  end
  local p = t[b]
  if not p then
    p = core.policy_both(a, b)
    t[b] = p
  end
  return p
end

-- The policy of run r and of the runs it is nested in (cached on r when
-- there is one: a run without adds no key to its table), or nil.
local function run_policy(r)
  local p = rawget(r, "_netpolicy")
  if p then return p end
  local x = r
  while x do
    local net, g = rawget(x, "network"), rawget(x, "guardrails")
    if net then p = both(p, compile(net)) end
    -- the network of the run's guardrails policy (weft.guardrails) too
    if g and g.network then p = both(p, compile(g.network)) end
    x = rawget(x, "_parent")
  end
  if p then rawset(r, "_netpolicy", p) end
  return p
end

--- The network policy object a connection made now is held to: the
-- process's (configure), the current run's (and its enclosing runs') and
-- net's (a NETWORK table or nil) together; nil when there is none.
function _M.policy(net)
  local p = process_policy
  local r = task.current()
  if type(r) == "table" then
    local rp = run_policy(r)
    if rp then p = both(p, rp) end
  end
  if net ~= nil then p = both(p, compile(net)) end
  return p
end

-- Lower-cased names of the headers that always count as secret.
local SECRET = {}
for _, n in ipairs(core.SECRET_HEADERS) do SECRET[n] = true end

--- The header names that always count as secret (lower-case list).
_M.SECRET_HEADERS = core.SECRET_HEADERS

-- Raise a misuse error at the caller of request().
local function misuse(msg) error("http.request: " .. msg, 3) end

--- Response header lines ("Name: value") -> { name = value }, names
-- lower-cased, repeated headers joined with ", ".
local function fold_headers(lines)
  local h = {}
  for i = 1, #lines do
    local name, value = match(lines[i], "^([^:]+):[ \t]*(.-)[ \t]*$")
    if name then
      name = lower(name)
      local old = h[name]
      h[name] = old and (old .. ", " .. value) or value
    end
  end
  return h
end

-- Register a secret header's value (and the credential after an auth
-- scheme such as "Bearer ") with weft.secrets.
local function register_secret(v)
  secrets.add(v)
  local cred = match(v, "^[%w%-]+[ \t]+(%S+)%s*$")
  if cred then secrets.add(cred) end
end

-- An empty set, shared (never written).
local NONE = {}

-- The caller's secret_headers (a list of names) -> a set of the
-- lower-cased names (the shared empty set without any).
local function secret_names(list)
  if list == nil then return NONE end
  local set = {}
  for i = 1, #list do
    local n = list[i]
    if type(n) ~= "string" or not find(n, "^[!#$%%&'*+%-.^_`|~%w]+$") then
      misuse("secret_headers[" .. i .. "] must be a header name, got " .. tostring(n))
    end
    set[lower(n)] = true
  end
  return set
end

-- Check the request headers table (weft.core.http makes the "Name: value"
-- lines from it, with no Lua table or string per request); returns
-- whether a content-type was given. Values of secret headers (SECRET or
-- extra, a set of lower-cased names) are registered with weft.secrets.
local function check_headers(headers, extra)
  local has_ct = false
  if headers == nil then return false end
  -- next() called, not `for ... in pairs` (see weft.check: Debian 12's
  -- LuaJIT can end a pairs loop early), since core.start sends every
  -- header, checked here or not
  local k, v = next(headers)
  while k ~= nil do
    if type(k) ~= "string" or not find(k, "^[!#$%%&'*+%-.^_`|~%w]+$") then
      misuse("bad header name " .. (type(k) == "string" and ("'" .. k .. "'") or tostring(k)))
    end
    local tv = type(v)
    if tv == "number" then
      v = tostring(v)
    elseif tv ~= "string" then
      misuse("header '" .. k .. "' must be a string, got " .. tv)
    end
    if find(v, "[\r\n%z]") then
      misuse("header '" .. k .. "' contains a line break or NUL")
    end
    local lk = lower(k)
    if lk == "content-type" then has_ct = true end
    if SECRET[lk] or extra[lk] then register_secret(v) end
    k, v = next(headers, k)
  end
  return has_ct
end

-- Check opts (unless built: made by weft itself, see request_built) and
-- compute what weft.core.http.start takes besides them: method, body (a
-- string or nil), framing, an extra header line (the content type of a
-- JSON body) or nil, and the stream callback. No table is made per
-- request: core.start reads the other options from opts. Headers are
-- always checked (their values may come from configuration: keys).
local function build(opts, built)
  if not built then check.options(_M.OPTIONS, opts, 3) end
  local method = opts.method
  if method ~= nil then method = upper(method) end
  local has_ct = check_headers(opts.headers, secret_names(opts.secret_headers))
  local body, ct = opts.body, nil
  if type(body) == "table" then
    local ok, s = pcall(json.encode, body, { root = "body" })
    if not ok then misuse(tostring(s)) end
    body = s
    if not has_ct then ct = "Content-Type: application/json" end
  end
  local stream, framing = opts.stream, opts.framing
  if framing ~= nil and not stream then misuse("framing needs a stream callback") end
  return method or (body and "POST" or "GET"), body, stream and (framing or "raw") or "buffer", ct, stream
end

-- next() until it returns something (a wake-up returns nothing).
local function wait(req)
  local a, b, c = req:next()
  while a == nil and b == nil do a, b, c = req:next() end
  return a, b, c
end

-- Feed records to the user's callback until the end, a failure or false.
local function run_stream(req, stream)
  while true do
    local a, b, c = wait(req)
    if type(a) == "table" then
      for i = 1, #a do
        local ok, more = pcall(stream, a[i])
        if not ok then
          req:cancel()
          error(more, 0)
        end
        if more == false then
          local status, lines = req:cancel()
          return { status = status, headers = fold_headers(lines) }
        end
      end
    elseif a then -- a non-2xx reply comes with its body (not streamed)
      return { status = a, headers = fold_headers(b), body = c }
    else
      return nil, b, c
    end
  end
end

local perform -- below

--- request{method, url, headers, body, timeout, connect_timeout,
-- idle_timeout, max_body, stream, framing, max_redirects,
-- cross_origin_redirects, secret_headers, network} -> res | nil, err, code
-- (code "policy": refused by a network policy).
-- res = {status, headers, body}; see docs/io.md.
function _M.request(opts, built)
  local method, body, framing, ct, stream = build(opts, built)
  -- journaled in durable runs: a re-executed invocation gets this result
  return require("weft.journal").call("http", { what = method .. " " .. opts.url, body = body }, perform,
    opts, method, body, framing, ct, stream)
end

--- The request of options weft itself made from checked values (weft.llm's
-- attempts): request(opts) without walking the option spec again (an LLM
-- call in flight keeps its frames on its coroutine's stack, and that walk
-- was its deepest point); headers are still checked.
function _M.request_built(opts) return _M.request(opts, true) end

-- Start request opts (checked by build; method, body, framing and the
-- extra header line computed from them) and wait for its result
-- (streaming to stream if given).
perform = function(opts, method, body, framing, ct, stream)
  local req, err, code = core.start(opts, method, body, framing, ct, _M.policy(opts.network))
  if not req then return nil, err, code end
  -- the C request has what it needs: the options table is not kept while
  -- the transfer runs (a caller that does not hold it lets it go)
  opts = nil
  if stream then return run_stream(req, stream) end
  local status, lines, rbody = wait(req)
  if not status then return nil, lines, rbody end
  return { status = status, headers = fold_headers(lines), body = rbody }
end

--- configure{max_per_host = n, network = NETWORK | false}: at most n
-- transfers at once per host (default 64; the others wait in a FIFO
-- queue); the network policy of every request of this process (false
-- removes it).
function _M.configure(opts)
  local net
  if type(opts) == "table" and opts.network == false then
    net = false
    local o = {}
    for k, v in pairs(opts) do if k ~= "network" then o[k] = v end end
    opts = o
  end
  opts = check.options(_M.CONFIGURE, opts, 2)
  if opts.max_per_host ~= nil then core.configure(opts.max_per_host) end
  if net == false then
    process_policy = nil
  elseif opts.network ~= nil then
    process_policy = core.policy(opts.network)
  end
end

--- stats() -> {running = n, queued = n}: transfers of this Lua state.
function _M.stats()
  local running, queued = core.stats()
  return { running = running, queued = queued }
end

return _M
