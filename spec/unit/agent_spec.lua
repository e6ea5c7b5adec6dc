-- spec/unit/agent_spec.lua — weft.agent on the offline mock provider:
-- creation errors naming the agent, the request an agent builds
-- (instructions, memory context, reduced thread), the tool loop (yielding
-- handlers, several calls, invalid arguments, unknown tools, failing
-- handlers, max_tool_rounds), usage summed over calls, failures returning
-- nil, err and leaving the thread unchanged, streaming, runs on the main
-- thread / in tasks / in executors, 50 concurrent conversations,
-- agent:as_executor and workflow:as_agent.
local weft = require "weft"
local llm = require "weft.llm"
local common = require "weft.llm.common"
local json = require "weft.json"
local h = require "helpers"

local mock = llm.mock

local function mul_tool()
  return weft.tool {
    name = "mul", parameters = { type = "object", properties = { a = { type = "number" }, b = { type = "number" } } },
    handler = function(args) return args.a * args.b end,
  }
end

-- Roles of a message list, joined.
local function roles(msgs)
  local out = {}
  for i, m in ipairs(msgs) do out[i] = m.role end
  return table.concat(out, ",")
end

describe("weft.agent", function()
  local saved_getenv, saved_chat
  before_each(function()
    saved_getenv, saved_chat = common.getenv, llm.chat
    common.getenv = function() return nil end
  end)
  after_each(function()
    common.getenv, llm.chat = saved_getenv, saved_chat
    mock.reset()
  end)

  -- Record the options of every llm.chat call (and their results).
  local function spy()
    local calls = {}
    llm.chat = function(o)
      local r, e, c = saved_chat(o)
      calls[#calls + 1] = { opts = o, res = r }
      return r, e, c
    end
    return calls
  end

  -- Runs agent a on one thread with first, then second; returns the
  -- messages of its second request, every call spied and the thread.
  local function second_request(a, first, second)
    local calls = spy()
    local th = a:new_thread()
    a:run(first, th)
    a:run(second, th)
    return calls[2].opts.messages, calls, th
  end

  describe("creation", function()
    it("requires a model, naming the agent", function()
      assert.mentions([[weft.agent: agent 'x' has no model (set model = "provider:name", or WEFT_MODEL)]],
                      h.error_of(weft.agent, { name = "x" }))
    end)

    it("takes the model from WEFT_MODEL", function()
      common.getenv = function(k) if k == "WEFT_MODEL" then return "mock:echo" end end
      local a = weft.agent { name = "x" }
      assert.equals("mock:echo", a.model)
      assert.equals("echo: hi", a:run("hi").text)
    end)

    it("points the error at the caller's line", function()
      local ok, err = pcall(function() weft.agent { name = "x" } end)
      assert.is_false(ok)
      assert.mentions("agent_spec.lua:", err)
    end)

    it("rejects bad options naming the agent and the field", function()
      local cases = {
        { { model = "mock:echo" }, "weft.agent: name must be a non-empty string" },
        { { name = "w", model = "nope:m" }, "agent 'w': llm: unknown provider 'nope'" },
        { { name = "w", model = "bad" }, "agent 'w': llm: model 'bad' must be 'provider:model'" },
        { { name = "w", model = "mock:echo", modle = 1 }, "agent 'w': unknown option 'modle'" },
        { { name = "w", model = "mock:echo", tools = { 5 } }, "agent 'w': tools[1] must be a weft.tool, got number" },
        { { name = "w", model = "mock:echo", tools = { { name = "t" } } }, "agent 'w': tools[1]: tool 't': handler must be a function" },
        { { name = "w", model = "mock:echo", tools = { h.add_tool(), h.add_tool() } }, "agent 'w': tools[2]: duplicate tool name 'add'" },
        { { name = "w", model = "mock:echo", max_tool_rounds = -1 }, "agent 'w': max_tool_rounds must be an integer >= 0" },
        { { name = "w", model = "mock:echo", max_tokens = 0 }, "agent 'w': max_tokens must be a positive integer" },
        { { name = "w", model = "mock:echo", temperature = "hot" }, "agent 'w': temperature must be a number" },
        { { name = "w", model = "mock:echo", instructions = 1 }, "agent 'w': instructions must be a string" },
        { { name = "w", model = "mock:echo", memory = 1 }, "agent 'w': memory must be a provider table" },
        { { name = "w", model = "mock:echo", memory = { before_invoke = 1 } }, "agent 'w': memory.before_invoke must be a function" },
        { { name = "w", model = "mock:echo", reducer = {} }, "agent 'w': reducer must be a function" },
        { { name = "w", model = "mock:echo", llm = { model = "x" } }, "agent 'w': unknown option 'llm.model'" },
        -- the llm table's options are checked by llm.chat's own schemas
        { { name = "w", model = "mock:echo", llm = { timeout = "1" } },
          "agent 'w': llm.timeout must be a positive number of seconds, got string" },
        { { name = "w", model = "mock:echo", llm = { retries = -1 } },
          "agent 'w': llm.retries must be a non-negative integer, got -1" },
        { { name = "w", model = "mock:echo", llm = { base_url = 5 } }, "agent 'w': llm.base_url must be a string, got 5" },
        { { name = "w", model = "mock:echo", llm = { api_base = "http://x" } }, "did you mean 'base_url'?" },
        { { name = "w", model = "mock:echo", tool_choice = "always" }, "agent 'w': tool_choice must be" },
      }
      for _, c in ipairs(cases) do
        assert.mentions(c[2], h.error_of(weft.agent, c[1]))
      end
    end)

    it("accepts plain tool tables and turns them into tools", function()
      local a = weft.agent { name = "w", model = "mock:echo", tools = { { name = "now", handler = function() return 1 end } } }
      assert.is_true(weft.tool.is_tool(a.tools[1]))
    end)
  end)

  describe("run", function()
    it("answers a string and returns text, usage and the messages it added", function()
      local a = weft.agent { name = "echo", model = "mock:echo" }
      local th = a:new_thread()
      local res = assert(a:run("hello there", th))
      assert.equals("echo: hello there", res.text)
      assert.same({}, res.tool_calls)
      assert.equals(2, res.usage.input_tokens)
      assert.equals(3, res.usage.output_tokens)
      assert.equals(5, res.usage.total_tokens)
      assert.equals("user,assistant", roles(res.messages))
      assert.equals(th, res.thread)
      assert.equals(2, th:len())
      assert.equals("echo", th.metadata.agent)
    end)

    it("accepts a message or a list of messages", function()
      local a = weft.agent { name = "echo", model = "mock:echo" }
      assert.equals("echo: one", a:run({ role = "user", content = "one" }).text)
      local res = a:run({ { role = "user", content = "first" }, { role = "assistant", content = "ok" },
                          { role = "user", content = "second" } })
      assert.equals("echo: second", res.text)
      assert.equals("user,assistant,user,assistant", roles(res.messages))
    end)

    it("sends the instructions, the memory context, then the reduced thread", function()
      local mem = { before_invoke = function() return { { role = "system", content = "facts" } } end }
      local a = weft.agent { name = "w", model = "mock:echo", instructions = "Be brief.", memory = mem,
                             reducer = weft.window.message_count(2) }
      local msgs, _, th = second_request(a, "one", "two")
      assert.equals("system,system,assistant,user", roles(msgs))
      assert.equals("Be brief.", msgs[1].content)
      assert.equals("facts", msgs[2].content)
      assert.equals("two", msgs[4].content)
      assert.equals(4, th:len()) -- the reducer shapes the request, not the thread
    end)

    it("continues a conversation on the same thread", function()
      mock.script { { reply = function(msgs) return "seen " .. #msgs end } }
      local a = weft.agent { name = "w", model = "mock:echo" }
      local th = a:new_thread()
      assert.equals("seen 1", a:run("a", th).text)
      assert.equals("seen 3", a:run("b", th).text)
      assert.equals("seen 5", a:run("c", th).text)
      assert.equals(6, th:len())
    end)

    it("continues the thread as it is when the input is nil", function()
      local a = weft.agent { name = "w", model = "mock:echo" }
      local th = weft.thread.new { messages = { "from before" } }
      assert.equals("echo: from before", a:run(nil, th).text)
      assert.mentions("agent 'w': run: no input and the thread is empty", h.error_of(a.run, a, nil, a:new_thread()))
    end)

    it("passes the sampling options and the llm options to weft.llm.chat", function()
      local calls = spy()
      local a = weft.agent { name = "w", model = "mock:echo", temperature = 0.3, max_tokens = 2,
                             llm = { retries = 0, timeout = 5 } }
      local res = a:run("one two three four")
      assert.equals("echo: one", res.text)
      assert.equals("length", res.finish_reason)
      local o = calls[1].opts
      assert.equals(0.3, o.temperature)
      assert.equals(0, o.retries)
      assert.equals(5, o.timeout)
    end)

    it("raises on bad input naming the agent", function()
      local a = weft.agent { name = "w", model = "mock:echo" }
      assert.mentions("agent 'w': run: input must be a string, a message or a list of messages, got number",
                      h.error_of(a.run, a, 5))
      assert.mentions("agent 'w': run: input[1].role", h.error_of(a.run, a, { { content = "x" } }))
      assert.mentions("agent 'w': run: thread must be a weft.thread", h.error_of(a.run, a, "x", {}))
      assert.mentions("call it as agent:run", h.error_of(a.run, "x"))
    end)
  end)

  describe("tool loop", function()
    it("runs the tool the model asks for and feeds the result back", function()
      local seen
      local a = weft.agent { name = "calc", model = "mock:echo", tools = { h.add_tool(function(args, ctx)
        seen = ctx
        weft.sleep(0.001)
        return args.a + args.b
      end) } }
      local th = a:new_thread()
      local res = assert(a:run('call add {"a":2,"b":3}', th))
      assert.equals("tool said: 5", res.text)
      assert.equals("user,assistant,tool,assistant", roles(res.messages))
      local call = res.messages[2].tool_calls[1]
      assert.equals("add", call.name)
      assert.same({ a = 2, b = 3 }, call.arguments)
      assert.equals(call.id, res.messages[3].tool_call_id)
      assert.equals("5", res.messages[3].content)
      assert.equals("calc", seen.agent)
      assert.equals(th, seen.thread)
      assert.equals(call.id, seen.call_id)
    end)

    it("sums the usage of every model call", function()
      local calls = spy()
      local a = weft.agent { name = "calc", model = "mock:echo", tools = { h.add_tool() } }
      local res = a:run('call add {"a":2,"b":3}')
      assert.equals(2, #calls)
      for _, k in ipairs { "input_tokens", "output_tokens", "total_tokens" } do
        assert.equals(calls[1].res.usage[k] + calls[2].res.usage[k], res.usage[k])
      end
      assert.is_true(res.usage.total_tokens > 0)
    end)

    it("runs several calls of one reply, one tool message each", function()
      local a = weft.agent { name = "calc", model = "mock:echo", tools = { h.add_tool(), mul_tool() } }
      local res = a:run('call add {"a":2,"b":3} then call mul {"a":2,"b":3}')
      assert.equals("tool said: 5; 6", res.text)
      assert.equals("user,assistant,tool,tool,assistant", roles(res.messages))
    end)

    it("sends invalid arguments back to the model as an error result", function()
      local called = false
      local a = weft.agent { name = "calc", model = "mock:echo", tools = { h.add_tool(function() called = true end) } }
      local res = assert(a:run('call add {"a":"two","b":3}'))
      assert.equals([[tool said: {"error":"invalid arguments for tool 'add': arguments.a: expected number, got string"}]], res.text)
      assert.is_false(called)
    end)

    it("sends a call of an unknown tool back as an error naming it", function()
      mock.register("unk", { { replies = { { tool_calls = { { name = "nope", arguments = { x = 1 } } } }, {} } } })
      local a = weft.agent { name = "calc", model = "mock:unk", tools = { h.add_tool() } }
      local res = assert(a:run("hi"))
      assert.equals([[tool said: {"error":"unknown tool 'nope' (available: add)"}]], res.text)
      mock.register("unk2", { { replies = { { tool_calls = { { name = "nope" } } }, {} } } })
      local b = weft.agent { name = "bare", model = "mock:unk2" }
      assert.mentions("unknown tool 'nope' (this agent has no tools)", assert(b:run("hi")).text)
    end)

    it("sends a handler's error back and goes on", function()
      local a = weft.agent { name = "calc", model = "mock:echo", tools = { h.add_tool(function() error("boom", 0) end) } }
      local res = assert(a:run('call add {"a":1,"b":2}'))
      assert.equals([[tool said: {"error":"tool 'add' failed: boom"}]], res.text)
    end)

    it("fails past max_tool_rounds and leaves the thread unchanged", function()
      mock.register("loop", { { tool_calls = { { name = "add", arguments = { a = 1, b = 1 } } } } })
      local calls = spy()
      local n = 0
      local a = weft.agent { name = "looper", model = "mock:loop", max_tool_rounds = 3,
                             tools = { h.add_tool(function() n = n + 1; return 2 end) } }
      local th = weft.thread.new { messages = { "before" } }
      local res, err, code = a:run("go", th)
      assert.is_nil(res)
      assert.equals("agent 'looper': exceeded max_tool_rounds (3)", err)
      assert.equals("max_tool_rounds", code)
      assert.equals(4, #calls)
      assert.equals(3, n)
      assert.equals(1, th:len())
    end)

    it("treats max_tool_rounds = 0 as no tool rounds", function()
      local a = weft.agent { name = "z", model = "mock:echo", max_tool_rounds = 0, tools = { h.add_tool() } }
      local _, err = a:run('call add {"a":1,"b":2}')
      assert.equals("agent 'z': exceeded max_tool_rounds (0)", err)
      assert.equals("echo: plain", a:run("plain").text)
    end)
  end)

  describe("failures", function()
    it("returns nil, err naming the agent when the model call fails, leaving the thread unchanged", function()
      mock.register("down", { { fail = { status = 400 } } })
      local a = weft.agent { name = "w", model = "mock:down", llm = { retries = 0 } }
      local th = weft.thread.new { messages = { "earlier" } }
      local res, err, code = a:run("hi", th)
      assert.is_nil(res)
      assert.mentions("agent 'w': mock: HTTP 400", err)
      assert.equals("http_400", code)
      assert.equals(1, th:len())
    end)

    it("rolls back a failure after tool rounds", function()
      mock.register("late", { { when = function(m) return m[#m].role == "tool" end, fail = { status = 400 } },
                              { tool_calls = { { name = "add", arguments = { a = 1, b = 2 } } } } })
      local a = weft.agent { name = "w", model = "mock:late", tools = { h.add_tool() }, llm = { retries = 0 } }
      local th = a:new_thread()
      local res, err = a:run("x", th)
      assert.is_nil(res)
      assert.mentions("agent 'w'", err)
      assert.equals(0, th:len())
    end)

    it("returns nil, err for a memory hook or a reducer that raises", function()
      local a = weft.agent { name = "w", model = "mock:echo",
                             memory = { before_invoke = function() error("store down", 0) end } }
      local _, err, code = a:run("x")
      assert.equals("agent 'w': memory: store down", err)
      assert.equals("memory", code)
      local b = weft.agent { name = "w", model = "mock:echo", reducer = function() error("bad", 0) end }
      _, err, code = b:run("x")
      assert.equals("agent 'w': reducer: bad", err)
      assert.equals("reducer", code)
      local c = weft.agent { name = "w", model = "mock:echo", reducer = function() return 1 end }
      _, err = c:run("x")
      assert.mentions("reducer must return a list of messages", err)
    end)

    it("leaves the thread unchanged when an executor timeout cuts a run off mid-tool", function()
      local started = false
      local a = weft.agent { name = "slowpoke", model = "mock:echo", tools = { h.add_tool(function()
        started = true
        weft.sleep(30)
      end) } }
      local th = weft.thread.new { messages = { "earlier" } }
      local ex = weft.executor("e", { timeout = 0.02, handle = function(msg) a:run(msg, th) end })
      local res = weft.workflow("w"):start(ex):build():run('call add {"a":1,"b":2}')
      assert.equals("failed", res.status)
      assert.is_true(started)
      assert.equals(1, th:len())
      assert.equals("echo: next", a:run("next", th).text)
    end)

    it("re-raises an error of the stream callback and leaves the thread unchanged", function()
      local a = weft.agent { name = "w", model = "mock:echo" }
      local th = a:new_thread()
      local err = h.error_of(a.stream, a, "x", th, function() error("callback broke", 0) end)
      assert.mentions("callback broke", err)
      assert.equals(0, th:len())
    end)
  end)

  describe("memory", function()
    it("calls before_invoke and after_invoke with the thread, messages and agent", function()
      local before, after = {}, {}
      local mem = {
        before_invoke = function(th, msgs, agent) before[#before + 1] = { th, #msgs, agent } end,
        after_invoke = function(th, new, agent) after[#after + 1] = { th, new, agent } end,
      }
      local a = weft.agent { name = "w", model = "mock:echo", memory = mem, tools = { h.add_tool() } }
      local th = a:new_thread()
      a:run('call add {"a":1,"b":1}', th)
      assert.equals(1, #before)
      assert.equals(th, before[1][1])
      assert.equals(1, before[1][2])
      assert.equals(a, before[1][3])
      assert.equals(1, #after)
      assert.equals("user,assistant,tool,assistant", roles(after[1][2]))
    end)

    it("injects in_memory facts as one system message in later runs", function()
      local mem = weft.memory.in_memory()
      local a = weft.agent { name = "w", model = "mock:echo", instructions = "hi", memory = mem }
      local msgs, calls = second_request(a, "My name is Ada", "what is my name?")
      assert.equals("system,system,user,assistant,user", roles(msgs))
      assert.equals("Known facts:\n- user's name is Ada", msgs[2].content)
      assert.equals("system,user", roles(calls[1].opts.messages))
    end)
  end)

  describe("stream", function()
    it("delivers the weft.llm chunks and returns the same result as run", function()
      local a = weft.agent { name = "w", model = "mock:echo", tools = { h.add_tool() } }
      local chunks = {}
      local res = assert(a:stream('call add {"a":4,"b":5}', a:new_thread(), function(c) chunks[#chunks + 1] = c end))
      assert.equals("tool said: 9", res.text)
      local text, deltas, done = {}, 0, 0
      for _, c in ipairs(chunks) do
        if c.text then text[#text + 1] = c.text end
        if c.tool_call_delta then deltas = deltas + 1 end
        if c.done then done = done + 1 end
      end
      assert.equals("tool said: 9", table.concat(text))
      assert.is_true(deltas > 0)
      assert.equals(2, done)
      local plain = a:run('call add {"a":4,"b":5}')
      assert.equals(plain.text, res.text)
      assert.same(plain.usage, res.usage)
    end)

    it("takes the callback in place of the thread", function()
      local a = weft.agent { name = "w", model = "mock:echo" }
      local n = 0
      assert.equals("echo: x", a:stream("x", function() n = n + 1 end).text)
      assert.is_true(n > 0)
      assert.mentions("agent 'w': stream: on_chunk must be a function", h.error_of(a.stream, a, "x"))
    end)

    it("publishes agent_update events inside a workflow", function()
      local a = weft.agent { name = "w", model = "mock:echo" }
      local ex = weft.executor("talker", function(msg, ctx)
        local res = assert(a:stream(msg, a:new_thread(), function() end))
        ctx:yield_output(res.text)
      end)
      local res = weft.workflow("s"):start(ex):build():run("streamed words here")
      assert.equals("completed", res.status)
      assert.same({ "echo: streamed words here" }, res.outputs)
      local ups = h.filter(res.events, "agent_update", "talker")
      assert.is_true(#ups >= 3)
    end)
  end)

  describe("where it runs", function()
    local a
    before_each(function()
      a = weft.agent { name = "calc", model = "mock:echo", tools = { h.add_tool(function(args)
        weft.sleep(0.001)
        return args.a + args.b
      end) } }
    end)

    it("runs on the main thread", function()
      assert.equals("tool said: 3", a:run('call add {"a":1,"b":2}').text)
    end)

    it("runs in a weft.go task", function()
      local t = weft.go(function() return a:run('call add {"a":1,"b":3}').text end)
      assert.equals("tool said: 4", t:wait())
    end)

    it("runs in an executor", function()
      local ex = weft.executor("e", function(msg, ctx) ctx:yield_output(a:run(msg).text) end)
      local res = weft.workflow("w"):start(ex):build():run('call add {"a":1,"b":4}')
      assert.equals("completed", res.status)
      assert.same({ "tool said: 5" }, res.outputs)
    end)

    it("keeps 50 concurrent conversations apart", function()
      mock.register("slow", { { latency = 0.005 } })
      local g = h.gauge()
      local b = weft.agent { name = "b", model = "mock:slow", tools = { weft.tool {
        name = "wait", parameters = { type = "object", properties = { id = { type = "integer" } }, required = { "id" } },
        handler = function(args) g.enter(); weft.sleep(0.002); g.leave(); return "done " .. args.id end } } }
      local tasks, threads = {}, {}
      for i = 1, 50 do
        threads[i] = b:new_thread()
        tasks[i] = weft.go(function()
          local r1 = assert(b:run(("call wait {\"id\":%d}"):format(i), threads[i]))
          local r2 = assert(b:run("turn two of " .. i, threads[i]))
          return r1.text, r2.text
        end)
      end
      for i = 1, 50 do
        local t1, t2 = tasks[i]:wait()
        assert.equals("tool said: done " .. i, t1)
        assert.equals("echo: turn two of " .. i, t2)
        local th = threads[i]
        assert.equals("user,assistant,tool,assistant,user,assistant", roles(th.messages))
        assert.equals(("call wait {\"id\":%d}"):format(i), th.messages[1].content)
        assert.equals(i, th.messages[2].tool_calls[1].arguments.id)
      end
      assert.is_true(g.peak > 1)
    end)
  end)

  describe("as_executor", function()
    it("runs the agent on a new thread and sends {executor_id, response, conversation}", function()
      local a = weft.agent { name = "writer", model = "mock:echo" }
      local sink, seen = h.recorder("sink")
      local wf = weft.workflow("w"):start(a:as_executor("write")):edge("write", sink):build()
      local res = wf:run("draft this")
      assert.equals("completed", res.status)
      assert.equals("write", seen[1].executor_id)
      assert.equals("echo: draft this", seen[1].response)
      assert.equals("user,assistant", roles(seen[1].conversation))
    end)

    it("defaults the id to the agent's name and takes executor options", function()
      local a = weft.agent { name = "writer", model = "mock:echo" }
      local ex = a:as_executor(nil, { retry = { max_attempts = 2 } })
      assert.equals("writer", ex.id)
      assert.equals(2, ex.retry.max_attempts)
      assert.mentions("as_executor: unknown option 'retries'", h.error_of(a.as_executor, a, "x", { retries = 1 }))
    end)

    it("continues a serialized thread", function()
      local a = weft.agent { name = "writer", model = "mock:echo" }
      local th = a:new_thread()
      a:run("first", th)
      local sink, seen = h.recorder("sink")
      local wf = weft.workflow("w"):start(a:as_executor("write")):edge("write", sink):build()
      assert.equals("completed", wf:run({ thread = th:serialize(), input = "second" }).status)
      assert.equals("echo: second", seen[1].response)
      assert.equals("user,assistant,user,assistant", roles(seen[1].conversation))
      assert.equals(2, th:len()) -- the caller's thread is not touched
    end)

    it("chains agents: the next one gets the conversation", function()
      local w = weft.agent { name = "writer", model = "mock:echo" }
      mock.register("count", { { reply = function(msgs) return "reviewed " .. #msgs end } })
      local r = weft.agent { name = "reviewer", model = "mock:count" }
      local sink, seen = h.recorder("sink")
      local wf = weft.workflow("w"):start(w:as_executor()):edge("writer", r:as_executor())
        :edge("reviewer", sink):build()
      assert.equals("completed", wf:run("text").status)
      assert.equals("reviewed 2", seen[1].response)
      assert.equals("user,assistant,assistant", roles(seen[1].conversation))
    end)

    it("takes {input = ...} and a pattern's {messages = ...}", function()
      local a = weft.agent { name = "writer", model = "mock:echo" }
      local sink, seen = h.recorder("sink")
      local wf = weft.workflow("w"):start(a:as_executor("write")):edge("write", sink):build()
      assert.equals("completed", wf:run({ input = "wrapped" }).status)
      assert.equals("echo: wrapped", seen[1].response)
      assert.equals("completed", wf:run({ messages = { { role = "user", content = "listed" } }, text = "x" }).status)
      assert.equals("echo: listed", seen[2].response)
    end)

    it("fails the invocation with an error naming the agent", function()
      mock.register("down", { { fail = { status = 400 } } })
      local a = weft.agent { name = "writer", model = "mock:down", llm = { retries = 0 } }
      local res = weft.workflow("w"):start(a:as_executor("write")):build():run("x")
      assert.equals("failed", res.status)
      assert.mentions("agent 'writer': mock: HTTP 400", res.error)
      res = weft.workflow("w2"):start(a:as_executor("write")):build():run({ thread = "garbage" })
      assert.mentions("weft.thread.deserialize: not a serialized thread", res.error)
    end)
  end)

  describe("workflow:as_agent", function()
    local upper = function()
      return weft.executor("upper", function(msg, ctx)
        if type(msg) == "string" then ctx:yield_output(msg:upper())
        else ctx:yield_output({ n = #msg }) end
      end)
    end

    it("runs the workflow and returns its outputs as text", function()
      local ag = weft.workflow("up"):start(upper()):build():as_agent("shouter")
      assert.equals("shouter", ag.name)
      local th = ag:new_thread()
      local res = assert(ag:run("hi", th))
      assert.equals("HI", res.text)
      assert.equals("user,assistant", roles(res.messages))
      assert.same({ "HI" }, res.outputs)
      -- later turns pass the conversation (a list of messages)
      res = assert(ag:run("again", th))
      assert.equals('{"n":3}', res.text)
      assert.equals(4, th:len())
    end)

    it("joins string outputs with newlines and JSON-encodes the others", function()
      local ex = weft.executor("many", function(_, ctx)
        ctx:yield_output("a"); ctx:yield_output({ b = 1 }); ctx:yield_output("c")
      end)
      local ag = weft.workflow("m"):start(ex):build():as_agent()
      assert.equals("m", ag.name)
      assert.equals('a\n{"b":1}\nc', ag:run("x").text)
    end)

    it("returns nil, err when the workflow fails, leaving the thread unchanged", function()
      local ex = weft.executor("bad", function() error("kaput", 0) end)
      local ag = weft.workflow("b"):start(ex):build():as_agent("broken")
      local th = ag:new_thread()
      local res, err, code = ag:run("x", th)
      assert.is_nil(res)
      assert.mentions("agent 'broken': workflow 'b' failed: ", err)
      assert.mentions("kaput", err)
      assert.equals("workflow", code)
      assert.equals(0, th:len())
    end)

    it("cancels a workflow that pauses on a request and says so (code 'paused')", function()
      local after = 0
      local ex = weft.executor("ask", function(msg, ctx)
        local v = ctx:request_info({ q = msg })
        after = after + 1
        ctx:yield_output(v)
      end)
      local ag = weft.workflow("asker"):start(ex):build():as_agent("asker")
      local th = ag:new_thread()
      local res, err, code = ag:run("x", th)
      assert.is_nil(res)
      assert.equals("paused", code)
      assert.mentions("agent 'asker': workflow 'asker' paused on a request of executor 'ask'", err)
      assert.mentions("it was cancelled", err)
      assert.equals(0, th:len())
      weft.poll()
      assert.equals(0, after)
    end)

    it("streams the agent_update chunks of the agents inside", function()
      local a = weft.agent { name = "w", model = "mock:echo" }
      local ex = weft.executor("talk", function(msg, ctx)
        ctx:yield_output(a:stream(msg, function() end).text)
      end)
      local ag = weft.workflow("t"):start(ex):build():as_agent("talker")
      local chunks = {}
      local res = assert(ag:stream("a b c", function(c) chunks[#chunks + 1] = c end))
      assert.equals("echo: a b c", res.text)
      local text = {}
      for _, c in ipairs(chunks) do if c.text then text[#text + 1] = c.text end end
      assert.equals("echo: a b c", table.concat(text))
    end)

    it("works as an executor in another workflow", function()
      local ag = weft.workflow("up"):start(upper()):build():as_agent("shouter")
      local sink, seen = h.recorder("sink")
      local res = weft.workflow("outer"):start(ag:as_executor("shout")):edge("shout", sink):build():run("hey")
      assert.equals("completed", res.status)
      assert.equals("HEY", seen[1].response)
      assert.equals("shout", seen[1].executor_id)
    end)

    it("rejects a bad name", function()
      local wf = weft.workflow("up"):start(upper()):build()
      assert.mentions("as_agent: name must be a non-empty string", h.error_of(wf.as_agent, wf, ""))
    end)
  end)
end)
