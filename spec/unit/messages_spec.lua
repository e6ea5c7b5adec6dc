-- spec/unit/messages_spec.lua — JSON-serialisability of what crosses an
-- invocation boundary (docs/api.md "Context", ARCHITECTURE.md "Messages and
-- serialisation"): ctx:send, ctx:yield_output, ctx:set_state and ctx:emit
-- reject functions, userdata, coroutines, cyclic tables, mixed keys, sparse
-- arrays, NaN and infinities at the call, with an error naming the path.
local weft = require "weft"
local h = require "helpers"

-- Each bad value is built fresh (a cyclic table must not be shared).
-- path: the part of the error path below the root ("items[2]", ...);
-- words: lower-case alternatives, one of which the error must contain.
local bad_values = {
  { what = "a function", path = "items[2]", words = { "function" },
    make = function() return { items = { 1, function() end } } end },
  { what = "userdata (io.stdout)", path = "items[2]", words = { "userdata" },
    make = function() return { items = { 1, io.stdout } } end },
  { what = "a coroutine", path = "items[2]", words = { "thread", "coroutine" },
    make = function() return { items = { 1, coroutine.create(function() end) } } end },
  { what = "a cyclic table", path = "self", words = { "cycl" },
    make = function() local t = { name = "loop" }; t.self = t; return t end },
  { what = "a table with mixed keys", path = "data",
    make = function() return { data = { 1, 2, x = 3 } } end },
  { what = "a sparse array", path = "data",
    make = function() return { data = { [1] = 1, [3] = 3 } } end },
  { what = "a table with non-string keys", path = "data",
    make = function() return { data = { [true] = 1 } } end },
  { what = "NaN", path = "n", words = { "nan" },
    make = function() return { n = 0 / 0 } end },
  { what = "an infinity", path = "n", words = { "inf" },
    make = function() return { n = -math.huge } end },
}

-- The four calls that take a value, as function(ctx, value).
local calls = {
  { name = "ctx:send", call = function(ctx, v) ctx:send(v) end },
  { name = "ctx:yield_output", call = function(ctx, v) ctx:yield_output(v) end },
  { name = "ctx:set_state", call = function(ctx, v) ctx:set_state("k", v) end },
  { name = "ctx:emit", call = function(ctx, v) ctx:emit("ev", v) end },
}

-- Run a one-executor workflow whose handler calls call(ctx, value) under
-- pcall; returns the caught error (or nil) and the run result.
local function caught(call, value)
  local err
  local a = weft.executor("a", function(_, ctx) err = h.error_of(call, ctx, value) end)
  local b = h.recorder("b")
  local res = weft.workflow("ser"):start(a):edge(a, b):build():run("x")
  return err, res
end

local function mentions_any(words, text)
  text = (text or ""):lower()
  for _, w in ipairs(words) do
    if text:find(w, 1, true) then return true end
  end
  return false
end

describe("message serialisation", function()

  for _, c in ipairs(calls) do
    describe(c.name, function()
      for _, bad in ipairs(bad_values) do
        it("rejects " .. bad.what .. " with an error naming the path", function()
          local err = caught(c.call, bad.make())
          assert.is_string(err)
          assert.mentions(c.name, err)
          assert.mentions(bad.path, err)
          if bad.words then
            assert.is_true(mentions_any(bad.words, err), "error should say what is wrong: " .. err)
          end
        end)
      end

      it("accepts nested tables, strings, numbers and booleans", function()
        local err, res = caught(c.call, { s = "é", n = 1.5, b = false, list = { 1, { x = "y" } } })
        assert.is_nil(err)
        assert.equal("completed", res.status)
      end)

      it("accepts weft.json.array(), weft.json.object() and weft.json.null", function()
        local err = caught(c.call, {
          a = weft.json.array({}), o = weft.json.object({}), z = weft.json.null,
        })
        assert.is_nil(err)
      end)
    end)
  end

  describe("ctx:send", function()
    it("names the full path in the documented format", function()
      local err = caught(calls[1].call, { items = { 1, function() end } })
      assert.mentions("ctx:send: message.items[2]: function is not JSON-serialisable", err)
    end)

    it("rejects nil as a message", function()
      local err = caught(function(ctx) ctx:send(nil) end)
      assert.is_string(err)
      assert.mentions("ctx:send", err)
    end)

    it("delivers nothing when the message is rejected", function()
      local a = weft.executor("a", function(_, ctx)
        pcall(ctx.send, ctx, { f = print })
      end)
      local b, seen = h.recorder("b")
      local res = weft.workflow("ser"):start(a):edge(a, b):build():run("x")
      assert.equal("completed", res.status)
      assert.same({}, seen)
    end)

    it("delivers marked empty tables so they keep their JSON shape", function()
      local a = weft.executor("a", function(_, ctx)
        ctx:send({ a = weft.json.array({}), o = weft.json.object({}) })
      end)
      local b, seen = h.recorder("b")
      weft.workflow("markers"):start(a):edge(a, b):build():run("x")
      assert.equal("[]", weft.json.encode(seen[1].a))
      assert.equal("{}", weft.json.encode(seen[1].o))
    end)
  end)

  describe("ctx:yield_output", function()
    it("keeps the JSON shape of marked empty tables in the outputs", function()
      local a = weft.executor("a", function(_, ctx)
        ctx:yield_output(weft.json.array({}))
        ctx:yield_output(weft.json.object({}))
      end)
      local res = weft.workflow("markers"):start(a):build():run("x")
      assert.equal("[]", weft.json.encode(res.outputs[1]))
      assert.equal("{}", weft.json.encode(res.outputs[2]))
    end)

    it("leaves no output behind when the value is rejected", function()
      local a = weft.executor("a", function(_, ctx)
        pcall(ctx.yield_output, ctx, { n = 0 / 0 })
        ctx:yield_output("fine")
      end)
      local res = weft.workflow("ser"):start(a):build():run("x")
      assert.same({ "fine" }, res.outputs)
    end)
  end)

  describe("ctx:set_state", function()
    it("leaves the key unwritten when the value is rejected", function()
      local a = weft.executor("a", function(_, ctx)
        pcall(ctx.set_state, ctx, "k", { f = print })
      end)
      local res = weft.workflow("ser"):start(a):build():run("x")
      assert.same({}, res.state)
    end)
  end)

  describe("an uncaught serialisation error", function()
    for _, c in ipairs(calls) do
      it("from " .. c.name .. " fails the invocation and the run, naming the executor", function()
        local bad_sender = weft.executor("bad_sender", function(_, ctx)
          c.call(ctx, { items = { 1, function() end } })
        end)
        local b, seen = h.recorder("b")
        local res = weft.workflow("ser"):start(bad_sender):edge(bad_sender, b):build():run("x")
        assert.equal("failed", res.status)
        assert.mentions("bad_sender", res.error)
        assert.mentions("function is not JSON-serialisable", res.error)
        local failed = h.find(res.events, "executor_failed", "bad_sender")
        assert.is_not_nil(failed)
        assert.mentions("items[2]", failed.data.error)
        assert.same({}, seen)
      end)
    end
  end)
end)
