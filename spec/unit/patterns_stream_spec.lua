-- spec/unit/patterns_stream_spec.lua — participants of weft.patterns and
-- agent:as_executor stream (issue 17): a streamed run (wf:stream, or the
-- events of wf:run) shows each participant's model chunks as agent_update
-- events of the executor that runs it, with the shape of a plain agent
-- stream ({text} chunks then {done}); a pattern run inside another
-- workflow's executor is nested (executor_id the outer executor,
-- data.path down to the participant).
local weft = require "weft"
local llm = require "weft.llm"
local json = require "weft.json"
local patterns = require "weft.patterns"
local h = require "helpers"

-- The agent_update events of a list of events, by executor id: id -> the
-- text streamed (the {text} chunks joined), and the number of {done}.
local function streamed(events)
  local text, done = {}, {}
  for _, ev in ipairs(events) do
    if ev.type == "agent_update" then
      local id = ev.executor_id
      if ev.data.text then text[id] = (text[id] or "") .. ev.data.text end
      if ev.data.done then done[id] = (done[id] or 0) + 1 end
    end
  end
  return text, done
end

-- The agent names in the data of the agent_update events, by executor:
-- id -> set of names.
local function agents_of(events)
  local out = {}
  for _, ev in ipairs(events) do
    if ev.type == "agent_update" then
      local set = out[ev.executor_id] or {}
      set[tostring(ev.data.agent)] = true
      out[ev.executor_id] = set
    end
  end
  return out
end

