-- spec/unit/serve_security_spec.lua — API keys, scopes, rate limits, CORS
-- and the audit log of `weft serve` (lua/weft/serve/security.lua), driven
-- through app:handle with the fake response of spec/support/fake_res.lua;
-- SHA-256 against the FIPS 180-4 vectors.
local weft = require "weft"
local fake = require "support.fake_res"
local serve = require "weft.serve.app"
local security = require "weft.serve.security"

local READ, RUN, ADMIN = "read-secret-0001", "run-secret-0002", "admin-secret-0003"

local call = fake.call

local function bearer(k) return { authorization = "Bearer " .. k } end

-- An app with the three keys; clock is a settable fake clock.
local function new_app(extra)
  local clock = { t = 100 }
  local keys = {
    { id = "reader", key = READ, scopes = { "read" } },
    { id = "runner", sha256 = security.sha256(RUN), scopes = { "run" }, rate = { per_second = 1, burst = 2 } },
    { id = "boss", key = ADMIN, scopes = { "admin" } },
  }
  local sec = { keys = keys, clock = function() return clock.t end, now = function() return 1700000000 end }
  for k, v in pairs(extra or {}) do sec[k] = v end
  local app = serve.new{ store = assert(weft.store.open("memory:")), security = sec }
  return app, clock
end

local WF = { id = "w1", name = "w1", nodes = { { id = "o", builtin = "passthrough" } }, start = "o" }

describe("weft.serve.security sha256", function()
  it("matches the FIPS 180-4 test vectors", function()
    assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", security.sha256(""))
    assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", security.sha256("abc"))
    assert.equal("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
      security.sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))
    assert.equal("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
      security.sha256(("a"):rep(1000000)))
    -- padding edge cases: 55, 56, 64 bytes
    assert.equal("9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318", security.sha256(("a"):rep(55)))
    assert.equal("b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a", security.sha256(("a"):rep(56)))
    assert.equal("ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb", security.sha256(("a"):rep(64)))
  end)
end)

describe("weft.serve.security keys", function()
  it("rejects bad key lists naming the problem, never the secret", function()
    local function fails(v, pat)
      local ok, err = pcall(security.parse_keys, v, "test")
      assert.is_false(ok)
      assert.matches(pat, err, 1, true)
      assert.falsy(tostring(err):find("s3cret-value", 1, true))
    end
    fails("[", "invalid JSON")
    fails("[]", "empty")
    fails({ { id = "a", key = "short", scopes = { "read" } } }, "8 characters")
    fails({ { id = "a", key = "s3cret-value", scopes = { "root" } } }, "unknown scope 'root'")
    fails({ { id = "a", key = "s3cret-value", scopes = { "read" } }, { id = "a", key = "s3cret-value2", scopes = { "read" } } }, "twice")
    fails({ { id = "a", key = "s3cret-value", scopes = { "read" } }, { id = "b", key = "s3cret-value", scopes = { "read" } } }, "same secret")
    fails({ { id = "a", sha256 = "zz", scopes = { "read" } } }, "64 hex")
    fails({ { id = "a", key = "s3cret-value", scopes = { "read" }, rate = { per_second = 0 } } }, "rate")
    fails({ { id = "a", key = "s3cret-value", scopes = { "read" }, extra = 1 } }, "unknown field 'extra'")
  end)

  it("keeps only hashes of the secrets", function()
    local ks = security.parse_keys({ { id = "a", key = "s3cret-value", scopes = { "run" } } })
    assert.equal(security.sha256("s3cret-value"), ks[1].hash)
    for _, v in pairs(ks[1]) do assert.not_equal("s3cret-value", v) end
  end)

  it("reads a keys file", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write('[{"id": "ci", "key": "file-secret-1", "scopes": ["read"]}]')
    f:close()
    local ks = security.load{ keys_file = path }
    os.remove(path)
    assert.equal("ci", ks[1].id)
    assert.has_error(function() security.load{ keys_file = path } end)
  end)
end)

