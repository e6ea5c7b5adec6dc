-- The delivery of a run's events to its on_event subscriber (weft.events,
-- lua_event.c): batches handed over by the scheduler, tables built in Lua
-- for the common events and in C for the others, the same tables as the
-- kept log's, and the points where a subscriber is up to date.
local weft = require "weft"
local invocation = require "weft.invocation"
local files = require "support.files"
local procs = require "support.procs"

-- A workflow publishing every kind of event an in-memory run can: custom
-- and log events, outputs, a failed attempt retried, a state conflict, an
-- undelivered message, a live agent update, a fan-out.
local function every_kind()
  local tries = 0
  local a = weft.executor("a", function(msg, ctx)
    ctx:emit("progress", { pct = 50, list = { 1, 2 } })
    ctx:log("warn", "careful")
    invocation.current():emit_live("agent_update", "chunk", { text = "hé" })
    ctx:send(msg)
  end)
  local b = weft.executor("b", function(msg, ctx)
    tries = tries + 1
    if tries == 1 then error("first try fails") end
    ctx:set_state("k", 1)
    ctx:yield_output(msg .. "!")
  end, { retry = { max_attempts = 2, backoff = 0 } })
  local c = weft.executor("c", function(_, ctx)
    ctx:set_state("k", 2)
    ctx:send("to nobody")
  end)
  local d = weft.executor("d", function() end)
  return weft.workflow("kinds"):start(a):fan_out(a, { b, c })
    :edge(c, d, { when = function() return false end, name = "never" }):build()
end

