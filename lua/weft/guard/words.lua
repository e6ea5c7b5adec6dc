--- weft.guard.words — the word-list content filter of the guardrails layer
-- (docs/guardrails.md, "Built-in detectors"): finds listed words and
-- phrases in text, whole words only and ignoring case (ASCII, Latin-1,
-- Latin Extended-A, Greek and Cyrillic letters fold; other scripts match
-- as written), in UTF-8 text; masks them or blocks the value. With
-- `leet = true`, digits and signs standing for letters (0 o, 1 i/l, 3 e,
-- 4 a, 5 s, 7 t, @ a, $ s) are read as those letters. Zero-width
-- characters inside a word do not hide it.
--
-- The default list (DEFAULT, used when neither list nor file is given) is
-- a small profanity list in English, French, German and Spanish; `file`
-- reads one word or phrase per line, `#` starting a comment.
-- Uses weft.check (options) and weft.guard (the guard object, lazily).
local check = require "weft.check"

local type, ipairs, error, pcall, tostring = type, ipairs, error, pcall, tostring
local sformat, concat = string.format, table.concat
local byte, char, sub, gsub, gmatch, lower, find = string.byte, string.char, string.sub, string.gsub,
  string.gmatch, string.lower, string.find

local _M = {}

--- The default list: profanity in English, French, German and Spanish.
_M.DEFAULT = {
  -- English
  "fuck", "fucks", "fucked", "fucker", "fuckers", "fucking", "motherfucker", "motherfuckers", "fuckoff",
  "shit", "shits", "shitty", "bullshit", "horseshit", "bitch", "bitches", "asshole", "assholes", "arsehole",
  "bastard", "bastards", "cunt", "cunts", "dickhead", "wanker", "wankers", "twat", "bollocks", "prick",
  "pussy", "slut", "whore", "son of a bitch", "piece of shit",
  -- French
  "merde", "putain", "connard", "connards", "connasse", "salope", "salopes", "enculé", "enculés", "encule",
  "fils de pute", "pute", "bordel de merde", "ta gueule", "nique ta mère",
  -- German
  "scheiße", "scheisse", "arschloch", "arschlöcher", "wichser", "fotze", "hurensohn", "verdammte scheiße",
  -- Spanish
  "mierda", "puta", "puto", "gilipollas", "cabrón", "coño", "hijo de puta", "joder",
}

-- Case folding that keeps byte lengths (so positions in the folded text
-- are positions in the text): two-byte UTF-8 capitals to small letters.
local function fold2(c)
  local a, b = byte(c, 1, 2)
  if a == 195 then                                   -- Latin-1 À-Þ (not ×)
    if b >= 128 and b <= 158 and b ~= 151 then return char(a, b + 32) end
  elseif a == 196 or a == 197 then                   -- Latin Extended-A pairs
    local cp = (a - 192) * 64 + (b - 128)
    if (cp >= 0x100 and cp <= 0x137 and cp % 2 == 0) or (cp >= 0x139 and cp <= 0x148 and cp % 2 == 1)
        or (cp >= 0x14A and cp <= 0x177 and cp % 2 == 0) or (cp >= 0x179 and cp <= 0x17E and cp % 2 == 1) then
      cp = cp + 1
      return char(192 + math.floor(cp / 64), 128 + cp % 64)
    end
  elseif a == 206 then                               -- Greek Α-Ω
    if b >= 145 and b <= 159 then return char(206, b + 32) end
    if b >= 160 and b <= 169 and b ~= 162 then return char(207, b - 32) end
  elseif a == 207 then                               -- final sigma as sigma
    if b == 130 then return char(207, 131) end
  elseif a == 208 then                               -- Cyrillic Ѐ-Я
    if b >= 128 and b <= 143 then return char(209, b + 16) end
    if b >= 144 and b <= 159 then return char(208, b + 32) end
    if b >= 160 and b <= 175 then return char(209, b - 32) end
  end
  return c
end

-- Marks a zero-width character inside a word (kept as part of it).
local ZW = "\127"

