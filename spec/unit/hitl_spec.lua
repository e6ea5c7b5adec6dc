-- Human in the loop, in process: ctx:request_info suspends the invocation,
-- the run goes idle, wf:respond resumes it.
local weft = require "weft"

-- A workflow: "ask" asks one question per message and sends the answer to
-- "fin", which outputs it.
local function asking(opts)
  local ask = weft.executor("ask", {
    timeout = opts and opts.timeout,
    handle = function(m, ctx)
      local a = ctx:request_info({ question = "approve " .. m .. "?" })
      ctx:send(a)
    end,
  })
  local fin = weft.executor("fin", function(m, ctx) ctx:yield_output(m) end)
  return weft.workflow("hitl"):start(ask):edge(ask, fin):build()
end

-- The asking workflow spawned on input and waited for until it is idle on
-- its request: the workflow, the run's handle and its result.
local function asked(input)
  local wf = asking()
  local h = wf:spawn(input)
  return wf, h, h:wait()
end

describe("ctx:request_info", function()
  it("makes the run idle with the outstanding request", function()
    local wf, h, r = asked("deploy")
    assert.equal("idle", r.status)
    assert.equal("idle", h:status())
    assert.same({ { request_id = "req-0-0-1-1", executor_id = "ask", superstep = 0,
                    request = { question = "approve deploy?" } } }, r.requests)
    local types = {}
    for _, ev in ipairs(r.events) do types[#types + 1] = ev.type end
    assert.same({ "workflow_started", "superstep_started", "executor_invoked", "request_info",
                  "workflow_idle" }, types)
    assert.equal("req-0-0-1-1", r.events[4].data.request_id)
    h:cancel()
  end)

  it("resumes the invocation with the response", function()
    local wf, h, r = asked("deploy")
    assert.is_true(wf:respond(h.id, r.requests[1].request_id, { ok = true }))
    local r2 = h:wait()
    assert.equal("completed", r2.status)
    assert.same({ { ok = true } }, r2.outputs)
  end)

  it("rejects an unknown request id and an unknown run", function()
    local wf, h = asked("x")
    local ok, err = wf:respond(h.id, "req-9-9-9-9", 1)
    assert.is_nil(ok)
    assert.equal("run " .. h.id .. " has no outstanding request 'req-9-9-9-9'", err)
    ok, err = wf:respond("run-nope", "req-0-0-1-1", 1)
    assert.is_nil(ok)
    assert.equal("workflow 'hitl' has no run 'run-nope' in this process", err)
    h:cancel()
  end)

  it("rejects a response that is not JSON-serialisable", function()
    local wf, h, r = asked("x")
    assert.has_error(function() wf:respond(h.id, r.requests[1].request_id, print) end)
    h:cancel()
  end)

  it("stays idle until every waiting invocation is answered", function()
    local src = weft.executor("src", function(m, ctx) ctx:send("a"); ctx:send("b") end)
    local ask = weft.executor("ask", function(m, ctx) ctx:send(ctx:request_info(m)) end)
    local fin = weft.executor("fin", function(m, ctx) ctx:yield_output(m) end)
    local wf = weft.workflow("two"):start(src):edge(src, ask):edge(ask, fin):build()
    local h = wf:spawn(0)
    local r = h:wait()
    assert.equal("idle", r.status)
    assert.equal(2, #r.requests)
    assert.is_true(h:respond(r.requests[2].request_id, "B"))
    r = h:wait()
    assert.equal("idle", r.status)
    assert.same({ "a" }, { r.requests[1].request })
    assert.is_true(h:respond(r.requests[1].request_id, "A"))
    r = h:wait()
    assert.equal("completed", r.status)
    assert.same({ "A", "B" }, r.outputs)
  end)

  it("keeps every outstanding request's fields when others are answered in any order", function()
    local src = weft.executor("src", function(m, ctx) ctx:send("a"); ctx:send("b"); ctx:send("c") end)
    local ask = weft.executor("ask", function(m, ctx) ctx:send(ctx:request_info({ q = m })) end)
    local fin = weft.executor("fin", function(m, ctx) ctx:yield_output(m) end)
    local wf = weft.workflow("three"):start(src):edge(src, ask):edge(ask, fin):build()
    local h = wf:spawn(0)
    local r = h:wait()
    local function asked(res)
      local out = {}
      for _, q in ipairs(res.requests) do
        assert.equal("ask", q.executor_id)
        assert.equal(1, q.superstep) -- src ran in superstep 0
        out[#out + 1] = q.request.q
      end
      return out
    end
    assert.same({ "a", "b", "c" }, asked(r))
    local ids = { r.requests[1].request_id, r.requests[2].request_id, r.requests[3].request_id }
    assert.is_true(h:respond(ids[2], "B"))
    local ok, err = h:respond(ids[2], "again")
    assert.is_nil(ok)
    assert.equal("run " .. h.id .. " has no outstanding request '" .. ids[2] .. "'", err)
    r = h:wait()
    assert.same({ "a", "c" }, asked(r))
    assert.is_true(h:respond(ids[1], "A"))
    r = h:wait()
    assert.same({ "c" }, asked(r))
    assert.equal(ids[3], r.requests[1].request_id)
    assert.is_true(h:respond(ids[3], "C"))
    r = h:wait()
    assert.equal("completed", r.status)
    table.sort(r.outputs)
    assert.same({ "A", "B", "C" }, r.outputs)
    assert.same({}, h:requests())
  end)

  it("does not time out while waiting on a human", function()
    local wf = asking({ timeout = 0.01 })
    local h = wf:spawn("x")
    local r = h:wait()
    weft.sleep(0.03)
    assert.equal("idle", h:status())
    assert.is_true(h:respond(r.requests[1].request_id, "late"))
    assert.same({ "late" }, h:wait().outputs)
  end)

  it("lets an idle run be cancelled", function()
    local wf, h = asked("x")
    h:cancel()
    local r = h:wait()
    assert.equal("cancelled", r.status)
    assert.same({}, h:requests())
  end)

  it("continues a durable run answered in process, journaling the calls before and after the request", function()
    local llm = require "weft.llm"
    local function ask(text)
      return assert(llm.chat{ model = "mock:echo", messages = { { role = "user", content = text } } }).text
    end
    local ex = weft.executor("ask", function(m, ctx)
      local before = ask("before " .. m)
      local answer = ctx:request_info({ question = before })
      ctx:yield_output({ before, answer, ask("after " .. answer) })
    end)
    local store = weft.store.open("memory:")
    local h = weft.workflow("journaled"):start(ex):build():spawn("x", { store = store, run_id = "j1" })
    local r = h:wait()
    assert.equal("idle", r.status)
    assert.same({ question = "echo: before x" }, r.requests[1].request)
    assert.is_true(h:respond(r.requests[1].request_id, "yes"))
    local done = h:wait()
    assert.equal("completed", done.status)
    assert.same({ { "echo: before x", "yes", "echo: after yes" } }, done.outputs)
    local keys = {}
    for _, row in ipairs(assert(store:scan("journal", "j1/"))) do
      keys[#keys + 1] = row.key:match("/(%d+)$") .. " " .. weft.json.decode(row.value).what
    end
    assert.same({ "0001 mock:echo", "0002 mock:echo" }, keys)
  end)

  for _, durable in ipairs({ false, true }) do
    it("raises a ctx method's error at the handler's line" .. (durable and " in a durable run" or ""), function()
      local line
      local ex = weft.executor("bad", function(_, ctx)
        line = debug.getinfo(1, "l").currentline + 1
        ctx:send(nil)
      end)
      local r = weft.workflow("bad"):start(ex):build():run(1, durable and { store = "memory:" } or nil)
      assert.equal("failed", r.status)
      assert.truthy(r.error:find("hitl_spec.lua:" .. line .. ": ctx:send: message is nil", 1, true), r.error)
      local ex2 = weft.executor("bad2", function(_, ctx)
        line = debug.getinfo(1, "l").currentline + 1
        ctx.yield_output("x")
      end)
      r = weft.workflow("bad2"):start(ex2):build():run(1, durable and { store = "memory:" } or nil)
      assert.truthy(r.error:find("hitl_spec.lua:" .. line .. ": ctx:yield_output: called as ctx.yield_output",
        1, true), r.error)
    end)
  end

  it("refuses a request of nil or of a function", function()
    local ex = weft.executor("bad", function(m, ctx) ctx:request_info(print) end)
    local r = weft.workflow("bad"):start(ex):build():run(1)
    assert.equal("failed", r.status)
    assert.truthy(r.error:find("ctx:request_info: request: function is not JSON-serialisable", 1, true))
  end)
end)
