-- spec/unit/http_llm_request_spec.lua — what an LLM call in flight holds
-- of its request (issue 14, memory per run waiting on an HTTP/LLM call):
-- weft.llm.common's request building uses messages already in normal form
-- as they are, shares read-only retry policies and provider configs
-- between calls (anything that needs normalising is still copied), and
-- with_retries hands its attempts their arguments (no closure per call).
local common = require "weft.llm.common"
local json = require "weft.json"
local openai = require "weft.llm.openai"

describe("llm.common request building", function()
  describe("request", function()
    it("uses messages in normal form as they are, list included", function()
      local msgs = { { role = "system", content = "be brief" }, { role = "user", content = "hi", name = "ann" },
                     { role = "tool", content = "42", tool_call_id = "c1" } }
      local call = common.request({ messages = msgs }, "m")
      assert.equal(msgs, call.messages)
      assert.equal(msgs[2], call.messages[2])
    end)

    it("copies a message that needs normalising, and only that one", function()
      local m1 = { role = "user", content = "hi" }
      local m2 = { role = "assistant", content = json.null,
                   tool_calls = { { id = "c1", name = "f", arguments = { x = 1 } } } }
      local msgs = { m1, m2 }
      local call = common.request({ messages = msgs }, "m")
      assert.are_not.equal(msgs, call.messages)
      assert.equal(m1, call.messages[1])
      assert.are_not.equal(m2, call.messages[2])
      assert.same({ role = "assistant", content = "",
                    tool_calls = { { id = "c1", name = "f", arguments = { x = 1 } } } }, call.messages[2])
    end)

    it("copies a message with a null name, a stray tool_call_id or another field, without them", function()
      local msgs = { { role = "user", content = "a", name = json.null },
                     { role = "user", content = "b", tool_call_id = "c9" },
                     { role = "user", content = "c", note = "mine" } }
      local call = common.request({ messages = msgs }, "m")
      assert.same({ { role = "user", content = "a" }, { role = "user", content = "b" },
                    { role = "user", content = "c" } }, call.messages)
      for i = 1, 3 do assert.are_not.equal(msgs[i], call.messages[i]) end
    end)

    it("builds the same wire body from a message used as it is", function()
      local call = common.request({ messages = { { role = "user", content = "hi", name = "ann" } } }, "gpt")
      assert.equal('{"messages":[{"content":"hi","name":"ann","role":"user"}],"model":"gpt"}',
                   json.encode(openai.body(call), { sort_keys = true }))
    end)
  end)

  describe("policy", function()
    it("gives calls with the same retries and no other retry option one shared policy", function()
      local a, b = common.policy { retries = 0 }, common.policy { retries = 0 }
      assert.equal(a, b)
      assert.equal(0, a.retries)
      assert.equal(common.policy {}, common.policy(nil))
      assert.equal(common.RETRY.retries, common.policy {}.retries)
      assert.are_not.equal(a, common.policy {})
    end)

    it("makes its own policy for other retry options, and follows RETRY when it changes", function()
      local p = common.policy { retries = 1, retry_base = 2 }
      assert.are_not.equal(p, common.policy { retries = 1, retry_base = 2 })
      assert.equal(2, p.base)
      assert.are_not.equal(common.policy { retries = 100 }, common.policy { retries = 100 })
      local saved = common.RETRY
      common.RETRY = { retries = 5, base = 1, factor = 3, cap = 7, after_cap = 9 }
      local q = common.policy {}
      common.RETRY = saved
      assert.same({ retries = 5, base = 1, factor = 3, cap = 7, after_cap = 9 }, q)
      assert.equal(saved.base, common.policy {}.base)
      saved.cap = saved.cap + 1 -- changed in place
      local ok, err = pcall(function() assert.equal(saved.cap, common.policy {}.cap) end)
      saved.cap = saved.cap - 1
      assert.is_true(ok, tostring(err))
    end)
  end)

  describe("with_retries", function()
    it("passes the value after deps on to every attempt (no closure per call)", function()
      local seen = {}
      local function attempt(n, left, a)
        seen[#seen + 1] = { n, left, a }
        if n == 1 then return false, { status = 503, headers = {} }, "http_503", "busy" end
        return true, a.x .. a.y
      end
      local deps = { sleep = function() end, rand = function() return 0 end }
      local a = { x = "x", y = "y" }
      assert.equal("xy", common.with_retries(common.policy { retries = 1 }, attempt, deps, a))
      assert.same({ { 1, nil, a }, { 2, nil, a } }, seen)
    end)
  end)

  describe("http_request", function()
    it("gives calls with the same headers one shared headers table", function()
      local a = common.http_request("http://h/v1/x", common.bearer("k-1"), {}, false)
      local b = common.http_request("http://h/v1/x", common.bearer("k-1"), {}, false)
      assert.equal(a.headers, b.headers)
      assert.same({ authorization = "Bearer k-1", ["content-type"] = "application/json" }, a.headers)
    end)

    it("makes another one when a header differs", function()
      local a = common.http_request("http://h/v1/x", common.bearer("k-1"), {}, false)
      local b = common.http_request("http://h/v1/x", common.bearer("k-2"), {}, false)
      local c = common.http_request("http://h/v1/x", common.bearer("k-1"), {}, true)
      assert.are_not.equal(a.headers, b.headers)
      assert.are_not.equal(a.headers, c.headers)
      assert.same({ authorization = "Bearer k-2", ["content-type"] = "application/json" }, b.headers)
      assert.same({ authorization = "Bearer k-1", ["content-type"] = "application/json",
                    accept = "text/event-stream" }, c.headers)
    end)
  end)

  describe("config", function()
    local P = { name = "p", key_env = "WEFT_TEST_NO_SUCH_KEY", needs_key = true, default_base = "http://h/v1/" }

    it("gives calls with the same key and base URL one shared config", function()
      local a = assert(common.config(P, { api_key = "k-1" }))
      local b = assert(common.config(P, { api_key = "k-1" }))
      assert.equal(a, b)
      assert.same({ api_key = "k-1", base_url = "http://h/v1" }, a)
    end)

    it("makes a new one when the key or the base URL differs", function()
      local a = assert(common.config(P, { api_key = "k-1" }))
      local b = assert(common.config(P, { api_key = "k-2" }))
      local c = assert(common.config(P, { api_key = "k-2", base_url = "http://other/" }))
      assert.are_not.equal(a, b)
      assert.same({ api_key = "k-2", base_url = "http://h/v1" }, b)
      assert.same({ api_key = "k-2", base_url = "http://other" }, c)
    end)
  end)
end)
