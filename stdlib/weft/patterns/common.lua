--- weft.patterns.common — helpers shared by the orchestration patterns:
-- option and agent-list validation (errors name the pattern, the field and
-- the agent), input normalisation to a message list, calling an agent on a
-- fresh thread (errors become `nil, err` naming the agent), finding
-- participant names in a text, and a default `max_supersteps` for the
-- built workflow (a pattern's loop may need more than the run default of
-- 100 supersteps), and the participants' executors. Participants are
-- called with agent:stream, so their model chunks are agent_update events
-- of the executor that runs them. Uses weft, weft.json, weft.check,
-- weft.agent.
local weft = require "weft"
local json = require "weft.json"
local check = require "weft.check"
local agent_mod = require "weft.agent"

local type, error, pairs, ipairs, tostring, pcall, select, setmetatable =
  type, error, pairs, ipairs, tostring, pcall, select, setmetatable
local sformat, concat, lower = string.format, table.concat, string.lower

local _M = {}

--- True when v can be called (weft.check.callable).
_M.callable = check.callable

-- Specs of the patterns' option sets, made once per set.
local specs = setmetatable({}, { __mode = "k" })

--- Check that opts is a table with only the known keys (a set name ->
-- true, or name -> property schema of weft.check); raises "<pattern>:
-- unknown option 'x' (options: ...); did you mean 'y'?" at level.
function _M.check_options(pattern, opts, known, level)
  level = (level or 1) + 1
  if type(opts) ~= "table" then
    error(sformat("%s: expects an options table {agents = {...}, ...}, got %s", pattern, type(opts)), level)
  end
  local s = specs[known]
  if not s then
    local props = {}
    for k, p in pairs(known) do props[k] = p == true and { type = "any" } or p end
    s = check.spec(pattern, { properties = props })
    specs[known] = s
  end
  check.options(s, opts, level)
end

--- True when v looks like an agent: a table with a name and a run method.
function _M.is_agent(v)
  return type(v) == "table" and type(v.name) == "string" and v.name ~= "" and _M.callable(v.run)
end

--- Validate a list of agents (field `what` of pattern): non-empty, each an
-- agent, names unique and not among `reserved` (ids of the pattern's own
-- executors). Returns the list of names and a name -> agent map; raises at
-- level naming the offending entry.
function _M.check_agents(pattern, list, what, reserved, level)
  level = (level or 1) + 1
  if type(list) ~= "table" or list[1] == nil then
    error(sformat("%s: %s must be a non-empty list of agents", pattern, what), level)
  end
  local names, byname, at = {}, {}, {}
  for i, a in ipairs(list) do
    if not _M.is_agent(a) then
      error(sformat("%s: %s[%d] is not an agent (a table with a name and a run method, e.g. weft.agent{...}), got %s",
                    pattern, what, i, type(a)), level)
    end
    local n = a.name
    if at[n] then
      error(sformat("%s: duplicate agent name '%s' (%s[%d] and %s[%d])", pattern, n, what, at[n], what, i), level)
    end
    if reserved and reserved[n] then
      error(sformat("%s: agent name '%s' (%s[%d]) is reserved: the pattern has an executor with this id",
                    pattern, n, what, i), level)
    end
    at[n] = i
    names[i], byname[n] = n, a
  end
  local count = 0
  for k in pairs(list) do
    count = count + 1
    if type(k) ~= "number" then
      error(sformat("%s: %s must be a list (found key '%s')", pattern, what, tostring(k)), level)
    end
  end
  if count ~= #names then error(sformat("%s: %s must be a list without holes", pattern, what), level) end
  return names, byname
end

--- Check an optional integer option (>= min); returns it or the default.
function _M.check_int(pattern, opts, key, default, min, level)
  local v = opts[key]
  if v == nil then return default end
  check.arg(pattern, key, v, { type = "integer", minimum = min }, (level or 1) + 1)
  return v
end

-- A copy of a message (received values are read-only; agents may normalise
-- the messages they are given).
local function copy_message(m)
  local c = {}
  for k, v in pairs(m) do c[k] = v end
  return c
end

--- The run input as a new list of messages: a string is one user message,
-- a message table {role, content} a list of one, a list of messages is
-- copied. Raises "<pattern>: input must be ..." otherwise.
function _M.to_messages(pattern, input)
  local t = type(input)
  if t == "string" then return { { role = "user", content = input } } end
  if t == "table" then
    if type(input.role) == "string" then return { copy_message(input) } end
    if input[1] ~= nil then
      local out = {}
      for i, m in ipairs(input) do
        if type(m) ~= "table" or type(m.role) ~= "string" then
          error(sformat("%s: input[%d] is not a message {role, content}", pattern, i), 0)
        end
        out[i] = copy_message(m)
      end
      return out
    end
  end
  error(sformat("%s: input must be a string or a list of messages {role, content}, got %s",
                pattern, t == "table" and "an empty or non-message table" or t), 0)
end

--- A shallow copy of a list with extra items appended.
function _M.append(list, ...)
  local out = {}
  for i = 1, #list do out[i] = list[i] end
  local n = #out
  for i = 1, select("#", ...) do out[n + i] = select(i, ...) end
  return out
end

-- The on_chunk of a streamed participant run: inside an executor the
-- model's chunks are already published as agent_update events of the
-- invocation (weft.llm, nested workflow runs), so nothing more to do.
local function ignore_chunk() end

--- True when agent is called with agent:stream rather than agent:run: a
-- weft.agent or a workflow agent (weft.agent.is_agent_like), whose stream
-- is run plus chunks. Other agents (a remote A2A agent, whose stream is a
-- capability of the remote server, or any table with a run method) run.
function _M.streams(agent)
  return agent_mod.is_agent_like(agent)
