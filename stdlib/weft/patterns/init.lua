--- weft.patterns — multi-agent orchestration patterns built as weft
-- workflows (see docs/agents.md, Patterns). Each constructor validates its
-- options (errors name the pattern, the option and the agent) and returns
-- a built workflow whose input is a string, a message or a list of
-- messages; the run's events show every step (one executor per agent).
--
-- `sequential{agents}`, `concurrent{agents, aggregator}`,
-- `group_chat{agents, selector, termination, manager, max_iterations}`,
-- `handoff{agents, start, max_handoffs, mode, termination}`,
-- `magentic{planner, participants, max_stalls, max_rounds, max_resets,
-- plan_review, progress}`; helpers `selectors`,
-- `terminations`, `aggregators`. Modules are loaded on first use.
local _M = {}

local MODULES = {
  sequential = "weft.patterns.sequential",
  concurrent = "weft.patterns.concurrent",
  group_chat = "weft.patterns.group_chat",
  handoff = "weft.patterns.handoff",
  magentic = "weft.patterns.magentic",
  selectors = "weft.patterns.selectors",
  terminations = "weft.patterns.terminations",
  aggregators = "weft.patterns.aggregators",
}

setmetatable(_M, {
  __index = function(t, k)
    local path = MODULES[k]
    if not path then return nil end
    local m = require(path)
    rawset(t, k, m)
    return m
  end,
})

return _M
