-- spec/unit/otel_spec.lua — weft.otel in-process: the OTEL_* variables,
-- setup's checks, the bounded span queue, export failures, spans of model
-- calls outside runs, and that shutdown leaves the traced modules as they
-- were. The collector is spec/support/http_server.lua taking OTLP/JSON
-- (the official OTLP definitions check the payloads in
-- spec/integration/otel_spec.lua).
local weft = require "weft"
local otel = require "weft.otel"
local hs = require "support.http_server"
require "helpers" -- assert.mentions

-- A getenv reading t.
local function env(t) return function(k) return t[k] end end

describe("weft.otel", function()
  describe("env_config", function()
    it("is off without an endpoint, with OTEL_SDK_DISABLED=true and with OTEL_TRACES_EXPORTER=none", function()
      assert.is_false(otel.env_config(env({})))
      assert.is_false(otel.env_config(env({ OTEL_EXPORTER_OTLP_ENDPOINT = "http://c:4318", OTEL_SDK_DISABLED = "TRUE" })))
      assert.is_false(otel.env_config(env({ OTEL_EXPORTER_OTLP_ENDPOINT = "http://c:4318", OTEL_TRACES_EXPORTER = "none" })))
      assert.is_false(otel.env_config(env({ OTEL_EXPORTER_OTLP_ENDPOINT = "" })))
    end)

    it("appends /v1/traces to OTEL_EXPORTER_OTLP_ENDPOINT and uses the traces endpoint as is", function()
      assert.equal("http://c:4318/v1/traces", otel.env_config(env({ OTEL_EXPORTER_OTLP_ENDPOINT = "http://c:4318/" })).endpoint)
      assert.equal("http://t/x", otel.env_config(env({ OTEL_EXPORTER_OTLP_ENDPOINT = "http://c:4318",
                                                      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = "http://t/x" })).endpoint)
      -- an explicit exporter without endpoint: the default one (setup's)
      local c = otel.env_config(env({ OTEL_TRACES_EXPORTER = "otlp" }))
      assert.is_nil(c.endpoint)
    end)

    it("reads headers (percent-decoded; the traces variable wins), protocol, timeout, queue and service", function()
      local c = otel.env_config(env({
        OTEL_EXPORTER_OTLP_ENDPOINT = "http://c", OTEL_EXPORTER_OTLP_HEADERS = "a=1,api-key=secret%20one",
        OTEL_EXPORTER_OTLP_TRACES_HEADERS = "a=2", OTEL_EXPORTER_OTLP_PROTOCOL = "http/json",
        OTEL_EXPORTER_OTLP_TIMEOUT = "2500", OTEL_BSP_MAX_QUEUE_SIZE = "10", OTEL_BSP_MAX_EXPORT_BATCH_SIZE = "5",
        OTEL_SERVICE_NAME = "svc", OTEL_RESOURCE_ATTRIBUTES = "deployment.environment=test",
      }))
      assert.same({ a = "2", ["api-key"] = "secret one" }, c.headers)
      assert.equal("http/json", c.protocol)
      assert.equal(2.5, c.timeout)
      assert.equal(10, c.max_queue)
      assert.equal(5, c.batch_size)
      assert.equal("svc", c.service_name)
      assert.same({ ["deployment.environment"] = "test" }, c.resource)
    end)

    it("names the variable of a bad value", function()
      local cases = {
        { { OTEL_TRACES_EXPORTER = "zipkin" }, "OTEL_TRACES_EXPORTER: 'zipkin' is not supported" },
        { { OTEL_EXPORTER_OTLP_ENDPOINT = "http://c", OTEL_EXPORTER_OTLP_HEADERS = "novalue" },
          "OTEL_EXPORTER_OTLP_HEADERS: 'novalue' is not key=value" },
        { { OTEL_EXPORTER_OTLP_ENDPOINT = "http://c", OTEL_EXPORTER_OTLP_TIMEOUT = "soon" },
          "OTEL_EXPORTER_OTLP_TIMEOUT: 'soon' is not a number of milliseconds" },
        { { OTEL_EXPORTER_OTLP_ENDPOINT = "http://c", OTEL_BSP_MAX_QUEUE_SIZE = "0" },
          "OTEL_BSP_MAX_QUEUE_SIZE: '0' is not a positive integer" },
      }
      for _, case in ipairs(cases) do
        local c, err = otel.env_config(env(case[1]))
        assert.is_nil(c)
        assert.mentions(case[2], err)
      end
    end)

    it("setup_from_env refuses grpc and bad endpoints without raising, tracing staying off", function()
      local on, err = otel.setup_from_env(env({ OTEL_EXPORTER_OTLP_ENDPOINT = "http://c", OTEL_EXPORTER_OTLP_PROTOCOL = "grpc" }))
      assert.is_nil(on)
      assert.mentions("protocol 'grpc' is not supported", err)
      on, err = otel.setup_from_env(env({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = "c:4318" }))
      assert.is_nil(on)
      assert.mentions("traces: endpoint must be an http:// or https:// URL", err)
      assert.is_false(otel.enabled())
    end)
  end)

  describe("setup", function()
    after_each(function() otel.shutdown() end)

    it("raises on misuse, naming the option", function()
      assert.error_matches(function() otel.setup{ endpoint = 4318 } end, "endpoint must be a string, got number")
      assert.error_matches(function() otel.setup{ endpont = "http://c" } end, "unknown option 'endpont'")
      assert.error_matches(function() otel.setup{ max_queue = 0 } end, "max_queue must be a positive integer")
      assert.error_matches(function() otel.setup{ headers = { a = 1 } } end, "headers must map names to strings")
    end)

    it("observes the journal while tracing and leaves it unobserved after shutdown", function()
      local journal, Tool = require "weft.journal", require("weft.tool").Tool
      local call, invoke = journal.call, Tool.invoke
      assert.is_nil(journal.observe(nil))
      assert.is_true(otel.setup{ endpoint = "http://127.0.0.1:9/v1/traces" })
      local o = journal.observe(nil)
      assert.is_function(o)
      journal.observe(o)
      otel.shutdown()
      assert.is_nil(journal.observe(nil))
      -- the modules' functions are never replaced
      assert.equal(call, journal.call)
      assert.equal(invoke, Tool.invoke)
      assert.is_false(otel.enabled())
    end)
  end)

  describe("export", function()
    local srv, posts, status

    before_each(function()
      posts, status = {}, 200
      srv = hs.start{ port = 0, handler = function(req, res)
        posts[#posts + 1] = req
        res:send(status, { ["Content-Type"] = "application/json" }, "{}")
      end }
    end)

    after_each(function()
      otel.shutdown()
      srv:stop()
    end)

    local function spans()
      local list = {}
      for _, p in ipairs(posts) do
        local d = assert(weft.json.decode(p.body))
        for _, s in ipairs(d.resourceSpans[1].scopeSpans[1].spans) do list[#list + 1] = s end
      end
      return list
    end

    local two = weft.workflow("two")
      :start(weft.executor("a", function(m, ctx) ctx:send(m) end))
      :edge("a", weft.executor("b", function(m, ctx) ctx:yield_output(m) end))
      :build()

    it("keeps at most max_queue spans, counting the ones it drops", function()
      assert.is_true(otel.setup{ endpoint = srv.url .. "/v1/traces", protocol = "http/json", max_queue = 3 })
      local before = otel.stats()
      assert.equal("completed", two:run("x").status)
      local ok, err = otel.flush()
      assert.is_nil(ok) -- spans were lost
      assert.mentions("2 span(s) lost: the span queue is full (max_queue 3)", err)
      local st = otel.stats()
      assert.equal(3, #spans())
      assert.equal(before.exported + 3, st.exported)
      assert.equal(before.dropped + 2, st.dropped) -- of 5: the run, 2 supersteps, 2 executors
    end)

    it("counts a failed export and never fails the run", function()
      status = 503
      assert.is_true(otel.setup{ endpoint = srv.url .. "/v1/traces", protocol = "http/json" })
      local before = otel.stats()
      assert.equal("completed", two:run("x").status)
      local ok, err = otel.flush()
      assert.is_nil(ok)
      assert.mentions("HTTP 503 from " .. srv.url .. "/v1/traces", err)
      local st = otel.stats()
      assert.equal(before.failed_exports + 1, st.failed_exports)
      assert.equal(before.dropped + 5, st.dropped)
    end)

    it("sends the configured headers and marks them secret", function()
      assert.is_true(otel.setup{ endpoint = srv.url .. "/v1/traces", protocol = "http/json",
                                 headers = { ["x-api-key"] = "otel-secret-123" } })
      two:run("x")
      assert.is_true(otel.flush())
      assert.equal("otel-secret-123", posts[1].headers["x-api-key"])
      assert.equal("[redacted]", require("weft.secrets").redact("otel-secret-123"))
    end)

    it("ends the spans a cancelled run left open, the executor's as an error", function()
      assert.is_true(otel.setup{ endpoint = srv.url .. "/v1/traces", protocol = "http/json" })
      local started = weft.cond()
      local slow = weft.workflow("slow"):start(weft.executor("wait", function()
        started:signal()
        weft.sleep(30)
      end)):build()
      local h = slow:spawn("x")
      started:wait()
      h:cancel()
      assert.equal("cancelled", h:wait().status)
      assert.is_true(otel.flush())
      local by = {}
      for _, sp in ipairs(spans()) do by[sp.name] = sp end
      assert.equal(2, by["weft.executor wait"].status.code)
      assert.equal("cancelled", by["weft.executor wait"].status.message)
      local root = by["weft.run slow"]
      local attrs = {}
      for _, a in ipairs(root.attributes) do attrs[a.key] = a.value.stringValue end
      assert.equal("cancelled", attrs["weft.run.status"])
      assert.truthy(by["weft.superstep 0"].endTimeUnixNano)
    end)

    it("traces a model call outside any run as the root of its own trace", function()
      assert.is_true(otel.setup{ endpoint = srv.url .. "/v1/traces", protocol = "http/json" })
      local res = assert(weft.llm.chat{ model = "mock:echo", messages = { { role = "user", content = "hello there" } } })
      assert.is_true(otel.flush())
      local list = spans()
      assert.equal(1, #list)
      assert.equal("chat echo", list[1].name)
      assert.is_nil(list[1].parentSpanId)
      local attrs = {}
      for _, a in ipairs(list[1].attributes) do attrs[a.key] = a.value end
      assert.equal(tostring(res.usage.input_tokens), attrs["gen_ai.usage.input_tokens"].intValue)
      assert.equal("stop", attrs["gen_ai.response.finish_reasons"].arrayValue.values[1].stringValue)
    end)
  end)
end)
