--- weft.schema — the JSON-schema subset used by tool parameters: `check`
-- validates a schema (errors name the path, e.g. "parameters.properties.a.type:
-- unknown type 'num'"), `validate` checks a decoded value against a schema
-- (errors name the value's path, e.g. "arguments.a: expected number, got
-- string"). Keywords: type (a name or a list), properties, required, enum,
-- items, additionalProperties (boolean or schema), anyOf / oneOf / allOf,
-- minimum / maximum, minLength / maxLength, minItems / maxItems; annotations
-- (description, title, default, examples, format, $schema, $comment,
-- deprecated, readOnly, writeOnly) are accepted and ignored. Any other
-- keyword is an error, so typos show at creation. Uses weft.json.
local json = require "weft.json"

local type, pairs, ipairs, tostring, error, next, pcall, getmetatable, floor, huge =
  type, pairs, ipairs, tostring, error, next, pcall, getmetatable, math.floor, math.huge
local sformat, concat, sort = string.format, table.concat, table.sort
local NULL, is_array = json.null, json.is_array

local _M = {}

local TYPES = { string = true, number = true, integer = true, boolean = true,
                object = true, array = true, null = true }
local TYPE_NAMES = "string, number, integer, boolean, object, array, null"

local ANNOTATIONS = { description = true, title = true, default = true, examples = true,
                      format = true, ["$schema"] = true, ["$comment"] = true, ["$id"] = true,
                      deprecated = true, readOnly = true, writeOnly = true }

local NUMERIC = { minimum = true, maximum = true }
local COUNTS = { minLength = true, maxLength = true, minItems = true, maxItems = true }

-- A readable JSON-ish rendering of a value for errors.
local function show(v)
  if type(v) == "string" then return sformat("%q", v) end
  if v == NULL then return "null" end
  return tostring(v)
end

-- The JSON type name of a Lua value (nil for values JSON cannot hold).
local function json_type(v)
  local t = type(v)
  if t == "string" or t == "boolean" then return t end
  if t == "number" then
    if v ~= v or v == huge or v == -huge then return "non-finite number" end
    return "number"
  end
  if v == NULL then return "null" end
  if t == "table" then
    if next(v) == nil then
      local mt = getmetatable(v)
      if mt == nil then return "empty" end -- unmarked {}: either
    end
    return is_array(v) and "array" or "object"
  end
  return t
end
_M.json_type = json_type

-- Path of a property below path p ("a.b", or a["x y"] for odd names).
local function prop_path(p, k)
  if type(k) == "string" and k:match("^[%a_][%w_]*$") then return p .. "." .. k end
  return sformat("%s[%s]", p, show(k))
end

local check

-- Check a list of sub-schemas at keyword kw.
local function check_list(s, kw, path)
  local l = s[kw]
  if type(l) ~= "table" or l[1] == nil or not is_array(l) then
    error(sformat("%s.%s: must be a non-empty list of schemas", path, kw), 0)
  end
  for i, sub in ipairs(l) do check(sub, sformat("%s.%s[%d]", path, kw, i)) end
end

-- Raise "path: msg" for the first problem of schema s.
check = function(s, path)
  if type(s) ~= "table" or (next(s) ~= nil and is_array(s)) then
    error(sformat("%s: a schema must be a table, got %s", path, json_type(s) or type(s)), 0)
  end
  local keys = {}
  for k in pairs(s) do keys[#keys + 1] = tostring(k) end
  sort(keys)
  for _, k in ipairs(keys) do
    local v = s[k]
    if k == "type" then
      local list = type(v) == "table" and v or { v }
      if type(v) == "table" and (v[1] == nil or not is_array(v)) then
        error(sformat("%s.type: must be a type name or a non-empty list of them", path), 0)
      end
      for _, t in ipairs(list) do
        if type(t) ~= "string" then
          error(sformat("%s.type: must be a string (one of %s), got %s", path, TYPE_NAMES, type(t)), 0)
        end
        if not TYPES[t] then
          error(sformat("%s.type: unknown type '%s' (known: %s)", path, t, TYPE_NAMES), 0)
        end
      end
    elseif k == "properties" then
      if type(v) ~= "table" or (next(v) ~= nil and is_array(v)) then
        error(sformat("%s.properties: must be a table of name = schema", path), 0)
      end
      local names = {}
      for name in pairs(v) do
        if type(name) ~= "string" then
          error(sformat("%s.properties: property names must be strings, got %s", path, type(name)), 0)
        end
        names[#names + 1] = name
      end
      sort(names)
      for _, name in ipairs(names) do check(v[name], prop_path(path .. ".properties", name)) end
    elseif k == "required" then
      if type(v) ~= "table" or (next(v) ~= nil and not is_array(v)) then
        error(sformat("%s.required: must be a list of property names", path), 0)
      end
      for i, name in ipairs(v) do
        if type(name) ~= "string" then
          error(sformat("%s.required[%d]: must be a string, got %s", path, i, type(name)), 0)
        end
      end
    elseif k == "enum" then
      if type(v) ~= "table" or v[1] == nil or not is_array(v) then
        error(sformat("%s.enum: must be a non-empty list of values", path), 0)
      end
      local err = json.check(v, path .. ".enum")
      if err then error(err, 0) end
    elseif k == "items" then
      check(v, path .. ".items")
    elseif k == "additionalProperties" then
      if type(v) ~= "boolean" then check(v, path .. ".additionalProperties") end
    elseif k == "anyOf" or k == "oneOf" or k == "allOf" then
      check_list(s, k, path)
    elseif NUMERIC[k] then
      if type(v) ~= "number" or v ~= v then error(sformat("%s.%s: must be a number", path, k), 0) end
    elseif COUNTS[k] then
      if type(v) ~= "number" or v < 0 or floor(v) ~= v then
        error(sformat("%s.%s: must be a non-negative integer", path, k), 0)
      end
    elseif not ANNOTATIONS[k] then
      error(sformat("%s: unsupported keyword '%s'", path, k), 0)
    end
  end
  if s.required and s.properties then
    for i, name in ipairs(s.required) do
      if s.properties[name] == nil and s.additionalProperties == false then
        error(sformat("%s.required[%d]: '%s' is not a property and additionalProperties is false",
                      path, i, name), 0)
      end
    end
  end
end

--- Check that s is a schema of the supported subset. Returns true, or nil
-- and "path: problem" (path starts with `root`, default "schema").
function _M.check(s, root)
  local ok, err = pcall(check, s, root or "schema")
  if ok then return true end
  return nil, err
end

-- Whether value v (of JSON type jt) has type t.
local function has_type(v, jt, t)
  if jt == "empty" then return t == "object" or t == "array" end
  if t == "integer" then return jt == "number" and floor(v) == v end
  return jt == t
end

local validate

-- Validate v against s; returns nil or "path: problem".
validate = function(s, v, path)
  local jt = json_type(v)
  if jt == "non-finite number" or jt == "function" or jt == "userdata" or jt == "thread" then
    return sformat("%s: %s is not a JSON value", path, jt)
  end
  local t = s.type
  if t ~= nil then
    local ok = false
    if type(t) == "table" then
      for _, name in ipairs(t) do
        if has_type(v, jt, name) then ok = true; break end
      end
      if not ok then
        return sformat("%s: expected %s, got %s", path, concat(t, " or "), jt == "empty" and "object" or jt)
      end
    elseif not has_type(v, jt, t) then
      if t == "integer" and jt == "number" then return sformat("%s: expected integer, got %s", path, show(v)) end
      return sformat("%s: expected %s, got %s", path, t, jt == "empty" and "object" or jt)
    end
  end
  if s.enum then
    local found = false
    for _, e in ipairs(s.enum) do
      if e == v then found = true; break end
    end
    if not found then
      local names = {}
      for i, e in ipairs(s.enum) do names[i] = show(e) end
      return sformat("%s: %s is not one of %s", path, show(v), concat(names, ", "))
    end
  end
  if jt == "number" then
    if s.minimum and v < s.minimum then return sformat("%s: %s is less than the minimum %s", path, show(v), show(s.minimum)) end
    if s.maximum and v > s.maximum then return sformat("%s: %s is more than the maximum %s", path, show(v), show(s.maximum)) end
  elseif jt == "string" then
    if s.minLength and #v < s.minLength then return sformat("%s: shorter than %d characters", path, s.minLength) end
    if s.maxLength and #v > s.maxLength then return sformat("%s: longer than %d characters", path, s.maxLength) end
  end
  if jt == "object" or (jt == "empty" and t ~= "array") then
    local props = s.properties
    if s.required then
      for _, name in ipairs(s.required) do
        if v[name] == nil then return sformat("%s: missing required property '%s'", path, name) end
      end
    end
    local addl = s.additionalProperties
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    if #keys > 1 then sort(keys, function(a, b) return tostring(a) < tostring(b) end) end
    for _, k in ipairs(keys) do
      local sub = props and props[k]
      if sub then
        local err = validate(sub, v[k], prop_path(path, k))
        if err then return err end
      elseif addl == false then
        return sformat("%s: unexpected property '%s'", path, tostring(k))
      elseif type(addl) == "table" then
        local err = validate(addl, v[k], prop_path(path, k))
        if err then return err end
      end
    end
  end
  if jt == "array" then
    local n = #v
    if s.minItems and n < s.minItems then return sformat("%s: fewer than %d items", path, s.minItems) end
    if s.maxItems and n > s.maxItems then return sformat("%s: more than %d items", path, s.maxItems) end
    if s.items then
      for i = 1, n do
        local err = validate(s.items, v[i], sformat("%s[%d]", path, i))
        if err then return err end
      end
    end
  end
  if s.allOf then
    for _, sub in ipairs(s.allOf) do
      local err = validate(sub, v, path)
      if err then return err end
    end
  end
  if s.anyOf then
    local first
    for _, sub in ipairs(s.anyOf) do
      local err = validate(sub, v, path)
      if not err then first = nil; break end
      first = first or err
    end
    if first then return sformat("%s: matches none of anyOf (first: %s)", path, first) end
  end
  if s.oneOf then
    local n, first = 0, nil
    for _, sub in ipairs(s.oneOf) do
      local err = validate(sub, v, path)
      if err then first = first or err else n = n + 1 end
    end
    if n == 0 then return sformat("%s: matches none of oneOf (first: %s)", path, first) end
    if n > 1 then return sformat("%s: matches %d schemas of oneOf, expected exactly one", path, n) end
  end
  return nil
end

--- Validate a decoded JSON value against a (checked) schema. Returns nil
-- when it conforms, else "path: problem" (path starts with `root`, default
-- "value"); the first problem in key order is reported.
function _M.validate(s, v, root)
  return validate(s, v, root or "value")
end

return _M
