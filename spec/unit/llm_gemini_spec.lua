-- spec/unit/llm_gemini_spec.lua — weft.llm.gemini (docs/io.md
-- `weft.llm`): the generateContent request (contents/parts, role "model",
-- systemInstruction, functionDeclarations, functionCall/functionResponse,
-- the key in x-goog-api-key), responses parsed from canned wire data
-- (generated call ids), and SSE fragments assembled.
local gemini = require "weft.llm.gemini"
local json = require "weft.json"
local pu = require "support.provider_unit"
require "helpers" -- assert.mentions

local call = pu.caller("gemini-2.0-flash")

local ADD = { name = "add", description = "adds", parameters = { type = "object",
              properties = { a = { type = "number" } } } }

-- Feed SSE data (tables or strings) to a fresh assembler.
local feed = pu.feeder(gemini, function(f) return { event = "message", data = pu.encoded(f) } end)

describe("llm.gemini", function()
  describe("build", function()
    it("posts to :generateContent with the key in a header, never the URL", function()
      local req = gemini.build(call { messages = { { role = "user", content = "hi" } } },
                               { api_key = "AIza-test", base_url = "http://h" })
      assert.equal("http://h/v1beta/models/gemini-2.0-flash:generateContent", req.url)
      assert.equal("AIza-test", req.headers["x-goog-api-key"])
      assert.same({ contents = { { role = "user", parts = { { text = "hi" } } } } },
                  json.decode(json.encode(req.body)))
    end)

    it("streams through :streamGenerateContent?alt=sse", function()
      local req = gemini.build(call { messages = { { role = "user", content = "hi" } }, stream = true },
                               { api_key = "k", base_url = "http://h" })
      assert.equal("http://h/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", req.url)
    end)

    it("translates system, calls and responses (matched back to the call's name)", function()
      local c = call { messages = {
        { role = "system", content = "be brief" },
        { role = "user", content = "add 2" },
        { role = "assistant", content = "", tool_calls = { { id = "call_1", name = "add", arguments = { a = 2 } } } },
        { role = "tool", tool_call_id = "call_1", content = "2" },
        { role = "tool", tool_call_id = "call_x", name = "lookup", content = '{"found":true}' },
      }, tools = { ADD }, tool_choice = { name = "add" }, temperature = 0.1, max_tokens = 64 }
      local b = json.decode(json.encode(gemini.body(c)))
      assert.same({ parts = { { text = "be brief" } } }, b.systemInstruction)
      assert.equal(3, #b.contents)
      assert.same({ role = "model", parts = { { functionCall = { name = "add", args = { a = 2 } } } } }, b.contents[2])
      assert.same({ role = "user", parts = {
        { functionResponse = { name = "add", response = { content = "2" } } },
        { functionResponse = { name = "lookup", response = { found = true } } } } }, b.contents[3])
      assert.same({ { functionDeclarations = { { name = "add", description = "adds", parameters = ADD.parameters } } } },
                  b.tools)
      assert.same({ functionCallingConfig = { mode = "ANY", allowedFunctionNames = { "add" } } }, b.toolConfig)
      assert.same({ temperature = 0.1, maxOutputTokens = 64 }, b.generationConfig)
    end)

    it("maps auto and none tool choices to modes", function()
      local function tc(v)
        return gemini.body(call { messages = { { role = "user", content = "x" } }, tools = { ADD },
                                  tool_choice = v }).toolConfig
      end
      assert.same({ functionCallingConfig = { mode = "AUTO" } }, tc("auto"))
      assert.same({ functionCallingConfig = { mode = "NONE" } }, tc("none"))
    end)
  end)

  describe("parse", function()
    it("normalises parts, usage metadata and finishReason", function()
      local d = json.decode([[{"candidates":[{"content":{"parts":[{"text":"Hel"},{"text":"lo"}],"role":"model"},
        "finishReason":"STOP","index":0}],
        "usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":2,"totalTokenCount":6},
        "modelVersion":"gemini-2.0-flash"}]])
      local r = assert(gemini.parse(d))
      assert.equal("Hello", r.text)
      assert.equal("stop", r.finish_reason)
      assert.same({ input_tokens = 4, output_tokens = 2, total_tokens = 6 }, r.usage)
    end)

    it("gives function calls stable generated ids", function()
      local d = json.decode([[{"candidates":[{"content":{"parts":[
        {"functionCall":{"name":"add","args":{"a":1}}},{"functionCall":{"name":"now"}}],"role":"model"},
        "finishReason":"STOP"}]}]])
      local r = assert(gemini.parse(d))
      assert.same({ { id = "call_1", name = "add", arguments = { a = 1 } },
                    { id = "call_2", name = "now", arguments = {} } }, r.tool_calls)
      assert.equal("tool_calls", r.finish_reason)
      assert.same({ input_tokens = 0, output_tokens = 0, total_tokens = 0 }, r.usage)
    end)

    it("maps MAX_TOKENS and SAFETY", function()
      local function fr(x)
        return gemini.parse({ candidates = { { content = { parts = { { text = "" } } }, finishReason = x } } }).finish_reason
      end
      assert.equal("length", fr("MAX_TOKENS"))
      assert.equal("content_filter", fr("SAFETY"))
    end)

    it("reports an error payload", function()
      local _, err = gemini.parse(json.decode('{"error":{"code":400,"message":"API key not valid","status":"INVALID_ARGUMENT"}}'))
      assert.equal("gemini: error in response: INVALID_ARGUMENT: API key not valid", err)
    end)
  end)

  describe("stream_event", function()
    it("assembles text fragments and ends at the finishReason", function()
      local asm, chunks = feed {
        { candidates = { { content = { parts = { { text = "Hel" } }, role = "model" } } } },
        { candidates = { { content = { parts = { { text = "lo" } }, role = "model" } } } },
        { candidates = { { content = { parts = { { text = "!" } }, role = "model" }, finishReason = "STOP" } },
          usageMetadata = { promptTokenCount = 3, candidatesTokenCount = 3, totalTokenCount = 6 } },
      }
      pu.assert_text_stream(asm, chunks, { "Hel", "lo", "!" },
                            { input_tokens = 3, output_tokens = 3, total_tokens = 6 })
    end)

    it("takes whole function calls and numbers them", function()
      local asm, chunks = feed {
        { candidates = { { content = { parts = { { functionCall = { name = "add", args = { a = 7 } } } }, role = "model" } } } },
        { candidates = { { content = { parts = { { functionCall = { name = "now", args = json.object() } } }, role = "model" },
                           finishReason = "STOP" } } },
      }
      local r = assert(asm:result())
      assert.same({ { id = "call_1", name = "add", arguments = { a = 7 } },
                    { id = "call_2", name = "now", arguments = {} } }, r.tool_calls)
      assert.equal("tool_calls", r.finish_reason)
      assert.same({ tool_call_delta = { index = 1, id = "call_1", name = "add", arguments = '{"a":7}' } }, chunks[1])
    end)

    it("is not terminated without a finishReason", function()
      local asm = feed { { candidates = { { content = { parts = { { text = "x" } } } } } } }
      assert.is_false(asm.terminated)
    end)

    it("reports a malformed chunk", function()
      local _, err = feed { "<html>" }
      assert.equal("gemini: malformed stream chunk (not JSON): <html>", err)
    end)
  end)
end)
