--- weft.patterns.group_chat — participants take turns on one shared
-- conversation; a selector (or a manager agent) picks each speaker.
--
-- `group_chat{agents = {...}, selector = selectors.round_robin(),
-- termination = fn | nil, manager = agent | nil, max_iterations = 20,
-- name = "group_chat"}` builds a star: `orchestrator` (start) -> switch on
-- the chosen speaker -> one executor per agent (id = the agent's name) ->
-- back to `orchestrator`. A turn (a "round") is one speaker's reply: the
-- agent runs on a fresh thread with the whole conversation and its reply
-- is appended as `{role = "assistant", name = <agent>, content = text}`.
--
-- Before the first turn (on the input messages: a conversation given as
-- input that already satisfies it ends at once, with 0 rounds) and after
-- each turn the orchestrator checks the termination (see
-- weft.patterns.terminations), then the hard limit `max_iterations` turns
-- (reason "max_iterations": the run ends even if the termination never
-- fires); otherwise it asks the manager (like selectors.llm(manager)) or
-- the selector for the next speaker and emits a custom event
-- "speaker_selected" `{speaker, round}`. A selector returning an unknown
-- participant fails the run naming it; so does a failed agent run. The
-- output is `{messages, rounds, reason, speakers}`. Uses weft, weft.json,
-- weft.patterns.common, .selectors, .terminations.
local weft = require "weft"
local json = require "weft.json"
local common = require "weft.patterns.common"
local selectors = require "weft.patterns.selectors"
local terminations = require "weft.patterns.terminations"

local type, error, ipairs, tostring = type, error, ipairs, tostring
local sformat, concat = string.format, table.concat

local OPTIONS = { agents = true, selector = true, termination = true, manager = true,
                  max_iterations = true, name = true }
local RESERVED = { orchestrator = true }
local TURN = "group_chat_turn"

--- Build the group chat workflow of opts.agents.
return function(opts)
  common.check_options("group_chat", opts, OPTIONS, 2)
  local names, byname = common.check_agents("group_chat", opts.agents, "agents", RESERVED, 2)
  if opts.selector ~= nil and not common.callable(opts.selector) then
    error("group_chat: selector must be a function(state) -> participant name", 2)
  end
  if opts.termination ~= nil and not common.callable(opts.termination) then
    error("group_chat: termination must be a function(state) -> reason | nil", 2)
  end
  local manager = opts.manager
  if manager ~= nil then
    if not common.is_agent(manager) then
      error("group_chat: manager must be an agent (a table with a name and a run method)", 2)
    end
    if opts.selector ~= nil then error("group_chat: give a selector or a manager, not both", 2) end
  end
  local max_iterations = common.check_int("group_chat", opts, "max_iterations", 20, 1, 2)
  local termination = opts.termination
  local chooser = manager and sformat("manager '%s'", manager.name) or "selector"
  local choose = manager and selectors.llm(manager, chooser) or opts.selector or selectors.round_robin()

  local orchestrator = weft.executor("orchestrator", {
    kind = "orchestrator",
    description = "picks the next speaker and ends the chat",
    handle = function(msg, ctx)
      local conv, rounds, speakers
      if type(msg) == "table" and msg.kind == TURN then
        conv, rounds, speakers = msg.messages, msg.rounds, msg.speakers
      else
        conv, rounds, speakers = common.to_messages("group_chat", msg), 0, {}
      end
      local state = { participants = names, messages = conv, rounds = rounds, round = rounds,
                      last_speaker = speakers[#speakers], speakers = speakers }
      local function finish(reason)
        ctx:yield_output({ messages = conv, rounds = rounds, reason = reason,
                           speakers = json.array(common.append(speakers)) })
      end
      -- the input messages too: a conversation that already satisfies the
      -- termination ends at once, with no turn
      if termination then
        local reason = terminations.reason_of(termination(state))
        if reason then return finish(reason) end
      end
      if rounds >= max_iterations then return finish("max_iterations") end
      local pick = choose(state)
      if type(pick) == "table" and type(pick.name) == "string" then pick = pick.name end
      if type(pick) ~= "string" or byname[pick] == nil then
        error(sformat("group_chat: the %s returned unknown participant %s (participants: %s)", chooser,
                      type(pick) == "string" and ("'" .. pick .. "'") or tostring(pick), concat(names, ", ")), 0)
      end
      ctx:emit("speaker_selected", { speaker = pick, round = rounds + 1 })
      ctx:send({ kind = TURN, messages = conv, rounds = rounds, speakers = json.array(speakers), next = pick })
    end,
  })

  local b = weft.workflow(opts.name or "group_chat"):start(orchestrator)
  local workers = common.participants(opts.agents, "group chat participant", function(agent, name)
    return function(msg, ctx)
      local res, err = common.call_agent(agent, msg.messages)
      if not res then error("group_chat: " .. err, 0) end
      ctx:send({ kind = TURN, messages = common.append(msg.messages, common.reply_message(name, res.text)),
                 rounds = msg.rounds + 1, speakers = common.append(msg.speakers, name) })
    end
  end)
  local cases = {}
  for i, w in ipairs(workers) do
    local name = opts.agents[i].name
    cases[i] = { when = function(m) return m.next == name end, to = w, name = name }
  end
  b:switch(orchestrator, cases)
  for _, w in ipairs(workers) do b:edge(w, orchestrator) end
  return common.default_supersteps(b, 2 * max_iterations + 4)
end