end

--- Call agent:stream (see streams, else agent:run) with (messages,
-- thread) on a copy of the messages and thread (default: a fresh one), so
-- that inside a workflow the participant's model chunks are agent_update
-- events of the executor. Returns the run result, or nil and an error
-- naming the agent (for a returned error, a raised one, or a result that
-- is not a table).
function _M.call_agent(agent, messages, thread)
  local input = {}
  for i, m in ipairs(messages) do input[i] = copy_message(m) end
  if thread == nil and _M.callable(agent.new_thread) then
    local ok, th = pcall(agent.new_thread, agent)
    if ok then thread = th end
  end
  local ok, res, err
  if _M.streams(agent) then
    ok, res, err = pcall(agent.stream, agent, input, thread, ignore_chunk)
  else
    ok, res, err = pcall(agent.run, agent, input, thread)
  end
  local name = agent.name
  local msg
  if not ok then
    msg = tostring(res)
  elseif type(res) ~= "table" then
    msg = err ~= nil and tostring(err) or "the run returned no result"
  else
    if res.text ~= nil and type(res.text) ~= "string" then
      return nil, sformat("agent '%s': the run's text is a %s, not a string", name, type(res.text))
    end
    return res
  end
  if not msg:find("'" .. name .. "'", 1, true) then msg = sformat("agent '%s': %s", name, msg) end
  return nil, msg
end

--- The messages an agent's run added after the conversation conv it was
-- given (res.messages holds the run's input then what it added): its
-- assistant messages (with their tool calls) named after the agent, and
-- its tool results; the reply alone when the result has no such list.
function _M.run_messages(name, conv, res)
  local msgs = type(res.messages) == "table" and res.messages or nil
  local out = {}
  if msgs and #msgs > #conv then
    for i = #conv + 1, #msgs do
      local m = copy_message(msgs[i])
      if m.role == "assistant" then m.name = name end
      out[#out + 1] = m
    end
    local last = out[#out]
    if last.role == "assistant" and last.tool_calls == nil then return out end
  end
  return { _M.reply_message(name, res.text) }
end

--- The assistant message of an agent's reply in a shared conversation.
function _M.reply_message(name, text)
  return { role = "assistant", name = name, content = text or "" }
end

--- The text of a message list as a transcript, one "[name]: content" block
-- per message (name, else role).
function _M.transcript(messages)
  local out = {}
  for i, m in ipairs(messages) do
    local who = m.name or m.role or "?"
    local c = m.content
    if c == json.null or c == nil then c = "" end
    out[i] = sformat("[%s]: %s", tostring(who), tostring(c))
  end
  return concat(out, "\n")
end

--- The text of the last user message of a list ("" when none).
function _M.last_user_text(messages)
  for i = #messages, 1, -1 do
    local m = messages[i]
    if m.role == "user" and type(m.content) == "string" then return m.content end
  end
  return ""
end

-- True when the byte at position i of s is not a name character (or i is
-- outside s).
local function boundary(s, i)
  if i < 1 or i > #s then return true end
  return not s:sub(i, i):match("[%w_]")
end

--- Position of the first mention of word in text as a whole word (case
-- insensitive, plain), or nil.
function _M.find_word(text, word)
  local s, w = lower(text), lower(word)
  local init = 1
  while true do
    local a, b = s:find(w, init, true)
    if not a then return nil end
    if boundary(s, a - 1) and boundary(s, b + 1) then return a end
    init = a + 1
  end
end

--- The participant of `names` mentioned first in text (as a whole word,
-- case insensitive), skipping `except`; nil when none is.
function _M.first_mentioned(text, names, except)
  if type(text) ~= "string" or text == "" then return nil end
  local best, pos
  for _, n in ipairs(names) do
    if n ~= except then
      local p = _M.find_word(text, n)
      -- the earliest mention wins; on a tie (one name inside another, e.g.
      -- "bob" and "bob-2"), the longer name
      if p and (pos == nil or p < pos or (p == pos and #n > #best)) then best, pos = n, p end
    end
  end
  return best
end

--- The participant a short answer names: the whole answer (trimmed of
-- spaces, quotes and punctuation, case insensitive) if it is a name, else
-- the first name mentioned in it; nil when it names none.
function _M.named_participant(text, names)
  if type(text) ~= "string" then return nil end
  local t = lower(text:gsub("^[%s\"'`*.:]+", ""):gsub("[%s\"'`*.!:]+$", ""))
  for _, n in ipairs(names) do
    if lower(n) == t then return n end
  end
  return _M.first_mentioned(text, names)
end

--- A short quoted excerpt of a text for error messages.
function _M.excerpt(text, max)
  text = tostring(text)
  max = max or 120
  if #text > max then text = text:sub(1, max) .. "..." end
  return sformat("%q", text):gsub("\\\n", "\\n")
end

--- Build b with the default run option max_supersteps = n (used when the
-- caller does not set it, resumed runs included), so that a pattern's own
-- bound (max_iterations, max_handoffs, max_rounds) is what stops it, not
-- the run default of 100 supersteps.
function _M.default_supersteps(b, n)
  if n > 100 then b:defaults{ max_supersteps = n } end
  return b:build()
end

--- A set (name -> true) of a list of strings.
function _M.set(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

--- The participants' executors: one per agent, named after it, with
-- description; handler(agent, name) gives each one's handle function.
function _M.participants(agents, description, handler)
  local workers = {}
  for i, agent in ipairs(agents) do
    workers[i] = weft.executor(agent.name, { description = description, handle = handler(agent, agent.name) })
  end
  return workers
end

return _M
