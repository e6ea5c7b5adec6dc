-- weft.serve.inspect: the read endpoints of the dashboard, on the REST app
-- in process (spec/support/fake_res.lua): a workflow's graph (Graphviz
-- SVG with the executor ids, description, hash, source), the checkpoints
-- of a durable execution and the state at one of them (reducers folded).
local weft = require "weft"
local fake = require "support.fake_res"
local files = require "support.files"

local call, err_of = fake.call, fake.err_of
local scope = require("support.scope")(after_each)

-- Three supersteps, each appending to "log" (a reducer) and setting "last".
local STEPS = [[
local weft = require "weft"
local function step(id, nxt)
  return weft.executor(id, function(m, ctx)
    ctx:set_state("log", id)
    ctx:set_state("last", id)
    if nxt then ctx:send(m) else ctx:yield_output(m) end
  end)
end
local a, b, c = step("a", true), step("b", true), step("c", false)
return weft.workflow("steps"):state{ log = weft.reduce.append }
  :start(a):edge(a, b):edge(b, c):build()
]]

-- An app whose runs are durable (memory store) with scripts/steps.lua.
local function app()
  local dir = scope.tmpdir()
  files.write(dir .. "/steps.lua", STEPS)
  return fake.app{ scripts_dir = dir, durable = true }
end

describe("GET /api/v1/workflows/{id}/graph", function()
  it("answers the drawn graph with each executor's id, the description, hash and Lua source", function()
    local a = app()
    local res = call(a, "GET", "/api/v1/workflows/steps/graph")
    assert.equal(200, res.status_code, res.body)
    local d = res:decoded()
    assert.equal("steps", d.name)
    assert.equal("lua", d.source)
    assert.truthy(d.lua:find("weft.reduce.append", 1, true))
    assert.matches("^%x+$", d.hash)
    assert.same({ "a", "b", "c" }, { d.graph.executors[1].id, d.graph.executors[2].id, d.graph.executors[3].id })
    assert.is_string(d.svg, d.svg_error)
    for _, id in ipairs({ "a", "b", "c" }) do
      assert.truthy(d.svg:find('data-executor="' .. id .. '"', 1, true), id)
    end
    -- drawn once per definition: the second answer is the same drawing
    assert.equal(d.svg, call(a, "GET", "/api/v1/workflows/steps/graph"):decoded().svg)
  end)

  it("answers a declarative workflow with its definition, 404 for an unknown one", function()
    local a = app()
    local res = call(a, "POST", "/api/v1/workflows", { body = { id = "w", nodes = { { id = "p", builtin = "passthrough" } } } })
    assert.equal(201, res.status_code, res.body)
    local d = call(a, "GET", "/api/v1/workflows/w/graph"):decoded()
    assert.equal("json", d.source)
    assert.equal("p", d.definition.nodes[1].id)
    err_of(call(a, "GET", "/api/v1/workflows/nope/graph"), 404)
  end)
end)

describe("GET /api/v1/executions/{id}/checkpoints", function()
  it("lists the checkpoints and answers the state at each, reducers folded", function()
    local a = app()
    local res = call(a, "POST", "/api/v1/workflows/steps/execute", { body = { input = "go" } })
    assert.equal(200, res.status_code, res.body)
    local id = res:decoded().id
    local list = call(a, "GET", "/api/v1/executions/" .. id .. "/checkpoints"):decoded()
    assert.equal("steps", list.workflow)
    assert.equal(3, #list.checkpoints)
    assert.is_true(list.checkpoints[1].full)
    assert.same({ "log", "last" }, list.checkpoints[2].writes)
    local s1 = call(a, "GET", "/api/v1/executions/" .. id .. "/checkpoints/1"):decoded()
    assert.same({ log = { "a" }, last = "a" }, s1.state)
    assert.equal("a", s1.pending[1].from)
    assert.equal("go", s1.pending[1].message)
    local s3 = call(a, "GET", "/api/v1/executions/" .. id .. "/checkpoints/3"):decoded()
    assert.same({ log = { "a", "b", "c" }, last = "c" }, s3.state)
    assert.same({ "go" }, s3.outputs)
    assert.same({}, s3.pending)
  end)

  it("refuses a bad checkpoint number (400) and an execution without checkpoints (404 not_durable)", function()
    local a = app()
    local id = call(a, "POST", "/api/v1/workflows/steps/execute", { body = { input = "go" } }):decoded().id
    assert.equal("bad_request", err_of(call(a, "GET", "/api/v1/executions/" .. id .. "/checkpoints/0"), 400).code)
    assert.equal("bad_request", err_of(call(a, "GET", "/api/v1/executions/" .. id .. "/checkpoints/x"), 400).code)
    assert.equal("not_found", err_of(call(a, "GET", "/api/v1/executions/" .. id .. "/checkpoints/9"), 404).code)
    assert.equal("not_durable", err_of(call(a, "GET", "/api/v1/executions/nope/checkpoints"), 404).code)
  end)
end)

describe("weft.durable.state_at", function()
  it("folds a run's checkpoints read-only, and names what is missing by code", function()
    local a, store = app()
    local id = call(a, "POST", "/api/v1/workflows/steps/execute", { body = { input = "go" } }):decoded().id
    local wf = require("weft.serve.workflows").get(a, "steps")
    local durable = require "weft.durable"
    local before = store:get("runs", id)
    local st = assert(durable.state_at(wf, store, id, 2))
    assert.same({ log = { "a", "b" }, last = "b" }, st.state)
    assert.equal(2, st.supersteps)
    assert.equal(before, store:get("runs", id))
    -- without the workflow (no reducers) a written value replaces
    assert.equal("b", assert(durable.state_at(nil, store, id, 2)).state.log)
    assert.equal("no_checkpoint", select(3, durable.state_at(wf, store, id, 4)))
    assert.equal("unknown", select(3, durable.state_at(wf, store, "nope", 1)))
  end)
end)
