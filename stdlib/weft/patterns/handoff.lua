--- weft.patterns.handoff — a mesh of agents passing the conversation to
-- each other with generated tools.
--
-- `handoff{agents = {...}, start = name (default the first), max_handoffs
-- = 10, mode = "autonomous", termination = fn | nil, name = "handoff"}` gives every agent one tool `handoff_to_<peer>`
-- per peer (made with weft.tool; the agent is rebuilt with weft.agent from
-- its own options plus these tools, so agents must be weft.agent objects)
-- and builds one executor per agent (id = the agent's name) with a
-- conditional edge from each agent to each peer.
--
-- A turn: the agent runs on a fresh thread with the conversation; when it
-- calls a handoff tool (the first such call of the run counts; the tool
-- answers "Handing the conversation to '<peer>'." and the agent's run goes
-- on until the model answers), its reply (if not empty) is appended to the
-- conversation as `{role = "assistant", name = <agent>, content}` and the
-- conversation passes to the peer. The first reply without a handoff is the
-- final answer: output `{messages, text, agent = who answered, path =
-- {agents in order}}`. A handoff past max_handoffs fails the run with an
-- error naming the path and its cycle ("handoff: exceeded max_handoffs
-- (4): a -> b -> a -> b -> a (cycle a -> b -> a)"), never loops forever.
-- Each handoff emits a custom event "handoff" `{from, to, count}`.
--
-- `mode` (Agent Framework's interaction mode): "autonomous" (the default,
-- as above: the first reply without a handoff ends the run) or
-- "human_in_loop" (Agent Framework's default): after a reply without a
-- handoff, the agent's executor asks the user with `ctx:request_info{type =
-- "user_input", agent, text = the reply}`; the answer (a string, a message
-- or a list of messages) is appended as the user's and the same agent goes
-- on (it may hand off); an answer "", false, null or `{done = true}` ends
-- the run, and so does `termination(state) -> reason | nil` (checked before
-- each request, state `{messages, agent, path, user_turns}`). Its output
-- adds `user_turns` and `reason` ("user_done" or the termination's).
-- weft keeps autonomous as the default so that a handoff workflow still
-- completes in one run where nobody can answer a request (a workflow used
-- as an agent, weft serve's workflow models, scripts that only run).
-- Uses weft, weft.json, weft.tool, weft.agent, weft.patterns.common,
-- weft.patterns.terminations.
local weft = require "weft"
local json = require "weft.json"
local tool_mod = require "weft.tool"
local agent_mod = require "weft.agent"
local common = require "weft.patterns.common"
local terminations = require "weft.patterns.terminations"

local type, error, ipairs, tostring, pcall, next, unpack = type, error, ipairs, tostring, pcall, next, unpack
local sformat, concat = string.format, table.concat

local OPTIONS = { agents = true, start = true, max_handoffs = true, name = true,
                  mode = { enum = { "autonomous", "human_in_loop" } }, termination = true }
local TURN = "handoff_turn"
local PATH_SHOWN = 24   -- agents of the path shown in the error

--- The name of the generated tool handing the conversation to peer.
local function tool_name(peer) return "handoff_to_" .. peer end

-- The options of a weft.agent, to rebuild it with more tools.
local function agent_options(a, tools)
  local llm_opts
  if type(a.llm) == "table" and next(a.llm) ~= nil then llm_opts = a.llm end
  return {
    name = a.name, instructions = a.instructions, model = a.model, tools = tools,
    temperature = a.temperature, max_tokens = a.max_tokens, memory = a.memory,
    reducer = a.reducer, max_tool_rounds = a.max_tool_rounds, llm = llm_opts,
    description = a.description, tool_choice = a.tool_choice,
  }
end

-- The handoff tool of peer (the agent's name for errors): records the
-- first handoff of the run in the thread's metadata.
local function handoff_tool(owner, peer, level)
  local ok, t = pcall(tool_mod.new, {
    name = tool_name(peer.name),
    description = sformat("Hand the conversation over to '%s'%s. Call it when '%s' is better placed to answer.",
                          peer.name, peer.description and (" (" .. peer.description .. ")") or "", peer.name),
    parameters = { type = "object",
                   properties = { reason = { type = "string", description = "why (optional)" } } },
    handler = function(_, ctx)
      local md = ctx and ctx.thread and ctx.thread.metadata
      if md and md.handoff_to == nil then md.handoff_to = peer.name end
      return sformat("Handing the conversation to '%s'.", peer.name)
    end,
  })
  if not ok then
    error(sformat("handoff: agent '%s': cannot make the tool for peer '%s': %s", owner, peer.name, tostring(t)), level)
  end
  return t
end

-- "a -> b -> ..." of a path, keeping the last PATH_SHOWN names.
local function show_path(path)
  if #path <= PATH_SHOWN then return concat(path, " -> ") end
  return "... -> " .. concat(path, " -> ", #path - PATH_SHOWN + 1)
end

-- The cycle the path ends in: from the previous occurrence of its last
-- agent to the end ("a -> b -> a"), or nil.
local function cycle_of(path)
  local last = path[#path]
  for i = #path - 1, 1, -1 do
    if path[i] == last then return concat(path, " -> ", i) end
  end
end

-- True when a user's answer ends the conversation.
local function ends(answer)
  return answer == nil or answer == false or answer == "" or answer == json.null
    or (type(answer) == "table" and answer.done == true)
end

-- The user message(s) of an answer to a user_input request (a string, a
-- message or a list of messages); raises naming the agent otherwise.
local function user_messages(answer, name)
  local ok, list = pcall(common.to_messages, "handoff", answer)
  if not ok then
    error(sformat("handoff: the answer to agent '%s''s user_input request must be a string, a message or "
                  .. "a list of messages (or \"\", false or {done = true} to end), got %s", name,
                  type(answer) == "table" and "a table that is none of these" or type(answer)), 0)
  end
  return list
end

--- Build the handoff workflow of opts.agents.
return function(opts)
  common.check_options("handoff", opts, OPTIONS, 2)
  local names, byname = common.check_agents("handoff", opts.agents, "agents", nil, 2)
  for i, a in ipairs(opts.agents) do
    if not agent_mod.is_agent(a) then
      error(sformat("handoff: agents[%d] '%s' is not a weft.agent (handoff adds tools to each agent)", i, a.name), 2)
    end
  end
  local start = opts.start or names[1]
  if type(start) == "table" and type(start.name) == "string" then start = start.name end
  if type(start) ~= "string" or byname[start] == nil then
    error(sformat("handoff: start names no agent: %s (agents: %s)",
                  type(start) == "string" and ("'" .. start .. "'") or tostring(start), concat(names, ", ")), 2)
  end
  local max_handoffs = common.check_int("handoff", opts, "max_handoffs", 10, 0, 2)
  local human = opts.mode == "human_in_loop"
  local termination = opts.termination
  if termination ~= nil then
    if not common.callable(termination) then
      error("handoff: termination must be a function(state) -> reason | nil", 2)
    end
    if not human then error('handoff: termination needs mode = "human_in_loop" (autonomous runs end at the first answer)', 2) end
  end

  -- every agent with its handoff tools
  local wired = {}
  for _, a in ipairs(opts.agents) do
    local tools = {}
    for i, t in ipairs(a.tools or {}) do tools[i] = t end
    for _, peer in ipairs(opts.agents) do
      if peer ~= a then tools[#tools + 1] = handoff_tool(a.name, peer, 3) end
    end
    local ok, w = pcall(agent_mod.new, agent_options(a, tools))
    if not ok then error(sformat("handoff: agent '%s': %s", a.name, tostring(w)), 2) end
    wired[a.name] = w
  end

  local execs = {}
  for _, name in ipairs(names) do
    local agent = wired[name]
    execs[name] = weft.executor(name, {
      description = "handoff participant",
      handle = function(msg, ctx)
        local conv, path
        if type(msg) == "table" and msg.kind == TURN then
          conv, path = msg.messages, msg.path
        else
          conv, path = common.to_messages("handoff", msg), { name }
        end
        local user_turns = type(msg) == "table" and msg.user_turns or 0
        local text, to
        while true do
          local thread = agent:new_thread()
          local res, err = common.call_agent(agent, conv, thread)
          if not res then error("handoff: " .. err, 0) end
          text, to = res.text or "", thread.metadata.handoff_to
          if to ~= nil then break end
          conv = common.append(conv, common.reply_message(name, text))
          local out = { messages = conv, text = text, agent = name, path = json.array(common.append(path)) }
          if not human then return ctx:yield_output(out) end
          -- human in the loop: the user answers the reply, this agent goes on
          out.user_turns = user_turns
          local reason = termination and terminations.reason_of(termination({
            messages = conv, agent = name, path = out.path, user_turns = user_turns }))
          if reason then out.reason = reason; return ctx:yield_output(out) end
          local answer = ctx:request_info({ type = "user_input", agent = name, text = text })
          if ends(answer) then out.reason = "user_done"; return ctx:yield_output(out) end
          conv = common.append(conv, unpack(user_messages(answer, name)))
          user_turns = user_turns + 1
        end
        local next_path = common.append(path, to)
        if #next_path - 1 > max_handoffs then
          local cycle = cycle_of(next_path)
          error(sformat("handoff: exceeded max_handoffs (%d): %s%s", max_handoffs, show_path(next_path),
                        cycle and (" (cycle " .. cycle .. ")") or ""), 0)
        end
        if text ~= "" then conv = common.append(conv, common.reply_message(name, text)) end
        ctx:emit("handoff", { from = name, to = to, count = #next_path - 1 })
        ctx:send({ kind = TURN, messages = conv, path = next_path, next = to, user_turns = user_turns })
      end,
    })
  end

  local b = weft.workflow(opts.name or "handoff"):start(execs[start])
  for _, from in ipairs(names) do b:add(execs[from]) end
  for _, from in ipairs(names) do
    for _, to in ipairs(names) do
      if from ~= to then
        b:edge(execs[from], execs[to], { when = function(m) return m.next == to end, name = tool_name(to) })
      end
    end
  end
  return common.default_supersteps(b, max_handoffs + 3)
end
