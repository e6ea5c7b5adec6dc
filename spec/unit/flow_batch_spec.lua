-- spec/unit/flow_batch_spec.lua — weft.flow as complete as PocketFlow:
-- params (set_params, a flow's params given to each of its nodes, node.params
-- in every phase), BatchFlow, the async family (AsyncNode, AsyncFlow,
-- AsyncBatchNode, AsyncBatchFlow: the PocketFlow *_async names) and the
-- parallel kinds (AsyncParallelBatchNode, AsyncParallelBatchFlow and their
-- JavaScript names), whose items run concurrently in weft tasks.
--
-- Concurrency is shown without clocks: items wait at a barrier that opens
-- only when the expected number of them are in flight together (a barrier
-- that does not open fails after a deadlock guard instead of hanging), and
-- a gauge records the most items in flight at once.
local weft = require "weft"
local flow = require "weft.flow"
local h = require "helpers"

local Node, Flow, BatchFlow = flow.Node, flow.Flow, flow.BatchFlow

-- Seconds a barrier waits before it reports a deadlock (never reached
-- when the items really are concurrent).
local GUARD = 5

-- A barrier for groups of size items: pass() returns once size callers
-- (of the current group) have arrived; fails naming how many arrived when
-- they never all do (items run one at a time). The gauge g counts the
-- callers inside pass at once.
local function barrier(size)
  local b = { g = h.gauge(), cond = weft.cond(), arrived = 0, group = 0 }
  function b.pass()
    b.g.enter()
    local group = b.group
    b.arrived = b.arrived + 1
    if b.arrived == size then
      b.arrived, b.group = 0, b.group + 1
      b.cond:signal()
    else
      while b.group == group do
        if not b.cond:wait(GUARD) then
          b.g.leave()
          error(("barrier: only %d of %d items in flight together"):format(b.arrived, size), 0)
        end
      end
    end
    b.g.leave()
  end
  return b
end