describe("events handed to a subscriber", function()
  it("are the tables of the kept log, for every kind, in its order", function()
    local got = {}
    local res = every_kind():run("x", { on_event = function(ev) got[#got + 1] = ev end })
    local kinds = {}
    for _, ev in ipairs(got) do kinds[ev.type] = true end
    for _, t in ipairs { "workflow_started", "superstep_started", "executor_invoked", "custom", "log",
                         "agent_update", "executor_failed", "executor_completed", "output",
                         "state_conflict", "message_undelivered", "superstep_completed",
                         "workflow_completed" } do
      assert.is_true(kinds[t] == true, "no " .. t .. " event")
    end
    assert.same(res.events, got)
  end)

  it("are the same tables when the log is not kept", function()
    local got, again = {}, {}
    every_kind():run("x", { events = false, on_event = function(ev) got[#got + 1] = ev end })
    every_kind():run("x", { on_event = function(ev) again[#again + 1] = ev end })
    assert.equal(#again, #got)
    for i = 1, #got do
      got[i].ts, again[i].ts, got[i].run_id, again[i].run_id = nil, nil, nil, nil
    end
    assert.same(again, got)
  end)

  it("reach the subscriber before the code of the executor they announce runs", function()
    local seen
    local function check(_, ctx)
      assert.equal("executor_invoked", seen.type)
      assert.equal(ctx.executor_id, seen.executor_id)
      ctx:send("m")
    end
    local a, b, c = weft.executor("a", check), weft.executor("b", check), weft.executor("c", check)
    local res = weft.workflow("seen"):start(a):edge(a, b):edge(b, c):build()
      :run("x", { on_event = function(ev) seen = ev end })
    assert.equal("completed", res.status, res.error)
  end)

  it("reach the subscriber at once when live, from inside the executor's code", function()
    local n = 0
    local a = weft.executor("a", function(_, ctx)
      for i = 1, 3 do
        invocation.current():publish_chunk({ i = i })
        assert.equal(i, n)
      end
      ctx:yield_output("done")
    end)
    local res = weft.workflow("live"):start(a):build():run("x", {
      on_event = function(ev) if ev.type == "agent_update" then n = n + 1 end end,
    })
    assert.equal("completed", res.status, res.error)
    assert.equal(3, n)
  end)

  it("stop at a cancel from the subscriber: no executor starts after it", function()
    local ran = {}
    local execs = {}
    for i = 1, 5 do
      execs[i] = weft.executor("e" .. i, function(m, ctx) ran[#ran + 1] = i; ctx:send(m) end)
    end
    local b = weft.workflow("cancel"):start(execs[1])
    for i = 1, 4 do b = b:edge(execs[i], execs[i + 1]) end
    local handle
    handle = b:build():spawn("x", {
      on_event = function(ev)
        if ev.type == "executor_completed" and ev.executor_id == "e2" then handle:cancel() end
      end,
    })
    local res = handle:wait()
    assert.equal("cancelled", res.status)
    assert.same({ 1, 2 }, ran)
    assert.equal("workflow_cancelled", res.events[#res.events].type)
  end)

  it("say a subscriber or a condition cannot block when one waits", function()
    local a = weft.executor("a", function(m, ctx) ctx:send(m) end)
    local b = weft.executor("b", function(m, ctx) ctx:yield_output(m) end)
    local wf = weft.workflow("w"):start(a)
      :edge(a, b, { when = function() weft.sleep(0.01); return true end, name = "sleepy" }):build()
    local res = wf:run("x")
    assert.equal("failed", res.status)
    assert.matches("weft.sleep: cannot block inside a weft callback (on_event, a condition", res.error,
                   1, true)
    local err
    res = weft.workflow("w2"):start(weft.executor("c", function(m, ctx) ctx:yield_output(m) end)):build()
      :run("x", { on_event = function()
        if not err then err = select(2, pcall(weft.sleep, 0.01)) end
      end })
    assert.equal("completed", res.status)
    assert.matches("weft.sleep: cannot block inside a weft callback", tostring(err), 1, true)
  end)

  it("nest: a subscriber cancelling a run whose subscriber cancels another, seven deep", function()
    local cond = weft.cond()
    local function waiting(name)
      local x = weft.executor("x", function(m, ctx) ctx:send(m) end)
      local y = weft.executor("y", function(_, ctx)
        cond:wait()
        ctx:yield_output("y")
      end)
      return weft.workflow(name):start(x):edge(x, y):build()
    end
    local handles, got = {}, {}
    for i = 7, 1, -1 do
      got[i] = {}
      handles[i] = waiting("w" .. i):spawn(i, {
        on_event = function(ev)
          got[i][#got[i] + 1] = ev
          if ev.type == "workflow_cancelled" and handles[i + 1] then handles[i + 1]:cancel() end
        end,
      })
    end
    weft.sleep(0) -- every run waits in y
    handles[1]:cancel()
    for i = 1, 7 do
      local res = handles[i]:wait()
      assert.equal("cancelled", res.status)
      assert.same(res.events, got[i])
      assert.equal("workflow_cancelled", got[i][#got[i]].type)
      assert.equal(res.run_id or got[i][1].run_id, got[i][#got[i]].run_id)
      assert.equal("y", got[i][#got[i] - 1].executor_id)
    end
  end)

  it("report a subscriber's own error when it fails inside another subscriber's call", function()
    -- in a child process: the report goes to stderr
    local script = os.tmpname()
    files.write(script, [[
local weft = require "weft"
local function chain(name)
  local x = weft.executor("x", function(m, ctx) ctx:send(m) end)
  local y = weft.executor("y", function(_, ctx)
    weft.sleep(0) -- waits: the run is still going when the other cancels it
    ctx:yield_output("y")
  end)
  return weft.workflow(name):start(x):edge(x, y):build()
end
local failures = 0
local victim = chain("victim"):spawn("v", {
  on_event = function(ev)
    if ev.type == "workflow_cancelled" then
      failures = failures + 1
      error("victim's subscriber fails")
    end
  end,
})
local res = chain("killer"):run("k", {
  on_event = function(ev)
    -- cancelling the other run delivers its events from inside this call
    if ev.type == "executor_invoked" and ev.executor_id == "y" then victim:cancel() end
  end,
})
io.write(res.status, " ", victim:wait().status, " ", failures, "\n")
]])
    local rc, out, err = procs.run({ procs.weft_bin(), "exec", script }, nil, 60)
    os.remove(script)
    assert.equal(0, rc, err)
    assert.equal("completed cancelled 1\n", out)
    assert.matches("on_event subscriber failed %(removed%): [^\n]*victim's subscriber fails", err)
  end)
end)
