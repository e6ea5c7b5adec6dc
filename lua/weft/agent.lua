--- weft.agent — LLM agents (see docs/agents.md): `weft.agent{name,
-- instructions, model, tools, temperature, max_tokens, memory, reducer,
-- max_tool_rounds, llm}` makes a stateless agent; `agent:run(input,
-- thread)` appends the input to the thread, calls the model with the
-- instructions, the memory context and the (reduced) thread, runs the tools
-- the model asks for (handlers may yield) and calls it again until it
-- answers, up to max_tool_rounds rounds; `agent:stream` does the same with
-- streamed model calls. The thread changes only when the model has
-- answered: a failed run (nil, err, code) or a cancelled one leaves it as
-- it was. `agent:as_executor(id)` wraps an agent as a workflow executor,
-- and this module installs `Workflow:as_agent(name)` (a workflow behind the
-- agent interface). Everything that talks to a model yields
-- inside executors and tasks and runs the loop on the main thread.
-- Uses weft.json, weft.thread, weft.tool, weft.executor, weft.workflow,
-- weft.check, weft.llm.common (option schemas), weft.llm (on first use).
local json = require "weft.json"
local thread_mod = require "weft.thread"
local tool_mod = require "weft.tool"
local executor = require "weft.executor"
local workflow = require "weft.workflow"
local check = require "weft.check"

local type, ipairs, pairs, tostring, error, setmetatable, getmetatable, pcall, require =
  type, ipairs, pairs, tostring, error, setmetatable, getmetatable, pcall, require
local sformat, concat = string.format, table.concat
local callable, is_thread = check.callable, thread_mod.is_thread
local norm_input, new_thread = thread_mod.input, thread_mod.new

local _M = {}

--- Default number of model -> tools -> model rounds per run.
_M.MAX_TOOL_ROUNDS = 8

local Agent = {}
Agent.__index = Agent
Agent.__tostring = function(a) return "agent '" .. a.name .. "'" end
_M.Agent = Agent

-- The weft.llm.chat options an agent's `llm` table takes (connection and
-- retries), checked by llm.chat's own property schemas.
local CHAT = require("weft.llm.common").OPTIONS.properties
local LLM = {}
for _, k in ipairs({ "base_url", "api_key", "retries", "timeout", "idle_timeout", "retry_base", "retry_factor",
                     "retry_max", "retry_after_max" }) do
  LLM[k] = CHAT[k]
end

--- The spec of weft.agent options (weft.check); weft.agents shares it.
_M.OPTIONS = check.spec("weft.agent", { properties = {
  name = { type = "string", minLength = 1 },
  instructions = { type = "string", aliases = { "system", "system_prompt", "prompt", "instruction" } },
  model = { type = "string", expect = 'a string "provider:name"' },
  tools = { type = "table", expect = "a list of weft.tool objects", aliases = { "functions" } },
  temperature = { type = "number" },
  max_tokens = { type = "integer", minimum = 1, expect = "a positive integer" },
  memory = { type = "table", expect = "a provider table {before_invoke, after_invoke}", properties = {
    before_invoke = { type = "callable" }, after_invoke = { type = "callable" } },
    additionalProperties = true },
  reducer = { type = "callable", expect = "a function(messages) -> messages" },
  max_tool_rounds = { type = "integer", minimum = 0, aliases = { "max_rounds", "max_iterations", "max_turns" } },
  llm = { type = "table", expect = "a table of weft.llm.chat options", properties = LLM },
  description = { type = "string" },
  -- weft.guard objects or functions on the model calls (docs/guardrails.md)
  guards = { type = "any", expect = "a list of weft.guard objects or functions", aliases = { "guardrails" } },
  tool_choice = { type = { "string", "table" }, test = function(tc)
    return tc == "auto" or tc == "none" or tc == "required" or (type(tc) == "table" and type(tc.name) == "string")
  end, expect = "'auto', 'none', 'required' or {name = tool}" },
} })

local llm_mod
-- weft.llm, required on first use (loading weft must not load it).
local function llm()
  if not llm_mod then llm_mod = require "weft.llm" end
  return llm_mod
end

--- True when v is an agent made by weft.agent.
function _M.is_agent(v) return getmetatable(v) == Agent end

