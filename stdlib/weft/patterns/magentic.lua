--- weft.patterns.magentic — Magentic One orchestration, as Agent
-- Framework has it: a manager (the planner agent) writes a plan, then
-- each round judges the progress in a progress ledger, picks who acts next
-- with what instruction, re-plans when the team stalls, and writes the
-- final answer.
--
-- `magentic{planner = agent, participants = {...}, max_stalls = 3,
-- max_rounds = 20, max_resets = nil, plan_review = false, progress = fn,
-- name = "magentic"}` builds the executors `planner` (start), one per
-- participant (id = its name), `ledger` and `answer`:
--
--   planner  asks the planner agent for a plan — a JSON list of steps
--            `{"step": "...", "participant": "name"}` (also accepted: a
--            fenced block, text around the list, `{"steps": [...]}`, and the
--            keys task/description/instruction and agent/assignee). With
--            `plan_review = true` the plan goes to a human first (below).
--            A plan that is not such a list, a step naming an unknown
--            participant and an empty first plan fail the run saying so;
--            an empty re-plan ends the work (reason "completed").
--   ledger   the manager's progress ledger, once after each plan and once
--            after each round: the planner agent answers, in strict JSON,
--            an object of five entries `{"reason": "...", "answer": ...}`:
--            is_request_satisfied (bool), is_progress_being_made (bool),
--            is_in_loop (bool), next_speaker (a participant's name),
--            instruction_or_question (text). A satisfied request ends the
--            work (reason "completed"). After a round, a ledger saying no
--            progress, or a loop, counts a stall; one saying progress and
--            no loop takes one off (as Agent Framework counts); at
--            max_stalls the team re-plans (a "reset"): the planner sees
--            what was done and writes a new plan, the stall count starts
--            again. Past max_resets resets (default: no limit) the work
--            ends with reason "max_resets"; after max_rounds rounds, with
--            reason "max_rounds". Otherwise next_speaker gets the
--            instruction. A reply that is not such an object (not JSON,
--            a key missing, a wrong type, an unknown speaker) is asked
--            again once, saying what was wrong; a second unreadable reply
--            is recorded as such, counts a stall (after a round), and the
--            last speaker goes on with the last instruction (after a plan:
--            the plan's first step). opts.progress replaces the model:
--            `progress(info) -> ledger` with info `{task, plan, ledger,
--            progress, participants, round, stalls}`, returning the same
--            five entries as a Lua table (an invalid one fails the run).
--   <name>   the participant gets the task, what was done so far and its
--            instruction, and sends its reply (or its error) to `ledger`.
--   answer   asks the planner for the final answer and yields the output
--            `{text, reason, rounds, replans, stalls, plan, ledger,
--            progress}`.
--
-- Plan review (`plan_review = true`): each plan (the first and every
-- re-plan) is sent as `ctx:request_info{type = "plan_review", task, plan =
-- {{step, participant}...}, replan}`. The answer approves it (true,
-- "approve", "approved", "ok", "yes", {approved = true}), replaces it (a
-- list of steps, {plan = list}, or the JSON text of one; checked as a
-- planner's plan) or asks for changes (any other text, or {feedback =
-- text}): the planner writes a new plan with the feedback, which is
-- reviewed again.
--
-- Shared state holds the run's record: "task", "plan" (the current plan:
-- `{step, participant}` list), "ledger" (one entry per round: `{round,
-- participant, instruction, status = done | error, result}`), "progress"
-- (one entry per progress ledger: `{round (rounds done), stalls, and the
-- five entries as answered}` or `{round, stalls, unreadable = error}`),
-- "rounds", "stalls", "replans". Custom events: "plan" `{steps, replan}`
-- and "progress" (the progress entry). Uses weft, weft.json,
-- weft.patterns.common.
local weft = require "weft"
local json = require "weft.json"
local common = require "weft.patterns.common"

