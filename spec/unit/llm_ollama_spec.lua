-- spec/unit/llm_ollama_spec.lua — weft.llm.ollama (docs/io.md
-- `weft.llm`): the native /api/chat request (explicit stream flag, tool
-- calls with object arguments, tool results, options), OLLAMA_HOST forms,
-- responses parsed from canned wire data and NDJSON lines assembled.
local ollama = require "weft.llm.ollama"
local json = require "weft.json"
local pu = require "support.provider_unit"
require "helpers" -- assert.mentions

local call = pu.caller("llama3.2")

local ADD = { name = "add", parameters = { type = "object", properties = { a = { type = "number" } } } }

-- Feed NDJSON lines (tables or strings) to a fresh assembler.
local feed = pu.feeder(ollama, pu.encoded)

describe("llm.ollama", function()
  describe("normalise_base", function()
    it("reads OLLAMA_HOST forms like Ollama does", function()
      assert.equal("http://127.0.0.1:11434", ollama.normalise_base("127.0.0.1"))
      assert.equal("http://10.0.0.2:8080", ollama.normalise_base("10.0.0.2:8080"))
      assert.equal("https://ollama.example.com", ollama.normalise_base("https://ollama.example.com"))
      assert.equal("http://[::1]:11434", ollama.normalise_base("[::1]"))
    end)
  end)

  describe("build", function()
    it("posts to <base>/api/chat with stream = false unless streaming, and no key", function()
      local req = ollama.build(call { messages = { { role = "user", content = "hi" } } },
                               { base_url = "http://h:1" })
      assert.equal("http://h:1/api/chat", req.url)
      assert.is_nil(req.headers.authorization)
      assert.equal('{"messages":[{"content":"hi","role":"user"}],"model":"llama3.2","stream":false}',
                   json.encode(req.body))
      req = ollama.build(call { messages = { { role = "user", content = "hi" } }, stream = true },
                         { base_url = "http://h:1" })
      assert.is_true(req.body.stream)
    end)

    it("translates tool calls, tool results, tools and options", function()
      local c = call { messages = {
        { role = "user", content = "add" },
        { role = "assistant", content = "", tool_calls = { { id = "call_1", name = "add", arguments = '{"a":3}' } } },
        { role = "tool", tool_call_id = "call_1", content = "3" },
      }, tools = { ADD }, temperature = 0.3, max_tokens = 10 }
      local b = json.decode(json.encode(ollama.body(c)))
      assert.same({ { ["function"] = { name = "add", arguments = { a = 3 } } } }, b.messages[2].tool_calls)
      assert.same({ role = "tool", content = "3", tool_name = "add" }, b.messages[3])
      assert.same({ { type = "function", ["function"] = { name = "add", parameters = ADD.parameters } } }, b.tools)
      assert.same({ temperature = 0.3, num_predict = 10 }, b.options)
    end)

    it("leaves the tools out when tool_choice is none", function()
      local c = call { messages = { { role = "user", content = "x" } }, tools = { ADD }, tool_choice = "none" }
      assert.is_nil(ollama.body(c).tools)
    end)
  end)

  describe("parse", function()
    it("normalises content, counts and done_reason", function()
      local d = json.decode([[{"model":"llama3.2","created_at":"2024-01-01T00:00:00Z",
        "message":{"role":"assistant","content":"Hi there"},"done_reason":"stop","done":true,
        "total_duration":1,"prompt_eval_count":12,"eval_count":3}]])
      local r = assert(ollama.parse(d))
      assert.equal("Hi there", r.text)
      assert.equal("stop", r.finish_reason)
      assert.same({ input_tokens = 12, output_tokens = 3, total_tokens = 15 }, r.usage)
    end)

    it("gives tool calls generated ids", function()
      local d = json.decode([[{"message":{"role":"assistant","content":"",
        "tool_calls":[{"function":{"name":"add","arguments":{"a":1}}},{"function":{"name":"now","arguments":{}}}]},
        "done":true,"done_reason":"stop"}]])
      local r = assert(ollama.parse(d))
      assert.same({ { id = "call_1", name = "add", arguments = { a = 1 } },
                    { id = "call_2", name = "now", arguments = {} } }, r.tool_calls)
      assert.equal("tool_calls", r.finish_reason)
    end)

    it("reports an error payload", function()
      local _, err = ollama.parse(json.decode('{"error":"model \\"nope\\" not found"}'))
      assert.equal('ollama: error in response: model "nope" not found', err)
    end)
  end)

  describe("stream_event", function()
    it("assembles NDJSON messages and ends at done", function()
      local asm, chunks = feed {
        { model = "m", message = { role = "assistant", content = "Hel" }, done = false },
        { model = "m", message = { role = "assistant", content = "lo" }, done = false },
        { model = "m", message = { role = "assistant", content = "" }, done = true, done_reason = "stop",
          prompt_eval_count = 5, eval_count = 2 },
      }
      pu.assert_text_stream(asm, chunks, { "Hel", "lo" },
                            { input_tokens = 5, output_tokens = 2, total_tokens = 7 })
    end)

    it("takes tool calls from a message line", function()
      local asm = feed {
        { message = { role = "assistant", content = "", tool_calls = { { ["function"] = { name = "add", arguments = { a = 1 } } } } }, done = false },
        { message = { role = "assistant", content = "" }, done = true, done_reason = "stop" },
      }
      local r = assert(asm:result())
      assert.same({ { id = "call_1", name = "add", arguments = { a = 1 } } }, r.tool_calls)
      assert.equal("tool_calls", r.finish_reason)
    end)

    it("is not terminated without done", function()
      assert.is_false(feed { { message = { content = "x" }, done = false } }.terminated)
    end)

    it("reports a malformed line and an error line", function()
      local _, err = feed { "nope" }
      assert.equal("ollama: malformed stream chunk (not JSON): nope", err)
      _, err = feed { { error = "out of memory" } }
      assert.equal("ollama: error in stream: out of memory", err)
    end)
  end)
end)
