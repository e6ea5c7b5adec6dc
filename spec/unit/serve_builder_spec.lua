-- spec/unit/serve_builder_spec.lua — the Agent Builder of `weft serve`
-- (lua/weft/serve/builder.lua) driven through app:handle(req, res) with the
-- fake response of spec/support/fake_res.lua; the builder model is the
-- offline mock with scripted replies (weft.llm.mock.register).
local weft = require "weft"
local json = require "weft.json"
local llm = require "weft.llm"
local fake = require "support.fake_res"
local h = require "helpers"
local builder = require "weft.serve.builder"

local call = fake.call

local function err_of(res, status) return fake.err_of(res, status, true) end

local function new_app(opts)
  opts = opts or {}
  opts.builder_retries = 0
  return fake.app(opts)
end


-- Script the builder model "mock:<name>" to answer every call with text.
local function script(name, text)
  llm.mock.register(name, { { reply = text } })
end

local function execute(app, body)
  return call(app, "POST", "/api/v1/builder/execute", { body = body })
end

local CREATE_BOTH = {
  summary = "a translator agent and a pipeline using it",
  actions = {
    { op = "create_agent", id = "translator",
      definition = { name = "Translator", model = "mock:echo", instructions = "Translate to French.",
                     temperature = 0.3, tools = { "add" } } },
    { op = "create_workflow", id = "pipeline",
      definition = { name = "Pipeline", nodes = { { id = "t", agent = "translator" }, { id = "out", builtin = "output" } },
                     edges = { { from = "t", to = "out" } } } },
  },
}

