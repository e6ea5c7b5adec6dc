-- spec/integration/otel_spec.lua — traces of `weft run` over OTLP/HTTP,
-- received by spec/interop/otel/receiver.mjs, which decodes them with the
-- official OTLP definitions of @opentelemetry/otlp-transformer (JSON and
-- protobuf). The traced workflow (spec/interop/otel/workflow.lua) has an
-- agent as executor on the mock model with one tool call, and a nested
-- workflow; failing.lua retries and fails. Also: the spans arrive before
-- `weft run` exits, tracing off sends nothing, a dead collector does not
-- fail the run, and a protocol weft does not speak is refused.
local weft = require "weft"
local procs = require "support.procs"
local files = require "support.files"
local h = require "helpers"

local src = h.root ~= "" and h.root or "./"
local dir = src .. "spec/interop/otel"
local bin = procs.weft_bin()
local INPUT = 'call add {"a": 2, "b": 3}'

-- The variables of every traced run (set empty: none from the caller's
-- environment leaks in).
local CLEAN = {
  OTEL_EXPORTER_OTLP_ENDPOINT = "", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = "", OTEL_EXPORTER_OTLP_PROTOCOL = "",
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL = "", OTEL_EXPORTER_OTLP_HEADERS = "", OTEL_EXPORTER_OTLP_TRACES_HEADERS = "",
  OTEL_SDK_DISABLED = "", OTEL_TRACES_EXPORTER = "", OTEL_SERVICE_NAME = "", OTEL_RESOURCE_ATTRIBUTES = "",
  WEFT_MODEL = "",
}

local function env(t)
  local e = {}
  for k, v in pairs(CLEAN) do e[k] = v end
  for k, v in pairs(t or {}) do e[k] = v end
  return e
end

-- `weft run` of a fixture with env: exit status, stdout, stderr.
local function run(fixture, vars, input)
  return procs.run({ bin, "run", dir .. "/" .. fixture, "--input", input or INPUT, "--run-id", "otel-run-1" },
                   env(vars), 60)
end

