--- weft.serve.errors — the REST error shape `{error = {code, message,
-- details}}` and helpers: handlers `throw(status, code, message, details)`
-- (an error object raised with error(), caught by the app), `is_error(v)`
-- tells such an object from a Lua error, `send(res, err)` writes one.
-- Uses weft.json.
local json = require "weft.json"

local setmetatable, getmetatable, error = setmetatable, getmetatable, error

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

--- The JSON body of an error object.
function _M.body(e)
  return { error = { code = e.code, message = e.message,
                     details = e.details == nil and json.object() or e.details } }
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
