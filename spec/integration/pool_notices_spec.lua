-- `weft serve --workers 1`: the replica wakes its worker when it queues an
-- execution or a call, and the worker tells the replica when one changed
-- (loopback connections, weft.worker.supervise). Here polling is made
-- useless (every poll waits an hour: WEFT_POOL_POLL_MIN/MAX): a sync execute, an event stream
-- and a chat completion only finish because the notices work — without
-- them each request would wait for the next poll, an hour later, and fail
-- at the client's timeout.
local weft = require "weft"
local json = weft.json
local procs = require "support.procs"
local files = require "support.files"

local bin = procs.weft_bin()

describe("weft serve --workers 1 with notices", function()
  local dir, p, base
  setup(function()
    dir = files.tempdir()
    files.write(dir .. "/echo.lua", [[
local weft = require "weft"
local up = weft.executor("up", function(m, ctx) ctx:send(m:upper()) end)
local bang = weft.executor("bang", function(m, ctx) ctx:yield_output(m .. "!") end)
return weft.workflow("echo"):start(up):edge(up, bang):build()
]])
    local port = procs.free_port()
    base = ("http://127.0.0.1:%d"):format(port)
    p = procs.spawn({ bin, "serve", "--port", tostring(port), "--store", "sqlite:" .. dir .. "/weft.db",
                      "--scripts", dir, "--workers", "1" }, { WEFT_POOL_POLL_MIN = "3600", WEFT_POOL_POLL_MAX = "3600" })
    procs.wait_port(port)
  end)
  teardown(function()
    os.execute("kill -TERM " .. p.pid)
    procs.wait(p, 30)
    files.remove(dir)
  end)

  local function post(path, body)
    local res = assert(weft.http.request{ method = "POST", url = base .. path, timeout = 30,
      headers = { ["content-type"] = "application/json" }, body = body })
    return res.status, json.decode(res.body), res.body
  end

  it("answers a sync execute as soon as the worker is done", function()
    for i = 1, 3 do
      local st, d, raw = post("/api/v1/workflows/echo/execute", { input = "n" .. i })
      assert.equal(200, st, raw)
      assert.equal("completed", d.status, raw)
      assert.same({ "N" .. i .. "!" }, d.outputs)
    end
  end)

  it("streams an execution's events to its end", function()
    local st, d, raw = post("/api/v1/workflows/echo/execute", { input = "s", async = true })
    assert.equal(202, st, raw)
    local res = assert(weft.http.request{ url = base .. "/api/v1/executions/" .. d.id .. "/events", timeout = 30 })
    assert.equal(200, res.status, res.body)
    assert.truthy(res.body:find("event: workflow_completed", 1, true), res.body)
    assert.truthy(res.body:find('event: end\ndata: {"id":"' .. d.id .. '","status":"completed"}', 1, true), res.body)
  end)

  it("answers a chat completion done by the worker", function()
    local st, d, raw = post("/v1/chat/completions",
      { model = "workflow:echo", messages = { { role = "user", content = "chat" } } })
    assert.equal(200, st, raw)
    assert.equal("CHAT!", d.choices[1].message.content)
  end)
end)