describe("weft.serve builder", function()
  after_each(function() llm.mock.reset() end)

  it("creates an agent and a workflow using it in one request", function()
    local app, store = new_app({ tools = { h.add_tool() } })
    local seen
    llm.mock.register("builder", { {
      when = function(messages) seen = messages; return true end,
      reply = "Here you go:\n```json\n" .. json.encode(CREATE_BOTH) .. "\n```\nDone.",
    } })
    local res = execute(app, { request = "Create a translator and a pipeline", context = { language = "fr" } })
    assert.equal(200, res.status_code, res.body)
    local out = res:decoded()
    assert.is_true(out.applied)
    assert.equal("a translator agent and a pipeline using it", out.summary)
    assert.same({ { op = "create_agent", id = "translator", status = "created" },
                  { op = "create_workflow", id = "pipeline", status = "created" } }, out.actions)
    -- the prompt told the model the format, the tools and the request
    assert.equal("system", seen[1].role)
    assert.matches('"actions"', seen[1].content, 1, true)
    assert.matches('"add"', seen[1].content, 1, true)
    assert.matches("Create a translator", seen[2].content, 1, true)
    assert.matches('"language":"fr"', seen[2].content, 1, true)
    -- both are stored and served by the REST endpoints
    assert.is_string(store:get("defs", "agent/translator"))
    local agent = call(app, "GET", "/api/v1/agents/translator"):decoded()
    assert.equal("Translator", agent.name)
    assert.same({ "add" }, agent.tools)
    assert.is_number(agent.created_at)
    assert.equal(200, call(app, "GET", "/api/v1/workflows/pipeline").status_code)
    -- and the workflow runs
    local run = call(app, "POST", "/api/v1/workflows/pipeline/execute", { body = { input = "hello" } })
    assert.equal(200, run.status_code, run.body)
    assert.matches("echo: hello", run.body, 1, true)
  end)

  it("updates and deletes through actions, bare JSON reply", function()
    local app = new_app({ tools = { h.add_tool() } })
    script("builder", json.encode(CREATE_BOTH))
    assert.equal(200, execute(app, { request = "create" }).status_code)
    script("builder", json.encode({ actions = {
      { op = "update_agent", id = "translator", definition = { temperature = 0.9, tools = json.null } },
      { op = "delete_workflow", id = "pipeline" },
      { op = "delete_agent", id = "translator" },
      { op = "create_agent", id = "writer", definition = { name = "writer", model = "mock:echo" } },
    } }))
    local res = execute(app, { request = "change" })
    assert.equal(200, res.status_code, res.body)
    local st = {}
    for i, a in ipairs(res:decoded().actions) do st[i] = a.status end
    assert.same({ "updated", "deleted", "deleted", "created" }, st)
    assert.equal(404, call(app, "GET", "/api/v1/agents/translator").status_code)
    assert.equal(404, call(app, "GET", "/api/v1/workflows/pipeline").status_code)
    assert.equal(200, call(app, "GET", "/api/v1/agents/writer").status_code)
  end)

  it("dry_run validates but changes nothing", function()
    local app, store = new_app({ tools = { h.add_tool() } })
    script("builder", json.encode(CREATE_BOTH))
    local res = execute(app, { request = "create", dry_run = true })
    assert.equal(200, res.status_code, res.body)
    local out = res:decoded()
    assert.is_false(out.applied)
    assert.is_true(out.dry_run)
    assert.equal("would_be_created", out.actions[1].status)
    assert.equal(2, #out.actions)
    assert.is_nil(store:get("defs", "agent/translator"))
    assert.is_nil(store:get("defs", "workflow/pipeline"))
    assert.equal(0, call(app, "GET", "/api/v1/agents"):decoded().total)
    assert.equal(0, call(app, "GET", "/api/v1/workflows"):decoded().total)
  end)

  it("rejects the whole batch when one action is invalid, naming index and field", function()
    local app, store = new_app({ tools = { h.add_tool() } })
    local reply = json.decode(json.encode(CREATE_BOTH))
    reply.actions[3] = { op = "create_agent", id = "bad", definition = { name = "bad", model = "mock:echo", temperature = "hot" } }
    reply.actions[4] = { op = "create_agent", id = "worse", definition = { name = "w", model = "mock:echo", tools = { "nope" } } }
    reply.actions[5] = { op = "explode", id = "x" }
    script("builder", json.encode(reply))
    local e = err_of(execute(app, { request = "create" }), 400)
    assert.equal("invalid_actions", e.code)
    local p = e.details.problems
    assert.equal(3, #p)
    assert.equal(3, p[1].index)
    assert.matches("temperature", p[1].message)
    assert.equal(4, p[2].index)
    assert.equal("definition.tools", p[2].field)
    assert.equal("unknown_tool", p[2].code)
    assert.equal(5, p[3].index)
    assert.equal("op", p[3].field)
    -- the valid actions were not applied either
    assert.is_nil(store:get("defs", "agent/translator"))
    assert.is_nil(store:get("defs", "workflow/pipeline"))
  end)

  it("checks a workflow against the agents of the same batch, in order", function()
    local app, store = new_app()
    script("builder", json.encode({ actions = {
      { op = "create_workflow", id = "wf", definition = { nodes = { { id = "a", agent = "later" } } } },
      { op = "create_agent", id = "later", definition = { name = "later", model = "mock:echo" } },
    } }))
    local e = err_of(execute(app, { request = "x" }), 400)
    assert.equal(1, #e.details.problems)
    assert.equal(1, e.details.problems[1].index)
    assert.equal("definition.nodes[1].agent", e.details.problems[1].field)
    assert.matches("unknown agent 'later'", e.details.problems[1].message, 1, true)
    assert.is_nil(store:get("defs", "agent/later"))
    -- deleting an agent a workflow of the batch uses is refused too
    script("builder", json.encode({ actions = {
      { op = "create_agent", id = "a1", definition = { name = "a1", model = "mock:echo" } },
      { op = "create_workflow", id = "wf", definition = { nodes = { { id = "n", agent = "a1" } } } },
      { op = "delete_agent", id = "a1" },
    } }))
    e = err_of(execute(app, { request = "x" }), 400)
    assert.equal(3, e.details.problems[1].index)
    assert.equal("conflict", e.details.problems[1].code)
  end)

  it("refuses code: fields named code/lua/script/handler and Lua-looking strings", function()
    local app, store = new_app()
    script("builder", json.encode({ actions = {
      { op = "create_agent", id = "a", definition = { name = "a", model = "mock:echo", handler = "x" } },
    } }))
    local e = err_of(execute(app, { request = "x" }), 400)
    assert.equal("code_not_allowed", e.code)
    assert.equal("definition.handler", e.details.problems[1].field)
    for _, bad in ipairs({ 'function(m) return m end', 'os.execute("rm -rf /")', 'x = require("ffi")',
                           "local t = 1", 'io.open("/etc/passwd")' }) do
      script("builder", json.encode({ actions = {
        { op = "create_agent", id = "a", definition = { name = "a", model = "mock:echo", instructions = bad } },
      } }))
      e = err_of(execute(app, { request = "x" }), 400)
      assert.equal("code_not_allowed", e.code, bad)
      assert.equal("definition.instructions", e.details.problems[1].field)
    end
    script("builder", json.encode({ actions = {
      { op = "create_workflow", id = "w", definition = { nodes = { { id = "n", builtin = "passthrough", options = { Lua = "print(1)" } } } } },
    } }))
    e = err_of(execute(app, { request = "x" }), 400)
    assert.equal("code_not_allowed", e.code)
    assert.equal("definition.nodes[1].options.Lua", e.details.problems[1].field)
    assert.is_nil(store:get("defs", "agent/a"))
    -- plain prose about functions is fine
    script("builder", json.encode({ actions = {
      { op = "create_agent", id = "a", definition = { name = "a", model = "mock:echo",
                                                       instructions = "Explain what a function does, in the end." } },
    } }))
    assert.equal(200, execute(app, { request = "x" }).status_code)
  end)

  it("answers 422 with an excerpt for a reply that is not JSON", function()
    local app = new_app()
    script("builder", "Sure! I would create an agent called translator.")
    local e = err_of(execute(app, { request = "x" }), 422)
    assert.equal("invalid_llm_reply", e.code)
    assert.matches("Sure! I would create", e.details.excerpt, 1, true)
    assert.matches("Sure! I would create", e.message, 1, true)
    script("builder", '{"actions": [ {"op": "create_agent", ')
    assert.equal("invalid_llm_reply", err_of(execute(app, { request = "x" }), 422).code)
    script("builder", '{"nothing": 1}')
    assert.equal("invalid_llm_reply", err_of(execute(app, { request = "x" }), 422).code)
  end)

  it("answers 502 naming the provider error when the model fails", function()
    local app = new_app()
    llm.mock.register("builder", { { fail = { status = 401 } } })
    local e = err_of(execute(app, { request = "x" }), 502)
    assert.equal("llm_error", e.code)
    assert.matches("mock:builder", e.message, 1, true)
    assert.matches("401", e.message, 1, true)
    assert.equal("mock", e.details.provider)
    -- an unregistered mock script is a provider error too
    local other = new_app({ builder_model = "mock:nobody" })
    e = err_of(execute(other, { request = "x" }), 502)
    assert.matches("no script named 'nobody'", e.message, 1, true)
  end)

  it("validates the request body", function()
    local app = new_app()
    assert.equal("request", err_of(execute(app, {}), 400).details.field)
    assert.equal("request", err_of(execute(app, { request = "  " }), 400).details.field)
    assert.equal("context", err_of(execute(app, { request = "x", context = { 1, 2 } }), 400).details.field)
    assert.equal("dry_run", err_of(execute(app, { request = "x", dry_run = "yes" }), 400).details.field)
    assert.equal("bogus", err_of(execute(app, { request = "x", bogus = 1 }), 400).details.field)
  end)

  it("lists capabilities: tools, agents, workflows, builtins, operators, model", function()
    local app = new_app({ tools = { h.add_tool() }, builder_model = "mock:cap" })
    call(app, "POST", "/api/v1/agents", { body = { id = "w1", name = "w", model = "mock:echo" } })
    call(app, "POST", "/api/v1/workflows", { body = { id = "f1", nodes = { { id = "n", agent = "w1" } } } })
    local res = call(app, "GET", "/api/v1/builder/capabilities")
    assert.equal(200, res.status_code, res.body)
    local c = res:decoded()
    assert.equal("mock:cap", c.model)
    assert.same({ { name = "add", description = "Add two numbers" } }, c.tools)
    assert.same({ "w1" }, c.agents)
    assert.same({ "f1" }, c.workflows)
    assert.same({ "equals", "not_equals", "exists", "in" }, c.workflow.condition_operators)
    assert.is_truthy(#c.workflow.builtins >= 4)
    assert.same(builder.OPS, c.actions)
    assert.equal("name", c.agent.fields[1].name)
    assert.equal("mock:builder", builder.model(new_app()))
  end)

  it("needs admin to execute and read to see capabilities", function()
    local app = new_app({ security = { keys = {
      { id = "reader", key = "reader-secret", scopes = { "read" } },
      { id = "boss", key = "boss-secret-1", scopes = { "admin" } } } } })
    local function with(key) return { ["x-api-key"] = key } end
    assert.equal(200, call(app, "GET", "/api/v1/builder/capabilities", { headers = with("reader-secret") }).status_code)
    local e = err_of(call(app, "POST", "/api/v1/builder/execute",
                          { body = { request = "x" }, headers = with("reader-secret") }), 403)
    assert.equal("admin", e.details.required_scope)
    script("builder", '{"actions": []}')
    local res = call(app, "POST", "/api/v1/builder/execute", { body = { request = "x" }, headers = with("boss-secret-1") })
    assert.equal(200, res.status_code, res.body)
    assert.is_false(res:decoded().applied)
  end)

  it("parses fenced, bare and embedded JSON replies", function()
    assert.same({ a = 1 }, builder.parse_reply("```json\n{\"a\": 1}\n```"))
    assert.same({ a = 1 }, builder.parse_reply("  {\"a\": 1}  "))
    assert.same({ a = 1 }, builder.parse_reply("Here: {\"a\": 1} hope it helps"))
    assert.is_nil((builder.parse_reply("no json")))
    assert.is_nil((builder.parse_reply("")))
    assert.is_nil((builder.parse_reply("[1, 2]")))
  end)
end)
