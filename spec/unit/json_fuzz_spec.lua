-- spec/unit/json_fuzz_spec.lua — property tests of weft.json on values from
-- a seeded (deterministic) generator: nested arrays and objects (empty ones
-- with and without the markers), strings of random bytes (valid UTF-8 of
-- every length, invalid UTF-8: latin-1, lone continuation bytes, overlong
-- forms, CESU-8 surrogates, code points above U+10FFFF, cut sequences; NUL,
-- control characters, quotes, backslashes), numbers (-0, huge, tiny and
-- subnormal, integers near 2^53, random doubles, NaN and infinities).
-- Properties: encode accepts v exactly when v holds no invalid UTF-8 and no
-- NaN/infinity, and then decode(encode(v)) equals v; otherwise encode's
-- error is check's; the replacing mode always writes what decode reads, with
-- each bad byte as U+FFFD; whatever decode accepts (random mutations of
-- documents included) encodes again and reads back the same.
-- The oracle (utf8_ok, replaced) is a plain reading of RFC 3629's table,
-- independent of the C codec. Requires only weft.json.
local json = require "weft.json"

local encode, decode, check, null = json.encode, json.decode, json.check, json.null
local char, byte, concat, floor = string.char, string.byte, table.concat, math.floor
local random, randomseed = math.random, math.randomseed

local SEED = tonumber(os.getenv("WEFT_JSON_FUZZ_SEED")) or 20261204
local CASES = tonumber(os.getenv("WEFT_JSON_FUZZ_CASES")) or 3000
local FFFD = "\239\191\189"

-- ---------------------------------------------------------------------------
-- oracle

-- Length of the well-formed UTF-8 sequence at i of s (RFC 3629, table 3-7
-- of Unicode), or nil.
local function seq_at(s, i)
  local c = byte(s, i)
  if c < 0x80 then return 1 end
  local c1, c2, c3 = byte(s, i + 1), byte(s, i + 2), byte(s, i + 3)
  local function cont(x) return x and x >= 0x80 and x <= 0xBF end
  if c >= 0xC2 and c <= 0xDF then return cont(c1) and 2 or nil end
  if c == 0xE0 then return c1 and c1 >= 0xA0 and c1 <= 0xBF and cont(c2) and 3 or nil end
  if (c >= 0xE1 and c <= 0xEC) or c == 0xEE or c == 0xEF then return cont(c1) and cont(c2) and 3 or nil end
  if c == 0xED then return c1 and c1 >= 0x80 and c1 <= 0x9F and cont(c2) and 3 or nil end
  if c == 0xF0 then return c1 and c1 >= 0x90 and c1 <= 0xBF and cont(c2) and cont(c3) and 4 or nil end
  if c >= 0xF1 and c <= 0xF3 then return cont(c1) and cont(c2) and cont(c3) and 4 or nil end
  if c == 0xF4 then return c1 and c1 >= 0x80 and c1 <= 0x8F and cont(c2) and cont(c3) and 4 or nil end
  return nil
end

-- s with each byte that does not begin a well-formed sequence replaced by
-- U+FFFD; and whether s was well-formed.
local function replaced(s)
  local out, i, ok = {}, 1, true
  while i <= #s do
    local n = seq_at(s, i)
    if n then
      out[#out + 1] = s:sub(i, i + n - 1)
      i = i + n
    else
      out[#out + 1] = FFFD
      ok = false
      i = i + 1
    end
  end
  return concat(out), ok
end

local function utf8_ok(s)
  local _, ok = replaced(s)
  return ok
end

-- Whether encode must accept v: no NaN/infinity, every string and key UTF-8.
local function encodable(v)
  local t = type(v)
  if t == "string" then return utf8_ok(v) end
  if t == "number" then return v == v and v ~= math.huge and v ~= -math.huge end
  if t == "table" then
    for k, x in pairs(v) do
      if type(k) == "string" and not utf8_ok(k) then return false end
      if not encodable(x) then return false end
    end
  end
  return true
end

-- v with strings and keys as the replacing mode writes them (colliding keys:
-- the last in bytewise order of the original keys wins, as decode keeps the
-- last member).
local function as_replaced(v)
  if type(v) == "string" then return (replaced(v)) end
  if type(v) ~= "table" then return v end
  local out = setmetatable({}, getmetatable(v))
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) ~= type(b) then return type(a) < type(b) end
    return a < b
  end)
  for _, k in ipairs(keys) do
    out[type(k) == "string" and (replaced(k)) or k] = as_replaced(v[k])
  end
  return out
end

