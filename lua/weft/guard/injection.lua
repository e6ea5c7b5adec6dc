--- weft.guard.injection — heuristics for text a model should not obey
-- (docs/guardrails.md, "Built-in detectors"): `score(text)` rates tool
-- results and retrieved text for prompt injection (instructions to ignore
-- earlier ones, role overrides, fake role markers, requests to reveal the
-- prompt or send data away, concealment, hidden text: zero-width, bidi and
-- Unicode tag characters, HTML comments with instructions, base64 blobs
-- that decode to such instructions); `code_score(text)` rates text for
-- malicious shell code (downloads piped to a shell, rm -rf of /, ~ or
-- system directories, fork bombs, reverse shells, disk wiping, encoded
-- commands run at once). Each rule adds its weight once; the result is the
-- score and the names of the rules that fired (never the text). The guard:
-- `new{threshold = 3, action = "block" | "mask", mode = "injection" |
-- "code"}`.
--
-- Rules look at bounded windows after anchor words, so the time is linear
-- in the text. They are heuristics: docs/guardrails.md lists what they miss.
-- Uses weft.check (options) and weft.guard (the guard object, lazily).
local check = require "weft.check"

local type, ipairs, pairs, error, tostring = type, ipairs, pairs, error, tostring
local byte, char, sub, gsub, find, lower, sformat, concat, min =
  string.byte, string.char, string.sub, string.gsub, string.find, string.lower, string.format, table.concat, math.min

local _M = {}

-- True when window w holds one of the plain strings of list.
local function any(w, list)
  for _, s in ipairs(list) do
    if find(w, s, 1, true) then return true end
  end
  return false
end

-- True when, after some occurrence of an anchor of anchors in t, the next
-- span bytes satisfy test(window) (the window starts at the anchor); with
-- word true the anchor must start a word.
local function after(t, anchors, span, test, word)
  for _, a in ipairs(anchors) do
    local pos = 1
    while true do
      local s = find(t, a, pos, true)
      if not s then break end
      if (not word or not find(sub(t, s - 1, s - 1), "[%w_%-%.]")) and test(sub(t, s, s + span)) then
        return true
      end
      pos = s + 1
    end
  end
  return false
end

---------------------------------------------------------------- injection

local EARLIER = { "previous", "prior", "above", "earlier", "preceding", "original", "initial", "system", "all ",
                  "any ", "your ", "those ", "these ", "précédent", "vorherig", "bisherig", "anteriores" }
local ORDERS = { "instruction", "prompt", "rule", "direction", "guideline", "directive", "message", "context",
                 "consigne", "anweisung", "instrucciones", "restriction", "policies", "policy" }

