-- weft serve under hostile clients: a `weft serve --store memory:` child
-- on a free loopback port (with a --scripts directory), driven over raw
-- weft.tcp sockets where no HTTP client would send the bytes (encoded NUL
-- bytes in ids, chunked bodies without end, clients that leave an SSE
-- stream) and weft.http elsewhere. Each case is one item of the security
-- issue; the last one stops the server with SIGTERM while a stream is open.
-- Uses weft, weft.tcp, weft.http, support.procs.
local weft = require "weft"
local procs = require "support.procs"
local files = require "support.files"
local json = weft.json

local bin = procs.weft_bin()
local fmt = string.format

-- An upper bound on any single answer (a failure bound, not a wait).
local T = 10

local port, proc, dir

local function url(path) return fmt("http://127.0.0.1:%d%s", port, path) end

local wait_port = procs.wait_port

-- A JSON request through weft.http: res with res.json decoded (if any).
local function call(method, path, body)
  local res = assert(weft.http.request{ method = method, url = url(path), timeout = T, body = body,
    headers = body ~= nil and { ["content-type"] = "application/json" } or nil })
  res.json = res.body ~= "" and json.decode(res.body) or nil
  return res
end

-- Send raw bytes on a fresh connection; the first response's status line,
-- its headers and body (Content-Length framed), or nil, err.
local function raw(data)
  local c = assert(weft.tcp.connect("127.0.0.1", port, T))
  local ok, err = c:send(data, T)
  if not ok then c:close(); return nil, "send: " .. tostring(err) end
  local line, lerr = c:receive("*l", T)
  if not line then c:close(); return nil, lerr end
  local headers = {}
  while true do
    local h = c:receive("*l", T)
    if not h or h == "" then break end
    local k, v = h:match("^([^:]+):%s*(.-)%s*$")
    if k then headers[k:lower()] = v end
  end
  local body = ""
  local n = tonumber(headers["content-length"])
  if n and n > 0 then body = c:receive(n, T) or "" end
  c:close()
  return { status = tonumber(line:match("^HTTP/1%.%d (%d%d%d)")), line = line, headers = headers, body = body }
end

-- The value of a gauge in /metrics.
local function metric(name)
  local res = call("GET", "/metrics")
  assert.equal(200, res.status)
  return tonumber(res.body:match("\n" .. name .. " (%d+)") or res.body:match("^" .. name .. " (%d+)"))
end

-- An execution of the approval workflow, paused on its request; its id.
local function paused_execution()
  local res = call("POST", "/api/v1/workflows/appr/execute", { input = "go", async = true })
  assert.equal(202, res.status, res.body)
  local id = res.json.id
  for _ = 1, 2000 do
    if call("GET", "/api/v1/executions/" .. id).json.status == "idle" then return id end
    weft.sleep(0.005)
  end
  error("execution " .. id .. " did not pause")
end

-- Does the body mention a path of the server's filesystem?
local function leaks_path(s)
  return s:find(dir, 1, true) or s:find("/[%w_.-]+%.lua") or s:find("traceback", 1, true)
end

