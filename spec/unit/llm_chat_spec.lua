-- spec/unit/llm_chat_spec.lua — weft.llm.chat end to end over fake
-- transports (no network; the real HTTP path is in
-- spec/integration/llm_providers_spec.lua): model strings, providers,
-- keys, errors with redaction, truncated and malformed streams, no retry
-- after streamed data, misuse raising at the caller, and agent_update
-- events published from a streaming executor.
local weft = require "weft"
local llm = require "weft.llm"
local common = require "weft.llm.common"
local openai = require "weft.llm.openai"
local ollama = require "weft.llm.ollama"
local json = require "weft.json"
local h = require "helpers"

local KEY = "sk-FAKE-weft-test-key-7f3a9c"
local function user(text) return { { role = "user", content = text } } end

-- SSE frames of an OpenAI stream answering `text`.
local function openai_frames(text, done)
  local f = {
    '{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}',
    json.encode { choices = { { index = 0, delta = { content = text }, finish_reason = json.null } } },
    '{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
    '{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}',
  }
  if done ~= false then f[#f + 1] = "[DONE]" end
  return f
end

describe("llm.chat", function()
  local saved_getenv, saved_sleep, env, requests, slept
  before_each(function()
    saved_getenv, saved_sleep = common.getenv, llm.sleep
    env, requests, slept = {}, {}, {}
    common.getenv = function(k) return env[k] end
    llm.sleep = function(s) slept[#slept + 1] = s end
  end)
  after_each(function()
    common.getenv, llm.sleep = saved_getenv, saved_sleep
    openai.transport, ollama.transport = nil, nil
    llm.mock.reset()
  end)

  -- Install a fake transport on provider P answering with replies[n]:
  -- {status, body, headers, frames = {...}} or {err, code}.
  local function fake(P, replies)
    P.transport = function(req)
      requests[#requests + 1] = req
      local r = replies[#requests] or replies[#replies]
      if r.err then return nil, r.err, r.code end
      if req.stream then
        for _, f in ipairs(r.frames or {}) do
          if req.stream({ event = "message", data = f }) == false then break end
        end
        if r.cut then return nil, r.cut, "protocol" end
        return { status = r.status or 200, headers = r.headers or {} }
      end
      return { status = r.status or 200, headers = r.headers or {}, body = r.body }
    end
  end

  describe("models and providers", function()
    it("rejects a model without a provider", function()
      local r, err, code = llm.chat { model = "gpt-4o", messages = user("x") }
      assert.is_nil(r)
      assert.equal("config", code)
      assert.mentions("llm: model 'gpt-4o' must be 'provider:model'", err)
    end)

    it("names an unknown provider and lists the known ones", function()
      local _, err, code = llm.chat { model = "mistral:large", messages = user("x") }
      assert.equal("config", code)
      assert.equal("llm: unknown provider 'mistral' in model 'mistral:large' (known: anthropic, gemini, mock, ollama, openai)", err)
    end)

    it("fails without a key, naming the variable", function()
      for p, var in pairs { openai = "OPENAI_API_KEY", anthropic = "ANTHROPIC_API_KEY", gemini = "GEMINI_API_KEY" } do
        local r, err, code = llm.chat { model = p .. ":m", messages = user("x") }
        assert.is_nil(r)
        assert.equal("config", code)
        assert.equal(p .. ": no API key: set " .. var .. " (or pass api_key)", err)
      end
    end)

    it("lists the providers and whether they are configured", function()
      env.GEMINI_API_KEY = "g"
      local by = {}
      for _, p in ipairs(llm.providers()) do by[p.name] = p end
      assert.same({ "anthropic", "gemini", "mock", "ollama", "openai" }, llm.PROVIDERS)
      assert.is_true(by.gemini.configured)
      assert.is_false(by.openai.configured)
      assert.is_true(by.mock.configured)
      assert.is_true(by.ollama.configured)
      assert.equal("OPENAI_API_KEY", by.openai.key_env)
      assert.equal("https://api.anthropic.com", by.anthropic.default_base_url)
    end)

    it("takes key and base URL from the environment", function()
      env.OPENAI_API_KEY, env.OPENAI_BASE_URL = KEY, "http://local/v1"
      fake(openai, { { body = '{"choices":[{"message":{"content":"hi"},"finish_reason":"stop"}]}' } })
      local r = assert(llm.chat { model = "openai:gpt", messages = user("x") })
      assert.equal("hi", r.text)
      assert.equal("http://local/v1/chat/completions", requests[1].url)
      assert.equal("Bearer " .. KEY, requests[1].headers.authorization)
      assert.equal("POST", requests[1].method)
      assert.equal(llm.TIMEOUT, requests[1].timeout)
      assert.equal("gpt", json.decode(requests[1].body).model)
    end)
  end)

  describe("misuse", function()
    it("raises at the caller, naming the field", function()
      local err = h.error_of(function() llm.chat { messages = { { role = "user" } } } end)
      assert.mentions("llm_chat_spec.lua:", err)
      assert.mentions("llm.chat: messages[1].content must be a string", err)
      assert.mentions("llm.chat: options must be a table, got string", h.error_of(llm.chat, "hi"))
      assert.mentions("llm.chat: model must be a string such as 'openai:gpt-4o-mini', got 5",
                      h.error_of(llm.chat, { model = 5, messages = user("x") }))
    end)

    it("raises at the caller for an unknown option, with 'did you mean'", function()
      local err = h.error_of(function() llm.chat { model = "mock:echo", messages = user("x"), max_token = 5 } end)
      assert.mentions("llm_chat_spec.lua:", err)
      assert.mentions("llm.chat: unknown option 'max_token' (options: agent, api_key, ", err)
      assert.mentions("; did you mean 'max_tokens'?", err)
      err = h.error_of(function() llm.chat { model = "mock:echo", prompt = "hi" } end)
      assert.mentions("did you mean 'messages'?", err)
    end)
  end)

  describe("errors", function()
    local opts
    before_each(function()
      opts = { model = "openai:gpt", api_key = KEY, base_url = "http://local/v1", messages = user("x") }
    end)

    it("names provider, status and a redacted body excerpt; keys never leak", function()
      fake(openai, { { status = 401, body = '{"error":{"message":"Incorrect API key provided: ' .. KEY ..
                       '. Header was Bearer ' .. KEY .. '"}}' } })
      local r, err, code = llm.chat(opts)
      assert.is_nil(r)
      assert.equal("http_401", code)
      assert.mentions("openai: HTTP 401: ", err)
      assert.mentions("Incorrect API key provided: [redacted]", err)
      assert.not_mentions(KEY, err)
      assert.not_mentions(KEY:sub(1, 10), err)
    end)

    it("prefixes transport failures with the provider and keeps their code", function()
      fake(openai, { { err = "connect to local:80 failed: Connection refused (key " .. KEY .. ")", code = "connect" } })
      opts.retries = 1
      local _, err, code = llm.chat(opts)
      assert.equal("connect", code)
      assert.equal("openai: connect to local:80 failed: Connection refused (key [redacted]) (gave up after 2 attempts)", err)
      assert.equal(2, #requests)
    end)

    it("reports a body that is not JSON", function()
      fake(openai, { { body = "<html>gateway</html>" } })
      local _, err, code = llm.chat(opts)
      assert.equal("protocol", code)
      assert.equal("openai: response is not JSON: <html>gateway</html>", err)
    end)

    it("reports a 2xx error payload with code provider", function()
      fake(openai, { { body = '{"error":{"message":"quota"}}' } })
      local _, err, code = llm.chat(opts)
      assert.equal("provider", code)
      assert.equal("openai: error in response: quota", err)
    end)

    it("fails a stream that ends before [DONE] with code protocol, without retrying", function()
      fake(openai, { { frames = openai_frames("partial", false) } })
      local chunks = {}
      opts.stream = function(c) chunks[#chunks + 1] = c end
      local r, err, code = llm.chat(opts)
      assert.is_nil(r)
      assert.equal("protocol", code)
      assert.equal("openai: stream ended before [DONE]", err)
      assert.equal(1, #requests)
      assert.same({ { text = "partial" } }, chunks) -- no done chunk
    end)

    it("keeps the HTTP layer's error for a cut stream", function()
      fake(openai, { { frames = { openai_frames("x")[2] }, cut = "transfer closed with bytes remaining" } })
      opts.stream = function() end
      local _, err, code = llm.chat(opts)
      assert.equal("protocol", code)
      assert.equal("openai: transfer closed with bytes remaining", err)
      assert.equal(1, #requests) -- data had reached the caller
    end)

    it("stops at a malformed chunk, naming provider and excerpt", function()
      local frames = openai_frames("ok")
      table.insert(frames, 3, "definitely not json")
      fake(openai, { { frames = frames } })
      opts.stream = true
      local _, err, code = llm.chat(opts)
      assert.equal("protocol", code)
      assert.equal("openai: malformed stream chunk (not JSON): definitely not json", err)
    end)

    it("retries a streamed 503 whose body never reached the caller", function()
      fake(openai, { { status = 503, frames = { '{"error":{"message":"busy"}}' } }, { frames = openai_frames("fine") } })
      local chunks = {}
      opts.stream = function(c) chunks[#chunks + 1] = c end
      local r = assert(llm.chat(opts))
      assert.equal("fine", r.text)
      assert.equal(2, #requests)
      assert.equal(1, #slept)
      assert.same({ text = "fine" }, chunks[1])
    end)

    it("uses the streamed body for the excerpt of a non-2xx stream", function()
      fake(ollama, { { status = 404, frames = { '{"error":"model \\"x\\" not found"}' } } })
      local _, err, code = llm.chat { model = "ollama:x", messages = user("hi"), stream = true }
      assert.equal("http_404", code)
      assert.equal('ollama: HTTP 404: {"error":"model \\"x\\" not found"}', err)
    end)

    it("uses the stream's idle timeout and the caller's total timeout", function()
      fake(openai, { { frames = openai_frames("x") } })
      opts.stream, opts.timeout = true, 9
      assert(llm.chat(opts))
      assert.equal(9, requests[1].timeout)
      assert.equal(llm.STREAM_IDLE_TIMEOUT, requests[1].idle_timeout)
      assert.equal("sse", requests[1].framing)
    end)
  end)

  describe("agent_update events", function()
    it("publishes every chunk of a streaming executor, tagged with it", function()
      local got
      local agent = weft.executor("agent", function(msg, ctx)
        local r = assert(llm.chat { messages = user(msg), stream = function(c) got = (got or 0) + 1 end })
        ctx:yield_output(r.text)
      end)
      local res = weft.workflow("w"):start(agent):build():run("one two")
      assert.equal("completed", res.status)
      assert.same({ "echo: one two" }, res.outputs)
      local ups = h.filter(res.events, "agent_update")
      assert.equal(got, #ups)
      assert.is_true(#ups >= 3)
      local text = {}
      for i = 1, #ups - 1 do
        assert.equal("agent", ups[i].executor_id)
        text[i] = ups[i].data.text
      end
      assert.equal("echo: one two", table.concat(text))
      local last = ups[#ups].data
      assert.is_true(last.done)
      assert.equal("stop", last.finish_reason)
      assert.equal(5, last.usage.total_tokens) -- 2 words in, 3 out
      -- live: before the executor's completion
      assert.is_true(h.index(res.events, "agent_update") < h.index(res.events, "executor_completed"))
    end)

    it("publishes with stream = true and no callback, and not at all without stream", function()
      local agent = weft.executor("agent", function(msg, ctx)
        llm.chat { messages = user(msg), stream = true }
        llm.chat { messages = user(msg) }
        ctx:yield_output("ok")
      end)
      local res = weft.workflow("w"):start(agent):build():run("hi")
      assert.equal("completed", res.status)
      local ups = h.filter(res.events, "agent_update")
      assert.equal(3, #ups) -- "echo: ", "hi", done
      assert.is_true(ups[3].data.done)
    end)

    it("publishes from a weft.go task started by the executor", function()
      local agent = weft.executor("agent", function(msg, ctx)
        local t = weft.go(function() return llm.chat { messages = user(msg), stream = true } end)
        ctx:yield_output(t:wait().text)
      end)
      local res = weft.workflow("w"):start(agent):build():run("x")
      assert.same({ "echo: x" }, res.outputs)
      assert.equal(3, h.count(res.events, "agent_update", "agent"))
    end)
  end)
end)