-- Rules on the text lower-cased with blanks collapsed: {name, weight,
-- fn(t, raw) -> fired}.
local RULES = {
  { "ignore previous instructions", 3, function(t)
    return after(t, { "ignore", "disregard", "forget", "override", "bypass", "oublie", "ignorez", "ignoriere",
                      "vergiss", "olvida" }, 60,
      function(w) return any(w, EARLIER) and any(w, ORDERS) end)
      or find(t, "forget everything", 1, true) ~= nil
  end },
  { "role override", 2, function(t)
    return any(t, { "you are now", "from now on you", "from now on, you", "you will now act", "pretend to be",
                    "pretend you are", "act as if you", "roleplay as", "role-play as", "new persona",
                    "developer mode", "dan mode", "do anything now", "jailbreak", "tu es maintenant",
                    "du bist jetzt", "no longer bound by", "without any restrictions", "unfiltered ai" })
  end },
  { "fake role marker", 3, function(t, raw)
    local l = lower(raw)
    return any(l, { "<|im_start|>", "<|im_end|>", "<|system|>", "<|assistant|>", "[inst]", "<<sys>>",
                    "### system", "### instruction", "<system>", "</system>", "[system]", "begin system prompt",
                    "end of system prompt", "</tool_result>", "</function_results>", "<|endoftext|>" })
  end },
  { "role label at a line start", 1, function(_, raw)
    local l = lower(raw)
    return find(l, "^%s*system: %a") ~= nil or find(l, "\n%s*system: %a") ~= nil
      or find(l, "\n%s*assistant: %a") ~= nil
  end },
  { "prompt leak request", 3, function(t)
    return after(t, { "reveal", "print", "show", "repeat", "output", "tell me", "leak", "display", "dump",
                      "what is", "what are" }, 50,
      function(w)
        return any(w, { "system prompt", "initial prompt", "your instructions", "hidden instructions",
                        "your prompt", "prompt above", "instructions above", "your rules", "original prompt" })
      end)
  end },
  { "exfiltration request", 3, function(t)
    return after(t, { "send", "post ", "upload", "forward", "exfiltrat", "transmit", "leak" }, 100,
      function(w)
        return any(w, { "password", "api key", "api_key", "apikey", "token", "secret", "credential", "private key",
                        "ssh key", ".env", "cookie", "conversation", "chat history", "system prompt",
                        "user data", "personal data", "environment variable" })
          and (any(w, { "http", "://", "webhook", "this url", "this address", "query string" })
               or find(w, "[%w_.]@[%w-]+%.%a") ~= nil)
      end)
      or after(t, { "![" }, 300, function(w)
        return find(w, "^!%[[^%]]*%]%(https?://[^%)%s]*%?[^%)%s]*=") ~= nil
      end)
  end },
  { "concealment request", 2, function(t)
    return any(t, { "do not tell the user", "don't tell the user", "do not mention this", "don't mention this",
                    "without telling the user", "without the user knowing", "do not inform the user",
                    "keep this secret from", "ne dis pas à l'utilisateur", "sag dem benutzer nicht",
                    "do not reveal these instructions", "hide this from the user" })
  end },
  { "tool or command request", 1, function(t)
    return after(t, { "call the", "invoke the", "use the", "run the", "execute the", "run this", "execute this" },
      40, function(w) return any(w, { " tool", " function", "command", "shell", "terminal", "code" }) end)
  end },
  { "address to the AI", 1, function(t)
    return any(t, { "note to ai", "note to the ai", "attention ai", "if you are an ai", "ai assistant reading",
                    "to the language model", "to any ai", "llm reading this", "ai agents reading", "dear ai" })
  end },
  { "zero-width characters", 2, function(_, raw)
    -- U+200B, U+2060-U+2064, U+FEFF past the first byte (not the joiners
    -- of emoji and Persian, nor the marks of right-to-left text)
    return find(raw, "\226\128\139") ~= nil or find(raw, "\226\129[\160-\164]") ~= nil
      or find(raw, "\239\187\191", 2, true) ~= nil
  end },
  { "bidi control characters", 2, function(_, raw)
    return find(raw, "\226\128[\170-\174]") ~= nil or find(raw, "\226\129[\166-\169]") ~= nil
  end },
  { "instructions in an HTML comment", 3, function(t)
    local pos = 1
    while true do
      local s = find(t, "<!--", pos, true)
      if not s then return false end
      local e = find(t, "-->", s + 4, true) or #t + 1
      local body = sub(t, s + 4, min(e - 1, s + 400))
      if any(body, { "ignore", "instruction", "you are", "you must", "assistant", " ai ", "ai:", "prompt",
                     "do not tell", "llm", "language model" }) then
        return true
      end
      pos = e + 3 -- comments do not nest: go on after this one
    end
  end },
  { "hidden by style", 1, function(t)
    return any(t, { "display:none", "display: none", "font-size:0", "font-size: 0", "visibility:hidden",
                    "visibility: hidden", "color:white", "color: white", "color:#fff", "opacity:0", "opacity: 0" })
  end },
}

-- Base64: decode s (padding optional); nil when not base64.
local B64 = {}
do
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  for i = 1, 64 do B64[byte(alphabet, i)] = i - 1 end
  B64[45], B64[95] = 62, 63 -- the URL-safe alphabet too
end

