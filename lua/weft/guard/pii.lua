--- weft.guard.pii — the PII detectors of the guardrails layer
-- (docs/guardrails.md, "Built-in detectors"): emails, phone numbers,
-- payment card numbers, IBANs and national ids found in text, with byte
-- positions; masking; and the `pii` guard (`weft.guard.pii{...}`).
--
-- Every detector reads the text once, left to right, and bounds the work
-- it does at one position (an e-mail's parts are at most 64 + 253 bytes, a
-- digit run is cut into groups once), so the time is linear in the text
-- whatever it holds (long digit runs, thousands of '@'). Structure and
-- checksums decide, never a bare digit count: cards need the Luhn check and
-- a known issuer range, IBANs their country's length and the mod-97 check,
-- national ids their own rules (SSN ranges, NIR key, NINO prefixes, the
-- DNI/NIE control letter), phone numbers an international prefix or a
-- national grouping (FR, US, UK, DE); a run of digits without separators
-- counts as a phone number only after a word such as "phone" or "tel".
-- Uses weft.check (options) and weft.guard (the guard object, lazily).
local check = require "weft.check"

local type, ipairs, pairs, next, error, tonumber, tostring, unpack, sort, concat =
  type, ipairs, pairs, next, error, tonumber, tostring, unpack, table.sort, table.concat
local byte, sub, find, gsub, lower, upper, sformat, max =
  string.byte, string.sub, string.find, string.gsub, string.lower, string.upper, string.format, math.max

local _M = {}

--- The kinds, in the order reasons list them.
_M.KINDS = { "email", "phone", "card", "iban", "national_id" }

--- The default mask labels, by kind.
_M.LABELS = { email = "[EMAIL]", phone = "[PHONE]", card = "[CARD]", iban = "[IBAN]", national_id = "[NATIONAL_ID]" }

-- When two findings overlap, the kind with the smaller number is kept.
local PRIORITY = { email = 1, iban = 2, card = 3, national_id = 4, phone = 5 }

local KIND_SET = {}
for _, k in ipairs(_M.KINDS) do KIND_SET[k] = true end

-- Byte classes.
local function is_digit(b) return b ~= nil and b >= 48 and b <= 57 end
local function is_alnum(b)
  return b ~= nil and ((b >= 48 and b <= 57) or (b >= 65 and b <= 90) or (b >= 97 and b <= 122))
end

local function is_alpha(b) return b ~= nil and ((b >= 65 and b <= 90) or (b >= 97 and b <= 122)) end
local function is_upper(b) return b ~= nil and b >= 65 and b <= 90 end

-- True when the finding starting at p is not glued to what precedes it
-- (a letter, a digit, '_', '#', '@', or ".-/" after a digit: an id, an
-- order number, a version).
local function ok_before(text, p)
  local b = byte(text, p - 1)
  if b == nil then return true end
  if is_alnum(b) or b == 95 or b == 35 or b == 64 then return false end
  if (b == 46 or b == 45 or b == 47) and is_digit(byte(text, p - 2)) then return false end
  return true
end

-- True when the finding ending at q is not glued to what follows (a letter
-- or digit, '_', '@', '%', or ".-/:," before a digit: a decimal, a time,
-- a longer id).
local function ok_after(text, q)
  local b = byte(text, q + 1)
  if b == nil then return true end
  if is_alnum(b) or b == 95 or b == 64 or b == 37 then return false end
  if (b == 46 or b == 45 or b == 47 or b == 58 or b == 44) and is_digit(byte(text, q + 2)) then return false end
  return true
end

-- Words after which a run of digits without separators is a phone number.
local PHONE_WORDS = { "tel", "tél", "phone", "call", "mobile", "cell", "portable", "telefon", "handy", "fax",
                      "whatsapp", "sms", "ring", "appel", "anruf", "dial" }
-- Words after which nine digits without separators are a US SSN.
local SSN_WORDS = { "ssn", "social security" }

-- True when one of words is among the 32 bytes before position p.
local function context(text, p, words)
  local before = lower(sub(text, max(1, p - 32), p - 1))
  for _, w in ipairs(words) do
    if find(before, w, 1, true) then return true end
  end
  return false
end

---------------------------------------------------------------- checksums

