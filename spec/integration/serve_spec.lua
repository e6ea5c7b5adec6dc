-- weft serve as a process: the REST app on weft.server, over loopback,
-- stopped by SIGTERM.
local weft = require "weft"
local procs = require "support.procs"
local json = weft.json

local bin = procs.weft_bin()

local wait_port = procs.wait_port

describe("weft serve", function()
  it("serves the API until SIGTERM, then drains and exits 0", function()
    local port = procs.free_port()
    local p = procs.spawn({ bin, "serve", "--port", tostring(port), "--store", "memory:" })
    wait_port(port)
    local base = ("http://127.0.0.1:%d/api/v1"):format(port)
    local res = assert(weft.http.request{ url = base .. "/health" })
    assert.equal(200, res.status)
    assert.equal("ok", json.decode(res.body).status)
    res = assert(weft.http.request{ method = "POST", url = base .. "/workflows",
      headers = { ["content-type"] = "application/json" },
      body = { id = "w1", name = "w1", nodes = { { id = "o", builtin = "passthrough" } }, start = "o" } })
    assert.equal(201, res.status)
    res = assert(weft.http.request{ method = "POST", url = base .. "/workflows/w1/execute",
      headers = { ["content-type"] = "application/json" }, body = { input = "hi" } })
    assert.equal(200, res.status)
    assert.same({ "hi" }, json.decode(res.body).outputs)
    res = assert(weft.http.request{ url = base .. "/nope" })
    assert.equal(404, res.status)
    assert.equal("not_found", json.decode(res.body).error.code)
    os.execute("kill -TERM " .. p.pid)
    local rc, _, err = procs.wait(p, 20)
    assert.equal(0, rc, err)
    assert.truthy(err:find("listening on 127.0.0.1 only", 1, true))
    assert.truthy(err:find("weft: stopped", 1, true))
  end)

  -- The command line of a server on port and store, with extra flags.
  local function serve_argv(port, store, flags)
    local argv = { bin, "serve", "--port", tostring(port), "--store", store }
    for _, f in ipairs(flags) do argv[#argv + 1] = f end
    return argv
  end

  -- A paused execution of a server killed by SIGKILL, answered through the
  -- server started again on the same store (with flags); returns the
  -- second server's stderr.
  local function paused_restart(flags)
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir)
    finally(function() os.execute("rm -rf " .. dir) end)
    local store = "sqlite:" .. dir .. "/serve.db"
    local port = procs.free_port()
    local base = ("http://127.0.0.1:%d/api/v1"):format(port)
    local p = procs.spawn(serve_argv(port, store, flags))
    wait_port(port)
    local res = assert(weft.http.request{ method = "POST", url = base .. "/workflows",
      headers = { ["content-type"] = "application/json" },
      body = { id = "ok", name = "ok", nodes = { { id = "ask", builtin = "approval" } }, start = "ask" } })
    assert.equal(201, res.status, res.body)
    res = assert(weft.http.request{ method = "POST", url = base .. "/workflows/ok/execute",
      headers = { ["content-type"] = "application/json" }, body = { input = "deploy?" } })
    local x = json.decode(res.body)
    assert.equal("idle", x.status, res.body)
    procs.kill(p) -- no goodbye: the run only exists in the store now
    procs.wait(p, 10)
    local p2 = procs.spawn(serve_argv(port, store, flags))
    wait_port(port)
    res = assert(weft.http.request{ url = base .. "/executions/" .. x.id })
    local again = json.decode(res.body)
    assert.equal("idle", again.status, res.body)
    res = assert(weft.http.request{ method = "POST", url = base .. "/executions/" .. x.id .. "/responses",
      headers = { ["content-type"] = "application/json" },
      body = { request_id = again.requests[1].request_id, value = "yes" } })
    assert.equal(202, res.status, res.body)
    for _ = 1, 200 do
      res = assert(weft.http.request{ url = base .. "/executions/" .. x.id })
      if json.decode(res.body).status == "completed" then break end
      weft.sleep(0.01)
    end
    assert.equal("completed", json.decode(res.body).status, res.body)
    os.execute("kill -TERM " .. p2.pid)
    local rc, _, err = procs.wait(p2, 20)
    assert.equal(0, rc, err)
    return err
  end

  it("resumes on start the executions a killed server left paused (--in-process)", function()
    local err = paused_restart({ "--in-process" })
    assert.truthy(err:find("resumed 1 execution", 1, true), err)
  end)

  it("answers, by default through its worker processes, a paused execution of a killed server", function()
    local err = paused_restart({})
    -- no execution ran in the server process: its workers (one per CPU) did
    assert.falsy(err:find("resumed", 1, true), err)
    assert.truthy(err:find("weft worker: ", 1, true), err)
  end)

  it("requires an API key with the right scope when keys are configured", function()
    local keys = os.tmpname()
    finally(function() os.remove(keys) end)
    local f = assert(io.open(keys, "w"))
    f:write(json.encode({ { id = "reader", key = "r-secret", scopes = { "read" } },
                          { id = "boss", key = "b-secret", scopes = { "admin" } } }))
    f:close()
    local port = procs.free_port()
    local p = procs.spawn({ bin, "serve", "--port", tostring(port), "--store", "memory:", "--keys", keys })
    finally(function() procs.kill(p) end)
    wait_port(port)
    local base = ("http://127.0.0.1:%d/api/v1"):format(port)
    local res = assert(weft.http.request{ url = base .. "/agents" })
    assert.equal(401, res.status)
    res = assert(weft.http.request{ url = base .. "/agents", headers = { authorization = "Bearer r-secret" } })
    assert.equal(200, res.status)
    local body = { id = "w", name = "w", model = "mock:echo", instructions = "hi" }
    res = assert(weft.http.request{ method = "POST", url = base .. "/agents", body = body,
      headers = { authorization = "Bearer r-secret", ["content-type"] = "application/json" } })
    assert.equal(403, res.status)
    res = assert(weft.http.request{ method = "POST", url = base .. "/agents", body = body,
      headers = { authorization = "Bearer b-secret", ["content-type"] = "application/json" } })
    assert.equal(201, res.status, res.body)
    res = assert(weft.http.request{ url = base .. "/audit", headers = { authorization = "Bearer b-secret" } })
    assert.equal(200, res.status)
    assert.falsy(res.body:find("secret", 1, true))
    assert.truthy(res.body:find("boss", 1, true))
  end)

  it("reloads watched workflows and their modules, keeping a working version", function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir .. "/lib")
    finally(function() os.execute("rm -rf " .. dir) end)
    local function put(path, text)
      local f = assert(io.open(path .. ".tmp", "w"))
      f:write(text)
      f:close()
      assert(os.rename(path .. ".tmp", path))
    end
    put(dir .. "/lib/greet.lua", 'return { word = "hello" }\n')
    put(dir .. "/flow.lua", [[
local weft = require "weft"
local g = require "lib.greet"
return weft.workflow("flow"):start(weft.executor("a", function(m, ctx) ctx:yield_output(g.word .. " " .. m) end)):build()
]])
    local port = procs.free_port()
    local p = procs.spawn({ bin, "serve", "--port", tostring(port), "--store", "memory:", "--watch", dir })
    finally(function() procs.kill(p) end)
    wait_port(port)
    local base = ("http://127.0.0.1:%d/api/v1"):format(port)
    local function run()
      local res = assert(weft.http.request{ method = "POST", url = base .. "/workflows/flow/execute",
        headers = { ["content-type"] = "application/json" }, body = { input = "x" } })
      return json.decode(res.body).outputs[1]
    end
    local function events()
      local res = assert(weft.http.request{ url = base .. "/reloads" })
      return json.decode(res.body).events
    end
    assert.equal("hello x", run())
    put(dir .. "/lib/greet.lua", 'return { word = "bonjour" }\n')
    for _ = 1, 300 do if #events() >= 2 then break end weft.sleep(0.01) end
    assert.equal("bonjour x", run())
    put(dir .. "/flow.lua", "this is not Lua\n")
    for _ = 1, 300 do if #events() >= 3 then break end weft.sleep(0.01) end
    local evs = events()
    assert.equal("reload_failed", evs[#evs].type)
    assert.truthy(evs[#evs].error:find("flow.lua:1:", 1, true))
    local doc = json.decode(assert(weft.http.request{ url = base .. "/workflows/flow" }).body)
    assert.truthy(doc.reload_error:find("flow.lua:1:", 1, true))
    assert.equal("bonjour x", run()) -- the working version still serves
    -- a script created after the start loads in the host's namespace (its
    -- require finds the dir's modules) and is watched from then on
    put(dir .. "/late.lua", [[
local weft = require "weft"
local g = require "lib.greet"
return weft.workflow("late"):start(weft.executor("a", function(m, ctx) ctx:yield_output(g.word .. "!" .. m) end)):build()
]])
    local res = assert(weft.http.request{ method = "POST", url = base .. "/workflows/late/execute",
      headers = { ["content-type"] = "application/json" }, body = { input = "y" } })
    assert.equal(200, res.status, res.body)
    assert.equal("bonjour!y", json.decode(res.body).outputs[1])
    local n = #events()
    put(dir .. "/lib/greet.lua", 'return { word = "salut" }\n')
    for _ = 1, 300 do if #events() > n then break end weft.sleep(0.01) end
    res = assert(weft.http.request{ method = "POST", url = base .. "/workflows/late/execute",
      headers = { ["content-type"] = "application/json" }, body = { input = "y" } })
    assert.equal("salut!y", json.decode(res.body).outputs[1])
  end)

  it("refuses a non-loopback address when no API keys are configured", function()
    local rc, _, err = procs.run({ bin, "serve", "--host", "0.0.0.0", "--port", "1", "--store", "memory:" })
    assert.equal(2, rc)
    assert.truthy(err:find("refusing to listen on 0.0.0.0", 1, true))
  end)
end)
