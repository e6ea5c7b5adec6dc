-- weft.pool and weft.worker in one process: executions submitted to the
-- store's queue, run by a worker (taken, run durably, events logged,
-- acknowledged with the summary), paused and answered, cancelled, left for
-- another worker when the version differs, reclaimed from a worker that
-- stopped touching them, failed after an executor blocked workers too
-- often. On SQLite and on a real redis-server started here (#redis); the
-- multi-process pool is in pool_processes_spec.lua.
local weft = require "weft"
local json = weft.json
local pool = require "weft.pool"
local fake = require "support.fake_res"

-- What to undo after each test (support/scope.lua).
local scope = require("support.scope")(after_each)

local fx = require("support.pool_fixture")(scope, { it = it, pending = pending })
local scripts, start_worker, until_status, each_store = fx.scripts, fx.start_worker, fx.until_status, fx.each_store
local ENDED = fx.ENDED

describe("a worker", function()
  describe("runs a submitted execution, logs its events and acknowledges its item", function()
    fx.with_worker(function(st, _, hashes)
      local d = pool.submit(st, { workflow = "echo", hash = hashes.echo, input = "hi" })
      assert.equal("pending", d.status)
      d = until_status(st, d.id, ENDED)
      assert.equal("completed", d.status, json.encode(d))
      assert.same({ "HI!" }, d.outputs)
      assert.equal("w1", d.worker)
      assert.equal(1, d.attempts)
      local evs = assert(pool.events(st, d.id))
      assert.equal("workflow_started", evs[1].event.type)
      assert.equal("workflow_completed", evs[#evs].event.type)
      for i, e in ipairs(evs) do assert.equal(i, e.n) end
      local info = assert(st:queue_info(pool.QUEUE))
      assert.equal(0, info.waiting)
      assert.equal(0, info.taken)
    end)
  end)

  describe("runs what Lua submits with wf:spawn(input, {queue = store})", function()
    fx.with_worker(function(st, dir)
      local wf = assert(weft.script.load(dir .. "/echo.lua"))
      local h = wf:spawn("lua", { queue = st, workflow = "echo" })
      assert.matches("^exec%-", h.id)
      local res = h:wait()
      assert.equal("completed", res.status, tostring(res.error))
      assert.same({ "LUA!" }, res.outputs)
      assert.equal(h.id, res.run_id)
    end)
  end)

  describe("leaves a paused execution (no worker holds it) and resumes it once answered", function()
    fx.with_worker(function(st, dir, hashes, w)
      local function w_stop() w:stop() end
      local d = pool.submit(st, { workflow = "ask", hash = hashes.ask, input = "deploy" })
      d = until_status(st, d.id, { idle = true })
      assert.equal("deploy?", d.requests[1].request.question)
      assert.equal(0, assert(st:queue_info(pool.QUEUE)).taken)
      -- no worker here yet: the summary says at once that it goes on
      w_stop()
      assert.is_true(pool.answer(st, d.id, d.requests[1].request_id, "yes"))
      local now = assert(pool.get(st, d.id))
      assert.equal("running", now.status)
      assert.is_nil(now.requests)
      start_worker(st, dir)
      d = until_status(st, d.id, ENDED)
      assert.equal("completed", d.status, json.encode(d))
      assert.same({ "deploy: yes" }, d.outputs)
      local again, err = pool.answer(st, d.id, "req-0-0-1-1", "no")
      assert.is_nil(again)
      assert.truthy(err)
    end)
  end)

  describe("cancels a pending execution when it takes it, and a paused one", function()
    fx.with_echo("x", function(st, dir, d, hashes)
      assert(pool.cancel(st, d.id))
      start_worker(st, dir)
      d = until_status(st, d.id, ENDED)
      assert.equal("cancelled", d.status)
      assert.is_nil(d.outputs[1])
      local p = pool.submit(st, { workflow = "ask", hash = hashes.ask, input = "x" })
      until_status(st, p.id, { idle = true })
      assert(pool.cancel(st, p.id))
      p = until_status(st, p.id, ENDED)
      assert.equal("cancelled", p.status, json.encode(p))
      assert.equal("cancelled", assert(require("weft.durable").record(st, p.id)).status)
    end)
  end)

  describe("leaves an execution of another version for another worker, saying why", function()
    fx.with_worker(function(st, dir)
      local d = pool.submit(st, { workflow = "echo", hash = "0000", input = "x" })
      local deadline = weft.clock() + 30
      repeat
        d = assert(pool.get(st, d.id))
        weft.sleep(0.01)
      until d.waiting or weft.clock() > deadline
      assert.equal("pending", d.status)
      assert.truthy(d.waiting:find("worker w1 has workflow 'echo' at version", 1, true), d.waiting)
      assert.truthy(d.waiting:find("not 0000", 1, true), d.waiting)
      assert.equal(1, assert(st:queue_info(pool.QUEUE)).waiting + assert(st:queue_info(pool.QUEUE)).taken)
    end)
  end)

  describe("reclaims the execution of a worker that stopped touching it", function()
    fx.with_echo("late", function(st, dir, d, hashes)
      -- a worker that died right after taking it
      local taken = assert(st:queue_take(pool.QUEUE, "ghost", 10))
      assert.equal(1, #taken)
      start_worker(st, dir, { lease_ttl = 0.2 })
      d = until_status(st, d.id, ENDED)
      assert.equal("completed", d.status, json.encode(d))
      assert.same({ "LATE!" }, d.outputs)
      assert.equal(1, d.attempts) -- the ghost never ran it
    end)
  end)

  describe("publishes its counters: the /metrics and health of a pool replica show them", function()
    fx.with_worker(function(st, dir, hashes)
      local app = require("weft.serve.app").new{ store = st, scripts_dir = dir }
      app.pool = { queue = pool.QUEUE }
      local d = pool.submit(st, { workflow = "echo", hash = hashes.echo, input = "m" })
      until_status(st, d.id, ENDED)
      local text, deadline = "", weft.clock() + 30
      repeat -- the counters are published every lease/3 s
        weft.sleep(0.02)
        text = fake.call(app, "GET", "/metrics").body
      until text:find('weft_worker_executions_total{worker="w1",outcome="completed"} 1', 1, true)
        or weft.clock() > deadline
      assert.truthy(text:find('weft_worker_executions_total{worker="w1",outcome="completed"} 1', 1, true), text)
      assert.truthy(text:find('weft_process_info{name="', 1, true), text)
      assert.truthy(text:find('role="api",queue="weft"} 1', 1, true), text)
      local health = fake.call(app, "GET", "/api/v1/health"):decoded()
      assert.equal(1, health.workers)
      assert.equal("weft", health.queue)
      assert.equal(0, health.queued)
    end, { lease_ttl = 0.1 })
  end)

  describe("answers a replica's chat completions (streamed or not): the replica calls no model", function()
    fx.with_worker(function(st, dir, _, w)
      local app = require("weft.serve.app").new{ store = st, scripts_dir = dir }
      app.pool = { queue = pool.QUEUE }
      local writer = { id = "writer", name = "writer", model = "mock:echo", instructions = "You write." }
      assert.equal(201, fake.call(app, "POST", "/api/v1/agents", { body = writer }).status_code)
      local res = fake.call(app, "POST", "/v1/chat/completions",
        { body = { model = "agent:writer", messages = { { role = "user", content = "ping pong" } } } })
      assert.equal(200, res.status_code, res.body)
      assert.matches("ping pong", res:decoded().choices[1].message.content, 1, true)
      res = fake.call(app, "POST", "/v1/chat/completions",
        { body = { model = "workflow:echo", stream = true, messages = { { role = "user", content = "up" } } } })
      assert.equal(200, res.status_code, res.body)
      local text = res:text()
      assert.truthy(text:find('"content":"UP!"', 1, true), text)
      assert.truthy(text:find("data: [DONE]", 1, true), text)
      res = fake.call(app, "POST", "/v1/chat/completions",
        { body = { model = "agent:nobody", messages = { { role = "user", content = "x" } } } })
      assert.equal(404, res.status_code)
      -- both went through the worker (the 404 was the replica's own check),
      -- and the replica removed the calls' records
      assert.equal(2, w:stats().calls)
      assert.same({}, assert(st:scan("calls", "")))
    end)
  end)

  describe("runs at most `concurrency` executions at once", function()
    each_store(function(st)
      local dir = scripts()
      require("support.files").write(dir .. "/slow.lua", [[
local weft = require "weft"
return weft.workflow("slow"):start(weft.executor("s", function(m, ctx)
  weft.sleep(0.05)
  ctx:yield_output(m)
end)):build()
]])
      local hash = weft.durable.hash(assert(weft.script.load(dir .. "/slow.lua")))
      local w = start_worker(st, dir, { concurrency = 2 })
      local ids = {}
      for i = 1, 8 do ids[i] = pool.submit(st, { workflow = "slow", hash = hash, input = "s" .. i }).id end
      local most, done = 0, 0
      local deadline = weft.clock() + 30
      repeat
        most = math.max(most, w:stats().running)
        done = 0
        for _, id in ipairs(ids) do
          if ENDED[assert(pool.get(st, id)).status] then done = done + 1 end
        end
        weft.sleep(0.005)
      until done == #ids or weft.clock() > deadline
      assert.equal(#ids, done)
      assert.equal(2, most)
    end)
  end)

  describe("fails an execution whose executor blocked workers max_blocked times", function()
    fx.with_echo("x", function(st, dir, d, hashes)
      assert(st:queue_take(pool.QUEUE, "ghost", 10))
      local what = "executor 'up' of run " .. d.id .. " did not yield for 60 s"
      assert(st:put("blocked", d.id, json.encode({ what = what, executor_id = "up", count = 2 })))
      start_worker(st, dir, { lease_ttl = 0.2 })
      d = until_status(st, d.id, ENDED)
      assert.equal("failed", d.status)
      assert.truthy(d.error:find(what, 1, true), d.error)
      assert.truthy(d.error:find("tried 2 times", 1, true), d.error)
    end)
  end)
end)
