--- weft.llm — one chat API over several LLM providers (see docs/io.md,
-- `weft.llm`): `chat{model = "provider:model", messages, tools, ...}`
-- translates normalised messages and tools to the provider's wire format,
-- sends them with weft.http (streamed or not), retries transient failures
-- with backoff, and returns one normalised response {text, tool_calls,
-- usage, finish_reason, raw}. Streamed chunks go to the caller's callback
-- and, inside a workflow, out as live `agent_update` events. Providers are
-- the modules weft.llm.<name> (openai, anthropic, gemini, ollama, mock);
-- the mock answers offline through the same parser and assembler.
-- Uses weft.json, weft.http (lazily), weft.invocation (live chunks),
-- weft.core.loop, weft.llm.common, weft.llm.stream.
local json = require "weft.json"
local common = require "weft.llm.common"
local check = require "weft.check"
local stream = require "weft.llm.stream"

local type, pcall, error, require, ipairs, tostring =
  type, pcall, error, require, ipairs, tostring
local sformat, concat, random = string.format, table.concat, math.random

local _M = {}

--- Names of the built-in providers, sorted.
_M.PROVIDERS = { "anthropic", "gemini", "mock", "ollama", "openai" }
local KNOWN = {}
for _, n in ipairs(_M.PROVIDERS) do KNOWN[n] = true end

--- The default total timeout of a non-streamed call (retries and their
-- waits included), and the default idle timeout (max seconds between
-- bytes) of a streamed one.
_M.TIMEOUT, _M.STREAM_IDLE_TIMEOUT = 120, 300

--- The default cap on the bytes of one reply (max_bytes): the body of a
-- non-streamed one; the event data received, and separately the text and
-- tool-call arguments kept, of a streamed one.
_M.MAX_BYTES = stream.MAX_BYTES

--- The mock provider's scripting API: script(rules), register(name, rules),
-- load(path), reset() (see weft.llm.mock).
_M.mock = require "weft.llm.mock"

--- The provider module of a name, or nil.
function _M.provider(name)
  if not KNOWN[name] then return nil end
  return require("weft.llm." .. name)
end

--- Split "provider:model"; returns provider, model or nil, err, "config".
function _M.parse_model(model)
  local p, m = model:match("^([%w_%-]+):(.+)$")
  if not p then
    return nil, sformat("llm: model '%s' must be 'provider:model', e.g. 'openai:gpt-4o-mini' (providers: %s)",
                        model, concat(_M.PROVIDERS, ", ")), "config"
  end
  if not KNOWN[p] then
    return nil, sformat("llm: unknown provider '%s' in model '%s' (known: %s)",
                        p, model, concat(_M.PROVIDERS, ", ")), "config"
  end
  return p, m
end

--- The providers: a list of {name, key_env, base_env, default_base_url,
-- configured (a key is set, or none is needed), framing}.
function _M.providers()
  local out = {}
  for _, n in ipairs(_M.PROVIDERS) do
    local P = _M.provider(n)
    local key = P.key_env and common.getenv(P.key_env)
    out[#out + 1] = {
      name = n, key_env = P.key_env, base_env = P.base_env,
      default_base_url = P.default_base, framing = P.framing,
      configured = (not P.needs_key) or (key ~= nil and key ~= ""),
    }
  end
  return out
end

--- Transport of real providers: weft.http (its request_built: the
-- request is made here from checked options).
function _M.http_request(req)
  local ok, http = pcall(require, "weft.http")
  if not ok then return nil, "weft.http is not available: " .. tostring(http), "error" end
  return http.request_built(req)
end

--- Sleep between retries (weft.sleep); tests may replace it.
function _M.sleep(s) return require("weft.core.loop").sleep(s) end

--- Monotonic seconds (weft.clock) for the total timeout; tests may
-- replace it.
function _M.clock() return require("weft.core.loop").clock() end

-- The chunk sink of a call: the caller's callback and, inside a workflow,
-- a live agent_update event per chunk. nil when nobody listens.
local function sink(opts)
  local user = type(opts.stream) == "function" and opts.stream or nil
  local inv = require("weft.invocation").current()
  if not user and not inv then return nil end
  local agent = opts.agent
  return function(chunk)
    if agent then chunk.agent = agent end
    if inv then inv:publish_chunk(chunk) end
    if user then user(chunk) end
  end
end

