--- weft.check — the one option checker of the public API. A spec is an
-- object JSON schema (the vocabulary of weft.schema: type, enum, minimum,
-- maximum, minLength, properties, required, additionalProperties) whose
-- property types may also be the Lua-only types "callable" (a function or
-- a table with __call), "table" and "any", with three annotations for
-- errors: `expect` (what the value must be, in words), `aliases` (names
-- other frameworks use for the option: "did you mean" hints) and `test`
-- (fn(v) -> true | false for values no keyword describes). Specs are
-- compiled once, at load time; checking happens where options are given
-- (build and configuration time), never per invocation.
--
--   local S = check.spec("edge", { properties = {
--     when = { type = "callable", aliases = { "condition" } },
--     name = { type = "string" } } })
--   check.options(S, opts, 2)            -- raises at the caller's caller
--   local err = check.problem(S, body)   -- nil or the message (no raise)
--
-- One error format: "<what>: unknown option 'wen' (options: name, when);
-- did you mean 'when'?" and "<what>: when must be a function, got string".
-- `what` defaults to the spec's name (the public function). An object
-- schema from JSON (e.g. a server request body) is a spec as it is.
-- Uses weft.schema (JSON types).
local schema = require "weft.schema"

local type, pairs, ipairs, tostring, error, getmetatable, floor, huge =
  type, pairs, ipairs, tostring, error, getmetatable, math.floor, math.huge
local sformat, concat, sort, min, lower = string.format, table.concat, table.sort, math.min, string.lower
local json_type = schema.json_type

local _M = {}

--- True when v can be called (a function or a table with __call).
function _M.callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and type(mt.__call) == "function"
end
local callable = _M.callable

--- Make module M callable: M(opts) is M.new(opts, 2), which raises at the
-- caller of M(opts). Returns M.
function _M.constructor(M)
  return setmetatable(M, { __call = function(_, opts)
    local v = M.new(opts, 2) -- not a tail call: keeps error levels
    return v
  end })
end

--- Edit distance of a and b (insertions, deletions, substitutions and
-- swaps of adjacent characters), stopping early above limit.
function _M.distance(a, b, limit)
  limit = limit or huge
  local la, lb = #a, #b
  if la - lb > limit or lb - la > limit then return limit + 1 end
  local prev2, prev, cur = {}, {}, {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    cur[0] = i
    local ca, best = a:byte(i), i
    for j = 1, lb do
      local cb = b:byte(j)
      local d = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca == cb and 0 or 1))
      if i > 1 and j > 1 and ca == b:byte(j - 1) and a:byte(i - 1) == cb then
        d = min(d, prev2[j - 2] + 1)
      end
      cur[j] = d
      if d < best then best = d end
    end
    if best > limit then return limit + 1 end
    prev2, prev, cur = prev, cur, prev2
  end
  return prev[lb]
end

