-- The windows a SIGKILL of a worker can hit, made deterministic: the
-- store is left exactly as a worker killed at that point leaves it (its
-- queue item taken by a "ghost" consumer that never touches it again),
-- then a real worker (in this process) reclaims the item. Found by
-- pool_processes_spec.lua under ASan: a worker killed after its run
-- completed but before the summary and the acknowledgement were written.
-- On SQLite and on a real redis-server started here (#redis).
local weft = require "weft"
local json = weft.json
local pool = require "weft.pool"
local worker = require "weft.worker"
local durable = require "weft.durable"
local procs = require "support.procs"
local files = require "support.files"

local undo = {}
local function later(fn) undo[#undo + 1] = fn end
after_each(function()
  for i = #undo, 1, -1 do undo[i]() end
  undo = {}
end)

local function tmpdir()
  local dir = files.tempdir()
  later(function() files.remove(dir) end)
  return dir
end

local ECHO = [[
local weft = require "weft"
local up = weft.executor("up", function(m, ctx) ctx:send(m:upper()) end)
local bang = weft.executor("bang", function(m, ctx) ctx:yield_output(m .. "!") end)
return weft.workflow("echo"):start(up):edge(up, bang):build()
]]

local ENDED = { completed = true, failed = true, cancelled = true }

-- Poll the summary of id until it ended (bounded).
local function until_ended(st, id)
  local deadline = weft.clock() + 30
  while true do
    local d = assert(pool.get(st, id))
    if ENDED[d.status] then return d end
    assert(weft.clock() < deadline, "execution " .. id .. " stayed " .. tostring(d.status))
    weft.sleep(0.01)
  end
end

describe("a worker reclaiming the execution of a worker killed", function()
  describe("after its run completed, before the summary and the acknowledgement", function()
    procs.each_store({ it = it, pending = pending, defer = later }, tmpdir, function(url)
      local st = assert(weft.store.open(url))
      later(function() st:close() end)
      local dir = tmpdir()
      files.write(dir .. "/echo.lua", ECHO)
      local wf = assert(weft.script.load(dir .. "/echo.lua"))
      local d = pool.submit(st, { workflow = "echo", hash = durable.hash(wf), input = "done" })
      -- the killed worker: took the item, said running, ran the run to its end
      assert.equal(1, #assert(st:queue_take(pool.QUEUE, "ghost", 10)))
      d.status, d.worker, d.attempts = "running", "ghost", 1
      assert(st:put("executions", d.id, json.encode(d)))
      local res = wf:run("done", { store = st, run_id = d.id })
      assert.equal("completed", res.status)
      assert.equal("completed", assert(durable.record(st, d.id)).status)
      -- a worker reclaims the item
      local w = worker.new{ store = st, scripts_dir = dir, name = "w1", lease_ttl = 0.2, log = function() end }
      local t = weft.go(function() w:run() end)
      later(function() w:stop(); t:wait() end)
      d = until_ended(st, d.id)
      assert.equal("completed", d.status, json.encode(d))
      assert.same({ "DONE!" }, d.outputs)
      local info = assert(st:queue_info(pool.QUEUE))
      assert.equal(0, info.waiting + info.taken)
    end)
  end)
end)
