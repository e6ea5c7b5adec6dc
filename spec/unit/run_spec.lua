-- spec/unit/run_spec.lua — running workflows (docs/api.md "Running",
-- "Events", "Context"; ARCHITECTURE.md "Execution model", "Errors and
-- retries"): results, the event sequence and its determinism, subscribers
-- and streams, max_supersteps, retries, on_error, timeouts, tracebacks,
-- max_concurrency, concurrent invocations, many runs, cancellation, nested
-- runs, stale contexts and weft.sleep outside executors.
local weft = require "weft"
local h = require "helpers"

-- a -> b: a appends "!" and sends, b yields it as an output.
local function two_step()
  local a = weft.executor("a", function(msg, ctx) ctx:send(msg .. "!") end)
  local b = h.output("b")
  return weft.workflow("two"):start(a):edge(a, b):build()
end

-- a -> fan_out {b, c, d} -> fan_in -> e. Each branch sleeps sleeps[id]
-- seconds (read at call time, so runs can be given different timings), then
-- emits, logs, writes state, yields an output and sends its id.
local function branching(sleeps)
  local a = h.forward("a")
  local function branch(id)
    return weft.executor(id, function(_, ctx)
      weft.sleep(sleeps[id])
      ctx:emit("branch", { id = id })
      ctx:log("info", "branch " .. id)
      ctx:set_state("last", id)
      ctx:yield_output(id)
      ctx:send(id)
    end)
  end
  local b, c, d = branch("b"), branch("c"), branch("d")
  local e = weft.executor("e", function(list, ctx) ctx:yield_output(table.concat(list, "+")) end)
  return weft.workflow("branching"):start(a):fan_out(a, { b, c, d }):fan_in({ b, c, d }, e):build()
end

-- A start executor that sends to itself forever, counting its calls.
local function endless()
  local calls = { n = 0 }
  local a = weft.executor("a", function(msg, ctx)
    calls.n = calls.n + 1
    ctx:send(msg)
  end)
  return weft.workflow("endless"):start(a):edge(a, a):build(), calls
end

describe("wf:run", function()

  describe("result", function()
    it("reports status, outputs, supersteps, duration and run id", function()
      local res = two_step():run("hi")
      assert.equal("completed", res.status)
      assert.same({ "hi!" }, res.outputs)
      assert.equal(2, res.supersteps)
      assert.is_number(res.duration_ms)
      assert.is_true(res.duration_ms >= 0)
      assert.is_string(res.run_id)
      assert.is_true(#res.run_id > 0)
      assert.is_nil(res.error)
    end)

    it("lists outputs in invocation order, not completion order", function()
      local res = branching({ b = 0.03, c = 0.02, d = 0.01 }):run("go")
      assert.same({ "b", "c", "d", "b+c+d" }, res.outputs)
    end)

    it("gives each run its own run id", function()
      local wf = two_step()
      assert.are_not.equal(wf:run("x").run_id, wf:run("x").run_id)
    end)

    it("uses the run_id option for the result, the context and the events", function()
      local seen
      local a = weft.executor("a", function(_, ctx) seen = ctx.run_id end)
      local res = weft.workflow("named"):start(a):build():run("x", { run_id = "my-run" })
      assert.equal("my-run", res.run_id)
      assert.equal("my-run", seen)
      for _, ev in ipairs(res.events) do assert.equal("my-run", ev.run_id) end
    end)

    it("delivers the input to the start executor", function()
      local a, seen, steps = h.recorder("a")
      weft.workflow("input"):start(a):build():run({ k = { 1, 2 } })
      assert.same({ { k = { 1, 2 } } }, seen)
      assert.same({ 0 }, steps)
    end)
  end)

  describe("events", function()
    it("follow the documented sequence for a two-executor workflow", function()
      local res = two_step():run("hi")
      assert.same({
        "workflow_started",
        "superstep_started @0",
        "executor_invoked a @0",
        "executor_completed a @0",
        "superstep_completed @0",
        "superstep_started @1",
        "executor_invoked b @1",
        "output b @1",
        "executor_completed b @1",
        "superstep_completed @1",
        "workflow_completed",
      }, h.trace(res.events))
    end)

    it("carry the documented data", function()
      local res = two_step():run("hi")
      local ev = res.events
      assert.same({ workflow = "two" }, ev[1].data)
      assert.equal(1, h.find(ev, "executor_invoked", "a").data.attempt)
      assert.equal(1, h.find(ev, "executor_completed", "a").data.attempt)
      assert.equal("hi!", h.find(ev, "output").data)
      for _, e in ipairs(ev) do
        assert.equal(res.run_id, e.run_id)
        assert.is_number(e.ts)
      end
    end)

    it("carry custom events with their name and log events with level and message", function()
      local a = weft.executor("a", function(_, ctx)
        ctx:emit("progress", { pct = 50 })
        ctx:log("warn", "careful")
        ctx:yield_output("done")
      end)
      local res = weft.workflow("custom"):start(a):build():run("x")
      assert.same({
        "workflow_started",
        "superstep_started @0",
        "executor_invoked a @0",
        "custom a progress @0",
        "log a @0",
        "output a @0",
        "executor_completed a @0",
        "superstep_completed @0",
        "workflow_completed",
      }, h.trace(res.events))
      local custom = h.find(res.events, "custom")
      assert.equal("progress", custom.name)
      assert.same({ pct = 50 }, custom.data)
      assert.same({ level = "warn", message = "careful" }, h.find(res.events, "log").data)
    end)

    it("are the same for two runs whose concurrent invocations finish in different orders", function()
      local sleeps = { b = 0.03, c = 0.02, d = 0.01 }
      local wf = branching(sleeps)
      local first = h.trace(wf:run("go").events)
      sleeps.b, sleeps.d = 0.01, 0.03
      local second = h.trace(wf:run("go").events)
      assert.same(first, second)
      -- and the branches' events appear in invocation order
      local invoked = {}
      for _, line in ipairs(first) do
        local id = line:match("^executor_completed (%a) @1$")
        if id then invoked[#invoked + 1] = id end
      end
      assert.same({ "b", "c", "d" }, invoked)
    end)

    it("publish every invocation start before the completions of its superstep", function()
      local res = branching({ b = 0.03, c = 0.02, d = 0.01 }):run("go")
      local last_invoked = 0
      local first_completed = math.huge
      for i, ev in ipairs(res.events) do
        if ev.superstep == 1 and ev.type == "executor_invoked" then last_invoked = i end
        if ev.superstep == 1 and ev.type == "executor_completed" and i < first_completed then
          first_completed = i
        end
      end
      assert.is_true(last_invoked < first_completed)
    end)

    it("reach on_event one by one, in the order of the log", function()
      local got = {}
      local res = branching({ b = 0.01, c = 0.01, d = 0.01 }):run("go", {
        on_event = function(ev) got[#got + 1] = ev end,
      })
      assert.same(h.trace(res.events), h.trace(got))
      assert.equal("workflow_completed", got[#got].type)
    end)

    it("still reach on_event when the log is not kept", function()
      local got = {}
      local res = two_step():run("hi", {
        events = false,
        on_event = function(ev) got[#got + 1] = ev end,
      })
      assert.equal("completed", res.status)
      assert.equal(0, #(res.events or {}))
      assert.equal(11, #got)
    end)

    it("can be iterated with wf:stream", function()
      local got = {}
      for ev in two_step():stream("hi") do got[#got + 1] = ev end
      assert.same(h.trace(two_step():run("hi").events), h.trace(got))
      assert.equal("hi!", h.find(got, "output").data)
    end)
  end)

  describe("max_supersteps", function()
    it("fails a run that exceeds the default of 100, naming the limit", function()
      local wf, calls = endless()
      local res = wf:run("x")
      assert.equal("failed", res.status)
      assert.mentions("100", res.error)
      assert.matches("superstep", res.error:lower(), 1, true)
      assert.equal(100, calls.n)
      assert.equal(100, res.supersteps)
      assert.equal("workflow_failed", res.events[#res.events].type)
    end)

    it("honours a custom limit", function()
      local wf, calls = endless()
      local res = wf:run("x", { max_supersteps = 5 })
      assert.equal("failed", res.status)
      assert.matches("%f[%d]5%f[%D]", res.error)
      assert.equal(5, calls.n)
      assert.equal(5, res.supersteps)
    end)

    it("lets a run that needs exactly the limit complete", function()
      local a, b = h.forward("a"), h.forward("b")
      local c = h.output("c")
      local res = weft.workflow("three"):start(a):edge(a, b):edge(b, c):build()
        :run("x", { max_supersteps = 3 })
      assert.equal("completed", res.status)
      assert.same({ "x" }, res.outputs)
    end)
  end)

  describe("retries", function()
    local function flaky(fail_times, opts)
      local log = { attempts = {}, previous = {}, supersteps = {} }
      local spec = {
        handle = function(msg, ctx)
          log.attempts[#log.attempts + 1] = ctx.attempt
          log.previous[#log.previous + 1] = ctx.previous_errors
          log.supersteps[#log.supersteps + 1] = ctx.superstep
          if ctx.attempt <= fail_times then error("boom " .. ctx.attempt) end
          ctx:yield_output("ok on " .. ctx.attempt)
        end,
        retry = { max_attempts = 3, backoff = 0 },
      }
      for k, v in pairs(opts or {}) do spec[k] = v end
      local start = h.forward("start")
      local ex = weft.executor("flaky", spec)
      return weft.workflow("retry"):start(start):edge(start, ex):build(), log
    end

    it("retries a failing invocation with ctx.attempt counting up", function()
      local wf, log = flaky(2)
      local res = wf:run("x")
      assert.equal("completed", res.status)
      assert.same({ 1, 2, 3 }, log.attempts)
      assert.same({ 1, 1, 1 }, log.supersteps)
      assert.same({ "ok on 3" }, res.outputs)
    end)

    it("passes the message and traceback of every earlier attempt in ctx.previous_errors", function()
      local wf, log = flaky(2)
      wf:run("x")
      assert.same({}, log.previous[1])
      assert.equal(1, #log.previous[2])
      local prev = log.previous[3]
      assert.equal(2, #prev)
      assert.mentions("boom 1", prev[1].message)
      assert.mentions("boom 2", prev[2].message)
      assert.is_string(prev[1].traceback)
      assert.mentions("run_spec.lua", prev[1].traceback)
    end)

    it("publishes executor_failed with retrying = true for each retried attempt", function()
      local wf = flaky(2)
      local res = wf:run("x")
      local failed = h.filter(res.events, "executor_failed", "flaky")
      assert.equal(2, #failed)
      assert.equal(1, failed[1].data.attempt)
      assert.is_true(failed[1].data.retrying)
      assert.mentions("boom 1", failed[1].data.error)
      assert.equal(2, failed[2].data.attempt)
      assert.is_true(failed[2].data.retrying)
      assert.equal(3, h.find(res.events, "executor_completed", "flaky").data.attempt)
    end)

    it("fails the run naming executor and superstep when attempts run out", function()
      local wf, log = flaky(99, { retry = { max_attempts = 2, backoff = 0 } })
      local res = wf:run("x")
      assert.equal("failed", res.status)
      assert.same({ 1, 2 }, log.attempts)
      assert.mentions("flaky", res.error)
      assert.mentions("superstep 1", res.error)
      assert.mentions("boom 2", res.error)
      local failed = h.filter(res.events, "executor_failed", "flaky")
      assert.equal(2, #failed)
      assert.is_false(failed[2].data.retrying)
      assert.equal(1, failed[2].superstep)
      assert.equal("workflow_failed", res.events[#res.events].type)
      assert.is_nil(h.find(res.events, "executor_completed", "flaky"))
    end)

    it("does not retry without a retry policy", function()
      local calls = 0
      local a = weft.executor("once", function()
        calls = calls + 1
        error("no luck")
      end)
      local res = weft.workflow("noretry"):start(a):build():run("x")
      assert.equal("failed", res.status)
      assert.equal(1, calls)
    end)
  end)

  describe("on_error = \"continue\"", function()
    it("lets the run go on without the failed invocation's messages", function()
      local a = h.forward("a")
      local bad = weft.executor("bad", {
        on_error = "continue",
        handle = function() error("bad branch") end,
      })
      local after_bad, got_after = h.recorder("after_bad")
      local good = h.output("good")
      local res = weft.workflow("continue"):start(a)
        :fan_out(a, { bad, good })
        :edge(bad, after_bad)
        :build():run("x")
      assert.equal("completed", res.status)
      assert.same({ "x" }, res.outputs)
      assert.same({}, got_after)
      local failed = h.find(res.events, "executor_failed", "bad")
      assert.is_true(failed.data.continued)
      assert.mentions("bad branch", failed.data.error)
    end)
  end)

  describe("timeouts", function()
    it("fail an executor that sleeps longer than its timeout", function()
      local reached = false
      local slow = weft.executor("slow", {
        timeout = 0.05,
        handle = function()
          weft.sleep(5)
          reached = true
        end,
      })
      local res = weft.workflow("timeout"):start(slow):build():run("x")
      assert.equal("failed", res.status)
      assert.is_false(reached)
      local failed = h.find(res.events, "executor_failed", "slow")
      assert.is_true(failed.data.timed_out)
      assert.matches("timed? ?out", failed.data.error:lower())
      assert.mentions("slow", res.error)
    end)

    it("are retried like any other failure", function()
      local attempts, prev = {}, nil
      local slow = weft.executor("slow", {
        timeout = 0.05,
        retry = { max_attempts = 2, backoff = 0 },
        handle = function(_, ctx)
          attempts[#attempts + 1] = ctx.attempt
          if ctx.attempt == 1 then weft.sleep(5) end
          prev = ctx.previous_errors
          ctx:yield_output("attempt " .. ctx.attempt)
        end,
      })
      local res = weft.workflow("timeout"):start(slow):build():run("x")
      assert.equal("completed", res.status)
      assert.same({ 1, 2 }, attempts)
      assert.same({ "attempt 2" }, res.outputs)
      assert.matches("timed? ?out", prev[1].message:lower())
      local failed = h.find(res.events, "executor_failed", "slow")
      assert.is_true(failed.data.timed_out)
      assert.is_true(failed.data.retrying)
    end)

    it("do not affect an executor that finishes in time", function()
      local quick = weft.executor("quick", {
        timeout = 5,
        handle = function(_, ctx)
          weft.sleep(0.001)
          ctx:yield_output("in time")
        end,
      })
      local res = weft.workflow("timeout"):start(quick):build():run("x")
      assert.equal("completed", res.status)
      assert.same({ "in time" }, res.outputs)
    end)
  end)

  describe("handler errors", function()
    it("carry the message and a traceback through the handler", function()
      local function deep_helper() error("deep failure") end
      local a = weft.executor("thrower", function() deep_helper() end)
      local res = weft.workflow("errors"):start(a):build():run("x")
      assert.equal("failed", res.status)
      assert.mentions("thrower", res.error)
      assert.mentions("deep failure", res.error)
      local failed = h.find(res.events, "executor_failed", "thrower")
      assert.mentions("deep failure", failed.data.error)
      assert.is_string(failed.data.traceback)
      assert.mentions("run_spec.lua", failed.data.traceback)
      assert.is_false(failed.data.retrying)
      assert.same({ error = res.error }, h.find(res.events, "workflow_failed").data)
    end)

    it("fail the invocation when the handler calls coroutine.yield directly", function()
      local a = weft.executor("yielder", function() coroutine.yield() end)
      local res = weft.workflow("yield"):start(a):build():run("x")
      assert.equal("failed", res.status)
      assert.is_not_nil(h.find(res.events, "executor_failed", "yielder"))
    end)

    it("stop the run at the failing superstep", function()
      local a = weft.executor("a", function() error("stop here") end)
      local b, seen = h.recorder("b")
      local res = weft.workflow("stop"):start(a):edge(a, b):build():run("x")
      assert.equal("failed", res.status)
      assert.same({}, seen)
      assert.equal(1, res.supersteps)
    end)
  end)

  describe("max_concurrency", function()
    local function wide(g, n)
      local a = h.forward("a")
      local targets = {}
      for i = 1, n do
        targets[i] = weft.executor("w" .. i, function(_, ctx)
          g.enter()
          weft.sleep(0.01)
          g.leave()
          ctx:yield_output(i)
        end)
      end
      return weft.workflow("wide"):start(a):fan_out(a, targets):build()
    end

    it("never runs more than N invocations at once and still runs them all", function()
      local g = h.gauge()
      local res = wide(g, 6):run("x", { max_concurrency = 2 })
      assert.equal("completed", res.status)
      assert.equal(2, g.peak)
      assert.same({ 1, 2, 3, 4, 5, 6 }, res.outputs)
    end)

    it("runs every invocation of a superstep at once when unlimited", function()
      local g = h.gauge()
      local res = wide(g, 6):run("x")
      assert.equal("completed", res.status)
      assert.equal(6, g.peak)
    end)
  end)

  describe("concurrent invocations", function()
    it("interleave at weft.sleep, the shorter sleep finishing first", function()
      local finished = {}
      local a = h.forward("a")
      local slow = weft.executor("slow", function(_, ctx)
        weft.sleep(0.05)
        finished[#finished + 1] = "slow"
        ctx:yield_output("slow")
      end)
      local fast = weft.executor("fast", function(_, ctx)
        weft.sleep(0.01)
        finished[#finished + 1] = "fast"
        ctx:yield_output("fast")
      end)
      local res = weft.workflow("interleave"):start(a):fan_out(a, { slow, fast }):build():run("x")
      assert.same({ "fast", "slow" }, finished)
      assert.same({ "slow", "fast" }, res.outputs)
      assert.same({
        "workflow_started",
        "superstep_started @0",
        "executor_invoked a @0",
        "executor_completed a @0",
        "superstep_completed @0",
        "superstep_started @1",
        "executor_invoked slow @1",
        "executor_invoked fast @1",
        "output slow @1",
        "executor_completed slow @1",
        "output fast @1",
        "executor_completed fast @1",
        "superstep_completed @1",
        "workflow_completed",
      }, h.trace(res.events))
    end)
  end)

  describe("wf:spawn and weft.wait_all", function()
    it("run many runs concurrently, each with its own state and outputs", function()
      local g = h.gauge()
      local a = weft.executor("a", function(n, ctx)
        g.enter()
        weft.sleep(0.01)
        g.leave()
        ctx:set_state("n", n)
        ctx:send(n * 2)
      end)
      local b = weft.executor("b", function(m, ctx)
        ctx:yield_output(m)
        ctx:yield_output(ctx:get_state("n"))
      end)
      local wf = weft.workflow("many"):start(a):edge(a, b):build()
      local handles = {}
      for i = 1, 200 do handles[i] = wf:spawn(i) end
      local results = weft.wait_all(handles)
      assert.equal(200, #results)
      local ids = {}
      for i, res in ipairs(results) do
        assert.equal("completed", res.status)
        assert.same({ i * 2, i }, res.outputs)
        assert.same({ n = i }, res.state)
        assert.equal(handles[i].id, res.run_id)
        assert.is_nil(ids[res.run_id])
        ids[res.run_id] = true
      end
      assert.equal(200, g.peak)
    end)

    it("gives a handle that reports status and result", function()
      local h1 = two_step():spawn("hi")
      assert.is_string(h1.id)
      assert.is_nil(h1:result())
      assert.are_not.equal("completed", h1:status())
      local res = h1:wait()
      assert.equal("completed", res.status)
      assert.same({ "hi!" }, res.outputs)
      assert.equal("completed", h1:status())
      assert.same({ "hi!" }, h1:result().outputs)
    end)
  end)

  describe("cancellation", function()
    local function sleeper()
      local log = { started = false, resumed = false }
      local a = weft.executor("sleeper", function(msg, ctx)
        log.started = true
        weft.sleep(5)
        log.resumed = true
        ctx:send(msg)
      end)
      local b, seen = h.recorder("b")
      log.b = seen
      return weft.workflow("cancel"):start(a):edge(a, b):build(), log
    end

    it("stops a run during a sleeping invocation with status cancelled", function()
      local wf, log = sleeper()
      local run = wf:spawn("x")
      h.poll_until(function() return log.started end)
      run:cancel()
      local res = run:wait()
      assert.equal("cancelled", res.status)
      assert.equal("cancelled", run:status())
      assert.equal("workflow_cancelled", res.events[#res.events].type)
      assert.same({}, log.b)
      assert.is_nil(h.find(res.events, "executor_invoked", "b"))
    end)

    it("abandons the sleeping invocation without resuming it", function()
      local wf, log = sleeper()
      local run = wf:spawn("x")
      h.poll_until(function() return log.started end)
      run:cancel()
      run:wait()
      assert.is_false(log.resumed)
    end)

    it("is a no-op on a finished run", function()
      local run = two_step():spawn("hi")
      local res = run:wait()
      run:cancel()
      assert.equal("completed", run:status())
      assert.equal("completed", res.status)
    end)
  end)

  describe("nested runs", function()
    it("run a workflow inside an executor and yield until it ends", function()
      local inner_a = weft.executor("inner_a", function(msg, ctx)
        weft.sleep(0.01)
        ctx:send(msg .. " inner")
      end)
      local inner = weft.workflow("inner"):start(inner_a):edge(inner_a, h.output("inner_b")):build()
      local status
      local outer_a = weft.executor("outer", function(msg, ctx)
        local res = inner:run(msg)
        status = res.status
        for _, o in ipairs(res.outputs) do ctx:yield_output(o .. " outer") end
      end)
      local res = weft.workflow("outer"):start(outer_a):build():run("x")
      assert.equal("completed", res.status)
      assert.equal("completed", status)
      assert.same({ "x inner outer" }, res.outputs)
    end)

    it("let sibling invocations wait on nested runs concurrently", function()
      local g = h.gauge()
      local inner_a = weft.executor("inner_a", function(msg, ctx)
        weft.sleep(0.02)
        ctx:yield_output(msg)
      end)
      local inner = weft.workflow("inner"):start(inner_a):build()
      local function outer(id)
        return weft.executor(id, function(_, ctx)
          g.enter()
          local res = inner:run(id)
          g.leave()
          ctx:yield_output(res.outputs[1])
        end)
      end
      local a = h.forward("a")
      local res = weft.workflow("outer"):start(a):fan_out(a, { outer("p"), outer("q") }):build():run("x")
      assert.equal("completed", res.status)
      assert.same({ "p", "q" }, res.outputs)
      assert.equal(2, g.peak)
    end)
  end)

  describe("ctx", function()
    it("exposes run_id, executor_id, superstep, attempt and previous_errors", function()
      local fields
      local a = h.forward("a")
      local b = weft.executor("b", function(_, ctx)
        fields = {
          run_id = ctx.run_id, executor_id = ctx.executor_id, superstep = ctx.superstep,
          attempt = ctx.attempt, previous_errors = ctx.previous_errors,
        }
      end)
      local res = weft.workflow("fields"):start(a):edge(a, b):build():run("x")
      assert.same({
        run_id = res.run_id, executor_id = "b", superstep = 1, attempt = 1, previous_errors = {},
      }, fields)
    end)

    it("raises 'no longer running' when used after the handler returned", function()
      local saved
      local a = weft.executor("keeper", function(_, ctx) saved = ctx end)
      local b = h.recorder("b")
      weft.workflow("stale"):start(a):edge(a, b):build():run("x")
      local expected = "invocation of 'keeper' is no longer running"
      assert.mentions(expected, h.error_of(saved.send, saved, "late"))
      assert.mentions(expected, h.error_of(saved.yield_output, saved, "late"))
      assert.mentions(expected, h.error_of(saved.set_state, saved, "k", "late"))
      assert.mentions(expected, h.error_of(saved.emit, saved, "late", {}))
      assert.mentions(expected, h.error_of(saved.log, saved, "info", "late"))
      assert.mentions(expected, h.error_of(saved.get_state, saved, "k"))
    end)

    it("raises 'no longer running' from request_info on a stale ctx", function()
      local saved
      local a = weft.executor("asker", function(_, ctx) saved = ctx end)
      weft.workflow("hitl"):start(a):build():run("x")
      assert.mentions("invocation of 'asker' is no longer running",
        h.error_of(saved.request_info, saved, { question = "ok?" }))
    end)
  end)

  describe("weft.sleep", function()
    it("works outside a coroutine", function()
      assert.has_no.errors(function() weft.sleep(0.001) end)
    end)
  end)

  describe("weft.step and weft.poll", function()
    -- A spawned run whose start executor flags its start, then sleeps.
    local function sleeping_run()
      local log = { started = false, resumed = false }
      local a = weft.executor("sleeper", function()
        log.started = true
        weft.sleep(2)
        log.resumed = true
      end)
      return weft.workflow("stepper"):start(a):build():spawn("x"), log
    end

    for _, case in ipairs{
      { "poll", "weft.poll starts ready work without waiting for the sleep to end" },
      { "step", "weft.step returns once ready work ran, without waiting for the sleep to end" },
    } do
      it(case[2], function()
        local run, log = sleeping_run()
        weft[case[1]]()
        assert.is_true(log.started)
        assert.is_false(log.resumed)
        run:cancel()
        run:wait()
      end)
    end
  end)
end)