describe("traces over OTLP/HTTP (official OTLP definitions) #http", function()
  local receiver, port, out

  setup(function()
    assert(files.slurp(dir .. "/node_modules/@opentelemetry/otlp-transformer/package.json"),
           "spec/interop/otel/node_modules is missing: run `npm ci` in spec/interop/otel (scripts/deps.sh does)")
    out = os.tmpname()
    receiver = procs.spawn({ "node", dir .. "/receiver.mjs", out })
    for _ = 1, 2000 do
      local s = files.slurp(receiver.out)
      port = s and tonumber(s:match("listening (%d+)"))
      if port then break end
      weft.sleep(0.005)
    end
    assert(port, "the OTLP receiver did not start: " .. tostring(files.slurp(receiver.err)))
  end)

  teardown(function()
    if receiver then procs.kill(receiver) end
    if out then os.remove(out) end
  end)

  before_each(function() files.write(out, "") end)

  -- The export requests recorded since the test began (decoded).
  local function requests()
    local list = {}
    for line in (files.read(out)):gmatch("[^\n]+") do list[#list + 1] = weft.json.decode(line) end
    return list
  end

  -- All spans of the recorded requests, with the resource of each.
  local function spans_of(reqs)
    local list = {}
    for _, r in ipairs(reqs) do
      assert.same({}, r.errors)
      for _, res in ipairs(r.resources) do
        for _, sc in ipairs(res.scopes) do
          assert.equal("weft", sc.name)
          for _, s in ipairs(sc.spans) do
            s.resource = res.attributes
            list[#list + 1] = s
          end
        end
      end
    end
    return list
  end

  -- The spans named name.
  local function named(spans, name)
    local l = {}
    for _, s in ipairs(spans) do if s.name == name then l[#l + 1] = s end end
    return l
  end

  local function one(spans, name)
    local l = named(spans, name)
    assert.equal(1, #l, "spans named '" .. name .. "'")
    return l[1]
  end

  -- Ids unique, one trace, every parent known, children inside parents.
  local function check_tree(spans)
    local by_id, roots = {}, {}
    for _, s in ipairs(spans) do
      assert.is_nil(by_id[s.spanId], "span id used twice: " .. s.spanId)
      by_id[s.spanId] = s
      assert.equal(spans[1].traceId, s.traceId)
      assert.is_true(#s["start"] == #s["end"] and s["start"] <= s["end"], s.name)
    end
    for _, s in ipairs(spans) do
      if s.parentSpanId == "" then
        roots[#roots + 1] = s
      else
        local p = by_id[s.parentSpanId]
        assert.truthy(p, "the parent of " .. s.name .. " is not in the trace")
        assert.is_true(p["start"] <= s["start"] and s["end"] <= p["end"], s.name .. " inside " .. p.name)
      end
    end
    assert.equal(1, #roots)
    return roots[1], by_id
  end

  for _, proto in ipairs({ "http/protobuf", "http/json" }) do
    it("exports the span tree of a run with an agent, a tool call and a nested workflow (" .. proto .. ")", function()
      local rc, stdout, stderr = run("workflow.lua", {
        OTEL_EXPORTER_OTLP_ENDPOINT = "http://127.0.0.1:" .. port, OTEL_EXPORTER_OTLP_PROTOCOL = proto,
        OTEL_SERVICE_NAME = "weft-spec", OTEL_EXPORTER_OTLP_HEADERS = "x-weft-test=yes%20really",
      })
      assert.equal(0, rc, stderr)
      assert.equal('"TOOL SAID: 5"\n', stdout)
      -- `weft run` exited: every span was exported before (flushed at exit)
      local reqs = requests()
      assert.is_true(#reqs >= 1)
      for _, r in ipairs(reqs) do
        assert.equal("POST", r.method)
        assert.equal("/v1/traces", r.path)
        assert.equal(proto == "http/json" and "application/json" or "application/x-protobuf", r.contentType)
        assert.equal("yes really", r.headers["x-weft-test"])
      end
      local spans = spans_of(reqs)
      assert.equal(13, #spans)
      assert.equal("weft-spec", spans[1].resource["service.name"])
      local root, by_id = check_tree(spans)

      assert.equal("weft.run otel_demo", root.name)
      assert.equal("otel_demo", root.attributes["weft.workflow.name"])
      assert.equal("otel-run-1", root.attributes["weft.run.id"])
      assert.equal("completed", root.attributes["weft.run.status"])
      assert.equal(0, root.status.code)

      local execs = { [0] = "ask", "assistant", "report" }
      local exec_span, outer = {}, {}
      for _, s in ipairs(spans) do
        if s.parentSpanId == root.spanId then outer[#outer + 1] = s end
      end
      assert.equal(3, #outer) -- the supersteps
      for n = 0, 2 do
        local ss = one(outer, "weft.superstep " .. n)
        assert.equal(n, ss.attributes["weft.superstep"])
        assert.equal("otel-run-1", ss.attributes["weft.run.id"])
        local ex = one(spans, "weft.executor " .. execs[n])
        assert.equal(ss.spanId, ex.parentSpanId)
        assert.same({ ["weft.executor.id"] = execs[n], ["weft.executor.attempt"] = 1, ["weft.superstep"] = n,
                      ["weft.run.id"] = "otel-run-1", ["weft.executor.status"] = "completed" }, ex.attributes)
        assert.equal(1, ex.kind) -- internal
        exec_span[execs[n]] = ex
      end

      -- model calls: GenAI conventions, under the agent's executor
      local chats = named(spans, "chat echo")
      assert.equal(2, #chats)
      local input_tokens, output_tokens, reasons = 0, 0, {}
      for _, c in ipairs(chats) do
        assert.equal(exec_span.assistant.spanId, c.parentSpanId)
        assert.equal(3, c.kind) -- client
        assert.equal("chat", c.attributes["gen_ai.operation.name"])
        assert.equal("echo", c.attributes["gen_ai.request.model"])
        assert.equal("mock", c.attributes["gen_ai.provider.name"])
        assert.equal("mock", c.attributes["gen_ai.system"])
        input_tokens = input_tokens + c.attributes["gen_ai.usage.input_tokens"]
        output_tokens = output_tokens + c.attributes["gen_ai.usage.output_tokens"]
        reasons[#reasons + 1] = c.attributes["gen_ai.response.finish_reasons"][1]
      end
      table.sort(reasons)
      assert.same({ "stop", "tool_calls" }, reasons)
      -- the token counts add up to the agent's usage for the same input
      local agent = dofile(dir .. "/agent.lua")
      local res = assert(agent:run(INPUT))
      assert.equal(res.usage.input_tokens, input_tokens)
      assert.equal(res.usage.output_tokens, output_tokens)

      local tool = one(spans, "execute_tool add")
      assert.equal(exec_span.assistant.spanId, tool.parentSpanId)
      assert.equal("add", tool.attributes["gen_ai.tool.name"])
      assert.equal("execute_tool", tool.attributes["gen_ai.operation.name"])
      assert.equal(0, tool.status.code)

      -- the nested workflow: a child run span of the executor that ran it
      local inner = one(spans, "weft.run inner")
      assert.equal(exec_span.report.spanId, inner.parentSpanId)
      assert.equal("inner", inner.attributes["weft.workflow.name"])
      assert.are_not.equal("otel-run-1", inner.attributes["weft.run.id"])
      local shout = one(spans, "weft.executor shout")
      assert.equal(inner.spanId, by_id[shout.parentSpanId].parentSpanId)
    end)
  end

  for _, proto in ipairs({ "http/protobuf", "http/json" }) do
    it("encodes every kind of attribute value as the official definitions read it (" .. proto .. ")", function()
      local otel = require "weft.otel"
      local span = { name = "values", trace = string.rep("ab", 16), id = string.rep("cd", 8), parent = string.rep("ef", 8),
                     kind = 3, start = 1796400000.25, finish = 1796400001.5, status = 2, message = "bad \226\128\148 thing",
                     attrs = { "neg", -5, "big", 2 ^ 40, "dbl", 1.5, "yes", true, "no", false, "s", "caf\195\169",
                               "list", { "a", "b" }, "empty", "" } }
      local body, ctype = otel.encode({ span }, proto, { "service.name", "enc" })
      local res = assert(weft.http.request{ method = "POST", url = "http://127.0.0.1:" .. port .. "/v1/traces",
                                            headers = { ["Content-Type"] = ctype }, body = body })
      assert.equal(200, res.status)
      local s = spans_of(requests())[1]
      assert.equal("enc", s.resource["service.name"])
      assert.same({ traceId = span.trace, spanId = span.id, parentSpanId = span.parent, name = "values", kind = 3,
                    start = "1796400000250000000", ["end"] = "1796400001500000000",
                    status = { code = 2, message = span.message },
                    attributes = { neg = -5, big = 2 ^ 40, dbl = 1.5, yes = true, no = false, s = "caf\195\169",
                                   list = { "a", "b" }, empty = "" } },
                  { traceId = s.traceId, spanId = s.spanId, parentSpanId = s.parentSpanId, name = s.name, kind = s.kind,
                    start = s.start, ["end"] = s["end"], status = s.status, attributes = s.attributes })
    end)
  end

  it("marks failed attempts and a failed run as errors, and exports them before exiting", function()
    local rc, _, stderr = run("failing.lua", { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = "http://127.0.0.1:" .. port .. "/custom/path",
                                                OTEL_EXPORTER_OTLP_TRACES_PROTOCOL = "http/json" })
    assert.equal(1, rc)
    assert.mentions("broken for good", stderr)
    local reqs = requests()
    assert.equal("/custom/path", reqs[1].path) -- the traces endpoint is used as is
    local spans = spans_of(reqs)
    local root = check_tree(spans)
    assert.equal("weft.run failing", root.name)
    assert.equal(2, root.status.code)
    assert.mentions("broken for good", root.status.message)
    assert.equal("failed", root.attributes["weft.run.status"])
    local flaky = named(spans, "weft.executor flaky")
    table.sort(flaky, function(a, b) return a.attributes["weft.executor.attempt"] < b.attributes["weft.executor.attempt"] end)
    assert.equal(2, #flaky)
    assert.equal(2, flaky[1].status.code)
    assert.mentions("first attempt fails", flaky[1].status.message)
    assert.is_true(flaky[1].attributes["weft.executor.retrying"])
    assert.equal(0, flaky[2].status.code)
    assert.equal(2, flaky[2].attributes["weft.executor.attempt"])
    local broken = one(spans, "weft.executor broken")
    assert.equal(2, broken.status.code)
    assert.equal("failed", broken.attributes["weft.executor.status"])
  end)

  it("sends nothing when tracing is off (no endpoint, OTEL_SDK_DISABLED, OTEL_TRACES_EXPORTER=none)", function()
    local ep = "http://127.0.0.1:" .. port
    for _, vars in ipairs({ {}, { OTEL_EXPORTER_OTLP_ENDPOINT = ep, OTEL_SDK_DISABLED = "true" },
                            { OTEL_EXPORTER_OTLP_ENDPOINT = ep, OTEL_TRACES_EXPORTER = "none" } }) do
      local rc, stdout, stderr = run("workflow.lua", vars)
      assert.equal(0, rc, stderr)
      assert.equal('"TOOL SAID: 5"\n', stdout)
      assert.equal("", stderr)
    end
    assert.same({}, requests())
  end)

  it("completes the run when the collector is down, saying on stderr that the spans were lost", function()
    local rc, stdout, stderr = run("workflow.lua", { OTEL_EXPORTER_OTLP_ENDPOINT = "http://127.0.0.1:" .. procs.free_port() })
    assert.equal(0, rc, stderr)
    assert.equal('"TOOL SAID: 5"\n', stdout)
    assert.mentions("weft: traces: spans not exported", stderr)
  end)

  it("traces the executions of weft serve and exports them by its shutdown", function()
    local sport = procs.free_port()
    local p = procs.spawn({ bin, "serve", "--port", tostring(sport), "--store", "memory:" },
                          env({ OTEL_EXPORTER_OTLP_ENDPOINT = "http://127.0.0.1:" .. port }))
    procs.wait_port(sport)
    local base = ("http://127.0.0.1:%d/api/v1"):format(sport)
    local res = assert(weft.http.request{ method = "POST", url = base .. "/workflows",
      body = { id = "w1", name = "w1", nodes = { { id = "o", builtin = "passthrough" } }, start = "o" } })
    assert.equal(201, res.status)
    res = assert(weft.http.request{ method = "POST", url = base .. "/workflows/w1/execute", body = { input = "hi" } })
    assert.equal(200, res.status)
    local run_id = weft.json.decode(res.body).id
    os.execute("kill -TERM " .. p.pid)
    local rc, _, err = procs.wait(p, 20)
    assert.equal(0, rc, err)
    local spans = spans_of(requests())
    local root = check_tree(spans)
    assert.equal("weft.run w1", root.name)
    assert.equal(run_id, root.attributes["weft.run.id"])
    assert.equal(1, #named(spans, "weft.executor o"))
  end)

  it("refuses a protocol weft does not export, naming it, and runs untraced", function()
    local rc, stdout, stderr = run("workflow.lua", { OTEL_EXPORTER_OTLP_ENDPOINT = "http://127.0.0.1:" .. port,
                                                     OTEL_EXPORTER_OTLP_PROTOCOL = "grpc" })
    assert.equal(0, rc, stderr)
    assert.equal('"TOOL SAID: 5"\n', stdout)
    assert.mentions("weft: traces off: traces: protocol 'grpc' is not supported", stderr)
    assert.same({}, requests())
  end)
end)