-- The events of wf:stream(input), collected.
local function stream_events(wf, input)
  local out = {}
  for ev in wf:stream(input) do out[#out + 1] = ev end
  return out
end

local function agent(name, model)
  return weft.agent { name = name, model = "mock:" .. (model or name) }
end

describe("pattern participants", function()
  before_each(function() llm.mock.reset() end)
  after_each(function() llm.mock.reset() end)

  it("stream in sequential runs (wf:stream)", function()
    h.scripted("w", "a short draft")
    h.scripted("r", "looks good to me")
    local wf = patterns.sequential { agents = { agent("writer", "w"), agent("reviewer", "r") } }
    local events = stream_events(wf, "write")
    local text, done = streamed(events)
    assert.equal("a short draft", text.writer)
    assert.equal("looks good to me", text.reviewer)
    assert.same({ writer = 1, reviewer = 1 }, done)
    -- live: before the participant's executor completed
    local first_up, completed
    for i, ev in ipairs(events) do
      if ev.type == "agent_update" and ev.executor_id == "writer" and not first_up then first_up = i end
      if ev.type == "executor_completed" and ev.executor_id == "writer" then completed = i end
    end
    assert.is_true(first_up < completed)
  end)

  it("stream in group chats, the manager's choice included", function()
    h.scripted("a", "alpha speaks")
    h.scripted("b", "beta speaks")
    h.scripted("m", function(_, n) return n % 2 == 1 and "a" or "b" end)
    local wf = patterns.group_chat { agents = { agent("a"), agent("b") }, manager = agent("boss", "m"),
                                     max_iterations = 2 }
    local res = wf:run("talk")
    assert.equal("completed", res.status, res.error)
    local text = streamed(res.events)
    assert.equal("alpha speaks", text.a)
    assert.equal("beta speaks", text.b)
    assert.equal("ab", text.orchestrator)
    -- the participant's name in the data: the manager streams as itself
    assert.same({ a = { a = true }, b = { b = true }, orchestrator = { boss = true } }, agents_of(res.events))
  end)

  it("stream in handoff runs", function()
    llm.mock.register("t", {
      { when = function(m) return m[#m].role == "tool" end, reply = "passing on" },
      { tool_calls = { { name = "handoff_to_billing", arguments = {} } } },
    })
    h.scripted("b", "refund sent")
    local wf = patterns.handoff { agents = { agent("triage", "t"), agent("billing", "b") } }
    local text, done = streamed(stream_events(wf, "charged twice"))
    assert.equal("passing on", text.triage)
    assert.equal("refund sent", text.billing)
    assert.equal(2, done.triage) -- the tool call, then the reply
    -- the tool call's chunks are there too
    local res = wf:run("charged twice")
    local deltas = 0
    for _, ev in ipairs(h.filter(res.events, "agent_update", "triage")) do
      if ev.data.tool_call_delta then deltas = deltas + 1 end
    end
    assert.is_true(deltas > 0)
  end)

  it("stream in concurrent runs", function()
    h.scripted("x", "from x")
    h.scripted("y", "from y")
    local res = patterns.concurrent { agents = { agent("x"), agent("y") } }:run("q")
    local text = streamed(res.events)
    assert.same({ x = "from x", y = "from y" }, text)
  end)

  it("stream in magentic runs (planner, manager and participants)", function()
    llm.mock.register("p", {
      { match = "Write the final answer", reply = "final" },
      { match = "progress ledger", replies = {
        json.encode { is_request_satisfied = { answer = false, reason = "r" },
                      is_progress_being_made = { answer = true, reason = "r" },
                      is_in_loop = { answer = false, reason = "r" },
                      next_speaker = { answer = "doer", reason = "r" },
                      instruction_or_question = { answer = "do it", reason = "r" } },
        json.encode { is_request_satisfied = { answer = true, reason = "done" },
                      is_progress_being_made = { answer = true, reason = "r" },
                      is_in_loop = { answer = false, reason = "r" },
                      next_speaker = { answer = "doer", reason = "r" },
                      instruction_or_question = { answer = "", reason = "r" } } } },
      { reply = '[{"step": "do it", "participant": "doer"}]' },
    })
    h.scripted("d", "did it")
    local res = patterns.magentic { planner = agent("boss", "p"), participants = { agent("doer", "d") } }:run("t")
    assert.equal("completed", res.status, res.error)
    local text = streamed(res.events)
    assert.equal("did it", text.doer)
    assert.equal("final", text.answer)
    assert.mentions("do it", text.planner)
    assert.mentions("is_request_satisfied", text.ledger)
  end)

  it("are nested in an outer workflow's executor, with the path down to the participant", function()
    h.scripted("w", "inner words")
    local inner = patterns.sequential { agents = { agent("writer", "w") } }
    local outer = weft.workflow("outer"):start(weft.executor("host", function(m, ctx)
      ctx:yield_output(inner:run(m).outputs[1].text)
    end)):build()
    local res = outer:run("go")
    assert.equal("completed", res.status, res.error)
    local ups = h.filter(res.events, "agent_update")
    assert.is_true(#ups >= 2)
    local text = {}
    for _, ev in ipairs(ups) do
      assert.equal("host", ev.executor_id)
      assert.same({ "host", "writer" }, ev.data.path)
      text[#text + 1] = ev.data.text
    end
    assert.equal("inner words", table.concat(text))
  end)
end)

describe("agent:as_executor", function()
  before_each(function() llm.mock.reset() end)
  after_each(function() llm.mock.reset() end)

  it("streams the agent's model chunks as agent_update events of the executor", function()
    h.scripted("s", "streamed reply here")
    local wf = weft.workflow("one"):start(agent("talker", "s"):as_executor("talk")):build()
    local text, done = streamed(stream_events(wf, "hi"))
    assert.same({ talk = "streamed reply here" }, text)
    assert.same({ talk = 1 }, done)
  end)

  it("streams a workflow agent's inner chunks, nested under the executor", function()
    h.scripted("s", "deep words")
    local inner = weft.workflow("inner"):start(agent("talker", "s"):as_executor("talk")):build()
    local wf = weft.workflow("outer"):start(inner:as_agent("wrapped"):as_executor("wrap")):build()
    local res = wf:run("hi")
    assert.equal("completed", res.status, res.error)
    local ups = h.filter(res.events, "agent_update", "wrap")
    assert.is_true(#ups >= 2)
    assert.same({ "wrap", "talk" }, ups[1].data.path)
    assert.equal(#ups, #h.filter(res.events, "agent_update"))
  end)
end)
