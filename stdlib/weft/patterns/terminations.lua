--- weft.patterns.terminations — when a group chat ends.
--
-- A termination is `fn(state) -> reason | nil`, checked by the
-- orchestrator on the input messages (before any turn: rounds = 0,
-- last_speaker = nil) and after each turn, with `state = {messages =
-- conversation (the input messages included), rounds = turns done,
-- last_speaker = name | nil, speakers = {name of each turn}, participants =
-- {names}}`. A true value ends the chat; a string is reported as the
-- output's reason (`true` is reported as "termination").
--
-- `max_messages(n)` ("max_messages": the conversation holds n messages or
-- more), `max_rounds(n)` ("max_rounds": n turns done), `keyword(word)`
-- ("keyword": the last message is a reply containing word, case
-- insensitive), `any{...}` (the reason of the first that fires),
-- `all{...}` (all fire at once; reason "all(r1, r2, ...)").
-- Uses weft.patterns.common, weft.check.
local common = require "weft.patterns.common"
local check = require "weft.check"

local type, error, ipairs, tostring = type, error, ipairs, tostring
local sformat, concat, lower = string.format, table.concat, string.lower

local _M = {}

local COUNT = { type = "integer", minimum = 1, required = true }

-- Raise unless n is an integer >= 1.
local function check_n(fname, n)
  check.arg("terminations." .. fname, "n", n, COUNT, 3)
end

--- Ends when the conversation holds at least n messages (input included).
function _M.max_messages(n)
  check_n("max_messages", n)
  return function(state)
    if #state.messages >= n then return "max_messages" end
  end
end

--- Ends after n turns.
function _M.max_rounds(n)
  check_n("max_rounds", n)
  return function(state)
    if state.rounds >= n then return "max_rounds" end
  end
end

--- Ends when the last message is a reply (an assistant message: a turn's,
-- or the last of a conversation given as input) containing word (plain
-- text, case insensitive); the user's own words never end the chat.
function _M.keyword(word)
  if type(word) ~= "string" or word == "" then error("terminations.keyword: word must be a non-empty string", 2) end
  local w = lower(word)
  return function(state)
    local last = state.messages[#state.messages]
    local text = last and last.role == "assistant" and last.content
    if type(text) == "string" and lower(text):find(w, 1, true) then return "keyword" end
  end
end

-- The reason of a termination's value (nil when it does not fire).
local function reason_of(v)
  if v == nil or v == false then return nil end
  if type(v) == "string" then return v end
  return "termination"
end
_M.reason_of = reason_of

-- Validate a list of terminations for any/all.
local function check_list(fname, list)
  if type(list) ~= "table" or list[1] == nil then
    error(sformat("terminations.%s: expects a non-empty list of terminations", fname), 3)
  end
  for i, t in ipairs(list) do
    if not common.callable(t) then
      error(sformat("terminations.%s: element %d is not a termination function", fname, i), 3)
    end
  end
end

--- Ends when any of the terminations fires (the first one's reason).
function _M.any(list)
  check_list("any", list)
  return function(state)
    for _, t in ipairs(list) do
      local r = reason_of(t(state))
      if r then return r end
    end
  end
end

--- Ends when all of the terminations fire after the same turn; reason
-- "all(r1, r2, ...)".
function _M.all(list)
  check_list("all", list)
  return function(state)
    local reasons = {}
    for i, t in ipairs(list) do
      local r = reason_of(t(state))
      if not r then return nil end
      reasons[i] = r
    end
    return "all(" .. concat(reasons, ", ") .. ")"
  end
end

return _M