-- The text prepared for matching, byte for byte as long as text: case
-- folded, punctuation and spaces (ASCII and Unicode) made blanks,
-- zero-width characters made ZW bytes.
local function prepare(text)
  local t = lower(text)
  t = gsub(t, "[\195\196\197\206\207\208][\128-\191]", fold2)
  t = gsub(t, "\226\128[\139-\141]", "\127\127\127")              -- U+200B-U+200D
  t = gsub(t, "\226\129\160", "\127\127\127")                    -- U+2060
  t = gsub(t, "\239\187\191", "\127\127\127")                    -- U+FEFF
  t = gsub(t, "\194[\128-\191]", "  ")                           -- U+0080-U+00BF
  t = gsub(t, "\195[\151\183]", "  ")                            -- × ÷
  t = gsub(t, "\226[\128-\131][\128-\191]", "   ")               -- general punctuation
  t = gsub(t, "\227\128[\128-\191]", "   ")                      -- CJK punctuation
  t = gsub(t, "[\240-\244][\128-\191][\128-\191][\128-\191]", "    ") -- emoji, other planes
  return t
end

-- Word bytes: letters, digits, UTF-8 sequences, ZW; with leet also @ $.
local WORD = "()([%w\127-\255]+)()"
local WORD_LEET = "()([%w\127-\255@%$]+)()"

local LEET = { ["0"] = "o", ["1"] = "i", ["3"] = "e", ["4"] = "a", ["5"] = "s", ["7"] = "t", ["@"] = "a",
               ["$"] = "s" }
local LEET_L = { ["1"] = "l" }

