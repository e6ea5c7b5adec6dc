-- The worker pool with real processes (docs/scale.md): `weft serve`
-- replicas and `weft worker` supervisors on a real redis-server started
-- here, and `weft serve --workers 2` alone on SQLite. Executions of a
-- workflow that asks the model twice (the provider test server, in this
-- process, counting each request body) are driven through the HTTP API
-- while a worker process is SIGKILLed; every execution must complete
-- exactly once and no journaled model call may be sent again. Also: an
-- SSE stream resumed on the other replica, a never-yielding executor, a
-- pause answered through the other replica, Redis restarted with its
-- append-only file. The one-process pool is in pool_spec.lua. #redis
local weft = require "weft"
local json = weft.json
local procs = require "support.procs"
local files = require "support.files"
local ps = require "support.provider_server"

local bin = procs.weft_bin()
local fmt = string.format

-- What to undo after each test (support/scope.lua).
local scope = require("support.scope")(after_each)
local later, tmpdir = scope.later, scope.tmpdir

-- Two supersteps, one model call each; the prompts name the step and the
-- input, so that each is unique per execution and step.
local TWO = [[
local weft = require "weft"
local llm = require "weft.llm"
local function ask(q)
  local res, err = llm.chat{ model = "openai:pool", base_url = os.getenv("WEFT_TEST_LLM_URL"),
                             api_key = "test-key", messages = { { role = "user", content = q } } }
  if not res then error(err, 0) end
  return res.text
end
local first = weft.executor("first", function(m, ctx) ctx:send(ask("first " .. m)) end)
local second = weft.executor("second", function(m, ctx) ctx:yield_output(ask("second " .. m)) end)
return weft.workflow("two"):start(first):edge(first, second):build()
]]

-- "spin" never yields; any other input is echoed.
local BUSY = [[
local weft = require "weft"
return weft.workflow("busy"):start(weft.executor("spin", function(m, ctx)
  if m == "spin" then while true do end end
  ctx:yield_output(m)
end)):build()
]]

local ASK = [[
local weft = require "weft"
return weft.workflow("ask"):start(weft.executor("ask", function(m, ctx)
  ctx:yield_output(m .. ": " .. tostring(ctx:request_info({ question = m })))
end)):build()
]]

-- The output of TWO for input m (the test server answers "echo: PROMPT").
local function two_output(m) return "echo: second echo: first " .. m end

local ENDED = { completed = true, failed = true, cancelled = true }

-- The provider test server (in this process), counting request bodies;
-- the model URL with `latency` ms per reply.
local function provider(latency)
  local srv = ps.start{ port = 0, count_bodies = true }
  later(function() srv:stop() end)
  return srv, fmt("%s/_f/latency=%d/v1", srv.url, latency)
end

-- A scripts dir with the three workflows.
local function scripts()
  local dir = tmpdir()
  files.write(dir .. "/two.lua", TWO)
  files.write(dir .. "/busy.lua", BUSY)
  files.write(dir .. "/ask.lua", ASK)
  return dir
end

-- Start argv as a process (SIGKILLed after the test: its worker processes
-- die with it, they have a death signal).
local function start(argv, env)
  local p = procs.spawn(argv, env)
  later(function()
    procs.kill(p)
    pcall(procs.wait, p, 20)
  end)
  return p
end

-- A `weft serve` replica on store url with `workers` worker processes;
-- returns the process and its API base.
local function serve(url, dir, workers, env)
  local port = procs.free_port()
  local p = start({ bin, "serve", "--port", tostring(port), "--store", url, "--scripts", dir,
                    "--workers", tostring(workers) }, env)
  procs.wait_port(port)
  p.base = fmt("http://127.0.0.1:%d/api/v1", port)
  return p
end

