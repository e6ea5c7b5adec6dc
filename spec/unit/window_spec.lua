-- spec/unit/window_spec.lua — weft.window: message_count, token_count,
-- sliding_window (with important messages) and summarizing (with a mock
-- summariser agent and its cache): system messages always kept in place,
-- tool results never separated from the assistant message that called
-- them, the latest block always kept, argument errors.
local weft = require "weft"
local llm = require "weft.llm"
local h = require "helpers"

local R = weft.window

local function sys(c) return { role = "system", content = c } end
local function user(c) return { role = "user", content = c } end
local function bot(c) return { role = "assistant", content = c } end
local function calls(id, n)
  local tc = {}
  for i = 1, n do tc[i] = { id = id .. i, name = "t", arguments = {} } end
  return { role = "assistant", content = "", tool_calls = tc }
end
local function res(id) return { role = "tool", tool_call_id = id, content = "r" .. id } end

-- Contents (or "tool:<id>" / "calls") of a message list, joined.
local function show(msgs)
  local out = {}
  for i, m in ipairs(msgs) do
    if m.role == "tool" then out[i] = "tool:" .. m.tool_call_id
    elseif m.tool_calls then out[i] = "calls"
    else out[i] = m.content end
  end
  return table.concat(out, " ")
end

-- True when every tool message follows its assistant call (or another tool).
local function intact(msgs)
  for i, m in ipairs(msgs) do
    if m.role == "tool" then
      local j = i - 1
      while j >= 1 and msgs[j].role == "tool" do j = j - 1 end
      if j < 1 or not msgs[j].tool_calls then return false end
    end
  end
  return true
end

local CONV = { sys("S"), user("u1"), bot("a1"), user("u2"), calls("c", 2), res("c1"), res("c2"),
               bot("a2"), user("u3"), bot("a3") }

