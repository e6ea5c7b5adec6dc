--- weft.thread — conversation threads (see docs/agents.md, Threads).
-- Agents are stateless; a thread holds one conversation: `thread.id`,
-- `thread.messages` (normalised messages {role, content, name, tool_calls,
-- tool_call_id, important}), `thread.metadata` (a JSON-serialisable
-- table). `thread:serialize()` gives a JSON string and
-- `weft.thread.deserialize(s)` the same thread back (a string that is not
-- a serialized thread raises a clear error). Ids are unique: a process
-- counter plus random hex drawn once per process. Uses weft.json, weft.urandom.
local json = require "weft.json"
local check = require "weft.check"

local type, ipairs, pairs, tostring, tonumber, error, setmetatable, getmetatable, pcall, next =
  type, ipairs, pairs, tostring, tonumber, error, setmetatable, getmetatable, pcall, next
local sformat = string.format
local NULL = json.null

local _M = {}

--- The version written by serialize (and the only one deserialize reads).
_M.FORMAT = 1

local Thread = {}
Thread.__index = Thread
Thread.__tostring = function(t) return "thread '" .. t.id .. "'" end
_M.Thread = Thread

-- Random hex unique to this process (from /dev/urandom when readable).
local function process_token()
  local hex = require("weft.urandom").hex(6)
  if hex then return hex end
  local seed = tostring({}):match("0x(%x+)") or "0"
  return sformat("%06x%06x", math.floor(os.time() % 0x1000000),
                 (tonumber(seed:sub(-6), 16) or 0) + math.floor(os.clock() * 1e6) % 0x1000000)
end

local TOKEN = process_token()
local counter = 0

--- A new unique thread id: "thread-<counter>-<process hex>".
function _M.new_id()
  counter = counter + 1
  return sformat("thread-%d-%s", counter, TOKEN)
end

--- True when v is a thread.
function _M.is_thread(v) return getmetatable(v) == Thread end

--- The spec of a tool call of an assistant message (weft.check): name,
-- id, arguments (a table or a JSON string); other fields are ignored.
_M.TOOL_CALL = check.spec("tool call", { type = "table", additionalProperties = true, properties = {
  name = { type = "string", minLength = 1, required = true },
  id = { type = "string" },
  arguments = { type = { "table", "string", "null" }, expect = "a table or a JSON string" },
} })

--- The spec of one chat message (weft.check): role, content, name; other
-- fields are ignored here (tool_calls and tool_call_id depend on the role:
-- see problem). The one message check of weft.thread and llm.chat.
_M.MESSAGE = check.spec("message", { type = "table", expect = "a message table", additionalProperties = true,
  properties = {
    role = { enum = { "system", "user", "assistant", "tool" }, required = true },
    content = { type = { "string", "null" }, expect = "a string" },
    name = { type = { "string", "null" }, expect = "a string" },
  } })
local TOOL_CALLS = { type = "table", expect = "a list" }
local TOOL_CALL_ID = { type = "string" }

--- The problem of chat message m (named where: "messages[2]"), or nil:
-- its fields (MESSAGE), content (a string, or absent in an assistant
-- message with tool calls), an assistant's tool_calls (a list of
-- TOOL_CALL) and a tool message's tool_call_id (a string).
function _M.problem(m, where)
  if m == nil then return where .. " must be a message table, got nothing" end
  local err = check.value(_M.MESSAGE, m, where)
  if err then return err end
  local role, calls = m.role, m.tool_calls
  if calls == NULL then calls = nil end
  if role == "assistant" and calls ~= nil then
    err = check.value(TOOL_CALLS, calls, where .. ".tool_calls")
    if err then return err end
    for i, c in ipairs(calls) do
      err = check.value(_M.TOOL_CALL, c, sformat("%s.tool_calls[%d]", where, i))
      if err then return err end
    end
  elseif role == "tool" then
    if m.tool_call_id == nil then return where .. ".tool_call_id must be a string, got nothing" end
    err = check.value(TOOL_CALL_ID, m.tool_call_id, where .. ".tool_call_id")
    if err then return err end
  end
  if (m.content == nil or m.content == NULL) and not (role == "assistant" and calls ~= nil) then
    return where .. ".content must be a string, got nothing"
  end
  return nil
