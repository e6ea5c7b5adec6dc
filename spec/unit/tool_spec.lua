-- spec/unit/tool_spec.lua — weft.tool: creation checks (name, handler,
-- schema errors naming the tool and path), argument validation before the
-- handler, result encoding, and every failure turned into an
-- {"error": ...} tool result instead of an exception; handlers may yield.
local weft = require "weft"
local json = require "weft.json"
local h = require "helpers"

local function add_tool(handler)
  return weft.tool {
    name = "add", description = "Add two numbers",
    parameters = { type = "object",
                   properties = { a = { type = "number" }, b = { type = "number" },
                                  op = { type = "string", enum = { "sum", "diff" } } },
                   required = { "a", "b" } },
    handler = handler or function(args) return args.a + args.b end,
  }
end

-- The decoded error of a tool result text.
local function err_of(text)
  local d = json.decode(text)
  return type(d) == "table" and d.error or nil
end

describe("weft.tool", function()
  describe("creation", function()
    it("makes a tool with a spec for weft.llm", function()
      local t = add_tool()
      assert.is_true(weft.tool.is_tool(t))
      local spec = t:spec()
      assert.equals("add", spec.name)
      assert.equals("Add two numbers", spec.description)
      assert.equals("object", spec.parameters.type)
      assert.equals("tool 'add'", tostring(t))
    end)

    it("defaults to no parameters (an empty object schema)", function()
      local t = weft.tool { name = "now", handler = function() return 1 end }
      assert.equals('{"properties":{},"type":"object"}', json.encode(t.parameters))
    end)

    it("names the tool and the schema path of an invalid schema", function()
      local err = h.error_of(weft.tool, { name = "add", handler = print,
        parameters = { type = "object", properties = { a = { type = "num" } } } })
      assert.mentions("tool 'add': parameters.properties.a.type: unknown type 'num'", err)
    end)

    it("points the error at the caller's line", function()
      local ok, err = pcall(function()
        weft.tool { name = "x", handler = print, parameters = { type = "string" } }
      end)
      assert.is_false(ok)
      assert.mentions("tool_spec.lua:", err)
      assert.mentions("tool 'x': parameters.type: must be 'object'", err)
    end)

    it("rejects bad names, handlers and options", function()
      assert.mentions("name must be 1-64 letters", h.error_of(weft.tool, { name = "a b", handler = print }))
      assert.mentions("name must be 1-64 letters", h.error_of(weft.tool, { handler = print }))
      assert.mentions("tool 'x': handler must be a function", h.error_of(weft.tool, { name = "x" }))
      assert.mentions("tool 'x': unknown option 'handle'", h.error_of(weft.tool, { name = "x", handle = print }))
      assert.mentions("tool 'x': description must be a string",
                      h.error_of(weft.tool, { name = "x", handler = print, description = 1 }))
      assert.mentions("weft.tool: expects a table", h.error_of(weft.tool, "x"))
    end)
  end)

  describe("invoke", function()
    it("runs the handler with the arguments and context, JSON-encoding the result", function()
      local seen
      local t = add_tool(function(args, ctx) seen = ctx; return { sum = args.a + args.b } end)
      local ok, text = t:invoke({ a = 2, b = 3 }, { agent = "calc", call_id = "c1" })
      assert.is_true(ok)
      assert.equals('{"sum":5}', text)
      assert.equals("calc", seen.agent)
      assert.equals("c1", seen.call_id)
    end)

    it("shows each call to the journal's observer (kind 'tool') but never to its hook: tools run again on replay", function()
      local journal = require "weft.journal"
      local calls, hooked, seen = 0, 0, {}
      local t = add_tool(function(args) calls = calls + 1; return { sum = args.a + args.b } end)
      local old_hook = journal.set(function(kind, request, fn, ...) hooked = hooked + 1; return fn(...) end)
      local old_obs = journal.observe(function(kind, request, call, fn, ...)
        seen[#seen + 1] = { kind = kind, what = request.what, a = request.args.a, call_id = select(3, ...).call_id }
        return call(kind, request, fn, ...)
      end)
      local ok1, text1 = t:invoke({ a = 2, b = 3 }, { call_id = "c1" })
      local ok2, text2 = t:invoke('{"a":100,"b":1}', { call_id = "c2" })
      local ok3, text3 = t:invoke({ a = "x", b = 1 }, { call_id = "c3" }) -- refused before it is observed
      journal.set(old_hook)
      journal.observe(old_obs)
      assert.same({ true, '{"sum":5}', true, '{"sum":101}' }, { ok1, text1, ok2, text2 })
      assert.is_false(ok3)
      assert.truthy(err_of(text3):find("invalid arguments", 1, true))
      assert.equal(2, calls)
      assert.equal(0, hooked)
      assert.same({ { kind = "tool", what = "tool add", a = 2, call_id = "c1" },
                    { kind = "tool", what = "tool add", a = 100, call_id = "c2" } }, seen)
    end)

    it("sends a string result as is", function()
      local t = weft.tool { name = "say", handler = function() return "hello \"there\"" end }
      assert.same({ true, 'hello "there"' }, { t:invoke({}) })
    end)

    it("encodes numbers, booleans and nil", function()
      assert.same({ true, "5" }, { add_tool():invoke({ a = 2, b = 3 }) })
      local t = weft.tool { name = "b", handler = function() return false end }
      assert.same({ true, "false" }, { t:invoke({}) })
      t = weft.tool { name = "n", handler = function() end }
      assert.same({ true, "null" }, { t:invoke({}) })
    end)

    it("decodes JSON string arguments", function()
      assert.same({ true, "3" }, { add_tool():invoke('{"a":1,"b":2}') })
    end)

    it("returns an error result for arguments that fail the schema, without calling the handler", function()
      local called = false
      local t = add_tool(function() called = true end)
      local ok, text = t:invoke({ a = "x", b = 1 })
      assert.is_false(ok)
      assert.equals("invalid arguments for tool 'add': arguments.a: expected number, got string", err_of(text))
      ok, text = t:invoke({ a = 1 })
      assert.equals("invalid arguments for tool 'add': arguments: missing required property 'b'", err_of(text))
      ok, text = t:invoke({ a = 1, b = 2, op = "mul" })
      assert.mentions('arguments.op: "mul" is not one of "sum", "diff"', err_of(text))
      ok, text = t:invoke("[1,2]")
      assert.mentions("invalid arguments for tool 'add'", err_of(text))
      ok, text = t:invoke("{not json")
      assert.mentions("not a JSON object", err_of(text))
      assert.is_false(called)
    end)

    it("returns an error result when the handler raises", function()
      local t = add_tool(function() error("boom", 0) end)
      local ok, text = t:invoke({ a = 1, b = 2 })
      assert.is_false(ok)
      assert.equals("tool 'add' failed: boom", err_of(text))
      t = add_tool(function() error({ code = 1 }) end)
      ok, text = t:invoke({ a = 1, b = 2 })
      assert.is_false(ok)
      assert.mentions("tool 'add' failed: table", err_of(text))
    end)

    it("returns an error result when the handler returns nil, err", function()
      local t = add_tool(function() return nil, "no such file" end)
      local ok, text = t:invoke({ a = 1, b = 2 })
      assert.is_false(ok)
      assert.equals("tool 'add' failed: no such file", err_of(text))
    end)

    it("returns an error result for a value that is not JSON", function()
      local t = add_tool(function() return { f = print } end)
      local ok, text = t:invoke({ a = 1, b = 2 })
      assert.is_false(ok)
      assert.mentions("tool 'add' returned a value that is not JSON: result.f: function", err_of(text))
    end)

    it("lets the handler yield inside a task", function()
      local t = add_tool(function(args) weft.sleep(0.001); return args.a * args.b end)
      local task = weft.go(function() return t:invoke({ a = 6, b = 7 }) end)
      assert.same({ true, "42" }, { task:wait() })
    end)
  end)
end)
