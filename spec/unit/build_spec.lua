-- spec/unit/build_spec.lua — defining executors and building workflows
-- (docs/api.md "Executors", "Workflows"): option validation, build-time
-- validation messages, references by object or id, and wf:describe().
local weft = require "weft"
local h = require "helpers"

local function noop() end

-- The error raised by fn, or nil.
local err_of = h.error_of

describe("weft.executor", function()
  it("returns an executor object with its id and the default kind", function()
    local ex = weft.executor("up", noop)
    assert.equal("up", ex.id)
    assert.equal("worker", ex.kind)
  end)

  it("accepts an options table with a kind", function()
    for _, kind in ipairs({ "worker", "validator", "orchestrator" }) do
      local ex = weft.executor("x", { kind = kind, handle = noop })
      assert.equal(kind, ex.kind)
    end
  end)

  it("accepts a full set of valid options", function()
    assert.has_no.errors(function()
      weft.executor("flaky", {
        kind = "worker", handle = noop,
        retry = { max_attempts = 3, backoff = 0.1, backoff_factor = 2, max_backoff = 30 },
        timeout = 5, on_error = "continue",
      })
    end)
  end)

  it("rejects a non-string or empty id", function()
    assert.is_string(err_of(weft.executor, 42, noop))
    assert.is_string(err_of(weft.executor, "", noop))
  end)

  it("rejects a missing handler, naming the executor", function()
    assert.mentions("executor 'x'", err_of(weft.executor, "x"))
    local err = err_of(weft.executor, "x", { kind = "worker" })
    assert.mentions("executor 'x'", err)
    assert.mentions("handle", err)
  end)

  describe("bad options", function()
    local cases = {
      { "an unknown kind", { kind = "boss" }, "kind" },
      { "a zero retry.max_attempts", { retry = { max_attempts = 0 } }, "retry.max_attempts" },
      { "a fractional retry.max_attempts", { retry = { max_attempts = 1.5 } }, "retry.max_attempts" },
      { "a string retry.max_attempts", { retry = { max_attempts = "3" } }, "retry.max_attempts" },
      { "a negative retry.backoff", { retry = { max_attempts = 2, backoff = -1 } }, "retry.backoff" },
      { "a non-number retry.backoff_factor", { retry = { max_attempts = 2, backoff_factor = "x" } },
        "retry.backoff_factor" },
      { "a negative retry.backoff_factor", { retry = { max_attempts = 2, backoff_factor = -1 } },
        "retry.backoff_factor" },
      { "a negative retry.max_backoff", { retry = { max_attempts = 2, max_backoff = -1 } },
        "retry.max_backoff" },
      { "a retry that is not a table", { retry = 3 }, "retry" },
      { "a negative timeout", { timeout = -1 }, "timeout" },
      { "a non-number timeout", { timeout = "soon" }, "timeout" },
      { "an unknown on_error", { on_error = "ignore" }, "on_error" },
      { "a non-callable handle", { handle = 42 }, "handle" },
    }
    for _, c in ipairs(cases) do
      it("rejects " .. c[1] .. ", naming the executor and the field", function()
        local opts = { handle = noop }
        for k, v in pairs(c[2]) do opts[k] = v end
        local err = err_of(weft.executor, "flaky", opts)
        assert.mentions("executor 'flaky'", err)
        assert.mentions(c[3], err)
      end)
    end

    it("uses the documented message for retry.max_attempts", function()
      local err = err_of(weft.executor, "flaky", { handle = noop, retry = { max_attempts = 0 } })
      assert.mentions("executor 'flaky': retry.max_attempts must be an integer >= 1", err)
    end)
  end)
end)