--- The candidate nearest to name (a list of strings, or a set name ->
-- true), or nil when none is near: same letters up to case, an alias
-- (aliases: alias -> candidate), or at most one edit per three characters.
function _M.nearest(name, candidates, aliases)
  if type(name) ~= "string" or name == "" then return nil end
  if aliases and aliases[name] then return aliases[name] end
  local list = candidates
  if candidates[1] == nil then
    list = {}
    for k in pairs(candidates) do list[#list + 1] = k end
  end
  local lname = lower(name)
  local limit = floor(#name / 3)
  if limit < 1 then limit = 1 end
  local best, bestd
  for _, c in ipairs(list) do
    if type(c) == "string" and c ~= name then
      local d = lower(c) == lname and 0 or _M.distance(name, c, limit)
      if d <= limit and d < #c and (bestd == nil or d < bestd or (d == bestd and c < best)) then
        best, bestd = c, d
      end
    end
  end
  return best
end

--- "; did you mean 'x'?" for the nearest candidate, or "".
function _M.did_you_mean(name, candidates, aliases)
  local n = _M.nearest(name, candidates, aliases)
  return n and sformat("; did you mean '%s'?", n) or ""
end

-- A value as errors show it: strings quoted, numbers and booleans as they
-- are, other values by type.
local function show(v)
  local t = type(v)
  if t == "string" then
    if #v > 40 then v = v:sub(1, 40) .. "..." end
    return "'" .. v .. "'"
  end
  if t == "number" or t == "boolean" then return tostring(v) end
  if v == nil then return "nothing" end
  return t
end
_M.show = show

local ARTICLE = { integer = "an integer", number = "a number", string = "a string", boolean = "a boolean",
                  object = "a table", table = "a table", array = "a list", callable = "a function",
                  null = "null", any = "any value" }

-- The words for what a property's value must be.
local function expect_of(p)
  if p.expect then return p.expect end
  if p.enum then
    local names = {}
    for i, e in ipairs(p.enum) do names[i] = show(e) end
    if #names == 1 then return names[1] end
    return concat(names, ", ", 1, #names - 1) .. " or " .. names[#names]
  end
  local t = p.type
  local s
  if type(t) == "table" then
    local names = {}
    for i, x in ipairs(t) do names[i] = ARTICLE[x] or x end
    s = concat(names, " or ")
  else
    s = ARTICLE[t] or (t and ("a " .. t)) or "a value"
  end
  if p.unit then s = s .. " of " .. p.unit end
  if t == "string" and p.minLength == 1 then s = "a non-empty string" end
  if p.minimum and p.maximum then
    s = sformat("%s from %s to %s", s, tostring(p.minimum), tostring(p.maximum))
  elseif p.minimum then
    s = sformat("%s >= %s", s, tostring(p.minimum))
  elseif p.maximum then
    s = sformat("%s <= %s", s, tostring(p.maximum))
  end
  return s
end

-- Whether v has type t (a JSON type of weft.schema or a Lua-only one).
local function has_type(v, t)
  if t == "any" then return true end
  if t == "callable" then return callable(v) end
  if t == "table" then return type(v) == "table" end
  if t == "integer" then return type(v) == "number" and v == floor(v) and v - 1 ~= v end
  if t == "number" then return type(v) == "number" and v == v end
  local jt = json_type(v)
  if jt == "empty" then return t == "object" or t == "array" end
  return jt == t
end

local problem

-- The problem of value v of property p (path: its name), or nil.
local function value_problem(p, v, path, what)
  local t = p.type
  local typed = true
  if t ~= nil then
    if type(t) == "table" then
      typed = false
      for _, x in ipairs(t) do
        if has_type(v, x) then typed = true; break end
      end
    else
      typed = has_type(v, t)
    end
  end
  local ok = typed
  if ok and p.enum then
    ok = false
    for _, e in ipairs(p.enum) do
      if e == v then ok = true; break end
    end
  end
  if ok and type(v) == "number" then
    if (p.minimum and v < p.minimum) or (p.maximum and v > p.maximum) then ok = false end
  elseif ok and type(v) == "string" then
    if (p.minLength and #v < p.minLength) or (p.maxLength and #v > p.maxLength) then ok = false end
  end
  if ok and p.test and not p.test(v) then ok = false end
  if not ok then
    -- numbers and booleans are shown; a string when its type was right
    local tv = type(v)
    local got = tv
    if tv == "number" or tv == "boolean" or (tv == "string" and (typed or p.enum)) then got = show(v) end
    return sformat("%s must be %s, got %s", path, expect_of(p), got)
  end
  if p.properties and type(v) == "table" then
    return problem(p, v, path .. ".", what)
  end
  return nil
end

-- The problem of options table opts against compiled spec s (prefix:
-- "" or "retry." for nested tables), or nil.
problem = function(s, opts, prefix, what)
  local props = s.properties
  local closed = s.additionalProperties ~= true
  local c = s._compiled or _M.compile(s)
  -- one pass over the options given (not over every name of the spec):
  -- unknown names first, the least in sorted order (deterministic); a spec
  -- without required names and good values is done here
  local unknown, bad
  -- next() called, not `for ... in pairs`: the LuaJIT of Debian 12
  -- (2.1.0-beta3+git20220320) can end a pairs loop early once its trace
  -- was blacklisted and the loop patched to ITERC (LuaJIT issue #827,
  -- fixed upstream in 2022-04): an unknown option went unseen.
  local k, v = next(opts)
  while k ~= nil do
    local p = props[k]
    if p == nil then
      if closed and (unknown == nil or tostring(k) < tostring(unknown)) then unknown = k end
    elseif not bad and value_problem(p, v, prefix == "" and k or prefix .. k, what) then
      bad = true
    end
    k, v = next(opts, k)
  end
  if unknown ~= nil then
    return sformat("unknown %s '%s%s' (%ss: %s)%s", c.noun, prefix, tostring(unknown), c.noun,
                   c.list, _M.did_you_mean(tostring(unknown), c.names, c.aliases))
  end
  if not bad and c.nrequired == 0 then return nil end
  -- the first problem in sorted order (the message is deterministic): a
  -- value given wrong before a required one missing (a part of an
  -- unsupported type is named as such, not for the field it lacks)
  if bad then
    for _, name in ipairs(c.names) do
      local v = opts[name]
      if v ~= nil then
        local err = value_problem(props[name], v, prefix .. name, what)
        if err then return err end
      end
    end
  end
  for _, name in ipairs(c.names) do
    if opts[name] == nil and c.required[name] then
      return sformat("%s%s must be %s, got nothing", prefix, name, expect_of(props[name]))
    end
  end
  return nil
end

--- Compile an object schema into a spec (idempotent; also done lazily by
-- problem/options): sorted option names, the required set, the alias map.
function _M.compile(s)
  if s._compiled then return s end
  local props = s.properties or {}
  s.properties = props
  local names, required, aliases = {}, {}, {}
  for k, p in pairs(props) do
    names[#names + 1] = k
    if p.required == true then required[k] = true end
    for _, a in ipairs(p.aliases or {}) do aliases[a] = k end
    if p.properties then _M.compile(p) end
  end
  for _, k in ipairs(type(s.required) == "table" and s.required or {}) do required[k] = true end
  sort(names)
  local nrequired = 0
  for _ in pairs(required) do nrequired = nrequired + 1 end
  s._compiled = { names = names, required = required, nrequired = nrequired, aliases = aliases, list = concat(names, ", "),
                  noun = s.noun or "option" }
  return s
end

--- A spec named fname (the public function, first word of its errors) from
-- an object schema; returns the schema, compiled.
function _M.spec(fname, s)
  s.name = fname
  return _M.compile(s)
end

--- The problem of opts (a table) against spec s, as "<what>: ..." (what
-- defaults to the spec's name), or nil when the options are good.
function _M.problem(s, opts, what)
  what = what or s.name
  if type(opts) ~= "table" then
    return sformat("%s: options must be a table, got %s", what, type(opts))
  end
  local err = problem(s._compiled and s or _M.compile(s), opts, "", what)
  if err then return what .. ": " .. err end
  return nil
end

--- Check opts against spec s and return them (an empty table for nil when
-- the spec has no required option); raises "<what>: ..." at level (1 =
-- the caller of options, as for error()).
function _M.options(s, opts, level, what)
  level = (level or 1) + 1
  if opts == nil then opts = {} end
  local err = _M.problem(s, opts, what)
  if err then error(err, level) end
  return opts
end

--- Check one value (an argument) against property schema p: raises
-- "<what>: <name> must be ..., got ..." at level; returns v.
function _M.arg(what, name, v, p, level)
  if v == nil and p.required ~= true then return v end
  local err = v == nil and sformat("%s must be %s, got nothing", name, expect_of(p)) or value_problem(p, v, name, what)
  if err then error(what .. ": " .. err, (level or 1) + 1) end
  return v
end

--- The problem of one value against property schema p (named name), or nil.
function _M.value(p, v, name)
  if v == nil then return nil end
  return value_problem(p, v, name or "value")
end

--- Raise "<what>: unknown <noun> 'x' (<noun>s: a, b); did you mean 'y'?"
-- at level, for a name not among candidates (a list, shown in its order).
function _M.unknown(what, noun, name, candidates, level)
  error(sformat("%s: unknown %s '%s' (%ss: %s)%s", what, noun, tostring(name), noun, concat(candidates, ", "),
                _M.did_you_mean(tostring(name), candidates)), (level or 1) + 1)
end

return _M
