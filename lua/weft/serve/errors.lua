--- weft.serve.errors — the REST error shape `{error = {code, message,
-- details}}` and helpers: handlers `throw(status, code, message, details)`
-- (an error object raised with error(), caught by the app), `is_error(v)`
-- tells such an object from a Lua error, `send(res, err)` writes one.
-- `check_body(spec, body, code)` checks a request body against its
-- declared object schema (weft.check) and throws 400 naming the field.
-- Uses weft.json, weft.check.
local json = require "weft.json"
local check = require "weft.check"

local setmetatable, getmetatable, error, type, pairs, ipairs, next =
  setmetatable, getmetatable, error, type, pairs, ipairs, next

local _M = {}

local Err = {}
Err.__index = Err
Err.__tostring = function(e) return ("%d %s: %s"):format(e.status, e.code, e.message) end

--- A new error object (status: HTTP code; code: a stable machine string).
function _M.new(status, code, message, details)
  return setmetatable({ status = status, code = code, message = message, details = details }, Err)
end

--- Raise an error object; the app turns it into a JSON error response.
function _M.throw(status, code, message, details)
  error(_M.new(status, code, message, details), 0)
end

--- True when v is an error object made by new/throw.
function _M.is_error(v) return getmetatable(v) == Err end

-- A token that starts an absolute filesystem path: "/" after the start,
-- a space, a quote, "(", "@" or "=" (not a URL's "//" or "host/").
local PATH_BEFORE = { [""] = true, [" "] = true, ["\n"] = true, ["\t"] = true, ['"'] = true,
                      ["'"] = true, ["("] = true, ["@"] = true, ["="] = true, ["["] = true }

--- msg without what would tell a client about the server's files: a Lua
-- traceback is cut off, and an absolute path of two or more components
-- (other than an API path, /api/... or /v1/...) is reduced to its last
-- component ("/srv/flows/x.lua:3: boom" -> "x.lua:3: boom"). Non-strings
-- are returned as they are.
function _M.scrub(msg)
  if type(msg) ~= "string" then return msg end
  msg = msg:gsub("\n?%s*stack traceback:.*$", "")
  return (msg:gsub("()(/[^%s\"'()<>,;=%[%]]+)", function(pos, p)
    if not PATH_BEFORE[msg:sub(pos - 1, pos - 1)] then return nil end
    if p:find("^/api/") or p:find("^/v1/") or not p:find("^/[^/]+/") then return nil end
    return p:match("([^/]*)$")
  end))
end
local scrub = _M.scrub

--- The JSON body of an error object (message and string details scrubbed:
-- see scrub).
function _M.body(e)
  local details = e.details
  if type(details) == "table" then
    local d = {}
    for k, v in pairs(details) do d[k] = scrub(v) end
    details = setmetatable(d, getmetatable(details))
  end
  return { error = { code = e.code, message = scrub(e.message),
                     details = details == nil and json.object() or details } }
end

--- Write e as a JSON response (extra headers, e.g. Allow, in e.headers).
function _M.send(res, e)
  if e.headers then
    for k, v in pairs(e.headers) do res:header(k, v) end
  end
  res:json(e.status, _M.body(e))
end

--- A request body schema: object schema s (weft.check vocabulary, JSON
-- types) named what (the first word of its messages), whose names are
-- "fields" ("unknown field 'modle' (fields: ...); did you mean 'model'?").
function _M.schema(what, s)
  s.noun = s.noun or "field"
  return check.spec(what, s)
end

-- The field a weft.check message names ("<what>: unknown field 'x' ..." or
-- "<what>: x.y must be ...").
local function field_of(msg, what)
  local rest = msg:sub(#what + 3)
  return rest:match("^unknown %a+ '([^']*)'") or rest:match("^(%S+) must be")
end

--- Check body (decoded JSON; null values count as absent) against schema
-- s: nothing when it is good, else throw 400 `code` (default
-- "invalid_request") with the checker's message and details.field (and
-- details.path, both prefix .. field, when prefix is given: the path of
-- a nested object, e.g. "nodes[2]."). what: the message's first word
-- (default the schema's name).
function _M.check_body(s, body, code, what, prefix)
  what = what or s.name
  local b = body
  if type(body) == "table" then
    b = {}
    for k, v in pairs(body) do if v ~= json.null then b[k] = v end end
  end
  local err = check.problem(s, b, what)
  if not err then return end
  local field = field_of(err, what)
  if prefix and field then field = prefix .. field end
  _M.throw(400, code or "invalid_request", err, { field = field, path = prefix and field or nil })
end

-- Keywords of a property schema that are JSON schema (the rest: Lua-only).
local JSON_KEYS = { "enum", "minimum", "maximum", "minLength", "maxLength", "description" }

--- The JSON schema of request body schema s (Lua-only keys dropped,
-- `required` as a list, closed objects with additionalProperties false).
function _M.json_schema(s)
  local out = { type = "object", properties = json.object(), required = json.array(),
                additionalProperties = s.additionalProperties == true }
  for name, p in pairs(s.properties or {}) do
    local q
    if p.properties then
      q = _M.json_schema(p)
    else
      q = {}
      if p.type ~= nil and p.type ~= "any" then q.type = type(p.type) == "table" and json.array(p.type) or p.type end
    end
    for _, k in ipairs(JSON_KEYS) do
      if p[k] ~= nil then q[k] = type(p[k]) == "table" and json.array(p[k]) or p[k] end
    end
    if p.expect and not q.description then q.description = p.expect end
    out.properties[name] = next(q) and q or json.object()
    if p.required == true then out.required[#out.required + 1] = name end
  end
  table.sort(out.required)
  if #out.required == 0 then out.required = nil end
  return out
end

--- Shorthands: 400, 404, 409.
function _M.bad_request(msg, details) _M.throw(400, "bad_request", msg, details) end
function _M.not_found(what, id)
  _M.throw(404, "not_found", ("%s '%s' not found"):format(what, id), { id = id })
end
function _M.conflict(msg, details) _M.throw(409, "conflict", msg, details) end

return _M
