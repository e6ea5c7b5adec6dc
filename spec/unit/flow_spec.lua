-- spec/unit/flow_spec.lua — weft.flow: PocketFlow-style nodes (prep, exec
-- with retries and fallback, post -> action), batch nodes, flows with
-- action successors, nested flows, the step guard, and flows as workflow
-- executors.
local weft = require "weft"
local flow = require "weft.flow"
local h = require "helpers"

local Node, BatchNode, Flow = flow.Node, flow.BatchNode, flow.Flow

-- Replace weft.sleep while fn runs; returns the list of requested delays.
local function with_fake_sleep(fn)
  local slept, real = {}, weft.sleep
  weft.sleep = function(s) slept[#slept + 1] = s end
  local ok, err = pcall(fn)
  weft.sleep = real
  if not ok then error(err, 0) end
  return slept
end

describe("weft.flow.Node", function()
  it("runs prep, exec and post in order and passes each result on", function()
    local calls = {}
    local n = Node{
      name = "double",
      prep = function(shared) calls[#calls + 1] = "prep"; return shared.x end,
      exec = function(x) calls[#calls + 1] = "exec"; return x * 2 end,
      post = function(shared, p, e)
        calls[#calls + 1] = "post"
        shared.p, shared.y = p, e
        return "done"
      end,
    }
    local action, shared = n:run({ x = 21 })
    assert.equal("done", action)
    assert.same({ x = 21, p = 21, y = 42 }, shared)
    assert.same({ "prep", "exec", "post" }, calls)
  end)

  it("returns the default action when post returns nil, and starts from an empty shared table", function()
    local action, shared = Node{ post = function(s) s.seen = true end }:run()
    assert.equal("default", action)
    assert.same({ seen = true }, shared)
  end)

  it("retries exec up to max_retries attempts, passing the attempt number", function()
    local attempts = {}
    local n = Node{
      max_retries = 3,
      exec = function(_, attempt)
        attempts[#attempts + 1] = attempt
        if attempt < 3 then error("flaky") end
        return "ok on " .. attempt
      end,
      post = function(s, _, e) s.result = e end,
    }
    local _, shared = n:run()
    assert.same({ 1, 2, 3 }, attempts)
    assert.equal("ok on 3", shared.result)
  end)

  it("sleeps `wait` seconds between attempts, not after the last one", function()
    local n = Node{ max_retries = 3, wait = 0.25, exec = function() error("down") end,
                    exec_fallback = function() return "fallback" end }
    local slept = with_fake_sleep(function() n:run() end)
    assert.same({ 0.25, 0.25 }, slept)
  end)

  it("does not sleep when wait is 0", function()
    local n = Node{ max_retries = 2, exec = function() error("down") end,
                    exec_fallback = function() return 1 end }
    assert.same({}, with_fake_sleep(function() n:run() end))
  end)

  it("hands the prep result and the last error to exec_fallback, whose result goes to post", function()
    local got
    local n = Node{
      max_retries = 2,
      prep = function() return "input" end,
      exec = function(_, attempt) error("attempt " .. attempt .. " failed", 0) end,
      exec_fallback = function(p, err) got = { p, err }; return "fallback result" end,
      post = function(s, _, e) s.e = e end,
    }
    local _, shared = n:run()
    assert.same({ "input", "attempt 2 failed" }, got)
    assert.equal("fallback result", shared.e)
  end)

  it("raises the last exec error naming the node and the attempts when there is no fallback", function()
    local n = Node{ name = "fetch", max_retries = 2, exec = function() error("no route to host", 0) end }
    local err = h.error_of(function() n:run() end)
    assert.equal("Node 'fetch': exec failed after 2 attempts: no route to host", err)
  end)

  it("raises a table error from exec unchanged", function()
    local e = { code = 42 }
    local n = Node{ exec = function() error(e) end }
    local ok, got = pcall(n.run, n)
    assert.is_false(ok)
    assert.equal(e, got)
  end)

  it("does not call post when exec fails", function()
    local posted = false
    local n = Node{ exec = function() error("x") end, post = function() posted = true end }
    assert.is_not_nil(h.error_of(function() n:run() end))
    assert.is_false(posted)
  end)

  it("rejects a post that returns something other than an action string", function()
    local n = Node{ name = "bad", post = function() return 3 end }
    assert.equal("Node 'bad': post must return an action string or nil, got number",
                 h.error_of(function() n:run() end))
    local e = Node{ name = "empty", post = function() return "" end }
    assert.mentions("got an empty string", h.error_of(function() e:run() end))
  end)

  describe("construction", function()
    it("rejects unknown fields, naming them", function()
      assert.mentions("Node 'x': unknown field 'max_retry'",
                      h.error_of(Node, { name = "x", max_retry = 3 }))
    end)

    it("rejects a max_retries below 1 or fractional", function()
      assert.mentions("Node 'x': max_retries must be an integer >= 1", h.error_of(Node, { name = "x", max_retries = 0 }))
      assert.mentions("max_retries must be an integer >= 1", h.error_of(Node, { max_retries = 1.5 }))
    end)

    it("rejects a negative or non-numeric wait", function()
      assert.mentions("Node 'x': wait must be a number of seconds >= 0", h.error_of(Node, { name = "x", wait = -1 }))
      assert.mentions("wait must be", h.error_of(Node, { wait = "1" }))
    end)

    it("rejects phases that are not functions", function()
      assert.mentions("Node 'x': exec must be a function", h.error_of(Node, { name = "x", exec = "go" }))
      assert.mentions("exec_fallback must be a function", h.error_of(Node, { exec_fallback = 1 }))
    end)

    it("rejects a non-table spec and a bad name", function()
      assert.mentions("weft.flow.Node: expects a table of fields, got string", h.error_of(Node, "x"))
      assert.mentions("name must be a non-empty string", h.error_of(Node, { name = "" }))
    end)

    it("reports misuse at the caller's line", function()
      local err = h.error_of(function() Node{ max_retries = 0 } end)
      assert.mentions("flow_spec.lua:", err)
    end)
  end)

  describe("successors", function()
    it("next returns its argument so that calls chain", function()
      local a, b, c = Node{}, Node{}, Node{}
      assert.equal(c, a:next(b):next(c))
      assert.equal(b, a.successors.default)
      assert.equal(c, b.successors.default)
    end)

    it("on sets the successor of a named action", function()
      local a, b = Node{}, Node{}
      assert.equal(b, a:on("approve", b))
      assert.equal(b, a.successors.approve)
      assert.equal(b, Node{}:next(b, "x"))
    end)

    it("rejects a successor that is not a node", function()
      local a = Node{ name = "a" }
      assert.mentions("Node 'a': the successor of action 'go' must be a node, got table",
                      h.error_of(function() a:on("go", {}) end))
      assert.mentions("on expects an action string", h.error_of(function() a:on(nil, a) end))
    end)

    it("rejects a second, different successor for the same action", function()
      local a, b, c = Node{ name = "a" }, Node{ name = "b" }, Node{ name = "c" }
      a:on("go", b)
      a:on("go", b) -- the same one again is fine
      assert.mentions("Node 'a': action 'go' already leads to Node 'b'",
                      h.error_of(function() a:on("go", c) end))
    end)
  end)
end)

describe("weft.flow.BatchNode", function()
  it("runs exec once per item and hands the list of results to post", function()
    local n = BatchNode{
      prep = function(s) return s.words end,
      exec = function(w) return w:upper() end,
      post = function(s, items, results) s.n, s.out = #items, results end,
    }
    local _, shared = n:run({ words = { "a", "bc", "def" } })
    assert.same({ "A", "BC", "DEF" }, shared.out)
    assert.equal(3, shared.n)
  end)

  it("retries and falls back per item", function()
    local tries = {}
    local n = BatchNode{
      max_retries = 2,
      prep = function() return { 1, 2, 3 } end,
      exec = function(i, attempt)
        tries[#tries + 1] = i .. "/" .. attempt
        if i == 2 then error("two is bad", 0) end
        if i == 3 and attempt == 1 then error("flaky", 0) end
        return i * 10
      end,
      exec_fallback = function(i, err) return "fallback " .. i .. ": " .. err end,
      post = function(s, _, r) s.r = r end,
    }
    local _, shared = n:run()
    assert.same({ 10, "fallback 2: two is bad", 30 }, shared.r)
    assert.same({ "1/1", "2/1", "2/2", "3/1", "3/2" }, tries)
  end)

  it("treats a nil prep result as no items", function()
    local calls = 0
    local n = BatchNode{ exec = function() calls = calls + 1 end,
                         post = function(s, _, r) s.r = r end }
    local _, shared = n:run()
    assert.equal(0, calls)
    assert.same({}, shared.r)
    assert.equal("[]", weft.json.encode(shared.r))
  end)

  it("rejects a prep result that is not a list", function()
    local n = BatchNode{ name = "b", prep = function() return "abc" end }
    assert.equal("BatchNode 'b': prep must return a list of items, got string", h.error_of(function() n:run() end))
  end)
end)

describe("weft.flow.Flow", function()
  -- A node that appends its name to shared.trace and returns actions[i] on
  -- its i-th run (the last one repeats).
  local function step(name, actions)
    local runs = 0
    return Node{
      name = name,
      post = function(s)
        runs = runs + 1
        s.trace = s.trace or {}
        s.trace[#s.trace + 1] = name
        if actions then return actions[math.min(runs, #actions)] end
      end,
    }
  end

  it("follows default successors until a node has none", function()
    local a, b, c = step("a"), step("b"), step("c")
    a:next(b):next(c)
    local action, shared = Flow{ start = a }:run()
    assert.equal("default", action)
    assert.same({ "a", "b", "c" }, shared.trace)
  end)

  it("follows the successor of the action post returns, looping until another action", function()
    local draft = step("draft")
    local review = step("review", { "revise", "revise", "approve" })
    local publish = step("publish")
    draft:next(review)
    review:on("revise", draft)
    review:on("approve", publish)
    local action, shared = Flow{ name = "article", start = draft }:run()
    assert.equal("default", action)
    assert.same({ "draft", "review", "draft", "review", "draft", "review", "publish" }, shared.trace)
  end)

  it("ends with a warning naming node and action when the action has no successor", function()
    local a, b = step("a", { "maybe" }), step("b")
    a:on("yes", b)
    a:on("no", b)
    local warnings = {}
    local action, shared = Flow{ name = "f", start = a }:run({}, { warn = function(m) warnings[#warnings + 1] = m end })
    assert.equal("maybe", action)
    assert.same({ "a" }, shared.trace)
    assert.same({ "flow 'f' ends: Node 'a' returned action 'maybe', not found in ['yes', 'no']" }, warnings)
  end)

  it("ends silently when the last node has no successors at all", function()
    local warned = false
    local _, shared = Flow{ start = step("only", { "anything" }) }:run({}, { warn = function() warned = true end })
    assert.same({ "only" }, shared.trace)
    assert.is_false(warned)
  end)

  it("raises naming node and action for an unmatched action when unmatched = 'error'", function()
    local a = step("a", { "maybe" })
    a:on("yes", step("b"))
    local f = Flow{ name = "strict", start = a, unmatched = "error" }
    assert.equal("flow 'strict': Node 'a' returned action 'maybe', which has no successor (actions: 'yes')",
                 h.error_of(function() f:run() end))
  end)

  it("stops a loop without an exit at max_steps, naming the flow and the node", function()
    local a, b = step("a"), step("b")
    a:next(b):next(a)
    local f = Flow{ name = "forever", start = a, max_steps = 5 }
    local shared = {}
    local err = h.error_of(function() f:run(shared) end)
    assert.equal("flow 'forever': exceeded max_steps (5) at Node 'b' after action 'default' (a loop without an exit?)", err)
    assert.same({ "a", "b", "a", "b", "a" }, shared.trace)
  end)

  it("bounds loops at 1000 steps by default", function()
    local a = step("a")
    a:next(a)
    assert.mentions("exceeded max_steps (1000)", h.error_of(function() Flow{ start = a }:run() end))
  end)

  it("runs a flow as a node of another flow, its last action choosing the successor", function()
    local check = step("check", { "bad" })
    local inner = Flow{ name = "inner", start = step("in1") }
    inner.start:next(check)
    local fix, ok = step("fix"), step("ok")
    inner:on("bad", fix)
    inner:on("good", ok)
    local outer = Flow{ name = "outer", start = step("first") }
    outer.start:next(inner)
    local steps = {}
    local action, shared = outer:run({}, { on_step = function(s)
      steps[#steps + 1] = s.flow .. ":" .. s.node .. ":" .. s.action .. ":" .. s.step
    end })
    assert.equal("default", action)
    assert.same({ "first", "in1", "check", "fix" }, shared.trace)
    assert.same({ "outer:first:default:1", "inner:in1:default:1", "inner:check:bad:2",
                  "outer:inner:bad:2", "outer:fix:default:3" }, steps)
  end)

  it("runs its own prep and post around its nodes; post chooses the flow's action", function()
    local f = Flow{
      start = step("a", { "x" }),
      prep = function(s) s.started = true; return "prep result" end,
      post = function(s, p, last) s.post = { p, last }; return "finished" end,
    }
    local action, shared = f:run()
    assert.equal("finished", action)
    assert.is_true(shared.started)
    assert.same({ "prep result", "x" }, shared.post)
  end)

  it("keeps no per-run state: the same flow runs again from its start", function()
    local n = 0
    local a = Node{ post = function(s) n = n + 1; s.n = n end }
    local f = Flow{ start = a }
    assert.equal(1, select(2, f:run()).n)
    assert.equal(2, select(2, f:run()).n)
  end)

  describe("construction", function()
    it("requires a start node", function()
      assert.mentions("Flow 'f': start must be a node (weft.flow.Node, BatchNode or Flow), got nothing",
                      h.error_of(Flow, { name = "f" }))
      assert.mentions("start must be a node", h.error_of(Flow, { start = {} }))
    end)

    it("rejects bad max_steps, unmatched and unknown fields", function()
      local a = Node{}
      assert.mentions("max_steps must be an integer >= 1", h.error_of(Flow, { start = a, max_steps = 0 }))
      assert.mentions("unmatched must be 'end' or 'error', got 'warn'", h.error_of(Flow, { start = a, unmatched = "warn" }))
      assert.mentions("unknown field 'exec'", h.error_of(Flow, { start = a, exec = function() end }))
    end)

    it("rejects a flow that would run inside itself", function()
      local a = Node{ name = "a" }
      local f = Flow{ name = "loop", start = a }
      a:next(f)
      assert.equal("flow 'loop': runs inside itself (a flow cannot be one of its own nodes)",
                   h.error_of(function() f:run() end))
    end)

    it("runs the same inner flow twice in a row", function()
      local inner = Flow{ name = "inner", start = step("x", { "again", "stop" }) }
      inner:on("again", inner)
      local warnings = {}
      local action, shared = Flow{ start = inner }:run({}, { warn = function(m) warnings[#warnings + 1] = m end })
      assert.equal("stop", action)
      assert.same({ "x", "x" }, shared.trace)
      assert.equal(1, #warnings)
    end)

    it("rejects run options that are not functions", function()
      local f = Flow{ start = Node{} }
      assert.mentions("run option warn must be a function", h.error_of(function() f:run({}, { warn = 1 }) end))
      assert.mentions("run options must be a table", h.error_of(function() f:run({}, 1) end))
    end)

    it("rejects a shared value that is not a table", function()
      assert.mentions("run expects a shared table, got string", h.error_of(function() Flow{ start = Node{} }:run("x") end))
    end)
  end)
end)

describe("flow:as_executor", function()
  -- A small flow: count the words of shared.input or shared.text, then
  -- tag the result "long" or "short".
  local function counting_flow()
    local count = Node{
      name = "count",
      prep = function(s) return s.text or s.input end,
      exec = function(text) weft.sleep(0); local n = 0; for _ in text:gmatch("%S+") do n = n + 1 end; return n end,
      post = function(s, _, n) s.words = n; return n > 3 and "long" or "short" end,
    }
    local long = Node{ name = "long", post = function(s) s.tag = "long" end }
    local short = Node{ name = "short", post = function(s) s.tag = "short" end }
    count:on("long", long)
    count:on("short", short)
    return Flow{ name = "counting", start = count }
  end

  it("runs the flow on a copy of a table input, sends the final shared table and outputs it", function()
    local f = counting_flow()
    local sink, seen = h.recorder("sink")
    local wf = weft.workflow("w"):start(f:as_executor("flow")):edge("flow", sink):build()
    local input = { text = "one two three four five" }
    local res = wf:run(input)
    assert.equal("completed", res.status)
    assert.same({ { text = "one two three four five", words = 5, tag = "long" } }, res.outputs)
    assert.same(res.outputs, seen)
    assert.same({ text = "one two three four five" }, input)
  end)

  it("wraps any other input as {input = value}", function()
    local res = counting_flow():as_workflow():run("hi there")
    assert.same({ { input = "hi there", words = 2, tag = "short" } }, res.outputs)
    local kinds = Node{ post = function(s) s.kind = weft.json.is_array(s.input) and "list" or type(s.input) end }
    local res2 = Flow{ name = "kinds", start = kinds }:as_workflow("named"):run({ "a", "list" })
    assert.same({ { input = { "a", "list" }, kind = "list" } }, res2.outputs)
    assert.same({ { input = 7, kind = "number" } }, Flow{ start = kinds }:as_workflow():run(7).outputs)
  end)

  it("publishes one flow_step custom event per node run", function()
    local res = counting_flow():as_workflow():run("a b c d e")
    local steps = {}
    for _, ev in ipairs(h.filter(res.events, "custom", "counting")) do
      assert.equal("flow_step", ev.name)
      steps[#steps + 1] = ev.data
    end
    assert.same({ { flow = "counting", node = "count", action = "long", step = 1 },
                  { flow = "counting", node = "long", action = "default", step = 2 } }, steps)
  end)

  it("does not output the shared table with output = false", function()
    local f = counting_flow()
    local wf = weft.workflow("w"):start(f:as_executor("flow", { output = false }))
      :edge("flow", h.output("out")):build()
    local res = wf:run("x")
    assert.same({ { input = "x", words = 1, tag = "short" } }, res.outputs)
  end)

  it("reports an unmatched action as a warn log event", function()
    local a = Node{ name = "a", post = function() return "nope" end }
    a:on("yes", Node{})
    local res = Flow{ name = "f", start = a }:as_workflow():run("x")
    assert.equal("completed", res.status)
    local log = h.find(res.events, "log", "f")
    assert.same({ level = "warn", message = "flow 'f' ends: Node 'a' returned action 'nope', not found in ['yes']" }, log.data)
  end)

  it("fails the invocation with the node's error", function()
    local bad = Node{ name = "boom", exec = function() error("kaput", 0) end }
    local res = Flow{ name = "f", start = bad }:as_workflow():run("x")
    assert.equal("failed", res.status)
    assert.mentions("Node 'boom': exec failed after 1 attempt: kaput", res.error)
  end)

  it("runs the same flow in concurrent runs without mixing their shared tables", function()
    local f = counting_flow()
    local wf = f:as_workflow()
    local h1 = wf:spawn("one two")
    local h2 = wf:spawn("one two three four")
    local r = weft.wait_all{ h1, h2 }
    assert.same({ input = "one two", words = 2, tag = "short" }, r[1].outputs[1])
    assert.same({ input = "one two three four", words = 4, tag = "long" }, r[2].outputs[1])
  end)

  it("retries with a real wait inside an executor (weft.sleep yields)", function()
    local n = Node{ name = "n", max_retries = 2, wait = 0.001,
                    exec = function(_, attempt) if attempt == 1 then error("first") end; return attempt end,
                    post = function(s, _, e) s.attempts = e end }
    local res = Flow{ name = "f", start = n }:as_workflow():run({})
    assert.same({ { attempts = 2 } }, res.outputs)
  end)

  it("runs agents in its nodes, in the seed's research -> write -> review loop", function()
    local llm = require "weft.llm"
    local agents = require "weft.agents"
    llm.mock.register("flow_spec_review", {
      { match = "v2", reply = "APPROVED" },
      { reply = "REVISE: more" },
    })
    local writer = agents.writer{ model = "mock:echo" }
    local reviewer = agents.reviewer{ model = "mock:flow_spec_review" }
    local write = Node{
      name = "write",
      prep = function(s) s.version = (s.version or 0) + 1; return "v" .. s.version .. " of " .. s.input end,
      exec = function(prompt) return assert(writer:run(prompt)).text end,
      post = function(s, _, text) s.draft = text end,
    }
    local review = Node{
      name = "review",
      prep = function(s) return s.draft end,
      exec = function(draft) return assert(reviewer:run(draft)).text end,
      post = function(s, _, text) return (agents.verdict(text)) end,
    }
    write:next(review)
    review:on("revise", write)
    local res = Flow{ name = "article", start = write }:as_workflow():run("tides")
    assert.equal("completed", res.status, res.error)
    assert.same({ { input = "tides", version = 2, draft = "echo: v2 of tides" } }, res.outputs)
    local actions = {}
    for _, ev in ipairs(h.filter(res.events, "custom")) do actions[#actions + 1] = ev.data.node .. ":" .. ev.data.action end
    assert.same({ "write:default", "review:revise", "write:default", "review:approve" }, actions)
    llm.mock.register("flow_spec_review", nil)
  end)

  it("rejects a bad id and calls on something that is not a flow", function()
    local f = counting_flow()
    assert.mentions("as_executor expects an executor id", h.error_of(function() f:as_executor("") end))
    assert.mentions("call it with ':' on a flow", h.error_of(function() f.as_executor("x") end))
  end)
end)

describe("weft.flow predicates", function()
  it("tells nodes and flows apart", function()
    local n = Node{}
    local f = Flow{ start = n }
    assert.is_true(flow.is_node(n))
    assert.is_true(flow.is_node(BatchNode{}))
    assert.is_true(flow.is_node(f))
    assert.is_false(flow.is_flow(n))
    assert.is_true(flow.is_flow(f))
    assert.is_false(flow.is_node({}))
  end)
end)