describe("weft.window", function()
  describe("message_count", function()
    it("keeps the last n non-system messages and every system message", function()
      assert.equals("S u3 a3", show(R.message_count(2)(CONV)))
      assert.equals("S a2 u3 a3", show(R.message_count(3)(CONV)))
    end)

    it("never separates tool results from their call", function()
      -- 4 would cut the block calls,tool,tool: it is dropped whole
      assert.equals("S a2 u3 a3", show(R.message_count(4)(CONV)))
      assert.equals("S calls tool:c1 tool:c2 a2 u3 a3", show(R.message_count(6)(CONV)))
      for n = 1, 10 do assert.is_true(intact(R.message_count(n)(CONV)), "n = " .. n) end
    end)

    it("keeps the latest block whole even when it alone is larger than n", function()
      local msgs = { sys("S"), user("q"), calls("c", 3), res("c1"), res("c2"), res("c3") }
      assert.equals("S calls tool:c1 tool:c2 tool:c3", show(R.message_count(1)(msgs)))
    end)

    it("returns the messages unchanged when they fit", function()
      assert.equals(CONV, R.message_count(9)(CONV))
      assert.equals(CONV, R.message_count(100)(CONV))
    end)

    it("keeps system messages in place", function()
      local msgs = { user("u1"), bot("a1"), sys("mid"), user("u2"), bot("a2") }
      assert.equals("mid u2 a2", show(R.message_count(2)(msgs)))
      local m2 = { sys("a"), user("u1"), sys("b"), user("u2") }
      assert.equals("a b u2", show(R.message_count(1)(m2)))
    end)

    it("rejects a bad n", function()
      assert.mentions("weft.window.message_count: n must be an integer >= 1", h.error_of(R.message_count, 0))
      assert.mentions("n must be an integer", h.error_of(R.message_count, 1.5))
    end)
  end)

  describe("token_count", function()
    it("estimates 4 characters a token", function()
      assert.equals(1 + 1, R.estimate_tokens(user("abcd")))
      assert.equals(2 + 1, R.estimate_tokens(user("abcde")))
      assert.equals(1, R.estimate_tokens(user("")))
      assert.is_true(R.estimate_tokens(calls("c", 1)) > 1)
    end)

    it("keeps the most recent messages that fit with the system messages", function()
      local msgs = { sys(("s"):rep(40)), user(("u"):rep(40)), bot(("a"):rep(40)), user(("v"):rep(40)) }
      -- each message is 11 tokens: system 11 + two more = 33
      assert.equals(3, #R.token_count(33)(msgs))
      assert.equals(2, #R.token_count(32)(msgs))
      assert.equals(4, #R.token_count(44)(msgs))
      assert.equals(msgs, R.token_count(1000)(msgs))
    end)

    it("keeps whole blocks and always the latest one", function()
      for n = 1, 60 do
        local out = R.token_count(n)(CONV)
        assert.is_true(intact(out), "budget " .. n)
        assert.equals("a3", out[#out].content)
        assert.equals("S", out[1].content)
      end
    end)

    it("rejects a bad budget", function()
      assert.mentions("max_tokens must be an integer >= 1", h.error_of(R.token_count, "x"))
    end)
  end)

  describe("sliding_window", function()
    it("keeps the last n", function()
      assert.equals("S u3 a3", show(R.sliding_window(2)(CONV)))
    end)

    it("keeps important messages with keep_important, whole blocks included", function()
      local msgs = { sys("S"), user("old"), { role = "user", content = "key", important = true }, bot("a1"),
                     calls("c", 1), { role = "tool", tool_call_id = "c1", content = "vital", important = true },
                     user("u2"), bot("a2") }
      assert.equals("S u2 a2", show(R.sliding_window(2)(msgs)))
      assert.equals("S key calls tool:c1 u2 a2", show(R.sliding_window(2, true)(msgs)))
    end)
  end)

  describe("summarizing", function()
    local prompts
    before_each(function()
      prompts = {}
      llm.mock.register("sum", { { reply = function(msgs)
        prompts[#prompts + 1] = msgs[#msgs].content
        return "they said hello"
      end } })
    end)
    after_each(function() llm.mock.reset() end)

    local function summariser() return weft.agent { name = "summariser", model = "mock:sum" } end

    it("leaves short conversations alone", function()
      local r = R.summarizing(summariser(), 20)
      assert.equals(CONV, r(CONV))
      assert.equals(0, #prompts)
    end)

    it("replaces older messages by a system summary written by the agent", function()
      local r = R.summarizing(summariser(), 4)
      local out = r(CONV)
      assert.equals("S Summary of the earlier conversation: they said hello u3 a3", show(out))
      assert.equals("system", out[2].role)
      assert.equals(1, #prompts)
      assert.mentions("Summarise the following conversation", prompts[1])
      assert.mentions("user: u1\nassistant: a1\nuser: u2\nassistant: [calls t {}; t {}]\ntool: rc1", prompts[1])
      assert.is_true(intact(out))
    end)

    it("summarises a prefix once", function()
      local r = R.summarizing(summariser(), 4)
      r(CONV)
      r(CONV)
      assert.equals(1, #prompts)
      local more = {}
      for i, m in ipairs(CONV) do more[i] = m end
      more[#more + 1] = user("u4")
      more[#more + 1] = bot("a4")
      r(more)
      assert.equals(2, #prompts)
    end)

    it("keeps an agent's context bounded through a conversation", function()
      local seen = {}
      llm.mock.register("count", { { reply = function(msgs)
        seen[#seen + 1] = #msgs
        return "ok"
      end } })
      local a = weft.agent { name = "talker", model = "mock:count", reducer = R.summarizing(summariser(), 6, 2) }
      local th = a:new_thread()
      for i = 1, 8 do assert(a:run("turn " .. i, th)) end
      assert.equals(16, th:len())
      for _, n in ipairs(seen) do assert.is_true(n <= 7, "context of " .. n) end
    end)

    it("raises naming the agent when the summary fails", function()
      llm.mock.register("down", { { fail = { status = 400 } } })
      local bad = weft.agent { name = "s2", model = "mock:down", llm = { retries = 0 } }
      local r = R.summarizing(bad, 2)
      assert.mentions("summarizing: agent 's2' failed: agent 's2': mock: HTTP 400", h.error_of(r, CONV))
      local a = weft.agent { name = "user_of", model = "mock:echo", reducer = r }
      local res, err = a:run({ "a", "b", "c", "d" })
      assert.is_nil(res)
      assert.mentions("agent 'user_of': reducer: summarizing: agent 's2' failed", err)
    end)

    it("rejects bad arguments", function()
      assert.mentions("agent must be an agent", h.error_of(R.summarizing, nil, 3))
      assert.mentions("threshold must be an integer >= 1", h.error_of(R.summarizing, summariser(), 0))
    end)
  end)
end)
