-- spec/integration/http_hostile_spec.lua — weft.http (docs/io.md) against
-- servers that attack their client, on 127.0.0.1 (the provider test server,
-- spec/support/provider_server.lua): redirects to file:// (refused, and the
-- pooled curl handle stays sound: it once overflowed its receive buffer on
-- the next large body), redirects to another origin (every secret header
-- stripped, or the redirect refused), redirect limits and method rewriting,
-- secret header values registered with weft.secrets, and a total timeout
-- on a kept-alive connection reported as such. "localhost" and a second
-- server on another port are other origins than 127.0.0.1:PORT. #http
local http = require "weft.http"
local json = require "weft.json"
local secrets = require "weft.secrets"
local ps = require "support.provider_server"
require "helpers" -- assert.mentions

-- Request headers that carry credentials, and one that does not.
local SECRET = {
  Authorization = "Bearer tok-weft-hostile-0001",
  Cookie = "session=weft-hostile-0002",
  ["Proxy-Authorization"] = "Basic weft-hostile-0003",
  ["X-Api-Key"] = "weft-hostile-0004",
  ["X-Goog-Api-Key"] = "weft-hostile-0005",
  ["Api-Key"] = "weft-hostile-0006",
  ["X-Custom-Token"] = "weft-hostile-0007", -- secret by the caller's word
}

-- SECRET plus a plain header.
local function headers()
  local h = { ["X-Plain"] = "visible" }
  for k, v in pairs(SECRET) do h[k] = v end
  return h
end