--- Create an agent (see the module comment); raises naming the agent and
-- the field on bad options.
function _M.new(opts, level)
  level = (level or 1) + 1
  if type(opts) ~= "table" then error("weft.agent: expects a table {name, instructions, model, ...}", level) end
  local name = opts.name
  if type(name) ~= "string" or name == "" then
    error("weft.agent: name must be a non-empty string, got " .. type(name), level)
  end
  local function bad(msg) error(sformat("weft.agent: agent '%s': %s", name, msg), level + 1) end
  check.options(_M.OPTIONS, opts, level, sformat("weft.agent: agent '%s'", name))
  local model = opts.model
  if model == nil then
    model = require("weft.llm.common").getenv("WEFT_MODEL")
    if model == nil or model == "" then
      error(sformat("weft.agent: agent '%s' has no model (set model = \"provider:name\", or WEFT_MODEL)", name), level)
    end
  end
  local p, perr = llm().parse_model(model)
  if not p then bad(perr) end
  local t, mt = opts.temperature, opts.max_tokens
  local rounds = opts.max_tool_rounds
  if rounds == nil then rounds = _M.MAX_TOOL_ROUNDS end
  local tools, by_name, specs = {}, {}, nil
  if opts.tools ~= nil then
    for i, tl in ipairs(opts.tools) do
      if not tool_mod.is_tool(tl) then
        if type(tl) ~= "table" then bad(sformat("tools[%d] must be a weft.tool, got %s", i, type(tl))) end
        local ok, r = pcall(tool_mod.new, tl)
        if not ok then bad(sformat("tools[%d]: %s", i, tostring(r))) end
        tl = r
      end
      if by_name[tl.name] then bad(sformat("tools[%d]: duplicate tool name '%s'", i, tl.name)) end
      by_name[tl.name] = tl
      tools[i] = tl
    end
    if #tools > 0 then
      specs = {}
      for i, tl in ipairs(tools) do specs[i] = tl:spec() end
    end
  end
  local mem, tc = opts.memory, opts.tool_choice
  local extra = {}
  for k, v in pairs(opts.llm or {}) do extra[k] = v end
  local names = {}
  for i, tl in ipairs(tools) do names[i] = tl.name end
  local guards = opts.guards ~= nil
    and require("weft.guard").list(opts.guards, sformat("weft.agent: agent '%s'", name), level) or nil
  return setmetatable({
    name = name, instructions = opts.instructions, model = model, tools = tools,
    temperature = t, max_tokens = mt, memory = mem, reducer = opts.reducer,
    max_tool_rounds = rounds, llm = extra, description = opts.description, tool_choice = tc,
    _by_name = by_name, _specs = specs, _tool_names = concat(names, ", "), _guards = guards,
    _system = opts.instructions and opts.instructions ~= "" and
              { role = "system", content = opts.instructions } or nil,
  }, Agent)
end

