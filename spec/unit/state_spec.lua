-- spec/unit/state_spec.lua — shared state (docs/api.md "Context",
-- ARCHITECTURE.md "Execution model"): snapshot reads, writes committed at
-- the barrier in invocation order, reducers, last-writer-wins conflicts,
-- deletion with nil, and the final state in the result.
local weft = require "weft"
local h = require "helpers"

-- An executor that sleeps `secs`, then calls fn(msg, ctx).
local function after(id, secs, fn)
  return weft.executor(id, function(msg, ctx)
    if secs > 0 then weft.sleep(secs) end
    fn(msg, ctx)
  end)
end

-- An executor that makes the writes { { key, value }, ... } in order, then
-- forwards its message.
local function setter(id, writes)
  return weft.executor(id, function(msg, ctx)
    for _, w in ipairs(writes) do ctx:set_state(w[1], w[2]) end
    ctx:send(msg)
  end)
end

-- a -> fan_out {b, c, d} where each branch sleeps (b longest, d shortest, so
-- they finish in the reverse of invocation order) and then calls fn(id, ctx).
local function three_branches(name, fn, reducers)
  local a = h.forward("a")
  local b = after("b", 0.03, function(_, ctx) fn("b", ctx) end)
  local c = after("c", 0.02, function(_, ctx) fn("c", ctx) end)
  local d = after("d", 0.01, function(_, ctx) fn("d", ctx) end)
  local wf = weft.workflow(name):start(a):fan_out(a, { b, c, d })
  if reducers then wf = wf:state(reducers) end
  return wf:build()
end