-- The words of prepared text t: a list of {first, last, key}.
local function tokens(t, leet)
  local out = {}
  for s, w, e in gmatch(t, leet and WORD_LEET or WORD) do
    if find(w, ZW, 1, true) then w = gsub(w, ZW, "") end
    if w ~= "" then out[#out + 1] = { s, e - 1, w } end
  end
  return out
end

--- A matcher of the words and phrases of list (strings):
-- compile(list, {leet}) -> matcher for find.
function _M.compile(list, opts)
  if type(list) ~= "table" then error("weft.guard.words.compile: list must be a list of strings, got " .. type(list), 2) end
  local m = { words = {}, phrases = {}, leet = opts and opts.leet == true, size = 0 }
  for i, entry in ipairs(list) do
    if type(entry) ~= "string" then
      error(sformat("weft.guard.words: list[%d] must be a string, got %s", i, type(entry)), 2)
    end
    local toks = tokens(prepare(entry), false)
    if #toks == 1 then
      m.words[toks[1][3]] = true
      m.size = m.size + 1
    elseif #toks > 1 then
      local keys = {}
      for k, tk in ipairs(toks) do keys[k] = tk[3] end
      local first = keys[1]
      m.phrases[first] = m.phrases[first] or {}
      local l = m.phrases[first]
      l[#l + 1] = keys
      m.size = m.size + 1
    end
  end
  return m
end

-- The keys of a word read with leet substitutions (the word itself first).
local function leet_keys(w)
  if not find(w, "[0134579@%$]") then return { w } end
  local a = gsub(w, "[0134579@%$]", LEET)
  local b = gsub(gsub(w, "1", LEET_L), "[0134579@%$]", LEET)
  return { w, a, b }
end

-- True when token tk is listed word key (with leet variants).
local function key_of(m, tk)
  if not m.leet then return m.words[tk[3]] and tk[3] or nil, { tk[3] } end
  local keys = leet_keys(tk[3])
  for _, k in ipairs(keys) do if m.words[k] then return k, keys end end
  return nil, keys
end

--- The listed words and phrases of text: a list of {first, last} (byte
-- positions, in order) for the matcher m (compile()) or a list of words.
function _M.find(text, m)
  if type(text) ~= "string" then error("weft.guard.words.find: text must be a string, got " .. type(text), 2) end
  if type(m) ~= "table" then
    error("weft.guard.words.find: expects a matcher (weft.guard.words.compile) or a list of words, got " .. type(m), 2)
  end
  if m.words == nil then
    local ok, c = pcall(_M.compile, m)
    if not ok then error(c, 2) end
    m = c
  end
  local toks = tokens(prepare(text), m.leet)
  local out, i, n = {}, 1, #toks
  while i <= n do
    local tk = toks[i]
    local hit, keys = key_of(m, tk)
    local last = hit and i or nil
    -- a phrase starting here (the longest wins)
    for _, k in ipairs(keys) do
      for _, ph in ipairs(m.phrases[k] or {}) do
        local j, ok = i, true
        for p = 2, #ph do
          j = j + 1
          local t2 = toks[j]
          if not t2 then ok = false; break end
          local _, ks = key_of(m, t2)
          local found = false
          for _, kk in ipairs(ks) do if kk == ph[p] then found = true; break end end
          if not found then ok = false; break end
        end
        if ok and (last == nil or j > last) then last = j end
      end
    end
    if last then
      out[#out + 1] = { first = tk[1], last = toks[last][2] }
      i = last + 1
    else
      i = i + 1
    end
  end
  return out
end

--- The entries of a list file (one word or phrase per line, `#` starts a
-- comment); returns the list or nil, err naming the file.
function _M.load(path)
  if type(path) ~= "string" then error("weft.guard.words.load: path must be a string, got " .. type(path), 2) end
  local f, err = io.open(path, "rb")
  if not f then return nil, "weft.guard.words: cannot read word list: " .. tostring(err), "io" end
  local s = f:read("*a")
  f:close()
  if sub(s, 1, 3) == "\239\187\191" then s = sub(s, 4) end
  local list = {}
  for line in gmatch(s, "[^\r\n]+") do
    line = line:gsub("#.*$", ""):match("^%s*(.-)%s*$")
    if line ~= "" then list[#list + 1] = line end
  end
  return list
end

_M.OPTIONS = check.spec("weft.guard.words", { properties = {
  list = { type = "table", expect = "a list of words or phrases", aliases = { "words", "blocklist" } },
  file = { type = "string", minLength = 1, expect = "a path (one word per line, # comments)", aliases = { "path" } },
  action = { type = "string", enum = { "mask", "block" }, aliases = { "mode", "on_match" } },
  mask = { type = "string", aliases = { "label", "replacement" } },
  leet = { type = "boolean" },
  stages = { type = "table", expect = 'a list of stages ("input", "output", "tool_call", "tool_result")' },
  name = { type = "string", minLength = 1 },
} })

--- The words guard: new{list = {...} | file = path (default DEFAULT),
-- action = "mask" | "block" (default "mask"), mask = "***", leet = false,
-- stages, name = "words"}. Reasons give counts only ("2 listed words
-- masked", "1 listed word found"), never the words.
function _M.new(opts)
  opts = check.options(_M.OPTIONS, opts, 2)
  if opts.list and opts.file then error("weft.guard.words: give list or file, not both", 2) end
  local list = opts.list
  if opts.file then
    local l, err = _M.load(opts.file)
    if not l then error(err, 2) end
    list = l
  end
  local ok, m = pcall(_M.compile, list or _M.DEFAULT, { leet = opts.leet })
  if not ok then error(m, 2) end
  if m.size == 0 then
    error("weft.guard.words: the word list " .. (opts.file and ("'" .. opts.file .. "' ") or "") .. "is empty", 2)
  end
  local block, label = opts.action == "block", opts.mask or "***"
  return require("weft.guard").new {
    name = opts.name or "words",
    stages = opts.stages,
    check = function(_, value)
      if type(value) ~= "string" then return nil end
      local found = _M.find(value, m)
      local n = #found
      if n == 0 then return nil end
      local noun = n == 1 and "listed word" or "listed words"
      if block then return { action = "block", reason = sformat("%d %s found", n, noun) } end
      local parts, pos = {}, 1
      for _, f in ipairs(found) do
        parts[#parts + 1] = sub(value, pos, f.first - 1)
        parts[#parts + 1] = label
        pos = f.last + 1
      end
      parts[#parts + 1] = sub(value, pos)
      return { action = "modify", value = concat(parts), reason = sformat("%d %s masked", n, noun) }
    end,
  }
end

return _M