describe("workflow:build", function()
  local a, b
  before_each(function() a, b = h.idle("a", "b") end)

  it("rejects a workflow without a start executor", function()
    local err = err_of(function() return weft.workflow("w"):add(a):build() end)
    assert.mentions("workflow 'w': no start executor", err)
  end)

  it("rejects two executors with the same id", function()
    local x1, x2 = h.idle("x", "x")
    local err = err_of(function()
      return weft.workflow("w"):start(a):edge(a, x1):edge(a, x2):build()
    end)
    assert.mentions("duplicate executor id 'x'", err)
  end)

  it("accepts the same executor object referenced many times", function()
    assert.has_no.errors(function()
      weft.workflow("w"):start(a):add(a):add(b):edge(a, b):edge(a, b, { when = noop }):build()
    end)
  end)

  it("rejects an edge to an unknown executor id", function()
    local err = err_of(function() return weft.workflow("w"):start(a):edge(a, "zz"):build() end)
    assert.mentions("edge 'a -> zz': unknown executor 'zz'", err)
  end)

  it("rejects an edge from an unknown executor id", function()
    local err = err_of(function() return weft.workflow("w"):start(a):edge("zz", a):build() end)
    assert.mentions("unknown executor 'zz'", err)
  end)

  it("rejects an unknown start executor id", function()
    local err = err_of(function() return weft.workflow("w"):start("zz"):build() end)
    assert.mentions("unknown executor 'zz'", err)
  end)

  it("rejects a switch case to an unknown executor id", function()
    local err = err_of(function()
      return weft.workflow("w"):start(a):switch(a, { { when = noop, to = "zz" } }):build()
    end)
    assert.mentions("unknown executor 'zz'", err)
    assert.mentions("'a", err)
  end)

  it("rejects a switch default that is an unknown executor id", function()
    local err = err_of(function()
      return weft.workflow("w"):start(a):switch(a, { { when = noop, to = b }, { default = "zz" } }):build()
    end)
    assert.mentions("unknown executor 'zz'", err)
  end)

  it("rejects a fan-out target that is an unknown executor id", function()
    local err = err_of(function() return weft.workflow("w"):start(a):fan_out(a, { b, "zz" }):build() end)
    assert.mentions("unknown executor 'zz'", err)
    assert.mentions("'a", err)
  end)

  it("rejects a fan-in source that is an unknown executor id", function()
    local err = err_of(function()
      return weft.workflow("w"):start(a):edge(a, b):fan_in({ b, "zz" }, a):build()
    end)
    assert.mentions("unknown executor 'zz'", err)
  end)

  it("rejects a fan-in target that is an unknown executor id", function()
    local err = err_of(function() return weft.workflow("w"):start(a):fan_in({ a }, "zz"):build() end)
    assert.mentions("unknown executor 'zz'", err)
  end)

  it("rejects a non-callable when on an edge, naming the edge", function()
    local err = err_of(function() return weft.workflow("w"):start(a):edge(a, b, { when = true }):build() end)
    assert.mentions("edge 'a -> b': when must be callable", err)
  end)

  it("rejects a non-callable when in a switch case", function()
    local err = err_of(function()
      return weft.workflow("w"):start(a):switch(a, { { when = "yes", to = b } }):build()
    end)
    assert.mentions("when must be callable", err)
    assert.mentions("'a", err)
  end)

  it("rejects a non-callable select, naming the fan-out", function()
    local err = err_of(function()
      return weft.workflow("w"):start(a):fan_out(a, { b }, { select = {} }):build()
    end)
    assert.mentions("fan_out from 'a': select must be callable", err)
  end)

  it("accepts callable tables as when and select", function()
    local callable = setmetatable({}, { __call = function() return true end })
    local c = h.idle("c")
    assert.has_no.errors(function()
      weft.workflow("w"):start(a):edge(a, b, { when = callable })
        :fan_out(a, { c }, { select = callable }):build()
    end)
  end)

  it("rejects executors unreachable from the start, naming them", function()
    local x, y = h.idle("x", "y")
    local err = err_of(function()
      return weft.workflow("w"):start(a):edge(a, b):edge(x, y):build()
    end)
    assert.mentions("executors unreachable from start 'a': ", err)
    assert.mentions("'x'", err)
    assert.mentions("'y'", err)
    assert.is_nil(err:find("'b'", 1, true))
  end)

  it("names an added executor without edges as unreachable", function()
    local lonely = weft.executor("lonely", noop)
    local err = err_of(function() return weft.workflow("w"):start(a):edge(a, b):add(lonely):build() end)
    assert.mentions("executors unreachable from start 'a': 'lonely'", err)
  end)

  it("counts executors reached through switches, fan-outs and fan-ins as reachable", function()
    local c, d, e, f = h.idle("c", "d", "e", "f")
    assert.has_no.errors(function()
      weft.workflow("w"):start(a)
        :switch(a, { { when = noop, to = b }, { default = c } })
        :fan_out(b, { d, e }, { select = function() return { 1 } end })
        :fan_in({ d, e }, f)
        :build()
    end)
  end)
end)

