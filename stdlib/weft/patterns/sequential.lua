--- weft.patterns.sequential — agents in a chain, each seeing the whole
-- conversation so far.
--
-- `sequential{agents = {a, b, c}, name = "sequential"}` builds the workflow
-- a -> b -> c (one executor per agent, its id the agent's name). The input
-- (a string, a message or a list of messages) becomes the conversation; each
-- agent runs on a fresh thread with the conversation as its input, and
-- what its run added is appended — its assistant messages (`{role =
-- "assistant", name = <agent>, content, tool_calls}`) and tool results,
-- as Agent Framework passes the full conversation on. The last agent yields
-- the output `{messages = conversation, text = its reply}`. An agent whose
-- run fails fails the run, naming the agent. Uses weft, weft.patterns.common.
local weft = require "weft"
local common = require "weft.patterns.common"

local ipairs, error, unpack = ipairs, error, unpack

local OPTIONS = { agents = true, name = true }

--- Build the sequential workflow of opts.agents.
return function(opts)
  common.check_options("sequential", opts, OPTIONS, 2)
  local names = common.check_agents("sequential", opts.agents, "agents", nil, 2)
  local agents, n = opts.agents, #names
  local b = weft.workflow(opts.name or "sequential")
  local prev
  for i, agent in ipairs(agents) do
    local first, last = i == 1, i == n
    local ex = weft.executor(agent.name, {
      description = "sequential step " .. i .. " of " .. n,
      handle = function(msg, ctx)
        local conv = first and common.to_messages("sequential", msg) or msg.messages
        local res, err = common.call_agent(agent, conv)
        if not res then error("sequential: " .. err, 0) end
        local out = common.append(conv, unpack(common.run_messages(agent.name, conv, res)))
        if last then
          ctx:yield_output({ messages = out, text = res.text or "" })
        else
          ctx:send({ messages = out })
        end
      end,
    })
    if first then b:start(ex) else b:edge(prev, ex) end
    prev = ex
  end
  return common.default_supersteps(b, n + 2)
end
