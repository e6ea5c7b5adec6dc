-- A2A against the official SDK (@a2a-js/sdk, pinned in spec/interop/a2a,
-- installed by scripts/deps.sh): weft.agent.remote talks to an SDK server
-- (spec/interop/a2a/sdk_server.mjs: echo, ask, slow, msg, secure, and
-- hostile endpoints), and the SDK's client drives `weft serve` (real
-- processes on loopback, in-process and with a worker). #a2a #http
local weft = require "weft"
local json = weft.json
local procs = require "support.procs"
local files = require "support.files"
local h = require "helpers"

local src = os.getenv("WEFT_SOURCE_DIR") or "."
local dir = src .. "/spec/interop/a2a"

-- Fail naming the fix when the SDK is not installed.
local function need_sdk()
  assert(io.open(dir .. "/node_modules/@a2a-js/sdk/package.json"),
    "@a2a-js/sdk is not installed: run scripts/deps.sh (npm ci in spec/interop/a2a)")
end

describe("weft.agent.remote against the A2A SDK's server", function()
  local p, base

  setup(function()
    need_sdk()
    local port = procs.free_port()
    p = procs.spawn({ "node", dir .. "/sdk_server.mjs" }, { PORT = tostring(port) })
    procs.wait_port(port)
    base = ("http://127.0.0.1:%d"):format(port)
  end)

  teardown(function()
    if p then procs.kill(p); procs.wait(p, 20) end
  end)

  local function remote(name, o)
    o = o or {}
    o.url = base .. "/" .. name
    return weft.agent.remote(o)
  end

  it("reads the card and sends messages, one remote context per thread", function()
    local a = remote("echo")
    assert.equal("echo", a.name)
    local th = a:new_thread()
    local r = assert(a:run("hi", th))
    assert.equal("echo[1]: hi", r.text)
    assert.equal("TASK_STATE_COMPLETED", r.status)
    local ctx = r.context_id
    assert.is_string(ctx)
    r = assert(a:run("again", th))
    assert.equal("echo[2]: again", r.text) -- the remote saw this context before
    assert.equal(ctx, r.context_id)
    assert.equal(4, #th.messages)
    assert.equal("echo[1]: other", assert(a:run("other")).text) -- a new thread, a new context
    assert.equal("the echo agent of the weft A2A interop tests", a.description) -- from the card
    -- the thread keeps the context through serialisation
    local th2 = weft.thread.deserialize(th:serialize())
    assert.equal("echo[3]: third", assert(a:run("third", th2)).text)
  end)

  it("streams artifact chunks and status updates", function()
    local chunks, states = {}, {}
    local r = assert(remote("echo"):stream("streamed", function(c)
      if c.text then chunks[#chunks + 1] = c.text end
      if c.status then states[#states + 1] = c.status end
    end))
    assert.equal("echo[1]: streamed", r.text)
    assert.same({ "echo[1", "]: streamed" }, chunks)
    assert.same({ "TASK_STATE_COMPLETED" }, states)
  end)

  it("reads a direct message reply", function()
    local r = assert(remote("msg"):run("yo"))
    assert.equal("direct: yo", r.text)
  end)

  it("surfaces input-required and answers it on the next run of the thread", function()
    local a = remote("ask")
    local th = a:new_thread()
    local r = assert(a:run("hello", th))
    assert.equal("TASK_STATE_INPUT_REQUIRED", r.status)
    assert.equal("What is your name?", r.text)
    assert.equal(r.task_id, r.input_required.task_id)
    local r2 = assert(a:run("Ada", th))
    assert.equal("TASK_STATE_COMPLETED", r2.status)
    assert.equal("hello, Ada", r2.text)
    assert.equal(r.task_id, r2.task_id) -- the same task went on
  end)

  it("answers input-required through on_input", function()
    local asked
    local a = remote("ask", { on_input = function(q) asked = q; return "Grace" end })
    local r = assert(a:stream("hello", function() end))
    assert.equal("hello, Grace", r.text)
    assert.equal("What is your name?", asked.question)
  end)

  it("turns input-required into a request of the run under as_executor", function()
    local ex = remote("ask"):as_executor("asker")
    local out = weft.executor("out", function(m, ctx) ctx:yield_output(m.response) end)
    local wf = weft.workflow("remote_ask"):start(ex):edge(ex, out):build()
    local h = wf:spawn("hello")
    local res = h:wait()
    assert.equal("idle", res.status)
    assert.equal("What is your name?", res.requests[1].request.question)
    assert.truthy(h:respond(res.requests[1].request_id, "Linus"))
    res = h:wait()
    assert.equal("completed", res.status)
    assert.same({ "hello, Linus" }, res.outputs)
  end)

  it("takes part in a pattern like any agent", function()
    local wf = weft.patterns.sequential{ agents = { remote("echo"), remote("msg") } }
    local res = wf:run("start")
    assert.equal("completed", res.status, res.error)
    assert.equal("direct: start\necho[1]: start", res.outputs[1].text)
  end)

  it("cancels a task", function()
    local a = remote("slow")
    local cond, tid = weft.cond(), nil
    local t = weft.go(function()
      return a:stream("wait", function(c) if c.task_id then tid = c.task_id; cond:signal() end end)
    end)
    while not tid do cond:wait() end
    local task = assert(a:cancel(tid))
    local r, err, code = t:wait()
    assert.is_nil(r)
    assert.equal("task", code)
    assert.matches("TASK_STATE_CANCELED", err)
    assert.equal(tid, task.id)
  end)

  it("gives up on a task past task_timeout, cancelling it (streamed and not)", function()
    for _, streamed in ipairs { true, false } do
      local a = remote("slow", { task_timeout = 0.3, poll_interval = 0.05 })
      local tid
      local r, err, code
      if streamed then
        r, err, code = a:stream("wait", function(c) tid = tid or c.task_id end)
      else
        r, err, code = a:run("wait")
      end
      assert.is_nil(r)
      assert.equal("timeout", code, err)
      assert.matches("no answer within task_timeout %(0%.3 s%)", err)
      if streamed then
        -- the remote task was cancelled, not left running
        assert.matches("with task " .. tid:gsub("%p", "%%%0") .. " still TASK_STATE_WORKING %(cancelled%)", err)
        assert.equal("TASK_STATE_CANCELED", assert(a:get_task(tid)).status.state)
      end
    end
    assert.equal(600, require("weft.a2a").TASK_TIMEOUT)
  end)

  it("returns clear errors: unreachable, bad cards, JSON-RPC errors, HTTP statuses", function()
    local port = procs.free_port()
    local r, err, code = weft.agent.remote{ url = ("http://127.0.0.1:%d"):format(port) }:run("x")
    assert.is_nil(r); assert.equal("connect", code); assert.matches("agent card", err)
    r, err, code = remote("badcard"):run("x")
    assert.is_nil(r); assert.equal("card", code); assert.matches("is not a JSON object", err)
    r, err, code = remote("nointerface"):run("x")
    assert.is_nil(r); assert.equal("card", code); assert.matches("no JSONRPC interface", err)
    r, err, code = remote("echo"):get_task("no-such-task")
    assert.is_nil(r); assert.equal("rpc", code); assert.matches("JSON%-RPC error %-32001", err)
    r, err, code = remote("secure"):run("x")
    assert.is_nil(r); assert.equal("card", code); assert.matches("HTTP 401", err)
    r = assert(remote("secure", { headers = { Authorization = "Bearer s3cret" } }):run("x"))
    assert.equal("echo[1]: x", r.text)
  end)

  it("says so when a stream is refused with a plain JSON-RPC error", function()
    local a2a = require "weft.a2a"
    local a = remote("echo")
    local msg = a2a.message("ROLE_USER", { { text = "x" } }, nil, "no-such-task")
    local ok, err, code = a:call_stream("SendStreamingMessage", { message = msg }, function() end)
    assert.is_nil(ok)
    assert.equal("protocol", code)
    assert.matches("answered application/json.*not a stream of events", err)
    local r
    r, err, code = a:call("SendMessage", { message = msg })
    assert.is_nil(r); assert.equal("rpc", code); assert.matches("%-32001", err)
  end)

  it("fails with input_required when on_input gives no answer", function()
    local r, err, code = remote("ask", { on_input = function() return nil end }):run("hello")
    assert.is_nil(r)
    assert.equal("input_required", code)
    assert.matches("What is your name%?", err)
  end)

  it("bounds hostile streams: a huge event, garbage, an endless flood", function()
    local r, err, code = remote("huge", { max_event = 64 * 1024 }):stream("x", function() end)
    assert.is_nil(r); assert.equal("too_large", code); assert.matches("max_event %(65536 bytes%)", err)
    r, err, code = remote("garbage"):stream("x", function() end)
    assert.is_nil(r); assert.equal("protocol", code); assert.matches("not a JSON%-RPC 2.0 response", err)
    r, err, code = remote("flood", { max_bytes = 1000000 }):stream("x", function() end)
    assert.is_nil(r); assert.equal("too_large", code); assert.matches("max_bytes %(1000000 bytes%)", err)
    r = assert(remote("badparts"):stream("x", function() end)) -- parts that are not a list count as none
    assert.equal("ok", r.text)
  end)

  it("raises on misuse naming the option", function()
    assert.error_matches(function() weft.agent.remote{} end, "url")
    assert.error_matches(function() weft.agent.remote{ url = "ftp://x" } end, "http:// or https://")
    assert.error_matches(function() weft.agent.remote{ url = "http://x", modle = 1 } end, "unknown option 'modle'")
    assert.error_matches(function() remote("echo"):run(nil) end, "input is required")
  end)
end)

-- Asks who is there (a request), then greets; two outputs.
local ASK = [[
local weft = require "weft"
return weft.workflow("ask"):start(weft.executor("ask", function(m, ctx)
  local who = ctx:request_info({ question = "Who is there, " .. tostring(m) .. "?" })
  ctx:yield_output("hello, " .. tostring(who))
end)):build()
]]
local MANY = [[
local weft = require "weft"
return weft.workflow("many"):start(weft.executor("two", function(m, ctx)
  ctx:yield_output("first " .. tostring(m))
  ctx:yield_output({ n = 2 })
end)):build()
]]

describe("weft serve as an A2A server, driven by the SDK's client", function()
  local scope = require("support.scope")(after_each)
  local bin = procs.weft_bin()

  -- Start weft serve (memory store, in-process, no keys) with the ask
  -- workflow and the helper agent; returns its URL.
  local function serve()
    local tmp = scope.tmpdir()
    os.execute("mkdir -p " .. procs.quote(tmp .. "/scripts"))
    files.write(tmp .. "/scripts/ask.lua", ASK)
    local port = procs.free_port()
    local p = procs.spawn({ bin, "serve", "--port", tostring(port), "--store", "memory:", "--scripts", tmp .. "/scripts" })
    scope.later(function() procs.kill(p); procs.wait(p, 20) end)
    procs.wait_port(port)
    local url = ("http://127.0.0.1:%d"):format(port)
    assert(weft.http.request{ method = "POST", url = url .. "/api/v1/agents",
      body = { name = "helper", model = "mock:echo" } })
    return url
  end

  -- POST body (a string or a table) to url with extra headers: status, decoded reply.
  local function post(url, body, headers)
    local h = { ["content-type"] = "application/json" }
    for k, v in pairs(headers or {}) do h[k] = v end
    local res = assert(weft.http.request{ method = "POST", url = url, body = body, headers = h })
    return res.status, json.decode(res.body)
  end

  it("answers malformed and unknown JSON-RPC calls with JSON-RPC errors", function()
    local url = serve()
    local st, r = post(url .. "/a2a/helper", "{not json")
    assert.equal(200, st); assert.equal(-32700, r.error.code)
    st, r = post(url .. "/a2a/helper", "[1, 2]")
    assert.equal(-32600, r.error.code)
    st, r = post(url .. "/a2a/helper", { jsonrpc = "1.0", id = 1, method = "GetTask" })
    assert.equal(-32600, r.error.code); assert.equal(1, r.id)
    st, r = post(url .. "/a2a/helper", { jsonrpc = "2.0", id = 2, method = "Nope" })
    assert.equal(-32601, r.error.code); assert.matches("SendMessage", r.error.message)
    st, r = post(url .. "/a2a/helper", { jsonrpc = "2.0", id = 3, method = "GetTask", params = {} },
                 { ["A2A-Version"] = "0.3" })
    assert.equal(-32009, r.error.code)
    st, r = post(url .. "/a2a/helper", { jsonrpc = "2.0", id = 4, method = "SendMessage", params = { message = {} } })
    assert.equal(-32602, r.error.code)
    st, r = post(url .. "/a2a/helper", { jsonrpc = "2.0", id = 5, method = "GetTask", params = "x" })
    assert.equal(-32602, r.error.code)
    st = post(url .. "/a2a/nobody", { jsonrpc = "2.0", id = 6, method = "GetTask", params = { id = "x" } })
    assert.equal(404, st)
    local res = assert(weft.http.request{ url = url .. "/a2a/nobody/.well-known/agent-card.json" })
    assert.equal(404, res.status)
    -- no keys: the card lists no security scheme
    res = assert(weft.http.request{ url = url .. "/a2a/ask/.well-known/agent-card.json" })
    local card = json.decode(res.body)
    assert.is_nil(card.securitySchemes)
    assert.same({ "weft", "workflow" }, card.skills[1].tags)
    -- a message to a task that has ended; a task of another agent
    local msg = { messageId = "m1", role = "ROLE_USER", parts = { { text = "hi" } } }
    st, r = post(url .. "/a2a/helper", { jsonrpc = "2.0", id = 7, method = "SendMessage", params = { message = msg } })
    local task = r.result.task
    assert.equal("TASK_STATE_COMPLETED", task.status.state)
    local texts = {}
    for i, part in ipairs(task.artifacts[1].parts) do texts[i] = part.text end
    assert.same({ "echo: ", "hi" }, texts) -- the streamed chunks, without the empty closing one
    msg.taskId = task.id
    st, r = post(url .. "/a2a/helper", { jsonrpc = "2.0", id = 8, method = "SendMessage", params = { message = msg } })
    assert.equal(-32004, r.error.code)
    st, r = post(url .. "/a2a/ask", { jsonrpc = "2.0", id = 9, method = "GetTask", params = { id = task.id } })
    assert.equal(-32001, r.error.code)
  end)

  it("returns at once with returnImmediately, and GetTask follows the task", function()
    local url = serve()
    local msg = { messageId = "m1", role = "ROLE_USER", parts = { { text = "you" } } }
    local _, r = post(url .. "/a2a/ask", { jsonrpc = "2.0", id = 1, method = "SendMessage",
      params = { message = msg, configuration = { returnImmediately = true } } })
    local task = r.result.task
    assert.equal("TASK_STATE_WORKING", task.status.state)
    local state
    h.poll_until(function()
      _, r = post(url .. "/a2a/ask", { jsonrpc = "2.0", id = 2, method = "GetTask", params = { id = task.id } })
      state = r.result.status.state
      return state ~= "TASK_STATE_WORKING"
    end)
    assert.equal("TASK_STATE_INPUT_REQUIRED", state)
    assert.equal("Who is there, you?", r.result.status.message.parts[1].text)
    -- a data part answers with its value
    msg = { messageId = "m2", role = "ROLE_USER", taskId = task.id, parts = { { data = { name = "Ada" } } } }
    _, r = post(url .. "/a2a/ask", { jsonrpc = "2.0", id = 3, method = "SendMessage", params = { message = msg } })
    assert.equal("TASK_STATE_COMPLETED", r.result.task.status.state)
    assert.matches("^hello, table", r.result.task.artifacts[1].parts[1].text)
  end)

  for _, mode in ipairs({ "in-process", "workers" }) do
    it("serves agents and workflows (" .. mode .. ")", function()
      need_sdk()
      local tmp = scope.tmpdir()
      os.execute("mkdir -p " .. procs.quote(tmp .. "/scripts"))
      files.write(tmp .. "/scripts/ask.lua", ASK)
      files.write(tmp .. "/scripts/many.lua", MANY)
      files.write(tmp .. "/keys.json", json.encode({
        { id = "admin", key = "a2a-admin-key", scopes = { "admin" } },
        { id = "reader", key = "a2a-read-key", scopes = { "read" } } }))
      local port = procs.free_port()
      local argv = { bin, "serve", "--port", tostring(port), "--scripts", tmp .. "/scripts", "--keys", tmp .. "/keys.json" }
      if mode == "in-process" then
        for _, a in ipairs({ "--store", "memory:" }) do argv[#argv + 1] = a end
      else
        for _, a in ipairs({ "--store", "sqlite:" .. tmp .. "/weft.db", "--workers", "1" }) do argv[#argv + 1] = a end
      end
      local p = procs.spawn(argv)
      scope.later(function() procs.kill(p); procs.wait(p, 20) end)
      procs.wait_port(port)
      local url = ("http://127.0.0.1:%d"):format(port)
      local res = assert(weft.http.request{ method = "POST", url = url .. "/api/v1/agents",
        headers = { Authorization = "Bearer a2a-admin-key" },
        body = { name = "helper", model = "mock:echo", description = "echoes" } })
      assert.equal(201, res.status, res.body)
      local rc, out, err = procs.run({ "node", dir .. "/sdk_client.mjs" }, {
        WEFT_URL = url, WEFT_KEY = "a2a-admin-key", WEFT_READ_KEY = "a2a-read-key",
        AGENT = "helper", ASK = "ask", MANY = "many" }, 120)
      assert.equal(0, rc, err)
      local o = assert(json.decode(procs.last_line(out)), out)
      -- the card
      assert.equal("helper", o.card.name)
      assert.is_true(o.card.streaming)
      assert.equal(url .. "/a2a/helper", o.card.url)
      assert.same({ "apiKey", "bearer" }, o.card.schemes)
      -- an agent: send, a follow-up in the same context, stream, get
      assert.equal("TASK_STATE_COMPLETED", o.send.state)
      assert.equal("echo: hello agent", o.send.text)
      assert.equal(o.send.context, o.followup.context)
      assert.equal("echo: second", o.followup.text)
      assert.equal("task", o.stream.kinds[1])
      assert.equal("TASK_STATE_COMPLETED", o.stream.kinds[#o.stream.kinds])
      assert.equal("echo: streamed words", o.stream.text)
      assert.equal("TASK_STATE_COMPLETED", o.get.state)
      assert.equal(1, o.get.history)
      assert.equal("TaskNotFoundError", o.get_unknown.name)
      assert.equal("TaskNotCancelableError", o.cancel_done.name)
      -- a workflow asking (input-required), answered on the same task
      assert.same({ state = "TASK_STATE_INPUT_REQUIRED", question = "Who is there, visitor?" }, o.ask)
      assert.same({ state = "TASK_STATE_COMPLETED", text = "hello, Ada", same = true }, o.answer)
      assert.same({ "task", "TASK_STATE_WORKING", "TASK_STATE_INPUT_REQUIRED" }, o.ask_stream)
      assert.same({ before = "TASK_STATE_INPUT_REQUIRED", after = "TASK_STATE_CANCELED", get = "TASK_STATE_CANCELED" },
                  o.cancel)
      assert.same({ state = "TASK_STATE_COMPLETED", artifacts = { "first x", '{"n":2}' } }, o.many)
      -- keys: a read key cannot send, a wrong key gets no card
      assert.matches("403", o.read_send.message)
      assert.matches("401", o.no_key.message)
    end)
  end
end)