-- A `weft worker` supervisor of one process; extra: more arguments.
local function worker(url, dir, env, extra)
  local argv = { bin, "worker", "--store", url, "--scripts", dir, "--block-limit", "1" }
  for _, a in ipairs(extra or { "--processes", "1" }) do argv[#argv + 1] = a end
  return start(argv, env)
end

-- The pids of p's worker processes once there are n of them (polled).
local function worker_pids(p, n, not_in)
  local deadline = weft.clock() + 60
  while true do
    local pids = procs.children(p.pid)
    local fresh = #pids == n
    for _, pid in ipairs(pids) do if not_in and not_in[pid] then fresh = false end end
    if fresh then return pids end
    assert(weft.clock() < deadline, fmt("process %d has workers %s, not %d new ones (stderr: %s)", p.pid,
      table.concat(pids, ","), n, procs.slurp(p.err) or ""))
    weft.sleep(0.02)
  end
end

-- One API call: status, decoded body (nil when not JSON), raw body; nil
-- and the error when the request failed.
local function call(method, url, body, timeout)
  local res, err = weft.http.request{ method = method, url = url, body = body, timeout = timeout or 30,
    headers = body and { ["content-type"] = "application/json" } or nil }
  if not res then return nil, err end
  local ok, d = pcall(json.decode, res.body)
  return res.status, ok and d or nil, res.body
end

-- Poll execution id on base until it ended; 503s and failed requests (a
-- store being restarted) are retried. Returns the summary.
local function until_ended(base, id, limit)
  local deadline = weft.clock() + (limit or 90)
  while true do
    local st, d, raw = call("GET", base .. "/executions/" .. id)
    if st == 200 and ENDED[d.status] then return d end
    assert(st == nil or st == 200 or st == 503, fmt("GET execution %s: %s %s", id, tostring(st), tostring(raw)))
    assert(weft.clock() < deadline, fmt("execution %s did not end: %s", id, tostring(raw or d)))
    weft.sleep(0.02)
  end
end

-- Submit one async execution of wid with input through base: its id.
local function submit(base, wid, input)
  local st, d, raw = call("POST", base .. "/workflows/" .. wid .. "/execute", { input = input, async = true })
  assert.equal(202, st, raw)
  return d.id
end

-- Run n executions of TWO (inputs prefix..i) keeping k in flight, spread
-- over the replicas in bases; on_done(count) after each ends. Returns
-- {input -> summary}.
local function drive(bases, n, k, prefix, on_done)
  local done, next_i = {}, 0
  local count = 0
  local tasks = {}
  for t = 1, k do
    tasks[t] = weft.go(function()
      while next_i < n do
        next_i = next_i + 1
        local i = next_i
        local input = prefix .. i
        local base = bases[i % #bases + 1]
        local id = submit(base, "two", input)
        done[input] = until_ended(bases[(i + 1) % #bases + 1], id)
        count = count + 1
        if on_done then on_done(count) end
      end
    end)
  end
  for _, t in ipairs(tasks) do t:wait() end -- raises what a task raised
  return done
end

-- Check that every execution of `done` completed exactly once: its
-- output, one workflow_completed event, its durable run record; that no
-- model call was repeated, except the one in flight at the kill (sent
-- twice at most) of executions that were taken again (attempts > 1: the
-- killed worker had them), at most `most` of those. Returns the number of
-- repeated calls.
local function check_once(st, srv, done, most)
  local counts = srv:body_counts()
  local by_prompt = {}
  for body, c in pairs(counts) do
    local ok, b = pcall(json.decode, body)
    local prompt = ok and type(b) == "table" and b.messages and b.messages[1].content
    if prompt then by_prompt[prompt] = (by_prompt[prompt] or 0) + c end
  end
  local repeated, retaken = 0, 0
  for input, d in pairs(done) do
    assert.equal("completed", d.status, json.encode(d))
    assert.same({ two_output(input) }, d.outputs)
    local rec = assert(require("weft.durable").record(st, d.id))
    assert.equal("completed", rec.status, d.id)
    local n = 0
    for _, e in ipairs(assert(st:range("events", d.id))) do
      if json.decode(e.value).type == "workflow_completed" then n = n + 1 end
    end
    assert.equal(1, n, "workflow_completed events of " .. d.id)
    if (d.attempts or 1) > 1 then retaken = retaken + 1 end
    local mine = 0
    for _, prompt in ipairs({ "first " .. input, "second echo: first " .. input }) do
      local c = by_prompt[prompt] or 0
      by_prompt[prompt] = nil
      assert.is_true(c >= 1, "the model was never asked '" .. prompt .. "'")
      if c > 1 then
        -- the second call is sent once the first one is journaled: only
        -- one of them can have been in flight at the kill
        mine, repeated = mine + 1, repeated + 1
        assert.equal(1, mine, "both model calls of " .. d.id .. " were sent again")
        assert.equal(2, c, "calls of '" .. prompt .. "'")
        assert.is_true((d.attempts or 1) > 1, fmt("'%s' was sent %d times, but %s ran once", prompt, c, d.id))
      end
    end
  end
  assert.is_nil(next(by_prompt), "calls for no execution of this test")
  assert.is_true(repeated <= retaken and repeated <= most,
    fmt("%d calls repeated; %d executions retaken, at most %d", repeated, retaken, most))
  return repeated
end

-- The events of execution id as SSE from base after Last-Event-ID `from`
-- (nil: from the start): a list of {id, event, data}; stop(list) true
-- ends the stream early (the client leaves).
local function sse(base, id, from, stop)
  local got = {}
  local res, err = weft.http.request{ url = base .. "/executions/" .. id .. "/events", timeout = 60,
    headers = from and { ["last-event-id"] = from } or nil, framing = "sse",
    stream = function(ev)
      got[#got + 1] = { id = ev.id, event = ev.event, data = ev.data }
      if stop and stop(got) then return false end
    end }
  assert(res, err)
  assert.equal(200, res.status)
  return got
end


-- A private redis-server (stopped after the test), the scripts dir and two
-- `weft serve --workers 0` replicas on it with env (plus a 2 s lease):
-- r, dir, env, a, b; nothing when redis-server is not installed.
local function replicas(env)
  local r = procs.redis()
  if not r then return nil end
  later(r.stop)
  local dir = scripts()
  env.WEFT_LEASE_TTL = "2"
  return r, dir, env, serve(r.url, dir, 0, env), serve(r.url, dir, 0, env)
end

describe("the worker pool in processes", function()
  it("runs 300 executions exactly once on 3 workers behind 2 replicas while a worker is SIGKILLed #redis", function()
    local srv, llm = provider(25)
    local r, dir, env, a, b = replicas({ WEFT_TEST_LLM_URL = llm })
    if not r then return pending("redis-server is not installed") end
    local ws = {}
    for i = 1, 3 do ws[i] = worker(r.url, dir, env, { "--processes", "1", "--concurrency", "10" }) end
    local victim = worker_pids(ws[1], 1)[1]
    for i = 2, 3 do worker_pids(ws[i], 1) end

    -- an SSE client on replica A leaves after the first event and comes
    -- back on replica B with Last-Event-ID
    local sid = submit(a.base, "two", "sse")
    local part1 = sse(a.base, sid, nil, function(got) return #got >= 1 end)
    assert.equal(1, #part1)
    local part2 = sse(b.base, sid, part1[#part1].id)

    local killed = false
    local done = drive({ a.base, b.base }, 300, 30, "x", function(count)
      if count == 100 and not killed then
        killed = true
        os.execute("kill -9 " .. victim)
      end
    end)
    assert.is_true(killed)
    done.sse = until_ended(a.base, sid)

    local all = sse(a.base, sid)
    local joined = {}
    for _, e in ipairs(part1) do joined[#joined + 1] = e end
    for _, e in ipairs(part2) do joined[#joined + 1] = e end
    assert.same(all, joined)
    assert.equal("end", all[#all].event)
    assert.equal("workflow_started", all[1].event)
    for i = 1, #all - 1 do assert.equal(tostring(i), all[i].id) end

    -- the killed worker was replaced; it held at most 10 executions
    worker_pids(ws[1], 1, { [victim] = true })
    local st = assert(weft.store.open(r.url))
    later(function() st:close() end)
    check_once(st, srv, done, 10)
    local info = assert(st:queue_info("weft"))
    assert.equal(0, info.waiting + info.taken)
  end)

  it("keeps both replicas answering while an executor never yields, replaces the worker and fails that execution #redis", function()
    local r, dir, env, a, b = replicas({})
    if not r then return pending("redis-server is not installed") end
    local w = worker(r.url, dir, env, { "--processes", "2" })
    local before = {}
    for _, pid in ipairs(worker_pids(w, 2)) do before[pid] = true end
    local spin = submit(a.base, "busy", "spin")
    -- while it blocks a worker (killed after 1 s, twice): both replicas
    -- answer, and the other executions complete
    local others, health = {}, 0
    local d
    repeat
      for _, base in ipairs({ a.base, b.base }) do
        local st, h, raw = call("GET", base .. "/health", nil, 5)
        assert.equal(200, st, raw)
        assert.equal("ok", h.status)
        health = health + 1
      end
      if #others < 20 then others[#others + 1] = submit(b.base, "busy", "ok" .. #others) end
      local _, x = call("GET", b.base .. "/executions/" .. spin)
      d = x
      weft.sleep(0.05)
    until ENDED[d.status]
    assert.equal("failed", d.status)
    assert.truthy(d.error:find("executor 'spin' of run " .. spin .. " did not yield", 1, true), d.error)
    assert.truthy(d.error:find("tried 2 times", 1, true), d.error)
    -- the supervisor said so, and started new processes
    local log = procs.slurp(w.err) or ""
    assert.truthy(log:find("was killed by its watchdog", 1, true), log)
    local now = worker_pids(w, 2)
    local replaced = 0
    for _, pid in ipairs(now) do if not before[pid] then replaced = replaced + 1 end end
    assert.is_true(replaced >= 1, "no worker process was replaced")
    for i, id in ipairs(others) do
      local x = until_ended(a.base, id)
      assert.equal("completed", x.status, json.encode(x))
      assert.same({ "ok" .. (i - 1) }, x.outputs)
    end
    assert.is_true(health > 2)
  end)

  it("runs 100 executions exactly once with weft serve --workers 2 on SQLite while one worker is SIGKILLed", function()
    local srv, llm = provider(50)
    local dir = scripts()
    local url = "sqlite:" .. tmpdir() .. "/weft.db"
    local s = serve(url, dir, 2, { WEFT_TEST_LLM_URL = llm, WEFT_LEASE_TTL = "2" })
    local pids = worker_pids(s, 2)
    local killed
    local done = drive({ s.base }, 100, 20, "s", function(count)
      if count == 30 and not killed then
        killed = pids[1]
        os.execute("kill -9 " .. killed)
      end
    end)
    assert.truthy(killed)
    -- the supervisor started another
    worker_pids(s, 2, { [killed] = true })
    local log = procs.slurp(s.err) or ""
    assert.truthy(log:find("(pid " .. killed .. ") exited (signal 9)", 1, true), log)
    local st = assert(weft.store.open(url))
    later(function() st:close() end)
    -- the killed worker held at most what 20 clients had in flight
    check_once(st, srv, done, 20)
  end)

  it("continues a paused execution answered through the other replica, and refuses a second answer #redis", function()
    local r, dir, env, a, b = replicas({})
    if not r then return pending("redis-server is not installed") end
    worker(r.url, dir, env, { "--processes", "2" })
    local id = submit(a.base, "ask", "deploy")
    local d
    local deadline = weft.clock() + 60
    repeat
      local st, x, raw = call("GET", a.base .. "/executions/" .. id)
      assert.equal(200, st, raw)
      d = x
      assert(weft.clock() < deadline, "execution " .. id .. " did not pause: " .. raw)
      weft.sleep(0.02)
    until d.status == "idle"
    local rid = d.requests[1].request_id
    assert.equal("deploy", d.requests[1].request.question)
    local st, ans, raw = call("POST", b.base .. "/executions/" .. id .. "/responses", { request_id = rid, value = "yes" })
    assert.equal(202, st, raw)
    assert.equal("running", ans.status)
    -- the same answer again: refused whatever the execution's state now
    -- (404 unknown_request while the answer waits for a worker, 409 once
    -- a worker runs or ended it)
    st, ans, raw = call("POST", b.base .. "/executions/" .. id .. "/responses", { request_id = rid, value = "no" })
    assert.truthy(st == 404 or st == 409, raw)
    assert.truthy(st == 404 and ans.error.code == "unknown_request" or st == 409 and ans.error.code == "conflict", raw)
    d = until_ended(b.base, id)
    assert.equal("completed", d.status, json.encode(d))
    assert.same({ "deploy: yes" }, d.outputs)
    st, ans, raw = call("POST", a.base .. "/executions/" .. id .. "/responses", { request_id = rid, value = "no" })
    assert.equal(409, st, raw)
  end)

  it("completes the queued and running executions after Redis restarts with its append-only file #redis", function()
    local r = procs.redis{ persist = true, dir = tmpdir() }
    if not r then return pending("redis-server is not installed") end
    later(r.stop)
    local srv, llm = provider(100)
    local dir = scripts()
    local env = { WEFT_TEST_LLM_URL = llm, WEFT_LEASE_TTL = "2" }
    local a = serve(r.url, dir, 0, env)
    worker(r.url, dir, env, { "--processes", "1", "--concurrency", "5" })
    local ids = {}
    for i = 1, 30 do ids["r" .. i] = submit(a.base, "two", "r" .. i) end
    -- once some are done (and others run or wait in the queue): restart
    local deadline = weft.clock() + 60
    while true do
      local n = 0
      for _, c in pairs(srv:body_counts()) do n = n + c end
      if n >= 10 then break end
      assert(weft.clock() < deadline, "no execution ran")
      weft.sleep(0.01)
    end
    r.stop()
    local st = call("GET", a.base .. "/executions/" .. ids.r1, nil, 10)
    assert.is_true(st == nil or st == 503, "the store was down, yet the replica answered " .. tostring(st))
    r.start()
    local done = {}
    for input, id in pairs(ids) do done[input] = until_ended(a.base, id) end
    local store = assert(weft.store.open(r.url))
    later(function() store:close() end)
    check_once(store, srv, done, 5)
  end)
end)
