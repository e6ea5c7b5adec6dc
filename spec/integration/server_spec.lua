-- weft.server: the libmicrohttpd server on the weft loop, exercised with the
-- weft.http client and raw weft.tcp sockets on 127.0.0.1 — routing data
-- (method, path, query, headers, body), JSON, keep-alive, the limits (413,
-- 431, 408 slowloris, 503 connection cap), handler errors, SSE streams,
-- clients leaving mid-stream, many concurrent requests, close + drain.
local weft = require "weft"
local server = require "weft.server"
local http = require "weft.http"
local tcp = require "weft.tcp"
local json = require "weft.json"

-- Servers started by a test, drained after it.
local servers = {}

-- Start a server with handler and extra options; returns it.
local function start(handler, opts)
  opts = opts or {}
  opts.port, opts.handler = 0, handler
  local srv = assert(server.listen(opts))
  servers[#servers + 1] = srv
  return srv
end

local function url(srv, path) return "http://127.0.0.1:" .. srv.port .. path end

-- Read one HTTP/1.1 response (with a Content-Length) from a raw socket:
-- status, headers (lower-case), body.
local function read_response(c)
  local line = assert(c:receive("*l", 5))
  local status = tonumber(line:match("^HTTP/1%.%d (%d+)"))
  local h = {}
  while true do
    local l = assert(c:receive("*l", 5))
    if l == "" then break end
    local k, v = l:match("^([^:]+):%s*(.*)$")
    h[k:lower()] = v
  end
  local body = assert(c:receive(tonumber(h["content-length"]), 5))
  return status, h, body
end

-- Echo what the handler saw, as JSON.
local function echo(req, res)
  res:json(200, {
    method = req.method, path = req.path, raw_path = req.raw_path, query = req.query,
    raw_query = req.raw_query, headers = req.headers, body = req.body,
  })
end

describe("weft.server", function()
  after_each(function()
    for _, srv in ipairs(servers) do srv:drain(1) end
    servers = {}
  end)

  describe("listen", function()
    it("picks a free port for port 0", function()
      local a, b = start(echo), start(echo)
      assert.is_true(a.port > 0)
      assert.are_not.equal(a.port, b.port)
    end)

    it("returns nil, the reason and 'io' when the port is taken", function()
      local a = start(echo)
      local srv, err, code = server.listen{ port = a.port, handler = echo }
      assert.is_nil(srv)
      assert.matches("cannot listen on 127.0.0.1:" .. a.port, err)
      assert.equal("io", code)
    end)

    it("raises on misuse, naming the option", function()
      assert.has_error(function() server.listen{ port = 0 } end,
        "server.listen: handler is required")
      assert.has_error(function() server.listen{ port = 0, handler = echo, bogus = 1 } end,
        "server.listen: unknown option 'bogus'")
      assert.has_error(function() server.listen{ port = 0, handler = echo, max_body_bytes = -1 } end,
        "server.listen: max_body_bytes must be > 0")
    end)
  end)

  describe("requests", function()
    it("gives the handler method, path, parsed query, headers and body", function()
      local srv = start(echo)
      local res = assert(http.request{
        url = url(srv, "/a/b%20c?x=1&name=h%C3%A9+llo&flag"),
        headers = { ["X-Token"] = "abc" },
      })
      assert.equal(200, res.status)
      assert.equal("application/json", res.headers["content-type"])
      local got = json.decode(res.body)
      assert.equal("GET", got.method)
      assert.equal("/a/b c", got.path)
      assert.same({ x = "1", name = "hé llo", flag = "" }, got.query)
      assert.equal("x=1&name=h%C3%A9+llo&flag", got.raw_query)
      assert.equal("abc", got.headers["x-token"])
      assert.equal("/a/b%20c", got.raw_path)
    end)

    it("gives the raw path as sent, and the path decoded once, NUL bytes included", function()
      local seen
      local srv = start(function(req, res) seen = req; res:send("ok") end)
      local c = assert(tcp.connect("127.0.0.1", srv.port, 5))
      c:send("GET /agents/victim%00.evil/%2541?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      local data = assert(c:receive("*a", 5))
      c:close()
      assert.matches("^HTTP/1%.1 200", data)
      assert.equal("/agents/victim%00.evil/%2541", seen.raw_path)
      assert.equal("/agents/victim\0.evil/%41", seen.path)
      assert.equal("q=1", seen.raw_query)
    end)

    it("refuses bad response header names and values, however often a good name was used before", function()
      local srv = start(function(req, res)
        local results = {}
        for i, h in ipairs({ { "X-Ok", "1" }, { "X-Ok", "2" }, { "bad name", "v" }, { "X-Ok", "a\r\nb" },
                             { "X-Ok", "3" }, { "bad name", "v" } }) do
          results[i] = (pcall(res.header, res, h[1], h[2]))
        end
        res:json(200, results)
      end)
      local res = assert(http.request{ url = url(srv, "/h") })
      assert.equal(200, res.status)
      assert.same({ true, true, false, false, true, false }, json.decode(res.body))
      assert.equal("3", res.headers["x-ok"])
    end)

    it("collects a POST body and answers JSON", function()
      local srv = start(function(req, res)
        local v = json.decode(req.body)
        res:json(201, { sum = v.a + v.b })
      end)
      local res = assert(http.request{ method = "POST", url = url(srv, "/sum"),
                                       body = { a = 2, b = 40 } })
      assert.equal(201, res.status)
      assert.same({ sum = 42 }, json.decode(res.body))
    end)

    it("sends the status and headers the handler sets", function()
      local srv = start(function(req, res)
        res:status(404):header("X-Why", "nothing at " .. req.path)
        res:send("not found")
      end)
      local res = assert(http.request{ url = url(srv, "/nope") })
      assert.equal(404, res.status)
      assert.equal("nothing at /nope", res.headers["x-why"])
      assert.equal("text/plain; charset=utf-8", res.headers["content-type"])
      assert.equal("not found", res.body)
    end)

    it("lets the handler yield (weft.sleep) before answering", function()
      local srv = start(function(_, res)
        weft.sleep(0.01)
        res:send("late")
      end)
      assert.equal("late", assert(http.request{ url = url(srv, "/") }).body)
    end)

    it("keeps a connection alive for two requests", function()
      local srv = start(echo)
      local c = assert(tcp.connect("127.0.0.1", srv.port, 5))
      assert(c:send("GET /one HTTP/1.1\r\nHost: x\r\n\r\n"))
      local s1, _, b1 = read_response(c)
      assert(c:send("GET /two?k=v HTTP/1.1\r\nHost: x\r\n\r\n"))
      local s2, _, b2 = read_response(c)
      assert.equal(200, s1)
      assert.equal(200, s2)
      assert.equal("/one", json.decode(b1).path)
      assert.same({ k = "v" }, json.decode(b2).query)
      c:close()
    end)

    it("answers a handler error with a 500 JSON error, without the traceback", function()
      local srv = start(function() error("secret detail in boom") end)
      local res = assert(http.request{ url = url(srv, "/") })
      assert.equal(500, res.status)
      local e = json.decode(res.body).error
      assert.equal("internal", e.code)
      assert.is_string(e.message)
      assert.not_matches("secret", res.body)
      assert.not_matches("traceback", res.body)
    end)

    it("answers 500 when the handler returns without a response", function()
      local srv = start(function() end)
      local res = assert(http.request{ url = url(srv, "/") })
      assert.equal(500, res.status)
      assert.equal("internal", json.decode(res.body).error.code)
    end)

    it("refuses a second response with code 'error'", function()
      local second
      local srv = start(function(_, res)
        res:send("one")
        second = { res:send("two") }
      end)
      assert.equal("one", assert(http.request{ url = url(srv, "/") }).body)
      assert.same({ nil, "response already sent", "error" }, second)
    end)
  end)

  describe("limits", function()
    it("answers 413 to a body over max_body_bytes", function()
      local called = false
      local srv = start(function(_, res) called = true; res:send("x") end,
                        { max_body_bytes = 1000 })
      local res = assert(http.request{ method = "POST", url = url(srv, "/"),
                                       body = string.rep("a", 5000) })
      assert.equal(413, res.status)
      assert.equal("body_too_large", json.decode(res.body).error.code)
      assert.is_false(called)
      -- at the cap exactly it is accepted
      res = assert(http.request{ method = "POST", url = url(srv, "/"), body = string.rep("a", 1000) })
      assert.equal(200, res.status)
    end)

    it("answers 413 to a chunked body over the cap", function()
      local srv = start(echo, { max_body_bytes = 100 })
      local c = assert(tcp.connect("127.0.0.1", srv.port, 5))
      assert(c:send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    .. "c8\r\n" .. string.rep("b", 200) .. "\r\n0\r\n\r\n"))
      local status, _, body = read_response(c)
      assert.equal(413, status)
      assert.equal("body_too_large", json.decode(body).error.code)
      c:close()
    end)

    it("answers 431 to headers over max_header_bytes", function()
      local srv = start(echo, { max_header_bytes = 1024 })
      local res = assert(http.request{ url = url(srv, "/"),
                                       headers = { ["X-Big"] = string.rep("h", 2000) } })
      assert.equal(431, res.status)
      assert.equal("headers_too_large", json.decode(res.body).error.code)
    end)

    it("answers 431 JSON at the gate to a head far over libmicrohttpd's memory pool", function()
      -- far over the pool (2 * max_header_bytes + 16 KiB, at least 32 KiB):
      -- weft reads heads up to max_header_bytes + 8 KiB before MHD does
      local srv = start(echo, { max_header_bytes = 1024 })
      local c = assert(tcp.connect("127.0.0.1", srv.port, 5))
      c:send("GET / HTTP/1.1\r\nHost: x\r\nX-Huge: " .. string.rep("h", 100000) .. "\r\n\r\n")
      local data = c:receive("*a", 5) or ""
      c:close()
      assert.matches("^HTTP/1%.1 431 ", data)
      assert.matches('"code":"headers_too_large"', data)
      assert.matches("\r\nConnection: close\r\n", data)
    end)

    it("cuts a slowloris client after header_timeout with a 408", function()
      local srv = start(echo, { header_timeout = 0.5 })
      local c = assert(tcp.connect("127.0.0.1", srv.port, 5))
      local rest = "X-Slow: " .. string.rep("s", 100) .. "\r\n\r\n"
      local sent, send_err = 0, nil
      local writer = weft.go(function()
        assert(c:send("GET / HTTP/1.1\r\nHost: x\r\n"))
        for i = 1, #rest do
          local ok, err = c:send(rest:sub(i, i))
          if not ok then send_err = err return end
          sent = i
          weft.sleep(0.2)
          if c:is_closed() then return end
        end
      end)
      local data = c:receive("*a", 30) or ""
      c:close()
      writer:wait()
      assert.matches("^HTTP/1%.1 408", data)
      assert.matches('"code":"timeout"', data)
      -- cut long before the headers were complete
      assert.is_true(sent < #rest)
      local _ = send_err
    end)

    it("stops reading a chunked body at max_body_bytes and answers 413", function()
      local called = false
      local srv = start(function(_, res) called = true; res:send("read it all") end, { max_body_bytes = 64 * 1024 })
      local c = assert(tcp.connect("127.0.0.1", srv.port, 5))
      assert(c:send("POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 5))
      local chunk = ("%x\r\n"):format(64 * 1024) .. ("z"):rep(64 * 1024) .. "\r\n"
      local sent, limit = 0, 64 * 1024 * 1024 -- far more than any socket buffers
      -- the server answers and stops reading: the sends fail long before
      while sent < limit do
        local ok = c:send(chunk, 5)
        if not ok then break end
        sent = sent + 64 * 1024
      end
      if sent >= limit then c:send("0\r\n\r\n", 5) end
      local answer = c:receive("*l", 30)
      c:close()
      assert.is_true(sent < limit, "the whole body was read before an answer")
      assert.equal(413, tonumber((answer or ""):match("^HTTP/1%.%d (%d+)")), answer)
      assert.is_false(called)
      assert.equal(200, assert(http.request{ url = url(srv, "/") }).status)
    end)

    it("answers 503 to a connection over max_connections", function()
      local srv = start(echo, { max_connections = 1 })
      local a = assert(tcp.connect("127.0.0.1", srv.port, 5))
      a:send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.equal(200, (read_response(a))) -- a is now counted, and kept open
      local res = assert(http.request{ url = url(srv, "/b") })
      assert.equal(503, res.status)
      assert.equal("unavailable", json.decode(res.body).error.code)
      a:close()
    end)
  end)

  describe("streams", function()
    it("streams 5 server-sent events written over time, in order", function()
      local srv = start(function(_, res)
        local w = assert(res:stream(200, { ["Content-Type"] = "text/event-stream" }))
        for i = 1, 5 do
          weft.sleep(0.02)
          assert(w:write("id: " .. i .. "\ndata: event " .. i .. "\n\n"))
        end
        w:close()
      end)
      local got = {}
      local res = assert(http.request{ url = url(srv, "/events"), framing = "sse",
                                       stream = function(ev) got[#got + 1] = ev end })
      assert.equal(200, res.status)
      assert.equal("text/event-stream", res.headers["content-type"])
      assert.equal(5, #got)
      for i = 1, 5 do
        assert.equal("event " .. i, got[i].data)
        assert.equal(tostring(i), got[i].id)
      end
    end)

    it("sends a chunked response to a raw HTTP/1.1 client", function()
      local srv = start(function(_, res)
        local w = res:stream(200)
        w:write("hello ")
        w:write("world")
        w:close()
      end)
      local c = assert(tcp.connect("127.0.0.1", srv.port, 5))
      c:send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      local data = assert(c:receive("*a", 5))
      c:close()
      assert.matches("[Tt]ransfer%-[Ee]ncoding: chunked", data)
      assert.matches("\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n$", data)
    end)

    it("releases the connection of a client that leaves an idle stream, without a write", function()
      local waiting, handlers, idle = weft.cond(), 0, weft.cond()
      local srv = start(function(_, res)
        local w = res:stream(200, { ["Content-Type"] = "text/event-stream" })
        w:write(": hi\n\n")
        handlers = handlers + 1
        waiting:signal()
        idle:wait(60) -- the stream stays idle: nothing is written
      end, { max_connections = 20 })
      -- many more visits than the connection cap, each leaving an idle stream
      for i = 1, 60 do
        local c = assert(tcp.connect("127.0.0.1", srv.port, 5))
        assert(c:send("GET /events HTTP/1.1\r\nHost: x\r\n\r\n", 5))
        local line = assert(c:receive("*l", 5))
        assert.equal(200, tonumber(line:match("^HTTP/1%.%d (%d+)")), "visit " .. i)
        while handlers < i do waiting:wait(5) end
        c:close()
      end
      -- all of them are released (poll, bounded: the release is not timed)
      for _ = 1, 2000 do
        if srv:connections() == 0 then break end
        weft.sleep(0.005)
      end
      assert.equal(0, srv:connections())
      local res = assert(http.request{ url = url(srv, "/after"), timeout = 5, stream = function() return false end })
      assert.equal(200, res.status)
      idle:signal()
    end)

    it("ends the writer with 'closed' when the client leaves mid-stream", function()
      local result, code, writes = nil, nil, 0
      local finished = weft.cond()
      local srv = start(function(_, res)
        local w = res:stream(200, { ["Content-Type"] = "text/event-stream" })
        for _ = 1, 2000 do
          local ok, err, ecode = w:write("data: tick\n\n")
          if not ok then result, code = err, ecode break end
          writes = writes + 1
          weft.sleep(0.01)
        end
        finished:signal()
      end)
      local n = 0
      local res = assert(http.request{ url = url(srv, "/"), framing = "sse",
                                       stream = function() n = n + 1; return n < 3 end })
      assert.equal(200, res.status)
      while result == nil and writes < 2000 do finished:wait(10) end
      assert.equal("closed", result)
      assert.equal("closed", code)
      assert.is_true(writes >= 3)
    end)
  end)

  describe("load", function()
    it("serves 200 concurrent requests", function()
      local srv = start(function(req, res)
        weft.sleep(0.01)
        res:send(req.query.i)
      end)
      local tasks, bodies = {}, {}
      for i = 1, 200 do
        tasks[i] = weft.go(function()
          local res = assert(http.request{ url = url(srv, "/?i=" .. i), timeout = 30 })
          bodies[i] = res.status == 200 and res.body
        end)
      end
      for i = 1, 200 do tasks[i]:wait() end
      for i = 1, 200 do assert.equal(tostring(i), bodies[i]) end
    end)
  end)

  describe("close and drain", function()
    it("completes an in-flight slow request, then refuses connections", function()
      local started, release = weft.cond(), weft.cond()
      local srv = start(function(_, res)
        started:signal()
        release:wait(10)
        res:send("done")
      end)
      local got
      local client = weft.go(function()
        got = assert(http.request{ url = url(srv, "/slow"), timeout = 10 })
      end)
      started:wait(10)
      assert.equal(1, srv:inflight())
      srv:close()
      weft.go(function() release:signal() end)
      assert.is_true(srv:drain(5))
      client:wait()
      assert.equal(200, got.status)
      assert.equal("done", got.body)
      local c, err = tcp.connect("127.0.0.1", srv.port, 1)
      assert.is_nil(c)
      assert.matches("refused", err)
    end)

    it("cuts requests still running at the drain timeout", function()
      local started, release = weft.cond(), weft.cond()
      local send_result
      local srv = start(function(_, res)
        started:signal()
        release:wait(10)
        send_result = { res:send("late") }
      end)
      local client = weft.go(function()
        return http.request{ url = url(srv, "/"), timeout = 10 }
      end)
      started:wait(10)
      local ok, err = srv:drain(0.1)
      assert.is_false(ok)
      assert.equal("timeout", err)
      local res, cerr = client:wait()
      assert.is_nil(res, "the cut request got an answer")
      assert.is_string(cerr)
      release:signal()
      weft.go(function() end):wait() -- let the handler run on
      assert.same({ nil, "closed", "closed" }, send_result)
    end)

    it("ends open streams at the start of the drain, SSE ones with a last shutdown event", function()
      local write_result, started = nil, weft.cond()
      local forever = weft.cond()
      local srv = start(function(_, res)
        local w = res:stream(200, { ["Content-Type"] = "text/event-stream" })
        assert(w:write("data: hello\n\n"))
        started:signal()
        forever:wait(60) -- a stream on something that never ends
        write_result = select(2, w:write("data: too late\n\n"))
      end)
      local got = {}
      local client = weft.go(function()
        return http.request{ url = url(srv, "/events"), framing = "sse", timeout = 30,
                             stream = function(ev) got[#got + 1] = ev end }
      end)
      started:wait(10)
      assert.equal(1, srv:streams())
      -- nothing else is in flight: the drain does not wait for the stream
      local ok, err = srv:drain(30)
      assert.is_true(ok, err)
      local res = assert(client:wait())
      assert.equal(200, res.status)
      assert.equal("hello", got[1].data)
      assert.equal("shutdown", got[#got].event)
      assert.same({ reason = "server shutting down" }, json.decode(got[#got].data))
      forever:signal()
      weft.go(function() end):wait()
      assert.is_string(write_result)
    end)
  end)
end)
