--- weft.window — context-window reducers for agents (see docs/agents.md,
-- Context-window reducers; `weft.reducers` before 0.2): functions `reducer(messages) -> messages` that keep the
-- context an agent sends bounded. They never change the thread (an agent
-- passes the thread's messages through its reducer for each model call).
-- Every reducer keeps all system messages, in place, and never separates
-- a tool message from the assistant message that called it: the unit of
-- selection is a block (an assistant message with tool calls plus the tool
-- results that follow it, or any other single message), and the most recent
-- block is always kept. Not to be confused with weft.reduce (state
-- reducers of workflows). Uses weft.json.
local json = require "weft.json"
local check = require "weft.check"

local type, ipairs, tostring, error, setmetatable, pcall, ceil, floor =
  type, ipairs, tostring, error, setmetatable, pcall, math.ceil, math.floor
local sformat, concat = string.format, table.concat

local _M = {}

local COUNT = { type = "integer", minimum = 1, required = true }

-- Raise a misuse error about argument name of reducer fn (at the caller of
-- the reducer's constructor).
local function check_count(fn, name, v)
  check.arg("weft.window." .. fn, name, v, COUNT, 3)
end

--- The estimated tokens of a message: its characters (content, tool call
-- names and JSON arguments) divided by 4, rounded up, plus 1.
function _M.estimate_tokens(m)
  local n = type(m.content) == "string" and #m.content or 0
  if m.tool_calls then
    for _, c in ipairs(m.tool_calls) do
      n = n + #tostring(c.name)
      local a = c.arguments
      if type(a) == "table" then
        local ok, s = pcall(json.encode, a)
        n = n + (ok and #s or 0)
      elseif type(a) == "string" then
        n = n + #a
      end
    end
  end
  return ceil(n / 4) + 1
end

--- The blocks of the non-system messages: a list of {first, last, size,
-- important} (indices into messages; size counts non-system messages).
function _M.blocks(messages)
  local out, cur = {}, nil
  for i, m in ipairs(messages) do
    local role = m.role
    if role ~= "system" then
      if role == "tool" and cur and cur.calls then
        cur.last, cur.size = i, cur.size + 1
        if m.important then cur.important = true end
      else
        cur = { first = i, last = i, size = 1, important = m.important == true,
                calls = role == "assistant" and m.tool_calls ~= nil and #m.tool_calls > 0 }
        out[#out + 1] = cur
      end
    end
  end
  return out
end

-- The messages of the kept blocks (keep[b] true), every system message, and
-- `insert` (a message) at the place of the first dropped one, in order.
local function assemble(messages, blocks, keep, insert)
  local of = {}
  for bi, b in ipairs(blocks) do
    for i = b.first, b.last do of[i] = bi end
  end
  local out = {}
  for i, m in ipairs(messages) do
    local bi = of[i]
    if m.role == "system" or bi == nil then
      out[#out + 1] = m
    elseif keep[bi] then
      out[#out + 1] = m
    elseif insert then
      out[#out + 1] = insert
      insert = nil
    end
  end
  return out
end

-- Index of the first block of the longest suffix of blocks whose sizes
-- (measured by cost(b)) sum to at most budget; the last block always counts.
local function suffix_start(blocks, budget, cost)
  local n = #blocks
  if n == 0 then return 1 end
  local total = cost(blocks[n])
  local first = n
  for bi = n - 1, 1, -1 do
    local c = cost(blocks[bi])
    if total + c > budget then break end
    total = total + c
    first = bi
  end
  return first
end

-- The size of a block in messages.
local function size_of(b) return b.size end

-- The messages of blocks first.. (and, when keep_important, of the older
-- blocks holding an important message) plus every system message.
local function keep_from(messages, blocks, first, keep_important)
  if first == 1 then return messages end
  local keep = {}
  for bi = first, #blocks do keep[bi] = true end
  if keep_important then
    for bi = 1, first - 1 do
      if blocks[bi].important then keep[bi] = true end
    end
  end
  return assemble(messages, blocks, keep)
end

-- The window of message_count and sliding_window: the last n non-system
-- messages in whole blocks (see keep_from).
local function last_messages(n, keep_important)
  return function(messages)
    local blocks = _M.blocks(messages)
    return keep_from(messages, blocks, suffix_start(blocks, n, size_of), keep_important)
  end
end

--- The last n non-system messages (whole blocks; the most recent block is
-- kept even when it alone is larger), plus every system message.
function _M.message_count(n)
  check_count("message_count", "n", n)
  return last_messages(n, false)
end

--- The most recent messages whose estimated tokens (estimate_tokens) fit
-- in max_tokens together with every system message (which are all kept).
function _M.token_count(max_tokens)
  check_count("token_count", "max_tokens", max_tokens)
  return function(messages)
    local sys = 0
    for _, m in ipairs(messages) do
      if m.role == "system" then sys = sys + _M.estimate_tokens(m) end
    end
    local blocks = _M.blocks(messages)
    local function cost(b)
      local c = b.tokens
      if not c then
        c = 0
        for i = b.first, b.last do
          if messages[i].role ~= "system" then c = c + _M.estimate_tokens(messages[i]) end
        end
        b.tokens = c
      end
      return c
    end
    return keep_from(messages, blocks, suffix_start(blocks, max_tokens - sys, cost), false)
  end
end

--- The last n non-system messages (as message_count), plus, when
-- keep_important, every block holding a message with important = true.
function _M.sliding_window(n, keep_important)
  check_count("sliding_window", "n", n)
  return last_messages(n, keep_important)
end

--- The transcript of messages for a summary prompt, one line each.
function _M.transcript(messages, first, last)
  local lines = {}
  for i = first or 1, last or #messages do
    local m = messages[i]
    if m.role ~= "system" then
      local line = m.role .. (m.name and (" (" .. m.name .. ")") or "") .. ": " .. (m.content or "")
      if m.tool_calls then
        local calls = {}
        for j, c in ipairs(m.tool_calls) do
          local ok, a = pcall(json.encode, c.arguments or json.object())
          calls[j] = tostring(c.name) .. " " .. (ok and a or "{}")
        end
        line = line .. (m.content ~= "" and " " or "") .. "[calls " .. concat(calls, "; ") .. "]"
      end
      lines[#lines + 1] = line
    end
  end
  return concat(lines, "\n")
end

--- The prompt the summarizing reducer sends to its agent (the transcript
-- follows it).
_M.SUMMARY_PROMPT = "Summarise the following conversation in a few sentences. " ..
  "Keep every fact, name, number and decision that later messages may need.\n\n"

--- The prefix of the system message holding a summary.
_M.SUMMARY_PREFIX = "Summary of the earlier conversation: "

--- Past threshold non-system messages, the older ones are replaced by one
-- system message holding a summary written by agent (anything with
-- run(input) -> {text} | nil, err); the most recent keep messages (default
-- half the threshold, at least 1; whole blocks) stay as they are.
-- Summaries are cached per summarised prefix, so a conversation is not
-- summarised again while that prefix is unchanged. A failed summary raises
-- (the agent run using the reducer then fails naming the reducer).
function _M.summarizing(agent, threshold, keep)
  if type(agent) ~= "table" or type(agent.run) ~= "function" then
    error("weft.window.summarizing: agent must be an agent (weft.agent{...})", 2)
  end
  check_count("summarizing", "threshold", threshold)
  if keep == nil then keep = floor(threshold / 2) end
  if keep < 1 then keep = 1 end
  check_count("summarizing", "keep", keep)
  local cache = setmetatable({}, { __mode = "k" }) -- last summarised message -> {first, n, summary}
  return function(messages)
    local blocks = _M.blocks(messages)
    local total = 0
    for _, b in ipairs(blocks) do total = total + b.size end
    if total <= threshold then return messages end
    local first = suffix_start(blocks, keep, size_of)
    if first == 1 then return messages end
    local last_dropped = blocks[first - 1].last
    local anchor, head = messages[last_dropped], messages[blocks[1].first]
    local c = cache[anchor]
    local summary
    if c and c.head == head and c.n == last_dropped then
      summary = c.summary
    else
      local prompt = _M.SUMMARY_PROMPT .. _M.transcript(messages, 1, last_dropped)
      local res, err = agent:run(prompt)
      if not res then
        error(sformat("summarizing: agent '%s' failed: %s", tostring(agent.name), tostring(err)), 0)
      end
      summary = { role = "system", content = _M.SUMMARY_PREFIX .. tostring(res.text) }
      cache[anchor] = { head = head, n = last_dropped, summary = summary }
    end
    local keepset = {}
    for bi = first, #blocks do keepset[bi] = true end
    return assemble(messages, blocks, keepset, summary)
  end
end

return _M
