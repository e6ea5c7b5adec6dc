--- weft.memory — memory providers for agents (see docs/agents.md, Memory
-- providers). A provider is a table with optional hooks
-- `before_invoke(thread, messages, agent)` -> a list of extra context
-- messages for the run's model calls, and `after_invoke(thread,
-- new_messages, agent)` called after a successful run with the messages it
-- added. Hooks may yield; one that raises fails the run (nil, err naming
-- the agent). `in_memory{extract = fn(message, thread) -> fact | {facts} |
-- nil}` keeps facts per thread id and injects them as one system message;
-- `none()` does nothing. Pure Lua.
local check = require "weft.check"

local type, ipairs, pairs, tostring, error, setmetatable =
  type, ipairs, pairs, tostring, error, setmetatable
local sformat, concat = string.format, table.concat

local _M = {}

local FACTS = {
  extract = { type = "function", expect = "a function(message) -> fact|nil", aliases = { "extractor" } },
  max_facts = { type = "integer", minimum = 1, aliases = { "max", "limit", "capacity" } },
  title = { type = "string" },
}
local IN_MEMORY = check.spec("weft.memory.in_memory", { properties = FACTS })
local STORED_PROPS = { store = { type = { "string", "table" }, required = true,
                                 expect = "a store URL or a weft.store object", aliases = { "backend", "url" } } }
for k, p in pairs(FACTS) do STORED_PROPS[k] = p end
local STORED = check.spec("weft.memory.stored", { properties = STORED_PROPS })
local PROVIDERS = { type = "table", required = true, expect = "a list of providers" }
local PROVIDER = { type = "table", expect = "a provider table {before_invoke, after_invoke}" }

--- The default extractor: from user messages, "remember (that) X" and
-- "my NAME is X" give a fact ("X", "NAME is X").
function _M.default_extract(m)
  if m.role ~= "user" or type(m.content) ~= "string" then return nil end
  local s = m.content
  local f = s:match("^%s*[Rr]emember that%s+(.-)%s*[%.!]?%s*$") or s:match("^%s*[Rr]emember:?%s+(.-)%s*[%.!]?%s*$")
  if f and f ~= "" then return f end
  local what, val = s:match("[Mm]y%s+([%a ]-)%s+is%s+([^%.!,;]+)")
  if what and val then return "user's " .. what .. " is " .. (val:gsub("%s+$", "")) end
  return nil
end

local InMemory = {}
InMemory.__index = InMemory

--- A provider keeping facts in this process, per thread id:
-- in_memory{extract = fn(message, thread) (default default_extract),
-- max_facts = n (default 100; the oldest are dropped), title = "Known
-- facts:" (the system message's first line)}.
function _M.in_memory(opts)
  opts = check.options(IN_MEMORY, opts, 2)
  local extract = opts.extract or _M.default_extract
  local max = opts.max_facts or 100
  local title = opts.title or "Known facts:"
  local self = setmetatable({ extract = extract, max_facts = max, title = title, _facts = {} }, InMemory)
  -- hooks as closures, so the provider can be passed around as a plain table
  self.before_invoke = function(thread) return self:context(thread.id) end
  self.after_invoke = function(thread, new_messages) self:learn(thread, new_messages) end
  return self
end

--- The facts of a thread id (a list of strings; empty when none).
function InMemory:facts(thread_id)
  local l = self._facts[thread_id]
  local out = {}
  if l then for i, f in ipairs(l) do out[i] = f end end
  return out
end

--- Add a fact for a thread id (duplicates are ignored); returns true when added.
function InMemory:add(thread_id, fact)
  if type(thread_id) ~= "string" then error("memory:add: thread_id must be a string", 2) end
  if type(fact) ~= "string" or fact == "" then error("memory:add: fact must be a non-empty string", 2) end
  local l = self._facts[thread_id]
  if not l then l = {}; self._facts[thread_id] = l end
  for _, f in ipairs(l) do if f == fact then return false end end
  l[#l + 1] = fact
  if #l > self.max_facts then table.remove(l, 1) end
  return true
end

--- Forget the facts of a thread id (all threads when nil).
function InMemory:clear(thread_id)
  if thread_id == nil then self._facts = {} else self._facts[thread_id] = nil end
end

--- The context messages for a thread id: one system message listing the
-- facts, or an empty list.
function InMemory:context(thread_id)
  local l = self._facts[thread_id]
  if not l or #l == 0 then return {} end
  local lines = { self.title }
  for i, f in ipairs(l) do lines[i + 1] = "- " .. f end
  return { { role = "system", content = concat(lines, "\n") } }
end

--- Run the extractor over new messages and keep the facts it returns.
function InMemory:learn(thread, new_messages)
  for _, m in ipairs(new_messages or {}) do
    local f = self.extract(m, thread)
    if type(f) == "string" then
      if f ~= "" then self:add(thread.id, f) end
    elseif type(f) == "table" then
      for _, x in ipairs(f) do
        if type(x) == "string" and x ~= "" then self:add(thread.id, x) end
      end
    elseif f ~= nil then
      error(sformat("in_memory: extract returned a %s (expected a string, a list of strings or nil)", type(f)), 0)
    end
  end
end

--- A provider like in_memory whose facts live in a store (namespace
-- "memory", key = the thread id), so they survive the process and are
-- shared by every process using the store: stored{store = url|store,
-- extract, max_facts, title}.
function _M.stored(opts)
  local err = check.problem(STORED, opts)
  if err then error(err, 2) end
  local store = opts.store
  if type(store) == "string" then
    local st, err = require("weft.store").open(store)
    if not st then error("weft.memory.stored: store " .. store .. ": " .. tostring(err), 2) end
    store = st
  end
  local o = {}
  for k, v in pairs(opts) do if k ~= "store" then o[k] = v end end
  local self = _M.in_memory(o)
  local json = require "weft.json"
  local loaded = {}
  -- facts of thread id from the store (once per thread and provider)
  local function load(id)
    if loaded[id] then return end
    local s, err = store:get("memory", id)
    if s == nil and err then error("weft.memory.stored: " .. tostring(err), 0) end
    local list = s and json.decode(s)
    self._facts[id] = type(list) == "table" and list or nil
    loaded[id] = true
  end
  self.store = store
  self.before_invoke = function(thread)
    load(thread.id)
    return self:context(thread.id)
  end
  self.after_invoke = function(thread, new_messages)
    load(thread.id)
    self:learn(thread, new_messages)
    local ok2, err = store:put("memory", thread.id, json.encode(json.array(self:facts(thread.id))))
    if not ok2 then error("weft.memory.stored: " .. tostring(err), 0) end
  end
  return self
end

--- A provider that does nothing.
function _M.none()
  return { before_invoke = function() return nil end, after_invoke = function() end }
end

--- Combine providers: contexts concatenated in order, after_invoke called on each.
function _M.chain(providers)
  check.arg("weft.memory.chain", "providers", providers, PROVIDERS, 2)
  for i, p in ipairs(providers) do check.arg("weft.memory.chain", sformat("providers[%d]", i), p, PROVIDER, 2) end
  return {
    before_invoke = function(thread, messages, agent)
      local out = {}
      for _, p in ipairs(providers) do
        if p.before_invoke then
          local l = p.before_invoke(thread, messages, agent)
          if type(l) == "table" then
            if l.role then l = { l } end
            for _, m in ipairs(l) do out[#out + 1] = m end
          end
        end
      end
      return out
    end,
    after_invoke = function(thread, new_messages, agent)
      for _, p in ipairs(providers) do
        if p.after_invoke then p.after_invoke(thread, new_messages, agent) end
      end
    end,
  }
end

return _M
