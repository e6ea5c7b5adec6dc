--- weft.llm.common — helpers shared by the LLM providers: configuration
-- (keys and base URLs from options, then the environment), request
-- validation and normalisation, error texts with key redaction, the retry
-- policy (exponential backoff with jitter, retry-after) and small JSON
-- helpers. Pure Lua; the clock, sleep and random source of the retry loop
-- are injectable for tests. Uses weft.json, weft.secrets (keys in use are
-- registered there, so that every store write redacts them), weft.check
-- and weft.thread (its message check: the one for chat messages).
local json = require "weft.json"
local secrets = require "weft.secrets"
local check = require "weft.check"

local type, ipairs, tostring, tonumber, error, next, setmetatable, getmetatable =
  type, ipairs, tostring, tonumber, error, next, setmetatable, getmetatable
local floor, min, max, random = math.floor, math.min, math.max, math.random
local concat, sfind, ssub, sgsub, sformat = table.concat, string.find, string.sub, string.gsub, string.format

local NULL = json.null

local _M = {}

--- The environment reader (os.getenv); tests may replace it.
_M.getenv = os.getenv

--- Retry defaults: base delay, growth factor, cap, and the cap on a
-- server's retry-after (all seconds).
_M.RETRY = { retries = 3, base = 0.5, factor = 2, cap = 20, after_cap = 60 }

--- The most tool calls one reply may carry (a wire index past it is a
-- protocol error, so no loop runs to a number a server made up).
_M.MAX_TOOL_CALLS = 128

--- v when it is an integer from 0 to 2^31 - 1 (an index from the wire),
-- else nil.
function _M.wire_index(v)
  if type(v) == "number" and v >= 0 and v < 2147483648 and floor(v) == v then return v end
  return nil
end

--- nil, or the error of a reply with n tool calls when n passes
-- MAX_TOOL_CALLS.
function _M.calls_error(provider, n)
  if n > _M.MAX_TOOL_CALLS then
    return sformat("%s: reply has %d tool calls (at most %d)", provider, n, _M.MAX_TOOL_CALLS)
  end
end

--- Statuses that are retried: rate limits and transient server errors.
_M.RETRY_STATUS = { [408] = true, [429] = true, [500] = true, [502] = true,
                    [503] = true, [504] = true, [529] = true }

--- HTTP failure codes that are retried (connection-level failures).
_M.RETRY_CODE = { connect = true, timeout = true }

--- v, or nil when v is nil or JSON null.
function _M.nn(v)
  if v == NULL then return nil end
  return v
end

--- A string field of t, or nil (JSON null and non-strings count as absent).
function _M.str(v)
  if type(v) == "string" then return v end
  return nil
end

--- The message of an error payload `{"error": ...}` (a decoded table), or
-- nil: "<kind>: <message>" where kind is the error's `kind_field` ("type"
-- for OpenAI and Anthropic, "status" for Gemini; nil: no kind).
function _M.payload_error(d, kind_field)
  local e = type(d) == "table" and _M.nn(d.error)
  if not e then return nil end
  if type(e) == "table" then
    local kind = kind_field and _M.str(e[kind_field])
    return (kind and (kind .. ": ") or "") .. (_M.str(e.message) or json.encode(e))
  end
  return tostring(e)
end

--- A normalised finish reason: map[r], else r (lower-cased when lower);
-- nil for a missing or empty reason.
function _M.finish_reason(map, r, lower)
  r = _M.str(r)
  if r == nil or r == "" then return nil end
  return map[r] or (lower and r:lower() or r)
end

-- The last header table of the calls to each URL, streamed ([2]) or not
-- ([1]): read-only and shared by the calls that have the same headers, so
-- that a call in flight holds no header table of its own. Weak values: a
-- table no call uses any more goes. A call with other headers (another
-- key) replaces it; looking it up makes no garbage.
local shared_headers = { setmetatable({}, { __mode = "v" }), setmetatable({}, { __mode = "v" }) }