describe("shared state", function()

  describe("snapshot reads", function()
    it("hides a write of superstep N from its siblings and shows it in N+1", function()
      local seen = {}
      local a = setter("a", { { "k", "old" } })
      -- writer is invoked first; reader reads after writer has finished
      local writer = weft.executor("writer", function(_, ctx)
        ctx:set_state("k", "new")
        ctx:send("w")
      end)
      local reader = after("reader", 0.02, function(_, ctx)
        seen.sibling = ctx:get_state("k")
        ctx:send("r")
      end)
      local next_ex = weft.executor("next", function(_, ctx)
        seen.next = ctx:get_state("k")
      end)
      local res = weft.workflow("snap"):start(a)
        :fan_out(a, { writer, reader })
        :fan_in({ writer, reader }, next_ex)
        :build():run("go")
      assert.equal("completed", res.status)
      assert.equal("old", seen.sibling)
      assert.equal("new", seen.next)
    end)

    it("lets an invocation read its own writes at once", function()
      local seen = {}
      local a = weft.executor("a", function(_, ctx)
        seen.before = ctx:get_state("k")
        ctx:set_state("k", { n = 1 })
        seen.after = ctx:get_state("k")
        ctx:set_state("k", { n = 2 })
        seen.again = ctx:get_state("k")
      end)
      weft.workflow("own"):start(a):build():run("go")
      assert.is_nil(seen.before)
      assert.same({ n = 1 }, seen.after)
      assert.same({ n = 2 }, seen.again)
    end)

    it("shows an invocation its own deletion of a committed key", function()
      local seen = {}
      local a = setter("a", { { "k", "v" } })
      local b = weft.executor("b", function(_, ctx)
        seen.before = ctx:get_state("k")
        ctx:set_state("k", nil)
        seen.after = ctx:get_state("k")
      end)
      weft.workflow("own"):start(a):edge(a, b):build():run("go")
      assert.equal("v", seen.before)
      assert.is_nil(seen.after)
    end)

    it("returns nil for a key nobody wrote", function()
      local seen = "untouched"
      local a = weft.executor("a", function(_, ctx) seen = ctx:get_state("nothing") end)
      weft.workflow("none"):start(a):build():run("go")
      assert.is_nil(seen)
    end)
  end)

  describe("reducers", function()
    it("folds the writes of a superstep in invocation order, not completion order", function()
      local wf = three_branches("append", function(id, ctx) ctx:set_state("log", id) end,
                                { log = weft.reduce.append })
      local res = wf:run("go")
      assert.equal("completed", res.status)
      assert.same({ "b", "c", "d" }, res.state.log)
    end)

    it("folds onto the value committed in earlier supersteps", function()
      local a = setter("a", { { "log", "a" } })
      local b = setter("b", { { "log", "b1" }, { "log", "b2" } })
      local c = weft.executor("c", function(_, ctx) ctx:set_state("log", "c") end)
      local res = weft.workflow("append"):start(a):edge(a, b):edge(b, c)
        :state{ log = weft.reduce.append }
        :build():run("go")
      assert.same({ "a", "b1", "b2", "c" }, res.state.log)
    end)

    it("appends in place within a commit but never into a list a reader holds", function()
      -- superstep 1: three branches append (one list, grown in place);
      -- superstep 2: "look" keeps the committed list, two more writers
      -- append in that commit; what "look" holds must not change
      local held, seen
      local a = h.forward("a")
      local fan = {}
      for i = 1, 3 do
        fan[i] = weft.executor("w" .. i, function(_, ctx) ctx:set_state("log", "x" .. i); ctx:send("go") end)
      end
      local look = weft.executor("look", function(_, ctx)
        held = held or ctx:get_state("log")
        ctx:set_state("log", "look")
      end)
      local wf = weft.workflow("inplace"):start(a):fan_out(a, fan):fan_in(fan, look)
        :state{ log = weft.reduce.append }:build()
      local res = wf:run("go")
      assert.equal("completed", res.status, res.error)
      seen = { (unpack or table.unpack)(held) }
      assert.same({ "x1", "x2", "x3" }, seen)
      assert.equal(3, #held) -- the committed list was not appended to in place
      assert.same({ "x1", "x2", "x3", "look" }, res.state.log)
    end)

    it("merges tables shallowly with weft.reduce.merge, later writes winning", function()
      local values = { b = { x = 1, y = 1 }, c = { y = 2 }, d = { z = { 3 } } }
      local wf = three_branches("merge", function(id, ctx) ctx:set_state("m", values[id]) end,
                                { m = weft.reduce.merge })
      local res = wf:run("go")
      assert.same({ x = 1, y = 2, z = { 3 } }, res.state.m)
    end)

    it("concatenates lists with weft.reduce.concat", function()
      local values = { b = { 1, 2 }, c = {}, d = { 3 } }
      local wf = three_branches("concat", function(id, ctx) ctx:set_state("l", values[id]) end,
                                { l = weft.reduce.concat })
      local res = wf:run("go")
      assert.same({ 1, 2, 3 }, res.state.l)
    end)

    it("adds numbers with weft.reduce.sum", function()
      local values = { b = 1, c = 10, d = 100 }
      local wf = three_branches("sum", function(id, ctx) ctx:set_state("n", values[id]) end,
                                { n = weft.reduce.sum })
      local res = wf:run("go")
      assert.equal(111, res.state.n)
    end)

    it("keeps the largest and smallest value with weft.reduce.max and min", function()
      local values = { b = 5, c = 9, d = -2 }
      local wf = three_branches("maxmin", function(id, ctx)
        ctx:set_state("hi", values[id])
        ctx:set_state("lo", values[id])
      end, { hi = weft.reduce.max, lo = weft.reduce.min })
      local res = wf:run("go")
      assert.equal(9, res.state.hi)
      assert.equal(-2, res.state.lo)
    end)

    it("calls a custom reducer with acc nil first, then in invocation order", function()
      local calls = {}
      local function join(acc, value)
        calls[#calls + 1] = { acc == nil and "nil" or acc, value }
        return (acc and acc .. "," or "") .. value
      end
      local wf = three_branches("custom", function(id, ctx) ctx:set_state("s", id) end,
                                { s = join })
      local res = wf:run("go")
      assert.equal("b,c,d", res.state.s)
      assert.same({ { "nil", "b" }, { "b", "c" }, { "b,c", "d" } }, calls)
    end)

    it("does not report a conflict for a key that has a reducer", function()
      local wf = three_branches("noconflict", function(id, ctx) ctx:set_state("log", id) end,
                                { log = weft.reduce.append })
      local res = wf:run("go")
      assert.is_nil(h.find(res.events, "state_conflict"))
    end)

    it("does not mutate a value handed out earlier by get_state", function()
      local early
      local a = setter("a", { { "log", "a" } })
      local b = weft.executor("b", function(msg, ctx)
        early = ctx:get_state("log")
        ctx:set_state("log", "b")
        ctx:send(msg)
      end)
      local c = weft.executor("c", function(_, ctx) ctx:set_state("log", "c") end)
      local res = weft.workflow("immutable"):start(a):edge(a, b):edge(b, c)
        :state{ log = weft.reduce.append }
        :build():run("go")
      assert.same({ "a" }, early)
      assert.same({ "a", "b", "c" }, res.state.log)
    end)
  end)

  describe("weft.reduce functions", function()
    it("append returns a new list and leaves acc alone", function()
      local acc = { 1 }
      assert.same({ 1, 2 }, weft.reduce.append(acc, 2))
      assert.same({ 1 }, acc)
      assert.same({ "x" }, weft.reduce.append(nil, "x"))
    end)

    it("append, concat and merge update a fresh acc (their own output in this commit) in place", function()
      local acc = { 1 }
      assert.equal(acc, weft.reduce.append(acc, 2, true))
      assert.equal(acc, weft.reduce.concat(acc, { 3, 4 }, true))
      assert.same({ 1, 2, 3, 4 }, acc)
      local m = { a = 1 }
      assert.equal(m, weft.reduce.merge(m, { b = 2 }, true))
      assert.same({ a = 1, b = 2 }, m)
    end)

    it("append adds a table value as one element", function()
      assert.same({ 1, { 2, 3 } }, weft.reduce.append({ 1 }, { 2, 3 }))
    end)

    it("concat returns a new list and leaves acc alone", function()
      local acc = { 1 }
      assert.same({ 1, 2, 3 }, weft.reduce.concat(acc, { 2, 3 }))
      assert.same({ 1 }, acc)
      assert.same({ 4 }, weft.reduce.concat(nil, { 4 }))
    end)

    it("merge returns a new table and leaves acc alone", function()
      local acc = { a = 1, b = 1 }
      assert.same({ a = 1, b = 2, c = 3 }, weft.reduce.merge(acc, { b = 2, c = 3 }))
      assert.same({ a = 1, b = 1 }, acc)
      assert.same({ k = true }, weft.reduce.merge(nil, { k = true }))
    end)

    it("sum, max and min start from the first value", function()
      assert.equal(3, weft.reduce.sum(nil, 3))
      assert.equal(5, weft.reduce.sum(3, 2))
      assert.equal(7, weft.reduce.max(nil, 7))
      assert.equal(7, weft.reduce.max(7, 2))
      assert.equal(-1, weft.reduce.min(nil, -1))
      assert.equal(-4, weft.reduce.min(-1, -4))
    end)
  end)

  describe("without a reducer", function()
    it("keeps the last write in invocation order and reports a state_conflict", function()
      local wf = three_branches("lww", function(id, ctx)
        if id ~= "d" then ctx:set_state("k", "from " .. id) end
      end)
      local res = wf:run("go")
      assert.equal("completed", res.status)
      assert.equal("from c", res.state.k)
      local conflicts = h.filter(res.events, "state_conflict")
      assert.equal(1, #conflicts)
      assert.equal("k", conflicts[1].data.key)
      assert.same({ "b", "c" }, conflicts[1].data.writers)
      assert.equal(1, conflicts[1].superstep)
    end)

    it("reports no conflict when a single invocation writes a key several times", function()
      local a = weft.executor("a", function(_, ctx)
        ctx:set_state("k", 1)
        ctx:set_state("k", 2)
      end)
      local res = weft.workflow("single"):start(a):build():run("go")
      assert.equal(2, res.state.k)
      assert.is_nil(h.find(res.events, "state_conflict"))
    end)

    it("reports no conflict for different keys written by siblings", function()
      local wf = three_branches("distinct", function(id, ctx) ctx:set_state(id, true) end)
      local res = wf:run("go")
      assert.same({ b = true, c = true, d = true }, res.state)
      assert.is_nil(h.find(res.events, "state_conflict"))
    end)
  end)

  describe("nil", function()
    it("deletes the key for later supersteps and from the final state", function()
      local seen = "untouched"
      local a = setter("a", { { "gone", 1 }, { "kept", 2 } })
      local b = setter("b", { { "gone", nil } })
      local c = weft.executor("c", function(_, ctx) seen = ctx:get_state("gone") end)
      local res = weft.workflow("delete"):start(a):edge(a, b):edge(b, c):build():run("go")
      assert.is_nil(seen)
      assert.same({ kept = 2 }, res.state)
    end)
  end)

  describe("res.state", function()
    it("is the state committed at the end of the run", function()
      local a = setter("a", { { "n", 1 }, { "t", { list = { 1, 2 }, name = "x" } } })
      local b = weft.executor("b", function(_, ctx) ctx:set_state("n", ctx:get_state("n") + 1) end)
      local res = weft.workflow("final"):start(a):edge(a, b):build():run("go")
      assert.same({ n = 2, t = { list = { 1, 2 }, name = "x" } }, res.state)
    end)

    it("is an empty table when nothing was written", function()
      local res = weft.workflow("empty"):start(h.forward("a")):build():run("go")
      assert.same({}, res.state)
    end)

    it("is separate for each run of the same workflow", function()
      local a = weft.executor("a", function(msg, ctx)
        ctx:set_state("count", (ctx:get_state("count") or 0) + 1)
        ctx:set_state("input", msg)
      end)
      local wf = weft.workflow("fresh"):start(a):build()
      local r1, r2 = wf:run("one"), wf:run("two")
      assert.same({ count = 1, input = "one" }, r1.state)
      assert.same({ count = 1, input = "two" }, r2.state)
    end)
  end)
end)