--- True when the digit string passes the Luhn check.
function _M.luhn(digits)
  local sum, dbl = 0, false
  for i = #digits, 1, -1 do
    local d = byte(digits, i) - 48
    if dbl then d = d * 2; if d > 9 then d = d - 9 end end
    sum = sum + d
    dbl = not dbl
  end
  return sum % 10 == 0
end

-- Card issuer ranges: {prefix low, prefix high, lengths...} on the first
-- digits (Visa, Mastercard, Amex, Discover, Diners, JCB, UnionPay,
-- Maestro, Mir).
local IIN = {
  { 4, 4, 13, 16, 19 },                    -- Visa
  { 51, 55, 16 }, { 2221, 2720, 16 },      -- Mastercard
  { 34, 34, 15 }, { 37, 37, 15 },          -- American Express
  { 6011, 6011, 16, 17, 18, 19 }, { 644, 649, 16, 17, 18, 19 }, { 65, 65, 16, 17, 18, 19 },  -- Discover
  { 300, 305, 14, 15, 16, 17, 18, 19 }, { 36, 36, 14, 15, 16, 17, 18, 19 },
  { 38, 39, 16, 17, 18, 19 },              -- Diners Club
  { 3528, 3589, 16, 17, 18, 19 },          -- JCB
  { 62, 62, 16, 17, 18, 19 },              -- UnionPay
  { 50, 50, 13, 14, 15, 16, 17, 18, 19 }, { 56, 58, 13, 14, 15, 16, 17, 18, 19 },
  { 67, 67, 13, 14, 15, 16, 17, 18, 19 },  -- Maestro
  { 2200, 2204, 16, 17, 18, 19 },          -- Mir
}

--- True when the digit string has the length of a known issuer range.
function _M.card_issuer(digits)
  local n = #digits
  for _, r in ipairs(IIN) do
    local lo, hi = r[1], r[2]
    local w = #tostring(lo)
    local p = tonumber(sub(digits, 1, w))
    if p and p >= lo and p <= hi then
      for i = 3, #r do if r[i] == n then return true end end
    end
  end
  return false
end

-- IBAN length by country (ISO 13616 registry).
local IBAN_LEN = {
  AD = 24, AE = 23, AL = 28, AT = 20, AZ = 28, BA = 20, BE = 16, BG = 22, BH = 22, BR = 29, BY = 28, CH = 21,
  CR = 22, CY = 28, CZ = 24, DE = 22, DK = 18, DO = 28, EE = 20, EG = 29, ES = 24, FI = 18, FO = 18, FR = 27,
  GB = 22, GE = 22, GI = 23, GL = 18, GR = 27, GT = 28, HR = 21, HU = 28, IE = 22, IL = 23, IQ = 23, IS = 26,
  IT = 27, JO = 30, KW = 30, KZ = 20, LB = 28, LC = 32, LI = 21, LT = 20, LU = 20, LV = 21, MC = 27, MD = 24,
  ME = 22, MK = 19, MR = 27, MT = 31, MU = 30, NL = 18, NO = 15, PK = 24, PL = 28, PS = 29, PT = 25, QA = 29,
  RO = 24, RS = 22, SA = 24, SC = 31, SE = 24, SI = 19, SK = 24, SM = 27, ST = 25, SV = 28, TL = 23, TN = 24,
  TR = 26, UA = 29, VA = 22, VG = 24, XK = 20,
}

--- True when s (an IBAN without spaces, upper case) has its country's
-- length and passes the mod-97 check.
function _M.iban_valid(s)
  if IBAN_LEN[sub(s, 1, 2)] ~= #s then return false end
  local r = sub(s, 5) .. sub(s, 1, 4)
  local m = 0
  for i = 1, #r do
    local b = byte(r, i)
    if b >= 48 and b <= 57 then
      m = (m * 10 + b - 48) % 97
    elseif b >= 65 and b <= 90 then
      m = (m * 100 + b - 55) % 97
    else
      return false
    end
  end
  return m == 1
end

---------------------------------------------------------------- emails

-- Top-level "domains" that are file extensions (logo@2x.png).
local FILE_TLD = { png = true, jpg = true, jpeg = true, gif = true, svg = true, webp = true, ico = true, bmp = true,
                   tif = true, tiff = true, avif = true }

local function local_byte(b)
  return is_alnum(b) or b == 46 or b == 95 or b == 37 or b == 43 or b == 45
end
local function domain_byte(b) return is_alnum(b) or b == 46 or b == 45 end