describe("params", function()
  it("gives a node run alone its own params (set_params) in prep, exec, post and exec_fallback", function()
    local seen = {}
    local n = Node{
      name = "p", max_retries = 1,
      prep = function(_, node) seen.prep = node.params.file; return 1 end,
      exec = function(_, _, node) seen.exec = node.params.file; error("once") end,
      exec_fallback = function(_, _, node) seen.fallback = node.params.file; return 2 end,
      post = function(_, _, _, node) seen.post = node.params.file end,
    }
    assert.equal(n, n:set_params({ file = "a.txt" }))
    n:run()
    assert.same({ prep = "a.txt", exec = "a.txt", fallback = "a.txt", post = "a.txt" }, seen)
  end)

  it("takes params in the constructor and shows the node's own fields through the run's view", function()
    local got
    Node{ name = "named", params = { k = 1 }, post = function(_, _, _, node)
      got = { node.params.k, node.name, node.max_retries, tostring(node) }
    end }:run()
    assert.same({ 1, "named", 1, "Node 'named'" }, got)
  end)

  it("gives every node of a flow the flow's params, not their own (as PocketFlow)", function()
    local seen = {}
    local function rec(name)
      return Node{ name = name, params = { own = name }, post = function(_, _, _, node)
        seen[#seen + 1] = name .. ":" .. tostring(node.params.who) .. ":" .. tostring(node.params.own)
      end }
    end
    local a, b = rec("a"), rec("b")
    a:next(b)
    local inner = Flow{ name = "inner", start = rec("c"), params = { who = "ignored" } }
    b:next(inner)
    Flow{ name = "outer", start = a }:set_params({ who = "outer" }):run()
    assert.same({ "a:outer:nil", "b:outer:nil", "c:outer:nil" }, seen)
  end)

  it("hands each run of a flow a copy of its params: a node's writes do not change the flow", function()
    local f = Flow{ start = Node{ prep = function(_, node) node.params.x = (node.params.x or 0) + 1 end },
                    params = { x = 10 } }
    f:run(); f:run()
    assert.same({ x = 10 }, f.params)
  end)

  it("keeps what prep stores on its node argument for exec and post of that run only (self.x = ...)", function()
    local n = Node{
      name = "keep",
      prep = function(shared, node) node.sections = shared.sections end,
      exec = function(_, _, node) weft.sleep(0); return #node.sections end,
      post = function(shared, _, count, node) shared.count, shared.first = count, node.sections[1] end,
    }
    local f = Flow{ start = n }
    local t1 = weft.go(function() return select(2, f:run({ sections = { "a", "b" } })) end)
    local t2 = weft.go(function() return select(2, f:run({ sections = { "x" } })) end)
    local s1, s2 = t1:wait(), t2:wait()
    assert.same({ 2, "a" }, { s1.count, s1.first })
    assert.same({ 1, "x" }, { s2.count, s2.first })
    assert.is_nil(rawget(n, "sections"))
  end)

  it("rejects params that are not a table", function()
    assert.mentions("Node 'n': set_params expects a table, got string",
                    h.error_of(function() Node{ name = "n" }:set_params("x") end))
    assert.mentions("Node 'n': params must be", h.error_of(Node, { name = "n", params = 3 }))
  end)
end)

describe("weft.flow.BatchFlow", function()
  it("runs its nodes once per params set, in order, merged over the flow's params; post gets the list", function()
    local load = Node{ name = "load", post = function(s, _, _, node)
      s.seen[#s.seen + 1] = node.params.dir .. "/" .. node.params.file
    end }
    local posted
    local bf = BatchFlow{
      name = "files", start = load, params = { dir = "in" },
      prep = function(s) return { { file = "a" }, { file = "b" }, { file = "c", dir = "other" } }, s end,
      post = function(s, list, exec_res) posted = { #list, exec_res }; s.done = true end,
    }
    local action, shared = bf:run({ seen = {} })
    assert.equal("default", action)
    assert.same({ "in/a", "in/b", "other/c" }, shared.seen)
    assert.same({ 3 }, posted)
    assert.is_true(shared.done)
  end)

  it("receives params from its parent flow and passes them on to a nested flow", function()
    local seen = {}
    local leaf = Node{ post = function(_, _, _, node) seen[#seen + 1] = node.params.user .. ":" .. node.params.doc end }
    local bf = BatchFlow{ name = "docs", start = Flow{ name = "per_doc", start = leaf },
                          prep = function() return { { doc = 1 }, { doc = 2 } } end }
    Flow{ start = bf, params = { user = "ann" } }:run()
    assert.same({ "ann:1", "ann:2" }, seen)
  end)

  it("runs nothing for a nil prep result and rejects anything but a list of tables", function()
    local ran = false
    BatchFlow{ start = Node{ post = function() ran = true end } }:run()
    assert.is_false(ran)
    assert.equal("BatchFlow 'b': prep must return a list of params tables, got string",
                 h.error_of(function() BatchFlow{ name = "b", start = Node{}, prep = function() return "x" end }:run() end))
    assert.equal("BatchFlow 'b': prep must return a list of params tables, item 2 is a number",
                 h.error_of(function() BatchFlow{ name = "b", start = Node{}, prep = function() return { {}, 5 } end }:run() end))
  end)

  it("names the params set whose run failed", function()
    local n = Node{ name = "n", exec = function(_, _, node) if node.params.i == 2 then error("boom", 0) end end,
                    prep = function() return 1 end }
    local bf = BatchFlow{ name = "b", start = n, prep = function() return { { i = 1 }, { i = 2 }, { i = 3 } } end }
    assert.equal("BatchFlow 'b': params set 2 of 3: Node 'n': exec failed after 1 attempt: boom",
                 h.error_of(function() bf:run() end))
  end)

  it("runs as a workflow executor", function()
    local add = Node{ post = function(s, _, _, node) s.total = (s.total or 0) + node.params.n end }
    local bf = BatchFlow{ name = "sum", start = add, prep = function(s) return s.sets end }
    local res = bf:as_workflow():run({ sets = { { n = 1 }, { n = 2 } } })
    assert.equal("completed", res.status)
    assert.equal(3, res.outputs[1].total)
  end)
end)

describe("the async family", function()
  it("AsyncNode takes prep_async, exec_async, post_async and exec_fallback_async", function()
    local calls = {}
    local n = flow.AsyncNode{
      name = "a", max_retries = 2,
      prep_async = function(s) calls[#calls + 1] = "prep"; return s.x end,
      exec_async = function(x, attempt) weft.sleep(0); calls[#calls + 1] = "exec" .. attempt; error("no " .. x, 0) end,
      exec_fallback_async = function(x, err) calls[#calls + 1] = "fallback"; return err .. "/" .. x end,
      post_async = function(s, _, e) s.e = e; return "done" end,
    }
    local action, shared = n:run_async({ x = "x" })
    assert.equal("done", action)
    assert.equal("no x/x", shared.e)
    assert.same({ "prep", "exec1", "exec2", "fallback" }, calls)
  end)

  it("AsyncNode takes the plain names too, but not both names of one phase", function()
    local _, s = flow.AsyncNode{ post = function(sh) sh.ok = true end }:run()
    assert.is_true(s.ok)
    assert.mentions("AsyncNode 'a': give exec or exec_async, not both",
                    h.error_of(flow.AsyncNode, { name = "a", exec = print, exec_async = print }))
  end)

  it("a plain Node refuses the async names, pointing to the plain one", function()
    assert.mentions("unknown field 'prep_async'", h.error_of(Node, { prep_async = print }))
    assert.mentions("did you mean 'prep'?", h.error_of(Node, { prep_async = print }))
  end)

  it("AsyncFlow runs prep_async and post_async around its nodes", function()
    local f = flow.AsyncFlow{
      name = "af", start = flow.AsyncNode{ post_async = function(s) s.trace[#s.trace + 1] = "node"; return "x" end },
      prep_async = function(s) s.trace = { "prep" } end,
      post_async = function(s, _, last) s.trace[#s.trace + 1] = "post " .. last; return "end" end,
    }
    local action, shared = f:run_async()
    assert.equal("end", action)
    assert.same({ "prep", "node", "post x" }, shared.trace)
  end)

  it("AsyncBatchNode runs its items one at a time, in order", function()
    local g, order = h.gauge(), {}
    local n = flow.AsyncBatchNode{
      prep_async = function() return { 1, 2, 3 } end,
      exec_async = function(i) g.enter(); weft.sleep(0); order[#order + 1] = i; g.leave(); return i * i end,
      post_async = function(s, _, r) s.r = r end,
    }
    local _, s = n:run()
    assert.same({ 1, 4, 9 }, s.r)
    assert.same({ 1, 2, 3 }, order)
    assert.equal(1, g.peak)
  end)

  it("AsyncBatchFlow runs its params sets one at a time", function()
    local seen = {}
    local f = flow.AsyncBatchFlow{ start = Node{ exec = function(_, _, node) weft.sleep(0); seen[#seen + 1] = node.params.k end,
                                                 prep = function() return 0 end },
                                   prep_async = function() return { { k = "a" }, { k = "b" } } end }
    f:run()
    assert.same({ "a", "b" }, seen)
  end)
end)

describe("weft.flow.AsyncParallelBatchNode", function()
  it("runs its items concurrently: all three in flight together, results in item order", function()
    local b = barrier(3)
    local n = flow.AsyncParallelBatchNode{
      name = "fetch",
      prep_async = function(s) return s.urls end,
      exec_async = function(url) b.pass(); return "page of " .. url end,
      post_async = function(s, _, pages) s.pages = pages end,
    }
    local _, s = n:run({ urls = { "a", "b", "c" } })
    assert.same({ "page of a", "page of b", "page of c" }, s.pages)
    assert.equal(3, b.g.peak)
  end)

  it("keeps at most max_parallel items in flight", function()
    local b = barrier(2)
    local n = flow.AsyncParallelBatchNode{ max_parallel = 2, prep = function() return { 1, 2, 3, 4, 5, 6 } end,
                                           exec = function(i) b.pass(); return i end,
                                           post = function(s, _, r) s.r = r end }
    local _, s = n:run()
    assert.same({ 1, 2, 3, 4, 5, 6 }, s.r)
    assert.equal(2, b.g.peak)
  end)

  it("raises the error of a failed item naming the item, after the items in flight finish", function()
    local b, finished = barrier(3), {}
    local n = flow.AsyncParallelBatchNode{
      name = "fetch",
      prep = function() return { "a", "b", "c" } end,
      exec = function(x)
        b.pass()
        if x == "b" then error("404 for " .. x, 0) end
        finished[#finished + 1] = x
        return x
      end,
    }
    assert.equal("AsyncParallelBatchNode 'fetch': item 2 of 3: exec failed after 1 attempt: 404 for b",
                 h.error_of(function() n:run() end))
    table.sort(finished)
    assert.same({ "a", "c" }, finished)
  end)

  it("does not start the items left once one has failed", function()
    local started = {}
    local n = flow.AsyncParallelBatchNode{ max_parallel = 1, prep = function() return { 1, 2, 3 } end,
                                           exec = function(i) started[#started + 1] = i; error("stop " .. i, 0) end }
    assert.mentions("item 1 of 3: exec failed after 1 attempt: stop 1", h.error_of(function() n:run() end))
    assert.same({ 1 }, started)
  end)

  it("retries and falls back per item, each with its own attempt count", function()
    local n = flow.AsyncParallelBatchNode{
      max_retries = 2, prep = function() return { 1, 2 } end,
      exec = function(i, attempt) if i == 2 and attempt == 1 then error("flaky") end; return i .. "@" .. attempt end,
      post = function(s, _, r) s.r = r end,
    }
    local _, s = n:run()
    assert.same({ "1@1", "2@2" }, s.r)
  end)

  it("starts two tasks, not one per item, when no item waits", function()
    local real, started = weft.go, 0
    weft.go = function(...) started = started + 1; return real(...) end
    local ok, err = pcall(function()
      local items = {}
      for i = 1, 100 do items[i] = i end
      local _, s = flow.AsyncParallelBatchNode{ prep = function() return items end, exec = function(i) return -i end,
                                                post = function(sh, _, r) sh.r = r end }:run()
      assert.equal(100, #s.r)
      assert.equal(-100, s.r[100])
    end)
    weft.go = real
    assert(ok, err)
    assert.equal(2, started)
  end)

  it("ParallelBatchNode (PocketFlow's JavaScript name) runs concurrently too", function()
    local b = barrier(2)
    local _, s = flow.ParallelBatchNode{ prep = function() return { "x", "y" } end,
                                         exec = function(v) b.pass(); return v end,
                                         post = function(sh, _, r) sh.r = r end }:run()
    assert.same({ "x", "y" }, s.r)
  end)

  it("runs its items concurrently inside a workflow executor", function()
    local b = barrier(3)
    local n = flow.AsyncParallelBatchNode{ name = "par", prep = function(s) return s.input end,
                                           exec = function(v) b.pass(); return v * 2 end,
                                           post = function(s, _, r) s.doubled = r end }
    local res = Flow{ name = "f", start = n }:as_workflow():run({ 1, 2, 3 })
    assert.equal("completed", res.status, res.error)
    assert.same({ 2, 4, 6 }, res.outputs[1].doubled)
    assert.equal(3, b.g.peak)
  end)

  it("rejects max_parallel on a kind that does not run items in parallel", function()
    assert.mentions("unknown field 'max_parallel'", h.error_of(flow.BatchNode, { max_parallel = 2 }))
    assert.mentions("max_parallel must be an integer >= 1",
                    h.error_of(flow.AsyncParallelBatchNode, { max_parallel = 0 }))
  end)
end)

describe("weft.flow.AsyncParallelBatchFlow", function()
  it("runs its params sets concurrently, each with its own params", function()
    local b = barrier(3)
    local summarize = Node{
      name = "summarize",
      prep = function(_, node) return node.params.file end,
      exec = function(file) b.pass(); return "summary of " .. file end,
      post = function(s, _, summary, node) s.summaries[node.params.file] = summary end,
    }
    local f = flow.AsyncParallelBatchFlow{
      name = "all", start = summarize,
      prep_async = function(s) local sets = {}; for i, f in ipairs(s.files) do sets[i] = { file = f } end; return sets end,
    }
    local _, s = f:run({ files = { "a", "b", "c" }, summaries = {} })
    assert.same({ a = "summary of a", b = "summary of b", c = "summary of c" }, s.summaries)
    assert.equal(3, b.g.peak)
  end)

  it("runs the same nested flow in concurrent branches (not 'inside itself')", function()
    local b = barrier(2)
    local inner = Flow{ name = "inner", start = Node{ exec = function() b.pass() end, prep = function() return 1 end,
                                                      post = function(s, _, _, node) s.n[#s.n + 1] = node.params.k end } }
    local _, s = flow.AsyncParallelBatchFlow{ start = inner, prep = function() return { { k = 1 }, { k = 2 } } end }
      :run({ n = {} })
    table.sort(s.n)
    assert.same({ 1, 2 }, s.n)
  end)

  it("names the params set whose run failed", function()
    local b = barrier(2)
    local n = Node{ name = "n", prep = function() return 1 end,
                    exec = function(_, _, node) b.pass(); if node.params.k == "bad" then error("refused", 0) end end }
    local f = flow.AsyncParallelBatchFlow{ name = "pf", start = n, prep = function() return { { k = "ok" }, { k = "bad" } } end }
    assert.equal("AsyncParallelBatchFlow 'pf': params set 2 of 2: Node 'n': exec failed after 1 attempt: refused",
                 h.error_of(function() f:run() end))
  end)

  it("publishes the flow_step events of every branch under as_executor", function()
    local b = barrier(2)
    local n = Node{ name = "n", prep = function() return 1 end, exec = function() b.pass() end }
    local f = flow.ParallelBatchFlow{ name = "pf", start = n, prep = function() return { {}, {} } end }
    local res = f:as_workflow():run({})
    assert.equal("completed", res.status, res.error)
    assert.equal(2, #h.filter(res.events, "custom", "pf"))
  end)
end)
