-- spec/unit/json_spec.lua — weft.json: encode, check, decode, the array and
-- object markers and null. Requires only weft.json (and weft.core.json).
local json = require "weft.json"
local ffi = require "ffi"

local encode, decode, check, null = json.encode, json.decode, json.check, json.null

-- The message encode raises for v (without the "file:line: " prefix).
local function encode_error(v, opts)
  local ok, err = pcall(encode, v, opts)
  assert.is_false(ok, "encode should have raised")
  return (err:gsub("^[^\n]-:%d+: ", ""))
end

-- A chain of n nested tables {{{...}}}; returns the root and the innermost.
local function nest(n)
  local root = {}
  local t = root
  for _ = 2, n do
    t[1] = {}
    t = t[1]
  end
  return root, t
end

describe("json.encode", function()
  it("writes strings, booleans, numbers and null", function()
    assert.equal('"hi"', encode("hi"))
    assert.equal("true", encode(true))
    assert.equal("false", encode(false))
    assert.equal("42", encode(42))
    assert.equal("null", encode(null))
  end)

  it("writes integers up to 2^53 without exponent or decimal point", function()
    assert.equal("0", encode(0))
    assert.equal("-5", encode(-5))
    assert.equal("1000000000000000", encode(1e15))
    assert.equal("9007199254740992", encode(2 ^ 53))
    assert.equal("-9007199254740992", encode(-2 ^ 53))
  end)

  it("writes other numbers with the shortest text that reads back exactly", function()
    assert.equal("0.1", encode(0.1))
    assert.equal("1.5", encode(1.5))
    assert.equal("0.3333333333333333", encode(1 / 3))
    assert.equal("9007199254740994", encode(2 ^ 53 + 2))
    assert.equal("1.152921504606847e+18", encode(2 ^ 60))
    assert.equal("1e+300", encode(1e300))
    assert.equal("1.5e-07", encode(1.5e-7))
    assert.equal("-2.5", encode(-2.5))
  end)

  it("writes negative zero as -0", function()
    assert.equal("-0", encode(-0.0))
    assert.equal("[0,-0]", encode({ 0, -0.0 }))
  end)

  it("escapes quotes, backslashes and control characters and keeps UTF-8 and / as they are", function()
    assert.equal([["a\"b\\c"]], encode('a"b\\c'))
    assert.equal([["\b\f\n\r\t"]], encode("\b\f\n\r\t"))
    assert.equal([["\u0000\u0001\u001f"]], encode("\0\1\31"))
    assert.equal('"\127 / é 😀"', encode("\127 / é 😀"))
  end)

  it("writes a table with keys 1..n as an array", function()
    assert.equal('[1,"two",[3]]', encode({ 1, "two", { 3 } }))
    assert.equal("[1,2,3]", encode({ [3] = 3, [1] = 1, [2] = 2 }))
  end)

  it("writes an object with its keys sorted bytewise by default", function()
    assert.equal('{"B":3,"a":2,"aa":4,"b":1,"é":5}',
                 encode({ b = 1, a = 2, B = 3, aa = 4, ["é"] = 5 }))
    assert.equal('{"a":{"x":1,"y":2},"b":[]}', encode({ b = json.array(), a = { y = 2, x = 1 } }))
  end)

  it("sorts objects with more keys than fit on the C stack", function()
    local t, keys = {}, {}
    for i = 1, 100 do
      local k = ("k%03d"):format(101 - i)
      t[k] = i
      keys[#keys + 1] = ('"%s":%d'):format(k, i)
    end
    table.sort(keys)
    assert.equal("{" .. table.concat(keys, ",") .. "}", encode(t))
  end)

  it("keeps every member when sort_keys is false", function()
    local t = { a = 1, b = { c = true }, d = "x" }
    for i = 1, 40 do t["k" .. i] = i end
    local s = encode(t, { sort_keys = false })
    assert.same(t, decode(s))
    assert.equal(encode(t), encode(decode(s)))
  end)

  it("writes pretty output with a 2-space indent", function()
    local v = { name = "x", list = { 1, { a = null } }, empty = {}, none = json.array() }
    assert.equal(table.concat({
      "{",
      '  "empty": {},',
      '  "list": [',
      "    1,",
      "    {",
      '      "a": null',
      "    }",
      "  ],",
      '  "name": "x",',
      '  "none": []',
      "}",
    }, "\n"), encode(v, { pretty = true }))
    assert.equal("[]", encode(json.array(), { pretty = true }))
    assert.equal('"s"', encode("s", { pretty = true }))
  end)

  it("writes an empty table as {} and a marked empty array as []", function()
    assert.equal("{}", encode({}))
    assert.equal("[]", encode(json.array()))
    assert.equal("{}", encode(json.object()))
    assert.equal('{"a":[],"b":{}}', encode({ a = json.array({}), b = {} }))
  end)

  it("writes json.null as null, also as array elements", function()
    assert.equal("[1,null,3]", encode({ 1, null, 3 }))
    assert.equal('{"a":null}', encode({ a = null }))
  end)

  it("ignores metatables other than the markers, without calling metamethods", function()
    local called = false
    local mt = {
      __index = function() called = true end,
      __pairs = function() called = true end,
      __len = function() called = true return 99 end,
    }
    assert.equal('{"a":1}', encode(setmetatable({ a = 1 }, mt)))
    assert.equal("[1,2]", encode(setmetatable({ 1, 2 }, mt)))
    assert.is_false(called)
  end)

  it("accepts a table referenced twice when it is not a cycle", function()
    local s = { 1 }
    assert.equal('{"a":[1],"b":[1]}', encode({ a = s, b = s }))
    local deep, inner = nest(100)
    inner[1] = s
    inner[2] = s
    assert.matches("%[%[1%],%[1%]%]+$", encode(deep))
    assert.is_nil(check(deep))
  end)

  it("accepts 1000 levels of nesting", function()
    local deep = nest(1000)
    assert.equal(("["):rep(999) .. "{}" .. ("]"):rep(999), encode(deep))
  end)

  it("writes long strings and large outputs", function()
    local s = ("a\"\n"):rep(100000)
    local out = encode({ s, s })
    assert.equal(2 * (2 + 100000 * 5) + 3, #out)
    assert.same({ s, s }, decode(out))
  end)

  it("rejects opts that are not a table and a root that is not a string", function()
    assert.has_error(function() encode(1, "pretty") end)
    assert.has_error(function() encode(1, { root = 1 }) end)
  end)
end)

describe("json.encode errors", function()
  it("names the path of a function from the root", function()
    assert.equal("value.items[2].fn: function is not JSON-serialisable",
                 encode_error({ items = { 1, { fn = print } } }))
  end)

  it("raises at the caller's line", function()
    local ok, err = pcall(function() encode({ f = print }) end)
    assert.is_false(ok)
    assert.matches("json_spec%.lua:%d+: value%.f: function is not JSON%-serialisable$", err)
  end)

  it("uses opts.root as the name of the root", function()
    assert.equal("message.a[1]: function is not JSON-serialisable",
                 encode_error({ a = { print } }, { root = "message" }))
  end)

  it("quotes keys that are not identifiers in paths", function()
    assert.equal('value["a b"]["1"]["x\\"y"]: function is not JSON-serialisable',
                 encode_error({ ["a b"] = { ["1"] = { ['x"y'] = print } } }))
  end)

  it("names userdata, threads, cdata and nil", function()
    assert.equal("value: userdata is not JSON-serialisable", encode_error(io.stdout))
    assert.equal("value.t: thread is not JSON-serialisable",
                 encode_error({ t = coroutine.create(print) }))
    assert.equal("value[1]: cdata is not JSON-serialisable", encode_error({ ffi.new("int", 1) }))
    assert.equal("value: nil is not JSON-serialisable", encode_error(nil))
  end)

  it("rejects NaN and infinities", function()
    assert.equal("value.n: NaN is not JSON-serialisable", encode_error({ n = 0 / 0 }))
    assert.equal("value[1]: inf is not JSON-serialisable", encode_error({ math.huge }))
    assert.equal("value: -inf is not JSON-serialisable", encode_error(-math.huge))
  end)

  it("rejects a table with both array and string keys", function()
    assert.equal('value.a: table has mixed keys (1 and "x")', encode_error({ a = { 1, x = 2 } }))
  end)

  it("rejects a sparse array and names the first hole", function()
    assert.equal("value: sparse array: index 2 is nil but index 3 is set", encode_error({ 1, nil, 3 }))
    assert.equal("value.s: sparse array: index 1 is nil but index 10 is set",
                 encode_error({ s = { [10] = true } }))
  end)

  it("rejects keys that are neither strings nor array indexes", function()
    assert.equal("value: table has non-integer number key 1.5", encode_error({ [1.5] = 1 }))
    assert.equal("value: table has array index 0 (arrays start at 1)", encode_error({ [0] = 1 }))
    assert.equal("value: table has array index -2 (arrays start at 1)", encode_error({ [-2] = 1 }))
    assert.equal("value: table has non-integer number key inf", encode_error({ [math.huge] = 1 }))
    assert.equal("value: table has boolean key true", encode_error({ [true] = 1 }))
    assert.equal("value: table has table key", encode_error({ [{}] = 1 }))
    assert.equal("value: table has function key", encode_error({ [print] = 1 }))
  end)

  it("rejects string keys in a table marked as array and number keys in one marked as object", function()
    assert.equal('value: table marked as array has string key "x"', encode_error(json.array({ x = 1 })))
    assert.equal("value: table marked as object has number key 1", encode_error(json.object({ 1 })))
  end)

  it("rejects a cycle and names the table it comes back to", function()
    local t = {}
    t.self = t
    assert.equal("value.self: cyclic table (same table as value)", encode_error(t))
    local a = { b = { c = {} } }
    a.b.c[1] = a.b
    assert.equal("value.b.c[1]: cyclic table (same table as value.b)", encode_error(a))
  end)

  it("detects a cycle that starts deeper than 64 levels", function()
    local deep, inner = nest(80)
    inner[1] = deep[1]
    assert.equal("value[1][1][1][1][1][1][1][1][1][1]...(60 more)...[1][1][1][1][1][1][1][1][1][1]"
                 .. ": cyclic table (same table as value[1])", encode_error(deep))
  end)

  it("rejects more than 1000 levels of nesting", function()
    local deep = nest(1001)
    assert.equal("value[1][1][1][1][1][1][1][1][1][1]...(980 more)...[1][1][1][1][1][1][1][1][1][1]"
                 .. ": nesting too deep (more than 1000 levels)", encode_error(deep))
  end)
end)

describe("json.check", function()
  it("returns nil for serialisable values", function()
    assert.is_nil(check({ role = "user", content = "hello", n = 3 }))
    assert.is_nil(check({ 1, "a", true, null, { x = json.array() } }))
    assert.is_nil(check("s"))
    assert.is_nil(check((nest(1000))))
  end)

  it("returns the message encode raises, for every kind of error", function()
    local cyc = {}
    cyc.a = { cyc }
    local deepcyc, inner = nest(70)
    inner.back = deepcyc
    local bad = {
      print, io.stdout, coroutine.create(print), ffi.new("int", 1), 0 / 0, math.huge,
      { 1, x = 2 }, { x = 2, [5] = 1 }, { 1, nil, 3 }, { [2.5] = 1 }, { [0] = 1 },
      { [true] = 1 }, { [{}] = 1 }, json.array({ a = 1 }), json.object({ 1 }),
      { a = { b = { print } } }, cyc, deepcyc, (nest(1001)),
      { ok = 1, list = { 1, 2, { f = print } } },
    }
    for i, v in ipairs(bad) do
      local err = check(v)
      assert.is_string(err, "case " .. i)
      assert.equal(encode_error(v), err, "case " .. i)
    end
  end)

  it("names the root after its second argument", function()
    assert.equal("message.items[2]: function is not JSON-serialisable",
                 check({ items = { 1, print } }, "message"))
    assert.equal("message: nil is not JSON-serialisable", check(nil, "message"))
  end)

  it("does not mistake a table shared between deep branches for a cycle", function()
    local s = { "shared" }
    local deep, inner = nest(200)
    inner[1] = { s, s, { s } }
    assert.is_nil(check(deep))
    assert.is_nil(check({ deep, deep }))
  end)
end)

describe("json.decode", function()
  it("reads scalars", function()
    assert.equal(1, decode("1"))
    assert.equal("x", decode('"x"'))
    assert.is_true(decode("true"))
    assert.is_false(decode("false"))
    assert.equal(null, decode("null"))
  end)

  it("reads nested arrays and objects, ignoring whitespace", function()
    assert.same({ a = { 1, 2, { b = "c" } }, d = {} },
                decode(' \n{ "a" : [1 ,2,\t{"b":"c"}] ,\r\n"d":{} }\n'))
  end)

  it("reads escapes, \\u escapes and surrogate pairs into UTF-8", function()
    assert.equal('"\\/\b\f\n\r\t', decode([["\"\\\/\b\f\n\r\t"]]))
    assert.equal("é€", decode([["\u00e9\u20AC"]]))
    assert.equal("😀", decode([["\ud83d\ude00"]]))
    assert.equal("a\0b", decode([["a\u0000b"]]))
    assert.equal("ünïcödé", decode('"ünïcödé"'))
  end)

  it("reads null as json.null in arrays and objects, so arrays keep their length", function()
    local t = decode('[1,null,null,4,null]')
    assert.equal(5, #t)
    assert.equal(null, t[2])
    assert.equal(null, t[5])
    assert.equal(null, decode('{"a":null}').a)
  end)

  it("reads integers exactly and other numbers through strtod", function()
    assert.equal(123456789012345, decode("123456789012345"))
    assert.equal(2 ^ 53, decode("9007199254740992"))
    assert.equal(-17, decode("-17"))
    assert.equal(0.1, decode("0.1"))
    assert.equal(1.5e-7, decode("1.5e-7"))
    assert.equal(1e300, decode("1E+300"))
    assert.equal(250, decode("2.5e2"))
    assert.equal(12345678901234567890, decode("12345678901234567890"))
    local long = "0." .. ("1"):rep(100)
    assert.equal(tonumber(long), decode(long))
  end)

  it("reads -0 as negative zero", function()
    assert.equal(-math.huge, 1 / decode("-0"))
    assert.equal(-math.huge, 1 / decode("-0.0"))
  end)

  it("marks arrays with the array marker and leaves objects plain", function()
    local v = decode('{"a":[],"b":{},"c":[1]}')
    assert.equal(json.array_mt or getmetatable(json.array()), getmetatable(v.a))
    assert.is_nil(getmetatable(v.b))
    assert.is_nil(getmetatable(v))
    assert.is_true(json.is_array(v.c))
  end)

  it("keeps the last of duplicate keys", function()
    assert.same({ a = 2 }, decode('{"a":1,"a":2}'))
  end)

  it("skips a UTF-8 byte order mark", function()
    assert.same({ 1 }, decode("\239\187\191[1]"))
  end)

  it("accepts 1000 levels of nesting", function()
    local v = decode(("["):rep(1000) .. ("]"):rep(1000))
    local depth = 0
    while v do depth = depth + 1; v = v[1] end
    assert.equal(1000, depth)
  end)

  it("bounds the strings of a document with max_strings (keys included)", function()
    assert.same({ a = "b", c = 1 }, decode('{"a": "b", "c": 1}', { max_strings = 3 }))
    local v, err = decode('{"a": "b", "c": 1}', { max_strings = 2 })
    assert.is_nil(v)
    assert.equal("invalid JSON at line 1 column 12: too many strings (more than 2, keys included)", err)
    assert.is_nil((decode('["x"]', { max_strings = 0 })))
    assert.same({ 1, 2 }, decode("[1, 2]", { max_strings = 0 }))
    assert.has_error(function() decode("[]", { max_strings = -1 }) end, "bad argument #2 to 'decode' "
      .. "(opts.max_strings must be an integer >= 0)")
  end)

  it("raises when its argument is not a string", function()
    assert.has_error(function() decode(12) end)
    assert.has_error(function() decode() end)
  end)
end)

describe("json.decode errors", function()
  local cases = {
    { "", "line 1 column 1: unexpected end of input" },
    { "   ", "line 1 column 4: unexpected end of input" },
    { "[1,2", "line 1 column 5: unexpected end of input" },
    { "{\n  \"a\": 1,\n  \"b\": 2 x}", "line 3 column 10: expected ',' or '}'" },
    { "[1 2]", "line 1 column 4: expected ',' or ']'" },
    { "[1,]", "line 1 column 4: expected value" },
    { "{,}", "line 1 column 2: expected string key" },
    { '{"a",1}', "line 1 column 5: expected ':'" },
    { "{a:1}", "line 1 column 2: expected string key" },
    { "[tru]", "line 1 column 2: expected value" },
    { "nul", "line 1 column 1: expected value" },
    { "NaN", "line 1 column 1: expected value" },
    { "+1", "line 1 column 1: expected value" },
    { ".5", "line 1 column 1: expected value" },
    { "01", "line 1 column 1: invalid number (leading zero)" },
    { "-", "line 1 column 1: invalid number" },
    { "[1.]", "line 1 column 2: invalid number" },
    { "1e", "line 1 column 1: invalid number" },
    { "1e400", "line 1 column 1: number out of range" },
    { "0x10", "line 1 column 2: unexpected data after the value" },
    { "1 2", "line 1 column 3: unexpected data after the value" },
    { '{} {}', "line 1 column 4: unexpected data after the value" },
    { '"abc', "line 1 column 1: unterminated string" },
    { '["a\\', "line 1 column 2: unterminated string" },
    { '"a\nb"', "line 1 column 3: unescaped control character in string" },
    { '"a\\x"', "line 1 column 3: invalid escape" },
    { '"\\u12g4"', "line 1 column 2: invalid \\u escape" },
    { '"\\u12"', "line 1 column 2: invalid \\u escape" },
    { '"\\udc00"', "line 1 column 2: lone surrogate in \\u escape" },
    { '"\\ud83d"', "line 1 column 2: lone surrogate in \\u escape" },
    { '"\\ud83dx\\ude00"', "line 1 column 2: lone surrogate in \\u escape" },
    { '"\\ud83d\\u0041"', "line 1 column 2: lone surrogate in \\u escape" },
    { ("["):rep(1001) .. ("]"):rep(1001), "line 1 column 1001: nesting too deep (more than 1000 levels)" },
    { ('{"a":'):rep(1001), "line 1 column 5001: nesting too deep (more than 1000 levels)" },
  }
  for _, c in ipairs(cases) do
    it(("returns nil and names the position for %q"):format(#c[1] > 30 and c[1]:sub(1, 20) .. "..." or c[1]), function()
      local v, err = decode(c[1])
      assert.is_nil(v)
      assert.equal("invalid JSON at " .. c[2], err)
    end)
  end
end)

describe("json round trips", function()
  it("keep nested values, unicode, null and the empty markers stable", function()
    local text = '{"a":[],"b":{},"c":[1,null,3],"d":{"e":[[],{}],"f":"\\u00e9\\ud83d\\ude00\\n"},'
      .. '"g":-0,"h":0.1,"i":9007199254740992,"j":true}'
    local v = decode(text)
    assert.equal(3, #v.c)
    local once = encode(v)
    assert.equal('{"a":[],"b":{},"c":[1,null,3],"d":{"e":[[],{}],"f":"é😀\\n"},'
                 .. '"g":-0,"h":0.1,"i":9007199254740992,"j":true}', once)
    assert.equal(once, encode(decode(once)))
    assert.equal(encode(v, { pretty = true }), encode(decode(encode(v, { pretty = true })), { pretty = true }))
  end)

  it("read back every double exactly", function()
    local seed = 12345
    local function rnd()
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed
    end
    local specials = { 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 2 ^ 53 + 1, 0.1 + 0.2, 1 / 3, 123.456 }
    for _, x in ipairs(specials) do
      assert.equal(x, decode(encode(x)))
    end
    for _ = 1, 2000 do
      local x = (rnd() / 2147483648 - 0.5) * 10 ^ (rnd() % 40 - 20)
      assert.equal(x, decode(encode(x)))
    end
  end)
end)

describe("json.array", function()
  it("marks a given table and returns it", function()
    local t = { 1, 2 }
    assert.equal(t, json.array(t))
    assert.is_true(json.is_array(t))
  end)

  it("returns a new marked table without an argument", function()
    local t = json.array()
    assert.same({}, t)
    assert.equal("[]", encode(t))
  end)

  it("replaces the object marker but refuses other metatables and non-tables", function()
    assert.equal("[]", encode(json.array(json.object())))
    assert.has_error(function() json.array(setmetatable({}, {})) end,
                     "json.array: table already has a metatable")
    assert.has_error(function() json.array("x") end, "json.array: expected a table, got string")
  end)
end)

describe("json.object", function()
  it("marks a table as an object that encodes as {} when empty", function()
    local t = json.object()
    assert.equal("{}", encode(t))
    assert.is_false(json.is_array(t))
    t.a = 1
    assert.equal('{"a":1}', encode(t))
  end)
end)

describe("json.is_array", function()
  it("is true for marked tables and for non-empty sequences", function()
    assert.is_true(json.is_array(json.array()))
    assert.is_true(json.is_array({ 1, 2, 3 }))
    assert.is_true(json.is_array({ [2] = "b", [1] = "a" }))
  end)

  it("is false for objects, sparse or mixed tables, empty plain tables and non-tables", function()
    assert.is_false(json.is_array({}))
    assert.is_false(json.is_array({ a = 1 }))
    assert.is_false(json.is_array({ 1, nil, 3 }))
    assert.is_false(json.is_array({ 1, x = 2 }))
    assert.is_false(json.is_array({ [1.5] = 1 }))
    assert.is_false(json.is_array(json.object({ 1 })))
    assert.is_false(json.is_array("x"))
    assert.is_false(json.is_array(nil))
  end)
end)

describe("json.null", function()
  it("is a light userdata that compares equal to itself and not to nil or false", function()
    assert.equal("userdata", type(null))
    assert.equal(null, json.null)
    assert.is_not_nil(null)
    assert.is_not_false(null)
    assert.equal(null, decode("null"))
  end)
end)

describe("json.decode and UTF-8", function()
  local json = require "weft.json"
  it("accepts valid multi-byte sequences", function()
    assert.equal("h\195\169 \240\159\152\128", json.decode('"h\195\169 \240\159\152\128"'))
  end)
  it("rejects invalid UTF-8 naming the position", function()
    for _, bad in ipairs({ '"\255"', '"\192\128"', '"\237\160\128"', '"a\128"', '"\244\144\128\128"' }) do
      local v, err = json.decode(bad)
      assert.is_nil(v)
      assert.truthy(err:find("invalid UTF-8 in string", 1, true), err)
    end
  end)
end)


describe("json depth limit", function()
  local core = require "weft.core.json"

  -- v nested n levels deep (arrays).
  local function nest(n)
    local v = {}
    local inner = v
    for _ = 2, n do
      local t = {}
      inner[1] = t
      inner = t
    end
    return v
  end

  it("is one limit, MAX_DEPTH, shared by decode, encode and check", function()
    local max = core.MAX_DEPTH
    assert.equal(1000, max)
    local s = ("["):rep(max) .. ("]"):rep(max)
    local v = assert(json.decode(s))
    assert.equal(s, json.encode(v))  -- what decode accepts, encode accepts
    assert.is_nil(json.check(nest(max)))
    assert.is_nil(json.decode("[" .. s .. "]"))
    assert.has_error(function() json.encode(nest(max + 1)) end)
    assert.is_string(json.check(nest(max + 1)))
  end)

  it("decodes with a lower limit given as opts.max_depth", function()
    local v, err = json.decode("[[[1]]]", { max_depth = 2 })
    assert.is_nil(v)
    assert.equal("invalid JSON at line 1 column 3: nesting too deep (more than 2 levels)", err)
    assert.same({ { { 1 } } }, json.decode("[[[1]]]", { max_depth = 3 }))
    assert.has_error(function() json.decode("[]", { max_depth = 0 }) end)
    assert.has_error(function() json.decode("[]", { max_depth = 1001 }) end)
    assert.has_error(function() json.decode("[]", { max_depth = 1.5 }) end)
  end)
end)

describe("json.encode and UTF-8", function()
  -- Byte strings that are not UTF-8, each with the offset and byte of its
  -- first bad byte.
  local BAD = {
    { "caf\233", 3, 0xE9 },              -- latin-1
    { "a\128b", 1, 0x80 },               -- lone continuation byte
    { "\192\175", 0, 0xC0 },             -- overlong '/'
    { "\224\128\175", 0, 0xE0 },         -- overlong, 3 bytes
    { "\240\128\128\175", 0, 0xF0 },     -- overlong, 4 bytes
    { "x\237\160\128", 1, 0xED },        -- surrogate U+D800 (CESU-8)
    { "\237\160\189\237\184\128", 0, 0xED }, -- a CESU-8 surrogate pair
    { "\244\144\128\128", 0, 0xF4 },     -- above U+10FFFF
    { "ok\226\130", 2, 0xE2 },           -- cut short at the end
    { "\226\130x", 0, 0xE2 },            -- cut short by ASCII
    { "abcdefgh\255", 8, 0xFF },         -- past the 8-byte fast path
    { "\248\136\128\128\128", 0, 0xF8 }, -- 5-byte form
  }

  it("refuses strings that are not UTF-8, naming the byte and its offset", function()
    for _, c in ipairs(BAD) do
      assert.equal(("value: invalid UTF-8 (byte 0x%02X at offset %d)"):format(c[3], c[2]),
                   encode_error(c[1]))
      assert.is_nil(decode('"' .. c[1] .. '"'))  -- what decode refuses too
    end
  end)

  it("names the path of a nested string and of a key", function()
    assert.equal("state.notes.items[3]: invalid UTF-8 (byte 0xE9 at offset 5)",
                 encode_error({ items = { "a", "b", "abcde\233" } }, { root = "state.notes" }))
    assert.equal('value.a: key "caf\\xE9" is not valid UTF-8 (byte 0xE9 at offset 3)',
                 encode_error({ a = { ["caf\233"] = 1 } }))
    assert.equal("value.items[3]: invalid UTF-8 (byte 0xE9 at offset 5)",
                 check({ items = { "a", "b", "abcde\233" } }))
    assert.equal("value: invalid UTF-8 (byte 0xFF at offset 0)", check("\255"))
  end)

  it("writes error messages that are UTF-8 themselves (bad bytes as \\xHH)", function()
    local msg = check({ ["k \195\169"] = { f = print } }, "state.caf\233")
    assert.equal('state.caf\\xE9["k \195\169"].f: function is not JSON-serialisable', msg)
    assert.is_string(encode(msg))
    msg = check({ ["k\255\n"] = 1 })
    assert.equal('value: key "k\\xFF\\n" is not valid UTF-8 (byte 0xFF at offset 1)', msg)
    assert.is_string(encode(msg))
    -- a quoted key cut at 40 bytes keeps its UTF-8 sequences whole
    local long = ("a"):rep(39) .. "\195\169zz"
    msg = check({ [long] = true, [1] = 1 })
    assert.truthy(msg:find('"' .. ("a"):rep(39) .. '..."', 1, true), msg)
    assert.is_string(encode(msg))
  end)

  it("writes valid UTF-8 as it is and escapes specials at every position", function()
    local specials = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\0"] = "\\u0000",
                       ["\31"] = "\\u001f", ["\127"] = "\127", ["\195\169"] = "\195\169",
                       ["\239\191\191"] = "\239\191\191", ["\244\143\191\191"] = "\244\143\191\191" }
    for sp, out in pairs(specials) do
      for i = 0, 17 do
        local s = ("x"):rep(i) .. sp .. ("y"):rep(17 - i)
        assert.equal('"' .. ("x"):rep(i) .. out .. ("y"):rep(17 - i) .. '"', encode(s))
        assert.equal(s, decode(encode(s)))
      end
    end
  end)

  it("finds a bad byte at every position around the 8-byte blocks", function()
    for i = 0, 17 do
      for _, pre in ipairs({ "", "\195\169", "\240\159\152\128" }) do
        local s = pre .. ("x"):rep(i) .. "\233" .. ("y\195\169"):rep(5)
        local msg = ("value: invalid UTF-8 (byte 0xE9 at offset %d)"):format(#pre + i)
        assert.equal(msg, encode_error(s))
        assert.equal(msg, check(s))
        assert.equal(s, decode(encode(s:sub(1, #pre + i))) .. s:sub(#pre + i + 1))
      end
    end
  end)

  it("replaces each bad byte with U+FFFD with invalid_utf8 = 'replace'", function()
    local R = "\239\191\189"
    local s = encode({ ["k\233"] = { "caf\233", "\192\175", "ok \195\169" } }, { invalid_utf8 = "replace" })
    assert.equal('{"k' .. R .. '":["caf' .. R .. '","' .. R .. R .. '","ok \195\169"]}', s)
    assert.is_table(decode(s))
    assert.equal('"' .. R .. 'abcdefgh"', encode("\255abcdefgh", { invalid_utf8 = "replace" }))
    -- other problems are still errors, named as usual
    assert.equal("value[2]: function is not JSON-serialisable",
                 encode_error({ "\233", print }, { invalid_utf8 = "replace" }))
    assert.equal("value: invalid UTF-8 (byte 0xE9 at offset 3)",
                 encode_error("caf\233", { invalid_utf8 = "error" }))
  end)

  it("rejects an invalid_utf8 option other than 'error' or 'replace'", function()
    assert.has_error(function() encode("x", { invalid_utf8 = "ignore" }) end)
    assert.has_error(function() encode("x", { invalid_utf8 = true }) end)
  end)
end)

describe("json.MAX_DEPTH", function()
  it("is the codec's nesting limit", function()
    assert.equal(require("weft.core.json").MAX_DEPTH, json.MAX_DEPTH)
    assert.equal(1000, json.MAX_DEPTH)
    assert.is_nil(decode(("["):rep(json.MAX_DEPTH + 1) .. ("]"):rep(json.MAX_DEPTH + 1)))
  end)
end)
