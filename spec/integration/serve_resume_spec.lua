-- weft serve restarted after a SIGKILL: the durable executions the killed
-- server left mid-run still have its live lease in the store; the new
-- server waits for that lease (in a task of its own, the execution shown
-- as running and resuming meanwhile) and then continues them, while the
-- paused ones are answered at once. Real `weft serve` processes over
-- SQLite and a real redis-server started here. #redis
local weft = require "weft"
local json = weft.json
local procs = require "support.procs"
local files = require "support.files"
local hs = require "support.http_server"

local bin = procs.weft_bin()

-- What to undo after each test (support/scope.lua).
local scope = require("support.scope")(after_each)
local later, tmpdir = scope.later, scope.tmpdir

-- Two supersteps: "first" passes the input on (a checkpoint), "fetch" asks
-- the gate server (WEFT_TEST_GATE) and outputs its answer.
local SLOW = [[
local weft = require "weft"
local first = weft.executor("first", function(m, ctx) ctx:send(m .. "!") end)
local fetch = weft.executor("fetch", function(m, ctx)
  local res = assert(weft.http.request{ url = os.getenv("WEFT_TEST_GATE"), timeout = 120 })
  ctx:yield_output(m .. " " .. res.body)
end)
return weft.workflow("slow"):start(first):edge(first, fetch):build()
]]

-- One question to a human; the answer is the output.
local ASK = [[
local weft = require "weft"
return weft.workflow("ask"):start(weft.executor("ask", function(m, ctx)
  ctx:yield_output(m .. ": " .. tostring(ctx:request_info({ question = m })))
end)):build()
]]

-- A test server for the "fetch" executor: the first request is held
-- (until stop: the server that sent it is killed meanwhile), the next ones
-- are answered "done". g.arrived is signalled on each request.
local function gate()
  local g = { hits = 0, arrived = weft.cond() }
  g.srv = hs.start{ port = 0, handler = function(_, res)
    g.hits = g.hits + 1
    g.arrived:signal()
    if g.hits == 1 then g.srv:pause(3600) return end
    res:send(200, { ["content-type"] = "text/plain" }, "done")
  end }
  return g
end

-- A weft serve on store url with the scripts in dir; env adds variables.
local function serve(url, dir, port, env)
  local p = procs.spawn({ bin, "serve", "--port", tostring(port), "--store", url, "--scripts", dir, "--in-process" }, env)
  procs.wait_port(port)
  return p
end

local function call(method, url, body)
  local res = assert(weft.http.request{ method = method, url = url, body = body,
    headers = body and { ["content-type"] = "application/json" } or nil })
  return res.status, json.decode(res.body), res.body
end

-- Poll execution id until its status is terminal (bounded).
local function until_ended(base, id)
  local deadline = weft.clock() + 60
  local st, d, raw
  repeat
    st, d, raw = call("GET", base .. "/executions/" .. id)
    assert.equal(200, st, raw)
    if d.status == "completed" or d.status == "failed" or d.status == "cancelled" then return d, raw end
    weft.sleep(0.02)
  until weft.clock() > deadline
  error("execution " .. id .. " did not end: " .. raw)
end

-- Start the two executions on a first server (lease ttl `ttl`): "ask"
-- paused on its request, "slow" mid-run in "fetch"; SIGKILL that server.
-- Returns the two execution ids.
local function killed_midrun(url, dir, port, g, ttl)
  local base = ("http://127.0.0.1:%d/api/v1"):format(port)
  local env = { WEFT_TEST_GATE = g.srv.url, WEFT_LEASE_TTL = ttl }
  local p = serve(url, dir, port, env)
  later(function() procs.kill(p) end)
  local st, asked, raw = call("POST", base .. "/workflows/ask/execute", { input = "deploy?" })
  assert.equal(200, st, raw)
  assert.equal("idle", asked.status, raw)
  local slow
  st, slow, raw = call("POST", base .. "/workflows/slow/execute", { input = "go", async = true })
  assert.equal(202, st, raw)
  assert.truthy(g.arrived:wait(60), "the fetch executor did not call the gate")
  assert.equal(1, g.hits)
  procs.kill(p) -- no goodbye: its lease on "slow" stays until it expires
  procs.wait(p, 20)
  return asked.id, slow.id
end

local function each_store(fn)
  procs.each_store({ it = it, pending = pending, defer = later }, tmpdir, fn)
end

