-- spec/unit/core_sched_spec.lua — the C module weft.core.sched is one Lua
-- module although its functions come from several C files (lua_sched.c
-- opens it from lua_graph.c, lua_run.c, lua_event.c, lua_snapshot.c,
-- lua_ctx.c and lua_requests.c): exactly these names, the same table from
-- require "weft.core", and the graph and run userdata keep their
-- finalizers. A file whose opener is not called, or a name that leaks in
-- or goes missing, fails here.
local sched = require "weft.core.sched"

-- Every name of the module, by the file that registers it.
local NAMES = {
  graph = { "graph_new", "graph_add_exec", "graph_set_start", "graph_add_edge",
    "graph_add_reducer", "graph_finalize", "graph_edge_label" },
  run = { "run_new", "run_wait", "run_info", "run_status", "run_outputs", "run_state",
    "run_cancel", "run_fail", "end_done", "swap_graph", "LIMITS", "LIMIT_DEFAULTS" },
  event = { "run_events" },
  snapshot = { "snapshot", "checkpoint_done", "remaining" },
  ctx = { "send", "output", "emit", "emit_live", "log", "set_state", "get_state", "running",
    "previous_errors", "current", "set_worker" },
  requests = { "request_wait", "request_answer" },
  sched = { "DONE" },
}

local keys = require("helpers").keys

describe("weft.core.sched", function()
  it("holds exactly the names of its six concept files and the DONE sentinel", function()
    local want = {}
    for _, names in pairs(NAMES) do
      for _, n in ipairs(names) do want[#want + 1] = n end
    end
    table.sort(want)
    assert.same(want, keys(sched))
  end)

  it("has a function for each primitive and a light userdata for DONE", function()
    for file, names in pairs(NAMES) do
      for _, n in ipairs(names) do
        local want = (n == "DONE" and "userdata") or (n:match("^LIMIT") and "table") or "function"
        assert.equals(want, type(sched[n]), file .. ": " .. n)
      end
    end
  end)

  it("is the table require('weft.core').sched", function()
    assert.equals(sched, require("weft.core").sched)
  end)

  it("lists every limit in LIMITS with a positive default in LIMIT_DEFAULTS", function()
    assert.is_true(#sched.LIMITS > 0)
    for _, name in ipairs(sched.LIMITS) do
      assert.is_true(sched.LIMIT_DEFAULTS[name] > 0, name)
    end
    assert.equals(#sched.LIMITS, #keys(sched.LIMIT_DEFAULTS))
  end)

  it("gives graph and run userdata their finalizers", function()
    local g = sched.graph_new("core_sched_spec")
    local gmt = getmetatable(g)
    assert.equals("function", type(gmt and gmt.__gc))
    local reg = debug.getregistry()
    assert.equals(gmt, reg["weft.graph"])
    assert.equals("function", type(reg["weft.run"] and reg["weft.run"].__gc))
  end)

  it("runs a graph built, started and read through the module's primitives", function()
    local weft = require "weft"
    local a = weft.executor("a", function(msg, ctx)
      ctx:set_state("k", msg)
      ctx:emit("seen", msg)
      ctx:send(msg .. "!")
    end)
    local b = weft.executor("b", function(msg, ctx)
      ctx:yield_output(msg .. ctx:get_state("k"))
    end)
    local res = weft.workflow("core_sched_spec"):start(a):edge(a, b):build():run("x")
    assert.equals("completed", res.status)
    assert.same({ "x!x" }, res.outputs)
    assert.same({ k = "x" }, res.state)
    local custom = {}
    for _, ev in ipairs(res.events) do
      if ev.type == "custom" then custom[#custom + 1] = { ev.executor_id, ev.name, ev.data } end
    end
    assert.same({ { "a", "seen", "x" } }, custom)
  end)

  it("run_new reads only the options given and refuses an unknown one", function()
    local weft = require "weft"
    local wf = weft.workflow("opts"):start(weft.executor("a", function(m, ctx) ctx:yield_output(m) end)):build()
    local sched = require "weft.core.sched"
    local ok, err = pcall(sched.run_new, wf._graph, {}, "x", { max_superstep = 3 })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("run_new: unknown option 'max_superstep'", 1, true), err)
    -- no options at all (what a plain wf:run passes): every default
    local c = assert(sched.run_new(wf._graph, {}, "z", nil))
    assert.equals("userdata", type(c))
    assert.matches("^run%-%d+%-%x+$", (select(5, sched.run_info(c))))
    sched.run_cancel(c)
    assert.equals("completed", wf:run("z").status)
    -- every option the run module passes is known (and an id is kept)
    local res = wf:run("y", { run_id = "opts-1", max_supersteps = 2, max_concurrency = 1, events = false,
                              on_undelivered = "error", limits = { messages_per_invocation = 5 } })
    assert.equals("completed", res.status)
    assert.equals("opts-1", res.run_id)
  end)

  describe("request_answer", function()
    -- "ask" asks once and outputs the type and value of the answer.
    local function asking()
      local weft = require "weft"
      local ask = weft.executor("ask", function(_, ctx)
        local a = ctx:request_info({ q = 1 })
        ctx:yield_output({ type(a), a == nil and "none" or a })
      end)
      return weft.workflow("core_sched_ask"):start(ask):build()
    end

    it("resumes the asking invocation with the answer, nil included", function()
      for _, answer in ipairs({ "yes", false }) do
        local wf = asking()
        local h = wf:spawn("m")
        local r = h:wait()
        assert.is_true(wf:respond(h.id, r.requests[1].request_id, answer))
        assert.same({ { type(answer), answer } }, h:wait().outputs)
      end
      local wf = asking()
      local h = wf:spawn("m")
      local r = h:wait()
      assert.is_true(wf:respond(h.id, r.requests[1].request_id, nil))
      assert.same({ { "nil", "none" } }, h:wait().outputs)
    end)

    it("drops the answer of an invocation cancelled before it resumes", function()
      -- the answer is anchored until the resume; a cancel in between must
      -- release it (the ASan build aborts at exit on a leaked ref)
      local wf = asking()
      local h = wf:spawn("m")
      local r = h:wait()
      assert.is_true(wf:respond(h.id, r.requests[1].request_id, { big = "answer" }))
      h:cancel()
      local r2 = h:wait()
      assert.equals("cancelled", r2.status)
      assert.same({}, r2.outputs)
    end)

    it("returns nil and a message naming the invocation when none waits", function()
      local sched = require "weft.core.sched"
      local wf = asking()
      local h = wf:spawn("m")
      h:wait()
      local ok, err = sched.request_answer(h.c, 999, 1)
      assert.is_nil(ok)
      assert.equals("no invocation 999 waits on a request", err)
      h:cancel()
    end)
  end)
end)