describe("weft serve under hostile clients", function()
  setup(function()
    dir = files.tempdir()
    files.write(dir .. "/upper.lua", [[
local weft = require "weft"
return weft.workflow("upper"):start(weft.executor("u", function(m, ctx)
  ctx:yield_output(tostring(m):upper())
end)):build()
]])
    files.write(dir .. "/broken.lua", "return nil + nil\n")
    port = procs.free_port()
    proc = procs.spawn({ bin, "serve", "--port", tostring(port), "--store", "memory:", "--scripts", dir })
    wait_port(port)
    assert.equal(201, call("POST", "/api/v1/workflows",
      { id = "appr", nodes = { { id = "a", builtin = "approval", options = { prompt = "ok?" } } } }).status)
  end)

  teardown(function()
    if proc and os.execute("kill -0 " .. proc.pid .. " 2>/dev/null") == 0 then
      procs.kill(proc)
      procs.wait(proc, 10)
    end
    files.remove(dir)
  end)

  it("refuses ids with an encoded NUL as invalid_id instead of cutting them", function()
    assert.equal(201, call("POST", "/api/v1/agents",
      { id = "victim", name = "v", model = "mock:echo", instructions = "x" }).status)
    local res = assert(raw("DELETE /api/v1/agents/victim%00.evil HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert.equal(400, res.status, res.body)
    assert.equal("invalid_id", json.decode(res.body).error.code)
    assert.equal(200, call("GET", "/api/v1/agents/victim").status) -- still there
    res = assert(raw("GET /api/v1/workflows/upper%00.lua HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert.equal(400, res.status, res.body)
    assert.equal("invalid_id", json.decode(res.body).error.code)
    for _, p in ipairs({ "/api/v1/agents/victim%2F..%2Fx", "/api/v1/agents/a%2Fb", "/api/v1/agents/victim%2500" }) do
      res = assert(raw("GET " .. p .. " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
      assert.equal(400, res.status, p)
    end
    -- decoded once: an escaped letter is the letter
    assert.equal(200, call("GET", "/api/v1/workflows/%75pper").status)
  end)

  it("names no server path in workflow listings, documents or errors", function()
    local res = call("GET", "/api/v1/workflows")
    assert.equal(200, res.status)
    assert.falsy(leaks_path(res.body), res.body)
    local files = {}
    for _, w in ipairs(res.json.items) do if w.source == "lua" then files[w.id] = w.file end end
    assert.same({ upper = "upper.lua", broken = "broken.lua" }, files)
    res = call("GET", "/api/v1/workflows/broken")
    assert.equal(200, res.status)
    assert.is_string(res.json.error)
    assert.falsy(leaks_path(res.body), res.body)
    res = call("POST", "/api/v1/workflows/broken/execute", { input = "x" })
    assert.equal(500, res.status)
    assert.falsy(leaks_path(res.body), res.body)
  end)

  it("refuses deeply nested input at the door and keeps listing executions", function()
    local deep = '{"async": true, "input": ' .. ("["):rep(998) .. ("]"):rep(998) .. "}"
    local res = assert(raw(fmt("POST /api/v1/workflows/appr/execute HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
      .. "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", #deep, deep)))
    assert.equal(400, res.status, res.body)
    local e = json.decode(res.body).error
    assert.equal("invalid_json", e.code)
    assert.equal(100, e.details.max_depth)
    -- what gets in can be shown everywhere (paused: its request holds the input)
    local ok = '{"async": true, "input": ' .. ("["):rep(90) .. ("]"):rep(90) .. "}"
    res = assert(raw(fmt("POST /api/v1/workflows/appr/execute HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
      .. "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", #ok, ok)))
    assert.equal(202, res.status, res.body)
    local id = json.decode(res.body).id
    for _ = 1, 2000 do
      if call("GET", "/api/v1/executions/" .. id).json.status == "idle" then break end
      weft.sleep(0.005)
    end
    res = call("GET", "/api/v1/executions")
    assert.equal(200, res.status, res.body)
    res = call("GET", "/api/v1/executions/" .. id)
    assert.equal(200, res.status, res.body)
    assert.equal("idle", res.json.status)
    assert.falsy(leaks_path(res.body), res.body)
  end)

  it("stops reading a chunked body over the limit and answers 413", function()
    local c = assert(weft.tcp.connect("127.0.0.1", port, T))
    assert(c:send("POST /api/v1/agents HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      .. "Transfer-Encoding: chunked\r\n\r\n", T))
    local chunk = fmt("%x\r\n", 64 * 1024) .. ("z"):rep(64 * 1024) .. "\r\n"
    local sent, limit = 0, 64 * 1024 * 1024 -- the server's cap is 1 MiB
    while sent < limit do
      if not c:send(chunk, T) then break end
      sent = sent + 64 * 1024
    end
    if sent >= limit then c:send("0\r\n\r\n", T) end
    local line = c:receive("*l", T)
    c:close()
    assert.is_true(sent < limit, "the whole body was read before an answer")
    assert.equal(413, tonumber((line or ""):match("^HTTP/1%.%d (%d+)")), line)
    assert.equal(200, call("GET", "/api/v1/health").status)
  end)

  -- Everything the server writes on a connection until it closes it.
  local function all_of(c)
    local data, err, partial = c:receive("*a", T)
    c:close()
    assert(data or err ~= "timeout", "the server did not close the connection")
    return data or partial or ""
  end

  -- The answers in a byte stream: status lines, header tables, bodies
  -- (Content-Length framed); what follows the last one is `rest`.
  local function answers(data)
    local list, pos = {}, 1
    while pos <= #data do
      local head_end = data:find("\r\n\r\n", pos, true)
      if not head_end then break end
      local head = data:sub(pos, head_end - 1)
      local status = tonumber(head:match("^HTTP/1%.1 (%d%d%d) "))
      if not status then break end
      local headers = {}
      for k, v in head:gmatch("\r\n([^:\r\n]+):%s*([^\r\n]*)") do headers[k:lower()] = v end
      local n = tonumber(headers["content-length"]) or 0
      list[#list + 1] = { status = status, headers = headers, body = data:sub(head_end + 4, head_end + 3 + n) }
      pos = head_end + 4 + n
    end
    return list, data:sub(pos)
  end

  -- One clean 400 bad_request closing the connection, and nothing else.
  local function assert_one_400(list, rest, what)
    local last = list[#list]
    assert.is_not_nil(last, what .. ": no answer")
    assert.equal(400, last.status, what)
    assert.equal("close", last.headers.connection, what)
    assert.equal("bad_request", json.decode(last.body).error.code, what)
    assert.equal("", rest, what .. ": bytes after the 400: " .. rest)
  end

  local BAD_FRAMING = {
    ["a non-numeric Content-Length"] = "Content-Length: abc\r\n",
    ["a trailing garbage Content-Length"] = "Content-Length: 12x\r\n",
    ["a negative Content-Length"] = "Content-Length: -1\r\n",
    ["an overflowing Content-Length"] = "Content-Length: 99999999999999999999999\r\n",
    ["an empty Content-Length"] = "Content-Length:\r\n",
    ["duplicated Content-Lengths with different values"] = "Content-Length: 5\r\nContent-Length: 6\r\n",
    ["Content-Length with Transfer-Encoding: chunked"] = "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
    ["Transfer-Encoding: chunked with Content-Length"] = "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
    ["a Transfer-Encoding other than chunked"] = "Transfer-Encoding: gzip, chunked\r\n",
    ["whitespace before the colon of Content-Length"] = "Content-Length : 5\r\n",
    ["a Content-Length folded onto the next line"] = "Content-Length:\r\n 5\r\n",
  }
  local function bad_request(hdr)
    return "POST /api/v1/agents HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" .. hdr .. "\r\nhello"
  end
  local GOOD = "GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n"

  for what, hdr in pairs(BAD_FRAMING) do
    it("answers " .. what .. " with one clean 400 on the first request of a connection", function()
      local c = assert(weft.tcp.connect("127.0.0.1", port, T))
      assert(c:send(bad_request(hdr), T))
      local list, rest = answers(all_of(c))
      assert.equal(1, #list, what)
      assert_one_400(list, rest, what)
      assert.equal(200, call("GET", "/api/v1/health").status)
    end)

    it("answers " .. what .. " with one clean 400 on a later keep-alive request", function()
      local c = assert(weft.tcp.connect("127.0.0.1", port, T))
      assert(c:send(GOOD, T))
      local line = assert(c:receive("*l", T))
      assert.equal("HTTP/1.1 200 OK", line)
      local n
      repeat
        local h = assert(c:receive("*l", T))
        n = n or tonumber(h:lower():match("^content%-length:%s*(%d+)"))
      until h == ""
      assert(c:receive(n, T))
      assert(c:send(bad_request(hdr), T)) -- on the same connection, after the answer
      local list, rest = answers(all_of(c))
      assert.equal(1, #list, what)
      assert_one_400(list, rest, what)
    end)

    it("answers " .. what .. " pipelined behind a good request: the good answer, then one clean 400", function()
      local c = assert(weft.tcp.connect("127.0.0.1", port, T))
      assert(c:send(GOOD .. bad_request(hdr), T))
      local list, rest = answers(all_of(c))
      assert.equal(2, #list, what)
      assert.equal(200, list[1].status)
      assert.equal("ok", json.decode(list[1].body).status)
      assert_one_400(list, rest, what)
    end)
  end

  it("keeps serving keep-alive and pipelined requests with valid framing", function()
    local body = '{"id": "kept", "name": "k", "model": "mock:echo", "instructions": "x"}'
    local post = fmt("POST /api/v1/agents HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      .. "Content-Length: %d\r\nContent-Length: %d\r\n\r\n%s", #body, #body, body)
    local c = assert(weft.tcp.connect("127.0.0.1", port, T))
    assert(c:send(GOOD .. post .. "GET /api/v1/agents/kept HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", T))
    local list, rest = answers(all_of(c))
    assert.equal("", rest)
    assert.same({ 200, 201, 200 }, { list[1].status, list[2].status, list[3] and list[3].status })
    assert.equal("kept", json.decode(list[3].body).id)
  end)

  it("releases SSE clients that leave a paused execution's stream", function()
    local id = paused_execution()
    local path = "/api/v1/executions/" .. id .. "/events"
    -- more visits than the connection cap (1000), each leaving once the
    -- stream is idle (nothing to replay after Last-Event-ID: nothing more
    -- is ever written, so no write can find out that the client left)
    for i = 1, 1100 do
      local c = assert(weft.tcp.connect("127.0.0.1", port, T))
      assert(c:send("GET " .. path .. " HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 1000000\r\n\r\n", T))
      local line = c:receive("*l", T)
      repeat local h = c:receive("*l", T) until not h or h == ""
      c:close()
      assert.equal(200, tonumber((line or ""):match("^HTTP/1%.%d (%d+)")), fmt("visit %d: %s", i, tostring(line)))
    end
    -- released (a bounded poll: only the /metrics request itself is left)
    local n
    for _ = 1, 2000 do
      n = metric("weft_http_connections")
      if n <= 1 then break end
      weft.sleep(0.005)
    end
    assert.is_true(n <= 1, "connections still open: " .. tostring(n))
    assert.equal(200, call("GET", "/api/v1/health").status)
  end)

  it("ends open streams at SIGTERM with a last event and exits without waiting for them", function()
    local id = paused_execution()
    local got, opened = {}, weft.cond()
    local client = weft.go(function()
      return weft.http.request{ url = url("/api/v1/executions/" .. id .. "/events"), framing = "sse", timeout = 120,
        stream = function(ev) got[#got + 1] = ev; opened:signal() end }
    end)
    while #got == 0 do opened:wait(T) end
    os.execute("kill -TERM " .. proc.pid)
    local rc, _, err = procs.wait(proc, 120)
    proc = nil
    assert.equal(0, rc, err)
    assert.truthy(err:find("weft: stopped", 1, true), err)
    assert.falsy(err:find("cut", 1, true), err)
    client:wait()
    assert.equal("shutdown", got[#got].event)
    assert.same({ reason = "server shutting down" }, json.decode(got[#got].data))
  end)
end)
