-- spec/integration/network_policy_spec.lua — network policies
-- (docs/guardrails.md, "Network policy") against the provider test server
-- on 127.0.0.1: for each rule, attempts to get around it — another
-- spelling of a refused address, a name that resolves to a private address
-- (what DNS rebinding achieves), a redirect from an allowed host to a
-- refused host, address or port, userinfo before the host, case and a
-- trailing dot — made with weft.http, weft.llm from an agent, weft.mcp,
-- weft.a2a and weft.tcp, from a run given the policy, a run nested in it
-- and the whole process; and the permitted cases (allow_private,
-- allow_cidrs). The server counts what reached it: a refusal must leave
-- no request there. #http
local weft = require "weft"
local http = require "weft.http"
local tcp = require "weft.tcp"
local ps = require "support.provider_server"
require "helpers" -- assert.mentions

describe("network policy #http", function()
  local srv, srv2, P
  local OPEN = { allow_private = true }

  setup(function()
    srv = ps.start { host = "127.0.0.1", port = 0 }
    srv2 = ps.start { host = "127.0.0.1", port = 0 }
    P = srv.port
  end)
  teardown(function()
    srv:stop()
    srv2:stop()
  end)
  before_each(function()
    srv:reset()
    srv2:reset()
  end)

  local function requests() return srv:stats().requests end

  -- GET url under network policy net: res | nil, err, code.
  local function get(url, net)
    return http.request { url = url, network = net, timeout = 10 }
  end

  -- Run fn in an executor of a run with options opts; its output.
  local function in_run(fn, opts)
    local wf = weft.workflow("net"):start(weft.executor("a", function(_, ctx)
      ctx:yield_output({ fn() })
    end)):build()
    local r = wf:run("x", opts)
    assert.are.equal("completed", r.status, r.error)
    return r.outputs[1]
  end

  describe("private addresses", function()
    it("are reached when allow_private is set, and refused by default", function()
      local res = assert(get(srv.url .. "/echo", OPEN))
      assert.are.equal(200, res.status)
      srv:reset()
      local r, err, code = get(srv.url .. "/echo", {})
      assert.is_nil(r)
      assert.are.equal("policy", code)
      assert.mentions("network policy refuses address 127.0.0.1 (port " .. P .. ")", err)
      assert.mentions("a private address", err)
      assert.are.equal(0, requests())
    end)

    it("are refused whatever the spelling of the address", function()
      for _, host in ipairs { "2130706433", "0x7f.1", "0177.0.0.1", "127.1", "[::ffff:127.0.0.1]",
                              "[::ffff:7f00:1]", "0.0.0.0", "[::1]" } do
        local r, err, code = get(("http://%s:%d/echo"):format(host, P), {})
        assert.is_nil(r, host)
        assert.are.equal("policy", code, host .. ": " .. tostring(err))
      end
      assert.are.equal(0, requests())
    end)

    it("are refused after DNS: a name allowed by allow_hosts that resolves to one", function()
      local net = { allow_hosts = { "localhost" } }
      local r, err, code = get(("http://localhost:%d/echo"):format(P), net)
      assert.is_nil(r)
      assert.are.equal("policy", code)
      assert.mentions("of localhost:" .. P .. ": a private address", err)
      assert.are.equal(0, requests())
      -- allowed once private addresses are
      assert(get(("http://localhost:%d/echo"):format(P), { allow_hosts = { "localhost" }, allow_private = true }))
    end)

    it("are permitted one range at a time by allow_cidrs", function()
      assert(get(srv.url .. "/echo", { allow_cidrs = { "127.0.0.0/8" } }))
      local r, _, code = get(srv.url .. "/echo", { allow_cidrs = { "10.0.0.0/8" } })
      assert.is_nil(r)
      assert.are.equal("policy", code)
    end)

    it("are refused as the target of a redirect (the cloud metadata address)", function()
      local to = "http://169.254.169.254/latest/meta-data/"
      local r, err, code = get(srv.url .. "/redirect?to=" .. to, { allow_cidrs = { "127.0.0.1/32" } })
      assert.is_nil(r)
      assert.are.equal("policy", code)
      assert.mentions("169.254.169.254", err)
    end)
  end)

  describe("allowed hosts", function()
    it("refuse a redirect from an allowed host to another", function()
      local net = { allow_hosts = { "localhost" }, allow_private = true }
      local url = ("http://localhost:%d/redirect?to=http://127.0.0.1:%d/echo"):format(P, P)
      local r, err, code = get(url, net)
      assert.is_nil(r)
      assert.are.equal("policy", code)
      assert.mentions("redirect from localhost:" .. P .. " refused", err)
      assert.mentions("host '127.0.0.1' (port " .. P .. "): not in allow_hosts", err)
      assert.are.equal(1, requests()) -- the redirect, not its target
    end)

    it("judge the host after the userinfo, not the userinfo", function()
      local net = { allow_hosts = { "allowed.example" }, allow_private = true }
      local r, err, code = get(("http://allowed.example@127.0.0.1:%d/echo"):format(P), net)
      assert.is_nil(r)
      assert.are.equal("policy", code)
      assert.mentions("host '127.0.0.1'", err)
      assert.are.equal(0, requests())
    end)

    it("match names whatever their case and trailing dot, and wildcards below the domain only", function()
      local net = { allow_hosts = { "LocalHost." }, allow_private = true }
      assert(get(("http://LOCALHOST:%d/echo"):format(P), net))
      assert(get(("http://localhost:%d/echo"):format(P), net))
      -- a trailing dot passes the name check (then the name fails to resolve)
      local _, _, code1 = get(("http://LOCALHOST.:%d/echo"):format(P), net)
      local _, _, code2 = get(("http://LOCALHOST.:%d/echo"):format(P), { allow_hosts = { "other" } })
      assert.are.same({ "dns", "policy" }, { code1, code2 })
      local wild = { allow_hosts = { "*.localhost" }, allow_private = true }
      local r, err, code = get(("http://localhost:%d/echo"):format(P), wild)
      assert.is_nil(r)
      assert.are.equal("policy", code)
      assert.mentions("not in allow_hosts", err)
    end)

    it("match IP literals as literals", function()
      assert(get(srv.url .. "/echo", { allow_hosts = { "127.0.0.1" }, allow_private = true }))
      local r, _, code = get(("http://localhost:%d/echo"):format(P), { allow_hosts = { "127.0.0.1" }, allow_private = true })
      assert.is_nil(r)
      assert.are.equal("policy", code)
    end)
  end)

  describe("blocked ports", function()
    it("refuse a port given explicitly", function()
      local r, err, code = get(srv.url .. "/echo", { block_ports = { P }, allow_private = true })
      assert.is_nil(r)
      assert.are.equal("policy", code)
      assert.mentions("port " .. P .. " of host '127.0.0.1' (block_ports)", err)
      assert.are.equal(0, requests())
    end)

    it("refuse a port reached through a redirect", function()
      local url = srv2.url .. "/redirect?to=" .. srv.url .. "/echo"
      local r, err, code = get(url, { block_ports = { P }, allow_private = true })
      assert.is_nil(r)
      assert.are.equal("policy", code)
      assert.mentions("(block_ports)", err)
      assert.are.equal(0, requests())
      assert.are.equal(1, srv2:stats().requests)
    end)

    it("apply to the default port of the scheme", function()
      local r, err, code = get("http://localhost/echo", { block_ports = { 80 }, allow_private = true })
      assert.is_nil(r)
      assert.are.equal("policy", code)
      assert.mentions("port 80 ", err)
    end)
  end)

  describe("of a run", function()
    it("hold for every request of its executors and of tasks they start", function()
      local out = in_run(function()
        local t = weft.go(function() return get(srv.url .. "/echo") end)
        local a = { get(srv.url .. "/echo") }
        return a[3], select(3, t:wait())
      end, { network = {} })
      assert.are.same({ "policy", "policy" }, out)
      assert.are.equal(0, requests())
    end)

    it("hold in a nested run, even one giving a looser policy of its own", function()
      local inner = weft.workflow("inner"):start(weft.executor("b", function(_, ctx)
        local _, _, code = get(srv.url .. "/echo")
        ctx:yield_output(code or "reached")
      end)):build()
      local out = in_run(function()
        return inner:run("y").outputs[1], inner:run("y", { network = OPEN }).outputs[1]
      end, { network = {} })
      assert.are.same({ "policy", "policy" }, out)
      assert.are.equal(0, requests())
    end)

    it("cannot be got around by an executor whose run ended under it: it starts no request", function()
      -- (its run cancelled from inside, as a budget does: the invocation is
      -- no longer current, so no run policy would hold, and nothing would
      -- ever wait for the transfer)
      local seen
      local h
      local wf = weft.workflow("zombie"):start(weft.executor("a", function()
        h:cancel()
        seen = { get(srv.url .. "/echo") }
      end)):build()
      h = wf:spawn("x", { network = {} })
      assert.are.equal("cancelled", h:wait().status)
      assert.are.same({ nil, "http.request: not started: the invocation was aborted", "cancelled" }, seen)
      assert.are.equal(0, requests())
    end)

    it("includes the network of the run's guardrails policy (weft.guardrails)", function()
      local policy = weft.guardrails.load { execution_limits = {
        network_restrictions = { allowed_domains = { "api.example.com" }, allow_private = true } } }
      local out = in_run(function()
        local _, err, code = get(srv.url .. "/echo")
        return code, err
      end, { guardrails = policy })
      assert.are.equal("policy", out[1])
      assert.mentions("not in allow_hosts", out[2])
      assert.are.equal(0, requests())
    end)

    it("is combined with the request's own network option (both hold)", function()
      local out = in_run(function()
        local _, _, code = get(srv.url .. "/echo", OPEN)
        return code
      end, { network = { allow_hosts = { "api.example.com" } } })
      assert.are.same({ "policy" }, out)
    end)

    it("refuses an LLM call of an agent, which is not retried", function()
      local agent = weft.agent { name = "remote", model = "openai:m1",
        llm = { api_key = "sk-test", base_url = srv.url .. "/v1", retry_base = 0.01 } }
      local llm = require "weft.llm"
      local sleep, sleeps = llm.sleep, 0
      llm.sleep = function() sleeps = sleeps + 1 end -- the retry layer's waits
      local ok, out = pcall(in_run, function()
        local r, err, code = agent:run("hi")
        return r == nil, code, err
      end, { network = { allow_hosts = { "api.openai.com" } } })
      llm.sleep = sleep
      assert(ok, out)
      assert.are.equal(0, sleeps)
      assert.is_true(out[1])
      assert.are.equal("policy", out[2])
      assert.mentions("not in allow_hosts", out[3])
      assert.are.equal(0, requests())
      -- the same agent outside the run reaches the server
      assert(agent:run("hi"))
    end)

    it("refuses the HTTP calls of an MCP client and of an A2A remote agent", function()
      local out = in_run(function()
        local tools, merr = weft.tool.mcp { url = srv.url .. "/mcp", name = "m" }
        local r, aerr = weft.agent.remote { url = srv.url }:run("x")
        return tools == nil, tostring(merr), r == nil, tostring(aerr)
      end, { network = {} })
      assert.is_true(out[1])
      assert.mentions("network policy refuses", out[2])
      assert.is_true(out[3])
      assert.mentions("network policy refuses", out[4])
      assert.are.equal(0, requests())
    end)

    it("holds for weft.tcp connects", function()
      local out = in_run(function()
        local c, err, code = tcp.connect("127.0.0.1", P, 5)
        return c == nil, code, err
      end, { network = { allow_hosts = { "localhost" } } })
      assert.are.same({ true, "policy", "network policy refuses host '127.0.0.1' (port " .. P .. "): not in allow_hosts" }, out)
      local c, err, code = tcp.connect("localhost", P, 5, {})
      assert.is_nil(c)
      assert.are.equal("policy", code)
      assert.mentions("a private address", err)
      c = assert(tcp.connect("localhost", P, 5, OPEN))
      c:close()
    end)
  end)

  describe("of the process (weft.http.configure)", function()
    after_each(function() http.configure { network = false } end)

    it("holds for every request until removed", function()
      http.configure { network = { allow_hosts = { "api.example.com" } } }
      local r, _, code = get(srv.url .. "/echo", OPEN)
      assert.is_nil(r)
      assert.are.equal("policy", code)
      http.configure { network = false }
      assert(get(srv.url .. "/echo", OPEN))
    end)
  end)

  describe("options", function()
    it("are checked, naming the field", function()
      assert.error_matches(function() get(srv.url, { allow_hosts = "x" }) end,
        "http.request: network.allow_hosts must be a list of host names", nil, true)
      assert.error_matches(function() get(srv.url, { block_port = { 22 } }) end,
        "unknown network option 'network.block_port'", nil, true)
      assert.error_matches(function() get(srv.url, { block_ports = { 0 } }) end,
        "network.block_ports must be a list of ports (1 to 65535)", nil, true)
      assert.error_matches(function() get(srv.url, { allow_hosts = { "a*.com" } }) end,
        "network: allow_hosts[1]: bad host pattern 'a*.com'", nil, true)
      assert.error_matches(function() weft.workflow("o"):start(weft.executor("a", function() end)):build()
        :run("x", { network = { allow_cidrs = { "10.0.0.0/40" } } }) end,
        "network.allow_cidrs must be a list of address ranges", nil, true)
    end)
  end)
end)
