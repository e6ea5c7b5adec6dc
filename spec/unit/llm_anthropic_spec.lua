-- spec/unit/llm_anthropic_spec.lua — weft.llm.anthropic (docs/io.md
-- `weft.llm`): the Messages API request (top-level system, content blocks,
-- tool_use / tool_result, merged turns, max_tokens default, headers),
-- responses parsed from canned wire data, and the event stream
-- (text_delta, input_json_delta per content block, message_delta usage,
-- message_stop) assembled.
local anthropic = require "weft.llm.anthropic"
local json = require "weft.json"
local pu = require "support.provider_unit"
require "helpers" -- assert.mentions

local call = pu.caller("claude-3-5-haiku-latest")

local ADD = { name = "add", description = "adds", parameters = { type = "object",
              properties = { a = { type = "number" } }, required = { "a" } } }

-- Feed SSE events {event, data-table-or-string} to a fresh assembler.
local feed = pu.feeder(anthropic, function(e) return { event = e[1], data = pu.encoded(e[2]) } end)

describe("llm.anthropic", function()
  describe("build", function()
    it("posts to <base>/v1/messages with x-api-key and anthropic-version", function()
      local req = anthropic.build(call { messages = { { role = "user", content = "hi" } } },
                                  { api_key = "sk-ant-test", base_url = "http://h" })
      assert.equal("http://h/v1/messages", req.url)
      assert.equal("sk-ant-test", req.headers["x-api-key"])
      assert.equal("2023-06-01", req.headers["anthropic-version"])
      assert.is_nil(req.headers.authorization)
      local b = json.decode(json.encode(req.body))
      assert.equal(1024, b.max_tokens)
      assert.equal("claude-3-5-haiku-latest", b.model)
      assert.same({ { role = "user", content = { { type = "text", text = "hi" } } } }, b.messages)
    end)

    it("lifts system messages and translates tool use and results", function()
      local c = call { messages = {
        { role = "system", content = "be brief" },
        { role = "system", content = "be kind" },
        { role = "user", content = "add 1" },
        { role = "assistant", content = "sure", tool_calls = {
            { id = "toolu_1", name = "add", arguments = { a = 1 } },
            { id = "toolu_2", name = "add", arguments = {} } } },
        { role = "tool", tool_call_id = "toolu_1", content = "1" },
        { role = "tool", tool_call_id = "toolu_2", content = "0" },
        { role = "user", content = "thanks" },
      }, tools = { ADD }, tool_choice = "required", max_tokens = 99, temperature = 0 }
      local raw = json.encode(anthropic.body(c))
      local b = json.decode(raw)
      assert.equal("be brief\n\nbe kind", b.system)
      assert.equal(99, b.max_tokens)
      assert.equal(0, b.temperature)
      assert.equal(3, #b.messages)
      assert.same({ { type = "text", text = "sure" },
                    { type = "tool_use", id = "toolu_1", name = "add", input = { a = 1 } },
                    { type = "tool_use", id = "toolu_2", name = "add", input = {} } }, b.messages[2].content)
      assert.mentions('"input":{}', raw)
      -- tool results and the next user text merge into one user turn
      assert.equal("user", b.messages[3].role)
      assert.same({ { type = "tool_result", tool_use_id = "toolu_1", content = "1" },
                    { type = "tool_result", tool_use_id = "toolu_2", content = "0" },
                    { type = "text", text = "thanks" } }, b.messages[3].content)
      assert.same({ { name = "add", description = "adds", input_schema = ADD.parameters } }, b.tools)
      assert.same({ type = "any" }, b.tool_choice)
    end)

    it("maps tool_choice", function()
      local function tc(v)
        return anthropic.body(call { messages = { { role = "user", content = "x" } }, tools = { ADD },
                                     tool_choice = v }).tool_choice
      end
      assert.same({ type = "auto" }, tc("auto"))
      assert.same({ type = "none" }, tc("none"))
      assert.same({ type = "tool", name = "add" }, tc({ name = "add" }))
      assert.is_nil(tc(nil))
    end)
  end)

  describe("parse", function()
    it("normalises text blocks, tool_use blocks, usage and stop_reason", function()
      local d = json.decode([[{"id":"msg_01","type":"message","role":"assistant","model":"claude",
        "content":[{"type":"text","text":"Let me add."},
                   {"type":"tool_use","id":"toolu_01","name":"add","input":{"a":1,"b":2}}],
        "stop_reason":"tool_use","stop_sequence":null,
        "usage":{"input_tokens":20,"output_tokens":11}}]])
      local r = assert(anthropic.parse(d))
      assert.equal("Let me add.", r.text)
      assert.same({ { id = "toolu_01", name = "add", arguments = { a = 1, b = 2 } } }, r.tool_calls)
      assert.equal("tool_calls", r.finish_reason)
      assert.same({ input_tokens = 20, output_tokens = 11, total_tokens = 31 }, r.usage)
    end)

    it("maps end_turn and max_tokens", function()
      local function fr(reason)
        return anthropic.parse({ content = { { type = "text", text = "x" } }, stop_reason = reason }).finish_reason
      end
      assert.equal("stop", fr("end_turn"))
      assert.equal("length", fr("max_tokens"))
      assert.equal("stop", fr("stop_sequence"))
    end)

    it("reports an error payload", function()
      local r, err, code = anthropic.parse(json.decode(
        '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'))
      assert.is_nil(r)
      assert.equal("anthropic: error in response: overloaded_error: Overloaded", err)
      assert.equal("provider", code)
    end)
  end)

  describe("stream_event", function()
    local START = { "message_start", { type = "message_start", message = { id = "msg_1", type = "message",
                    role = "assistant", content = json.array(), usage = { input_tokens = 25, output_tokens = 1 } } } }

    it("assembles text deltas, usage and stop reason", function()
      local asm, chunks = feed {
        START,
        { "content_block_start", { type = "content_block_start", index = 0,
                                   content_block = { type = "text", text = "" } } },
        { "ping", { type = "ping" } },
        { "content_block_delta", { type = "content_block_delta", index = 0,
                                   delta = { type = "text_delta", text = "Hello" } } },
        { "content_block_delta", { type = "content_block_delta", index = 0,
                                   delta = { type = "text_delta", text = " world" } } },
        { "content_block_stop", { type = "content_block_stop", index = 0 } },
        { "message_delta", { type = "message_delta", delta = { stop_reason = "end_turn" },
                             usage = { output_tokens = 12 } } },
        { "message_stop", { type = "message_stop" } },
      }
      pu.assert_text_stream(asm, chunks, { "Hello", " world" },
                            { input_tokens = 25, output_tokens = 12, total_tokens = 37 }, "stop")
    end)

    it("assembles input_json_delta fragments per content block", function()
      local asm, chunks = feed {
        START,
        { "content_block_start", { type = "content_block_start", index = 0,
                                   content_block = { type = "text", text = "" } } },
        { "content_block_delta", { type = "content_block_delta", index = 0,
                                   delta = { type = "text_delta", text = "Adding." } } },
        { "content_block_stop", { type = "content_block_stop", index = 0 } },
        { "content_block_start", { type = "content_block_start", index = 1, content_block = {
            type = "tool_use", id = "toolu_9", name = "add", input = json.object() } } },
        { "content_block_delta", { type = "content_block_delta", index = 1,
                                   delta = { type = "input_json_delta", partial_json = "" } } },
        { "content_block_delta", { type = "content_block_delta", index = 1,
                                   delta = { type = "input_json_delta", partial_json = '{"a": 4' } } },
        { "content_block_delta", { type = "content_block_delta", index = 1,
                                   delta = { type = "input_json_delta", partial_json = ', "b": 5}' } } },
        { "content_block_stop", { type = "content_block_stop", index = 1 } },
        { "content_block_start", { type = "content_block_start", index = 2, content_block = {
            type = "tool_use", id = "toolu_10", name = "now", input = json.object() } } },
        { "content_block_stop", { type = "content_block_stop", index = 2 } },
        { "message_delta", { type = "message_delta", delta = { stop_reason = "tool_use" },
                             usage = { output_tokens = 30 } } },
        { "message_stop", { type = "message_stop" } },
      }
      local r = assert(asm:result())
      assert.equal("Adding.", r.text)
      assert.same({ { id = "toolu_9", name = "add", arguments = { a = 4, b = 5 } },
                    { id = "toolu_10", name = "now", arguments = {} } }, r.tool_calls)
      assert.equal("tool_calls", r.finish_reason)
      assert.same({ tool_call_delta = { index = 1, id = "toolu_9", name = "add", arguments = "" } }, chunks[2])
      assert.same({ tool_call_delta = { index = 1, arguments = '{"a": 4' } }, chunks[3])
    end)

    it("is not terminated without message_stop", function()
      local asm = feed { START, { "message_delta", { type = "message_delta", delta = { stop_reason = "end_turn" } } } }
      assert.is_false(asm.terminated)
    end)

    it("reports an error event and a malformed chunk", function()
      local _, err = feed { START, { "error", { type = "error",
                            error = { type = "overloaded_error", message = "Overloaded" } } } }
      assert.equal("anthropic: error in stream: overloaded_error: Overloaded", err)
      _, err = feed { START, { "content_block_delta", "{oops" } }
      assert.mentions("anthropic: malformed stream chunk (not JSON): {oops", err)
    end)

    it("reports an error event without an error payload with its data", function()
      local _, err, code = feed { START, { "error", { type = "error", detail = "upstream went away" } } }
      assert.mentions('anthropic: error in stream: {"detail":"upstream went away"', err)
      assert.equal("provider", code)
    end)

    it("refuses a content block index that is not an integer", function()
      for _, idx in ipairs { 1e15, -1, 0.5, "1" } do
        local _, err = feed { START, { "content_block_start", { type = "content_block_start", index = idx,
          content_block = { type = "tool_use", id = "t", name = "add", input = json.object() } } } }
        assert.mentions("anthropic: content block index", err)
      end
    end)
  end)
end)
