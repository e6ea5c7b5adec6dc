--- weft.patterns.concurrent — every agent answers the same input at once;
-- an aggregator combines the answers.
--
-- `concurrent{agents = {...}, aggregator = fn(results, info) -> output,
-- name = "concurrent"}` builds: `dispatcher` (start: turns the input into a
-- message list, keeps it in shared state "input") -> fan-out to one
-- executor per agent (id = the agent's name) -> fan-in -> `aggregator`,
-- which yields the aggregator's return value as the output. An agent
-- executor never fails: a run that returns an error or raises sends
-- `{agent = name, error = message}` instead of `{agent = name, text =
-- reply}`, so partial failures reach the aggregator and the run completes;
-- when every participant failed, the aggregator is not called and the run
-- fails naming each participant and its error.
-- The default aggregator returns the list of results in agent order (see
-- weft.patterns.aggregators). Uses weft, weft.patterns.common,
-- weft.patterns.aggregators.
local weft = require "weft"
local common = require "weft.patterns.common"
local aggregators = require "weft.patterns.aggregators"

local error, ipairs, tostring = error, ipairs, tostring
local sformat, concat = string.format, table.concat

local OPTIONS = { agents = true, aggregator = true, name = true }
local RESERVED = { dispatcher = true, aggregator = true }

--- Build the concurrent workflow of opts.agents.
return function(opts)
  common.check_options("concurrent", opts, OPTIONS, 2)
  common.check_agents("concurrent", opts.agents, "agents", RESERVED, 2)
  local aggregate = opts.aggregator or aggregators.list()
  if not common.callable(aggregate) then
    error("concurrent: aggregator must be a function(results, info) -> output", 2)
  end

  local dispatcher = weft.executor("dispatcher", {
    description = "sends the input to every agent",
    handle = function(msg, ctx)
      local conv = common.to_messages("concurrent", msg)
      ctx:set_state("input", conv)
      ctx:send(conv)
    end,
  })
  local workers = common.participants(opts.agents, "concurrent participant", function(agent, name)
    return function(msg, ctx)
      local res, err = common.call_agent(agent, msg)
      if res then
        ctx:send({ agent = name, text = res.text or "" })
      else
        ctx:log("warn", err)
        ctx:send({ agent = name, error = err })
      end
    end
  end)
  local aggregator = weft.executor("aggregator", {
    description = "combines the answers",
    handle = function(results, ctx)
      local failed = {}
      for _, r in ipairs(results) do
        if r.error == nil then failed = nil; break end
        failed[#failed + 1] = sformat("'%s': %s", tostring(r.agent), tostring(r.error))
      end
      if failed then
        error(sformat("concurrent: every participant failed (%d of %d): %s", #failed, #results,
                      concat(failed, "; ")), 0)
      end
      local out = aggregate(results, { messages = ctx:get_state("input"), ctx = ctx })
      if out == nil then error("concurrent: the aggregator returned nil (it must return the output)", 0) end
      ctx:yield_output(out)
    end,
  })
  local wf = weft.workflow(opts.name or "concurrent")
    :start(dispatcher)
    :fan_out(dispatcher, workers)
    :fan_in(workers, aggregator)
    :build()
  return wf
end
