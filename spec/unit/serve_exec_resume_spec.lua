-- POST /api/v1/executions/{id}/resume {from, force}: a durable execution
-- continued in the server from one of its checkpoints (the dashboard's
-- "resume from here"), on the REST app in process (spec/support/
-- fake_res.lua, a memory store shared by the app's durable runs).
local weft = require "weft"
local fake = require "support.fake_res"
local files = require "support.files"

local call, err_of = fake.call, fake.err_of
local scope = require("support.scope")(after_each)

-- the flaky workflow of spec/fixtures/flaky.lua (c fails once)
local FLAKY = assert(files.slurp(os.getenv("WEFT_SOURCE_DIR") .. "/spec/fixtures/flaky.lua"))

-- One question to a human.
local ASK = [[
local weft = require "weft"
return weft.workflow("ask"):start(weft.executor("ask", function(m, ctx)
  ctx:yield_output(m .. ": " .. tostring(ctx:request_info({ question = m })))
end)):build()
]]

-- An app whose runs are durable (memory store) with the scripts above.
local function app(durable)
  local dir = scope.tmpdir()
  files.write(dir .. "/flaky.lua", FLAKY)
  files.write(dir .. "/ask.lua", ASK)
  return fake.app{ scripts_dir = dir, durable = durable ~= false }
end

-- Execute workflow wid with input (sync); the summary.
local function execute(a, wid, input)
  local res = call(a, "POST", "/api/v1/workflows/" .. wid .. "/execute", { body = { input = input } })
  assert.equal(200, res.status_code, res.body)
  return res:decoded()
end

-- The events of execution id until it ends or pauses (its SSE stream),
-- then its summary.
local function follow(a, id)
  local evs = call(a, "GET", "/api/v1/executions/" .. id .. "/events"):events()
  return evs, call(a, "GET", "/api/v1/executions/" .. id):decoded()
end

-- The executors invoked in events evs, in order.
local function invoked(evs)
  local out = {}
  for _, e in ipairs(evs) do
    if e.event == "executor_invoked" then out[#out + 1] = e.data.executor_id end
  end
  return out
end

describe("POST /api/v1/executions/{id}/resume", function()
  it("continues a failed execution from a middle checkpoint: what follows it runs again", function()
    local a = app()
    local d = execute(a, "flaky", "go")
    assert.equal("failed", d.status)
    local res = call(a, "POST", "/api/v1/executions/" .. d.id .. "/resume", { body = { from = 1 } })
    assert.equal(202, res.status_code, res.body)
    assert.same({ id = d.id, status = "running", from = 1 }, res:decoded())
    local evs, s = follow(a, d.id)
    assert.equal("completed", s.status)
    -- from checkpoint 1 (after a): b and c run again, a does not
    assert.same({ "b", "c" }, invoked(evs))
    assert.same({ "a,b #2" }, s.outputs)
    -- the checkpoints now continue from 1: the state at the new end
    local cks = call(a, "GET", "/api/v1/executions/" .. d.id .. "/checkpoints"):decoded()
    local last = cks.checkpoints[#cks.checkpoints].seq
    local st = call(a, "GET", "/api/v1/executions/" .. d.id .. "/checkpoints/" .. last):decoded()
    assert.same({ "a", "b", "c" }, st.state.log)
  end)

  it("continues from the last checkpoint without a body", function()
    local a = app()
    local d = execute(a, "flaky", "go")
    assert.equal(202, call(a, "POST", "/api/v1/executions/" .. d.id .. "/resume").status_code)
    local evs, s = follow(a, d.id)
    assert.same({ "c" }, invoked(evs))
    assert.same({ "a,b #2" }, s.outputs)
  end)

  it("answers 409 for an execution live in this process", function()
    local a = app()
    local d = execute(a, "ask", "ok?")
    assert.equal("idle", d.status)
    local e = err_of(call(a, "POST", "/api/v1/executions/" .. d.id .. "/resume", { body = { from = 1 } }), 409)
    assert.equal("conflict", e.code)
    assert.truthy(e.message:find("idle in this process", 1, true), e.message)
  end)

  it("answers 400 with weft.durable's refusal: ended, no such checkpoint, not durable, bad body", function()
    local a = app()
    local d = execute(a, "flaky", "go")
    local path = "/api/v1/executions/" .. d.id .. "/resume"
    local e = err_of(call(a, "POST", path, { body = { from = 9 } }), 400)
    assert.equal("not_resumable", e.code)
    assert.truthy(e.message:find("has no checkpoint 9 (it has 2)", 1, true), e.message)
    assert.equal("validation_error", err_of(call(a, "POST", path, { body = { from = 0 } }), 400).code)
    assert.equal("validation_error", err_of(call(a, "POST", path, { body = { from = "x" } }), 400).code)
    call(a, "POST", path)
    follow(a, d.id)
    e = err_of(call(a, "POST", path, { body = { from = 1 } }), 400)
    assert.equal("not_resumable", e.code)
    assert.truthy(e.message:find("already completed", 1, true), e.message)
    local b = app(false)
    local d2 = execute(b, "flaky", "go")
    assert.equal("not_durable", err_of(call(b, "POST", "/api/v1/executions/" .. d2.id .. "/resume"), 400).code)
    err_of(call(b, "POST", "/api/v1/executions/nope/resume"), 404)
  end)
end)