-- Whether header maps a and b have the same names and values.
local function same_headers(a, b)
  for k, v in next, a do
    if b[k] ~= v then return false end
  end
  for k in next, b do
    if a[k] == nil then return false end
  end
  return true
end

--- The HTTP request {url, headers, body (table)} of a provider call:
-- headers is completed with content-type: application/json, and with
-- accept: text/event-stream when sse. Calls to the same URL with the same
-- headers get one shared headers table (read-only: not to be changed).
function _M.http_request(url, headers, body, sse)
  headers["content-type"] = "application/json"
  if sse then headers.accept = "text/event-stream" end
  local cache = shared_headers[sse and 2 or 1]
  local last = cache[url]
  if last and same_headers(last, headers) then
    headers = last
  else
    cache[url] = headers
  end
  return { url = url, headers = headers, body = body }
end

--- The headers {authorization = "Bearer KEY"} for api_key ({} without one).
function _M.bearer(api_key)
  return { authorization = api_key and ("Bearer " .. api_key) or nil }
end

--- Decode one stream record (an SSE event table or an NDJSON line) for
-- provider: the decoded table (also kept as asm.raw); or nil, nil for a
-- blank record; or nil, err for data that is not JSON.
function _M.stream_chunk(provider, asm, ev)
  local data = type(ev) == "table" and ev.data or ev
  if type(data) ~= "string" or data:match("^%s*$") then return nil end
  local d = json.decode(data)
  if type(d) ~= "table" then
    return nil, provider .. ": malformed stream chunk (not JSON): " .. _M.excerpt(data, 200)
  end
  asm.raw = d
  return d
end

--- Decode one stream record like stream_chunk and fail on an error
-- payload (kind_field as for payload_error): the decoded table; or nil, nil
-- for a blank record; or nil, err, code (code "provider" for an error
-- payload, nil for data that is not JSON).
function _M.stream_data(provider, asm, ev, kind_field)
  local d, err = _M.stream_chunk(provider, asm, ev)
  if not d then return nil, err end
  local perr = _M.payload_error(d, kind_field)
  if perr then return nil, provider .. ": error in stream: " .. perr, "provider" end
  return d
end

--- The error of a decoded response d for parse, and its code, or nil: the
-- message of an error payload (code "provider", kind_field as for
-- payload_error), else "unexpected response (no <what>)" unless has (the
-- caller's check of d's shape).
function _M.response_error(provider, d, kind_field, has, what)
  local perr = _M.payload_error(d, kind_field)
  if perr then return provider .. ": error in response: " .. perr, "provider" end
  if not has then
    return provider .. ": unexpected response (no " .. what .. "): " .. _M.excerpt(json.encode(d), 200)
  end
  return nil
end

--- A list (array-like table) of t, or an empty table.
function _M.list(v)
  if type(v) == "table" then return v end
  return {}
end

--- A number, or nil.
function _M.num(v)
  if type(v) == "number" then return v end
  return nil
end

