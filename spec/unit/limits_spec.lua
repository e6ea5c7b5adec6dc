-- spec/unit/limits_spec.lua — limits on what invocations buffer until the
-- barrier (docs/api.md "Limits"): messages, outputs, events and state
-- writes, per invocation and per superstep. Past a limit the invocation
-- fails without retry or on_error = "continue", the run fails naming the
-- executor and the limit, and the process goes on running other runs.
local weft = require "weft"
local h = require "helpers"
local run = require "weft.run"

-- A workflow spam -> sink where spam calls effect(ctx, i) n times (n read
-- from the message) and sink records what reaches it. spec: executor options.
local function spammer(effect, spec)
  local s = { handle = function(n, ctx) for i = 1, n do effect(ctx, i) end end }
  for k, v in pairs(spec or {}) do s[k] = v end
  local spam = weft.executor("spam", s)
  local sink, got = h.recorder("sink")
  return weft.workflow("spam"):start(spam):edge(spam, sink):build(), got
end

local EFFECTS = {
  messages = function(ctx, i) ctx:send(i) end,
  outputs = function(ctx, i) ctx:yield_output(i) end,
  events = function(ctx, i)
    if i % 2 == 0 then ctx:log("info", "spam " .. i) else ctx:emit("spam", i) end
  end,
  state_writes = function(ctx, i) ctx:set_state("k" .. i, i) end,
}

