-- spec/unit/invocation_spec.lua — weft.invocation: the running invocation
-- as the layers above the scheduler see it (who it is, live events), found
-- from the executor or from a task it started; weft.llm publishes its
-- streamed chunks through it.
local weft = require "weft"
local invocation = require "weft.invocation"
local llm = require "weft.llm"
local h = require "helpers"

describe("weft.invocation.current", function()
  it("is nil outside any executor", function()
    assert.is_nil(invocation.current())
  end)

  it("names the invocation from the executor and from a task it started", function()
    local seen = {}
    local a = weft.executor("a", function(_, ctx)
      seen.direct = invocation.current()
      seen.task = weft.go(function() return invocation.current() end):wait()
      ctx:yield_output("ok")
    end)
    local res = weft.workflow("w"):start(a):build():run("x")
    assert.equal("completed", res.status, res.error)
    for _, which in ipairs({ "direct", "task" }) do
      local inv = seen[which]
      assert.equal(res.run_id, inv.run_id, which)
      assert.equal("a", inv.executor_id, which)
      assert.equal(0, inv.superstep, which)
      assert.equal(1, inv.attempt, which)
    end
  end)

  it("is nil in a task started with weft.task.go_detached, even from an executor", function()
    local task = require "weft.task"
    local seen = {}
    local a = weft.executor("a", function(_, ctx)
      seen.detached = task.go_detached(function() return invocation.current() or false end):wait()
      seen.nested = task.go_detached(function()
        return weft.go(function() return invocation.current() or false end):wait()
      end):wait()
      ctx:yield_output("ok")
    end)
    local res = weft.workflow("w"):start(a):build():run("x")
    assert.equal("completed", res.status, res.error)
    assert.is_false(seen.detached)
    assert.is_false(seen.nested)
  end)
end)

describe("invocation:emit_live and :publish_chunk", function()
  it("publish live agent_update events of the invocation, before it completes", function()
    local a = weft.executor("a", function(_, ctx)
      local inv = invocation.current()
      assert(inv:publish_chunk({ text = "one" }))
      assert(inv:emit_live("agent_update", "step", { text = "two" }))
      ctx:yield_output("ok")
    end)
    local order = {}
    local res = weft.workflow("w"):start(a):build():run("x", { on_event = function(ev)
      if ev.type == "agent_update" or ev.type == "executor_completed" then order[#order + 1] = ev.type end
    end })
    assert.equal("completed", res.status, res.error)
    local ups = h.filter(res.events, "agent_update")
    assert.equal(2, #ups)
    assert.same({ text = "one" }, ups[1].data)
    assert.equal("a", ups[1].executor_id)
    assert.equal("step", ups[2].name)
    assert.same({ text = "two" }, ups[2].data)
    assert.same({ "agent_update", "agent_update", "executor_completed" }, order)
  end)

  it("returns nil and an error once the invocation has ended", function()
    local kept
    local a = weft.executor("a", function(_, ctx)
      kept = invocation.current()
      ctx:yield_output("ok")
    end)
    assert.equal("completed", weft.workflow("w"):start(a):build():run("x").status)
    local ok, err = kept:publish_chunk({ text = "late" })
    assert.is_nil(ok)
    assert.is_string(err)
  end)

  it("raises at the caller on a bad event type or a dotted call", function()
    local errs = {}
    local a = weft.executor("a", function(_, ctx)
      local inv = invocation.current()
      errs[1] = select(2, pcall(inv.emit_live, inv, "chunk", nil, {}))
      errs[2] = select(2, pcall(inv.emit_live, "agent_update", nil, {}))
      ctx:yield_output("ok")
    end)
    assert.equal("completed", weft.workflow("w"):start(a):build():run("x").status)
    assert.truthy(errs[1]:find("invocation:emit_live: the event type must be 'agent_update' or "
                               .. "'request_info', got chunk", 1, true), errs[1])
    assert.truthy(errs[2]:find("call it with a colon", 1, true), errs[2])
  end)

  it("is how weft.llm publishes the chunks of a streamed reply", function()
    local current, calls = invocation.current, 0
    finally(function() invocation.current = current end)
    invocation.current = function()
      calls = calls + 1
      return current()
    end
    local a = weft.executor("a", function(msg, ctx)
      calls = 0 -- weft.run asks too when a run starts (nested runs republish)
      local r = assert(llm.chat { model = "mock:echo", messages = { { role = "user", content = msg } },
                                  stream = true })
      ctx:yield_output(r.text)
    end)
    local res = weft.workflow("w"):start(a):build():run("one two")
    assert.equal("completed", res.status, res.error)
    assert.equal(1, calls)
    assert.is_true(#h.filter(res.events, "agent_update") >= 3)
  end)
end)
