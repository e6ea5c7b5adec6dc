-- weft serve against malformed and hostile requests: a `weft serve --store
-- memory:` child on a free loopback port, driven over raw weft.tcp
-- sockets (bytes no HTTP client would send) and weft.http. Every case
-- checks the answer docs/server.md describes, then that the server still
-- answers a good request; at the end the process is alive and exits 0 on
-- SIGTERM. Uses weft, weft.tcp, weft.http, support.procs.
local weft = require "weft"
local procs = require "support.procs"
local json = weft.json

local bin = procs.weft_bin()
local fmt = string.format

-- An upper bound on any single answer (a failure bound, not a wait).
local T = 10

local port, proc

local wait_port = procs.wait_port

-- Read one HTTP response from socket c: {status, headers (lower-case
-- names), body}, or nil, err ("closed" when the server closed without a
-- response).
local function read_response(c)
  local line, err = c:receive("*l", T)
  if not line then return nil, err end
  local status = tonumber(line:match("^HTTP/1%.%d (%d%d%d)"))
  if not status then return nil, "bad status line: " .. line end
  local headers = {}
  while true do
    local h, herr = c:receive("*l", T)
    if not h then return nil, "headers: " .. tostring(herr) end
    if h == "" then break end
    local k, v = h:match("^([^:]+):%s*(.-)%s*$")
    if k then headers[k:lower()] = v end
  end
  local body = ""
  local n = tonumber(headers["content-length"])
  if n and n > 0 then
    local b, berr = c:receive(n, T)
    if not b then return nil, "body: " .. tostring(berr) end
    body = b
  end
  return { status = status, headers = headers, body = body }
end

-- Send raw bytes on a fresh connection and read one response.
local function raw(data)
  local c = assert(weft.tcp.connect("127.0.0.1", port, T))
  local ok, err = c:send(data, T)
  if not ok then c:close(); return nil, "send: " .. tostring(err) end
  local res, rerr = read_response(c)
  c:close()
  return res, rerr
end