-- The state of one call (chat) that its attempts read: an array, so that
-- a call in flight holds one small table and passes one value down (its
-- frames stay small: see attempt). It keeps what the attempts need and
-- nothing else: not the caller's options (nor, through them, the
-- messages), not the normalised call (only a provider with its own
-- transport, the mock, gets it), not the table P.build made: a run in
-- flight holds none of them (docs/internals.md, "Memory of a run in
-- flight"). C_CALL: the normalised call, or false; C_STREAM: the idle
-- timeout of a streamed call, false when not streamed.
local C_P, C_CALL, C_CFG, C_BODY, C_URL, C_HEADERS, C_EMIT, C_PNAME, C_MAX, C_STREAM =
  1, 2, 3, 4, 5, 6, 7, 8, 9, 10

-- The HTTP request of one attempt of call c with `left` seconds of its
-- total timeout, and for a streamed call its stream state st {asm,
-- failure, seen, seen_len, received}, filled by the request's callback.
local function attempt_request(c, left)
  local P, max_bytes = c[C_P], c[C_MAX]
  local req = { method = "POST", url = c[C_URL], headers = c[C_HEADERS], body = c[C_BODY],
                timeout = left, cross_origin_redirects = "refuse", max_body = max_bytes }
  if not c[C_STREAM] then return req end
  local st = { asm = stream.new(P.name, c[C_EMIT], max_bytes), seen = {}, seen_len = 0, received = 0 }
  req.idle_timeout = c[C_STREAM]
  req.framing = P.framing -- max_body: per event
  req.stream = function(frame)
    if st.failure then return false end
    local data = type(frame) == "table" and frame.data or frame
    if type(data) == "string" then
      st.received = st.received + #data
      if st.received > max_bytes then
        st.failure = { err = sformat("%s: streamed reply exceeds max_bytes (%d bytes received)",
                                     P.name, max_bytes), code = "too_large" }
        return false
      end
      if st.seen_len < 2048 then -- for the error of a non-2xx reply
        st.seen[#st.seen + 1] = data
        st.seen_len = st.seen_len + #data
      end
    end
    -- pcall: stop the transfer cleanly when the caller's callback raises
    local ok, err, code = pcall(P.stream_event, st.asm, frame)
    if not ok then st.failure = { raise = err }; return false end
    if err then st.failure = { err = err, code = code or "protocol" }; return false end
  end
  return req, st
end

-- What an attempt of call c returns for the transport's answer (res or
-- nil, herr, hcode), st its stream state (nil when not streamed).
local function attempt_outcome(c, st, res, herr, hcode)
  local P, key, emit = c[C_P], c[C_CFG].api_key, c[C_EMIT]
  local failure, asm = st and st.failure, st and st.asm
  if failure and failure.raise then error(failure.raise, 0) end
  local delivered = asm ~= nil and asm.delivered
  if not res then
    if failure then return false, nil, failure.code, common.redact(failure.err, key), true end
    return false, nil, hcode, common.transport_error(P.name, herr, key), delivered
  end
  local status = res.status
  if type(status) ~= "number" or status < 200 or status > 299 then
    local text = res.body or concat(st and st.seen or {}, "\n")
    return false, res, "http_" .. tostring(status), common.status_error(P.name, status or 0, text, key), delivered
  end
  if failure then return false, nil, failure.code, common.redact(failure.err, key), true end
  local r, err
  if asm then
    if not asm.terminated then
      return false, nil, "protocol", asm:truncated(P.terminal), true
    end
    r, err = asm:result()
    if not r then return false, nil, "protocol", common.redact(err, key), true end
    r.raw = asm.raw
    if emit then emit({ done = true, usage = r.usage, finish_reason = r.finish_reason }) end
  else
    local d = json.decode(res.body or "")
    if d == nil then
      return false, nil, "protocol", sformat("%s: response is not JSON: %s", P.name,
                                             common.excerpt(common.redact(res.body or "", key))), true
    end
    local pcode
    r, err, pcode = P.parse(d)
    if not r then return false, nil, pcode or "protocol", common.redact(err, key), true end
    r.raw = d
  end
  return true, r
end

-- One attempt of call c with `left` seconds of its total timeout (nil:
-- none): true, response; or false, res, code, err, no_retry (see
-- common.with_retries). The key goes to the configured host only: a
-- redirect to another origin fails the attempt ("protocol"). Small, as
-- are its callers: a call in flight keeps this chain of frames on its
-- coroutine's stack (docs/internals.md, "Memory of a run in flight").
local function attempt(_, left, c)
  if not c[C_STREAM] then
    -- the request table is only the transport's argument (no local of
    -- this frame holds it), so weft.http can let it go once the transfer
    -- has started; the call is not nested in attempt_outcome's arguments,
    -- which would put the transport's frames 3 slots deeper
    local res, herr, hcode = (c[C_P].transport or _M.http_request)(attempt_request(c, left), c[C_CALL], c[C_CFG])
    return attempt_outcome(c, nil, res, herr, hcode)
  end
  local req, st = attempt_request(c, left) -- st: filled while it streams
  local res, herr, hcode = (c[C_P].transport or _M.http_request)(req, c[C_CALL], c[C_CFG])
  return attempt_outcome(c, st, res, herr, hcode)
