--- weft.secrets: the registry of secret strings in use (API keys, secret
-- header values), and the redaction that keeps them out of everything weft
-- writes: errors, events, and every store write (see docs/store.md).
--
--     local secrets = require "weft.secrets"
--     secrets.add(key)                       -- where a key is resolved
--     local safe = secrets.redact(body)      -- every secret -> "[redacted]"
--
-- At load it registers the values of the provider key variables present in
-- the environment (ENV_KEYS). A secret is a string of at least MIN_LEN bytes;
-- shorter values, nil and non-strings are ignored (redacting "abc" would
-- mangle ordinary text and protects nothing). Secrets are never removed: a
-- key that was in use may still appear in a late error body.
--
-- Cost: registration is rare (once per distinct key); redact() of a string
-- that contains no secret costs one plain string.find per secret. Listeners
-- (on_add) let a lower layer mirror the registry (the C store's hook).
local type, ipairs, error, find, sub, concat, os_getenv =
  type, ipairs, error, string.find, string.sub, table.concat, os.getenv

local _M = {}

--- Shortest value accepted as a secret, in bytes.
_M.MIN_LEN = 8

--- The replacement text of a redacted secret.
_M.MARK = "[redacted]"

--- Environment variables whose values are registered at load.
_M.ENV_KEYS = { "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY" }

local list = {}      -- registered secrets, longest first
local known = {}     -- secret -> true
local listeners = {} -- functions called with each newly registered secret

--- Register value as a secret; returns true when it was newly added. Ignores
-- nil, non-strings and strings shorter than MIN_LEN.
function _M.add(value)
  if type(value) ~= "string" or #value < _M.MIN_LEN or known[value] then return false end
  known[value] = true
  -- Longest first, so a secret that contains another is replaced whole.
  local i = #list + 1
  while i > 1 and #list[i - 1] < #value do
    list[i] = list[i - 1]
    i = i - 1
  end
  list[i] = value
  for _, fn in ipairs(listeners) do fn(value) end
  return true
end

--- True when value is a registered secret.
function _M.known(value)
  return known[value] == true
end

--- A copy of the registered secrets (internal: the store hook, tests).
function _M.list()
  local out = {}
  for i = 1, #list do out[i] = list[i] end
  return out
end

--- Number of registered secrets.
function _M.count()
  return #list
end

--- Call fn(secret) for every secret registered now and every one added later
-- (internal: lets a lower layer, e.g. the C store, mirror the registry).
function _M.on_add(fn)
  if type(fn) ~= "function" then error("weft.secrets.on_add: fn must be a function", 2) end
  listeners[#listeners + 1] = fn
  for i = 1, #list do fn(list[i]) end
end

-- s with every occurrence of secret (plain) replaced by MARK; nil when absent.
local function replace(s, secret)
  local a, b = find(s, secret, 1, true)
  if not a then return nil end
  local parts, n, pos = {}, 0, 1
  while a do
    n = n + 1; parts[n] = sub(s, pos, a - 1)
    n = n + 1; parts[n] = _M.MARK
    pos = b + 1
    a, b = find(s, secret, pos, true)
  end
  n = n + 1; parts[n] = sub(s, pos)
  return concat(parts, "", 1, n)
end

--- s with every registered secret replaced by "[redacted]" (plain search, no
-- patterns). Non-strings are returned unchanged.
function _M.redact(s)
  if type(s) ~= "string" then return s end
  for i = 1, #list do
    local r = replace(s, list[i])
    if r then s = r end
  end
  return s
end

--- True when s contains a registered secret.
function _M.contains(s)
  if type(s) ~= "string" then return false end
  for i = 1, #list do
    if find(s, list[i], 1, true) then return true end
  end
  return false
end

for _, name in ipairs(_M.ENV_KEYS) do _M.add(os_getenv(name)) end

return _M