describe("weft.http against hostile servers #http", function()
  local srv, other

  setup(function()
    srv = ps.start { port = 0 }
    other = ps.start { port = 0 }
  end)
  teardown(function()
    srv:stop()
    other:stop()
  end)

  -- A URL of srv that redirects (status, default 302) to `to`.
  local function redirect(to, status)
    return srv.url .. "/redirect?to=" .. to .. (status and ("&status=" .. status) or "")
  end

  -- The request headers srv or other echoed (lower-case names).
  local function echoed(res)
    assert.equal(200, res.status)
    return json.decode(res.body).headers
  end

  describe("a redirect to file://", function()
    it("is refused, and the connection's next large bodies arrive whole", function()
      for round = 1, 2 do
        local res, err, code = http.request { url = redirect("file:///etc/hostname") }
        assert.is_nil(res)
        assert.equal("protocol", code)
        assert.mentions("file", err)
        assert.mentions("127.0.0.1:" .. srv.port, err)
        for _, n in ipairs { 40000, 70000 } do
          local big = assert(http.request { url = srv.url .. "/bytes/" .. n })
          assert.equal(200, big.status)
          assert.equal(ps.bytes_body(n), big.body, "round " .. round)
        end
        local chunks = {}
        res, err = http.request { url = redirect("file:///etc/hostname"),
                                  stream = function(c) chunks[#chunks + 1] = c end }
        assert.is_nil(res)
        assert.mentions("file", err)
        local streamed = {}
        assert(http.request { url = srv.url .. "/bytes/70000",
                              stream = function(c) streamed[#streamed + 1] = c end })
        assert.equal(ps.bytes_body(70000), table.concat(streamed))
      end
    end)
  end)

  describe("a redirect to another origin", function()
    it("is followed without any secret header (another host name)", function()
      local to = "http://localhost:" .. srv.port .. "/echo"
      local res = assert(http.request { url = redirect(to), headers = headers(),
                                        secret_headers = { "x-custom-token" } })
      local h = echoed(res)
      assert.equal("localhost:" .. srv.port, h.host)
      assert.equal("visible", h["x-plain"])
      for name in pairs(SECRET) do assert.is_nil(h[name:lower()], name) end
    end)

    it("is followed without any secret header (another port)", function()
      local res = assert(http.request { url = redirect(other.url .. "/echo", 307),
                                        headers = headers(), secret_headers = { "X-Custom-Token" } })
      local h = echoed(res)
      assert.equal("127.0.0.1:" .. other.port, h.host)
      assert.equal("visible", h["x-plain"])
      for name in pairs(SECRET) do assert.is_nil(h[name:lower()], name) end
    end)

    it("keeps them stripped when a later redirect comes back", function()
      local back = srv.url .. "/echo"
      local via = "http://localhost:" .. srv.port .. "/redirect?to=" .. back
      local h = echoed(assert(http.request { url = redirect(via), headers = headers() }))
      assert.equal("127.0.0.1:" .. srv.port, h.host)
      assert.is_nil(h["x-api-key"])
      assert.is_nil(h.authorization)
    end)

    it("fails with code protocol naming both hosts when refused", function()
      other:reset()
      local res, err, code = http.request { url = redirect(other.url .. "/echo"),
                                            headers = headers(), cross_origin_redirects = "refuse" }
      assert.is_nil(res)
      assert.equal("protocol", code)
      assert.mentions("127.0.0.1:" .. srv.port, err)
      assert.mentions("127.0.0.1:" .. other.port, err)
      assert.equal(0, other:stats().requests)
    end)
  end)

  describe("a redirect within the origin", function()
    it("keeps every header", function()
      local h = echoed(assert(http.request { url = redirect(srv.url .. "/echo"), headers = headers(),
                                             cross_origin_redirects = "refuse" }))
      for name, v in pairs(SECRET) do assert.equal(v, h[name:lower()], name) end
    end)

    it("turns a POST into a GET without body on 303, and repeats it on 307", function()
      local res = assert(http.request { url = redirect(srv.url .. "/echo", 303), body = "payload" })
      local e = json.decode(res.body)
      assert.equal("GET", e.method)
      assert.equal("", e.body)
      res = assert(http.request { url = redirect(srv.url .. "/echo", 307), body = "payload" })
      e = json.decode(res.body)
      assert.equal("POST", e.method)
      assert.equal("payload", e.body)
    end)

    it("is returned as the response with max_redirects = 0, and limited otherwise", function()
      local res = assert(http.request { url = redirect(srv.url .. "/echo"), max_redirects = 0 })
      assert.equal(302, res.status)
      assert.equal(srv.url .. "/echo", res.headers.location)
      local twice = redirect(srv.url .. "/redirect?to=" .. srv.url .. "/echo")
      local r2, err, code = http.request { url = twice, max_redirects = 1 }
      assert.is_nil(r2)
      assert.equal("protocol", code)
      assert.mentions("too many redirects", err)
      assert.equal(200, assert(http.request { url = twice, max_redirects = 2 }).status)
    end)
  end)

  describe("secret headers", function()
    it("register their values (and bearer tokens) with weft.secrets", function()
      assert(http.request { url = srv.url .. "/echo", headers = headers(),
                            secret_headers = { "x-custom-token" } })
      assert.is_true(secrets.known("Bearer tok-weft-hostile-0001"))
      assert.is_true(secrets.known("tok-weft-hostile-0001"))
      assert.is_true(secrets.known("weft-hostile-0004"))
      assert.is_true(secrets.known("weft-hostile-0007"))
      assert.is_false(secrets.known("visible"))
    end)

    it("lists the names that always count", function()
      assert.same({ "authorization", "cookie", "proxy-authorization", "x-api-key",
                    "x-goog-api-key", "api-key" }, http.SECRET_HEADERS)
    end)

    it("raise on misuse of the redirect options", function()
      assert.has_error(function() http.request { url = srv.url, secret_headers = "x-a" } end,
                       "http.request: secret_headers must be a list of header names, got string")
      assert.has_error(function() http.request { url = srv.url, secret_headers = { "a b" } } end)
      assert.has_error(function() http.request { url = srv.url, max_redirects = -1 } end)
      assert.has_error(function() http.request { url = srv.url, cross_origin_redirects = "yes" } end)
    end)
  end)

  describe("a total timeout on a kept-alive connection", function()
    it("is reported as the total timeout, not as a connect timeout", function()
      assert(http.request { url = srv.url .. "/echo" }) -- the connection to reuse
      local res, err, code = http.request { url = srv.url .. "/sleep/5000", timeout = 0.3 }
      assert.is_nil(res)
      assert.equal("timeout", code)
      assert.mentions("timed out after 0.3 s (timeout)", err)
      assert.not_mentions("connect", err)
    end)
  end)
end)