--- The bytes of base64 text s (standard or URL-safe, padding optional), or
-- nil when s is not base64.
function _M.base64_decode(s)
  s = gsub(s, "=+$", "")
  local out, bits, nbits = {}, 0, 0
  for i = 1, #s do
    local v = B64[byte(s, i)]
    if v == nil then return nil end
    bits = bits * 64 + v
    nbits = nbits + 6
    if nbits >= 8 then
      nbits = nbits - 8
      local b = math.floor(bits / 2 ^ nbits)
      out[#out + 1] = char(b)
      bits = bits - b * 2 ^ nbits
    end
  end
  return concat(out)
end

-- True when s is mostly printable text.
local function printable(s)
  if #s == 0 then return false end
  local _, n = gsub(s, "[%w%s%p]", "")
  return n >= #s * 0.9
end

-- Unicode tag characters U+E0020-U+E007E read as the ASCII they shadow
-- ("ASCII smuggling"); nil when there are none.
local function tag_text(raw)
  if not find(raw, "\243\160[\128\129]") then return nil end
  local out = {}
  for b3, b4 in raw:gmatch("\243\160([\128\129])([\128-\191])") do
    local cp = (byte(b3) - 128) * 64 + byte(b4) - 128
    if cp >= 32 and cp < 127 then out[#out + 1] = char(cp) end
  end
  return concat(out)
end

local MAX_DECODE = 65536

local function score_text(raw, depth)
  local t = gsub(lower(raw), "%s+", " ")
  local total, reasons = 0, {}
  for _, r in ipairs(RULES) do
    if r[3](t, raw) then
      total = total + r[2]
      reasons[#reasons + 1] = r[1]
    end
  end
  if depth > 0 then
    local hidden = tag_text(raw)
    if hidden then
      local s, rs = score_text(hidden, depth - 1)
      total = total + 3 + s
      reasons[#reasons + 1] = "unicode tag characters"
      for _, x in ipairs(rs) do reasons[#reasons + 1] = x .. " (in tag characters)" end
    end
    -- base64 blobs that decode to text the rules fire on
    local pos, seen = 1, 0
    while seen < MAX_DECODE do
      local s, e = find(raw, "[%w+/_%-]+=*", pos)
      if not s then break end
      pos = e + 1
      if e - s + 1 >= 24 then
        local blob = sub(raw, s, min(e, s + MAX_DECODE - seen - 1))
        seen = seen + #blob
        local d = _M.base64_decode(blob)
        if d and printable(d) then
          local sc, rs = score_text(d, depth - 1)
          if sc > 0 then
            total = total + 2 + sc
            reasons[#reasons + 1] = "base64-encoded instructions"
            for _, x in ipairs(rs) do reasons[#reasons + 1] = x .. " (in base64)" end
            break
          end
        end
      end
    end
  end
  return total, reasons
end

--- Prompt-injection score of text: score (the sum of the weights of the
-- rules that fired, 0 for none) and the list of their names.
function _M.score(text)
  if type(text) ~= "string" then error("weft.guard.injection.score: text must be a string, got " .. type(text), 2) end
  return score_text(text, 1)
end

---------------------------------------------------------------- code

-- True when a target of rm is the root, a home or a system directory.
local RM_TARGETS = { ["/"] = true, ["/*"] = true, ["~"] = true, ["~/"] = true, ["~/*"] = true, ["$home"] = true,
                     ["${home}"] = true, ["$home/"] = true, ["/home"] = true, ["/etc"] = true, ["/usr"] = true,
                     ["/var"] = true, ["/boot"] = true, ["/bin"] = true, ["/lib"] = true, ["/root"] = true,
                     ["/home/*"] = true, ["--no-preserve-root"] = true, ["/.*"] = true }

local function rm_root(w)
  if not find(w, "^rm %-") then return false end
  local line = w:match("^[^\n;&|]*")
  local recursive, target = false, false
  local first, n = true, 0
  for tok in line:gmatch("%S+") do
    n = n + 1
    if n > 12 then break end -- an rm of / is short
    tok = tok:gsub("^[\"']", ""):gsub("[\"']$", "")
    if first then
      first = false
      if tok ~= "rm" then return false end
    elseif tok == "--recursive" or (tok:match("^%-%a+$") and tok:find("[rR]")) then
      recursive = true
    elseif RM_TARGETS[tok] then
      target = true
    end
  end
  return recursive and target
end

local SHELLS = { "sh", "bash", "zsh", "dash", "ksh", "python", "python3", "perl", "ruby", "iex", "node" }

-- True when line window w pipes into a shell or interpreter.
local function piped_to_shell(w)
  local line = w:match("^[^\n;]*")
  for rest in line:gmatch("|%s*([^|]*)") do
    local cmd = rest:match("^sudo%s+(%S+)") or rest:match("^(%S+)")
    if cmd then
      cmd = cmd:gsub("^.*/", "")
      for _, s in ipairs(SHELLS) do if cmd == s then return true end end
    end
  end
  return false
end

local CODE_RULES = {
  { "download piped to a shell", 4, function(t)
    return after(t, { "curl ", "wget ", "fetch ", "invoke-webrequest", "iwr ", "irm ", "invoke-restmethod" }, 300,
      piped_to_shell)
      or any(t, { "<(curl", "<(wget", "$(curl", "$(wget", "`curl", "`wget" })
  end },
  { "decoded data piped to a shell", 3, function(t)
    return after(t, { "base64 -d", "base64 --decode", "xxd -r", "openssl enc -d" }, 200, piped_to_shell)
  end },
  { "rm -rf of a root, home or system directory", 4, function(t)
    return after(t, { "rm " }, 120, rm_root, true)
  end },
  { "fork bomb", 4, function(t)
    local n = gsub(t, "%s", "")
    return after(n, { "(){" }, 40, function(w)
      return find(w, "^%(%){[%w_:%.]+|[%w_:%.]+&};") ~= nil
    end) or any(n, { "forkwhilefork", "whiletrue:os.fork()", "while(1)fork()", "for(;;)fork()" })
  end },
  { "reverse shell", 4, function(t)
    return any(t, { "/dev/tcp/", "/dev/udp/", "nc -e", "ncat -e", "netcat -e", "nc.traditional -e", "socat exec:",
                    "exec:'bash", "exec:\"bash", "pty.spawn(", "bash -i >&", "sh -i >&", "bash -i >& ",
                    "system.net.sockets.tcpclient", "0<&196", "mkfifo /tmp/f" })
      or (find(t, "socket.socket(", 1, true) ~= nil and any(t, { "subprocess", "os.dup2(", "/bin/sh", "pty." }))
  end },
  { "disk wiping", 4, function(t)
    return after(t, { "dd " }, 120, function(w) return find(w, "^dd [^\n]*of=/dev/[sh]d") ~= nil
      or find(w, "^dd [^\n]*of=/dev/nvme") ~= nil end, true)
      or after(t, { "mkfs" }, 60, function(w) return find(w, "^mkfs[%.%w]* [^\n]*/dev/") ~= nil end)
      or any(t, { "> /dev/sda", ">/dev/sda", "shred /dev/", "wipefs -a /dev/", "of=/dev/mem" })
  end },
  { "encoded command run at once", 3, function(t)
    return any(t, { "powershell -enc", "powershell.exe -enc", "-encodedcommand", "eval(base64_decode(",
                    "eval(atob(", "exec(base64.b64decode(", "eval(compile(base64", "exec(__import__('base64')" })
  end },
  { "permissions opened on /", 2, function(t)
    return any(t, { "chmod -r 777 /", "chmod 777 /", "chmod -r 777 ~", "chown -r nobody /" })
  end },
  { "persistence or trace removal", 2, function(t)
    return any(t, { ">> ~/.ssh/authorized_keys", ">>~/.ssh/authorized_keys", "history -c", "unset histfile",
                    "kill -9 -1", "crontab -r", "> /var/log/", "rm -rf /var/log" })
  end },
}

--- Malicious-code score of text (shell, PowerShell, Python one-liners):
-- score and the names of the rules that fired.
function _M.code_score(text)
  if type(text) ~= "string" then error("weft.guard.injection.code_score: text must be a string, got " .. type(text), 2) end
  local t = gsub(lower(text), "[ \t]+", " ")
  local total, reasons = 0, {}
  for _, r in ipairs(CODE_RULES) do
    if r[3](t) then
      total = total + r[2]
      reasons[#reasons + 1] = r[1]
    end
  end
  return total, reasons
end

---------------------------------------------------------------- guard

_M.OPTIONS = check.spec("weft.guard.injection", { properties = {
  threshold = { type = "number", minimum = 1, expect = "a number >= 1 (a score)" },
  action = { type = "string", enum = { "block", "mask" }, aliases = { "on_match" } },
  mode = { type = "string", enum = { "injection", "code" } },
  mask = { type = "string", aliases = { "label", "replacement" } },
  stages = { type = "table", expect = 'a list of stages ("input", "output", "tool_call", "tool_result")' },
  name = { type = "string", minLength = 1 },
} })

--- The default stages: injection reads what comes back into a model.
_M.STAGES = { "tool_result", "input" }
--- The default stages of the code mode (the seed's "malicious_code").
_M.CODE_STAGES = { "input", "tool_call", "tool_result" }

--- The guard: new{threshold = 3, action = "block" | "mask" (the string is
-- replaced by mask, default "[removed: suspected prompt injection]"),
-- mode = "injection" | "code", stages (default STAGES, CODE_STAGES for
-- code), name ("injection" or "malicious_code")}. Reason: "injection score
-- 5 >= 3: ignore previous instructions, fake role marker".
function _M.new(opts)
  opts = check.options(_M.OPTIONS, opts, 2)
  local code = opts.mode == "code"
  local threshold = opts.threshold or 3
  local rate = code and _M.code_score or _M.score
  local what = code and "malicious code" or "injection"
  local label = opts.mask or (code and "[removed: suspected malicious code]"
                              or "[removed: suspected prompt injection]")
  local mask = opts.action == "mask"
  return require("weft.guard").new {
    name = opts.name or (code and "malicious_code" or "injection"),
    stages = opts.stages or (code and _M.CODE_STAGES or _M.STAGES),
    check = function(_, value)
      if type(value) ~= "string" then return nil end
      local s, reasons = rate(value)
      if s < threshold then return nil end
      local reason = sformat("%s score %s >= %s: %s", what, tostring(s), tostring(threshold), concat(reasons, ", "))
      if mask then return { action = "modify", value = label, reason = reason } end
      return { action = "block", reason = reason }
    end,
  }
end

--- The malicious-code guard: new{mode = "code", ...} with opts.
function _M.code(opts)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.mode = "code"
  return _M.new(o)
end

return _M
