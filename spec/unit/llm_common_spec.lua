-- spec/unit/llm_common_spec.lua — weft.llm.common: the retry policy
-- (which failures are retried, exponential backoff with jitter and its cap,
-- retry-after, never after data reached the caller) with an injected sleep
-- and random source; error texts with key redaction and body excerpts;
-- keys and base URLs from options then the environment; request
-- validation.
local common = require "weft.llm.common"
local json = require "weft.json"
require "helpers" -- assert.mentions

-- A scripted attempt function: outcomes[n] is {ok, res, code, err, no_retry}.
local function script(outcomes)
  local calls = 0
  return function(n)
    calls = calls + 1
    assert.equal(calls, n)
    local o = outcomes[n] or outcomes[#outcomes]
    return o[1], o[2], o[3], o[4], o[5]
  end, function() return calls end
end

local function failing(status, headers)
  return { false, { status = status, headers = headers or {} }, "http_" .. status, "p: HTTP " .. status }
end

describe("llm.common", function()
  describe("backoff", function()
    local p = common.policy { retry_base = 0.5 }

    it("grows exponentially from the base with half of it jittered", function()
      local lo, hi = function() return 0 end, function() return 0.999999 end
      assert.equal(0.25, common.backoff(p, 1, nil, lo))
      assert.near(0.5, common.backoff(p, 1, nil, hi), 1e-5)
      assert.equal(0.5, common.backoff(p, 2, nil, lo))
      assert.equal(1, common.backoff(p, 3, nil, lo))
      assert.equal(2, common.backoff(p, 4, nil, lo))
    end)

    it("is capped at retry_max (20 s by default)", function()
      local lo = function() return 0 end
      assert.equal(10, common.backoff(p, 30, nil, lo))
      assert.near(20, common.backoff(p, 30, nil, function() return 0.999999 end), 1e-4)
      assert.equal(1.5, common.backoff(common.policy { retry_max = 3 }, 10, nil, lo))
    end)

    it("honours retry-after, capped at retry_after_max", function()
      assert.equal(7, common.backoff(p, 1, 7))
      assert.equal(0, common.backoff(p, 3, 0))
      assert.equal(60, common.backoff(p, 1, 3600))
      assert.equal(5, common.backoff(common.policy { retry_after_max = 5 }, 1, 3600))
    end)
  end)

  describe("retry_after", function()
    it("reads seconds and retry-after-ms, ignoring dates", function()
      assert.equal(3, common.retry_after { ["retry-after"] = "3" })
      assert.equal(0.25, common.retry_after { ["retry-after-ms"] = "250", ["retry-after"] = "1" })
      assert.is_nil(common.retry_after { ["retry-after"] = "Wed, 21 Oct 2015 07:28:00 GMT" })
      assert.is_nil(common.retry_after {})
      assert.is_nil(common.retry_after(nil))
    end)
  end)

  describe("with_retries", function()
    local slept, deps
    before_each(function()
      slept = {}
      deps = { sleep = function(s) slept[#slept + 1] = s end, rand = function() return 0 end }
    end)

    it("returns the first success", function()
      local attempt, calls = script { { true, "R" } }
      assert.equal("R", common.with_retries(common.policy {}, attempt, deps))
      assert.equal(1, calls())
      assert.same({}, slept)
    end)

    it("retries 429, 5xx and 529, then succeeds", function()
      for _, st in ipairs { 408, 429, 500, 502, 503, 504, 529 } do
        slept = {}
        local attempt, calls = script { failing(st), { true, "ok" } }
        assert.equal("ok", common.with_retries(common.policy { retry_base = 1 }, attempt, deps))
        assert.equal(2, calls())
        assert.same({ 0.5 }, slept)
      end
    end)

    it("waits what retry-after says", function()
      local attempt = script { failing(429, { ["retry-after"] = "2" }), failing(503, { ["retry-after"] = "0" }),
                               { true, "ok" } }
      assert.equal("ok", common.with_retries(common.policy {}, attempt, deps))
      assert.same({ 2, 0 }, slept)
    end)

    it("retries connection failures and timeouts, not other failures", function()
      local attempt, calls = script { { false, nil, "connect", "p: refused" }, { false, nil, "timeout", "p: slow" },
                                      { true, "ok" } }
      assert.equal("ok", common.with_retries(common.policy {}, attempt, deps))
      assert.equal(3, calls())
      for _, code in ipairs { "dns", "protocol", "idle_timeout", "cancelled", "too_large", "config" } do
        attempt, calls = script { { false, nil, code, "p: " .. code }, { true, "ok" } }
        local r, err, c = common.with_retries(common.policy {}, attempt, deps)
        assert.is_nil(r)
        assert.equal("p: " .. code, err)
        assert.equal(code, c)
        assert.equal(1, calls())
      end
    end)

    it("does not retry other statuses", function()
      for _, st in ipairs { 400, 401, 403, 404, 422, 501 } do
        local attempt, calls = script { failing(st), { true, "ok" } }
        local r, err, code = common.with_retries(common.policy {}, attempt, deps)
        assert.is_nil(r)
        assert.equal("p: HTTP " .. st, err)
        assert.equal("http_" .. st, code)
        assert.equal(1, calls())
      end
    end)

    it("gives up after `retries` retries with backoff between, naming the attempts", function()
      local attempt, calls = script { failing(503) }
      local r, err, code = common.with_retries(common.policy { retries = 3, retry_base = 1 }, attempt, deps)
      assert.is_nil(r)
      assert.equal("p: HTTP 503 (gave up after 4 attempts)", err)
      assert.equal("http_503", code)
      assert.equal(4, calls())
      assert.same({ 0.5, 1, 2 }, slept)
    end)

    it("makes a single attempt with retries = 0", function()
      local attempt, calls = script { failing(429) }
      local _, err = common.with_retries(common.policy { retries = 0 }, attempt, deps)
      assert.equal("p: HTTP 429", err)
      assert.equal(1, calls())
    end)

    describe("with a total timeout", function()
      local now, seen_left
      before_each(function()
        now, seen_left = 100, {}
        deps.clock = function() return now end
        deps.sleep = function(s) slept[#slept + 1] = s; now = now + s end
      end)

      -- attempt(n, left) recording left, taking `took` seconds, then failing.
      local function timed(result, took)
        return function(_, left)
          seen_left[#seen_left + 1] = left
          now = now + took
          return result[1], result[2], result[3], result[4]
        end
      end

      it("does not wait for a retry-after past the timeout: fails at once with timeout", function()
        deps.timeout = 1
        local attempt = timed(failing(429, { ["retry-after"] = "100" }), 0.01)
        local r, err, code = common.with_retries(common.policy { retries = 3 }, attempt, deps)
        assert.is_nil(r)
        assert.equal("timeout", code)
        assert.equal("p: HTTP 429 (gave up after 1 attempt: the next one, in 60 s, would start past "
                     .. "the call's timeout of 1 s)", err)
        assert.same({}, slept)
        assert.same({ 1 }, seen_left)
      end)

      it("gives each attempt the time left, and names the total when it is spent", function()
        deps.timeout = 10
        local n = 0
        local attempt = function(_, left)
          n = n + 1
          seen_left[#seen_left + 1] = left
          if n == 1 then now = now + 4; return false, { status = 503, headers = {} }, "http_503", "p: HTTP 503" end
          now = now + left
          return false, nil, "timeout", "p: request timed out after " .. left .. " s (timeout)"
        end
        local r, err, code = common.with_retries(common.policy { retries = 5, retry_base = 1 }, attempt, deps)
        assert.is_nil(r)
        assert.equal("timeout", code)
        assert.same({ 10, 5.5 }, seen_left)
        assert.same({ 0.5 }, slept)
        assert.mentions("(the call's timeout of 10 s is spent after 2 attempts)", err)
      end)

      it("retries within the timeout as usual", function()
        deps.timeout = 10
        local attempt, calls = script { failing(503), failing(503), { true, "ok" } }
        assert.equal("ok", common.with_retries(common.policy { retry_base = 1 }, attempt, deps))
        assert.equal(3, calls())
      end)
    end)

    it("never retries once data reached the caller", function()
      local attempt, calls = script { { false, nil, "timeout", "p: cut", true }, { true, "ok" } }
      local r, err = common.with_retries(common.policy {}, attempt, deps)
      assert.is_nil(r)
      assert.equal("p: cut", err)
      assert.equal(1, calls())
    end)
  end)

  describe("errors", function()
    local KEY = "sk-test-FAKEKEY-0123456789abcdef"

    it("redacts the key and bearer tokens", function()
      assert.equal("key [redacted] and [redacted]", common.redact("key " .. KEY .. " and " .. KEY, KEY))
      assert.equal("Authorization: Bearer [redacted]", common.redact("Authorization: Bearer abc.def-ghi", nil))
      assert.equal("a%b", common.redact("a%b", "%%%%"))
    end)

    it("builds status errors from a redacted, folded body excerpt of at most 200 characters", function()
      local body = '{"error": {"message": "Incorrect API key provided: ' .. KEY .. '",\n "type": "x"}}'
      local err = common.status_error("openai", 401, body, KEY)
      assert.equal('openai: HTTP 401: {"error": {"message": "Incorrect API key provided: [redacted]", "type": "x"}}', err)
      err = common.status_error("openai", 500, string.rep("y", 190) .. KEY, KEY)
      assert.not_mentions(KEY:sub(1, 8), err)
      assert.equal("openai: HTTP 500: " .. string.rep("y", 190) .. "[redacted]", err)
      err = common.status_error("anthropic", 502, string.rep("z", 500), KEY)
      assert.equal("anthropic: HTTP 502: " .. string.rep("z", 200) .. "...", err)
      assert.equal("gemini: HTTP 503", common.status_error("gemini", 503, "", KEY))
    end)

    it("cuts excerpts at a character boundary", function()
      local s = string.rep("a", 199) .. "é" .. "bbb"
      assert.equal(string.rep("a", 199) .. "...", common.excerpt(s, 200))
    end)

    it("prefixes transport errors with the provider", function()
      assert.equal("ollama: connect to 127.0.0.1:9 failed", common.transport_error("ollama", "connect to 127.0.0.1:9 failed"))
      assert.equal("openai: bad [redacted]", common.transport_error("openai", "bad " .. KEY, KEY))
    end)
  end)

  describe("config", function()
    local P = { name = "openai", key_env = "OPENAI_API_KEY", base_env = "OPENAI_BASE_URL",
                default_base = "https://api.openai.com/v1", needs_key = true }
    local saved, env
    before_each(function()
      saved, env = common.getenv, {}
      common.getenv = function(k) return env[k] end
    end)
    after_each(function() common.getenv = saved end)

    it("takes options first, then the environment, then the default base", function()
      env.OPENAI_API_KEY, env.OPENAI_BASE_URL = "env-key", "http://env/v1/"
      assert.same({ api_key = "opt", base_url = "http://opt" }, common.config(P, { api_key = "opt", base_url = "http://opt/" }))
      assert.same({ api_key = "env-key", base_url = "http://env/v1" }, common.config(P, {}))
      env.OPENAI_BASE_URL = nil
      assert.same({ api_key = "env-key", base_url = "https://api.openai.com/v1" }, common.config(P, {}))
    end)

    it("registers the key it resolves with weft.secrets (redacted from store writes)", function()
      local secrets = require "weft.secrets"
      env.OPENAI_API_KEY = "sk-env-registered-5a6b7c"
      common.config(P, {})
      assert.is_true(secrets.known("sk-env-registered-5a6b7c"))
      common.config(P, { api_key = "sk-opt-registered-8d9e0f" })
      assert.is_true(secrets.known("sk-opt-registered-8d9e0f"))
    end)

    it("fails with code config naming the variable when the key is missing", function()
      env.OPENAI_API_KEY = ""
      local cfg, err, code = common.config(P, {})
      assert.is_nil(cfg)
      assert.equal("openai: no API key: set OPENAI_API_KEY (or pass api_key)", err)
      assert.equal("config", code)
    end)
  end)

  describe("request", function()
    local function misuse(opts)
      local ok, e = pcall(common.request, opts, "m")
      assert.is_false(ok)
      return common.misuse(e)
    end

    it("names the offending field", function()
      assert.equal("llm.chat: messages must be a non-empty list, got nothing", misuse {})
      assert.equal("llm.chat: messages must be a non-empty list, got table", misuse { messages = {} })
      assert.equal("llm.chat: messages[1] must be a message table, got string", misuse { messages = { "hi" } })
      assert.equal("llm.chat: messages[2].content must be a string, got 5",
                   misuse { messages = { { role = "user", content = "a" }, { role = "user", content = 5 } } })
      assert.equal("llm.chat: messages[1].tool_call_id must be a string, got nothing",
                   misuse { messages = { { role = "tool", content = "a" } } })
      assert.equal("llm.chat: messages[1].tool_calls[1].name must be a non-empty string, got nothing",
                   misuse { messages = { { role = "assistant", tool_calls = { {} } } } })
      local m = { { role = "user", content = "x" } }
      assert.equal("llm.chat: tools[1].name must be a non-empty string", misuse { messages = m, tools = { {} } })
      assert.equal("llm.chat: tools[1].parameters.f: function is not JSON-serialisable",
                   misuse { messages = m, tools = { { name = "t", parameters = { f = print } } } })
      assert.mentions("tool_choice must be", misuse { messages = m, tool_choice = "always" })
      assert.equal("llm.chat: max_tokens must be a positive integer, got 0", misuse { messages = m, max_tokens = 0 })
      assert.equal("llm.chat: temperature must be a number, got string", misuse { messages = m, temperature = "hot" })
      assert.equal("llm.chat: stream must be a function (or true), got string", misuse { messages = m, stream = "yes" })
      assert.equal("llm.chat: retries must be a non-negative integer, got -1", misuse { messages = m, retries = -1 })
      assert.equal("llm.chat: timeout must be a positive number of seconds, got string", misuse { messages = m, timeout = "1" })
      assert.equal("llm.chat: idle_timeout must be a positive number of seconds, got 0", misuse { messages = m, idle_timeout = 0 })
      assert.equal("llm.chat: retry_base must be a non-negative number, got -1", misuse { messages = m, retry_base = -1 })
      assert.equal("llm.chat: api_key must be a string, got 5", misuse { messages = m, api_key = 5 })
    end)

    it("checks each message with weft.thread's message check: the same errors", function()
      local thread = require "weft.thread"
      local bad = {
        { role = "bot", content = "x" }, { content = "x" }, { role = "user" }, { role = "user", content = 5 },
        { role = "user", content = "x", name = 5 }, { role = "tool", content = "a" },
        { role = "tool", content = "a", tool_call_id = 7 }, { role = "assistant", tool_calls = "f" },
        { role = "assistant", tool_calls = { {} } }, { role = "assistant", tool_calls = { 5 } },
        { role = "assistant", tool_calls = { { name = "f", id = 1 } } },
        { role = "assistant", tool_calls = { { name = "f", arguments = 5 } } },
      }
      for _, m in ipairs(bad) do
        local ok, e = pcall(thread.message, m, "messages[2]")
        assert.is_false(ok)
        assert.equal("llm.chat: " .. e, misuse { messages = { { role = "user", content = "x" }, m } })
      end
    end)

    it("refuses unknown options, listing the valid ones and the nearest (weft.check)", function()
      local m = { { role = "user", content = "x" } }
      assert.equal("llm.chat: unknown option 'temprature' (options: agent, api_key, base_url, idle_timeout, max_bytes, "
                   .. "max_tokens, messages, model, retries, retry_after_max, retry_base, retry_factor, retry_max, "
                   .. "stream, temperature, timeout, tool_choice, tools); did you mean 'temperature'?",
                   misuse { messages = m, temprature = 0 })
      assert.mentions("did you mean 'max_tokens'?", misuse { messages = m, max_completion_tokens = 5 })
      assert.mentions("did you mean 'base_url'?", misuse { messages = m, api_base = "http://x" })
      assert.mentions("did you mean 'retries'?", misuse { messages = m, max_retries = 1 })
    end)

    it("normalises: empty content, assistant content null with tool calls, stream flag", function()
      local c = common.request({ messages = {
        { role = "user", content = "x" },
        { role = "assistant", content = json.null, tool_calls = { { id = "1", name = "f", arguments = "{}" } } },
      }, stream = function() end, tools = {} }, "m")
      assert.equal("", c.messages[2].content)
      assert.is_true(c.stream)
      assert.is_nil(c.tools)
      assert.equal("m", c.model)
    end)
  end)
end)
