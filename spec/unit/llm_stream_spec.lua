-- spec/unit/llm_stream_spec.lua — weft.llm.stream: assembling streamed
-- deltas (text, tool-call fragments by index, whole tool calls, usage,
-- finish reason) into a normalised response, and the chunks passed on.
local stream = require "weft.llm.stream"
local json = require "weft.json"
require "helpers" -- assert.mentions

local function new()
  local chunks = {}
  return stream.new("p", function(c) chunks[#chunks + 1] = c end), chunks
end

describe("llm.stream", function()
  it("concatenates text deltas and passes each on, skipping empty ones", function()
    local a, chunks = new()
    a:text("Hel"); a:text(""); a:text(nil); a:text("lo")
    assert.same({ { text = "Hel" }, { text = "lo" } }, chunks)
    assert.equal("Hello", a:result().text)
    assert.is_true(a.delivered)
  end)

  it("assembles fragments of several calls by index, in index order", function()
    local a, chunks = new()
    a:tool_delta(2, "id2", "b", "")
    a:tool_delta(1, "id1", "a", '{"x"')
    a:tool_delta(2, nil, nil, '{"y":[1,')
    a:tool_delta(1, nil, nil, ':"s"}')
    a:tool_delta(2, nil, nil, "2]}")
    a:tool_delta(1, nil, nil, "")
    local r = assert(a:result())
    assert.same({ { id = "id1", name = "a", arguments = { x = "s" } },
                  { id = "id2", name = "b", arguments = { y = { 1, 2 } } } }, r.tool_calls)
    assert.equal(5, #chunks) -- the empty fragment is not passed on
    assert.same({ tool_call_delta = { index = 2, id = "id2", name = "b", arguments = "" } }, chunks[1])
    assert.equal("tool_calls", r.finish_reason)
  end)

  it("keeps a decoded empty object for calls without arguments", function()
    local a = new()
    a:tool_delta(1, "i", "now", nil)
    local r = assert(a:result())
    assert.same({}, r.tool_calls[1].arguments)
    assert.equal('{}', json.encode(r.tool_calls[1].arguments))
  end)

  it("numbers whole calls after the ones seen and gives missing ids", function()
    local a, chunks = new()
    a:tool_call(nil, "f", { k = 1 })
    a:tool_call("given", "g", nil)
    local r = assert(a:result())
    assert.same({ { id = "call_1", name = "f", arguments = { k = 1 } },
                  { id = "given", name = "g", arguments = {} } }, r.tool_calls)
    assert.same({ tool_call_delta = { index = 1, id = "call_1", name = "f", arguments = '{"k":1}' } }, chunks[1])
  end)

  it("fails naming provider and tool when arguments are not JSON", function()
    local a = new()
    a:tool_delta(1, "i", "add", '{"a": 1')
    local r, err = a:result()
    assert.is_nil(r)
    assert.mentions("p: tool call 'add' has invalid JSON arguments", err)
    assert.mentions('{"a": 1', err)
  end)

  it("normalises usage (0 when unknown, total defaults to the sum)", function()
    local a = new()
    assert.same({ input_tokens = 0, output_tokens = 0, total_tokens = 0 }, a:result().usage)
    a:set_usage(3, nil, nil)
    a:set_usage(nil, 4, nil)
    assert.same({ input_tokens = 3, output_tokens = 4, total_tokens = 7 }, a:result().usage)
    a:set_usage(nil, nil, 9)
    assert.equal(9, a:result().usage.total_tokens)
  end)

  it("keeps the finish reason and defaults to stop", function()
    local a = new()
    assert.equal("stop", a:result().finish_reason)
    a:finish("length")
    assert.equal("length", a:result().finish_reason)
  end)

  it("returns an empty JSON array when there are no tool calls", function()
    assert.equal("[]", json.encode(new():result().tool_calls))
  end)

  it("works without an emit function and then delivers nothing", function()
    local a = stream.new("p", nil)
    a:text("x")
    assert.is_false(a.delivered)
    assert.equal("x", a:result().text)
  end)

  it("names what a truncated stream missed", function()
    assert.equal("p: stream ended before [DONE]", new():truncated("[DONE]"))
  end)
end)
