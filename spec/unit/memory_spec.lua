-- spec/unit/memory_spec.lua — weft.memory: the in_memory provider (facts
-- per thread id, injected as one system message, custom extractors,
-- max_facts), none(), chain(), option errors, and a provider driving an
-- agent on the mock model across runs and threads.
local weft = require "weft"
local llm = require "weft.llm"
local h = require "helpers"

local memory = weft.memory

describe("weft.memory", function()
  describe("in_memory", function()
    it("keeps facts per thread id and injects them as one system message", function()
      local m = memory.in_memory()
      local t1, t2 = weft.thread.new(), weft.thread.new()
      m.after_invoke(t1, { { role = "user", content = "Remember that the meeting is at 3pm." },
                           { role = "assistant", content = "Remember that I am a bot" },
                           { role = "user", content = "my favourite colour is green, ok?" } })
      assert.same({ "the meeting is at 3pm", "user's favourite colour is green" }, m:facts(t1.id))
      assert.same({}, m:facts(t2.id))
      local ctx = m.before_invoke(t1, t1.messages)
      assert.equals(1, #ctx)
      assert.equals("system", ctx[1].role)
      assert.equals("Known facts:\n- the meeting is at 3pm\n- user's favourite colour is green", ctx[1].content)
      assert.same({}, m.before_invoke(t2, {}))
    end)

    it("uses a custom extractor returning a fact, a list or nil", function()
      local m = memory.in_memory { title = "Facts:", extract = function(msg)
        if msg.content:match("^fact ") then return msg.content:sub(6) end
        if msg.content == "two" then return { "x", "y" } end
      end }
      local t = weft.thread.new()
      m.after_invoke(t, { { role = "user", content = "fact sky is blue" }, { role = "user", content = "two" },
                          { role = "user", content = "nothing" }, { role = "user", content = "fact sky is blue" } })
      assert.same({ "sky is blue", "x", "y" }, m:facts(t.id))
      assert.equals("Facts:\n- sky is blue\n- x\n- y", m.before_invoke(t)[1].content)
    end)

    it("raises when the extractor returns something else", function()
      local m = memory.in_memory { extract = function() return 5 end }
      assert.mentions("extract returned a number", h.error_of(m.after_invoke, weft.thread.new(), { { role = "user", content = "x" } }))
    end)

    it("drops the oldest facts past max_facts", function()
      local m = memory.in_memory { max_facts = 2 }
      for _, f in ipairs { "a", "b", "c" } do m:add("t", f) end
      assert.same({ "b", "c" }, m:facts("t"))
      m:clear("t")
      assert.same({}, m:facts("t"))
    end)

    it("rejects bad options", function()
      assert.mentions("unknown option 'extractor'", h.error_of(memory.in_memory, { extractor = print }))
      assert.mentions("extract must be a function", h.error_of(memory.in_memory, { extract = 1 }))
      assert.mentions("max_facts must be an integer >= 1", h.error_of(memory.in_memory, { max_facts = 0 }))
    end)

    it("checks the options of stored and chain with the one checker ('did you mean')", function()
      local err = h.error_of(function() memory.stored { stor = "sqlite::memory:" } end)
      assert.mentions("weft.memory.stored: unknown option 'stor' (options: extract, max_facts, store, title); "
                      .. "did you mean 'store'?", err)
      assert.mentions("memory_spec.lua", err)
      assert.mentions("weft.memory.stored: max_facts must be an integer >= 1, got 0",
                      h.error_of(memory.stored, { store = "sqlite::memory:", max_facts = 0 }))
      assert.mentions("weft.memory.stored: store must be a store URL or a weft.store object, got 5",
                      h.error_of(memory.stored, { store = 5 }))
      assert.mentions("weft.memory.chain: providers must be a list of providers, got string",
                      h.error_of(memory.chain, "x"))
    end)

    it("remembers across runs of an agent, per thread", function()
      local seen = {}
      llm.mock.register("mem", { { reply = function(msgs)
        seen[#seen + 1] = msgs
        return "ok"
      end } })
      local m = memory.in_memory()
      local a = weft.agent { name = "assistant", model = "mock:mem", instructions = "Help.", memory = m }
      local t1, t2 = a:new_thread(), a:new_thread()
      a:run("My name is Ada", t1)
      a:run("who am I?", t1)
      a:run("who am I?", t2)
      llm.mock.reset()
      assert.equals("Known facts:\n- user's name is Ada", seen[2][2].content)
      assert.equals("system", seen[2][2].role)
      assert.equals("user", seen[3][2].role) -- the other thread knows nothing
    end)
  end)

  it("none() does nothing", function()
    local m = memory.none()
    assert.is_nil(m.before_invoke(weft.thread.new(), {}))
    m.after_invoke(weft.thread.new(), {})
  end)

  it("chain() concatenates contexts and calls every after_invoke", function()
    local got = {}
    local a = { before_invoke = function() return { role = "system", content = "A" } end,
                after_invoke = function() got[#got + 1] = "a" end }
    local b = { before_invoke = function() return { { role = "system", content = "B" } } end,
                after_invoke = function() got[#got + 1] = "b" end }
    local c = memory.chain { a, b, {} }
    local ctx = c.before_invoke(weft.thread.new(), {})
    assert.equals("A", ctx[1].content)
    assert.equals("B", ctx[2].content)
    c.after_invoke(weft.thread.new(), {})
    assert.same({ "a", "b" }, got)
    assert.mentions("weft.memory.chain: providers[1] must be a provider table {before_invoke, after_invoke}, got 1",
                    h.error_of(memory.chain, { 1 }))
  end)
end)
