--- weft.patterns.selectors — who speaks next in a group chat.
--
-- A selector is `fn(state) -> name` (or the agent itself), called by the
-- group chat's orchestrator before each turn with `state = {participants =
-- {names in order}, messages = conversation, round = turns done so far,
-- last_speaker = name | nil, speakers = {name of each turn}}`. It runs
-- inside an executor, so it may call agents. Selectors hold no state of
-- their own: one selector may serve many runs at once.
--
-- `round_robin()`, `smart()`, `llm(agent)`, `no_repeat(inner)`.
-- Uses weft.patterns.common.
local common = require "weft.patterns.common"

local type, error, ipairs, tostring = type, error, ipairs, tostring
local sformat, concat = string.format, table.concat

local _M = {}

--- Participants in turn, in list order: the first speaks first, then the
-- one after the last speaker (cycling), so that mixed with other choices
-- (smart(), a custom selector) it still moves on from whoever spoke last.
function _M.round_robin()
  return function(state)
    local p, last = state.participants, state.last_speaker
    if last ~= nil then
      for i, n in ipairs(p) do
        if n == last then return p[i % #p + 1] end
      end
    end
    return p[state.round % #p + 1]
  end
end

--- The participant named in the last message (as a whole word, case
-- insensitive; the earliest mention; never its own author), else round
-- robin (the participant after the last speaker).
function _M.smart()
  local rr = _M.round_robin()
  return function(state)
    local last = state.messages[#state.messages]
    local text = last and last.content
    if type(text) == "string" then
      local author = last.role == "assistant" and last.name or nil
      local n = common.first_mentioned(text, state.participants, author)
      if n then return n end
    end
    return rr(state)
  end
end

local LLM_PROMPT = "You coordinate a conversation between participants. Given the "
  .. "conversation so far, decide who should speak next.\n\nParticipants: %s\n\n"
  .. "Conversation:\n%s\n\nReply with the name of the next speaker only."

--- The prompt asking an agent for the next speaker.
function _M.prompt(state)
  return sformat(LLM_PROMPT, concat(state.participants, ", "), common.transcript(state.messages))
end

--- Ask agent who speaks next (its answer must name a participant: the whole
-- answer, else the first name mentioned in it). An answer naming no
-- participant, or a failed agent run, fails the run naming what it said.
-- `label` names the chooser in errors (default "selector llm('<agent>')").
function _M.llm(agent, label)
  if not common.is_agent(agent) then
    error("selectors.llm: expects an agent (a table with a name and a run method)", 2)
  end
  label = label or sformat("selector llm('%s')", agent.name)
  return function(state)
    local res, err = common.call_agent(agent, { { role = "user", content = _M.prompt(state) } })
    if not res then error(sformat("group_chat: %s: %s", label, err), 0) end
    local name = common.named_participant(res.text, state.participants)
    if not name then
      error(sformat("group_chat: %s named no participant (participants: %s); it said: %s",
                    label, concat(state.participants, ", "), common.excerpt(res.text or "")), 0)
    end
    return name
  end
end

--- Wrap a selector (default round_robin()) so that nobody speaks twice in
-- a row: when inner picks the last speaker, the participant after it (in
-- list order) speaks instead. Needs at least two participants.
function _M.no_repeat(inner)
  if inner == nil then inner = _M.round_robin() end
  if not common.callable(inner) then error("selectors.no_repeat: inner must be a selector function", 2) end
  return function(state)
    local name = inner(state)
    if type(name) == "table" and type(name.name) == "string" then name = name.name end
    if name ~= nil and name == state.last_speaker then
      local p = state.participants
      if #p < 2 then
        error(sformat("group_chat: no_repeat needs at least two participants (only '%s')", tostring(p[1])), 0)
      end
      for i, n in ipairs(p) do
        if n == name then return p[i % #p + 1] end
      end
    end
    return name
  end
end

return _M