-- Append the e-mails of text to out ({kind, first, last}).
local function find_emails(text, out)
  local pos, n = 1, #text
  while true do
    local at = find(text, "@", pos, true)
    if not at then return end
    pos = at + 1
    -- local part: at most 64 bytes back (it never crosses another '@')
    local ls = at
    while ls > 1 and at - ls < 65 and local_byte(byte(text, ls - 1)) do ls = ls - 1 end
    while ls < at and byte(text, ls) == 46 do ls = ls + 1 end -- no leading dot
    -- domain: at most 253 bytes on
    local de = at
    while de < n and de - at < 254 and domain_byte(byte(text, de + 1)) do de = de + 1 end
    local raw_end = de
    while de > at and (byte(text, de) == 46 or byte(text, de) == 45) do de = de - 1 end -- a sentence's dot
    local ok = ls < at and at - ls <= 64 and de > at and not local_byte(byte(text, ls - 1))
      and not domain_byte(byte(text, raw_end + 1)) and byte(text, ls - 1) ~= 47 -- example.com/@handle
    if ok then
      local domain = sub(text, at + 1, de)
      local tld = domain:match("%.(%a+)$")
      ok = tld ~= nil and #tld >= 2 and #tld <= 24 and not FILE_TLD[lower(tld)]
        and not find(domain, "..", 1, true) and not find(domain, "%.%-") and not find(domain, "%-%.")
        and byte(domain, 1) ~= 45
    end
    if ok then
      -- host:port or an ssh remote (git@host:org/repo) is not an address
      local a, b2 = byte(text, de + 1), byte(text, de + 2)
      if a == 58 and b2 ~= nil and b2 ~= 32 and b2 ~= 10 and b2 ~= 9 then ok = false end
    end
    if ok then
      -- the userinfo of a URL (https://user:pw@host) is not an address
      local i = ls - 1
      while i >= 1 and ls - i < 100 do
        local b = byte(text, i)
        if b == 32 or b == 10 or b == 9 or b == 13 or b == 60 or b == 34 or b == 39 or b == 40 then break end
        i = i - 1
      end
      if find(sub(text, i + 1, ls - 1), "://", 1, true) then ok = false end
    end
    if ok then
      out[#out + 1] = { kind = "email", first = ls, last = de }
      pos = de + 1
    end
  end
end

---------------------------------------------------------------- IBANs

-- The IBAN starting at s (two letters before a run of digits): its last
-- byte, or nil. Country code, check digits, then the BBAN, either
-- unbroken or in groups of four separated by one space.
local function iban_at(text, s)
  local want = IBAN_LEN[upper(sub(text, s, s + 1))]
  if not want or not ok_before(text, s) then return nil end
  local chars, count, i, spaced = {}, 0, s, nil
  while count < want do
    local b = byte(text, i)
    if b == nil then break end
    if is_alnum(b) then
      if b >= 97 then b = b - 32 end
      count = count + 1; chars[count] = b; i = i + 1
    elseif b == 32 and count % 4 == 0 and spaced ~= false then
      if not is_alnum(byte(text, i + 1)) then break end
      spaced = true; i = i + 1
    else
      break
    end
    if count == 4 and spaced == nil and byte(text, i) ~= 32 then spaced = false end
  end
  if count == want and ok_after(text, i - 1) and _M.iban_valid(string.char(unpack(chars))) then return i - 1 end
  return nil
end

---------------------------------------------------------------- national ids

-- FR NIR: sex, year, month, department (2A/2B for Corsica), commune,
-- order, key = 97 - (the 13 digits mod 97).
local function nir_valid(s)
  local sex, month, dept, key = sub(s, 1, 1), tonumber(sub(s, 4, 5)), sub(s, 6, 7), tonumber(sub(s, 14, 15))
  if sex ~= "1" and sex ~= "2" then return false end
  if not month or not ((month >= 1 and month <= 12) or (month >= 20 and month <= 42) or month >= 50) then
    return false
  end
  local body = sub(s, 1, 13)
  if dept == "2A" then body = sub(s, 1, 5) .. "19" .. sub(s, 8, 13)
  elseif dept == "2B" then body = sub(s, 1, 5) .. "18" .. sub(s, 8, 13)
  elseif not dept:match("^%d%d$") then return false end
  local n = tonumber(body)
  return n ~= nil and key ~= nil and key >= 1 and key <= 97 and 97 - n % 97 == key
end

-- UK NINO prefixes never allocated.
local NINO_BAD_PREFIX = { BG = true, GB = true, KN = true, NK = true, NT = true, TN = true, ZZ = true }

local function nino_valid(s)
  local a, b = sub(s, 1, 1), sub(s, 2, 2)
  if find("DFIQUV", a, 1, true) or find("DFIOQUV", b, 1, true) then return false end
  return not NINO_BAD_PREFIX[a .. b]
end

-- The id matching the anchored fixed-shape pattern (no open repetition)
-- at s and accepted by valid (given the id without spaces): its last
-- byte, or nil.
local function fixed_at(text, s, pattern, valid)
  local _, e = find(text, pattern, s)
  if e and ok_before(text, s) and ok_after(text, e) and valid((gsub(sub(text, s, e), " ", ""))) then return e end
  return nil
end

local NIR_AT = "^[12] ?%d%d ?%d%d ?%d[%dAB] ?%d%d%d ?%d%d%d ?%d%d"
local NINO_AT = "^%u%u ?%d%d ?%d%d ?%d%d ?[A-D]"

-- US SSN: area not 000, 666 or 900-999, group not 00, serial not 0000,
-- and not the two numbers published in advertising.
local function ssn_valid(area, group, serial)
  local a = tonumber(area)
  if a == 0 or a == 666 or a >= 900 or group == "00" or serial == "0000" then return false end
  local whole = area .. group .. serial
  return whole ~= "078051120" and whole ~= "219099999"
end

---------------------------------------------------------------- digit runs

-- Separators allowed inside a run of digit groups.
local SEP = "^[ %-%./()][ %-%./()]?[ %-%./()]?%d"

-- Cut the run of digit groups starting at s into G = {n, gs, ge, sep}
-- (sep[k] is the text between group k and group k+1).
local function digit_run(text, s)
  local gs, ge, seps, n = {}, {}, {}, 0
  local i = s
  while true do
    local _, e = find(text, "^%d+", i)
    n = n + 1
    gs[n], ge[n] = i, e
    local _, se = find(text, SEP, e + 1)
    if not se and byte(text, e + 1) == 194 and byte(text, e + 2) == 160 and is_digit(byte(text, e + 3)) then
      se = e + 3 -- a no-break space, as French typography groups numbers
    end
    if not se then break end
    seps[n] = sub(text, e + 1, se - 1)
    i = se
  end
  return { n = n, gs = gs, ge = ge, sep = seps }
end

-- The digits of groups i..j of G.
local function digits_of(text, G, i, j)
  local t = {}
  for k = i, j do t[#t + 1] = sub(text, G.gs[k], G.ge[k]) end
  return concat(t)
end

-- True when group j of G is the last one joined by sep (no further group
-- continues the number).
local function ends(G, j, sep)
  return j == G.n or G.sep[j] ~= sep
end

-- True when group i of G is the first one joined by sep (no group before
-- it is part of the number).
local function starts(G, i, sep)
  return i == 1 or G.sep[i - 1] ~= sep
end

local CARD_SHAPES = {
  { 4, 4, 4, 4 }, { 4, 4, 4, 4, 1 }, { 4, 4, 4, 4, 2 }, { 4, 4, 4, 4, 3 }, { 4, 4, 4, 1 }, { 4, 4, 4, 2 },
  { 4, 4, 4, 3 }, { 4, 6, 5 }, { 4, 6, 4 },
}

local function card_at(text, G, i)
  local gs, ge = G.gs, G.ge
  if not ok_before(text, gs[i]) then return nil end
  local len = ge[i] - gs[i] + 1
  if len >= 13 and len <= 19 then
    local d = sub(text, gs[i], ge[i])
    if ok_after(text, ge[i]) and _M.luhn(d) and _M.card_issuer(d) then return i end
    return nil
  end
  if len ~= 4 or i == G.n then return nil end
  local sep = G.sep[i]
  if sep ~= " " and sep ~= "-" then return nil end
  for _, shape in ipairs(CARD_SHAPES) do
    local j, fits = i + #shape - 1, true
    if j > G.n then fits = false end
    for k = 1, #shape do
      if not fits then break end
      local g = i + k - 1
      if ge[g] - gs[g] + 1 ~= shape[k] or (k < #shape and G.sep[g] ~= sep) then fits = false end
    end
    if fits and starts(G, i, sep) and ends(G, j, sep) and ok_after(text, ge[j]) then
      local d = digits_of(text, G, i, j)
      if _M.luhn(d) and _M.card_issuer(d) then return j end
    end
  end
  return nil
end

local DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"

-- ES DNI (8 digits and a control letter, "12345678Z" or "12345678-Z") and
-- NIE (X, Y or Z, 7 digits and the letter): the control letter is
-- DNI_LETTERS[number mod 23]. Returns the last byte and the first.
local function dni_at(text, G, i)
  if i ~= G.n then return nil end
  local gs, ge = G.gs, G.ge
  local len, first, prefix = ge[i] - gs[i] + 1, gs[i], ""
  if len == 7 then
    local x = byte(text, first - 1)
    if x ~= 88 and x ~= 89 and x ~= 90 then return nil end
    prefix = tostring(x - 88)
    first = first - 1
  elseif len ~= 8 then
    return nil
  end
  if not ok_before(text, first) then return nil end
  local last = ge[i] + 1
  if byte(text, last) == 45 then last = last + 1 end
  local letter = byte(text, last)
  if not is_upper(letter) or is_alnum(byte(text, last + 1)) then return nil end
  local n = tonumber(prefix .. sub(text, gs[i], ge[i]))
  if byte(DNI_LETTERS, n % 23 + 1) ~= letter then return nil end
  return last, first
end

local function ssn_at(text, G, i)
  local gs, ge = G.gs, G.ge
  if not ok_before(text, gs[i]) then return nil end
  local len = ge[i] - gs[i] + 1
  if len == 9 then
    if ok_after(text, ge[i]) and context(text, gs[i], SSN_WORDS) then
      local d = sub(text, gs[i], ge[i])
      if ssn_valid(sub(d, 1, 3), sub(d, 4, 5), sub(d, 6, 9)) then return i end
    end
    return nil
  end
  if len ~= 3 or i + 2 > G.n then return nil end
  local sep = G.sep[i]
  if (sep ~= "-" and sep ~= " ") or G.sep[i + 1] ~= sep then return nil end
  if ge[i + 1] - gs[i + 1] ~= 1 or ge[i + 2] - gs[i + 2] ~= 3 then return nil end
  if not starts(G, i, sep) or not ends(G, i + 2, sep) or not ok_after(text, ge[i + 2]) then return nil end
  if ssn_valid(sub(text, gs[i], ge[i]), sub(text, gs[i + 1], ge[i + 1]), sub(text, gs[i + 2], ge[i + 2])) then
    return i + 2
  end
  return nil
end

local NBSP = "\194\160"

-- Separators of phone numbers.
local PHONE_SEP = { [" "] = true, ["-"] = true, ["."] = true, ["/"] = true, [" / "] = true, [") "] = true,
                    [")"] = true, [" ("] = true, ["("] = true, [" - "] = true, [")-"] = true, [NBSP] = true }

-- International: '+' (or 00 after a phone word) then 8 to 15 digits (a
-- "(0)" trunk prefix not counted). Returns the last group and the first byte.
local function phone_intl(text, G, i)
  local gs, ge = G.gs, G.ge
  local first, count, k = gs[i], 0, i
  if i == 1 and byte(text, gs[1] - 1) == 43 then
    first = gs[1] - 1
    if byte(text, first - 1) == 40 then first = first - 1 end -- (+33) 6 12 34 56 78
  elseif i == 1 and byte(text, gs[1] - 1) == 40 and byte(text, gs[1] - 2) == 43 then
    first = gs[1] - 2
  elseif sub(text, gs[i], gs[i] + 1) == "00" and ge[i] - gs[i] >= 2 and ge[i] - gs[i] <= 4 and i < G.n
      and context(text, gs[i], PHONE_WORDS) then
    count = -2 -- 0033 1 42 68 53 00: only after a word such as "call" (else 0042 0017 0001 is a phone)
  else
    return nil
  end
  -- a country code never starts with 0
  if not ok_before(text, first) or byte(text, gs[i] + (count == -2 and 2 or 0)) == 48 then return nil end
  local last
  while true do
    local glen = ge[k] - gs[k] + 1
    local trunk = glen == 1 and byte(text, gs[k]) == 48 and k > i and find(G.sep[k - 1] or "", "(", 1, true)
      and find(G.sep[k] or "", ")", 1, true)
    if not trunk then count = count + glen end
    if count > 15 then return nil end
    last = k
    if k == G.n or not PHONE_SEP[G.sep[k]] then break end
    -- stop before a group that would make the number too long and is
    -- joined differently (a date or time after the number)
    local nlen = ge[k + 1] - gs[k + 1] + 1
    if count + nlen > 15 then break end
    k = k + 1
  end
  if count < 8 or not ok_after(text, ge[last]) then return nil end
  if last < G.n and PHONE_SEP[G.sep[last]] then return nil end -- digits go on past 15
  return last, first
end

-- National with a trunk 0 (FR 06 12 34 56 78, UK 020 7946 0958, DE
-- 030 12345678, 089/1234567, (030) 1234567): a first group of 2 to 5
-- digits starting with 0[1-9], then groups joined by one separator (of 2
-- digits after a first group of 2, as in France; else of 3 or more), 10 to
-- 12 digits in all.
local function phone_trunk(text, G, i)
  local gs, ge = G.gs, G.ge
  local glen = ge[i] - gs[i] + 1
  if byte(text, gs[i]) ~= 48 or not is_digit(byte(text, gs[i] + 1)) or byte(text, gs[i] + 1) == 48 then
    return nil
  end
  local first = gs[i]
  if byte(text, first - 1) == 40 then first = first - 1 end
  if not ok_before(text, first) then return nil end
  if glen >= 10 and glen <= 12 then
    if ok_after(text, ge[i]) and (i == G.n or not PHONE_SEP[G.sep[i]]) and context(text, first, PHONE_WORDS) then
      return i, first
    end
    return nil
  end
  if glen > 5 then return nil end
  local count, k, sep2 = glen, i, nil
  while k < G.n do
    local s = G.sep[k]
    local good
    if k == i then good = PHONE_SEP[s] else good = s == sep2 or (sep2 == nil and (s == " " or s == "-" or s == "." or s == NBSP)) end
    local l = ge[k + 1] - gs[k + 1] + 1
    -- FR groups two by two; UK and DE area codes are followed by groups of 3+
    if not good or (glen == 2 and (l ~= 2 or count == 10)) or (glen > 2 and l < 3) or count + l > 12 then break end
    if k > i then sep2 = s end
    count = count + l
    k = k + 1
  end
  if k == i or count < 10 or not ok_after(text, ge[k]) then return nil end
  -- digits that go on with the same separator make it something else
  if k < G.n and G.sep[k] == (sep2 or G.sep[i]) then return nil end
  if not starts(G, i, sep2 or G.sep[i]) then return nil end
  return k, first
end

-- US: (415) 555-2671, 415-555-2671, 415.555.2671, 415 555 2671, with an
-- optional leading 1; area code and exchange start with 2-9.
local function phone_us(text, G, i)
  local gs, ge = G.gs, G.ge
  local first, k = gs[i], i
  local function len(g) return ge[g] - gs[g] + 1 end
  if len(k) == 1 and byte(text, gs[k]) == 49 and k < G.n and PHONE_SEP[G.sep[k]] then k = k + 1 end
  if k + 2 > G.n then
    if len(k) == 10 and k == i and ok_before(text, first) and ok_after(text, ge[k]) and ends(G, k, G.sep[k])
        and context(text, first, PHONE_WORDS) then
      local d = sub(text, gs[k], ge[k])
      if d:match("^[2-9]%d%d[2-9]") then return k, first end
    end
    return nil
  end
  if len(k) ~= 3 or len(k + 1) ~= 3 or len(k + 2) ~= 4 then return nil end
  local area, exch = sub(text, gs[k], ge[k]), sub(text, gs[k + 1], ge[k + 1])
  if not area:match("^[2-9]") or not exch:match("^[2-9]") then return nil end
  local paren = byte(text, gs[k] - 1) == 40
  local s1, s2 = G.sep[k], G.sep[k + 1]
  if paren then
    if s1 ~= ")" and s1 ~= ") " and s1 ~= ")-" then return nil end
    if s2 ~= "-" and s2 ~= " " and s2 ~= "." then return nil end
    if k == i then first = gs[k] - 1 end
  elseif s1 ~= s2 or (s1 ~= "-" and s1 ~= "." and s1 ~= " ") then
    return nil
  end
  if not ok_before(text, first) or not ok_after(text, ge[k + 2]) or not ends(G, k + 2, s2)
      or (not paren and not starts(G, i, s1)) then
    return nil
  end
  return k + 2, first
end

local function phone_at(text, G, i)
  local j, first = phone_intl(text, G, i)
  if j then return j, first end
  j, first = phone_trunk(text, G, i)
  if j then return j, first end
  return phone_us(text, G, i)
end

-- Append what starts at the runs of digits of text: IBANs and NINOs (the
-- letters just before a run), cards, NIRs, SSNs and phone numbers (its
-- groups). Every kind but e-mail holds digits, so one byte loop looking
-- for digits drives them all (faster in LuaJIT than pattern scans).
local function find_runs(text, out, want)
  local pos, n, stretch_end = 1, #text, 0
  while true do
    local s = pos
    while s <= n do
      local b = byte(text, s)
      if b >= 48 and b <= 57 then break end
      s = s + 1
    end
    if s > n then return end
    local done
    if is_alpha(byte(text, s - 1)) and is_alpha(byte(text, s - 2)) then
      if want.iban then
        done = iban_at(text, s - 2)
        if done then out[#out + 1] = { kind = "iban", first = s - 2, last = done } end
      end
      if not done and want.national_id and is_upper(byte(text, s - 1)) then
        done = fixed_at(text, s - 2, NINO_AT, nino_valid)
        if done then out[#out + 1] = { kind = "national_id", first = s - 2, last = done } end
      end
    elseif want.national_id and byte(text, s - 1) == 32 and is_upper(byte(text, s - 2)) and is_upper(byte(text, s - 3)) then
      done = fixed_at(text, s - 3, NINO_AT, nino_valid)
      if done then out[#out + 1] = { kind = "national_id", first = s - 3, last = done } end
    end
    local short
    if not done and s >= stretch_end then
      -- every kind found here has 7 digits or more: skip shorter stretches
      -- of digits and separators (times, amounts, short ids) at once; a
      -- longer one is scanned once (stretch_end), its runs one by one
      local e, digits = s, 0
      while e <= n do
        local b = byte(text, e)
        if b >= 48 and b <= 57 then
          digits = digits + 1
        elseif not (b == 32 or b == 45 or b == 46 or b == 47 or b == 40 or b == 41 or b == 194 or b == 160) then
          break
        end
        e = e + 1
      end
      local nb = byte(text, e)
      if digits < 7 and nb ~= 65 and nb ~= 66 then short = e end -- not a Corsican NIR (2A, 2B)
      stretch_end = e
    end
    if done then
      pos = done + 1
    elseif short then
      pos = short
    else
      local G = digit_run(text, s)
      local gs, ge = G.gs, G.ge
      local stop, i = ge[G.n], 1
      while i <= G.n do
        local j, first, kind, last
        if want.card then j = card_at(text, G, i); kind = "card" end
        if not j and want.national_id then
          last = fixed_at(text, gs[i], NIR_AT, nir_valid) -- Corsica's 2A/2B go past the run
          if not last then j = ssn_at(text, G, i) end
          if not j and not last then last, first = dni_at(text, G, i) end
          kind = "national_id"
        end
        if not j and not last and want.phone then j, first = phone_at(text, G, i); kind = "phone" end
        if j or last then
          last = last or ge[j]
          out[#out + 1] = { kind = kind, first = first or gs[i], last = last }
          if last > stop then stop = last end
          i = i + 1
          while i <= G.n and gs[i] <= last do i = i + 1 end
        else
          i = i + 1
        end
      end
      pos = stop + 1
    end
  end
end

---------------------------------------------------------------- API

-- The set of kinds (nil = all); raises at level naming an unknown kind.
local function kind_set(kinds, what, level)
  if kinds == nil then return KIND_SET end
  if type(kinds) ~= "table" then error(what .. ": kinds must be a list of kind names, got " .. type(kinds), level + 1) end
  local set = {}
  for _, k in ipairs(kinds) do
    if not KIND_SET[k] then check.unknown(what, "kind", k, _M.KINDS, level + 1) end
    set[k] = true
  end
  if next(set) == nil then error(what .. ": kinds is empty (give kind names, or nil for all)", level + 1) end
  return set
end

local function by_position(a, b)
  if a.first ~= b.first then return a.first < b.first end
  return PRIORITY[a.kind] < PRIORITY[b.kind]
end

-- The findings of text for the set of kinds (sorted, non-overlapping).
local function scan(text, set)
  local all = {}
  if set.email then find_emails(text, all) end
  if set.card or set.phone or set.national_id or set.iban then find_runs(text, all, set) end
  sort(all, by_position)
  local out, last = {}, nil
  for _, f in ipairs(all) do
    if last == nil or f.first > last.last then
      out[#out + 1] = f; last = f
    elseif PRIORITY[f.kind] < PRIORITY[last.kind] then
      out[#out] = f; last = f -- the earlier finding overlapped a stronger one
    end
  end
  return out
end

--- The PII of text: a list of {kind, first, last} (byte positions,
-- sorted, non-overlapping) for the kinds asked (a list; nil = all).
function _M.find(text, kinds)
  if type(text) ~= "string" then error("weft.guard.pii.find: text must be a string, got " .. type(text), 2) end
  return scan(text, kind_set(kinds, "weft.guard.pii.find", 2))
end

-- Replace the findings of text with labels; returns text, counts.
local function apply(text, found, labels)
  local parts, counts, pos = {}, {}, 1
  for _, f in ipairs(found) do
    parts[#parts + 1] = sub(text, pos, f.first - 1)
    parts[#parts + 1] = labels[f.kind] or _M.LABELS[f.kind]
    counts[f.kind] = (counts[f.kind] or 0) + 1
    pos = f.last + 1
  end
  parts[#parts + 1] = sub(text, pos)
  return concat(parts), counts
end

--- Mask the PII of text: returns the text with each finding replaced by
-- its label (labels[kind], else LABELS) and the counts by kind.
function _M.mask(text, kinds, labels)
  if type(text) ~= "string" then error("weft.guard.pii.mask: text must be a string, got " .. type(text), 2) end
  if labels ~= nil and type(labels) ~= "table" then
    error("weft.guard.pii.mask: labels must be a table kind -> label, got " .. type(labels), 2)
  end
  return apply(text, scan(text, kind_set(kinds, "weft.guard.pii.mask", 2)), labels or _M.LABELS)
end

--- "2 email, 1 card": counts by kind in the order of KINDS.
function _M.summary(counts)
  local parts = {}
  for _, k in ipairs(_M.KINDS) do
    if counts[k] then parts[#parts + 1] = sformat("%d %s", counts[k], k) end
  end
  return concat(parts, ", ")
end

local STAGES = { type = "table", expect = 'a list of stages ("input", "output", "tool_call", "tool_result")' }

_M.OPTIONS = check.spec("weft.guard.pii", { properties = {
  kinds = { type = "table", expect = 'a list of kinds ("email", "phone", "card", "iban", "national_id")' },
  action = { type = "string", enum = { "mask", "block" }, aliases = { "mode", "on_match" } },
  mask = { type = "table", expect = 'a table kind -> label, e.g. {email = "[EMAIL]"}', aliases = { "labels" } },
  stages = STAGES,
  name = { type = "string", minLength = 1 },
} })

--- The pii guard: new{kinds = {...} (default all), action = "mask" |
-- "block" (default "mask"), mask = {kind = label}, stages, name = "pii"}.
-- Masking modifies the string (reason "2 email, 1 card masked"); blocking
-- names kinds and counts ("pii found: 1 card"), never the text.
function _M.new(opts)
  opts = check.options(_M.OPTIONS, opts, 2)
  local set = kind_set(opts.kinds, "weft.guard.pii", 2)
  local labels = {}
  for k, v in pairs(_M.LABELS) do labels[k] = v end
  for k, v in pairs(opts.mask or {}) do
    if not KIND_SET[k] then check.unknown("weft.guard.pii: mask", "kind", k, _M.KINDS, 2) end
    if type(v) ~= "string" then error(sformat("weft.guard.pii: mask.%s must be a string, got %s", k, type(v)), 2) end
    labels[k] = v
  end
  local block = opts.action == "block"
  return require("weft.guard").new {
    name = opts.name or "pii",
    stages = opts.stages,
    check = function(_, value)
      if type(value) ~= "string" then return nil end
      local found = scan(value, set)
      if found[1] == nil then return nil end
      if block then
        local counts = {}
        for _, f in ipairs(found) do counts[f.kind] = (counts[f.kind] or 0) + 1 end
        return { action = "block", reason = "pii found: " .. _M.summary(counts) }
      end
      local masked, counts = apply(value, found, labels)
      return { action = "modify", value = masked, reason = _M.summary(counts) .. " masked" }
    end,
  }
end

return _M
