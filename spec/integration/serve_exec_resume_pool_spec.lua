-- POST /api/v1/executions/{id}/resume {from, force} with workers (weft
-- serve --workers): the API queues a "rewind" item (weft.pool's way) and a
-- worker continues the execution from that checkpoint. The REST app in
-- process (spec/support/fake_res.lua) as a pool replica and a worker in
-- this process (support/pool_fixture.lua), on SQLite and on a real
-- redis-server started here. #redis
local weft = require "weft"
local pool = require "weft.pool"
local fake = require "support.fake_res"
local files = require "support.files"

local call, err_of = fake.call, fake.err_of
local scope = require("support.scope")(after_each)
local fx = require("support.pool_fixture")(scope, { it = it, pending = pending })

-- the flaky workflow of spec/fixtures/flaky.lua (c fails once)
local FLAKY = assert(files.slurp(os.getenv("WEFT_SOURCE_DIR") .. "/spec/fixtures/flaky.lua"))

describe("POST /api/v1/executions/{id}/resume with workers", function()
  fx.each_store(function(st)
    local dir = scope.tmpdir()
    files.write(dir .. "/flaky.lua", FLAKY)
    fx.start_worker(st, dir)
    local a = fake.app{ store = st, scripts_dir = dir }
    a.pool = { queue = pool.QUEUE }
    local res = call(a, "POST", "/api/v1/workflows/flaky/execute", { body = { input = "go" } })
    assert.equal(200, res.status_code, res.body)
    local d = res:decoded()
    assert.equal("failed", d.status)
    local before = #assert(pool.events(st, d.id))
    res = call(a, "POST", "/api/v1/executions/" .. d.id .. "/resume", { body = { from = 1 } })
    assert.equal(202, res.status_code, res.body)
    assert.equal("pending", res:decoded().status)
    local s = fx.until_status(st, d.id)
    assert.equal("completed", s.status, s.error)
    assert.same({ "a,b #2" }, s.outputs)
    local ran = {}
    for i, e in ipairs(assert(pool.events(st, d.id))) do
      if i > before and e.event.type == "executor_invoked" then ran[#ran + 1] = e.event.executor_id end
    end
    assert.same({ "b", "c" }, ran)
    -- ended: durable's refusal; queued and not taken: 409
    assert.equal("not_resumable", err_of(call(a, "POST", "/api/v1/executions/" .. d.id .. "/resume"), 400).code)
    local q = pool.submit(st, { workflow = "flaky", hash = "0000", input = "x" })
    assert.equal("conflict", err_of(call(a, "POST", "/api/v1/executions/" .. q.id .. "/resume"), 409).code)
  end)
end)