describe("limits", function()

  describe("per invocation", function()
    for kind, effect in pairs(EFFECTS) do
      it(("fail the run when an executor buffers too many %s, naming the executor and the limit"):format(kind), function()
        local wf, got = spammer(effect)
        local name = kind .. "_per_invocation"
        local res = wf:run(10, { limits = { [name] = 3 } })
        assert.equal("failed", res.status)
        assert.equal(("executor 'spam' failed in superstep 0: limits.%s (3) exceeded"):format(name), res.error)
        local failed = h.filter(res.events, "executor_failed", "spam")
        assert.equal(1, #failed)
        assert.equal(("limits.%s (3) exceeded"):format(name), failed[1].data.error)
        -- the traceback of the refused call points at the user's code
        assert.mentions("limits_spec.lua", failed[1].data.traceback)
        assert.same({}, got)
        assert.same({}, res.outputs)
        assert.same({}, res.state)
      end)
    end

    it("let an invocation buffer exactly the limit", function()
      local wf, got = spammer(EFFECTS.messages)
      local res = wf:run(3, { limits = { messages_per_invocation = 3 } })
      assert.equal("completed", res.status)
      assert.same({ 1, 2, 3 }, got)
    end)

    it("raise at the call site, naming the function and the limit", function()
      local err
      local wf = spammer(function(ctx, i)
        local ok, e = pcall(ctx.send, ctx, i)
        if not ok then err = e; error(e, 0) end
      end)
      wf:run(5, { limits = { messages_per_invocation = 2 } })
      assert.equal("ctx:send: limits.messages_per_invocation (2) exceeded", err)
    end)

    it("are not retried, and fail the run even with on_error = 'continue'", function()
      local attempts = 0
      local wf = spammer(function(ctx, i)
        if i == 1 then attempts = attempts + 1 end
        ctx:send(i)
      end, { retry = { max_attempts = 3, backoff = 0 }, on_error = "continue" })
      local res = wf:run(10, { limits = { messages_per_invocation = 4 } })
      assert.equal("failed", res.status)
      assert.equal(1, attempts)
      local failed = h.find(res.events, "executor_failed", "spam")
      assert.is_false(failed.data.retrying)
      assert.is_false(failed.data.continued)
    end)

    it("fail the invocation even when its code catches the error and returns", function()
      local refused = 0
      local wf, got = spammer(function(ctx, i)
        if not pcall(ctx.send, ctx, i) then refused = refused + 1 end
      end)
      local res = wf:run(10, { limits = { messages_per_invocation = 4 } })
      assert.equal(6, refused)
      assert.equal("failed", res.status)
      assert.equal("executor 'spam' failed in superstep 0: limits.messages_per_invocation (4) exceeded", res.error)
      assert.same({}, got)
    end)

    it("abort an invocation that catches the error and goes on waiting", function()
      local woke = false
      local wf = spammer(function(ctx, i)
        if not pcall(ctx.send, ctx, i) then
          weft.sleep(30) -- aborted long before
          woke = true
        end
      end)
      local res = wf:run(3, { limits = { messages_per_invocation = 2 } })
      assert.equal("failed", res.status)
      assert.mentions("limits.messages_per_invocation (2) exceeded", res.error)
      assert.is_false(woke)
    end)

    it("refuse a request to a human from a capped invocation", function()
      local err
      local wf = spammer(function(ctx, i)
        if not pcall(ctx.send, ctx, i) then
          local ok, e = pcall(ctx.request_info, ctx, { q = "more?" })
          err = not ok and tostring(e) or "answered"
          error(err, 0)
        end
      end)
      local res = wf:run(2, { limits = { messages_per_invocation = 1 } })
      assert.equal("failed", res.status)
      assert.mentions("limits.messages_per_invocation (1) exceeded", err)
      assert.equal(0, h.count(res.events, "workflow_idle"))
    end)

    it("default to 100,000 messages", function()
      local wf = weft.workflow("flood"):start(weft.executor("flood", function(n, ctx)
        for i = 1, n do ctx:send(i) end
      end)):build()
      local res = wf:run(100000, { events = false })
      assert.equal("completed", res.status)
      res = wf:run(100001, { events = false })
      assert.equal("failed", res.status)
      assert.equal("executor 'flood' failed in superstep 0: limits.messages_per_invocation (100000) exceeded",
                   res.error)
    end)
  end)

  describe("per superstep", function()
    -- start -> fan_out {b1..b4} -> sink; each branch sends n messages.
    local function branches(n)
      local start = h.forward("start")
      local bs = {}
      for i = 1, 4 do
        bs[i] = weft.executor("b" .. i, function(_, ctx) for k = 1, n do ctx:send(k) end end)
      end
      local sink, got = h.recorder("sink")
      local b = weft.workflow("branches"):start(start):fan_out(start, bs)
      for i = 1, 4 do b:edge(bs[i], sink) end
      return b:build(), got
    end

    it("fail the run when the invocations together pass it, naming the executor that did", function()
      local wf, got = branches(3)
      local res = wf:run("x", { limits = { messages_per_invocation = 5, messages_per_superstep = 10 } })
      assert.equal("failed", res.status)
      assert.equal("executor 'b4' failed in superstep 1: limits.messages_per_superstep (10) exceeded", res.error)
      assert.same({}, got)
      for i = 1, 3 do assert.equal(1, h.count(res.events, "executor_completed", "b" .. i)) end
    end)

    it("count each superstep afresh", function()
      local wf, got = branches(3)
      local res = wf:run("x", { limits = { messages_per_superstep = 12 } })
      assert.equal("completed", res.status)
      assert.equal(12, #got)
    end)

    it("do not count the effects of a failed attempt that is retried", function()
      local spam = weft.executor("spam", {
        retry = { max_attempts = 3, backoff = 0 },
        handle = function(_, ctx)
          ctx:send(1); ctx:send(2)
          if ctx.attempt < 3 then error("flaky") end
        end,
      })
      local sink, got = h.recorder("sink")
      local res = weft.workflow("retry"):start(spam):edge(spam, sink):build()
        :run("x", { limits = { messages_per_invocation = 2, messages_per_superstep = 2 } })
      assert.equal("completed", res.status)
      assert.same({ 1, 2 }, got)
    end)
  end)

  describe("configuration", function()
    it("takes workflow defaults, overridden limit by limit by run options", function()
      local wf, got = spammer(EFFECTS.messages)
      wf:set_defaults{ limits = { messages_per_invocation = 2, outputs_per_invocation = 7 } }
      local res = wf:run(3)
      assert.equal("executor 'spam' failed in superstep 0: limits.messages_per_invocation (2) exceeded", res.error)
      res = wf:run(3, { limits = { events_per_invocation = 9 } })
      assert.equal("failed", res.status) -- the default's message limit still holds
      res = wf:run(3, { limits = { messages_per_invocation = 3 } })
      assert.equal("completed", res.status)
      assert.same({ 1, 2, 3 }, got)
      -- set_defaults merges limits too
      wf:set_defaults{ limits = { messages_per_invocation = 5 } }
      assert.same({ messages_per_invocation = 5, outputs_per_invocation = 7 }, wf._defaults.limits)
    end)

    it("takes builder defaults", function()
      local spam = weft.executor("spam", function(n, ctx) for i = 1, n do ctx:yield_output(i) end end)
      local wf = weft.workflow("d"):start(spam):defaults{ limits = { outputs_per_superstep = 2 } }:build()
      local res = wf:run(3)
      assert.equal("executor 'spam' failed in superstep 0: limits.outputs_per_superstep (2) exceeded", res.error)
    end)

    it("rejects unknown limits and bad values, at the caller's line", function()
      local wf = spammer(EFFECTS.messages)
      local line = debug.getinfo(1, "l").currentline
      local e1 = h.error_of(function() wf:run(1, { limits = { messages = 3 } }) end)
      local e2 = h.error_of(function() wf:run(1, { limits = { messages_per_invocation = 0 } }) end)
      local e3 = h.error_of(function() wf:run(1, { limits = { messages_per_invocation = 1.5 } }) end)
      local e4 = h.error_of(function() wf:run(1, { limits = 5 }) end)
      local e5 = h.error_of(function() weft.workflow("x"):defaults{ limits = { events_per_superstep = -1 } } end)
      local e6 = h.error_of(function() wf:set_defaults{ limits = { nope = 1 } } end)
      assert.mentions("limits_spec.lua:" .. (line + 1) .. ": run: unknown limit 'limits.messages' (limits: events_per_invocation", e1)
      assert.mentions(":" .. (line + 2) .. ": run: limits.messages_per_invocation must be an integer from 1 to 2147483647", e2)
      assert.mentions(":" .. (line + 3) .. ": run: limits.messages_per_invocation must be an integer", e3)
      assert.mentions(":" .. (line + 4) .. ": run: limits must be a table", e4)
      assert.mentions(":" .. (line + 5) .. ": defaults: limits.events_per_superstep must be an integer", e5)
      assert.mentions(":" .. (line + 6) .. ": defaults: unknown limit 'limits.nope'", e6)
    end)

    it("lists the defaults", function()
      local d = run.limit_defaults()
      assert.same({
        messages_per_invocation = 100000, messages_per_superstep = 1000000,
        outputs_per_invocation = 100000, outputs_per_superstep = 1000000,
        events_per_invocation = 100000, events_per_superstep = 1000000,
        state_writes_per_invocation = 100000, state_writes_per_superstep = 1000000,
      }, d)
    end)
  end)

  it("fail a durable run the same way", function()
    local wf, got = spammer(EFFECTS.messages)
    local res = wf:run(5, { store = "memory:", limits = { messages_per_invocation = 3 } })
    assert.equal("failed", res.status)
    assert.equal("executor 'spam' failed in superstep 0: limits.messages_per_invocation (3) exceeded", res.error)
    assert.same({}, got)
    res = wf:run(3, { store = "memory:", limits = { messages_per_invocation = 3 } })
    assert.equal("completed", res.status)
    assert.same({ 1, 2, 3 }, got)
  end)

  it("leave the process able to run other workflows", function()
    local wf = spammer(EFFECTS.messages)
    for _ = 1, 3 do
      assert.equal("failed", wf:run(50, { limits = { messages_per_invocation = 10 } }).status)
    end
    local res = h.output("out")
    res = weft.workflow("after"):start(res):build():run("fine")
    assert.equal("completed", res.status)
    assert.same({ "fine" }, res.outputs)
  end)
end)
