--- weft.patterns.aggregators — aggregators for weft.patterns.concurrent.
--
-- An aggregator is `fn(results, info) -> output`: results is the list of
-- `{agent = name, text = reply}` or `{agent = name, error = message}` in
-- the order of the agents; info is `{messages = the input conversation, ctx
-- = the aggregator's executor context}`. It runs inside the aggregator
-- executor, so it may call agents (they yield). Its return value is the
-- workflow output (JSON-serialisable, not nil).
--
-- `list()` (the default: the results as they are), `texts(sep)` (the
-- successful replies joined, "\n\n" by default), `synthesize(agent,
-- {prompt})` (asks an agent to merge the answers; output `{text = merged,
-- results = results}`). Uses weft.patterns.common.
local common = require "weft.patterns.common"

local type, error, ipairs, tostring = type, error, ipairs, tostring
local sformat, concat = string.format, table.concat

local _M = {}

--- The default aggregator: the list of results as they are.
function _M.list()
  return function(results) return results end
end

--- An aggregator joining the text of the successful replies with sep
-- (default "\n\n"); failures are left out.
function _M.texts(sep)
  if sep ~= nil and type(sep) ~= "string" then error("aggregators.texts: sep must be a string", 2) end
  sep = sep or "\n\n"
  return function(results)
    local out = {}
    for _, r in ipairs(results) do
      if r.error == nil then out[#out + 1] = r.text or "" end
    end
    return concat(out, sep)
  end
end

local SYNTH_PROMPT = "Several experts answered the same request. Merge their answers into one "
  .. "coherent answer. Keep what they agree on, resolve contradictions, and say what is "
  .. "missing when an expert failed."

--- An aggregator asking agent to merge the answers: it receives the
-- request, then each answer ("## name" sections, failures marked as such)
-- and opts.prompt (a default instruction otherwise). Output `{text =
-- merged, results = results}`. Fails the run when the merging agent fails
-- (naming it); when every agent failed, concurrent fails before any
-- aggregator runs.
function _M.synthesize(agent, opts)
  if not common.is_agent(agent) then
    error("aggregators.synthesize: expects an agent (a table with a name and a run method)", 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then error("aggregators.synthesize: options must be a table {prompt}", 2) end
  if opts.prompt ~= nil and type(opts.prompt) ~= "string" then
    error("aggregators.synthesize: prompt must be a string", 2)
  end
  local prompt = opts.prompt or SYNTH_PROMPT
  return function(results, info)
    local parts = {}
    for _, r in ipairs(results) do
      if r.error ~= nil then
        parts[#parts + 1] = sformat("## %s\n(failed: %s)", tostring(r.agent), tostring(r.error))
      else
        parts[#parts + 1] = sformat("## %s\n%s", tostring(r.agent), tostring(r.text or ""))
      end
    end
    local request = info and info.messages and common.transcript(info.messages) or ""
    local content = sformat("%s\n\nRequest:\n%s\n\nAnswers:\n\n%s", prompt, request, concat(parts, "\n\n"))
    local res, err = common.call_agent(agent, { { role = "user", content = content } })
    if not res then error("concurrent: synthesize: " .. err, 0) end
    return { text = res.text or "", results = results }
  end
end

return _M
