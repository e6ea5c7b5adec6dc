-- weft.guard: guard objects, verdicts, the built-in size/schema/fn guards,
-- and the guards of executors and workflows (input, sends, outputs).
local weft = require "weft"
local guard = require "weft.guard"
local json = weft.json
local H = require "helpers"

-- A guard replacing "secret" by "[S]" in every string.
local function masker(name)
  return guard.new{ name = name or "mask", check = function(_, s)
    if s:find("secret", 1, true) then
      return { action = "modify", value = (s:gsub("secret", "[S]")), reason = "1 secret masked" }
    end
  end }
end

-- A guard blocking strings holding "forbidden".
local function blocker(stages)
  return guard.new{ name = "deny", stages = stages, check = function(_, s)
    if s:find("forbidden", 1, true) then return { action = "block", reason = "forbidden word" } end
  end }
end

-- The data of a run's guardrail_triggered events.
local function triggered(res)
  local out = {}
  for _, ev in ipairs(res.events) do
    if ev.type == "custom" and ev.name == "guardrail_triggered" then out[#out + 1] = ev.data end
  end
  return out
end

describe("weft.guard.new", function()
  it("makes a guard watching every stage by default", function()
    local g = masker()
    assert.is_true(guard.is_guard(g))
    assert.same({ "input", "output", "tool_call", "tool_result" }, g.stage_list)
    assert.is_false(g.whole)
  end)

  it("raises at the caller naming the field", function()
    local err = H.error_of(guard.new, { name = "x", check = 1 })
    assert.matches("guard 'x': check must be a function", err, 1, true)
    err = H.error_of(guard.new, { name = "x", check = function() end, stages = { "inptu" } })
    assert.matches("stages[1] must be one of 'input'", err, 1, true)
    local ok, e = pcall(function() guard.new{ name = "", check = function() end } end)
    assert.is_false(ok)
    assert.matches("guard_spec.lua:%d+: weft.guard.new: name must be", e)
  end)
end)

describe("weft.guard.apply", function()
  it("replaces modified strings in a copy, keeping the caller's table and its JSON markers", function()
    local v = { text = "a secret", list = json.array{ "no", "secret too" }, n = 3 }
    local events = {}
    local out = guard.apply({ masker() }, "input", v, {}, function(ev) events[#events + 1] = ev end)
    assert.same({ text = "a [S]", list = { "no", "[S] too" }, n = 3 }, out)
    assert.equal("a secret", v.text)
    assert.equal("secret too", v.list[2])
    assert.is_true(json.is_array(out.list))
    assert.equal('["no","[S] too"]', json.encode(out.list))
    local fields = {}
    for _, ev in ipairs(events) do
      fields[#fields + 1] = ev.field
      assert.equal("modify", ev.action)
      assert.equal("1 secret masked", ev.reason)
    end
    table.sort(fields)
    assert.same({ "input.list[2]", "input.text" }, fields)
  end)

  it("returns the same table when nothing changes", function()
    local v = { a = "plain" }
    assert.equal(v, guard.apply({ masker() }, "output", v, {}))
  end)

  it("raises a block error naming guard, stage and field, with code 'guardrail'", function()
    local ok, e = pcall(guard.apply, { blocker() }, "output", { msg = { "ok", "forbidden" } }, { field = "message" })
    assert.is_false(ok)
    assert.equal("guardrail deny blocked output message.msg[2]: forbidden word", tostring(e))
    assert.equal("guardrail", e.code)
    assert.equal("deny", e.guard)
    assert.equal("message.msg[2]", e.field)
    assert.is_true(guard.is_block(e))
    assert.is_true(guard.is_block("executor 'x' failed: " .. tostring(e)))
  end)

  it("skips guards that do not watch the stage", function()
    assert.equal("forbidden", guard.apply({ blocker({ "input" }) }, "output", "forbidden", {}))
  end)

  it("treats a check that raises or answers nonsense as a block", function()
    local boom = guard.new{ name = "boom", check = function() error("detector broke") end }
    local ok, e = pcall(guard.apply, { boom }, "input", "x", {})
    assert.is_false(ok)
    assert.matches("^guardrail boom blocked input input: guard error: .*detector broke", tostring(e))
    local odd = guard.new{ name = "odd", check = function() return { action = "maybe" } end }
    ok, e = pcall(guard.apply, { odd }, "input", "x", {})
    assert.is_false(ok)
    assert.matches("verdict action must be 'allow', 'modify' or 'block'", tostring(e), 1, true)
  end)

  it("calls a whole guard once with the whole value", function()
    local seen = {}
    local g = guard.new{ name = "w", whole = true, check = function(_, v, info)
      seen[#seen + 1] = { v, info.field }
    end }
    local v = { "a", "b" }
    guard.apply({ g }, "input", v, {})
    assert.equal(1, #seen)
    assert.equal(v, seen[1][1])
    assert.equal("input", seen[1][2])
  end)
end)

describe("built-in guards", function()
  it("size blocks past max_bytes (units) or max_items, naming sizes only", function()
    local g = guard.size{ max_bytes = "1KB" }
    assert.equal(1000, g.max_bytes)
    assert.equal("x", guard.apply({ g }, "input", "x", {}))
    local ok, e = pcall(guard.apply, { g }, "input", { t = ("s"):rep(1001) }, {})
    assert.is_false(ok)
    assert.equal("guardrail size blocked input input: 1002 bytes, limit 1000", tostring(e))
    ok, e = pcall(guard.apply, { guard.size{ max_items = 2 } }, "input", { 1, 2, 3 }, {})
    assert.matches("3 items, limit 2", tostring(e), 1, true)
    assert.matches("max_bytes must be a size", H.error_of(guard.size, { max_bytes = "lots" }), 1, true)
  end)

  it("schema validates outputs, decoding JSON text, without the value in the reason", function()
    local g = guard.schema{ schema = { type = "object", properties = { n = { type = "number" } }, required = { "n" } } }
    assert.same({ "output" }, g.stage_list)
    assert.same({ n = 1 }, guard.apply({ g }, "output", { n = 1 }, {}))
    local ok, e = pcall(guard.apply, { g }, "output", '{"n": "my card 4111"}', {})
    assert.is_false(ok)
    assert.matches("does not match the schema: value.n: expected number", tostring(e), 1, true)
    assert.is_nil(tostring(e):find("4111", 1, true))
    ok, e = pcall(guard.apply, { g }, "output", "not json", {})
    assert.matches("not JSON", tostring(e), 1, true)
    assert.matches("unknown type", H.error_of(guard.schema, { schema = { type = "num" } }), 1, true)
  end)

  it("fn and plain functions are custom guards seeing the whole value", function()
    local g = guard.fn("upper", function(v) return { action = "modify", value = v:upper(), reason = "upper" } end)
    assert.equal("HI", guard.apply({ g }, "output", "hi", {}))
    local l = guard.list({ function(v) if v == "no" then return { action = "block", reason = "no" } end end }, "x")
    assert.equal("custom", l[1].name)
    local ok, e = pcall(guard.apply, l, "input", "no", {})
    assert.is_false(ok)
    assert.equal("guardrail custom blocked input input: no", tostring(e))
    assert.matches("x: guards%[1%] must be a weft.guard object", H.error_of(guard.list, { 42 }, "x"))
  end)

  it("from_spec builds a guard from a declarative spec, naming the path on errors", function()
    local g = guard.from_spec({ type = "size", max_bytes = 10 }, "guardrails[1]")
    assert.equal(10, g.max_bytes)
    assert.matches("guardrails%[2%]%.type: must be one of .*did you mean 'size'",
      H.error_of(guard.from_spec, { type = "sise" }, "guardrails[2]"))
  end)

  it("exposes the detectors of weft.guard.<name> as constructors", function()
    for _, name in ipairs({ "pii", "words", "injection", "judge" }) do
      assert.is_function(guard[name])
    end
    assert.equal(guard, weft.guard)
  end)
end)

describe("guards on executors and workflows", function()
  it("masks the input and what an executor sends and yields", function()
    local seen
    local a = weft.executor("a", { handle = function(msg, ctx)
      seen = msg
      ctx:send({ text = msg .. " and a secret" })
    end, guards = { masker() } })
    local b = weft.executor("b", function(msg, ctx) ctx:yield_output(msg.text .. " secret") end)
    local wf = weft.workflow("g"):start(a):edge(a, b):build()
    local res = wf:run("my secret")
    assert.equal("completed", res.status)
    assert.equal("my [S]", seen)
    -- b has no guards: its output is not masked
    assert.same({ "my [S] and a [S] secret" }, res.outputs)
    local evs = triggered(res)
    assert.equal(2, #evs)
    assert.same({ guard = "mask", stage = "input", field = "input", action = "modify", reason = "1 secret masked",
                  executor_id = "a", run_id = res.run_id }, evs[1])
    assert.equal("message.text", evs[2].field)
    assert.equal("output", evs[2].stage)
  end)

  it("fails the run on a block, with the guardrail message; the event carries no content", function()
    local a = weft.executor("a", { handle = function(_, ctx) ctx:yield_output("forbidden text") end,
                                   guards = { blocker() } })
    local res = weft.workflow("b"):start(a):build():run("x")
    assert.equal("failed", res.status)
    assert.equal("executor 'a' failed in superstep 0: guardrail deny blocked output output: forbidden word", res.error)
    local evs = triggered(res)
    assert.equal(1, #evs)
    assert.equal("block", evs[1].action)
    assert.is_nil(json.encode(evs[1]):find("forbidden text", 1, true))
  end)

  it("does not run the handler again on retries after a block", function()
    local n = 0
    local a = weft.executor("a", { handle = function(_, ctx)
      n = n + 1
      ctx:yield_output("forbidden")
    end, guards = { blocker() }, retry = { max_attempts = 3 } })
    local res = weft.workflow("r"):start(a):build():run("x")
    assert.equal("failed", res.status)
    assert.equal(1, n)
    assert.matches("guardrail deny blocked output output: forbidden word", res.error, 1, true)
  end)

  it("lets on_error = 'continue' go on past a block", function()
    local a = weft.executor("a", { handle = function() end, guards = { blocker() }, on_error = "continue" })
    local res = weft.workflow("c"):start(a):build():run("forbidden")
    assert.equal("completed", res.status)
    local failed = H.find(res.events, "executor_failed", "a")
    assert.matches("^guardrail deny blocked input input", failed.data.error)
  end)

  it("runs guards in the order run, workflow, executor", function()
    local order = {}
    local function rec(name)
      return guard.new{ name = name, stages = { "input" }, whole = true, check = function()
        order[#order + 1] = name
      end }
    end
    local a = weft.executor("a", { handle = function() end, guards = { rec("executor") } })
    local wf = weft.workflow("o"):start(a):guards{ rec("workflow") }:build()
    local res = wf:run("x", { guardrails = { rec("run") } })
    assert.equal("completed", res.status)
    assert.same({ "run", "workflow", "executor" }, order)
  end)

  it("applies a run's guardrails to the runs nested in it", function()
    local inner = weft.workflow("inner"):start(weft.executor("i", function(_, ctx)
      ctx:yield_output("inner secret")
    end)):build()
    local outer = weft.workflow("outer"):start(weft.executor("o", function(_, ctx)
      local out = inner:run("go").outputs[1]
      ctx:yield_output(out == "inner [S]" and "masked inside" or "not masked inside")
    end)):build()
    local res = outer:run("x", { guardrails = { masker() } })
    assert.equal("completed", res.status, res.error)
    assert.same({ "masked inside" }, res.outputs)
  end)

  it("fails the run naming the problem when the run option guardrails holds no guards", function()
    local a = weft.executor("a", function() end)
    local res = weft.workflow("bad"):start(a):build():run("x", { guardrails = { 42 } })
    assert.equal("failed", res.status)
    assert.matches("run option guardrails: guards[1] must be a weft.guard object", res.error, 1, true)
  end)

  it("counts verdicts in weft.guard.counters", function()
    local before = ((guard.counters.deny or {}).input or {}).block or 0
    local a = weft.executor("a", { handle = function() end, guards = { blocker() } })
    weft.workflow("n"):start(a):build():run("forbidden")
    assert.equal(before + 1, guard.counters.deny.input.block)
  end)

  it("rejects guards that are not guards, naming the executor", function()
    assert.matches("executor 'a': guards%[1%] must be a weft.guard",
      H.error_of(weft.executor, "a", { handle = function() end, guards = { "pii" } }))
  end)
end)

describe("a guardrail block under a retry policy", function()
  -- The executor_failed events of res.
  local function failures(res)
    local out = {}
    for _, ev in ipairs(res.events) do
      if ev.type == "executor_failed" then out[#out + 1] = ev end
    end
    return out
  end

  it("fails the invocation after one attempt: the scheduler does not retry it", function()
    local n = 0
    local a = weft.executor("a", { handle = function(_, ctx)
      n = n + 1
      ctx:yield_output("forbidden")
    end, guards = { blocker() }, retry = { max_attempts = 3, backoff = 0.001 } })
    local res = weft.workflow("nr"):start(a):build():run("x")
    assert.equal("failed", res.status)
    assert.equal(1, n)
    assert.equal("executor 'a' failed in superstep 0: guardrail deny blocked output output: forbidden word", res.error)
    assert.is_nil(res.error:find("attempts", 1, true))
    local f = failures(res)
    assert.equal(1, #f)
    assert.is_false(f[1].data.retrying)
    assert.equal(1, f[1].data.attempt)
  end)

  it("does not retry a block raised by the executor's own code either (an agent's guard)", function()
    local n = 0
    local g = blocker()
    local a = weft.executor("a", { handle = function()
      n = n + 1
      guard.apply({ g }, "input", "forbidden", {})
    end, retry = { max_attempts = 3 } })
    local res = weft.workflow("nr2"):start(a):build():run("x")
    assert.equal("failed", res.status)
    assert.equal(1, n)
    assert.equal(1, #failures(res))
  end)

  it("still lets on_error = 'continue' go on past it, without a retry", function()
    local n = 0
    local a = weft.executor("a", { handle = function() n = n + 1 end, guards = { blocker() },
                                   retry = { max_attempts = 3 }, on_error = "continue" })
    local res = weft.workflow("nc"):start(a):build():run("forbidden")
    assert.equal("completed", res.status)
    assert.equal(0, n)
    local f = failures(res)
    assert.equal(1, #f)
    assert.is_false(f[1].data.retrying)
    assert.is_true(f[1].data.continued)
  end)
end)
