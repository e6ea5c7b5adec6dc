--- weft.serve.app — the REST application of `weft serve`: a router over
-- method + path patterns (`/api/v1/agents/{id}`), JSON bodies, ids and
-- pagination, and the state shared by the endpoint modules (definition
-- store, tool registry, built workflows, executions, metrics).
-- `app:handle(req, res)` serves one request with the req/res API of
-- weft.server (docs/server.md); it never raises: errors become
-- `{error = {code, message, details}}` responses.
-- Uses weft, weft.json, weft.store and weft.serve.{errors, agents, tools,
-- workflows, executions, health, security, openai}.
local json = require "weft.json"
local errors = require "weft.serve.errors"

local type, pairs, ipairs, tostring, tonumber, setmetatable, getmetatable, xpcall, error =
  type, pairs, ipairs, tostring, tonumber, setmetatable, getmetatable, xpcall, error
local concat, sort = table.concat, table.sort
local find, gmatch = string.find, string.gmatch
local throw = errors.throw

local _M = {}

local App = {}
App.__index = App
_M.App = App

--- The pattern every id (agents, workflows, executions, tools) must match.
_M.ID_PATTERN = "^[A-Za-z0-9_.%-]+$"
_M.ID_MAX = 64
_M.DEFAULT_LIMIT, _M.MAX_LIMIT = 50, 1000
--- How deep a request body may nest (arrays and objects). Far below the
-- JSON codec's own limit (json MAX_DEPTH, 1000), so that whatever comes in
-- (a run's input) can be embedded in any response (summaries, events).
_M.MAX_BODY_DEPTH = 100
--- How many strings (keys included) a request body may hold. LuaJIT
-- interns every string, and OpenResty's branch hashes strings of up to 16
-- bytes with a CRC that structured keys collide in (its fallback hash is
-- the same for them): past ~110,000 such strings alive, each new one costs
-- a walk of one long chain (300,000 keys of the shape '"k1":1' took 45 s
-- to intern here). A 1 MiB body can hold ~150,000 short strings; this
-- bound keeps one body far from that.
_M.MAX_BODY_STRINGS = 50000

--- The keys of t, sorted (listings and metrics print them in order).
function _M.sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  sort(out)
  return out
end

--- True when s is a valid id: 1-64 of A-Z a-z 0-9 _ . - and not "." or "..".
function _M.valid_id(s)
  return type(s) == "string" and #s >= 1 and #s <= _M.ID_MAX and s:match(_M.ID_PATTERN) ~= nil
    and s:find("..", 1, true) == nil and s ~= "."
end

--- Check an id (raises a 400 error object naming what).
function _M.check_id(s, what)
  if not _M.valid_id(s) then
    throw(400, "invalid_id", ("%s must be 1-64 characters of A-Z a-z 0-9 _ . - (no '..'), got %s")
      :format(what, type(s) == "string" and ("%q"):format(s) or type(s)), { field = what })
  end
  return s
end

-- Percent-decode one path segment; nil when malformed.
local function unescape(s)
  if s:find("%%") then
    if s:find("%%[^%x]") or s:find("%%%x[^%x]") or s:find("%%%x?$") then return nil end
    s = s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  return s
end

-- Split a raw path (as sent, not decoded) into segments, each decoded
-- once; raises 400 invalid_path on traversal (".", "..", "../" once
-- decoded) or bad escapes. A segment that decodes to other bytes no id may
-- hold (NUL, "/", "\\") stays as it is: check_id refuses it (invalid_id).
local function segments(path)
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" then
    throw(400, "bad_request", "the path must start with '/'")
  end
  -- without an escape or a backslash no segment can hold "/" or "\\"
  -- once decoded: only "." and ".." are traversal (the common case)
  local plain = not find(path, "[%%\\]")
  local out = {}
  for raw in gmatch(path, "[^/]+") do
    local s = raw
    if plain then
      if s == "." or s == ".." then
        throw(400, "invalid_path", ("path segment %q is not allowed (path traversal)"):format(raw))
      end
    else
      s = unescape(raw)
      if s == nil then throw(400, "invalid_path", ("malformed percent-escape in path segment %q"):format(raw)) end
      if s == "." or s == ".." or s:find("%.%.[/\\]") or s:find("[/\\]%.%.") then
        throw(400, "invalid_path", ("path segment %q is not allowed (path traversal)"):format(raw))
      end
    end
    out[#out + 1] = s
  end
  return out
end

--- Add a route: method ("GET"...), pattern ("/api/v1/agents/{id}"),
-- fn(app, req, params, res) -> status, body[, headers] (body: a value
-- answered as JSON, or app.encoded(json_string); nothing when fn wrote
-- the response itself, e.g. a stream).
function App:route(method, pattern, fn)
  local segs, names = {}, {}
  for s in pattern:gmatch("[^/]+") do
    local name = s:match("^{([%w_]+)}$")
    segs[#segs + 1] = name and true or s
    names[#segs] = name
  end
  local r = { method = method, pattern = pattern, segs = segs, names = names, fn = fn }
  self.routes[#self.routes + 1] = r
  -- routes by segment count, in the order they were added: a request is
  -- matched against the routes of its length only
  local by = self.by_length[#segs]
  if not by then by = {}; self.by_length[#segs] = by end
  by[#by + 1] = r
end

-- True when route r matches segments segs (of r's length).
local function match(r, segs)
  local rs = r.segs
  for i = 1, #rs do
    local s = rs[i]
    if s ~= true and s ~= segs[i] then return false end
  end
  return true
end

-- The params of route r for segments segs (r matches them).
local function params_of(r, segs)
  local params, names = {}, r.names
  for i = 1, #r.segs do
    local name = names[i]
    if name then params[name] = segs[i] end
  end
  return params
end

local NO_OPTS = {}
local DECODE_OPTS = {} -- json.decode options of request bodies (reused)

--- The decoded JSON body of req: a table (an object unless opts.any),
-- or nil when empty and not opts.required. Raises 415 for a body that is
-- not JSON, 400 (with line and column) for invalid JSON or a body nested
-- deeper than MAX_BODY_DEPTH.
function App:body(req, opts)
  opts = opts or NO_OPTS
  local body = req.body
  if body == nil or body == "" then
    if opts.required then throw(400, "bad_request", "a JSON request body is required") end
    return nil
  end
  local ct = (req.headers and req.headers["content-type"]) or ""
  local mt = ct:match("^%s*([^;%s]+)") or ""
  mt = mt:lower()
  if mt ~= "application/json" and not mt:match("^application/[%w.%-]+%+json$") then
    throw(415, "unsupported_media_type",
          ("request bodies must be application/json, got %s"):format(ct == "" and "no content-type" or ("'" .. ct .. "'")),
          { content_type = ct })
  end
  -- (public settings: read on every call)
  DECODE_OPTS.max_depth, DECODE_OPTS.max_strings = _M.MAX_BODY_DEPTH, _M.MAX_BODY_STRINGS
  local v, err = json.decode(body, DECODE_OPTS)
  if v == nil then
    local line, col = tostring(err):match("line (%d+) column (%d+)")
    local details = { line = tonumber(line), column = tonumber(col) }
    if tostring(err):find("nesting too deep", 1, true) then details.max_depth = _M.MAX_BODY_DEPTH end
    if tostring(err):find("too many strings", 1, true) then details.max_strings = _M.MAX_BODY_STRINGS end
    throw(400, "invalid_json", "invalid JSON body: " .. tostring(err), details)
  end
  if not opts.any and (type(v) ~= "table" or json.is_array(v)) then
    throw(400, "bad_request", "the request body must be a JSON object")
  end
  return v
end

--- limit, offset of req's query (?limit=&offset=), validated.
function App:page(req)
  local q = req.query or {}
  local function int(k, dflt, max)
    local v = q[k]
    if v == nil or v == "" then return dflt end
    local n = tonumber(v)
    if not n or n ~= math.floor(n) or n < 0 or (max and n > max) then
      throw(400, "bad_request", ("query parameter %s must be an integer between 0 and %s, got %q")
        :format(k, max and tostring(max) or "inf", tostring(v)), { field = k })
    end
    return n
  end
  return int("limit", _M.DEFAULT_LIMIT, _M.MAX_LIMIT), int("offset", 0)
end

--- A page of list: {items, total, limit, offset}.
function _M.paginate(list, limit, offset)
  local items = json.array()
  for i = offset + 1, math.min(#list, offset + limit) do items[#items + 1] = list[i] end
  return { items = items, total = #list, limit = limit, offset = offset }
end

-- Definitions (namespace "defs", keys "<kind>/<id>") -----------------------

--- The stored definition of kind ("agent", "workflow") id as stored (a
-- JSON string), or nil.
function App:def_raw(kind, id)
  local v, err = self.store:get("defs", kind .. "/" .. id)
  if v == nil and err then throw(503, "store_unavailable", "store: " .. tostring(err)) end
  return v
end

--- The stored definition of kind ("agent", "workflow") id, or nil; v: its
-- stored JSON when the caller already read it (def_raw).
function App:def_get(kind, id, v)
  if v == nil then v = self:def_raw(kind, id) end
  if v == nil then return nil end
  local d, derr = json.decode(v)
  if type(d) ~= "table" then throw(500, "internal", ("corrupt %s definition '%s': %s"):format(kind, id, tostring(derr))) end
  return d
end

--- Store definition d of kind under id.
function App:def_put(kind, id, d)
  local ok, err = self.store:put("defs", kind .. "/" .. id, json.encode(d))
  if not ok then throw(503, "store_unavailable", "store: " .. tostring(err)) end
end

--- Delete the definition of kind id.
function App:def_del(kind, id)
  local ok, err = self.store:del("defs", kind .. "/" .. id)
  if not ok then throw(503, "store_unavailable", "store: " .. tostring(err)) end
end

--- Every definition of kind, sorted by id.
function App:def_list(kind)
  local rows, err = self.store:scan("defs", kind .. "/")
  if not rows then throw(503, "store_unavailable", "store: " .. tostring(err)) end
  local out = {}
  for _, r in ipairs(rows) do
    local d = json.decode(r.value)
    if type(d) == "table" then out[#out + 1] = d end
  end
  return out
end

-- Tools --------------------------------------------------------------------

--- Register a weft.tool (agents name it in `tools`; /api/v1/tools lists it).
function App:register_tool(t)
  if not require("weft.tool").is_tool(t) then error("register_tool: expects a weft.tool object", 2) end
  self.tools[t.name] = t
  return self
end

-- Handling -----------------------------------------------------------------

local Encoded = {}

--- A response body already encoded as JSON (string s): a route returns
-- status, app.encoded(s) to answer it as it is.
function _M.encoded(s)
  return setmetatable({ s }, Encoded)
end

-- Write the (status, body, headers) a route returned.
local function respond(res, status, body, headers)
  if headers then for k, v in pairs(headers) do res:header(k, v) end end
  if body == nil then
    res:status(status)
    res:send("")
  elseif getmetatable(body) == Encoded then
    res:header("Content-Type", "application/json")
    res:status(status)
    res:send(body[1])
  else
    res:json(status, body)
  end
end

local internal_seq = 0

-- Route req (in app:handle's protected call): runs the before hooks, then
-- the route; returns the status answered.
local function dispatch(self, req, res)
  local before = self.before
  for i = 1, #before do
    if before[i](self, req, res) then -- the hook answered the request itself
      return res.status_code or 200
    end
  end
  local segs = segments(req.raw_path or req.path)
  local allowed, seen
  local routes = self.by_length[#segs]
  for i = 1, routes and #routes or 0 do
    local r = routes[i]
    if match(r, segs) then
      if r.method == req.method then
        local params = params_of(r, segs)
        for name, v in pairs(params) do
          _M.check_id(v, name)
        end
        local st, body, headers = r.fn(self, req, params, res)
        if st then
          respond(res, st, body, headers)
          return st
        end
        return res.status_code or 200
      end
      allowed, seen = allowed or {}, seen or {}
      if not seen[r.method] then
        seen[r.method] = true
        allowed[#allowed + 1] = r.method
      end
    end
  end
  if allowed then
    sort(allowed)
    local e = errors.new(405, "method_not_allowed",
      ("method %s is not allowed on %s (allowed: %s)"):format(tostring(req.method), req.raw_path or req.path,
        concat(allowed, ", ")),
      { allowed = allowed })
    e.headers = { allow = concat(allowed, ", ") }
    error(e, 0)
  end
  throw(404, "not_found", ("no route for %s %s"):format(tostring(req.method), tostring(req.raw_path or req.path)))
end

-- The error handler of dispatch: error objects as they are, anything else
-- with its traceback (for the log).
local function caught(e)
  if errors.is_error(e) then return e end
  return { internal = tostring(e), traceback = debug.traceback(tostring(e), 2) }
end

--- Serve one request (never raises).
function App:handle(req, res)
  local ok, status = xpcall(dispatch, caught, self, req, res)
  if not ok then
    local err = status
    if not errors.is_error(err) then
      -- the message and traceback name server files: the log gets them,
      -- the client a reference to find them there
      internal_seq = internal_seq + 1
      local ref = ("%x-%d"):format(os.time(), internal_seq)
      io.stderr:write("weft serve: internal error ", ref, " on ", tostring(req.method), " ",
                      tostring(req.raw_path or req.path), ": ", err.traceback, "\n")
      err = errors.new(500, "internal", "internal error (reference " .. ref .. " in the server log)", { reference = ref })
    end
    status = err.status
    if not res.streaming then pcall(self.send_error or errors.send, res, err, req) end
  end
  self.metrics:count_http(req.method, status or 500)
  local after = self.after
  for i = 1, #after do
    local hok, herr = pcall(after[i], self, req, status or 500)
    if not hok then io.stderr:write("weft serve: after hook: ", tostring(herr), "\n") end
  end
end

--- Create the app. opts: store (a weft.store object or URL; default an
-- in-memory store), durable (runs are durable in the store; default true
-- when a store is given that outlives the process: not for memory:), scripts_dir (Lua workflow files, listed read-only),
-- tools (a list of weft.tool objects to register), security (options of
-- weft.serve.security.install: keys, keys_file, cors, clock, now),
-- guardrails (a weft.guardrails policy, configuration or JSON file:
-- installed for every run and agent of the process, its rate_limits the
-- default rate of API keys; app.guardrails).
-- app.before: hooks fn(app, req, res) run first, which may raise an error
-- object or answer the request (return true); app.after: hooks fn(app,
-- req, status) run once answered; app.send_error(res, err, req) writes
-- error objects (default errors.send).
function _M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("app.new: options must be a table", 2) end
  local store = opts.store
  if type(store) == "string" then
    local s, err = require("weft.store").open(store)
    if not s then error("app.new: store " .. store .. ": " .. tostring(err), 2) end
    store = s
  end
  local durable = opts.durable
  -- a memory store ends with this process: a checkpoint in it could never
  -- be resumed, so runs are not made durable there unless asked (tests or
  -- an embedder sharing one memory store)
  if durable == nil then durable = store ~= nil and store.kind ~= "memory" end
  if store == nil then store = assert(require("weft.store").open("memory:")) end
  local self = setmetatable({
    store = store, durable = durable, scripts_dir = opts.scripts_dir,
    routes = {}, by_length = {}, tools = {}, built = {}, built_src = {}, executions = {}, started = require("weft").now(),
    before = {}, after = {},
  }, App)
  self.metrics = require("weft.serve.health").metrics()
  local sec = opts.security
  if opts.guardrails ~= nil then
    local gr = require "weft.guardrails"
    local pol = opts.guardrails
    if not gr.is_policy(pol) then pol = gr.load(pol) end
    self.guardrails = gr.install(pol)
    if pol.rate_limits and not (sec and sec.rate) then
      local s = {}
      for k, v in pairs(sec or {}) do s[k] = v end
      s.rate = pol.rate_limits
      sec = s
    end
  end
  for _, t in ipairs(opts.tools or {}) do self:register_tool(t) end
  require("weft.serve.health").install(self)
  require("weft.serve.agents").install(self)
  require("weft.serve.tools").install(self)
  require("weft.serve.workflows").install(self)
  require("weft.serve.executions").install(self)
  require("weft.serve.security").install(self, sec)
  if self.security.enabled then
    -- guardrail events in the audit log, as compliance.audit_log_level says
    self.unobserve = require("weft.serve.security").observe_guards(self,
      self.guardrails and self.guardrails.compliance.audit or "all")
  end
  require("weft.serve.openai").install(self)
  require("weft.serve.a2a").install(self)
  require("weft.serve.mcp").install(self)
  require("weft.serve.builder").install(self, opts)
  require("weft.serve.dashboard").install(self, opts)
  -- the request bodies' schemas: the definitions the endpoints check
  self:route("GET", "/api/v1/schemas", function()
    local wf = require "weft.serve.workflows"
    local js = errors.json_schema
    local ex = require "weft.serve.executions"
    return 200, {
      agent = js(require("weft.serve.agents").SCHEMA), workflow = js(wf.SCHEMA), node = js(wf.NODE),
      edge = js(wf.EDGE), condition = js(wf.CONDITION), execute = js(ex.EXECUTE), response = js(ex.RESPONSE),
      tool_execute = js(require("weft.serve.tools").EXECUTE), builder = js(require("weft.serve.builder").BODY),
      chat_completion = js(require("weft.serve.openai").CHAT),
    }
  end)
  return self
end

return _M
