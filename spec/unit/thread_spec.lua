-- spec/unit/thread_spec.lua — weft.thread: unique ids, message
-- normalisation, exact serialize/deserialize round trips (tool calls,
-- empty arguments, metadata) and clear errors for anything that is not a
-- serialized thread.
local weft = require "weft"
local json = require "weft.json"
local h = require "helpers"

describe("weft.thread", function()
  it("makes threads with unique ids", function()
    local seen = {}
    for _ = 1, 1000 do
      local t = weft.thread.new()
      assert.is_nil(seen[t.id])
      seen[t.id] = true
      assert.truthy(t.id:match("^thread%-%d+%-%x+$"))
    end
  end)

  it("appends normalised messages", function()
    local t = weft.thread.new()
    t:append("hi")
    t:append({ role = "assistant", content = json.null, tool_calls = { { id = "c1", name = "add", arguments = '{"a":1}' } } })
    t:append({ role = "tool", tool_call_id = "c1", content = "1", important = true })
    assert.equals(3, t:len())
    assert.same({ role = "user", content = "hi" }, t.messages[1])
    assert.equals("", t.messages[2].content)
    assert.same({ a = 1 }, t.messages[2].tool_calls[1].arguments)
    assert.is_true(t:last().important)
  end)

  it("rejects bad messages naming the thread and the field", function()
    local t = weft.thread.new { id = "t1" }
    assert.mentions("thread 't1': append: message.role must be 'system', 'user', 'assistant' or 'tool', got 'bot'",
                    h.error_of(t.append, t, { role = "bot", content = "x" }))
    assert.mentions("message.content must be a string, got 1", h.error_of(t.append, t, { role = "user", content = 1 }))
    assert.mentions("message.content must be a string, got nothing", h.error_of(t.append, t, { role = "user" }))
    assert.mentions("message.tool_call_id must be a string, got nothing",
                    h.error_of(t.append, t, { role = "tool", content = "x" }))
    assert.mentions("message.tool_calls[1].name must be a non-empty string, got nothing",
                    h.error_of(t.append, t, { role = "assistant", content = "", tool_calls = { {} } }))
    assert.mentions("message.tool_calls[1].arguments must be a table or a JSON string, got 1",
                    h.error_of(t.append, t, { role = "assistant", tool_calls = { { name = "f", arguments = 1 } } }))
    -- the one message check, also llm.chat's: nil for a good message
    assert.is_nil(weft.thread.problem({ role = "assistant", content = json.null, tool_calls = {} }, "m"))
    assert.equal("m.role must be 'system', 'user', 'assistant' or 'tool', got nothing",
                 weft.thread.problem({ content = "x" }, "m"))
    assert.equals(0, t:len())
  end)

  it("accepts an id, messages and metadata", function()
    local t = weft.thread.new { id = "mine", messages = { "a", { role = "assistant", content = "b" } },
                                metadata = { user = "u1" } }
    assert.equals("mine", t.id)
    assert.equals(2, t:len())
    assert.equals("u1", t.metadata.user)
    assert.mentions("weft.thread.new: messages[2].role", h.error_of(weft.thread.new, { messages = { "a", {} } }))
    assert.mentions("id must be a non-empty string", h.error_of(weft.thread.new, { id = "" }))
  end)

  it("new refuses unknown options with the valid names and 'did you mean'", function()
    local err = h.error_of(function() weft.thread.new { metdata = {} } end)
    assert.mentions("weft.thread.new: unknown option 'metdata' (options: id, messages, metadata); "
                    .. "did you mean 'metadata'?", err)
    assert.mentions("thread_spec.lua", err)
    assert.mentions("did you mean 'messages'?", h.error_of(weft.thread.new, { history = {} }))
    assert.mentions("weft.thread.new: options must be a table, got string", h.error_of(weft.thread.new, "x"))
  end)

  describe("serialize / deserialize", function()
    local function sample()
      local t = weft.thread.new { metadata = { user = "u1", tags = json.array() } }
      t:append({ role = "system", content = "be brief" })
      t:append("call add {\"a\":1}")
      t:append({ role = "assistant", content = "", tool_calls = {
        { id = "c1", name = "add", arguments = { a = 1, nested = { list = { 1, 2 }, empty = json.object() } } },
        { id = "c2", name = "now", arguments = {} } } })
      t:append({ role = "tool", tool_call_id = "c1", name = "add", content = '{"error":"x"}' })
      t:append({ role = "tool", tool_call_id = "c2", name = "now", content = "12" })
      t:append({ role = "assistant", content = "done \226\156\147 \"quoted\"\n", important = true })
      return t
    end

    it("round-trips exactly", function()
      local t = sample()
      local s = t:serialize()
      local back = weft.thread.deserialize(s)
      assert.equals(t.id, back.id)
      assert.same(t.messages, back.messages)
      assert.same(t.metadata, back.metadata)
      assert.equals(s, back:serialize())
      assert.equals(s, weft.thread.deserialize(back:serialize()):serialize())
      assert.truthy(s:find('"arguments":{}', 1, true))   -- empty arguments stay an object
      assert.truthy(s:find('"tags":[]', 1, true))        -- an empty array stays an array
    end)

    it("round-trips an empty thread", function()
      local t = weft.thread.new()
      local s = t:serialize()
      assert.equals(s, weft.thread.deserialize(s):serialize())
      assert.equals(0, weft.thread.deserialize(s):len())
    end)

    it("keeps the thread usable after a round trip", function()
      local back = weft.thread.deserialize(sample():serialize())
      back:append("more")
      assert.equals(7, back:len())
      assert.is_true(weft.thread.is_thread(back))
    end)

    it("raises a clear error for garbage", function()
      local d = weft.thread.deserialize
      assert.mentions("weft.thread.deserialize: not a serialized thread: invalid JSON", h.error_of(d, "garbage{"))
      assert.mentions("expected a JSON object", h.error_of(d, "[1,2]"))
      assert.mentions("format nil is not 1", h.error_of(d, '{"id":"x","messages":[]}'))
      assert.mentions("id must be a non-empty string", h.error_of(d, '{"format":1,"messages":[]}'))
      assert.mentions("thread 'x': messages must be a list", h.error_of(d, '{"format":1,"id":"x","messages":{"a":1}}'))
      assert.mentions("thread 'x': messages[1].role must be",
                      h.error_of(d, '{"format":1,"id":"x","messages":[{"role":"robot","content":"x"}]}'))
      assert.mentions("thread 'x': metadata must be an object",
                      h.error_of(d, '{"format":1,"id":"x","messages":[],"metadata":[1]}'))
      assert.mentions("expects a string from thread:serialize(), got nil", h.error_of(d))
    end)

    it("raises naming the field when metadata is not serialisable", function()
      local t = weft.thread.new { id = "t9", metadata = { f = print } }
      assert.mentions("thread 't9': serialize: thread.metadata.f: function", h.error_of(t.serialize, t))
    end)
  end)

  it("forks a copy with a new id", function()
    local t = weft.thread.new { messages = { "a" } }
    local f = t:fork()
    assert.are_not.equal(t.id, f.id)
    f:append("b")
    assert.equals(1, t:len())
    assert.equals(2, f:len())
  end)

  it("normalises inputs: a string, a message or a list", function()
    local input = weft.thread.input
    assert.same({ { role = "user", content = "x" } }, input("x"))
    assert.same({ { role = "assistant", content = "y" } }, input({ role = "assistant", content = "y" }))
    assert.equals(2, #input({ "a", { role = "user", content = "b" } }))
    assert.mentions("input is an empty list", h.error_of(input, {}))
    assert.mentions("input must be a string, a message or a list of messages, got number", h.error_of(input, 5))
    assert.mentions("input[2].role", h.error_of(input, { "a", { content = "b" } }))
  end)
end)
