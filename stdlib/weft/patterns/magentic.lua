--- weft.patterns.magentic — a planner agent splits the task into steps,
-- assigns each to a participant, tracks progress in a ledger, re-plans when
-- progress stalls and writes the final answer.
--
-- `magentic{planner = agent, participants = {...}, max_stalls = 3,
-- max_rounds = 20, progress = fn(text, entry) -> bool, name = "magentic"}`
-- builds the executors `planner` (start), one per participant (id = its
-- name), `ledger` and `answer`:
--
--   planner  asks the planner agent for a plan — a JSON list of steps
--            `{"step": "...", "participant": "name"}` (also accepted: a
--            fenced block, text around the list, `{"steps": [...]}`, and the
--            keys task/description/instruction and agent/assignee) — and
--            sends the first step to its participant. A plan that is not
--            such a list, a step naming an unknown participant and an
--            empty first plan fail the run with an error saying so.
--   <name>   the participant does one step: it gets the task, the results
--            so far and its step, and sends its reply to `ledger`.
--   ledger   records the attempt and decides: next pending step, the same
--            step again (no progress), a re-plan (after max_stalls
--            consecutive attempts without progress: the planner sees the
--            ledger and writes a new plan for what is left; the pending
--            steps of the old plan are "dropped"), or the answer (every
--            step done: reason "completed"; max_rounds attempts done:
--            reason "max_rounds").
--   answer   asks the planner for the final answer and yields the output
--            `{text, reason, rounds, replans, plan, ledger}`.
--
-- Progress rule (override with opts.progress): an attempt makes progress
-- when the participant's run succeeded and its reply, trimmed, is not
-- empty, does not contain "STALL" (upper case) and does not contain
-- "cannot" (any case). A failed participant run is recorded with status
-- "error" and counts as no progress.
--
-- Shared state holds the run's record: "task" (text), "plan" (list of
-- `{step, participant, status}`, status pending | done | stalled |
-- dropped), "ledger" (one entry per attempt: `{round, index, step,
-- participant, status = done | stalled | error, result}`), "rounds",
-- "stalls", "replans". Custom events: "plan" `{steps, replan}` and
-- "progress" (the ledger entry). Uses weft, weft.json,
-- weft.patterns.common.
local weft = require "weft"
local json = require "weft.json"
local common = require "weft.patterns.common"

local type, error, ipairs, pairs, tostring, pcall = type, error, ipairs, pairs, tostring, pcall
local sformat, concat, lower = string.format, table.concat, string.lower

local _M = {}

local OPTIONS = { planner = true, participants = true, max_stalls = true, max_rounds = true,
                  progress = true, name = true }
local RESERVED = { planner = true, ledger = true, answer = true }

--- The default progress rule (see the module comment).
function _M.progress(text)
  if type(text) ~= "string" then return false end
  if not text:find("%S") then return false end
  if text:find("STALL", 1, true) then return false end
  if lower(text):find("cannot", 1, true) then return false end
  return true
end

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

-- Copy a table with changes.
local function with(t, changes)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  for k, v in pairs(changes) do out[k] = v end
  return out
end

-- The ledger as text for prompts.
local function ledger_text(ledger)
  if #ledger == 0 then return "(nothing yet)" end
  local out = {}
  for i, e in ipairs(ledger) do
    out[i] = sformat("%d. [%s] %s -> %s: %s", e.round, e.participant, e.step, e.status, tostring(e.result))
  end
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

