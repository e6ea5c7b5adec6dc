--- weft.serve.responses — OpenAI's Responses API on `weft serve`
-- (docs/interop.md "OpenAI Responses"): `POST /v1/responses {model, input,
-- instructions, tools, previous_response_id, stream, background}` runs an
-- agent (`agent:<id>`) or a workflow (`workflow:<id>`) in a task of this
-- process and answers a `response` object, or with `stream = true` the
-- Responses SSE events (response.created ... response.completed);
-- `GET /v1/responses/{id}` retrieves one (`?stream=true&starting_after=N`
-- streams a background response's events after sequence number N),
-- `POST /v1/responses/{id}/cancel` cancels a background one, `DELETE`
-- forgets one. Conversations: a response keeps its conversation (weft
-- messages) for `previous_response_id`. Pauses: the client's function
-- `tools` are tools of the agent whose handler suspends the run: the
-- response completes with `function_call` items, and a create with
-- `previous_response_id` and `function_call_output` items resumes the same
-- run; a workflow's ctx:request_info is told the same way, as a call of
-- the function `weft_request` (arguments {executor_id, request}), answered
-- by a function_call_output (JSON, or else the text). The same sessions
-- answer paused workflows of /v1/chat/completions (chat_turn). State is
-- bounded: at most MAX_STORED responses, a finished one is forgotten TTL
-- seconds after it was created (a paused run with it is cancelled).
-- Uses weft, weft.json, weft.tool, weft.agent, weft.serve.{errors, openai,
-- agents}.
local json = require "weft.json"
local errors = require "weft.serve.errors"

local type, pairs, ipairs, tostring, tonumber, pcall, error = type, pairs, ipairs, tostring, tonumber, pcall, error
local fmt, concat = string.format, table.concat
local throw = errors.throw

local _M = {}

--- Responses kept (finished or not); a create beyond it forgets the oldest
-- finished one, or answers 429 when all of them are still running.
_M.MAX_STORED = 1000
--- Seconds a finished response (and a run paused with it) is kept.
_M.TTL = 3600
--- Most input items one create takes.
_M.MAX_ITEMS = 1000
--- Most function tools one create takes.
_M.MAX_TOOLS = 128
--- The function name under which a paused workflow's requests are told.
_M.REQUEST_TOOL = "weft_request"

--- The body of POST /v1/responses (weft.check object schema; open: other
-- OpenAI fields are accepted and ignored).
_M.BODY = errors.schema("responses.create", { additionalProperties = true, properties = {
  model = { type = "string", required = true, expect = "agent:<id> or workflow:<id>" },
  instructions = { type = "string" },
  previous_response_id = { type = "string" },
  tools = { type = "array", expect = "a list of {type = 'function', name, parameters}" },
  stream = { type = "boolean" },
  background = { type = "boolean" },
  store = { type = "boolean" },
} })

local FINAL = { completed = true, failed = true, cancelled = true, incomplete = true }
local TERMINAL_EVENT = { completed = "response.completed", failed = "response.failed",
                         cancelled = "response.failed", incomplete = "response.incomplete" }

local counter = 0
-- A new id with prefix p.
local function new_id(p)
  counter = counter + 1
  return fmt("%s_%x%04x%04x%x", p, os.time(), math.random(0, 0xffff), math.random(0, 0xffff), counter)
end

-- The store of responses of app.
local function book(app)
  local b = app._responses
  if not b then
    b = { by_id = {}, order = {}, head = 1, n = 0, calls = {} }
    app._responses = b
  end
  return b
end

-- Cancel the run behind session s (a paused or running turn).
local function sess_cancel(s)
  if not s or s.cancelled then return end
  s.cancelled = true
  if s.handle then pcall(s.handle.cancel, s.handle) end
  s.cond:signal()
end

-- Forget response rec.
local function forget(b, rec)
  if b.by_id[rec.id] ~= rec then return end
  b.by_id[rec.id] = nil
  b.n = b.n - 1
  for _, it in ipairs(rec.output) do
    if it.type == "function_call" and b.calls[it.call_id] == rec then b.calls[it.call_id] = nil end
  end
  if rec.sess and rec.sess.current == rec then sess_cancel(rec.sess) end
end

-- Make room for one more response: forget expired ones, then the oldest
-- finished ones beyond MAX_STORED (429 when every kept one still runs).
local function prune(b)
  local now = require("weft").now()
  local order = b.order
  -- drop forgotten ids at the head
  while b.head <= #order and not b.by_id[order[b.head]] do order[b.head] = nil; b.head = b.head + 1 end
  for i = b.head, #order do
    local rec = b.by_id[order[i]]
    if rec and FINAL[rec.status] and rec.created_at + _M.TTL <= now then forget(b, rec) end
  end
  local i = b.head
  while b.n >= _M.MAX_STORED and i <= #order do
    local rec = b.by_id[order[i]]
    if rec and FINAL[rec.status] then forget(b, rec) end
    i = i + 1
  end
  if b.n >= _M.MAX_STORED then
    throw(429, "too_many_responses", fmt("%d responses are in progress (the most kept is %d): wait or cancel one",
                                         b.n, _M.MAX_STORED))
  end
  if b.head > 64 and b.head > #order / 2 then -- compact the id list
    local o = {}
    for j = b.head, #order do if b.by_id[order[j]] then o[#o + 1] = order[j] end end
    b.order, b.head = o, 1
  end
end

-- Responses usage of a weft usage.
local function usage(u)
  u = u or {}
  local i, o = u.input_tokens or 0, u.output_tokens or 0
  return { input_tokens = i, output_tokens = o, total_tokens = u.total_tokens or (i + o),
           input_tokens_details = { cached_tokens = 0 }, output_tokens_details = { reasoning_tokens = 0 } }
end

--- The `response` object of rec.
function _M.object(rec)
  local text = {}
  for _, it in ipairs(rec.output) do
    if it.type == "message" then
      for _, p in ipairs(it.content) do text[#text + 1] = p.text end
    end
  end
  return {
    id = rec.id, object = "response", created_at = rec.created_at, status = rec.status,
    background = rec.background, model = rec.model, instructions = rec.instructions or json.null,
    previous_response_id = rec.previous_response_id or json.null,
    output = rec.output, output_text = concat(text), parallel_tool_calls = true,
    tools = rec.tools or json.array(), tool_choice = "auto", temperature = json.null, top_p = json.null,
    error = rec.error or json.null,
    incomplete_details = rec.incomplete and { reason = rec.incomplete } or json.null,
    usage = rec.usage and usage(rec.usage) or json.null, metadata = json.object(),
    text = { format = { type = "text" } }, store = true,
  }
end

-- Publish one event of rec (fields: the event's own fields).
local function emit(rec, kind, fields)
  rec.seq = rec.seq + 1
  fields.type, fields.sequence_number = kind, rec.seq
  if rec.events then rec.events[#rec.events + 1] = fields end
  rec.cond:signal()
end

-- The open message item of rec, started (item and part events) if none.
local function text_item(rec)
  local it = rec.text_item
  if it then return it end
  it = { type = "message", id = new_id("msg"), status = "in_progress", role = "assistant",
         content = json.array({ { type = "output_text", text = "", annotations = json.array() } }) }
  rec.output[#rec.output + 1] = it
  rec.text_item, rec.text_index = it, #rec.output - 1
  emit(rec, "response.output_item.added", { output_index = rec.text_index, item = {
    type = "message", id = it.id, status = "in_progress", role = "assistant", content = json.array() } })
  emit(rec, "response.content_part.added", { item_id = it.id, output_index = rec.text_index, content_index = 0,
                                             part = { type = "output_text", text = "", annotations = json.array() } })
  return it
end

-- Append text s to rec's open message.
local function text_delta(rec, s)
  if s == "" then return end
  local it = text_item(rec)
  local part = it.content[1]
  part.text = part.text .. s
  emit(rec, "response.output_text.delta", { item_id = it.id, output_index = rec.text_index, content_index = 0,
                                            delta = s, logprobs = json.array() })
end

-- Close rec's open message (if any).
local function text_end(rec)
  local it = rec.text_item
  if not it then return end
  rec.text_item = nil
  it.status = "completed"
  local part = it.content[1]
  emit(rec, "response.output_text.done", { item_id = it.id, output_index = rec.text_index, content_index = 0,
                                           text = part.text, logprobs = json.array() })
  emit(rec, "response.content_part.done", { item_id = it.id, output_index = rec.text_index, content_index = 0,
                                            part = part })
  emit(rec, "response.output_item.done", { output_index = rec.text_index, item = it })
end

-- Add a function_call item to rec.
local function add_call(rec, call_id, name, args)
  text_end(rec)
  local it = { type = "function_call", id = new_id("fc"), call_id = call_id, name = name, arguments = args,
               status = "completed" }
  rec.output[#rec.output + 1] = it
  local idx = #rec.output - 1
  emit(rec, "response.output_item.added", { output_index = idx, item = {
    type = "function_call", id = it.id, call_id = call_id, name = name, arguments = "", status = "in_progress" } })
  emit(rec, "response.function_call_arguments.delta", { item_id = it.id, output_index = idx, delta = args })
  emit(rec, "response.function_call_arguments.done", { item_id = it.id, output_index = idx, name = name,
                                                       arguments = args })
  emit(rec, "response.output_item.done", { output_index = idx, item = it })
end

-- End rec with status (completed, failed, cancelled, incomplete); e =
-- {message, code, status} for a failure.
local function finish(rec, status, e)
  if FINAL[rec.status] then return end
  text_end(rec)
  rec.status = status
  if e then
    rec.error = { code = tostring(e.code or "server_error"), message = errors.scrub(tostring(e.message)) }
    rec.http_status = e.status
  end
  emit(rec, TERMINAL_EVENT[status], { response = _M.object(rec) })
  if not rec.background and not rec.streamed then rec.events = nil end
  local s = rec.sess
  if s and (#s.waiting == 0 or s.current ~= rec) then rec.sess = nil end
end

--- The HTTP status of a failed turn's code: a provider's 4xx as it is,
-- its 5xx 502, a timeout 504, anything else 500.
function _M.status_of(code)
  local s = type(code) == "string" and tonumber(code:match("^http_(%d%d%d)$"))
  if s and s >= 400 and s < 500 then return s end
  if s then return 502 end
  if code == "timeout" then return 504 end
  if code == "connect" or code == "protocol" or code == "provider" then return 502 end
  return 500
end

-- Tell the calls (list of {call_id, name, arguments}) of session s on its
-- current response and complete it: the run waits for their outputs.
local function pause(s, calls)
  local rec = s.current
  local by_call = book(s.app).calls
  for _, c in ipairs(calls) do
    s.waiting[#s.waiting + 1] = c.call_id
    by_call[c.call_id] = rec
    add_call(rec, c.call_id, c.name, c.arguments)
  end
  rec.sess = s
  finish(rec, "completed")
end

-- Wait until every call of s is answered (or s cancelled: raises).
local function await(s)
  while true do
    if s.cancelled then error("cancelled", 0) end
    if #s.waiting == 0 then return end
    s.cond:wait()
  end
end

-- The client's function tool named name of session s: its handler tells
-- the call (with the other client calls of the model's reply) and waits
-- for the client's output.
local function client_handler(s, name)
  return function(args, ctx)
    if s.batch_round ~= s.round or s.bi >= #s.batch then
      local batch = {}
      if s.batch_round ~= s.round then
        for _, d in ipairs(s.deltas) do
          if s.client[d.name] then
            batch[#batch + 1] = { call_id = d.id, name = d.name, arguments = d.arguments ~= "" and d.arguments or "{}" }
          end
        end
      end
      if #batch == 0 or batch[1].name ~= name then
        batch = { { name = name, arguments = json.encode(args) } }
      end
      for i, c in ipairs(batch) do
        if type(c.call_id) ~= "string" or c.call_id == "" then c.call_id = i == 1 and ctx.call_id or new_id("call") end
      end
      s.batch, s.bi, s.batch_round = batch, 0, s.round
      pause(s, batch)
      await(s)
    end
    s.bi = s.bi + 1
    local c = s.batch[s.bi]
    local out = s.answers[c.call_id]
    s.answers[c.call_id] = nil
    if out == nil then error("no output for call " .. tostring(c.call_id), 0) end
    return out
  end
end

-- Receive a stream chunk of the agent behind session s.
local function on_chunk(s, c)
  if s.cancelled then error("cancelled", 0) end
  if type(c) ~= "table" then return end
  if type(c.text) == "string" then text_delta(s.current, c.text)
  elseif type(c.tool_call_delta) == "table" then
    local d = c.tool_call_delta
    if s.open then s.open = false; s.pend = {} end
    local cur = s.pend[d.index]
    if not cur then cur = { arguments = "" }; s.pend[d.index] = cur end
    if d.id and not cur.id then cur.id = d.id end
    if d.name and not cur.name then cur.name = d.name end
    if type(d.arguments) == "string" then cur.arguments = cur.arguments .. d.arguments end
  elseif c.done then
    s.round = s.round + 1
    local list = {}
    for i = 1, #s.pend do list[#list + 1] = s.pend[i] end
    s.deltas, s.pend, s.open = list, {}, true
    if s.usage and type(c.usage) == "table" then
      for k, v in pairs(c.usage) do if type(v) == "number" then s.usage[k] = (s.usage[k] or 0) + v end end
    end
  end
end

-- The agent of target for session s: the stored agent plus the client's
-- function tools (raises 400 naming a clash).
local function with_client_tools(agent, s, tools)
  if not tools or #tools == 0 then return agent end
  local list = {}
  for i, t in ipairs(agent.tools or {}) do list[i] = t end
  for i, t in ipairs(tools) do
    if agent._by_name and agent._by_name[t.name] then
      throw(400, "invalid_tools", fmt("tools[%d]: '%s' is a tool of agent '%s' already", i - 1, t.name, agent.name),
            { field = "tools" })
    end
    local ok, tl = pcall(require("weft.tool").new, { name = t.name, description = t.description,
      parameters = t.parameters, handler = client_handler(s, t.name) })
    if not ok then
      throw(400, "invalid_tools", fmt("tools[%d]: %s", i - 1, tostring(tl)), { field = "tools" })
    end
    list[#list + 1] = tl
    s.client[t.name] = true
  end
  return require("weft.agent").new{
    name = agent.name, instructions = agent.instructions, model = agent.model, tools = list,
    temperature = agent.temperature, max_tokens = agent.max_tokens, max_tool_rounds = agent.max_tool_rounds,
    llm = agent.llm, description = agent.description, tool_choice = agent.tool_choice,
    memory = agent.memory, reducer = agent.reducer,
  }
end

-- The workflow input of messages msgs: the text of one user message, else
-- the list (as workflow:as_agent passes it).
local function wf_input(msgs)
  if #msgs == 1 and msgs[1].role == "user" then return msgs[1].content end
  return json.array(msgs)
end

-- Run session s in a task: its agent on s.input, or its workflow (pausing
-- on requests); the outcome goes to s.current.
local function start(s)
  local weft = require "weft"
  weft.go(function()
    local ok, err = pcall(function()
      if s.agent then
        local r, aerr, code = s.agent:stream(s.input, function(c) on_chunk(s, c) end)
        local rec = s.current
        if s.cancelled then return end
        if not r then
          return finish(rec, "failed", { message = aerr, code = code, status = _M.status_of(code) })
        end
        if not rec.text_item and (r.text or "") ~= "" and #rec.output == 0 then text_delta(rec, r.text) end
        local hist = {}
        for i = s.skip + 1, #r.messages do hist[#hist + 1] = r.messages[i] end
        rec.history, rec.usage = hist, r.usage
        return finish(rec, r.finish_reason == "length" and "incomplete" or "completed")
      end
      local h = s.wf:spawn(s.input, { events = false, on_event = function(ev)
        if ev.type == "agent_update" and type(ev.data) == "table" and type(ev.data.text) == "string" then
          text_delta(s.current, ev.data.text)
        end
      end })
      s.handle = h
      while true do
        local res = h:wait()
        if s.cancelled then return end
        if res.status == "idle" and res.requests and #res.requests > 0 then
          local calls = {}
          for i, q in ipairs(res.requests) do
            local cid = tostring(q.request_id)
            s.req_ids[cid] = q.request_id
            calls[i] = { call_id = cid, name = _M.REQUEST_TOOL,
                         arguments = json.encode({ executor_id = q.executor_id, request = q.request }) }
          end
          pause(s, calls)
          await(s)
          for cid, v in pairs(s.answers) do
            local okr, rerr = h:respond(s.req_ids[cid], v)
            if not okr then
              return finish(s.current, "failed", { message = rerr, code = "request", status = 409 })
            end
            s.req_ids[cid] = nil
          end
          s.answers = {}
        elseif res.status == "completed" then
          local rec = s.current
          local text = require("weft.agent").outputs_text(res.outputs)
          if not rec.text_item then text_delta(rec, text) end
          local hist = {}
          for i = s.skip + 1, #s.msgs do hist[#hist + 1] = s.msgs[i] end
          hist[#hist + 1] = { role = "assistant", content = text }
          rec.history, rec.usage = hist, {}
          return finish(rec, "completed")
        else
          return finish(s.current, "failed", { code = "workflow", status = 500,
            message = fmt("workflow '%s' %s: %s", s.wf.name, tostring(res.status), tostring(res.error or "no error")) })
        end
      end
    end)
    if not ok then
      if s.cancelled then return end
      local msg = errors.is_error(err) and err.message or tostring(err)
      finish(s.current, "failed", { message = msg, code = "agent_failed", status = 500 })
    end
  end)
end

-- The shapes of input items, content parts and tools (weft.check specs,
-- open: other OpenAI fields are accepted and ignored), checked with the
-- body's checker (errors.check_body) item by item.
local function item_schema(props)
  return errors.schema("responses.create", { additionalProperties = true, properties = props })
end
local CONTENT = { type = { "string", "array" }, expect = "a string or a list of text parts" }
local PART = item_schema({
  type = { enum = { "input_text", "output_text", "text" }, required = true,
           expect = "input_text or output_text (only text parts are supported)" },
  text = { type = "string", required = true },
})
local ITEMS = {
  message = item_schema({
    type = { enum = { "message" } },
    role = { enum = { "user", "system", "developer", "assistant" }, required = true },
    content = CONTENT,
  }),
  function_call_output = item_schema({
    type = { enum = { "function_call_output" } },
    call_id = { type = "string", minLength = 1, required = true },
    output = { type = { "string", "array" }, required = true, expect = "a string or a list of text parts" },
  }),
  function_call = item_schema({
    type = { enum = { "function_call" } },
    call_id = { type = "string", minLength = 1, required = true },
    name = { type = "string", minLength = 1, required = true },
    arguments = { type = "string", expect = "a JSON object as text" },
  }),
}
local TOOL = item_schema({
  type = { enum = { "function" }, required = true, expect = "'function' (only function tools are supported)" },
  name = { type = "string", required = true, expect = "1-64 of a-z A-Z 0-9 _ -",
           test = function(v) return #v <= 64 and v:match("^[%w_%-]+$") ~= nil end },
  description = { type = "string" },
  parameters = { type = "object" },
})

-- Check value v (an item, a part or a tool at where, e.g. "input[2]")
-- against spec s: 400 `code` naming where and the field.
local function check_at(s, v, where, code)
  if type(v) ~= "table" or json.is_array(v) and next(v) ~= nil then
    throw(400, code, fmt("responses.create: %s must be an object", where), { field = where })
  end
  errors.check_body(s, v, code, "responses.create: " .. where, where .. ".")
end

-- Text of a content value (string or list of text parts) at where.
local function content_text(c, where)
  if type(c) == "string" then return c end
  if c == nil or c == json.null then return "" end
  local parts = {}
  for j, p in ipairs(c) do
    check_at(PART, p, fmt("%s.content[%d]", where, j - 1), "invalid_input")
    parts[j] = p.text
  end
  return concat(parts)
end

local ROLES = { user = "user", system = "system", developer = "system", assistant = "assistant" }

--- The weft messages and function outputs of a Responses input (a string
-- or a list of input items, each checked against its type's schema):
-- msgs, outputs (list of {call_id, output}). Raises 400 naming the item.
function _M.input(input)
  local msgs, outs = {}, {}
  if type(input) == "string" then return { { role = "user", content = input } }, outs end
  if input == nil or input == json.null then return msgs, outs end
  if type(input) ~= "table" or not json.is_array(input) then
    throw(400, "invalid_input", "input must be a string or a list of input items", { field = "input" })
  end
  if #input > _M.MAX_ITEMS then
    throw(400, "invalid_input", fmt("input has %d items (at most %d)", #input, _M.MAX_ITEMS), { field = "input" })
  end
  local calls = {}
  for i, it in ipairs(input) do
    local where = fmt("input[%d]", i - 1)
    local t = type(it) == "table" and it.type or nil
    if t == nil then t = "message" end
    local spec = ITEMS[t]
    if not spec then
      throw(400, "invalid_input", fmt("%s.type '%s' is not supported (message, function_call, function_call_output)",
            where, tostring(t)), { field = where .. ".type" })
    end
    check_at(spec, it, where, "invalid_input")
    if t == "message" then
      msgs[#msgs + 1] = { role = ROLES[it.role], content = content_text(it.content, where) }
    elseif t == "function_call_output" then
      local out = it.output
      if type(out) == "table" then out = content_text(out, where) end
      outs[#outs + 1] = { call_id = it.call_id, output = out }
      msgs[#msgs + 1] = { role = "tool", tool_call_id = it.call_id, content = out }
    else -- function_call
      local a = json.decode(type(it.arguments) == "string" and it.arguments ~= "" and it.arguments or "{}")
      if type(a) ~= "table" then
        throw(400, "invalid_input", where .. ".arguments must be a JSON object text", { field = where .. ".arguments" })
      end
      local last = msgs[#msgs]
      if not (last and last.role == "assistant" and last.tool_calls and calls[last]) then
        last = { role = "assistant", content = "", tool_calls = json.array() }
        calls[last] = true
        msgs[#msgs + 1] = last
      end
      last.tool_calls[#last.tool_calls + 1] = { id = it.call_id, name = it.name, arguments = a }
    end
  end
  return msgs, outs
end

--- The client's function tools of a create body (a list of {type =
-- "function", name, description, parameters}, each checked against the
-- tool schema); raises 400 naming the tool.
function _M.tools(tools)
  local out = {}
  if tools == nil or tools == json.null then return out end
  if #tools > _M.MAX_TOOLS then
    throw(400, "invalid_tools", fmt("tools has %d entries (at most %d)", #tools, _M.MAX_TOOLS), { field = "tools" })
  end
  local seen = {}
  for i, t in ipairs(tools) do
    local where = fmt("tools[%d]", i - 1)
    check_at(TOOL, t, where, "invalid_tools")
    if seen[t.name] then
      throw(400, "invalid_tools", fmt("%s: duplicate name '%s'", where, t.name), { field = where .. ".name" })
    end
    seen[t.name] = true
    local p = t.parameters
    if p == nil or p == json.null then p = { type = "object", properties = json.object() } end
    out[#out + 1] = { name = t.name, description = t.description, parameters = p }
  end
  return out
end

-- A new session: the state of one run across the responses that pause it.
local function new_session(app)
  return { app = app, cond = require("weft").cond(), waiting = {}, answers = {}, req_ids = {}, client = {},
           deltas = {}, pend = {}, open = true, round = 0, batch = {}, bi = 0, skip = 0 }
end

-- Give outs (list of {call_id, output}) to the waiting calls of session
-- s; raises 400 unless they answer exactly its calls.
local function answer(s, outs, prev_id)
  local want = {}
  for _, cid in ipairs(s.waiting) do want[cid] = true end
  local got = {}
  for i, o in ipairs(outs) do
    if not want[o.call_id] then
      throw(400, "invalid_input", fmt("function_call_output %d: response '%s' has no pending call '%s'", i - 1,
            prev_id, o.call_id), { field = "input" })
    end
    got[o.call_id] = o.output
  end
  for _, cid in ipairs(s.waiting) do
    if got[cid] == nil then
      throw(400, "invalid_input", fmt("response '%s' waits for the output of call '%s' (a function_call_output item)",
            prev_id, cid), { field = "input" })
    end
  end
  for cid, v in pairs(got) do
    if s.req_ids[cid] ~= nil then
      local dv = json.decode(v)
      if dv == nil then dv = v end
      if dv == json.null then dv = v end
      s.answers[cid] = dv
    else
      s.answers[cid] = v
    end
  end
  local by_call = book(s.app).calls
  for _, cid in ipairs(s.waiting) do by_call[cid] = nil end
  s.waiting = {}
end

--- Begin a turn for app: target = {model, msgs (new weft messages), outs
-- (function outputs), instructions, tools (client function tools), prev
-- (the previous response or nil), background}. Returns the new response
-- record (running in a task). Raises API errors (400, 404, 429).
function _M.begin(app, t)
  local b = book(app)
  prune(b)
  local weft = require "weft"
  local rec = { id = new_id("resp"), created_at = math.floor(weft.now()), status = "in_progress",
                background = t.background == true, model = t.model, instructions = t.instructions,
                previous_response_id = t.prev and t.prev.id or nil, output = json.array(), seq = -1,
                events = {}, cond = weft.cond(), tools = t.tools_raw, streamed = t.stream }
  local prev = t.prev
  local s
  if prev and prev.sess and prev.sess.current == prev and #prev.sess.waiting > 0 then
    -- continue the paused run with the client's outputs
    s = prev.sess
    if t.model ~= prev.model then
      throw(400, "invalid_request", fmt("response '%s' waits for function outputs of model '%s', not '%s'", prev.id,
            prev.model, tostring(t.model)), { field = "model" })
    end
    if #t.msgs > #t.outs then
      throw(400, "invalid_input", fmt("response '%s' waits for function_call_output items only", prev.id),
            { field = "input" })
    end
    answer(s, t.outs, prev.id)
    prev.sess = nil
    s.current, rec.sess = rec, s
  else
    -- outputs replayed statelessly follow their function_call items
    local known = {}
    for _, list in ipairs({ prev and prev.history or {}, t.msgs }) do
      for _, m in ipairs(list) do
        for _, c in ipairs(m.tool_calls or {}) do known[c.id] = true end
      end
    end
    for _, o in ipairs(t.outs) do
      if not known[o.call_id] then
        throw(400, "invalid_input", fmt("function_call_output for call '%s' without its function_call item or a "
              .. "response waiting for it (previous_response_id)", o.call_id), { field = "input" })
      end
    end
    if prev and not prev.history then
      throw(400, "invalid_previous_response", fmt("response '%s' is %s: it has no conversation to continue", prev.id,
            prev.status), { field = "previous_response_id" })
    end
    local kind, target = require("weft.serve.openai").target(app, t.model)
    s = new_session(app)
    s.current, rec.sess = rec, s
    local msgs = {}
    if t.instructions and t.instructions ~= "" then
      msgs[1] = { role = "system", content = t.instructions }
      s.skip = 1
    end
    for _, m in ipairs(prev and prev.history or {}) do msgs[#msgs + 1] = m end
    for _, m in ipairs(t.msgs) do msgs[#msgs + 1] = m end
    if #msgs == s.skip then throw(400, "invalid_input", "input is empty", { field = "input" }) end
    s.msgs = msgs
    if kind == "agent" then
      s.agent = with_client_tools(target, s, t.tools)
      s.input = msgs
    else
      if t.tools and #t.tools > 0 then
        throw(400, "invalid_tools", "tools are for agent models; a workflow tells its requests as calls of '"
              .. _M.REQUEST_TOOL .. "'", { field = "tools" })
      end
      s.wf = target
      local plain = {}
      for i = s.skip + 1, #msgs do plain[#plain + 1] = msgs[i] end
      s.input = wf_input(#plain > 0 and plain or msgs)
    end
  end
  b.by_id[rec.id] = rec
  b.n = b.n + 1
  b.order[#b.order + 1] = rec.id
  emit(rec, "response.created", { response = _M.object(rec) })
  emit(rec, "response.in_progress", { response = _M.object(rec) })
  if s.current == rec and not s.agent and not s.wf then error("session without a target", 0) end
  if rec.sess == s and s.handle == nil and s.task == nil then
    s.task = true
    start(s)
  else
    s.cond:signal() -- the paused run continues
  end
  return rec
end

--- The response id of app, or nil.
function _M.get(app, id)
  return book(app).by_id[id]
end

--- Wait until response rec is finished.
function _M.wait(rec)
  while not FINAL[rec.status] do rec.cond:wait() end
end

--- Give the events of response rec after sequence number after to
-- put(event) as they come, until its terminal event; false when put
-- returned false (the client left).
function _M.follow(rec, after, put)
  local events = rec.events or {}
  local i = 1
  while events[i] and events[i].sequence_number <= after do i = i + 1 end
  while true do
    while events[i] do
      if not put(events[i]) then return false end
      i = i + 1
    end
    if FINAL[rec.status] then return true end
    rec.cond:wait()
  end
end

-- Stream the events of rec after sequence number after to res (SSE).
local function stream_events(rec, res, after)
  local w = res:stream(200, { ["content-type"] = "text/event-stream", ["cache-control"] = "no-cache" })
  res.streaming = true
  local done = _M.follow(rec, after, function(ev)
    return w:write("event: " .. ev.type .. "\ndata: " .. json.encode(ev) .. "\n\n")
  end)
  if done then w:close() end
end

-- Cancel response rec (background only).
local function cancel(rec)
  if FINAL[rec.status] then return end
  local s = rec.sess
  if s and s.current == rec then sess_cancel(s) end
  finish(rec, "cancelled")
end

--- The API error object of a failed response rec.
function _M.failure(rec)
  local e = rec.error or {}
  return errors.new(rec.http_status or 500, e.code or "server_error", e.message or "the response failed")
end

--- Install the /v1/responses routes on app.
function _M.install(app)
  app:route("POST", "/v1/responses", function(self, req, _, res)
    local body = self:body(req, { required = true })
    errors.check_body(_M.BODY, body, "invalid_request")
    local msgs, outs = _M.input(body.input)
    local tools = _M.tools(body.tools)
    local prev
    if body.previous_response_id ~= nil then
      prev = _M.get(self, body.previous_response_id)
      if not prev then
        throw(400, "previous_response_not_found", fmt("previous response '%s' does not exist (or has expired)",
              body.previous_response_id), { field = "previous_response_id" })
      end
      if not FINAL[prev.status] then
        throw(400, "invalid_previous_response", fmt("previous response '%s' is still %s", prev.id, prev.status),
              { field = "previous_response_id" })
      end
    end
    local tools_raw = json.array()
    for i, t in ipairs(tools) do
      tools_raw[i] = { type = "function", name = t.name, description = t.description or json.null,
                       parameters = t.parameters, strict = false }
    end
    local rec = _M.begin(self, { model = body.model, msgs = msgs, outs = outs, instructions = body.instructions,
                                 tools = tools, tools_raw = tools_raw, prev = prev, background = body.background,
                                 stream = body.stream == true })
    if body.stream then
      stream_events(rec, res, -1)
      -- done or the client left: a foreground response keeps no events
      rec.streamed = false
      if not rec.background and FINAL[rec.status] then rec.events = nil end
      return
    end
    if rec.background then return 200, _M.object(rec) end
    _M.wait(rec)
    if rec.status == "failed" then error(_M.failure(rec), 0) end
    return 200, _M.object(rec)
  end)

  app:route("GET", "/v1/responses/{id}", function(self, req, p, res)
    local rec = _M.get(self, p.id)
    if not rec then errors.not_found("response", p.id) end
    local q = req.query or {}
    if q.stream == "true" then
      if not rec.background then
        throw(400, "invalid_request", "only background responses can be streamed by id", { field = "stream" })
      end
      local after = tonumber(q.starting_after or "-1")
      if not after then throw(400, "invalid_request", "starting_after must be a number", { field = "starting_after" }) end
      return stream_events(rec, res, after)
    end
    return 200, _M.object(rec)
  end)

  app:route("POST", "/v1/responses/{id}/cancel", function(self, _, p)
    local rec = _M.get(self, p.id)
    if not rec then errors.not_found("response", p.id) end
    if not rec.background then
      throw(400, "invalid_request", "only background responses can be cancelled", { field = "background" })
    end
    cancel(rec)
    return 200, _M.object(rec)
  end)

  app:route("DELETE", "/v1/responses/{id}", function(self, _, p)
    local b = book(self)
    local rec = b.by_id[p.id]
    if not rec then errors.not_found("response", p.id) end
    cancel(rec)
    forget(b, rec)
    return 200, { id = p.id, object = "response.deleted", deleted = true }
  end)
end

return _M
