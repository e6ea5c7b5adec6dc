--- weft.json — JSON for workflow values: encode/decode/check with errors that
-- name the offending path, plus the array/object markers and the null
-- sentinel. The codec is C (weft.core.json, runtime/lua/lua_json.c); this module
-- adds the marker helpers.
local core = require "weft.core.json"

local type, next, getmetatable, setmetatable, error, floor =
  type, next, getmetatable, setmetatable, error, math.floor

local array_mt, object_mt = core.array_mt, core.object_mt

local _M = {}

--- The JSON null: a light userdata that `decode` returns for null (in
-- objects and arrays, so that arrays keep their length) and `encode` writes
-- as null.
_M.null = core.null

--- The nesting limit (arrays and objects) of encode, check and decode.
_M.MAX_DEPTH = core.MAX_DEPTH

--- encode(v [, opts]) -> string. opts: pretty (2-space indent), sort_keys
-- (default true: bytewise key order), root (name of v in errors, default
-- "value"), invalid_utf8 ("error", the default, or "replace": each byte of a
-- string or key that is not valid UTF-8 is written as U+FFFD; for logs and
-- event output, never for stored records). Raises
-- "value.items[2].fn: function is not JSON-serialisable" or
-- "value.items[3]: invalid UTF-8 (byte 0xE9 at offset 5)".
_M.encode = core.encode

--- decode(s [, {max_depth = n, max_strings = m}]) -> value, or nil and
-- "invalid JSON at line L column C: ...". Arrays come back with the array
-- marker (so [] re-encodes as []); n (1..MAX_DEPTH, default MAX_DEPTH)
-- limits nesting, m (default none) the strings, keys included ("too many
-- strings (more than m, keys included)"): for untrusted input, see
-- docs/api.md.
_M.decode = core.decode

--- check(v [, root]) -> nil when v would encode (strings valid UTF-8), else
-- encode's error message.
_M.check = core.check

--- fix_utf8(s) -> s with each byte that is not valid UTF-8 replaced by
-- U+FFFD (s itself when valid): for text such as log lines and error
-- messages, never to make data storable.
_M.fix_utf8 = core.fix_utf8

-- Set marker metatable mt on t (or a new table); misuse raises at level 3.
local function mark(t, mt, name)
  if t == nil then return setmetatable({}, mt) end
  if type(t) ~= "table" then
    error("json." .. name .. ": expected a table, got " .. type(t), 3)
  end
  local cur = getmetatable(t)
  if cur ~= nil and cur ~= array_mt and cur ~= object_mt then
    error("json." .. name .. ": table already has a metatable", 3)
  end
  return setmetatable(t, mt)
end

--- Mark t (or a new table) as a JSON array, so that it encodes as [] even
-- when empty; returns it.
function _M.array(t)
  local r = mark(t, array_mt, "array") -- not a tail call: keeps error levels
  return r
end

--- Mark t (or a new table) as a JSON object, so that it always encodes as
-- {...} (its keys must be strings); returns it.
function _M.object(t)
  local r = mark(t, object_mt, "object")
  return r
end

--- Whether v would encode as a JSON array: a table with the array marker,
-- or a non-empty unmarked table whose keys are exactly 1..n.
function _M.is_array(v)
  if type(v) ~= "table" then return false end
  local mt = getmetatable(v)
  if mt == array_mt then return true end
  if mt == object_mt then return false end
  local n, max = 0, 0
  for k in next, v do
    if type(k) ~= "number" or k < 1 or floor(k) ~= k then return false end
    n = n + 1
    if k > max then max = k end
  end
  return n > 0 and n == max
end

return _M