-- Plain (non-pattern) replacement of every occurrence of needle in s.
local function replace_plain(s, needle, with)
  local out, pos = {}, 1
  while true do
    local i, j = sfind(s, needle, pos, true)
    if not i then break end
    out[#out + 1] = ssub(s, pos, i - 1)
    out[#out + 1] = with
    pos = j + 1
  end
  if pos == 1 then return s end
  out[#out + 1] = ssub(s, pos)
  return concat(out)
end

--- s with the API key (when at least 4 characters long) and any bearer
-- token replaced by "[redacted]".
function _M.redact(s, key)
  if type(s) ~= "string" then return s end
  if type(key) == "string" and #key >= 4 then s = replace_plain(s, key, "[redacted]") end
  s = sgsub(s, "([Bb][Ee][Aa][Rr][Ee][Rr]%s+)[%w%-%._~%+/=:]+", "%1[redacted]")
  return s
end

--- The first n (default 200) characters of s with whitespace runs folded
-- to one space, cut at a UTF-8 character boundary, "..." when cut.
function _M.excerpt(s, n)
  n = n or 200
  if type(s) ~= "string" then return "" end
  s = sgsub(s, "%s+", " ")
  s = sgsub(s, "^ ", "")
  if #s <= n then return s end
  local cut = n
  -- back off over UTF-8 continuation bytes so no character is split
  while cut > 0 do
    local b = s:byte(cut + 1)
    if not b or b < 0x80 or b >= 0xC0 then break end
    cut = cut - 1
  end
  return ssub(s, 1, cut) .. "..."
end

--- The error of a failed HTTP transfer: "<provider>: <message>" (redacted;
-- a message already naming the provider is not prefixed twice).
function _M.transport_error(provider, msg, key)
  msg = tostring(msg or "request failed")
  if ssub(msg, 1, #provider + 2) ~= provider .. ": " then msg = provider .. ": " .. msg end
  return _M.redact(msg, key)
end

--- The error of a non-2xx response: "<provider>: HTTP <status>: <excerpt>"
-- with the key redacted from the whole body before it is cut.
function _M.status_error(provider, status, body, key)
  local ex = _M.excerpt(_M.redact(body or "", key), 200)
  if ex == "" then return sformat("%s: HTTP %d", provider, status) end
  return sformat("%s: HTTP %d: %s", provider, status, ex)
end

--- Numeric seconds from a response's retry-after (or retry-after-ms)
-- header, or nil.
function _M.retry_after(headers)
  if type(headers) ~= "table" then return nil end
  local ms = tonumber(headers["retry-after-ms"])
  if ms and ms >= 0 then return ms / 1000 end
  local s = tonumber(headers["retry-after"])
  if s and s >= 0 then return s end
  return nil
end

--- The retry policy of a call from its options: {retries, base, factor,
-- cap, after_cap}; read-only (calls with the same options share one).
-- Policies of calls that set no retry option but retries (0 to 10), by
-- retries + 1: shared, so that a call in flight holds no table of its own
-- (they follow _M.RETRY as it is when first made; policy() drops them
-- when _M.RETRY is replaced).
local shared_policies, shared_for = {}, nil

function _M.policy(opts)
  local d = _M.RETRY
  opts = opts or {}
  local r = opts.retries
  local share = opts.retry_base == nil and opts.retry_factor == nil and opts.retry_max == nil
    and opts.retry_after_max == nil and (r == nil or (r >= 0 and r <= 10 and r % 1 == 0))
  if share then
    if shared_for ~= d then shared_policies, shared_for = {}, d end
    local p = shared_policies[(r or -1) + 2]
    if p and p.retries == (r or d.retries) and p.base == d.base and p.factor == d.factor
        and p.cap == d.cap and p.after_cap == d.after_cap then
      return p
    end
  end
  local p = {
    retries = r or d.retries,
    base = opts.retry_base or d.base,
    factor = opts.retry_factor or d.factor,
    cap = opts.retry_max or d.cap,
    after_cap = opts.retry_after_max or d.after_cap,
  }
  if share then shared_policies[(r or -1) + 2] = p end
  return p
end

--- Seconds to wait before retry number `attempt` (1 for the first retry):
-- the server's retry-after when given (capped at policy.after_cap), else
-- min(cap, base * factor^(attempt-1)) with "equal jitter" (half fixed, half
-- uniformly random). rand() returns a number in [0, 1).
function _M.backoff(policy, attempt, retry_after, rand)
  if retry_after then return min(max(retry_after, 0), policy.after_cap) end
  local d = min(policy.cap, policy.base * policy.factor ^ (attempt - 1))
  return d / 2 + (rand or random)() * d / 2
end

--- Whether a failed attempt may be retried: res is the response (non-2xx)
-- or nil with the HTTP failure code.
function _M.retryable(res, code)
  if res then return _M.RETRY_STATUS[res.status] == true end
  return _M.RETRY_CODE[code] == true
end

-- "1 attempt", "2 attempts".
local function attempts(n) return n == 1 and "1 attempt" or (n .. " attempts") end

-- The error of a call whose timeout of `timeout` s ran out: after n
-- attempts (wait nil), or before the next one (wait: its delay).
local function timed_out(err, timeout, n, wait)
  if wait then
    return sformat("%s (gave up after %s: the next one, in %g s, would start past "
                   .. "the call's timeout of %g s)", err, attempts(n), wait, timeout), "timeout"
  end
  return sformat("%s (the call's timeout of %g s is spent after %s)", err, timeout, attempts(n)), "timeout"
end

--- Run attempt(n, left, a) until it succeeds, fails for good, the retries
-- are used up or the call's total timeout (deps.timeout seconds, optional)
-- is spent. attempt gets the seconds left of the timeout (nil without one)
-- for its own transfer, and returns true, result on success; or false,
-- res, code, err, no_retry on failure (res: a non-2xx response or nil;
-- err: the error text; no_retry: true once data reached the caller).
-- deps.sleep(seconds) waits, deps.rand() gives jitter, deps.clock() is a
-- monotonic clock (needed with a timeout). A wait for a retry
-- (retry-after included) that would end past the timeout is not made: the
-- call fails at once with code "timeout". Returns result, or nil, err,
-- code (the error of the last attempt, with the attempt count when there
-- were several). `a` is passed on to attempt, so that a caller needs no
-- closure per call (one value, not varargs: a call in flight keeps this
-- frame on its coroutine's stack).
function _M.with_retries(policy, attempt, deps, a)
  local timeout = deps.timeout
  local deadline = timeout and deps.clock() + timeout
  local n = 0
  while true do
    n = n + 1
    local ok, res, code, err, no_retry = attempt(n, deadline and (n == 1 and timeout or deadline - deps.clock()), a)
    if ok then return res end
    if deadline and code == "timeout" and deps.clock() >= deadline - 0.01 then
      return nil, timed_out(err, timeout, n)
    end
    if no_retry or n > policy.retries or not _M.retryable(res, code) then
      if n > 1 then err = sformat("%s (gave up after %d attempts)", err, n) end
      return nil, err, code
    end
    local wait = _M.backoff(policy, n, res and _M.retry_after(res.headers), deps.rand)
    if deadline and deps.clock() + wait >= deadline then
      return nil, timed_out(err, timeout, n, wait)
    end
    deps.sleep(wait)
  end
end

--- Decode a tool call's JSON arguments (a string; "" and null give {}).
-- Returns the table or nil, err.
function _M.decode_args(provider, name, s)
  if type(s) == "table" then return s end
  if s == nil or s == NULL or s:match("^%s*$") then return {} end
  local v, err = json.decode(s)
  if v == nil and err then
    return nil, sformat("%s: tool call '%s' has invalid JSON arguments (%s): %s",
                        provider, tostring(name), err, _M.excerpt(s, 200))
  end
  if v == NULL then return {} end
  if type(v) ~= "table" then
    return nil, sformat("%s: tool call '%s' arguments are not a JSON object: %s",
                        provider, tostring(name), _M.excerpt(s, 200))
  end
  return v
end

--- Arguments as a JSON string (strings pass through; nil and {} give "{}").
function _M.encode_args(args)
  if type(args) == "string" then return args end
  if args == nil or next(args) == nil then return "{}" end
  return json.encode(args)
end

--- Arguments as a table that encodes as a JSON object (a string is
-- decoded; the caller's table is never marked).
function _M.object_args(args)
  if type(args) == "string" then
    local v = json.decode(args)
    if type(v) == "table" then args = v else args = nil end
  end
  if args == nil or next(args) == nil then return json.object() end
  return args
end

--- Usage normalised to {input_tokens, output_tokens, total_tokens}
-- (numbers, 0 when unknown; total defaults to input + output).
function _M.usage(input, output, total)
  input, output = tonumber(input) or 0, tonumber(output) or 0
  return { input_tokens = input, output_tokens = output,
           total_tokens = tonumber(total) or (input + output) }
end

--- A JSON array of the given list (a new marked table).
function _M.array(t)
  local a = json.array()
  for i = 1, #(t or {}) do a[i] = t[i] end
  return a
end

--- base_url without trailing slashes.
function _M.trim_url(u)
  return (sgsub(u, "/+$", ""))
end

-- the one chat message check (weft.thread and llm.chat)
local message_problem = require("weft.thread").problem
local huge = math.huge

-- Schemas of option kinds: seconds > 0, a non-negative number.
local function seconds()
  return { type = "number", expect = "a positive number of seconds", test = function(v) return v > 0 and v ~= huge end }
end
local function nonneg()
  return { type = "number", minimum = 0, expect = "a non-negative number", test = function(v) return v ~= huge end }
end

--- The spec of llm.chat options (weft.check); weft.agent's `llm` table
-- takes the connection and retry ones.
_M.OPTIONS = check.spec("llm.chat", { properties = {
  model = { type = "string", expect = "a string such as 'openai:gpt-4o-mini'", aliases = { "model_name", "engine" } },
  messages = { type = "table", required = true, expect = "a non-empty list", aliases = { "message", "prompt", "input" },
               test = function(v) return v[1] ~= nil end },
  tools = { type = "table", expect = "a list", aliases = { "functions" } },
  tool_choice = { type = { "string", "table" }, expect = "'auto', 'none', 'required' or {name = tool}",
                  aliases = { "function_call" }, test = function(tc)
    return tc == "auto" or tc == "none" or tc == "required" or (type(tc) == "table" and type(tc.name) == "string")
  end },
  temperature = { type = "number" },
  max_tokens = { type = "integer", minimum = 1, expect = "a positive integer",
                 aliases = { "max_output_tokens", "max_completion_tokens", "num_predict" } },
  stream = { type = { "function", "boolean" }, expect = "a function (or true)", aliases = { "on_chunk", "callback" } },
  agent = { type = "string", expect = "the name of the agent making the call (set in its stream chunks)" },
  base_url = { type = "string", aliases = { "url", "endpoint", "api_base", "base" } },
  api_key = { type = "string", aliases = { "key", "token" } },
  timeout = seconds(), idle_timeout = seconds(),
  retries = { type = "integer", minimum = 0, expect = "a non-negative integer", aliases = { "max_retries" } },
  retry_base = nonneg(), retry_factor = nonneg(), retry_max = nonneg(), retry_after_max = nonneg(),
  max_bytes = { type = "integer", minimum = 1, maximum = 2 ^ 40, expect = "a positive integer" },
} })

-- Raise a misuse error; llm.chat re-raises its text at its caller's level.
local MISUSE = {}
local function bad(msg) error(setmetatable({ msg = "llm.chat: " .. msg }, MISUSE), 0) end

-- Raise a misuse error with its whole message.
local function bad_raw(msg) error(setmetatable({ msg = msg }, MISUSE), 0) end

--- The message of a misuse error raised by request(), or nil for others.
function _M.misuse(e)
  if getmetatable(e) == MISUSE then return e.msg end
end

-- Whether message m (checked) is in normal form already: a string
-- content, and no field but role, content, name (not null) and, in a tool
-- result, tool_call_id. Such a message goes into the request as it is (a
-- call in flight holds no copy); others are copied, normalised.
-- next() called, not `for ... in pairs` (see weft.check).
local function normal(m)
  if type(m.content) ~= "string" then return false end
  local k, v = next(m)
  while k ~= nil do
    if k == "name" then
      if v == NULL then return false end
    elseif k == "tool_call_id" then
      if m.role ~= "tool" then return false end
    elseif k ~= "role" and k ~= "content" then
      return false
    end
    k, v = next(m, k)
  end
  return true
end

--- Validate the options of llm.chat (raising a misuse error, see
-- misuse(), on bad input) and return the normalised request {model, messages, tools, tool_choice,
-- temperature, max_tokens, stream = bool}. model is the part after
-- "provider:"; checked: opts already passed check.problem(OPTIONS).
function _M.request(opts, model, checked)
  if not checked then
    local err = check.problem(_M.OPTIONS, opts)
    if err then bad_raw(err) end
  end
  local msgs = opts.messages
  local out, copied, count = {}, false, 0
  for i, m in ipairs(msgs) do
    local err = message_problem(m, "messages[" .. i .. "]")
    if err then bad(err) end
    local n = m
    if not normal(m) then
      local c = m.content
      n = { role = m.role, content = c ~= NULL and c or "" }
      if m.name ~= nil and m.name ~= NULL then n.name = m.name end
      if m.role == "assistant" and m.tool_calls ~= nil and m.tool_calls ~= NULL then
        n.tool_calls = {}
        for j, tc in ipairs(m.tool_calls) do
          n.tool_calls[j] = { id = tc.id, name = tc.name, arguments = tc.arguments }
        end
      elseif m.role == "tool" then
        n.tool_call_id = m.tool_call_id
      end
      copied = true
    end
    out[i] = n
    count = i
  end
  -- messages that are all in normal form are the request's as they are
  if not copied and #msgs == count then out = msgs end
  local tools
  if opts.tools ~= nil then
    tools = {}
    for i, t in ipairs(opts.tools) do
      local where = "tools[" .. i .. "]"
      if type(t) ~= "table" then bad(where .. " must be a table") end
      if type(t.name) ~= "string" or t.name == "" then bad(where .. ".name must be a non-empty string") end
      if t.description ~= nil and type(t.description) ~= "string" then bad(where .. ".description must be a string") end
      if t.parameters ~= nil and type(t.parameters) ~= "table" then bad(where .. ".parameters must be a table (JSON schema)") end
      local err = t.parameters and json.check(t.parameters, where .. ".parameters")
      if err then bad(err) end
      tools[i] = { name = t.name, description = t.description, parameters = t.parameters }
    end
    if #tools == 0 then tools = nil end
  end
  local tc, mt, s = opts.tool_choice, opts.max_tokens, opts.stream
  return {
    model = model, messages = out, tools = tools, tool_choice = tc,
    temperature = opts.temperature, max_tokens = mt,
    stream = s ~= nil and s ~= false,
  }
end

-- provider module -> its last config (see config)
local last_config = {}

--- The key and base URL of provider P for a call: options first, then the
-- environment, then P's default base. Returns {api_key, base_url}
-- (read-only: calls with the same config share it) or nil, err, "config"
-- when P needs a key and none is set.
function _M.config(P, opts)
  local getenv = _M.getenv
  local key = opts.api_key
  if (key == nil or key == "") and P.key_env then key = getenv(P.key_env) end
  if key == "" then key = nil end
  secrets.add(key) -- redacted from every store write from now on
  if P.needs_key and not key then
    return nil, sformat("%s: no API key: set %s (or pass api_key)", P.name, P.key_env), "config"
  end
  local base = opts.base_url
  if (base == nil or base == "") and P.base_env then base = getenv(P.base_env) end
  if base == nil or base == "" then base = P.default_base end
  if P.normalise_base then base = P.normalise_base(base) end
  base = base and _M.trim_url(base)
  -- the last config of each provider is shared by the calls that have the
  -- same one (read-only), so a call in flight holds no table of its own
  local c = last_config[P]
  if c and c.api_key == key and c.base_url == base then return c end
  c = { api_key = key, base_url = base }
  last_config[P] = c
  return c
end

--- Words in s (whitespace-separated runs), for the mock's usage.
function _M.words(s)
  return (select(2, tostring(s or ""):gsub("%S+", "")))
end

return _M
