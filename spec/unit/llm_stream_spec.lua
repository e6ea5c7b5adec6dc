-- spec/unit/llm_stream_spec.lua — weft.llm.stream: assembling streamed
-- deltas (text, tool-call fragments by index, whole tool calls, usage,
-- finish reason) into a normalised response, and the chunks passed on;
-- the bounds on what comes from the wire (tool-call indexes and count, the
-- bytes kept).
local stream = require "weft.llm.stream"
local common = require "weft.llm.common"
local json = require "weft.json"
local jit = require "jit"
require "helpers" -- assert.mentions

-- fn() with the JIT off and a count hook that raises past `budget` VM
-- instructions: a loop run up to a number from the wire fails here
-- instead of hanging the spec.
local function bounded(fn, budget)
  jit.off()
  jit.flush()
  debug.sethook(function() error("unbounded: more than " .. budget .. " instructions", 2) end, "", budget)
  local ok, a, b = pcall(fn)
  debug.sethook()
  jit.on()
  if not ok then error(a, 0) end
  return a, b
end

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

  describe("bounds", function()
    it("refuses a tool-call index out of 1..MAX_TOOL_CALLS, so no loop runs to it", function()
      local a = new()
      for _, i in ipairs { 1e15 + 1, 0, -1, 1.5, common.MAX_TOOL_CALLS + 1, "1", 0 / 0 } do
        local err, code = a:tool_delta(i, "id", "f", "{}")
        assert.mentions("p: tool call index", err)
        assert.mentions("at most " .. common.MAX_TOOL_CALLS .. " tool calls", err)
        assert.equal("protocol", code)
      end
      assert.is_nil(a:tool_delta(common.MAX_TOOL_CALLS, "id", "f", "{}"))
      local r = assert(bounded(function() return a:result() end, 1e7))
      assert.equal(1, #r.tool_calls)
    end)

    it("refuses whole tool calls past MAX_TOOL_CALLS", function()
      local a = stream.new("p", nil)
      for _ = 1, common.MAX_TOOL_CALLS do assert.is_nil(a:tool_call(nil, "f", {})) end
      local err, code = a:tool_call(nil, "f", {})
      assert.mentions("at most " .. common.MAX_TOOL_CALLS, err)
      assert.equal("protocol", code)
      assert.equal(common.MAX_TOOL_CALLS, #a:result().tool_calls)
    end)

    it("fails with too_large once text and arguments pass max_bytes", function()
      local a = stream.new("p", nil, 10)
      assert.is_nil(a:text("12345"))
      assert.is_nil(a:tool_delta(1, "id", "f", "{}"))
      local err, code = a:text("1234")
      assert.equal("p: streamed reply exceeds max_bytes (10 bytes of text and tool-call arguments)", err)
      assert.equal("too_large", code)
      assert.is_true(a.too_large)
      local b = stream.new("p", nil, 4)
      assert.equal("too_large", select(2, b:tool_call(nil, "f", { key = "value" })))
    end)

    it("keeps at most MAX_BYTES (16 MiB) by default", function()
      assert.equal(16 * 1024 * 1024, stream.MAX_BYTES)
      assert.equal(stream.MAX_BYTES, stream.new("p", nil).max_bytes)
    end)
  end)

  it("names what a truncated stream missed", function()
    assert.equal("p: stream ended before [DONE]", new():truncated("[DONE]"))
  end)
end)