describe("executor references", function()
  it("adds executors referenced by object automatically", function()
    local a = h.forward("a")
    local b = h.output("b")
    local res = weft.workflow("auto"):start(a):edge(a, b):build():run("x")
    assert.same({ "x" }, res.outputs)
  end)

  it("accepts ids of executors known to the builder everywhere", function()
    local a = h.forward("a")
    local b, c, d = h.forward("b"), h.forward("c"), h.output("d")
    local res = weft.workflow("ids"):add(a):add(b):add(c):add(d)
      :start("a")
      :switch("a", { { when = function(m) return m == "x" end, to = "b" }, { default = "c" } })
      :fan_out("b", { "d" })
      :edge("c", "d")
      :build():run("x")
    assert.equal("completed", res.status)
    assert.same({ "x" }, res.outputs)
  end)
end)

describe("wf:describe", function()
  local function build()
    local f = function() return true end
    local a = weft.executor("a", noop)
    local b = weft.executor("b", noop)
    local c = weft.executor("c", { kind = "validator", handle = noop })
    local d = weft.executor("d", noop)
    local e = weft.executor("e", { kind = "orchestrator", handle = noop })
    local g = weft.executor("g", noop)
    local k = weft.executor("k", noop)
    return weft.workflow("shape")
      :start(a)
      :edge(a, b)
      :edge(a, c, { when = f, name = "is_big" })
      :switch(b, { { when = f, to = d, name = "pos" }, { when = f, to = e }, { default = g } })
      :fan_out(c, { d, e }, { select = function() return { 1 } end })
      :fan_out(g, { k })
      :fan_in({ d, e }, k)
      :build()
  end

  it("gives the name and the start id", function()
    local shape = build():describe()
    assert.equal("shape", shape.name)
    assert.equal("a", shape.start)
  end)

  it("lists executors with their kinds in graph order", function()
    assert.same({
      { id = "a", kind = "worker" },
      { id = "b", kind = "worker" },
      { id = "c", kind = "validator" },
      { id = "d", kind = "worker" },
      { id = "e", kind = "orchestrator" },
      { id = "g", kind = "worker" },
      { id = "k", kind = "worker" },
    }, build():describe().executors)
  end)

  it("lists edges of every kind in definition order", function()
    assert.same({
      { kind = "direct", from = { "a" }, to = { "b" } },
      { kind = "conditional", from = { "a" }, to = { "c" }, name = "is_big" },
      { kind = "switch", from = { "b" }, to = { "d", "e", "g" },
        cases = { { to = "d", name = "pos" }, { to = "e" } }, default = "g" },
      { kind = "fan_out", from = { "c" }, to = { "d", "e" }, select = true },
      { kind = "fan_out", from = { "g" }, to = { "k" } },
      { kind = "fan_in", from = { "d", "e" }, to = { "k" } },
    }, build():describe().edges)
  end)

  it("returns plain data that serialises to JSON", function()
    assert.is_nil(weft.json.check(build():describe()))
  end)
end)