end

--- Chat with a model (options checked by weft.check against
-- weft.llm.common.OPTIONS: unknown ones raise with "did you mean"): chat{model = "provider:model" (default env
-- WEFT_MODEL, else "mock:echo"), messages = {{role, content, name,
-- tool_calls, tool_call_id}, ...}, tools = {{name, description,
-- parameters}}, tool_choice, temperature, max_tokens, stream = fn(chunk) |
-- true, base_url, api_key, timeout, idle_timeout, retries, retry_base,
-- retry_factor, retry_max, retry_after_max, max_bytes}. timeout is the
-- call's total (retries and their waits included). Returns {text, tool_calls =
-- {{id, name, arguments}}, usage = {input_tokens, output_tokens,
-- total_tokens}, finish_reason, raw} or nil, err, code ("config",
-- "http_<status>", an HTTP failure code, "protocol", "provider"). Chunks:
-- {text}, {tool_call_delta = {index (1-based), id, name, arguments}},
-- then {done = true, usage, finish_reason}. Misuse raises.
--- Process-wide counters of model calls: requests[provider][status] (an
-- HTTP status as a string, "ok" for the mock, or the failure code) and
-- tokens[provider] = {input, output}; read by weft serve's /metrics.
_M.counters = { requests = {}, tokens = {} }

-- Count one finished chat call of provider.
local function count(pname, res, code)
  local c = _M.counters
  local by = c.requests[pname]
  if not by then by = {}; c.requests[pname] = by end
  local key = res and "ok" or tostring(code or "error")
  by[key] = (by[key] or 0) + 1
  local u = res and res.usage
  if u then
    local t = c.tokens[pname]
    if not t then t = { input = 0, output = 0 }; c.tokens[pname] = t end
    t.input = t.input + (tonumber(u.input_tokens) or 0)
    t.output = t.output + (tonumber(u.output_tokens) or 0)
  end
  return res, code
end

-- weft.journal.call (journaled I/O), loaded on first use.
local function journal(...)
  return require("weft.journal").call(...)
end

local deps_by_timeout = setmetatable({}, { __mode = "v" })

-- Make call c (its attempts, with retries) and count it (a call replayed
-- from the journal is not made, nor counted).
local function perform(policy, deps, c)
  local res, err, code = common.with_retries(policy, attempt, deps, c)
  count(c[C_PNAME], res, code)
  return res, err, code
end

function _M.chat(opts)
  local perr = check.problem(common.OPTIONS, opts)
  if perr then error(perr, 2) end
  local model = opts.model
  if model == nil then
    model = common.getenv("WEFT_MODEL")
    if model == nil or model == "" then model = "mock:echo" end
  end
  local pname, mname, code = _M.parse_model(model)
  if not pname then return nil, mname, code end
  local ok, call = pcall(common.request, opts, mname, true)
  if not ok then
    local m = common.misuse(call)
    if m then error(m, 2) end
    error(call, 0)
  end
  local P = _M.provider(pname)
  local cfg, err
  cfg, err, code = common.config(P, opts)
  if not cfg then return nil, err, code end
  local built = P.build(call, cfg)
  local body = json.encode(built.body) -- a call in flight keeps the string only
  local timeout = opts.timeout or (not call.stream and _M.TIMEOUT) or nil
  local deps = deps_by_timeout[timeout or false]
  if not deps or deps.sleep ~= _M.sleep or deps.clock ~= _M.clock then
    deps = { sleep = _M.sleep, rand = random, clock = _M.clock, timeout = timeout }
    deps_by_timeout[timeout or false] = deps
  end
  local streamed = call.stream
  local c = { P, P.transport and call or false, cfg, body, built.url, built.headers,
              streamed and sink(opts) or nil, pname, opts.max_bytes or _M.MAX_BYTES,
              streamed and (opts.idle_timeout or _M.STREAM_IDLE_TIMEOUT) or false }
  -- journaled in durable runs (a re-executed invocation gets this result),
  -- under the run's budget (weft.budget: refused when spent; charged): a
  -- tail call, so that chat's frame is not kept while the call is in flight
  return require("weft.budget").llm(model, journal, "llm", { what = model, body = body }, perform,
    common.policy(opts), deps, c)
end

return _M