end

-- Copy a checked list of tool calls: arguments decoded from JSON (a
-- string that is not JSON stays as it is), ids given to those without.
local function norm_calls(calls)
  local out = json.array()
  for i, c in ipairs(calls) do
    local a = c.arguments
    if type(a) == "string" then
      local v = json.decode(a ~= "" and a or "{}")
      a = type(v) == "table" and v or a
    end
    if a == nil or a == NULL then a = json.object() end
    out[i] = { id = c.id or ("call_" .. i), name = c.name, arguments = a }
  end
  return out
end

--- Normalise one message (a string is a user message); raises
-- "<where>: problem" (where defaults to "message") on a bad one.
function _M.message(m, where)
  where = where or "message"
  if type(m) == "string" then return { role = "user", content = m } end
  if type(m) ~= "table" then error(sformat("%s must be a string or a message table, got %s", where, type(m)), 0) end
  local err = _M.problem(m, where)
  if err then error(err, 0) end
  local role, c = m.role, m.content
  local n = { role = role, content = c ~= NULL and c or "" }
  if m.name ~= nil and m.name ~= NULL then n.name = m.name end
  if role == "assistant" and m.tool_calls ~= nil and m.tool_calls ~= NULL then
    local calls = norm_calls(m.tool_calls)
    if #calls > 0 then n.tool_calls = calls end
  elseif role == "tool" then
    n.tool_call_id = m.tool_call_id
  end
  if m.important then n.important = true end
  return n
end

-- Normalise a list of messages (raises naming the index).
local function norm_list(list, where)
  local out = {}
  for i, m in ipairs(list) do out[i] = _M.message(m, sformat("%s[%d]", where, i)) end
  return out
end

--- Normalise an input — a string, a message or a list of messages — to a
-- list of messages; raises "<where>...: problem".
function _M.input(input, where)
  where = where or "input"
  if type(input) == "string" then return { { role = "user", content = input } } end
  if type(input) ~= "table" then
    error(sformat("%s must be a string, a message or a list of messages, got %s", where, type(input)), 0)
  end
  if input.role ~= nil then return { _M.message(input, where) } end
  if input[1] == nil then error(where .. " is an empty list of messages", 0) end
  return norm_list(input, where)
end

local NEW = check.spec("weft.thread.new", { properties = {
  id = { type = "string", minLength = 1, aliases = { "thread_id", "name" } },
  messages = { type = "table", expect = "a list of messages", aliases = { "history", "message" } },
  metadata = { type = "table", aliases = { "meta", "data" } },
} })

--- A new thread: new([{id = ..., messages = {...}, metadata = {...}}]).
function _M.new(opts)
  opts = check.options(NEW, opts, 2)
  local id, md = opts.id, opts.metadata
  local msgs = {}
  if opts.messages ~= nil then
    local ok, r = pcall(norm_list, opts.messages, "messages")
    if not ok then error("weft.thread.new: " .. tostring(r), 2) end
    msgs = r
  end
  return setmetatable({ id = id or _M.new_id(), messages = msgs, metadata = md or {} }, Thread)
end