--- A new thread for this agent (metadata.agent = the agent's name).
function Agent:new_thread()
  return new_thread { metadata = { agent = self.name } }
end

-- The tool result text of one call (never raises).
local function run_tool(self, call, thread)
  local tl = self._by_name[call.name]
  if not tl then
    local avail = self._tool_names ~= "" and (" (available: " .. self._tool_names .. ")") or " (this agent has no tools)"
    return tool_mod.error_result(sformat("unknown tool '%s'%s", tostring(call.name), avail))
  end
  local _, text = tl:invoke(call.arguments, { agent = self.name, thread = thread, call_id = call.id })
  return text
end

-- Copy a reply's tool calls into the thread's form (ids always set).
local function own_calls(calls, round)
  local out = json.array()
  for i, c in ipairs(calls) do
    local a = c.arguments
    if a == nil or a == json.null then a = json.object() end
    out[i] = { id = c.id or sformat("call_%d_%d", round, i), name = c.name, arguments = a }
  end
  return out
end

-- Extra context messages from the memory provider (raises on a bad list).
local function memory_context(self, thread, history)
  local mem = self.memory
  if not (mem and mem.before_invoke) then return nil end
  local list = mem.before_invoke(thread, history, self)
  if list == nil then return nil end
  if type(list) ~= "table" then error("memory before_invoke must return a list of messages, got " .. type(list), 0) end
  if list.role ~= nil then list = { list } end
  if list[1] == nil then return nil end
  local out = {}
  for i, m in ipairs(list) do out[i] = thread_mod.message(m, sformat("memory context[%d]", i)) end
  return out
end

-- The thread's messages followed by the run's pending ones (a new list).
local function history(thread, pending)
  local msgs = thread.messages
  local out, n = {}, #msgs
  for i = 1, n do out[i] = msgs[i] end
  for i = 1, #pending do out[n + i] = pending[i] end
  return out
end

-- The messages of the next model call: instructions, memory context, then
-- the thread and the run's pending messages through the reducer.
local function request_messages(self, extra, thread, pending)
  local msgs, n = {}, 0
  if self._system then n = 1; msgs[1] = self._system end
  if extra then
    for i = 1, #extra do msgs[n + i] = extra[i] end
    n = n + #extra
  end
  if self.reducer then
    local hist = self.reducer(history(thread, pending))
    if type(hist) ~= "table" then error("reducer must return a list of messages, got " .. type(hist), 0) end
    for i = 1, #hist do msgs[n + i] = hist[i] end
    return msgs
  end
  local tm = thread.messages
  for i = 1, #tm do msgs[n + i] = tm[i] end
  n = n + #tm
  for i = 1, #pending do msgs[n + i] = pending[i] end
  return msgs
end

-- The options of one weft.llm.chat call.
local function chat_opts(self, msgs, on_chunk)
  local o = {
    model = self.model, messages = msgs, tools = self._specs, tool_choice = self._specs and self.tool_choice,
    temperature = self.temperature, max_tokens = self.max_tokens, stream = on_chunk,
    agent = on_chunk and self.name or nil,
  }
  for k, v in pairs(self.llm) do o[k] = v end
  return o
end

local guard_mod, task_current, guard_plan
-- The guards of a run of agent self by stage, with their info, or nil: the
-- process's guardrails, the guardrails and workflow guards of the run the
-- caller works for (if any), then the agent's own.
local function guards_of(self)
  local own = self._guards
  if not task_current then
    task_current = require("weft.task").current
    guard_plan = require("weft.context").guard_plan
  end
  local run, _, exec = task_current()
  local plan = guard_plan(run) -- without a run: the process's guardrails
  local base = plan and plan.agent
  if not base and not own then return nil end
  guard_mod = guard_mod or require "weft.guard"
  local gl = { info = { agent = self.name, executor_id = exec, run_id = run and run.id } }
  for _, s in ipairs(guard_mod.STAGES) do gl[s] = guard_mod.at_stage(base and base[s], own, s) end
  return gl
end

-- v after the guards of gl at stage (field: the root of the paths), or
-- nil, the block message, "guardrail".
local function guarded(gl, stage, v, field, tool)
  local info = gl.info
  info.field, info.tool = field, tool
  return guard_mod.try(gl[stage], stage, v, info)
end

-- Stream the guarded reply res of a model call that was held back (see
-- turn) as the call would have: its text in one {text} chunk, then
-- {done, usage, finish_reason}, each named after the agent, to on_chunk
-- and, inside a workflow, as agent_update events of the invocation.
-- Tool calls are not streamed as deltas (the reply's tool_calls has them).
local function replay(self, on_chunk, res)
  local inv = require("weft.invocation").current()
  local function emit(chunk)
    chunk.agent = self.name
    if inv then inv:publish_chunk(chunk) end
    on_chunk(chunk)
  end
  if res.text and res.text ~= "" then emit({ text = res.text }) end
  emit({ done = true, usage = res.usage, finish_reason = res.finish_reason })
end

-- The run itself, on the run's pending messages (the input): returns the
-- result, or nil, err, code. The thread changes only when the model has
-- answered (the pending messages are appended at once), so a failed or
-- cancelled run leaves it as it was; a failing after_invoke removes them
-- again. Raises only for errors of user callbacks (the stream callback).
local function turn(self, thread, pending, on_chunk)
  local ok, extra = true, nil
  if self.memory and self.memory.before_invoke then
    ok, extra = pcall(memory_context, self, thread, history(thread, pending))
    if not ok then return nil, sformat("agent '%s': memory: %s", self.name, tostring(extra)), "memory" end
  end
  local chat = llm().chat
  local usage = { input_tokens = 0, output_tokens = 0, total_tokens = 0 }
  local rounds = 0
  local res
  local gl = guards_of(self)
  while true do
    local rok, req = pcall(request_messages, self, extra, thread, pending)
    if not rok then return nil, sformat("agent '%s': reducer: %s", self.name, tostring(req)), "reducer" end
    local err, code
    if gl and gl.input then
      req, err = guarded(gl, "input", req, "messages")
      if not req then return nil, err, "guardrail" end
    end
    -- a reply that guards read (output, tool calls) is not streamed live:
    -- its chunks would leave before the guards ran; once they passed, the
    -- guarded reply is streamed (replay)
    local held = on_chunk and gl and (gl.output or gl.tool_call) and on_chunk
    res, err, code = chat(chat_opts(self, req, not held and on_chunk or nil))
    if not res then return nil, sformat("agent '%s': %s", self.name, tostring(err)), code end
    if gl and gl.output and res.text and res.text ~= "" then
      local text
      text, err = guarded(gl, "output", res.text, "output.text")
      if not text then return nil, err, "guardrail" end
      res.text = text
    end
    local u = res.usage
    if u then
      usage.input_tokens = usage.input_tokens + (u.input_tokens or 0)
      usage.output_tokens = usage.output_tokens + (u.output_tokens or 0)
      usage.total_tokens = usage.total_tokens + (u.total_tokens or 0)
    end
    local calls = res.tool_calls
    if not calls or #calls == 0 then
      if held then replay(self, held, res) end
      pending[#pending + 1] = { role = "assistant", content = res.text or "" }
      break
    end
    if rounds >= self.max_tool_rounds then
      return nil, sformat("agent '%s': exceeded max_tool_rounds (%d)", self.name, self.max_tool_rounds),
             "max_tool_rounds"
    end
    rounds = rounds + 1
    local own = own_calls(calls, rounds)
    if gl and gl.tool_call then
      for _, c in ipairs(own) do
        local a, gerr = guarded(gl, "tool_call", c.arguments, "tool_call.arguments", c.name)
        if a == nil then return nil, gerr, "guardrail" end
        c.arguments = a
      end
    end
    if held then replay(self, held, res) end
    pending[#pending + 1] = { role = "assistant", content = res.text or "", tool_calls = own }
    for _, c in ipairs(own) do
      local text = run_tool(self, c, thread)
      if gl and gl.tool_result then
        local gerr
        text, gerr = guarded(gl, "tool_result", text, "tool_result", c.name)
        if text == nil then return nil, gerr, "guardrail" end
      end
      pending[#pending + 1] = { role = "tool", tool_call_id = c.id, name = c.name, content = text }
    end
  end
  -- commit
  local msgs = thread.messages
  local start = #msgs
  for i = 1, #pending do msgs[start + i] = pending[i] end
  local mem = self.memory
  if mem and mem.after_invoke then
    local mok, merr = pcall(mem.after_invoke, thread, pending, self)
    if not mok then
      for i = #msgs, start + 1, -1 do msgs[i] = nil end
      return nil, sformat("agent '%s': memory: %s", self.name, tostring(merr)), "memory"
    end
  end
  local last = res.tool_calls
  return {
    text = res.text or "", tool_calls = last and own_calls(last, rounds + 1) or json.array(),
    usage = usage, messages = pending, thread = thread, finish_reason = res.finish_reason,
  }
end

-- Shared body of run and stream.
local function run(self, input, thread, on_chunk, what)
  if getmetatable(self) ~= Agent then error(what .. ": call it as agent:" .. what .. "(...)", 3) end
  if thread == nil then
    thread = self:new_thread()
  elseif not is_thread(thread) then
    error(sformat("agent '%s': %s: thread must be a weft.thread (agent:new_thread()), got %s",
                  self.name, what, type(thread)), 3)
  end
  local pending = {}
  if input ~= nil then
    local ok, list = pcall(norm_input, input, "input")
    if not ok then error(sformat("agent '%s': %s: %s", self.name, what, tostring(list)), 3) end
    pending = list
  elseif #thread.messages == 0 then
    error(sformat("agent '%s': %s: no input and the thread is empty", self.name, what), 3)
  end
  local res, err, code = turn(self, thread, pending, on_chunk)
  return res, err, code
end

-- The thread and on_chunk of a stream(input, [thread,] on_chunk) call of
-- agent a (either kind); raises at the caller of stream unless on_chunk
-- is callable.
local function stream_args(a, thread, on_chunk)
  if on_chunk == nil and callable(thread) then thread, on_chunk = nil, thread end
  if not callable(on_chunk) then
    error(sformat("agent '%s': stream: on_chunk must be a function", tostring(a.name)), 3)
  end
  return thread, on_chunk
end

--- Run the agent on input (a string, a message or a list of messages;
-- nil continues the thread as it is) and thread (default: a new one).
-- Returns {text, tool_calls, usage, messages, thread, finish_reason} or
-- nil, err, code.
function Agent:run(input, thread)
  local res, err, code = run(self, input, thread, nil, "run") -- not a tail call: error levels
  return res, err, code
end

--- Like run, with streamed model calls: on_chunk(chunk) receives every
-- weft.llm stream chunk ({text}, {tool_call_delta}, {done, usage,
-- finish_reason}) of every model call. stream(input, on_chunk) uses a
-- new thread.
function Agent:stream(input, thread, on_chunk)
  thread, on_chunk = stream_args(self, thread, on_chunk)
  local res, err, code = run(self, input, thread, on_chunk, "stream")
  return res, err, code
end

-- The input and thread of an executor message: a string, a message, a
-- list of messages, {thread = serialized, input = ...}, {input = ...}, the
-- {executor_id, response, conversation} another agent executor sent (its
-- conversation), or a pattern's {messages = ..., text} (its messages).
local function executor_input(agent, msg)
  if type(msg) == "table" and msg.role == nil and msg[1] == nil then
    if msg.thread ~= nil then
      local th = msg.thread
      if type(th) == "string" then
        th = thread_mod.deserialize(th)
      elseif not is_thread(th) then
        error(sformat("agent '%s': thread must be a serialized thread (thread:serialize()), got %s",
                      agent.name, type(th)), 0)
      end
      return msg.input, th
    elseif msg.conversation ~= nil then
      return msg.conversation, nil
    elseif msg.messages ~= nil then
      return msg.messages, nil
    elseif msg.input ~= nil then
      return msg.input, nil
    end
  end
  return msg, nil
end

local EXEC_PROPS = {}
for _, k in ipairs({ "retry", "timeout", "on_error", "kind", "description" }) do
  EXEC_PROPS[k] = executor.OPTIONS.properties[k]
end
local EXEC_OPTS = check.spec("as_executor", { properties = EXEC_PROPS })

--- An executor (id defaults to the agent's name) running the agent on each
-- message (see executor_input) in a new thread, or in the serialized
-- thread it carries; it sends {executor_id, response, conversation}. A
-- weft.agent or a workflow agent runs with agent:stream, so its model
-- chunks are agent_update events of the executor (a remote agent runs).
-- opts: executor options (retry, timeout, on_error, kind, description).
function Agent:as_executor(id, opts)
  local agent = self
  -- on_chunk of the streamed run: the chunks are already agent_update
  -- events of the invocation (weft.llm, nested runs)
  local function ignore_chunk() end
  id = id or self.name
  if type(id) ~= "string" or id == "" then error("as_executor: id must be a non-empty string", 2) end
  local eo = { description = self.description or ("agent '" .. self.name .. "'") }
  for k, v in pairs(check.options(EXEC_OPTS, opts, 2)) do eo[k] = v end
  eo.handle = function(msg, ctx)
    local input, th = executor_input(agent, msg)
    th = th or agent:new_thread()
    local res, err
    if _M.is_agent_like(agent) then
      res, err = agent:stream(input, th, ignore_chunk)
    else
      res, err = agent:run(input, th)
    end
    if not res then error(err, 0) end
    local conv = json.array()
    for i, m in ipairs(th.messages) do conv[i] = m end
    ctx:send({ executor_id = id, response = res.text, conversation = conv })
  end
  return executor.new(id, eo)
end

-- Workflows as agents ---------------------------------------------------

local WorkflowAgent = {}
WorkflowAgent.__index = WorkflowAgent
WorkflowAgent.__tostring = function(a) return "agent '" .. a.name .. "' (workflow '" .. a.workflow.name .. "')" end
_M.WorkflowAgent = WorkflowAgent

--- The text of a workflow's outputs: strings joined with "\n", a table
-- with a string `text` field (a pattern's answer) by that text, other
-- values JSON-encoded.
function _M.outputs_text(outputs)
  local parts = {}
  for i, o in ipairs(outputs or {}) do
    if type(o) == "string" then parts[i] = o
    elseif type(o) == "table" and type(o.text) == "string" then parts[i] = o.text
    else
      local ok, s = pcall(json.encode, o)
      parts[i] = ok and s or tostring(o)
    end
  end
  return concat(parts, "\n")
end

-- Shared body of a workflow agent's run and stream. The thread changes
-- only when the workflow has completed.
local function wf_run(self, input, thread, on_chunk, what)
  if getmetatable(self) ~= WorkflowAgent then error(what .. ": call it as agent:" .. what .. "(...)", 3) end
  if thread == nil then
    thread = self:new_thread()
  elseif not is_thread(thread) then
    error(sformat("agent '%s': %s: thread must be a weft.thread, got %s", self.name, what, type(thread)), 3)
  end
  local msgs = thread.messages
  local pending, wf_input = {}, nil
  if input ~= nil then
    local ok, list = pcall(norm_input, input, "input")
    if not ok then error(sformat("agent '%s': %s: %s", self.name, what, tostring(list)), 3) end
    pending = list
    if #msgs == 0 and type(input) == "string" then wf_input = input end
  elseif #msgs == 0 then
    error(sformat("agent '%s': %s: no input and the thread is empty", self.name, what), 3)
  end
  if wf_input == nil then
    wf_input = json.array(history(thread, pending))
  end
  local opts = { events = false }
  if on_chunk then
    opts.on_event = function(ev)
      if ev.type == "agent_update" then on_chunk(ev.data) end
    end
  end
  local h = self.workflow:spawn(wf_input, opts)
  local res = h:wait()
  if res.status == "idle" then
    -- paused on ctx:request_info: nobody here can answer it (weft serve
    -- answers a workflow model's requests itself, docs/server.md)
    h:cancel()
    local q = res.requests and res.requests[1] or {}
    return nil, sformat("agent '%s': workflow '%s' paused on a request of executor '%s' (ctx:request_info),"
      .. " which a workflow run as an agent cannot answer: it was cancelled", self.name, self.workflow.name,
      tostring(q.executor_id)), "paused"
  end
  if res.status ~= "completed" then
    return nil, sformat("agent '%s': workflow '%s' %s: %s", self.name, self.workflow.name, res.status,
                        tostring(res.error or "no error message")), "workflow"
  end
  local text = _M.outputs_text(res.outputs)
  pending[#pending + 1] = { role = "assistant", content = text }
  local start = #msgs
  for i = 1, #pending do msgs[start + i] = pending[i] end
  return {
    text = text, tool_calls = json.array(), messages = pending, thread = thread,
    usage = { input_tokens = 0, output_tokens = 0, total_tokens = 0 },
    outputs = res.outputs, finish_reason = "stop",
  }
end

--- Run the workflow with the input (a string on an empty thread is passed
-- as is; otherwise the thread's messages with the input appended); the
-- text is its outputs. Returns the agent result or nil, err, "workflow".
function WorkflowAgent:run(input, thread)
  local res, err, code = wf_run(self, input, thread, nil, "run")
  return res, err, code
end

--- Like run; on_chunk receives the data of the run's agent_update events.
function WorkflowAgent:stream(input, thread, on_chunk)
  thread, on_chunk = stream_args(self, thread, on_chunk)
  local res, err, code = wf_run(self, input, thread, on_chunk, "stream")
  return res, err, code
end

--- A new thread (metadata.agent = the agent's name).
WorkflowAgent.new_thread = Agent.new_thread

--- An executor running this workflow agent (see Agent:as_executor).
WorkflowAgent.as_executor = Agent.as_executor

--- The workflow behind the agent interface (run, stream, new_thread,
-- as_executor); name defaults to the workflow's name.
function workflow.Workflow:as_agent(name)
  if not workflow.is_workflow(self) then error("as_agent: call it as workflow:as_agent(name)", 2) end
  name = name or self.name
  if type(name) ~= "string" or name == "" then error("as_agent: name must be a non-empty string", 2) end
  return setmetatable({ name = name, workflow = self }, WorkflowAgent)
end

--- True for anything with the agent interface (an agent or a workflow agent).
function _M.is_agent_like(v)
  local mt = getmetatable(v)
  return mt == Agent or mt == WorkflowAgent
end

--- A remote agent over A2A (weft.a2a): `weft.agent.remote{url = BASE,
-- headers, name, ...}`, with the agent interface (see docs/interop.md).
function _M.remote(opts)
  local a = require("weft.a2a").remote(opts, 2) -- not a tail call: error levels
  return a
end

return check.constructor(_M)
