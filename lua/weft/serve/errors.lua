--- weft.serve.errors — the REST error shape `{error = {code, message,
-- details}}` and helpers: handlers `throw(status, code, message, details)`
-- (an error object raised with error(), caught by the app), `is_error(v)`
-- tells such an object from a Lua error, `send(res, err)` writes one.
-- Uses weft.json.
local json = require "weft.json"

local setmetatable, getmetatable, error, type, pairs = setmetatable, getmetatable, error, type, pairs

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

--- Shorthands: 400, 404, 409.
function _M.bad_request(msg, details) _M.throw(400, "bad_request", msg, details) end
function _M.not_found(what, id)
  _M.throw(404, "not_found", ("%s '%s' not found"):format(what, id), { id = id })
end
function _M.conflict(msg, details) _M.throw(409, "conflict", msg, details) end

return _M
