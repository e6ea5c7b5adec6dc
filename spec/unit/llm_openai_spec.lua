-- spec/unit/llm_openai_spec.lua — weft.llm.openai (docs/io.md `weft.llm`):
-- the chat completions request built from normalised messages and tools,
-- responses parsed from canned wire data, and streamed chunks (text, tool
-- call fragments by index, usage, [DONE]) assembled.
local openai = require "weft.llm.openai"
local json = require "weft.json"
local pu = require "support.provider_unit"
require "helpers" -- assert.mentions

-- A normalised request as weft.llm.chat builds it.
local call = pu.caller("gpt-4o-mini")

local ADD = { name = "add", description = "adds numbers",
              parameters = { type = "object", properties = { a = { type = "number" } } } }

-- Feed SSE data strings to a fresh assembler; returns it and the chunks.
local feed = pu.feeder(openai, function(data) return { event = "message", data = data } end)

describe("llm.openai", function()
  describe("build", function()
    it("posts to <base>/chat/completions with a bearer key and JSON body", function()
      local req = openai.build(call { messages = { { role = "user", content = "hi" } } },
                               { api_key = "sk-test", base_url = "http://h/v1" })
      assert.equal("http://h/v1/chat/completions", req.url)
      assert.equal("Bearer sk-test", req.headers.authorization)
      assert.equal("application/json", req.headers["content-type"])
      assert.same({ model = "gpt-4o-mini", messages = { { role = "user", content = "hi" } } },
                  json.decode(json.encode(req.body)))
    end)

    it("translates system, assistant tool calls and tool results", function()
      local c = call { messages = {
        { role = "system", content = "be brief" },
        { role = "user", content = "add 1 and 2", name = "ann" },
        { role = "assistant", tool_calls = { { id = "c1", name = "add", arguments = { a = 1, b = 2 } } } },
        { role = "tool", tool_call_id = "c1", content = "3" },
      }, tools = { ADD }, tool_choice = { name = "add" }, temperature = 0.5, max_tokens = 50 }
      local b = json.decode(json.encode(openai.body(c)))
      assert.same({ role = "system", content = "be brief" }, b.messages[1])
      assert.same({ role = "user", content = "add 1 and 2", name = "ann" }, b.messages[2])
      local a = b.messages[3]
      assert.equal("assistant", a.role)
      assert.equal(json.null, a.content)
      assert.same({ id = "c1", type = "function",
                    ["function"] = { name = "add", arguments = '{"a":1,"b":2}' } }, a.tool_calls[1])
      assert.same({ role = "tool", tool_call_id = "c1", content = "3" }, b.messages[4])
      assert.same({ type = "function", ["function"] = { name = "add", description = "adds numbers",
                    parameters = ADD.parameters } }, b.tools[1])
      assert.same({ type = "function", ["function"] = { name = "add" } }, b.tool_choice)
      assert.equal(0.5, b.temperature)
      assert.equal(50, b.max_tokens)
    end)

    it("sends a schema with empty properties as an object", function()
      local c = call { messages = { { role = "user", content = "x" } }, tools = { { name = "now" } } }
      assert.mentions('"parameters":{"properties":{},"type":"object"}', json.encode(openai.body(c)))
    end)

    it("asks for usage in streams", function()
      local c = call { messages = { { role = "user", content = "x" } }, stream = true }
      local req = openai.build(c, { api_key = "k", base_url = "http://h/v1" })
      assert.is_true(req.body.stream)
      assert.same({ include_usage = true }, req.body.stream_options)
      assert.equal("text/event-stream", req.headers.accept)
    end)

    it("passes tool_choice strings through", function()
      local c = call { messages = { { role = "user", content = "x" } }, tools = { ADD }, tool_choice = "required" }
      assert.equal("required", openai.body(c).tool_choice)
    end)
  end)

  describe("parse", function()
    it("normalises text, usage and finish reason", function()
      local d = json.decode([[{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini",
        "choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],
        "usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}]])
      local r = assert(openai.parse(d))
      assert.equal("Hello!", r.text)
      assert.same({}, r.tool_calls)
      assert.same({ input_tokens = 9, output_tokens = 2, total_tokens = 11 }, r.usage)
      assert.equal("stop", r.finish_reason)
    end)

    it("decodes tool call arguments", function()
      local d = json.decode([[{"choices":[{"index":0,"message":{"role":"assistant","content":null,
        "tool_calls":[{"id":"call_abc","type":"function","function":{"name":"add","arguments":"{\"a\":1,\"b\":[2,3]}"}},
                      {"id":"call_def","type":"function","function":{"name":"now","arguments":""}}]},
        "finish_reason":"tool_calls"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}]])
      local r = assert(openai.parse(d))
      assert.equal("", r.text)
      assert.equal("tool_calls", r.finish_reason)
      assert.equal("call_abc", r.tool_calls[1].id)
      assert.equal("add", r.tool_calls[1].name)
      assert.same({ a = 1, b = { 2, 3 } }, r.tool_calls[1].arguments)
      assert.same({}, r.tool_calls[2].arguments)
    end)

    it("reports invalid tool arguments naming the tool", function()
      local d = json.decode([[{"choices":[{"message":{"content":null,"tool_calls":[{"id":"x",
        "function":{"name":"add","arguments":"{\"a\":"}}]},"finish_reason":"tool_calls"}]}]])
      local r, err = openai.parse(d)
      assert.is_nil(r)
      assert.mentions("openai: tool call 'add' has invalid JSON arguments", err)
    end)

    it("reports an error payload and an unexpected shape", function()
      local _, err = openai.parse(json.decode('{"error":{"type":"invalid_request_error","message":"bad model"}}'))
      assert.mentions("invalid_request_error: bad model", err)
      _, err = openai.parse(json.decode('{"foo":1}'))
      assert.mentions("openai: unexpected response", err)
    end)
  end)

  describe("stream_event", function()
    it("refuses a tool-call index out of range (also for the mock)", function()
      local mock = require "weft.llm.mock"
      for _, P in ipairs { openai, mock } do
        for _, idx in ipairs { "1e15", "-1", "0.5", '"0"', tostring(require("weft.llm.common").MAX_TOOL_CALLS) } do
          local asm, err = feed({ '{"choices":[{"index":0,"delta":{"tool_calls":[{"index":' .. idx
                                  .. ',"id":"c","function":{"name":"add","arguments":"{}"}}]}}]}' }, P)
          assert.is_nil(asm)
          assert.mentions(P.name .. ": tool call index", err)
        end
      end
      local asm = assert(feed { '{"choices":[{"index":0,"delta":{"tool_calls":[{"index":127,'
                                .. '"function":{"name":"add","arguments":"{}"}}]}}]}' })
      assert.equal(1, #asm:result().tool_calls)
    end)

    it("refuses a reply with more than MAX_TOOL_CALLS tool calls", function()
      local calls = {}
      for i = 1, 129 do calls[i] = { id = "c" .. i, type = "function", ["function"] = { name = "f", arguments = "{}" } } end
      local r, err = openai.parse({ choices = { { message = { role = "assistant", tool_calls = calls } } } })
      assert.is_nil(r)
      assert.equal("openai: reply has 129 tool calls (at most 128)", err)
    end)

    it("assembles text, usage and the finish reason", function()
      local asm, chunks = feed {
        '{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}',
        '{"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}',
        '{"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}',
        '{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
        '{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}',
        "[DONE]",
      }
      pu.assert_text_stream(asm, chunks, { "Hel", "lo" },
                            { input_tokens = 3, output_tokens = 2, total_tokens = 5 }, "stop")
    end)

    it("assembles tool call fragments by index", function()
      local asm, chunks = feed {
        '{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"add","arguments":""}}]}}]}',
        '{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\\"a\\""}}]}}]}',
        '{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_2","type":"function","function":{"name":"now","arguments":"{}"}}]}}]}',
        '{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":": 4}"}}]}}]}',
        '{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}',
        "[DONE]",
      }
      local r = assert(asm:result())
      assert.equal(2, #r.tool_calls)
      assert.same({ id = "call_1", name = "add", arguments = { a = 4 } }, r.tool_calls[1])
      assert.same({ id = "call_2", name = "now", arguments = {} }, r.tool_calls[2])
      assert.equal("tool_calls", r.finish_reason)
      assert.same({ tool_call_delta = { index = 1, id = "call_1", name = "add", arguments = "" } }, chunks[1])
      assert.same({ tool_call_delta = { index = 1, arguments = '{"a"' } }, chunks[2])
      assert.same({ tool_call_delta = { index = 2, id = "call_2", name = "now", arguments = "{}" } }, chunks[3])
    end)

    it("is not terminated without [DONE]", function()
      local asm = feed { '{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}]}' }
      assert.is_false(asm.terminated)
    end)

    it("names the provider and an excerpt for a chunk that is not JSON", function()
      local asm, err = feed { '{"choices":[]}', "this is {not json" }
      assert.is_nil(asm)
      assert.mentions("openai: malformed stream chunk (not JSON): this is {not json", err)
    end)

    it("reports an error payload in the stream", function()
      local _, err = feed { '{"error":{"type":"server_error","message":"boom"}}' }
      assert.mentions("openai: error in stream: server_error: boom", err)
    end)
  end)
end)
