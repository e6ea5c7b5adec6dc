-- spec/unit/llm_mock_spec.lua — the offline mock provider through
-- weft.llm.chat (docs/io.md `weft.llm`): echo, the tool round trip,
-- scripted rules (match, when, reply functions, tool calls, sequences,
-- named scripts, JSON files and WEFT_MOCK_SCRIPT), scripted failures going
-- through the real retry path, simulated latency that yields, streaming
-- through the OpenAI chunk assembler, and word-count usage.
local weft = require "weft"
local llm = require "weft.llm"
local common = require "weft.llm.common"
local json = require "weft.json"
local h = require "helpers"

local function user(text) return { { role = "user", content = text } } end

local ADD = { name = "add", description = "adds", parameters = { type = "object",
              properties = { a = { type = "number" }, b = { type = "number" } } } }

describe("llm mock", function()
  local saved_getenv, saved_sleep, saved_mock_sleep, env, slept, mock_slept
  before_each(function()
    saved_getenv, saved_sleep, saved_mock_sleep = common.getenv, llm.sleep, llm.mock.sleep
    env, slept, mock_slept = {}, {}, {}
    common.getenv = function(k) return env[k] end
    llm.sleep = function(s) slept[#slept + 1] = s end
    llm.mock.sleep = function(s) mock_slept[#mock_slept + 1] = s end
    llm.mock.reset()
  end)
  after_each(function()
    common.getenv, llm.sleep, llm.mock.sleep = saved_getenv, saved_sleep, saved_mock_sleep
    llm.mock.reset()
  end)

  describe("echo", function()
    it("is the default model and echoes the last user message", function()
      local r = assert(llm.chat { messages = { { role = "system", content = "sys" }, { role = "user", content = "first" },
                                              { role = "assistant", content = "a" }, { role = "user", content = "hello world" } } })
      assert.equal("echo: hello world", r.text)
      assert.same({}, r.tool_calls)
      assert.equal("stop", r.finish_reason)
    end)

    it("counts words for usage", function()
      local r = assert(llm.chat { messages = { { role = "system", content = "be brief" }, { role = "user", content = "one two three" } } })
      assert.same({ input_tokens = 5, output_tokens = 4, total_tokens = 9 }, r.usage)
    end)

    it("uses WEFT_MODEL as the default model", function()
      env.WEFT_MODEL = "mock:nope"
      local r, err, code = llm.chat { messages = user("x") }
      assert.is_nil(r)
      assert.equal("config", code)
      assert.equal("mock: no script named 'nope' (known: echo); register one with llm.mock.register", err)
    end)

    it("returns the OpenAI-shaped raw response it was parsed from", function()
      local r = assert(llm.chat { model = "mock:echo", messages = user("hi") })
      assert.equal("chat.completion", r.raw.object)
      assert.equal("echo: hi", r.raw.choices[1].message.content)
    end)

    it("calls a tool when asked to, then reports the tool's answer", function()
      local r = assert(llm.chat { messages = user('please call add {"a": 2, "b": 3}'), tools = { ADD } })
      assert.equal("tool_calls", r.finish_reason)
      assert.same({ { id = "call_1", name = "add", arguments = { a = 2, b = 3 } } }, r.tool_calls)
      local msgs = { { role = "user", content = 'please call add {"a": 2, "b": 3}' },
                     { role = "assistant", content = r.text, tool_calls = r.tool_calls },
                     { role = "tool", tool_call_id = r.tool_calls[1].id, content = "5" } }
      r = assert(llm.chat { messages = msgs, tools = { ADD } })
      assert.equal("tool said: 5", r.text)
    end)

    it("joins several tool results and makes several calls, like the test server", function()
      local r = assert(llm.chat { messages = user('call add {"a": 1} then call add {"b": 2} and call sub'),
                                  tools = { ADD } })
      assert.same({ { id = "call_1", name = "add", arguments = { a = 1 } },
                    { id = "call_2", name = "add", arguments = { b = 2 } } }, r.tool_calls)
      assert.same({ input_tokens = 12, output_tokens = 4, total_tokens = 16 }, r.usage)
      r = assert(llm.chat { messages = {
        { role = "user", content = "x" },
        { role = "assistant", content = "", tool_calls = r.tool_calls },
        { role = "tool", tool_call_id = "call_1", content = "1" },
        { role = "tool", tool_call_id = "call_2", content = "2" } }, tools = { ADD } })
      assert.equal("tool said: 1; 2", r.text)
    end)

    it("honours a forced tool choice and none", function()
      local r = assert(llm.chat { messages = user("hi"), tools = { ADD }, tool_choice = "required" })
      assert.same({ { id = "call_1", name = "add", arguments = {} } }, r.tool_calls)
      r = assert(llm.chat { messages = user("call add {}"), tools = { ADD }, tool_choice = "none" })
      assert.equal("echo: call add {}", r.text)
    end)

    it("cuts the echo at max_tokens words with finish reason length", function()
      local r = assert(llm.chat { messages = user("a b c d"), max_tokens = 3 })
      assert.equal("echo: a b", r.text)
      assert.equal("length", r.finish_reason)
    end)

    it("does not call tools that were not offered", function()
      local r = assert(llm.chat { messages = user("call add {}"), tools = { { name = "sub" } } })
      assert.equal("echo: call add {}", r.text)
    end)
  end)

  describe("streaming", function()
    it("streams text chunks that add up to the result, then done with usage", function()
      local chunks = {}
      local r = assert(llm.chat { messages = user("a b  c"), stream = function(c) chunks[#chunks + 1] = c end })
      assert.equal("echo: a b  c", r.text)
      local text = {}
      for i = 1, #chunks - 1 do text[i] = assert(chunks[i].text) end
      assert.equal(r.text, table.concat(text))
      assert.is_true(#chunks > 3)
      assert.same({ done = true, usage = r.usage, finish_reason = "stop" }, chunks[#chunks])
      assert.same({ input_tokens = 3, output_tokens = 4, total_tokens = 7 }, r.usage)
      assert.same({}, r.raw.choices) -- the last chunk (usage) was the raw
    end)

    it("streams tool calls as deltas assembled into parsed arguments", function()
      local chunks = {}
      local r = assert(llm.chat { messages = user('call add {"a": 1}'), tools = { ADD },
                                  stream = function(c) chunks[#chunks + 1] = c end })
      assert.same({ { id = "call_1", name = "add", arguments = { a = 1 } } }, r.tool_calls)
      assert.same({ tool_call_delta = { index = 1, id = "call_1", name = "add", arguments = "" } }, chunks[1])
      assert.same({ tool_call_delta = { index = 1, arguments = '{"a":1}' } }, chunks[2])
      assert.same({ done = true, usage = r.usage, finish_reason = "tool_calls" }, chunks[3])
    end)

    it("raises the stream callback's error", function()
      local err = h.error_of(llm.chat, { messages = user("x"), stream = function() error("cb broke") end })
      assert.mentions("cb broke", err)
    end)
  end)

  describe("scripts", function()
    it("answers the first matching rule, with pattern captures", function()
      llm.mock.script {
        { match = "^add (%d+) and (%d+)", reply = function(_, a, b) return tostring(a + b) end },
        { match = "weather", reply = "sunny" },
      }
      assert.equal("5", llm.chat { messages = user("add 2 and 3") }.text)
      assert.equal("sunny", llm.chat { messages = user("the weather?") }.text)
      assert.equal("echo: other", llm.chat { messages = user("other") }.text)
    end)

    it("matches with when(messages)", function()
      llm.mock.script { { when = function(msgs) return #msgs > 1 end, reply = "long" } }
      assert.equal("echo: x", llm.chat { messages = user("x") }.text)
      assert.equal("long", llm.chat { messages = { { role = "system", content = "s" }, { role = "user", content = "x" } } }.text)
    end)

    it("scripts tool calls", function()
      llm.mock.script { { match = "time", tool_calls = { { name = "now", arguments = { tz = "UTC" } } } } }
      local r = assert(llm.chat { messages = user("what time is it") })
      assert.same({ { id = "call_1", name = "now", arguments = { tz = "UTC" } } }, r.tool_calls)
      assert.equal("tool_calls", r.finish_reason)
    end)

    it("answers a sequence in turn and repeats its last reply", function()
      llm.mock.script { { match = "code", replies = { "broken code", { reply = "fixed code" } } } }
      local seen = {}
      for i = 1, 3 do seen[i] = llm.chat { messages = user("write code") }.text end
      assert.same({ "broken code", "fixed code", "fixed code" }, seen)
    end)

    it("serves named scripts as mock:<name> and lists the names when one is unknown", function()
      llm.mock.register("coder", { { reply = "int main(){}" } })
      assert.equal("int main(){}", llm.chat { model = "mock:coder", messages = user("x") }.text)
      assert.equal("echo: x", llm.chat { model = "mock:echo", messages = user("x") }.text)
      local r, err, code = llm.chat { model = "mock:codr", messages = user("x") }
      assert.is_nil(r)
      assert.equal("config", code)
      assert.mentions("no script named 'codr' (known: echo, coder)", err)
    end)

    it("loads rules from a JSON file and from WEFT_MOCK_SCRIPT", function()
      local path = os.tmpname()
      local f = assert(io.open(path, "w"))
      f:write('{"echo": [{"match": "hi", "reply": "hello from file"}], "planner": [{"replies": ["p1", "p2"]}]}')
      f:close()
      assert.is_true(llm.mock.load(path))
      assert.equal("hello from file", llm.chat { messages = user("hi") }.text)
      assert.equal("p1", llm.chat { model = "mock:planner", messages = user("x") }.text)
      llm.mock.reset()
      f = assert(io.open(path, "w"))
      f:write('[{"match": "ping", "reply": "pong"}]')
      f:close()
      env.WEFT_MOCK_SCRIPT = path
      assert.equal("pong", llm.chat { messages = user("ping") }.text)
      os.remove(path)
    end)

    it("reports unreadable and invalid script files", function()
      local ok, err = llm.mock.load("/nonexistent/weft-mock.json")
      assert.is_nil(ok)
      assert.mentions("mock: cannot read script", err)
      local path = os.tmpname()
      local f = assert(io.open(path, "w"))
      f:write('[{"match": 5}]')
      f:close()
      ok, err = llm.mock.load(path)
      assert.is_nil(ok)
      assert.mentions("rules[1].match must be a string", err)
      env.WEFT_MOCK_SCRIPT = "/nonexistent/weft-mock.json"
      local r, e2, code = llm.chat { messages = user("x") }
      assert.is_nil(r)
      assert.equal("config", code)
      assert.mentions("WEFT_MOCK_SCRIPT", e2)
      assert.equal("mock: cannot read script", e2:sub(1, 24))
      os.remove(path)
    end)

    it("raises on invalid rules, naming the rule and field", function()
      assert.mentions("mock.script: rules[2].reply must be a string or a function",
                      h.error_of(llm.mock.script, { { reply = "ok" }, { reply = 5 } }))
      assert.mentions("rules[1].match is not a valid Lua pattern",
                      h.error_of(llm.mock.script, { { match = "(" } }))
      assert.mentions("rules[1].fail needs status or error",
                      h.error_of(llm.mock.script, { { fail = {} } }))
      assert.mentions("rules[1].replies must be a non-empty list",
                      h.error_of(llm.mock.script, { { replies = {} } }))
    end)
  end)

  describe("faults", function()
    it("fails with 429 once, then succeeds after the retry-after wait", function()
      llm.mock.script { { fail = { status = 429, times = 1, retry_after = 0 }, reply = "ok" } }
      local r = assert(llm.chat { messages = user("x") })
      assert.equal("ok", r.text)
      assert.same({ 0 }, slept)
    end)

    it("gives up after the retries with the status and body excerpt", function()
      llm.mock.script { { fail = { status = 503 } } }
      local r, err, code = llm.chat { messages = user("x"), retries = 2, retry_base = 0.01 }
      assert.is_nil(r)
      assert.equal("http_503", code)
      assert.equal('mock: HTTP 503: {"error":{"message":"mock: scripted failure (HTTP 503)","type":"mock_error"}} (gave up after 3 attempts)', err)
      assert.equal(2, #slept)
    end)

    it("does not retry a 400", function()
      llm.mock.script { { fail = { status = 400, times = 1 }, reply = "never" } }
      local r, err, code = llm.chat { messages = user("x") }
      assert.is_nil(r)
      assert.equal("http_400", code)
      assert.mentions("mock: HTTP 400", err)
      assert.same({}, slept)
    end)

    it("simulates connection failures, which are retried", function()
      llm.mock.script { { fail = { error = "connect", times = 2 }, reply = "up" } }
      assert.equal("up", llm.chat { messages = user("x") }.text)
      assert.equal(2, #slept)
    end)

    it("retries a failing stream before any data reached the caller", function()
      llm.mock.script { { fail = { status = 500, times = 1 }, reply = "streamed" } }
      local chunks = {}
      local r = assert(llm.chat { messages = user("x"), stream = function(c) chunks[#chunks + 1] = c end })
      assert.equal("streamed", r.text)
      assert.same({ text = "streamed" }, chunks[1])
    end)

    it("sleeps for the simulated latency", function()
      llm.mock.script { { latency = 0.25, reply = "slow" } }
      assert.equal("slow", llm.chat { messages = user("x") }.text)
      assert.same({ 0.25 }, mock_slept)
    end)

    it("times out when the latency exceeds the timeout", function()
      llm.mock.script { { latency = 5, reply = "slow" } }
      local r, err, code = llm.chat { messages = user("x"), timeout = 0.5, retries = 0 }
      assert.is_nil(r)
      assert.equal("timeout", code)
      assert.mentions("mock: request timed out", err)
      assert.same({ 0.5 }, mock_slept)
    end)
  end)

  describe("latency with weft.sleep", function()
    it("yields the caller, so other tasks run meanwhile", function()
      llm.mock.sleep = saved_mock_sleep
      llm.mock.script { { match = "slow", latency = 0.02, reply = "slow done" } }
      local order = {}
      local slow = weft.go(function()
        local r = llm.chat { messages = user("slow") }
        order[#order + 1] = r.text
      end)
      local fast = weft.go(function()
        local r = llm.chat { messages = user("fast") }
        order[#order + 1] = r.text
      end)
      slow:wait()
      fast:wait()
      assert.same({ "echo: fast", "slow done" }, order)
    end)
  end)
end)
