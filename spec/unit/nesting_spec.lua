-- Nested workflows: a run started inside an executor republishes its
-- agent_update events on the parent invocation, tagged with the path.
local weft = require "weft"
local sched = require "weft.core.sched"
local task = require "weft.task"

-- An executor that publishes one agent_update chunk then outputs.
local function streamer(id, chunk)
  return weft.executor(id, function(m, ctx)
    local run, seq = task.current()
    sched.emit_live(run.c, seq, "agent_update", nil, chunk)
    ctx:yield_output(m)
  end)
end

-- An executor running wf on its message (nested).
local function nest(id, wf, opts)
  return weft.executor(id, function(m, ctx) ctx:yield_output(wf:run(m, opts).outputs[1]) end)
end

local function updates(res)
  local out = {}
  for _, ev in ipairs(res.events) do
    if ev.type == "agent_update" then out[#out + 1] = ev end
  end
  return out
end

describe("nested workflows", function()
  it("forward agent_update events to the outer run with the executor path", function()
    local inner = weft.workflow("inner"):start(streamer("talk", { text = "hi" })):build()
    local mid = weft.workflow("mid"):start(nest("middle", inner)):build()
    local outer = weft.workflow("outer"):start(nest("top", mid)):build()
    local seen = {}
    local res = outer:run("x", { on_event = function(ev)
      if ev.type == "agent_update" then seen[#seen + 1] = ev end
    end })
    assert.equal("completed", res.status)
    assert.equal(1, #seen)
    assert.equal("top", seen[1].executor_id)
    assert.same({ "top", "middle", "talk" }, seen[1].data.path)
    assert.equal("hi", seen[1].data.text)
    assert.equal(1, #updates(res))
  end)

  it("keep the inner run's own events untouched", function()
    local inner = weft.workflow("inner"):start(streamer("talk", { text = "a" })):build()
    local got
    local outer = weft.workflow("outer"):start(weft.executor("top", function(m, ctx)
      got = inner:run(m)
      ctx:yield_output(1)
    end)):build()
    outer:run("x")
    local ev = updates(got)[1]
    assert.equal("talk", ev.executor_id)
    assert.is_nil(ev.data.path)
  end)

  it("do not forward when the inner run is started with propagate = false", function()
    local inner = weft.workflow("inner"):start(streamer("talk", { text = "a" })):build()
    local outer = weft.workflow("outer"):start(nest("top", inner, { propagate = false })):build()
    assert.equal(0, #updates(outer:run("x")))
  end)

  it("do not forward from a top-level run", function()
    local wf = weft.workflow("solo"):start(streamer("talk", { text = "a" })):build()
    local res = wf:run("x")
    assert.equal(1, #updates(res))
    assert.is_nil(updates(res)[1].data.path)
  end)
end)