-- What each test starts from: a scripts dir with SLOW and ASK, a gate
-- server (stopped after the test), a free port and the API base on it.
local function scene()
  local dir = tmpdir()
  files.write(dir .. "/slow.lua", SLOW)
  files.write(dir .. "/ask.lua", ASK)
  local g = gate()
  later(function() g.srv:stop() end)
  local port = procs.free_port()
  return dir, g, port, ("http://127.0.0.1:%d/api/v1"):format(port)
end

describe("weft serve restarted after a SIGKILL", function()
  describe("resumes a mid-run execution once the killed server's lease expires, and answers a paused one", function()
    each_store(function(url)
      local dir, g, port, base = scene()
      local ask_id, slow_id = killed_midrun(url, dir, port, g, "2")
      local p2 = serve(url, dir, port, { WEFT_TEST_GATE = g.srv.url, WEFT_LEASE_TTL = "2" })
      later(function() procs.kill(p2) end)
      -- the paused execution is idle and takes its answer: at once, or once
      -- the killed server's lease expires when the SIGKILL came before that
      -- server released the lease of the run it had just paused (the sync
      -- answer "idle" can reach the client before the release commits)
      local st, d, raw
      local deadline = weft.clock() + 60
      repeat
        st, d, raw = call("GET", base .. "/executions/" .. ask_id)
        assert.equal(200, st, raw)
        if d.requests and d.requests[1] then break end
        assert.is_true(d.resuming, raw) -- else it must be shown waiting for the lease
        weft.sleep(0.02)
      until weft.clock() > deadline
      assert.equal("idle", d.status, raw)
      local _
      st, _, raw = call("POST", base .. "/executions/" .. ask_id .. "/responses",
        { request_id = d.requests[1].request_id, value = "yes" })
      assert.equal(202, st, raw)
      d, raw = until_ended(base, ask_id)
      assert.equal("completed", d.status, raw)
      assert.same({ "deploy?: yes" }, d.outputs)
      -- the mid-run one continues after the lease of the killed server
      d, raw = until_ended(base, slow_id)
      assert.equal("completed", d.status, raw)
      assert.same({ "go! done" }, d.outputs)
      assert.equal(2, g.hits)
      os.execute("kill -TERM " .. p2.pid)
      local rc, _, err = procs.wait(p2, 20)
      assert.equal(0, rc, err)
      assert.falsy(err:find("could not resume", 1, true), err)
    end)
  end)

  it("shows an execution waiting for the lease as running, refuses answers to it and cancels the wait", function()
    local url = "sqlite:" .. tmpdir() .. "/weft.db"
    local dir, g, port, base = scene()
    -- a lease far longer than this test: the new server waits all along
    local _, slow_id = killed_midrun(url, dir, port, g, "600")
    local p2 = serve(url, dir, port, { WEFT_TEST_GATE = g.srv.url })
    later(function() procs.kill(p2) end)
    local st, d, raw = call("GET", base .. "/executions/" .. slow_id)
    assert.equal(200, st, raw)
    assert.equal("running", d.status, raw)
    assert.is_true(d.resuming, raw)
    st, d, raw = call("GET", base .. "/executions?status=running")
    assert.equal(200, st, raw)
    assert.equal(1, d.total, raw)
    assert.equal(slow_id, d.items[1].id, raw)
    assert.is_true(d.items[1].resuming, raw)
    st, d, raw = call("POST", base .. "/executions/" .. slow_id .. "/responses", { request_id = "r1", value = "x" })
    assert.equal(409, st, raw)
    assert.equal("resuming", d.error.code, raw)
    assert.truthy(d.error.message:find("waiting for the lease", 1, true), raw)
    -- an event stream open while it waits ends when it is cancelled
    local events = weft.go(function()
      local res = assert(weft.http.request{ url = base .. "/executions/" .. slow_id .. "/events", timeout = 60 })
      return res.status, res.body
    end)
    st, d, raw = call("DELETE", base .. "/executions/" .. slow_id)
    assert.equal(200, st, raw)
    assert.equal("cancelled", d.status, raw)
    local est, body = events:wait()
    assert.equal(200, est)
    assert.truthy(body:find('event: end\ndata: {"id":"' .. slow_id .. '","status":"cancelled"}', 1, true), body)
    st, d, raw = call("GET", base .. "/executions/" .. slow_id)
    assert.equal("cancelled", d.status, raw)
    assert.falsy(d.resuming, raw)
    st, d, raw = call("DELETE", base .. "/executions/" .. slow_id)
    assert.equal(409, st, raw)
    assert.equal(1, g.hits) -- never resumed
    os.execute("kill -TERM " .. p2.pid)
    local rc, _, err = procs.wait(p2, 20)
    assert.equal(0, rc, err)
  end)
end)