--- Build the magentic workflow.
function _M.build(opts)
  common.check_options("magentic", opts, OPTIONS, 3)
  local planner = opts.planner
  if not common.is_agent(planner) then
    error("magentic: planner must be an agent (a table with a name and a run method)", 3)
  end
  local names = common.check_agents("magentic", opts.participants, "participants", RESERVED, 3)
  local max_stalls = common.check_int("magentic", opts, "max_stalls", 3, 1, 3)
  local max_rounds = common.check_int("magentic", opts, "max_rounds", 20, 1, 3)
  local is_progress = opts.progress or _M.progress
  if not common.callable(is_progress) then error("magentic: progress must be a function(text, entry) -> bool", 3) end
  local who = sformat("planner '%s'", planner.name)
  local team = roster(opts.participants)

  -- Ask the planner agent; raises naming it on failure.
  local function ask_planner(content)
    local res, err = common.call_agent(planner, { { role = "user", content = content } })
    if not res then error("magentic: planner: " .. err, 0) end
    return res.text or ""
  end

  -- The first plan entry still to do (pending or being retried), or nil.
  local function next_index(plan)
    for i, p in ipairs(plan) do
      if p.status == "pending" or p.status == "stalled" then return i end
    end
  end

  local function dispatch(ctx, plan, i)
    ctx:send({ kind = "step", index = i, participant = plan[i].participant })
  end

  local planner_ex = weft.executor("planner", {
    kind = "orchestrator",
    description = "writes and revises the plan",
    handle = function(msg, ctx)
      local replan = type(msg) == "table" and msg.kind == "replan"
      local task, plan, ledger, prompt
      if replan then
        task, plan, ledger = ctx:get_state("task"), copy_list(ctx:get_state("plan")), ctx:get_state("ledger") or {}
        prompt = sformat("Task:\n%s\n\nParticipants:\n%s\n\nWhat was done so far:\n%s\n\n"
                         .. "The last %d attempts made no progress. Write a new plan for what is left "
                         .. "of the task (an empty list if nothing is left). %s",
                         task, team, ledger_text(ledger), max_stalls, PLAN_FORMAT)
        for i, p in ipairs(plan) do
          if p.status == "pending" or p.status == "stalled" then plan[i] = with(p, { status = "dropped" }) end
        end
      else
        local conv = common.to_messages("magentic", msg)
        task = (#conv == 1 and type(conv[1].content) == "string") and conv[1].content or common.transcript(conv)
        plan, ledger = json.array(), json.array()
        prompt = sformat("Task:\n%s\n\nParticipants:\n%s\n\nSplit the task into steps and assign each to "
                         .. "a participant. %s", task, team, PLAN_FORMAT)
        ctx:set_state("task", task)
        ctx:set_state("ledger", ledger)
        ctx:set_state("rounds", 0)
      end
      local steps, perr = _M.parse_plan(ask_planner(prompt), names, who)
      if not steps then error(perr, 0) end
      if #steps == 0 and not replan then error(sformat("magentic: %s returned an empty plan", who), 0) end
      local first = #plan + 1
      for _, s in ipairs(steps) do
        plan[#plan + 1] = { step = s.step, participant = s.participant, status = "pending" }
      end
      local replans = (ctx:get_state("replans") or 0) + (replan and 1 or 0)
      ctx:set_state("plan", plan)
      ctx:set_state("stalls", 0)
      ctx:set_state("replans", replans)
      ctx:emit("plan", { steps = json.array(steps), replan = replan })
      if #steps == 0 then
        ctx:send({ kind = "final", reason = "completed" })
      else
        dispatch(ctx, plan, first)
      end
    end,
  })

  local workers = common.participants(opts.participants, "magentic participant", function(agent, name)
    return function(msg, ctx)
      local plan, ledger = ctx:get_state("plan"), ctx:get_state("ledger") or {}
      local step = plan[msg.index]
      local content = sformat("Task:\n%s\n\nWhat was done so far:\n%s\n\nYour step (%d of %d): %s",
                              ctx:get_state("task"), ledger_text(ledger), msg.index, #plan, step.step)
      local res, err = common.call_agent(agent, { { role = "user", content = content } })
      ctx:send({ kind = "result", index = msg.index, participant = name,
                 text = res and (res.text or "") or nil, error = err })
    end
  end)

  local ledger_ex = weft.executor("ledger", {
    kind = "orchestrator",
    description = "records progress and picks what comes next",
    handle = function(msg, ctx)
      local plan = copy_list(ctx:get_state("plan"))
      local ledger = copy_list(ctx:get_state("ledger"))
      local rounds = (ctx:get_state("rounds") or 0) + 1
      local stalls = ctx:get_state("stalls") or 0
      local i = msg.index
      local entry = { round = rounds, index = i, step = plan[i].step, participant = msg.participant }
      local progress = false
      if msg.error ~= nil then
        entry.status, entry.result = "error", msg.error
      else
        entry.result = msg.text
        local ok, p = pcall(is_progress, msg.text, entry)
        if not ok then error("magentic: progress rule: " .. tostring(p), 0) end
        progress = p and true or false
        entry.status = progress and "done" or "stalled"
      end
      ledger[#ledger + 1] = entry
      plan[i] = with(plan[i], { status = progress and "done" or "stalled" })
      stalls = progress and 0 or stalls + 1
      ctx:set_state("plan", plan)
      ctx:set_state("ledger", ledger)
      ctx:set_state("rounds", rounds)
      ctx:set_state("stalls", stalls)
      ctx:emit("progress", entry)
      local nxt = next_index(plan)
      if nxt == nil then
        ctx:send({ kind = "final", reason = "completed" })
      elseif rounds >= max_rounds then
        ctx:send({ kind = "final", reason = "max_rounds" })
      elseif stalls >= max_stalls then
        ctx:send({ kind = "replan" })
      else
        dispatch(ctx, plan, nxt)
      end
    end,
  })

  local answer_ex = weft.executor("answer", {
    description = "writes the final answer",
    handle = function(msg, ctx)
      local ledger = ctx:get_state("ledger") or json.array()
      local text = ask_planner(sformat("Task:\n%s\n\nWhat was done:\n%s\n\nWrite the final answer to the task.",
                                       ctx:get_state("task"), ledger_text(ledger)))
      ctx:yield_output({
        text = text, reason = msg.reason, rounds = ctx:get_state("rounds") or 0,
        replans = ctx:get_state("replans") or 0, plan = copy_list(ctx:get_state("plan")),
        ledger = copy_list(ledger),
      })
    end,
  })

  -- routes: a step to its participant, a re-plan to the planner, the end
  -- to the answer
  local function routes(with_planner)
    local cases = {}
    for i, name in ipairs(names) do
      cases[i] = { to = workers[i], name = name,
                   when = function(m) return m.kind == "step" and m.participant == name end }
    end
    if with_planner then
      cases[#cases + 1] = { to = planner_ex, name = "replan", when = function(m) return m.kind == "replan" end }
    end
    cases[#cases + 1] = { to = answer_ex, name = "final", when = function(m) return m.kind == "final" end }
    return cases
  end

  local b = weft.workflow(opts.name or "magentic"):start(planner_ex)
  b:switch(planner_ex, routes(false))
  for _, w in ipairs(workers) do b:edge(w, ledger_ex) end
  b:switch(ledger_ex, routes(true))
  -- per round: participant + ledger; per re-plan (at most one every
  -- max_stalls rounds): planner; plus the first plan and the answer
  return common.default_supersteps(b, 3 * max_rounds + 4)
end

return setmetatable(_M, {
  __call = function(_, opts)
    local wf = _M.build(opts) -- not a tail call: error levels point at the caller
    return wf
  end,
})