--- Append a message (a string is a user message) after normalising it;
-- returns the stored message. Raises on a bad message.
function Thread:append(m)
  local ok, n = pcall(_M.message, m, "message")
  if not ok then error(sformat("thread '%s': append: %s", self.id, tostring(n)), 2) end
  local msgs = self.messages
  msgs[#msgs + 1] = n
  return n
end

--- The number of messages.
function Thread:len() return #self.messages end

--- The last message (or nil).
function Thread:last() return self.messages[#self.messages] end

--- The thread as a JSON string {format, id, messages, metadata}; raises
-- naming the field when a message or the metadata is not serialisable.
function Thread:serialize()
  local msgs = json.array()
  for i, m in ipairs(self.messages) do msgs[i] = m end
  local ok, s = pcall(json.encode, { format = _M.FORMAT, id = self.id, messages = msgs,
                                     metadata = self.metadata }, { root = "thread" })
  if not ok then error(sformat("thread '%s': serialize: %s", self.id, tostring(s)), 2) end
  return s
end

--- A copy of the thread with a new id (or the given one); messages are
-- shared (they are treated as read-only).
function Thread:fork(id)
  local msgs = {}
  for i, m in ipairs(self.messages) do msgs[i] = m end
  local md = {}
  for k, v in pairs(self.metadata) do md[k] = v end
  return setmetatable({ id = id or _M.new_id(), messages = msgs, metadata = md }, Thread)
end

-- A store object from a URL or a store object.
local function store_of(s, fname)
  if type(s) == "string" then
    local st, err = require("weft.store").open(s)
    if not st then error(fname .. ": store " .. s .. ": " .. tostring(err), 3) end
    return st
  end
  if type(s) ~= "table" then error(fname .. ": store must be a URL or a weft.store object", 3) end
  return s
end

--- Save the thread in a store (namespace "threads", key = its id):
-- true, or nil, err.
function Thread:save(store)
  local st = store_of(store, "thread:save")
  return st:put("threads", self.id, self:serialize())
end

--- The thread id saved in store: a thread, or nil, err ("unknown thread
-- 'x'" when absent); a corrupt stored thread raises.
function _M.load(id, store)
  if type(id) ~= "string" or id == "" then error("weft.thread.load: id must be a non-empty string", 2) end
  local st = store_of(store, "weft.thread.load")
  local s, err = st:get("threads", id)
  if s == nil then return nil, err or ("unknown thread '" .. id .. "'") end
  return _M.deserialize(s)
end

--- The thread a string from serialize() describes; raises
-- "weft.thread.deserialize: ..." naming the problem for anything else.
function _M.deserialize(s)
  local function bad(msg) error("weft.thread.deserialize: " .. msg, 3) end
  if type(s) ~= "string" then bad("expects a string from thread:serialize(), got " .. type(s)) end
  local d, err = json.decode(s)
  if d == nil then bad("not a serialized thread: " .. tostring(err)) end
  if type(d) ~= "table" or json.is_array(d) then bad("not a serialized thread: expected a JSON object") end
  if d.format ~= _M.FORMAT then
    bad(sformat("not a serialized thread: format %s is not %d", tostring(d.format), _M.FORMAT))
  end
  if type(d.id) ~= "string" or d.id == "" then bad("not a serialized thread: id must be a non-empty string") end
  if type(d.messages) ~= "table" or (next(d.messages) ~= nil and not json.is_array(d.messages)) then
    bad("thread '" .. d.id .. "': messages must be a list")
  end
  local ok, msgs = pcall(norm_list, d.messages, "messages")
  if not ok then bad("thread '" .. d.id .. "': " .. tostring(msgs)) end
  -- keep the decoded tables (markers and all) so that serialize round-trips
  for i, m in ipairs(d.messages) do
    local n = msgs[i]
    if n.tool_calls then
      for j, c in ipairs(n.tool_calls) do
        local a = m.tool_calls[j].arguments
        if type(a) == "table" then c.arguments = a end
      end
    end
  end
  local md = d.metadata
  if md == nil or md == NULL then md = {} end
  if type(md) ~= "table" or (next(md) ~= nil and json.is_array(md)) then
    bad("thread '" .. d.id .. "': metadata must be an object")
  end
  return setmetatable({ id = d.id, messages = msgs, metadata = md }, Thread)
end

return _M