-- Equality as JSON values: arrays vs objects (markers of empty tables
-- included), -0 vs 0, null.
local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then return a == b and (a ~= 0 or 1 / a == 1 / b) end
  if type(a) ~= "table" then return a == b end
  if json.is_array(a) ~= json.is_array(b) then return false end
  local n = 0
  for k, x in pairs(a) do
    n = n + 1
    if not same(x, b[k]) then return false end
  end
  for _ in pairs(b) do n = n - 1 end
  return n == 0
end

-- ---------------------------------------------------------------------------
-- generator

local function pick(list) return list[random(#list)] end

-- UTF-8 of code point cp (no checks: used for surrogates and > U+10FFFF too).
local function utf8_of(cp)
  if cp < 0x80 then return char(cp) end
  if cp < 0x800 then return char(0xC0 + floor(cp / 64), 0x80 + cp % 64) end
  if cp < 0x10000 then
    return char(0xE0 + floor(cp / 4096), 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  return char(0xF0 + floor(cp / 262144) % 8, 0x80 + floor(cp / 4096) % 64,
              0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
end

local PIECES = {
  function() return char(random(0x20, 0x7E)) end,                   -- printable ASCII
  function() return ("abcdefghijklmnop"):sub(1, random(16)) end,     -- ASCII runs (fast path)
  function() return char(random(0, 0x1F)) end,                       -- control, NUL
  function() return pick({ '"', "\\", "/", "\127", "\0" }) end,
  function() return utf8_of(random(0x80, 0x7FF)) end,
  function() return utf8_of(pick({ random(0x800, 0xD7FF), random(0xE000, 0xFFFF) })) end,
  function() return utf8_of(random(0x10000, 0x10FFFF)) end,
  function() return pick({ "\239\187\191", "\239\191\191", "\244\143\191\191", "\194\128" }) end,
  function() return char(random(0x80, 0xFF)) end,                    -- latin-1 / stray byte
  function() return char(random(0x80, 0xBF)) end,                    -- lone continuation
  function() return char(0xC0 + random(0, 1), random(0x80, 0xBF)) end, -- overlong, 2 bytes
  function() return char(0xE0, random(0x80, 0x9F), random(0x80, 0xBF)) end, -- overlong, 3 bytes
  function() return char(0xF0, random(0x80, 0x8F), random(0x80, 0xBF), random(0x80, 0xBF)) end,
  function() return utf8_of(random(0xD800, 0xDFFF)) end,             -- CESU-8 surrogate
  function() return utf8_of(random(0x110000, 0x1FFFFF)) end,         -- above U+10FFFF
  function() return utf8_of(random(0x800, 0x10FFFF)):sub(1, -2) end, -- cut short
  function() return char(random(0xF5, 0xFF)) end,
}

-- A random string: valid UTF-8 most of the time (clean = only valid pieces).
local function gen_string(clean)
  local n = random(0, 6)
  local parts = {}
  for i = 1, n do
    local k = clean and random(1, 8) or (random() < 0.85 and random(1, 8) or random(1, #PIECES))
    parts[i] = PIECES[k]()
  end
  return concat(parts)
end

local NUMBERS = {
  0, -0.0, 1, -1, 0.5, -2.5, 1e15, 2 ^ 53, -2 ^ 53, 2 ^ 53 - 1, 1 - 2 ^ 53, 2 ^ 53 + 2, 2 ^ 54,
  2 ^ 63, 1e16, 1e21, 1.7976931348623157e308, -1.7976931348623157e308, 2.2250738585072014e-308,
  4.9406564584124654e-324, -4.9406564584124654e-324, 0.1, 1 / 3, 123456.789, 1e-7,
}

local function gen_number()
  local r = random()
  if r < 0.4 then return pick(NUMBERS) end
  if r < 0.6 then return random(-1000000, 1000000) end
  if r < 0.7 then return 2 ^ 53 + random(-4, 4) * (random() < 0.5 and -1 or 1) end
  if r < 0.97 then -- a random double over the whole exponent range
    local m = random() + random() * 2 ^ -26
    return math.ldexp(random() < 0.5 and -m or m, random(-1074, 1023))
  end
  return pick({ 0 / 0, math.huge, -math.huge })
end

local gen_value

local function gen_table(depth, clean)
  local r = random()
  if r < 0.1 then return json.array() end
  if r < 0.2 then return random() < 0.5 and json.object() or {} end
  local n = random(1, 5)
  local t = {}
  if r < 0.55 then
    for i = 1, n do t[i] = gen_value(depth + 1, clean) end
    if random() < 0.3 then json.array(t) end
  else
    for _ = 1, n do t[gen_string(clean)] = gen_value(depth + 1, clean) end
    if random() < 0.3 then json.object(t) end
  end
  return t
end

-- A random value; clean: no invalid UTF-8 and no NaN/infinity.
function gen_value(depth, clean)
  local r = random()
  if depth < 4 and r < 0.35 then return gen_table(depth, clean) end
  if r < 0.6 then return gen_string(clean) end
  if r < 0.85 then
    local x = gen_number()
    while clean and (x ~= x or x == math.huge or x == -math.huge) do x = gen_number() end
    return x
  end
  if r < 0.93 then return random() < 0.5 end
  return null
end

-- s with a few random byte changes (flip, insert, delete).
local function mutate(s)
  for _ = 1, random(1, 3) do
    local i = random(1, #s + 1)
    local r = random()
    local b = random() < 0.5 and random(0, 255) or byte(pick({ '"', "\\", "[", "]", "{", "}", ",", ":", "u", "0", " " }))
    if r < 0.4 and i <= #s then s = s:sub(1, i - 1) .. char(b) .. s:sub(i + 1)
    elseif r < 0.7 then s = s:sub(1, i - 1) .. char(b) .. s:sub(i)
    else s = s:sub(1, i - 1) .. s:sub(i + 1) end
  end
  return s
end

-- ---------------------------------------------------------------------------

describe("json (seeded fuzz, seed " .. SEED .. ")", function()
  before_each(function() randomseed(SEED) end)

  it("encodes exactly the values that hold no invalid UTF-8 and no NaN/inf, and decodes them back", function()
    local accepted, refused = 0, 0
    for case = 1, CASES do
      local v = gen_value(0, false)
      local ok, s = pcall(encode, v)
      local want = encodable(v)
      assert(ok == want, ("case %d: encode %s: %s"):format(case, ok and "accepted" or "refused", tostring(s)))
      if ok then
        accepted = accepted + 1
        local back, err = decode(s)
        assert(err == nil, ("case %d: decode(encode(v)) failed: %s in %s"):format(case, tostring(err), s))
        assert(same(v, back), ("case %d: decode(encode(v)) differs from v: %s"):format(case, s))
        assert(encode(back) == s, ("case %d: not canonical: %s"):format(case, s))
        assert(check(v) == nil, ("case %d: check refuses what encode accepts"):format(case))
      else
        refused = refused + 1
        local msg = check(v)
        assert(msg ~= nil and s:sub(-#msg) == msg,
               ("case %d: encode's error %q is not check's %q"):format(case, s, tostring(msg)))
        assert(utf8_ok(msg), ("case %d: the error message is not UTF-8: %q"):format(case, msg))
      end
    end
    -- the generator exercises both sides
    assert.is_true(accepted > CASES / 5)
    assert.is_true(refused > CASES / 5)
  end)

  it("writes every bad byte as U+FFFD in replace mode, and what it writes reads back", function()
    for case = 1, CASES do
      local v = gen_value(0, false)
      local ok, s = pcall(encode, v, { invalid_utf8 = "replace" })
      local finite = encodable(as_replaced(v))
      assert(ok == finite, ("case %d: replace mode %s: %s"):format(case, ok and "accepted" or "refused", tostring(s)))
      if ok then
        local back, err = decode(s)
        assert(err == nil, ("case %d: %s in %s"):format(case, tostring(err), s))
        assert(same(as_replaced(v), back), ("case %d: replaced value differs: %s"):format(case, s))
      end
    end
  end)

  it("reads back clean values through pretty and unsorted output alike", function()
    for case = 1, floor(CASES / 3) do
      local v = gen_value(0, true)
      for _, opts in ipairs({ { pretty = true }, { sort_keys = false } }) do
        local back, err = decode(encode(v, opts))
        assert(err == nil, ("case %d: %s"):format(case, tostring(err)))
        assert(same(v, back), ("case %d: differs"):format(case))
      end
    end
  end)

  it("encodes whatever decode accepts (mutated documents) to the same value", function()
    local accepted = 0
    for case = 1, CASES do
      local doc = mutate(encode(gen_value(0, true)))
      local v, err = decode(doc)
      if err == nil then
        accepted = accepted + 1
        local ok, s = pcall(encode, v)
        assert(ok, ("case %d: decode accepted %q but encode refuses: %s"):format(case, doc, tostring(s)))
        assert(same(v, decode(s)), ("case %d: %q reads back differently"):format(case, doc))
      else
        assert(utf8_ok(err), ("case %d: decode's error is not UTF-8"):format(case))
      end
    end
    assert.is_true(accepted > 0)
  end)
end)
