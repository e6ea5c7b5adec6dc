-- spec/unit/schema_spec.lua — weft.schema: checking schemas of the
-- supported JSON-schema subset (errors name the path) and validating
-- decoded values against them (errors name the value's path).
local schema = require "weft.schema"
local json = require "weft.json"
local _ = require "helpers" -- assert.mentions

describe("weft.schema", function()
  describe("check", function()
    it("accepts the supported keywords and annotations", function()
      assert.is_true(schema.check({
        type = "object", description = "x", title = "t",
        properties = {
          a = { type = "number", minimum = 0, maximum = 10, default = 1 },
          b = { type = { "string", "null" }, enum = { "x", "y", json.null }, minLength = 1, maxLength = 3 },
          c = { type = "array", items = { type = "integer" }, minItems = 1, maxItems = 4 },
          d = { anyOf = { { type = "string" }, { type = "number" } } },
          e = { type = "object", additionalProperties = { type = "boolean" } },
        },
        required = { "a" }, additionalProperties = false,
      }))
      assert.is_true(schema.check({}))
    end)

    it("names the path of an unknown type", function()
      local ok, err = schema.check({ type = "object", properties = { a = { type = "num" } } }, "parameters")
      assert.is_nil(ok)
      assert.mentions("parameters.properties.a.type: unknown type 'num'", err)
    end)

    it("names nested items and combinators in the path", function()
      local _, err = schema.check({ type = "array", items = { type = "object", properties = {
        x = { oneOf = { { type = "string" }, { type = 3 } } } } } }, "p")
      assert.mentions("p.items.properties.x.oneOf[2].type: must be a string", err)
    end)

    it("rejects unsupported keywords (typos show at creation)", function()
      local _, err = schema.check({ type = "object", propertys = {} }, "parameters")
      assert.mentions("parameters: unsupported keyword 'propertys'", err)
      _, err = schema.check({ type = "object", properties = { a = { ["$ref"] = "#/x" } } }, "s")
      assert.mentions("s.properties.a: unsupported keyword '$ref'", err)
    end)

    it("rejects malformed keyword values", function()
      local cases = {
        { { required = "a" }, "schema.required: must be a list" },
        { { required = { 1 } }, "schema.required[1]: must be a string" },
        { { enum = {} }, "schema.enum: must be a non-empty list" },
        { { properties = { "a" } }, "schema.properties: must be a table" },
        { { items = "x" }, "schema.items: a schema must be a table" },
        { { minItems = -1 }, "schema.minItems: must be a non-negative integer" },
        { { minimum = "0" }, "schema.minimum: must be a number" },
        { { type = {} }, "schema.type: must be a type name or a non-empty list" },
        { { anyOf = {} }, "schema.anyOf: must be a non-empty list of schemas" },
        { { additionalProperties = "no" }, "schema.additionalProperties: a schema must be a table" },
        { "object", "schema: a schema must be a table, got string" },
      }
      for _, c in ipairs(cases) do
        local ok, err = schema.check(c[1])
        assert.is_nil(ok)
        assert.mentions(c[2], err)
      end
    end)

    it("rejects a required property that cannot exist", function()
      local _, err = schema.check({ properties = { a = {} }, required = { "b" }, additionalProperties = false })
      assert.mentions("schema.required[1]: 'b' is not a property", err)
    end)
  end)

  describe("validate", function()
    local S = {
      type = "object",
      properties = {
        a = { type = "number" }, n = { type = "integer" }, s = { type = "string" },
        op = { type = "string", enum = { "sum", "diff" } },
        flag = { type = "boolean" }, none = { type = "null" },
        list = { type = "array", items = { type = "object", properties = { x = { type = "number" } },
                                           required = { "x" } } },
        inner = { type = "object", properties = { deep = { type = "string" } }, additionalProperties = false },
      },
      required = { "a" },
    }

    it("accepts conforming values", function()
      assert.is_nil(schema.validate(S, { a = 1.5, n = 3, s = "x", op = "sum", flag = false, none = json.null,
                                         list = { { x = 1 }, { x = 2 } }, inner = { deep = "y" } }))
      assert.is_nil(schema.validate(S, json.decode('{"a":1,"list":[],"inner":{}}')))
    end)

    it("reports type mismatches with the value's path", function()
      assert.equals("arguments.a: expected number, got string", schema.validate(S, { a = "1" }, "arguments"))
      assert.equals("value.flag: expected boolean, got number", schema.validate(S, { a = 1, flag = 1 }))
      assert.equals("value.none: expected null, got string", schema.validate(S, { a = 1, none = "x" }))
      assert.equals("value: expected object, got array", schema.validate(S, { 1, 2 }))
      assert.equals("value.s: expected string, got object", schema.validate(S, { a = 1, s = { k = 1 } }))
    end)

    it("tells integers from other numbers", function()
      assert.is_nil(schema.validate(S, { a = 1, n = 4 }))
      assert.mentions("value.n: expected integer, got 4.5", schema.validate(S, { a = 1, n = 4.5 }))
    end)

    it("reports missing required properties", function()
      assert.equals("value: missing required property 'a'", schema.validate(S, {}))
    end)

    it("reports values outside an enum", function()
      assert.equals('value.op: "mul" is not one of "sum", "diff"', schema.validate(S, { a = 1, op = "mul" }))
    end)

    it("validates items and nested properties", function()
      assert.equals("value.list[2]: missing required property 'x'",
                    schema.validate(S, { a = 1, list = { { x = 1 }, { y = 2 } } }))
      assert.equals("value.list[1].x: expected number, got boolean",
                    schema.validate(S, { a = 1, list = { { x = true } } }))
      assert.equals("value.list: expected array, got object", schema.validate(S, { a = 1, list = { x = 1 } }))
    end)

    it("rejects extra properties when additionalProperties is false", function()
      assert.equals("value.inner: unexpected property 'other'",
                    schema.validate(S, { a = 1, inner = { deep = "x", other = 1 } }))
    end)

    it("validates extra properties against an additionalProperties schema", function()
      local s = { type = "object", additionalProperties = { type = "number" } }
      assert.is_nil(schema.validate(s, { x = 1, y = 2 }))
      assert.equals("value.y: expected number, got string", schema.validate(s, { x = 1, y = "2" }))
    end)

    it("accepts a list of types", function()
      local s = { type = { "string", "null" } }
      assert.is_nil(schema.validate(s, "x"))
      assert.is_nil(schema.validate(s, json.null))
      assert.equals("value: expected string or null, got number", schema.validate(s, 1))
    end)

    it("checks bounds", function()
      assert.mentions("less than the minimum", schema.validate({ minimum = 2 }, 1))
      assert.mentions("more than the maximum", schema.validate({ maximum = 2 }, 3))
      assert.mentions("shorter than 2", schema.validate({ minLength = 2 }, "a"))
      assert.mentions("longer than 1", schema.validate({ maxLength = 1 }, "ab"))
      assert.mentions("fewer than 2 items", schema.validate({ type = "array", minItems = 2 }, { 1 }))
      assert.mentions("more than 1 items", schema.validate({ type = "array", maxItems = 1 }, { 1, 2 }))
    end)

    it("applies anyOf, oneOf and allOf", function()
      local any = { anyOf = { { type = "string" }, { type = "number" } } }
      assert.is_nil(schema.validate(any, 1))
      assert.mentions("matches none of anyOf", schema.validate(any, true))
      local one = { oneOf = { { type = "number" }, { type = "integer" } } }
      assert.is_nil(schema.validate(one, 1.5))
      assert.mentions("matches 2 schemas of oneOf", schema.validate(one, 2))
      local all = { allOf = { { type = "number" }, { minimum = 3 } } }
      assert.is_nil(schema.validate(all, 4))
      assert.mentions("less than the minimum", schema.validate(all, 1))
    end)

    it("rejects values JSON cannot hold", function()
      assert.mentions("value.a: function is not a JSON value", schema.validate({ properties = { a = {} } }, { a = print }))
      assert.mentions("non-finite number", schema.validate({ type = "number" }, 0 / 0))
    end)

    it("quotes odd property names in paths", function()
      local s = { properties = { ["a b"] = { type = "string" } } }
      assert.equals('value["a b"]: expected string, got number', schema.validate(s, { ["a b"] = 1 }))
    end)
  end)
end)
