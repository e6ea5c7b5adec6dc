-- The windows a SIGKILL of a worker can hit, made deterministic: the
-- store is left exactly as a worker killed at that point leaves it (its
-- queue item taken by a "ghost" consumer that never touches it again),
-- then a real worker (in this process) reclaims the item. Found by
-- pool_processes_spec.lua under ASan: a worker killed after its run
-- completed but before the summary and the acknowledgement were written
-- (and before its last events reached the log).
-- On SQLite and on a real redis-server started here (#redis).
local weft = require "weft"
local json = weft.json
local pool = require "weft.pool"

-- What to undo after each test (support/scope.lua); the pool specs' fixture.
local scope = require("support.scope")(after_each)
local fx = require("support.pool_fixture")(scope, { it = it, pending = pending })

describe("a worker reclaiming the execution of a worker killed", function()
  describe("after its run completed, before the summary and the acknowledgement", function()
    fx.each_store(function(st)
      local dir = fx.scripts()
      local wf = assert(weft.script.load(dir .. "/echo.lua"))
      local d = pool.submit(st, { workflow = "echo", hash = weft.durable.hash(wf), input = "done" })
      -- the killed worker: took the item, said running, ran the run to its end
      assert.equal(1, #assert(st:queue_take(pool.QUEUE, "ghost", 10)))
      d.status, d.worker, d.attempts = "running", "ghost", 1
      assert(st:put("executions", d.id, json.encode(d)))
      local res = wf:run("done", { store = st, run_id = d.id })
      assert.equal("completed", res.status)
      assert.equal("completed", assert(require("weft.durable").record(st, d.id)).status)
      -- a worker reclaims the item
      fx.start_worker(st, dir, { lease_ttl = 0.2 })
      d = fx.until_status(st, d.id)
      assert.equal("completed", d.status, json.encode(d))
      assert.same({ "DONE!" }, d.outputs)
      -- its events died with it: the log gets the end event (one), so that
      -- event streams end
      local evs = assert(pool.events(st, d.id))
      assert.equal(1, #evs)
      assert.equal("workflow_completed", evs[1].event.type)
      local info = assert(st:queue_info(pool.QUEUE))
      assert.equal(0, info.waiting + info.taken)
    end)
  end)
end)