local type, error, ipairs, pairs, tostring, pcall, max, setmetatable =
  type, error, ipairs, pairs, tostring, pcall, math.max, setmetatable
local sformat, concat, lower = string.format, table.concat, string.lower

local _M = {}

local OPTIONS = { planner = true, participants = true, max_stalls = true, max_rounds = true,
                  max_resets = true, plan_review = { type = "boolean" }, progress = true, name = true }
local RESERVED = { planner = true, ledger = true, answer = true }

local MAX_STARTS = 16   -- '[' / '{' positions tried per reply

-- JSON texts a reply may hold, most likely first: fenced blocks, the spans
-- from each '[' (the first MAX_STARTS) to the last ']', the same for '{'
-- and '}', then the whole text.
local function candidates(text)
  local out = {}
  for block in text:gmatch("```[%w_-]*[ \t]*\r?\n?(.-)```") do out[#out + 1] = block end
  for _, pair in ipairs { { "[", "]" }, { "{", "}" } } do
    local open, close = pair[1], pair[2]
    local last
    for i = #text, 1, -1 do
      if text:sub(i, i) == close then last = i; break end
    end
    local from, n = 1, 0
    while last and n < MAX_STARTS do
      local a = text:find(open, from, true)
      if not a or a > last then break end
      out[#out + 1] = text:sub(a, last)
      from, n = a + 1, n + 1
    end
  end
  out[#out + 1] = text
  return out
end

-- The first string among the keys of t.
local function first_string(t, keys)
  for _, k in ipairs(keys) do
    local v = t[k]
    if type(v) == "string" and v:find("%S") then return v end
  end
end

--- Parse a plan from the planner's reply: returns a list of {step,
-- participant} (participant names are matched case-insensitively to
-- names), or nil and an error.
function _M.parse_plan(text, names, who)
  who = who or "the planner"
  if type(text) ~= "string" then return nil, sformat("magentic: %s returned no text", who) end
  local list
  for _, c in ipairs(candidates(text)) do
    local v = json.decode(c)
    if type(v) == "table" then
      if json.is_array(v) or v[1] ~= nil then
        list = v
      elseif type(v.steps) == "table" then
        list = v.steps
      elseif type(v.plan) == "table" then
        list = v.plan
      end
      if list then break end
    end
  end
  if not list then
    return nil, sformat('magentic: %s did not return a JSON list of steps {"step": ..., "participant": ...}; it said: %s',
                        who, common.excerpt(text))
  end
  return _M.check_steps(list, names)
end

--- Check a list of plan steps (tables {step, participant}, also accepted:
-- the keys task/description/instruction and agent/assignee): returns the
-- list of {step, participant} (names matched case-insensitively to
-- names), or nil and an error naming the step.
function _M.check_steps(list, names)
  if type(list) ~= "table" then return nil, "magentic: a plan must be a list of steps" end
  local byname = {}
  for _, n in ipairs(names) do byname[lower(n)] = n end
  local steps = {}
  for i, item in ipairs(list) do
    if type(item) ~= "table" then
      return nil, sformat('magentic: plan step %d is not an object {"step": ..., "participant": ...}', i)
    end
    local step = first_string(item, { "step", "task", "description", "instruction" })
    if not step then return nil, sformat("magentic: plan step %d has no step text", i) end
    local who_p = first_string(item, { "participant", "agent", "assignee" })
    if not who_p then return nil, sformat("magentic: plan step %d names no participant", i) end
    local name = byname[lower(who_p)]
    if not name then
      return nil, sformat("magentic: plan step %d names unknown participant '%s' (participants: %s)",
                          i, who_p, concat(names, ", "))
    end
    steps[i] = { step = step, participant = name }
  end
  return steps
end

-- Copy a list (state values are read-only).
local function copy_list(list)
  local out = json.array()
  for i, v in ipairs(list or {}) do out[i] = v end
  return out
end

-- The entries of a progress ledger and the type of each answer.
local LEDGER = {
  { "is_request_satisfied", "boolean" }, { "is_progress_being_made", "boolean" }, { "is_in_loop", "boolean" },
  { "next_speaker", "string" }, { "instruction_or_question", "string" },
}

--- Check a progress ledger (a decoded table): returns a normalised copy
-- (each entry {answer, reason}; next_speaker the participant's name as
-- given in names), or nil and an error saying what is wrong.
function _M.check_ledger(v, names)
  if type(v) ~= "table" or v[1] ~= nil then return nil, "the progress ledger is not a JSON object" end
  local out = {}
  for _, e in ipairs(LEDGER) do
    local key, want = e[1], e[2]
    local item = v[key]
    if item == nil then
      return nil, sformat('"%s" is missing (each entry is {"reason": "...", "answer": ...})', key)
    elseif type(item) ~= "table" then
      return nil, sformat('"%s" must be an object {"reason": "...", "answer": ...}', key)
    end
    if type(item.answer) ~= want then
      return nil, sformat('"%s".answer must be a %s, got %s', key, want, item.answer == json.null and "null" or type(item.answer))
    end
    local reason = item.reason
    if reason ~= nil and type(reason) ~= "string" then return nil, sformat('"%s".reason must be a string', key) end
    out[key] = { answer = item.answer, reason = reason or "" }
  end
  if not out.is_request_satisfied.answer then
    local who = out.next_speaker.answer
    local found
    for _, n in ipairs(names) do
      if lower(n) == lower(who) then found = n end
    end
    if not found then
      return nil, sformat('"next_speaker" names no participant: "%s" (participants: %s)', who, concat(names, ", "))
    end
    out.next_speaker.answer = found
    if not out.instruction_or_question.answer:find("%S") then
      return nil, '"instruction_or_question" is empty'
    end
  end
  return out
end

--- Parse the manager's progress ledger reply (a JSON object, also found
-- in a fenced block or amid text): the checked ledger, or nil and an error.
function _M.parse_ledger(text, names)
  if type(text) ~= "string" then return nil, "the reply has no text" end
  local first_err
  for _, c in ipairs(candidates(text)) do
    local v = json.decode(c)
    if type(v) == "table" and v[1] == nil and not json.is_array(v) then
      local l, err = _M.check_ledger(v, names)
      if l then return l end
      first_err = first_err or err
    end
  end
  return nil, first_err or ("the reply is not a JSON object: " .. common.excerpt(text))
end

-- The ledger of rounds as text for prompts.
local function ledger_text(ledger)
  if #ledger == 0 then return "(nothing yet)" end
  local out = {}
  for i, e in ipairs(ledger) do
    out[i] = sformat("%d. [%s] %s -> %s: %s", e.round, e.participant, e.instruction, e.status, tostring(e.result))
  end
  return concat(out, "\n")
end

-- The plan as text for prompts.
local function plan_text(plan)
  if #plan == 0 then return "(empty)" end
  local out = {}
  for i, p in ipairs(plan) do out[i] = sformat("%d. [%s] %s", i, p.participant, p.step) end
  return concat(out, "\n")
end

-- The list of participants with their descriptions, for the planner.
local function roster(agents)
  local out = {}
  for i, a in ipairs(agents) do
    local d = a.description or a.instructions
    if type(d) == "string" and d ~= "" then
      if #d > 200 then d = d:sub(1, 200) .. "..." end
      out[i] = sformat("- %s: %s", a.name, d)
    else
      out[i] = "- " .. a.name
    end
  end
  return concat(out, "\n")
end

local PLAN_FORMAT = 'Reply with a JSON list of steps only, each {"step": "what to do", '
  .. '"participant": "one of the participants"}.'

local LEDGER_PROMPT = "Task:\n%s\n\nParticipants:\n%s\n\nPlan:\n%s\n\nWhat was done so far:\n%s\n\n"
  .. "Update the progress ledger. Reply with a JSON object only, with exactly these keys, each "
  .. '{"reason": "why", "answer": ...}:\n'
  .. '- "is_request_satisfied": answer true if the task is fully done, else false;\n'
  .. '- "is_progress_being_made": answer false if the last rounds did not move the task forward;\n'
  .. '- "is_in_loop": answer true if the same requests or replies keep repeating;\n'
  .. '- "next_speaker": answer the name of the participant who acts next;\n'
  .. '- "instruction_or_question": answer what that participant must do next, addressed to it.'

-- Words of an answer approving a plan under review.
local APPROVE = { approve = true, approved = true, ok = true, yes = true, lgtm = true }

--- Build the magentic workflow.
function _M.build(opts)
  common.check_options("magentic", opts, OPTIONS, 3)
  local planner = opts.planner
  if not common.is_agent(planner) then
    error("magentic: planner must be an agent (a table with a name and a run method)", 3)
  end
  local participants = opts.participants
  local names = common.check_agents("magentic", participants, "participants", RESERVED, 3)
  local max_stalls = common.check_int("magentic", opts, "max_stalls", 3, 1, 3)
  local max_rounds = common.check_int("magentic", opts, "max_rounds", 20, 1, 3)
  local max_resets = common.check_int("magentic", opts, "max_resets", nil, 0, 3)
  local review = opts.plan_review == true
  local custom = opts.progress
  if custom ~= nil and not common.callable(custom) then
    error("magentic: progress must be a function(info) -> progress ledger", 3)
  end
  local who = sformat("planner '%s'", planner.name)
  local team = roster(participants)

  -- Ask the planner agent; raises naming it on failure.
  local function ask_planner(content)
    local res, err = common.call_agent(planner, { { role = "user", content = content } })
    if not res then error("magentic: planner: " .. err, 0) end
    return res.text or ""
  end

  -- A plan from the planner's reply to prompt; raises on a bad one.
  local function plan_from(prompt)
    local steps, perr = _M.parse_plan(ask_planner(prompt), names, who)
    if not steps then error(perr, 0) end
    return steps
  end

  -- Steps reviewed by a human (see the module comment): the approved or
  -- edited steps.
  local function reviewed(ctx, task, steps, replan, prompt)
    while true do
      local answer = ctx:request_info({ type = "plan_review", task = task, plan = json.array(steps),
                                        replan = replan })
      local feedback, edited
      if answer == true or (type(answer) == "table" and (answer.approved == true or answer.approve == true)) then
        return steps
      elseif type(answer) == "string" then
        local word = lower((answer:gsub("^[%s%p]+", ""):gsub("[%s%p]+$", "")))
        if APPROVE[word] then return steps end
        local parsed = _M.parse_plan(answer, names)
        if parsed then edited = parsed else feedback = answer end
      elseif type(answer) == "table" and type(answer.feedback) == "string" then
        feedback = answer.feedback
      elseif type(answer) == "table" then
        local perr
        edited, perr = _M.check_steps(type(answer.plan) == "table" and answer.plan or answer, names)
        if not edited then error("magentic: the plan review's edited plan: " .. perr:gsub("^magentic: ", ""), 0) end
      else
        error(sformat("magentic: the plan review's answer must approve (true, \"approve\"), edit (a list of "
                      .. "steps) or comment (text, {feedback = text}) the plan, got %s", type(answer)), 0)
      end
      if edited then return edited end
      steps = plan_from(sformat("%s\n\nYour plan was:\n%s\n\nThe reviewer asks for changes:\n%s\n\n"
                                .. "Write the plan again with these changes. %s", prompt, plan_text(steps),
                                feedback, PLAN_FORMAT))
    end
  end

  local planner_ex = weft.executor("planner", {
    kind = "orchestrator",
    description = "writes and revises the plan",
    handle = function(msg, ctx)
      local replan = type(msg) == "table" and msg.kind == "replan"
      local task, prompt
      if replan then
        task = ctx:get_state("task")
        prompt = sformat("Task:\n%s\n\nParticipants:\n%s\n\nThe plan was:\n%s\n\nWhat was done so far:\n%s\n\n"
                         .. "The team stalled (%d %s without progress). Write a new plan for what is left "
                         .. "of the task (an empty list if nothing is left).",
                         task, team, plan_text(ctx:get_state("plan") or {}), ledger_text(ctx:get_state("ledger") or {}),
                         max_stalls, max_stalls == 1 and "round" or "rounds")
      else
        local conv = common.to_messages("magentic", msg)
        task = (#conv == 1 and type(conv[1].content) == "string") and conv[1].content or common.transcript(conv)
        prompt = sformat("Task:\n%s\n\nParticipants:\n%s\n\nSplit the task into steps and assign each to "
                         .. "a participant.", task, team)
        ctx:set_state("task", task)
        ctx:set_state("ledger", json.array())
        ctx:set_state("progress", json.array())
        ctx:set_state("rounds", 0)
      end
      local steps = plan_from(prompt .. " " .. PLAN_FORMAT)
      if review then steps = reviewed(ctx, task, steps, replan, prompt) end
      if #steps == 0 and not replan then error(sformat("magentic: %s returned an empty plan", who), 0) end
      ctx:set_state("plan", json.array(steps))
      ctx:set_state("stalls", 0)
      ctx:set_state("replans", (ctx:get_state("replans") or 0) + (replan and 1 or 0))
      ctx:emit("plan", { steps = json.array(steps), replan = replan })
      if #steps == 0 then
        ctx:send({ kind = "final", reason = "completed" })
      else
        ctx:send({ kind = "judge" })
      end
    end,
  })

  local workers = common.participants(participants, "magentic participant", function(agent, name)
    return function(msg, ctx)
      local content = sformat("Task:\n%s\n\nWhat was done so far:\n%s\n\nYour instruction: %s",
                              ctx:get_state("task"), ledger_text(ctx:get_state("ledger") or {}), msg.instruction)
      local res, err = common.call_agent(agent, { { role = "user", content = content } })
      ctx:send({ kind = "result", participant = name, instruction = msg.instruction,
                 text = res and (res.text or "") or nil, error = err })
    end
  end)

  -- The progress ledger of the round: the checked ledger, or nil and why
  -- it is unreadable (after one retry).
  local function judge(ctx, info)
    if custom then
      local ok, v = pcall(custom, info)
      if not ok then error("magentic: progress: " .. tostring(v), 0) end
      local l, err = _M.check_ledger(v, names)
      if not l then error("magentic: progress: " .. err, 0) end
      return l
    end
    local prompt = sformat(LEDGER_PROMPT, info.task, team, plan_text(info.plan), ledger_text(info.ledger))
    local l, err = _M.parse_ledger(ask_planner(prompt), names)
    if l then return l end
    ctx:log("warn", sformat("magentic: %s: unreadable progress ledger (%s); asking again", who, err))
    l, err = _M.parse_ledger(ask_planner(sformat("%s\n\nYour previous reply could not be used: %s. "
                                                 .. "Reply with the JSON object only.", prompt, err)), names)
    return l, err
  end

  local ledger_ex = weft.executor("ledger", {
    kind = "orchestrator",
    description = "judges the progress and picks who acts next",
    handle = function(msg, ctx)
      local plan = ctx:get_state("plan") or {}
      local ledger = copy_list(ctx:get_state("ledger"))
      local progress = copy_list(ctx:get_state("progress"))
      local rounds = ctx:get_state("rounds") or 0
      local stalls = ctx:get_state("stalls") or 0
      local after_round = msg.kind == "result"
      if after_round then
        rounds = rounds + 1
        ledger[#ledger + 1] = { round = rounds, participant = msg.participant, instruction = msg.instruction,
                                status = msg.error ~= nil and "error" or "done",
                                result = msg.error ~= nil and msg.error or msg.text }
      end
      local l, unreadable = judge(ctx, { task = ctx:get_state("task"), plan = plan, ledger = ledger,
                                         progress = progress, participants = names, round = rounds,
                                         stalls = stalls })
      -- stalls count rounds: the ledger made after a plan only picks the
      -- first speaker
      if after_round then
        if not l or not l.is_progress_being_made.answer or l.is_in_loop.answer then
          stalls = stalls + 1
        else
          stalls = max(0, stalls - 1)
        end
      end
      local entry = { round = rounds, stalls = stalls }
      if l then
        for k, v in pairs(l) do entry[k] = v end
      else
        entry.unreadable = unreadable
      end
      progress[#progress + 1] = entry
      ctx:set_state("ledger", ledger)
      ctx:set_state("progress", progress)
      ctx:set_state("rounds", rounds)
      ctx:set_state("stalls", stalls)
      ctx:emit("progress", entry)
      if l and l.is_request_satisfied.answer then
        return ctx:send({ kind = "final", reason = "completed" })
      end
      if rounds >= max_rounds then return ctx:send({ kind = "final", reason = "max_rounds" }) end
      if stalls >= max_stalls then
        if max_resets and (ctx:get_state("replans") or 0) >= max_resets then
          return ctx:send({ kind = "final", reason = "max_resets" })
        end
        return ctx:send({ kind = "replan" })
      end
      local speaker, instruction
      if l then
        speaker, instruction = l.next_speaker.answer, l.instruction_or_question.answer
      elseif #ledger > 0 and after_round then
        speaker, instruction = ledger[#ledger].participant, ledger[#ledger].instruction
      else
        speaker, instruction = plan[1].participant, plan[1].step
      end
      ctx:send({ kind = "step", participant = speaker, instruction = instruction })
    end,
  })

  local answer_ex = weft.executor("answer", {
    description = "writes the final answer",
    handle = function(msg, ctx)
      local ledger = ctx:get_state("ledger") or json.array()
      local stopped = msg.reason ~= "completed" and sformat(
        "\n\nThe work stopped before the task was done (%s): say what is missing.", msg.reason) or ""
      local text = ask_planner(sformat("Task:\n%s\n\nWhat was done:\n%s%s\n\nWrite the final answer to the task.",
                                       ctx:get_state("task"), ledger_text(ledger), stopped))
      ctx:yield_output({
        text = text, reason = msg.reason, rounds = ctx:get_state("rounds") or 0,
        replans = ctx:get_state("replans") or 0, stalls = ctx:get_state("stalls") or 0,
        plan = copy_list(ctx:get_state("plan")), ledger = copy_list(ledger),
        progress = copy_list(ctx:get_state("progress")),
      })
    end,
  })

  -- routes: a step to its participant, a re-plan to the planner, the end
  -- to the answer
  local function route_steps(cases)
    for i, name in ipairs(names) do
      cases[#cases + 1] = { to = workers[i], name = name,
                            when = function(m) return m.kind == "step" and m.participant == name end }
    end
    return cases
  end
  local final = { to = answer_ex, name = "final", when = function(m) return m.kind == "final" end }

  local b = weft.workflow(opts.name or "magentic"):start(planner_ex)
  b:switch(planner_ex, { { to = ledger_ex, name = "judge", when = function(m) return m.kind == "judge" end }, final })
  for _, w in ipairs(workers) do b:edge(w, ledger_ex) end
  local cases = route_steps({})
  cases[#cases + 1] = { to = planner_ex, name = "replan", when = function(m) return m.kind == "replan" end }
  cases[#cases + 1] = final
  b:switch(ledger_ex, cases)
  -- per round: participant + ledger; per re-plan (at most one per round):
  -- planner + ledger; plus the first plan, its ledger and the answer
  return common.default_supersteps(b, 4 * max_rounds + 6)
end

return setmetatable(_M, {
  __call = function(_, opts)
    local wf = _M.build(opts) -- not a tail call: error levels point at the caller
    return wf
  end,
})