describe("weft.serve.security requests", function()
  it("answers 401 without a key or with a wrong one, and keeps health open", function()
    local app = new_app()
    local res = call(app, "GET", "/api/v1/agents")
    assert.equal(401, res.status_code)
    assert.equal("unauthorized", res:decoded().error.code)
    assert.truthy(res.headers["www-authenticate"])
    res = call(app, "GET", "/api/v1/agents", { headers = bearer("wrong-key-123") })
    assert.equal(401, res.status_code)
    assert.falsy(res.body:find("wrong-key-123", 1, true))
    assert.equal(200, call(app, "GET", "/api/v1/health").status_code)
    assert.equal(200, call(app, "GET", "/api/v1/agents", { headers = bearer(READ) }).status_code)
    assert.equal(200, call(app, "GET", "/api/v1/agents", { headers = { ["x-api-key"] = READ } }).status_code)
  end)

  it("answers 403 when the scope is missing (admin > run > read)", function()
    local app = new_app()
    local res = call(app, "POST", "/api/v1/workflows", { body = WF, headers = bearer(RUN) })
    assert.equal(403, res.status_code)
    assert.equal("admin", res:decoded().error.details.required_scope)
    assert.equal(201, call(app, "POST", "/api/v1/workflows", { body = WF, headers = bearer(ADMIN) }).status_code)
    assert.equal(403, call(app, "POST", "/api/v1/workflows/w1/execute", { body = { input = 1 }, headers = bearer(READ) }).status_code)
    assert.equal(200, call(app, "POST", "/api/v1/workflows/w1/execute", { body = { input = 1 }, headers = bearer(RUN) }).status_code)
    assert.equal(200, call(app, "POST", "/api/v1/workflows/w1/execute", { body = { input = 1 }, headers = bearer(ADMIN) }).status_code)
    assert.equal(200, call(app, "GET", "/api/v1/workflows", { headers = bearer(RUN) }).status_code)
    assert.equal(403, call(app, "DELETE", "/api/v1/workflows/w1", { headers = bearer(RUN) }).status_code)
    assert.equal(403, call(app, "GET", "/api/v1/audit", { headers = bearer(RUN) }).status_code)
  end)

  it("asks the run scope for the routes that start or answer work, read for A2A calls, none for cards", function()
    local need = security.needed_scope
    for _, c in ipairs({
      { "POST", "/api/v1/executions/x/resume", "run" }, { "POST", "/v1/responses", "run" },
      { "POST", "/v1/responses/resp_1/cancel", "run" }, { "DELETE", "/v1/responses/resp_1", "run" },
      { "GET", "/v1/responses/resp_1", "read" }, { "POST", "/a2a/w1", "read" },
      { "GET", "/a2a/w1/.well-known/agent-card.json", nil }, { "POST", "/a2a/w1/x", "admin" },
      { "POST", "/api/v1/executions/x/other", "admin" }, { "PUT", "/v1/responses", "admin" },
      { "POST", "/mcp", "read" }, { "DELETE", "/mcp", "read" }, { "PUT", "/mcp", "admin" },
    }) do
      assert.equal(c[3], need(c[1], c[2]), c[1] .. " " .. c[2])
    end
  end)

  it("rate-limits per key with a token bucket and retry-after", function()
    local app, clock = new_app()
    local h = bearer(RUN)
    assert.equal(200, call(app, "GET", "/api/v1/agents", { headers = h }).status_code)
    assert.equal(200, call(app, "GET", "/api/v1/agents", { headers = h }).status_code)
    local res = call(app, "GET", "/api/v1/agents", { headers = h })
    assert.equal(429, res.status_code)
    assert.equal("1", res.headers["retry-after"])
    assert.equal("rate_limited", res:decoded().error.code)
    -- other keys are not limited
    assert.equal(200, call(app, "GET", "/api/v1/agents", { headers = bearer(READ) }).status_code)
    clock.t = clock.t + 1
    assert.equal(200, call(app, "GET", "/api/v1/agents", { headers = h }).status_code)
    assert.equal(429, call(app, "GET", "/api/v1/agents", { headers = h }).status_code)
  end)

  it("shares one bucket per key between the replicas of a pool (weft serve --workers)", function()
    local st = assert(weft.store.open("memory:"))
    local sec = { keys = { { id = "runner", key = RUN, scopes = { "run" }, rate = { per_second = 0.001, burst = 2 } } } }
    local a = serve.new{ store = st, security = sec }
    local b = serve.new{ store = st, security = sec }
    a.pool, b.pool = { queue = "weft" }, { queue = "weft" }
    local h = bearer(RUN)
    assert.equal(200, call(a, "GET", "/api/v1/agents", { headers = h }).status_code)
    assert.equal(200, call(b, "GET", "/api/v1/agents", { headers = h }).status_code)
    -- the burst of 2 is spent across both: each replica alone would allow it
    local res = call(a, "GET", "/api/v1/agents", { headers = h })
    assert.equal(429, res.status_code)
    assert.equal(429, call(b, "GET", "/api/v1/agents", { headers = h }).status_code)
    assert.truthy(tonumber(res.headers["retry-after"]) >= 1)
  end)

  it("audits mutating calls with the key id and status, readable by admin only", function()
    local app = new_app()
    call(app, "POST", "/api/v1/workflows", { body = WF, headers = bearer(ADMIN) })
    call(app, "POST", "/api/v1/workflows/w1/execute", { body = { input = 1 }, headers = bearer(RUN) })
    call(app, "DELETE", "/api/v1/workflows/w1", { headers = bearer(RUN) })
    call(app, "GET", "/api/v1/workflows", { headers = bearer(READ) })
    local res = call(app, "GET", "/api/v1/audit", { headers = bearer(ADMIN) })
    assert.equal(200, res.status_code, res.body)
    local page = res:decoded()
    assert.equal("2023-11-14", page.date)
    assert.equal(3, page.total)
    assert.same({ "boss", "runner", "runner" }, { page.items[1].key, page.items[2].key, page.items[3].key })
    assert.same({ 201, 200, 403 }, { page.items[1].status, page.items[2].status, page.items[3].status })
    assert.equal("/api/v1/workflows/w1/execute", page.items[2].path)
    assert.equal("POST", page.items[2].method)
    assert.equal("2023-11-14T22:13:20Z", page.items[1].time)
    for _, k in ipairs({ READ, RUN, ADMIN }) do assert.falsy(res.body:find(k, 1, true)) end
    assert.equal(400, call(app, "GET", "/api/v1/audit", { query = { date = "x" }, headers = bearer(ADMIN) }).status_code)
  end)

  it("answers CORS preflights with 204 and adds the headers", function()
    local app = new_app{ cors = "https://ui.example" }
    local res = call(app, "OPTIONS", "/api/v1/agents", { headers = { origin = "https://ui.example" } })
    assert.equal(204, res.status_code)
    assert.equal("https://ui.example", res.headers["access-control-allow-origin"])
    assert.matches("POST", res.headers["access-control-allow-methods"], 1, true)
    assert.matches("Authorization", res.headers["access-control-allow-headers"], 1, true)
    res = call(app, "GET", "/api/v1/agents", { headers = { origin = "https://ui.example" } })
    assert.equal(401, res.status_code)
    assert.equal("https://ui.example", res.headers["access-control-allow-origin"])
    res = call(app, "GET", "/api/v1/health", { headers = { origin = "https://evil.example" } })
    assert.is_nil(res.headers["access-control-allow-origin"])
    local star = serve.new{ security = { cors = "*" } }
    res = call(star, "OPTIONS", "/api/v1/agents")
    assert.equal(204, res.status_code)
    assert.equal("*", res.headers["access-control-allow-origin"])
  end)

  it("stays open without keys (no audit)", function()
    local app = serve.new{}
    assert.equal(200, call(app, "GET", "/api/v1/agents").status_code)
    assert.equal(201, call(app, "POST", "/api/v1/workflows", { body = WF }).status_code)
    assert.equal(405, call(app, "OPTIONS", "/api/v1/agents").status_code)
    assert.equal(404, call(app, "GET", "/api/v1/audit").status_code)
  end)
end)
