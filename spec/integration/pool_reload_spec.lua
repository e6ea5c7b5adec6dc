-- Hot reload with worker processes: `weft serve --watch DIR` (workers by
-- default, here one) passes --watch to its workers, so a save reaches
-- both the replica (the definition hash an execution is queued with) and
-- the worker (the code that runs it). A changed graph runs only once the
-- worker has it (until then the execution waits, its summary saying why);
-- a broken save keeps the working version on both sides.
local weft = require "weft"
local json = weft.json
local procs = require "support.procs"
local files = require "support.files"

local bin = procs.weft_bin()

-- Write path atomically (a watcher never sees half a file).
local function put(path, text)
  files.write(path .. ".tmp", text)
  assert(os.rename(path .. ".tmp", path))
end

local V1 = [[
local weft = require "weft"
return weft.workflow("flow"):start(weft.executor("a", function(m, ctx) ctx:yield_output("v1 " .. m) end)):build()
]]
-- another graph (two executors): another definition hash
local V2 = [[
local weft = require "weft"
local a = weft.executor("a", function(m, ctx) ctx:send(m) end)
local b = weft.executor("b", function(m, ctx) ctx:yield_output("v2 " .. m) end)
return weft.workflow("flow"):start(a):edge(a, b):build()
]]

describe("weft serve --watch with a worker process", function()
  it("runs each saved version once both sides have it, and keeps the working one after a broken save", function()
    local dir = files.tempdir()
    finally(function() files.remove(dir) end)
    local flows = dir .. "/flows"
    os.execute("mkdir -p " .. flows)
    put(flows .. "/flow.lua", V1)
    local port = procs.free_port()
    local p = procs.spawn({ bin, "serve", "--port", tostring(port), "--store", "sqlite:" .. dir .. "/weft.db",
                            "--watch", flows, "--workers", "1" })
    finally(function()
      os.execute("kill -TERM " .. p.pid)
      procs.wait(p, 30)
    end)
    procs.wait_port(port)
    local base = ("http://127.0.0.1:%d/api/v1"):format(port)
    local function run(input)
      local res = assert(weft.http.request{ method = "POST", url = base .. "/workflows/flow/execute", timeout = 60,
        headers = { ["content-type"] = "application/json" }, body = { input = input } })
      assert.equal(200, res.status, res.body)
      local d = json.decode(res.body)
      assert.equal("completed", d.status, res.body)
      return d.outputs[1]
    end
    assert.equal("v1 a", run("a"))
    put(flows .. "/flow.lua", V2)
    -- the replica queues with the new hash as soon as it reloaded; the
    -- worker runs it once it reloaded too (until then it waits)
    local out, deadline = nil, weft.clock() + 60
    repeat
      out = run("b")
      if out ~= "v2 b" then weft.sleep(0.02) end
    until out == "v2 b" or weft.clock() > deadline
    assert.equal("v2 b", out)
    put(flows .. "/flow.lua", "this is not Lua\n")
    local failed
    deadline = weft.clock() + 60
    repeat -- the replica's reload fails (the worker's watcher sees the same file)
      weft.sleep(0.02)
      local evs = json.decode(assert(weft.http.request{ url = base .. "/reloads" }).body).events
      failed = evs[#evs] and evs[#evs].type == "reload_failed"
    until failed or weft.clock() > deadline
    assert.is_true(failed)
    assert.equal("v2 c", run("c"))
  end)
end)
