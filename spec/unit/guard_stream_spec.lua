-- A guarded agent's streamed reply (docs/guardrails.md, "Streaming"): the
-- model chunks of an agent with output or tool-call guards do not leave
-- before the guards have run — not as agent_update events, not to the
-- caller's on_chunk — and what is streamed is the guarded reply.
local weft = require "weft"
local llm = require "weft.llm"
local h = require "helpers"

local guard = weft.guard
local SECRET = "write to ada@example.com today"

-- The text of the agent_update chunks of events, and their count.
local function streamed(events)
  local text, n = {}, 0
  for _, ev in ipairs(events) do
    if ev.type == "agent_update" then
      n = n + 1
      if ev.data.text then text[#text + 1] = ev.data.text end
    end
  end
  return table.concat(text), n
end

describe("a guarded agent's stream", function()
  before_each(function() llm.mock.reset() end)
  after_each(function() llm.mock.reset() end)

  it("carries the masked reply, never the raw text, in a workflow's events", function()
    h.scripted("leaky", SECRET)
    local a = weft.agent { name = "a", model = "mock:leaky", guards = { guard.pii { stages = { "output" } } } }
    local wf = weft.workflow("w"):start(a:as_executor()):build()
    local events = {}
    for ev in wf:stream("hi") do events[#events + 1] = ev end
    local text, n = streamed(events)
    assert.is_true(n >= 2, "no chunk streamed")
    assert.is_nil(text:find("ada@example.com", 1, true), text)
    assert.equal("write to [EMAIL] today", text)
    local done
    for _, ev in ipairs(events) do
      if ev.type == "agent_update" and ev.data.done then done = ev.data end
    end
    assert.is_table(done)
    assert.equal("a", done.agent)
  end)

  it("gives agent:stream's on_chunk the masked reply only", function()
    h.scripted("leaky", SECRET)
    local a = weft.agent { name = "a", model = "mock:leaky", guards = { guard.pii { stages = { "output" } } } }
    local chunks = {}
    local res = assert(a:stream("hi", function(c) chunks[#chunks + 1] = c end))
    assert.equal("write to [EMAIL] today", res.text)
    local text = {}
    for _, c in ipairs(chunks) do
      assert.equal("a", c.agent)
      if c.text then text[#text + 1] = c.text end
    end
    assert.equal("write to [EMAIL] today", table.concat(text))
    assert.is_true(chunks[#chunks].done == true)
  end)

  it("streams nothing of a blocked reply", function()
    h.scripted("leaky", SECRET)
    local a = weft.agent { name = "a", model = "mock:leaky",
                           guards = { guard.pii { action = "block", stages = { "output" } } } }
    local wf = weft.workflow("w"):start(a:as_executor()):build()
    local events = {}
    for ev in wf:stream("hi") do events[#events + 1] = ev end
    local text = streamed(events)
    assert.equal("", text)
    assert.equal("workflow_failed", events[#events].type)
  end)

  it("still streams chunk by chunk when no guard reads the reply", function()
    h.scripted("plain", "one two three four")
    local a = weft.agent { name = "a", model = "mock:plain", guards = { guard.size { max_bytes = 1000,
                           stages = { "input" } } } }
    local chunks = {}
    assert(a:stream("hi", function(c) chunks[#chunks + 1] = c end))
    local texts = 0
    for _, c in ipairs(chunks) do if c.text then texts = texts + 1 end end
    assert.is_true(texts > 1, "the reply came in one chunk")
  end)
end)
