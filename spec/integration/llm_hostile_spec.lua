-- spec/integration/llm_hostile_spec.lua — weft.llm (docs/io.md) against
-- providers that attack their client, over real HTTP on 127.0.0.1 (the
-- provider test server's hostile faults, spec/support/provider_server.lua),
-- for every provider: a redirect to another host (refused: the key never
-- leaves the configured host), an endless stream (too_large), a huge
-- tool-call index and too many tool calls (protocol errors, no loop up to a
-- number the server made up), and a call's total timeout that holds
-- whatever the retries and retry-after say (also for the mock). #http
local llm = require "weft.llm"
local common = require "weft.llm.common"
local provider_env = require "support.provider_env"
require "helpers" -- assert.mentions

local KEY = "sk-FAKE-weft-hostile-7c2b9a41"
local PROVIDERS = { "openai", "anthropic", "gemini", "ollama" }

local ADD = { name = "add", description = "adds two numbers", parameters = {
  type = "object", properties = { a = { type = "number" }, b = { type = "number" } } } }

describe("llm against hostile providers #http", function()
  -- the provider test server (env.srv) for these tests, and env.base(p, faults)
  local env = provider_env.use()
  local base = env.base

  -- Options of a chat with provider p, merged with over.
  local function opts(p, faults, over)
    local o = { model = p .. ":m1", api_key = KEY, base_url = base(p, faults), retry_base = 0.01,
                messages = { { role = "user", content = "hello there" } } }
    for k, v in pairs(over or {}) do o[k] = v end
    return o
  end

  -- The requests the server saw whose Host is host.
  local function seen_by(host)
    local out = {}
    for _, r in ipairs(env.srv.last) do
      if r.headers.host == host then out[#out + 1] = r end
    end
    return out
  end

  for _, p in ipairs(PROVIDERS) do
    describe(p, function()
      for _, mode in ipairs { "plain", "stream" } do
        it("refuses a redirect to another host, which never sees the key (" .. mode .. ")", function()
          local o = opts(p, "redirect=localhost", { stream = mode == "stream" or nil, retries = 2 })
          local r, err, code = llm.chat(o)
          assert.is_nil(r)
          assert.equal("protocol", code)
          assert.mentions(p .. ": ", err)
          assert.mentions("127.0.0.1:" .. env.srv.port, err)
          assert.mentions("localhost:" .. env.srv.port, err)
          assert.same({}, seen_by("localhost:" .. env.srv.port))
          assert.equal(1, env.srv:stats().requests) -- not retried
          assert.not_mentions(KEY, err)
        end)
      end

      it("fails with too_large on an endless stream", function()
        local chunks = 0
        local r, err, code = llm.chat(opts(p, "endless", {
          max_bytes = 256 * 1024, stream = function() chunks = chunks + 1 end }))
        assert.is_nil(r)
        assert.equal("too_large", code)
        assert.mentions(p .. ": streamed reply exceeds max_bytes (262144 bytes", err)
        assert.is_true(chunks > 0)
      end)

      for _, mode in ipairs { "plain", "stream" } do
        it("fails with protocol on a reply with too many tool calls (" .. mode .. ")", function()
          local n = common.MAX_TOOL_CALLS + 1
          local r, err, code = llm.chat(opts(p, "tool_calls=" .. n, {
            tools = { ADD }, stream = mode == "stream" or nil,
            messages = { { role = "user", content = "call add" } } }))
          assert.is_nil(r)
          assert.equal("protocol", code)
          assert.mentions(tostring(common.MAX_TOOL_CALLS), err)
        end)

        it("gives up within its timeout when retry-after is longer (" .. mode .. ")", function()
          -- before the total timeout, this call slept 60 s before each retry
          local r, err, code = llm.chat(opts(p, "status=429,retry_after=100", {
            timeout = 1, retries = 3, stream = mode == "stream" or nil }))
          assert.is_nil(r)
          assert.equal("timeout", code)
          assert.mentions(p .. ": HTTP 429", err)
          assert.mentions("the call's timeout of 1 s", err)
          assert.equal(1, env.srv:stats().requests)
        end)
      end

      it("gives up within its timeout on slow replies, retries included", function()
        local r, err, code = llm.chat(opts(p, "latency=3000", { timeout = 0.3, retries = 5 }))
        assert.is_nil(r)
        assert.equal("timeout", code)
        assert.mentions("the call's timeout of 0.3 s is spent after 1 attempt", err)
      end)
    end)
  end

  for _, p in ipairs { "openai", "anthropic" } do
    it(p .. " fails with protocol on a huge tool-call index in a stream", function()
      local r, err, code = llm.chat(opts(p, "tool_index=1000000000000000", {
        tools = { ADD }, stream = true,
        messages = { { role = "user", content = 'call add {"a": 1, "b": 2}' } } }))
      assert.is_nil(r)
      assert.equal("protocol", code)
      assert.mentions("index 1e+15", err)
    end)
  end

  describe("mock", function()
    after_each(function() llm.mock.reset() end)

    it("gives up within its timeout when retry-after is longer", function()
      llm.mock.register("busy", { { fail = { status = 429, retry_after = 100 } } })
      local r, err, code = llm.chat { model = "mock:busy", timeout = 1, retries = 3,
                                      messages = { { role = "user", content = "hi" } } }
      assert.is_nil(r)
      assert.equal("timeout", code)
      assert.mentions("the call's timeout of 1 s", err)
    end)
  end)
end)