-- A raw request: method, path, extra header lines (a list), body (string).
local function request(method, path, hdrs, body)
  local t = { fmt("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n", method, path) }
  for _, h in ipairs(hdrs or {}) do t[#t + 1] = h .. "\r\n" end
  if body then t[#t + 1] = "Content-Length: " .. #body .. "\r\n" end
  t[#t + 1] = "\r\n"
  t[#t + 1] = body or ""
  return table.concat(t)
end

-- The decoded JSON error of res.
local function err_of(res)
  local v = json.decode(res.body)
  assert.is_table(v, "not a JSON body: " .. tostring(res.body))
  assert.is_table(v.error, res.body)
  return v.error
end

-- The server still answers GET /health with 200.
local function assert_healthy()
  local res = assert(weft.http.request{ url = fmt("http://127.0.0.1:%d/api/v1/health", port), timeout = T })
  assert.equal(200, res.status)
  assert.equal("ok", json.decode(res.body).status)
end

-- True while the child process runs.
local function alive()
  return os.execute("kill -0 " .. proc.pid .. " 2>/dev/null") == 0
end

local JSON = "Content-Type: application/json"

describe("weft serve with malformed requests", function()
  setup(function()
    port = procs.free_port()
    proc = procs.spawn({ bin, "serve", "--port", tostring(port), "--store", "memory:" })
    wait_port(port)
  end)

  teardown(function()
    if proc and alive() then procs.kill(proc); procs.wait(proc, 10) end
  end)

  it("answers invalid JSON with 400 invalid_json and its line and column", function()
    local res = assert(raw(request("POST", "/api/v1/agents", { JSON }, '{"name": "a",\n  "model": }')))
    assert.equal(400, res.status)
    assert.truthy(res.headers["content-type"]:find("application/json", 1, true))
    local e = err_of(res)
    assert.equal("invalid_json", e.code)
    assert.equal(2, e.details.line)
    assert.equal(12, e.details.column)
    res = assert(raw(request("POST", "/api/v1/agents", { JSON }, '{"a":\n 1,')))
    assert.equal(400, res.status)
    assert.same({ line = 2, column = 4 }, err_of(res).details)
    assert_healthy()
  end)

  it("answers a body that is not JSON with 415", function()
    local res = assert(raw(request("POST", "/api/v1/agents", { "Content-Type: text/plain" }, "hello")))
    assert.equal(415, res.status)
    assert.equal("unsupported_media_type", err_of(res).code)
  end)

  it("answers headers over max_header_bytes with weft's JSON 431", function()
    local res = assert(raw(request("GET", "/api/v1/health", { "X-Big: " .. ("a"):rep(20000) })))
    assert.equal(431, res.status)
    assert.equal("headers_too_large", err_of(res).code)
    assert.equal("close", (res.headers.connection or ""):lower())
    assert_healthy()
  end)

  it("answers headers beyond MHD's connection memory with weft's JSON 431 (the head gate)", function()
    local res = assert(raw(request("GET", "/api/v1/health", { "X-Big: " .. ("a"):rep(100000) })))
    assert.equal(431, res.status)
    assert.truthy(res.body:find('"error"', 1, true), res.body)
    -- many header lines rather than one long one
    local many = {}
    for i = 1, 3000 do many[i] = fmt("X-H%d: %s", i, ("v"):rep(20)) end
    res = assert(raw(request("GET", "/api/v1/health", many)))
    assert.equal(431, res.status)
    assert.truthy(res.body:find('"error"', 1, true), res.body)
    assert_healthy()
  end)

  it("stays up when a client sends less body than Content-Length and closes", function()
    for i = 1, 20 do
      local c = assert(weft.tcp.connect("127.0.0.1", port, T))
      assert(c:send("POST /api/v1/agents HTTP/1.1\r\nHost: x\r\n" .. JSON .. "\r\nContent-Length: "
        .. (1000 * i) .. "\r\n\r\n" .. '{"id": "trunc', T))
      if i % 2 == 0 then c:shutdown() end -- half-close first on every other one
      c:close()
    end
    assert_healthy()
    -- none of them created anything
    local res = assert(weft.http.request{ url = fmt("http://127.0.0.1:%d/api/v1/agents", port), timeout = T })
    assert.equal(200, res.status)
    assert.equal(0, json.decode(res.body).total)
  end)

  it("serves other clients while a truncated body is still pending", function()
    -- `weft serve` has no option for the body timeout (30 s by default), so
    -- this only checks that a stalled upload blocks nobody else
    local stalled = {}
    for i = 1, 10 do
      stalled[i] = assert(weft.tcp.connect("127.0.0.1", port, T))
      assert(stalled[i]:send("POST /api/v1/agents HTTP/1.1\r\nHost: x\r\n" .. JSON
        .. "\r\nContent-Length: 5000\r\n\r\n{", T))
    end
    for _ = 1, 5 do assert_healthy() end
    -- the stalled connections got no answer yet
    for i = 1, 10 do
      assert.equal(0, stalled[i]:buffered())
      stalled[i]:close()
    end
    assert_healthy()
  end)

  it("answers invalid UTF-8 in a JSON body with 400 invalid_json", function()
    local bodies = {
      '{"id": "u1", "name": "\255\254", "model": "mock:echo", "instructions": "x"}',
      '{"id": "u2", "name": "\237\160\128", "model": "mock:echo", "instructions": "x"}', -- a surrogate
      '{"\192\128": 1}',                                                            -- overlong NUL as a key
      '{"id": "u3", "name": "a\128', -- invalid and truncated
    }
    for _, b in ipairs(bodies) do
      local res = assert(raw(request("POST", "/api/v1/agents", { JSON }, b)))
      assert.equal(400, res.status, res.body)
      assert.equal("invalid_json", json.decode(res.body).error.code, res.body)
    end
    -- whatever was stored is still listed as a JSON answer
    local res = assert(weft.http.request{ url = fmt("http://127.0.0.1:%d/api/v1/agents", port), timeout = T })
    assert.equal(200, res.status)
    assert.is_table(json.decode(res.body))
    for _, id in ipairs({ "u1", "u2", "u3" }) do
      weft.http.request{ method = "DELETE", url = fmt("http://127.0.0.1:%d/api/v1/agents/%s", port, id), timeout = T }
    end
    assert_healthy()
  end)

  it("answers a wrong method with 405 and Allow", function()
    local res = assert(raw(request("DELETE", "/api/v1/health")))
    assert.equal(405, res.status)
    assert.equal("GET", res.headers.allow)
    assert.equal("method_not_allowed", err_of(res).code)
    res = assert(raw(request("PUT", "/api/v1/agents", { JSON }, "{}")))
    assert.equal(405, res.status)
    assert.equal("GET, POST", res.headers.allow)
    assert.same({ "GET", "POST" }, err_of(res).details.allowed)
    res = assert(weft.http.request{ method = "PATCH", url = fmt("http://127.0.0.1:%d/api/v1/workflows", port),
      timeout = T })
    assert.equal(405, res.status)
    assert.truthy(res.headers.allow:find("POST", 1, true))
    res = assert(raw(request("BREW", "/api/v1/health")))
    assert.equal(405, res.status)
    assert.equal("GET", res.headers.allow)
  end)

  it("answers path traversal in ids with 400", function()
    for _, path in ipairs({ "/api/v1/agents/..%2F..%2Fetc", "/api/v1/agents/../x", "/api/v1/agents/..",
                            "/api/v1/agents/%2e%2e", "/api/v1/workflows/..%2Fx/execute",
                            "/api/v1/agents/a%5C..%5Cb" }) do
      local res = assert(raw(request("GET", path)))
      assert.equal(400, res.status, path)
      assert.equal("invalid_path", err_of(res).code, path)
    end
    for _, path in ipairs({ "/api/v1/agents/a%20b", "/api/v1/agents/a..b", "/api/v1/agents/" .. ("x"):rep(65) }) do
      local res = assert(raw(request("GET", path)))
      assert.equal(400, res.status, path)
      assert.equal("invalid_id", err_of(res).code, path)
    end
    -- MHD decodes the path before weft sees it: %00 ends it ("a", not found)
    local res = assert(raw(request("GET", "/api/v1/agents/a%00b")))
    assert.truthy(res.status == 404 or res.status == 400, res.status)
    res = assert(raw(request("GET", "/api/v1/agents/%zz")))
    assert.equal(400, res.status)
    assert.equal("invalid_path", err_of(res).code)
    -- through an HTTP client too (curl keeps %2F encoded)
    res = assert(weft.http.request{ url = fmt("http://127.0.0.1:%d/api/v1/agents/..%%2F..%%2Fetc", port), timeout = T })
    assert.equal(400, res.status)
    assert_healthy()
  end)

  it("answers a garbage request line with 400", function()
    for _, line in ipairs({ "HELLO WORLD\r\n\r\n", "\1\2garbage nonsense here\r\n\r\n",
                            "GET / FOO/9.9\r\n\r\n", "GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
                            "POST /api/v1/agents HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n" }) do
      local res, err = raw(line)
      assert(res, ("%q: %s"):format(line, tostring(err)))
      assert.equal(400, res.status, ("%q"):format(line))
    end
    -- a lone token: MHD closes without an answer (or answers 400)
    for _, line in ipairs({ "HELLO\r\n\r\n", "GET\r\n\r\n" }) do
      local res, err = raw(line)
      if res then assert.equal(400, res.status) else assert.equal("closed", err) end
    end
    assert_healthy()
  end)

  it("ignores a body on GET and keeps the connection in step", function()
    local c = assert(weft.tcp.connect("127.0.0.1", port, T))
    -- the body looks like a request: it must not be taken for the next one
    local body = "DELETE /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n"
    assert(c:send("GET /api/v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body
      .. "GET /api/v1/agents HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", T))
    local r1 = assert(read_response(c))
    assert.equal(200, r1.status)
    assert.equal("ok", json.decode(r1.body).status)
    local r2 = assert(read_response(c))
    assert.equal(200, r2.status)
    assert.is_number(json.decode(r2.body).total)
    assert.equal("", (c:receive("*a", T))) -- nothing more, then the server closes
    c:close()
  end)

  it("still answers a good request after many concurrent malformed ones", function()
    local bad = {
      request("POST", "/api/v1/agents", { JSON }, "{nope"),
      request("DELETE", "/api/v1/health"),
      request("GET", "/api/v1/agents/..%2Fx"),
      "HELLO WORLD\r\n\r\n",
      request("GET", "/api/v1/health", { "X-Big: " .. ("a"):rep(20000) }),
      "POST /api/v1/agents HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n\r\n{", -- truncated, closed
    }
    local want = { 400, 405, 400, 400, 431, false }
    local n = 300
    local tasks = {}
    for i = 1, n do
      tasks[i] = weft.go(function()
        local k = (i - 1) % #bad + 1
        local c = assert(weft.tcp.connect("127.0.0.1", port, T))
        assert(c:send(bad[k], T))
        if not want[k] then c:close(); return true end
        local res, err = read_response(c)
        c:close()
        if not res then return false, ("case %d: %s"):format(k, tostring(err)) end
        if res.status ~= want[k] then return false, ("case %d: status %d"):format(k, res.status) end
        return true
      end)
    end
    for i = 1, n do
      local ok, why = tasks[i]:wait()
      assert(ok, why)
    end
    assert_healthy()
    local res = assert(weft.http.request{ method = "POST", url = fmt("http://127.0.0.1:%d/api/v1/agents", port),
      headers = { ["content-type"] = "application/json" }, timeout = T,
      body = { id = "good", name = "good", model = "mock:echo", instructions = "hi" } })
    assert.equal(201, res.status, res.body)
  end)

  it("is still running, and exits 0 on SIGTERM", function()
    assert.is_true(alive())
    os.execute("kill -TERM " .. proc.pid)
    local rc, _, err = procs.wait(proc, 40)
    assert.equal(0, rc, err)
    assert.truthy(err:find("weft: stopped", 1, true), err)
    assert.falsy(err:find("internal error", 1, true), err)
    proc = nil
  end)
end)
