-- spec/integration/http_spec.lua — weft.http (docs/io.md) against the
-- provider test server (spec/support/provider_server.lua) on 127.0.0.1:
-- requests and responses, streaming (raw, SSE, NDJSON), every failure code,
-- the per-host limit, connection reuse, cancellation, and calls from the
-- main thread, executors and weft.go tasks. #http
local weft = require "weft"
local http = require "weft.http"
local json = require "weft.json"
local tcp = require "weft.tcp"
local ps = require "support.provider_server"
local procs = require "support.procs"
require "helpers" -- assert.mentions

local srv

-- Wait (driving the loop) until cond() holds; false after `seconds`.
local function eventually(cond, seconds)
  local c = weft.cond()
  local deadline = weft.clock() + (seconds or 5)
  while not cond() do
    if weft.clock() > deadline then return false end
    c:wait(0.01)
  end
  return true
end

-- A one-off server answering every request with the bytes `response`;
-- returns its URL and a function that stops it.
local function canned(response)
  local l = assert(tcp.listen("127.0.0.1", 0))
  local stopped = false
  weft.go(function()
    while not stopped do
      local c = l:accept()
      if not c then return end
      weft.go(function()
        while true do -- read the request head, ignore it
          local line = c:receive("*l")
          if not line or line == "" or line == "\r" then break end
        end
        c:send(response)
        c:close()
      end)
    end
  end)
  return "http://127.0.0.1:" .. l:port(), function()
    stopped = true
    l:close()
  end
end

-- A test body running fn(server) with a server of its own (nothing else
-- connected to it, so its connection counts are exact), stopped afterwards.
local function with_server(fn)
  return function()
    local s = ps.start { port = 0 }
    local ok, err = pcall(fn, s)
    s:stop()
    if not ok then error(err, 0) end
  end
end

-- Run fn in n weft.go tasks at once; returns their results in order.
local function in_tasks(n, fn)
  local tasks = {}
  for i = 1, n do tasks[i] = weft.go(fn, i) end
  local out = {}
  for i = 1, n do out[i] = { tasks[i]:wait() } end
  return out
end

setup(function()
  srv = ps.start { port = 0 }
end)

teardown(function()
  srv:stop()
end)

before_each(function()
  srv:reset()
end)

describe("http.request #http", function()
  it("GETs a URL and returns status, lower-cased headers and body", function()
    local res, err, code = http.request { url = srv.url .. "/echo?x=1" }
    assert.is_nil(err, code)
    assert.equal(200, res.status)
    assert.equal("application/json", res.headers["content-type"])
    local echo = json.decode(res.body)
    assert.equal("GET", echo.method)
    assert.equal("/echo", echo.path)
    assert.equal("1", echo.query.x)
  end)

  it("POSTs a string body with the caller's headers", function()
    local res = assert(http.request {
      url = srv.url .. "/echo", body = "hello",
      headers = { ["X-Token"] = "abc", ["Content-Type"] = "text/plain", ["X-Num"] = 7 },
    })
    local echo = json.decode(res.body)
    assert.equal("POST", echo.method)
    assert.equal("hello", echo.body)
    assert.equal("abc", echo.headers["x-token"])
    assert.equal("7", echo.headers["x-num"])
    assert.equal("text/plain", echo.headers["content-type"])
  end)

  it("JSON-encodes a table body and sets the content type", function()
    local res = assert(http.request { url = srv.url .. "/echo", body = { a = { 1, 2 }, b = "x" } })
    local echo = json.decode(res.body)
    assert.same({ a = { 1, 2 }, b = "x" }, json.decode(echo.body))
    assert.equal("application/json", echo.headers["content-type"])
  end)

  it("keeps the caller's content type for a table body", function()
    local res = assert(http.request {
      url = srv.url .. "/echo", body = { a = 1 },
      headers = { ["content-type"] = "application/vnd.x+json" },
    })
    assert.equal("application/vnd.x+json", json.decode(res.body).headers["content-type"])
  end)

  it("sends the given method, upper-cased", function()
    for _, m in ipairs { "put", "DELETE", "PATCH" } do
      local res = assert(http.request { url = srv.url .. "/echo", method = m })
      assert.equal(m:upper(), json.decode(res.body).method)
    end
  end)

  it("sends a large body in full (no 100-continue wait)", function()
    local big = string.rep("abcdefgh", 64 * 1024)
    local res = assert(http.request { url = srv.url .. "/echo", body = big, timeout = 10 })
    assert.equal(#big, #json.decode(res.body).body)
  end)

  it("returns a non-2xx status as a response, not an error", function()
    local res, err = http.request { url = srv.url .. "/status/503?retry_after=7" }
    assert.is_nil(err)
    assert.equal(503, res.status)
    assert.equal("7", res.headers["retry-after"])
    assert.same({ status = 503 }, json.decode(res.body))
  end)

  it("joins repeated response headers with ', '", function()
    local url, stop = canned("HTTP/1.1 200 OK\r\nX-Multi: a\r\nContent-Length: 2\r\n"
      .. "x-multi: b\r\nConnection: close\r\n\r\nok")
    local res = assert(http.request { url = url .. "/" })
    stop()
    assert.equal("a, b", res.headers["x-multi"])
    assert.equal("ok", res.body)
  end)

  it("returns the final response's headers only (no 1xx or redirect headers)", function()
    local target, stop1 = canned("HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n"
      .. "HTTP/1.1 200 OK\r\nX-Final: yes\r\nContent-Length: 5\r\nConnection: close\r\n\r\nfinal")
    local url, stop2 = canned("HTTP/1.1 302 Found\r\nLocation: " .. target .. "/x\r\n"
      .. "X-Redirect: 1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nmoved")
    local res = assert(http.request { url = url .. "/" })
    stop1()
    stop2()
    assert.equal(200, res.status)
    assert.equal("yes", res.headers["x-final"])
    assert.is_nil(res.headers["x-redirect"])
    assert.is_nil(res.headers["x-interim"])
    assert.equal("final", res.body)
  end)
end)

describe("http.request streaming #http", function()
  it("delivers raw chunks in order", function()
    local parts = {}
    local res = assert(http.request {
      url = srv.url .. "/chunks/5",
      stream = function(chunk) parts[#parts + 1] = chunk end,
    })
    assert.equal(200, res.status)
    assert.is_nil(res.body)
    assert.equal("chunk 1\nchunk 2\nchunk 3\nchunk 4\nchunk 5\n", table.concat(parts))
  end)

  it("delivers server-sent events in order, with event, data and id", function()
    local evs = {}
    local res = assert(http.request {
      url = srv.url .. "/sse/4", framing = "sse",
      stream = function(ev) evs[#evs + 1] = ev end,
    })
    assert.equal(200, res.status)
    assert.equal("text/event-stream", res.headers["content-type"])
    assert.equal(4, #evs)
    for i, ev in ipairs(evs) do
      assert.same({ event = "message", data = ('{"i":%d}'):format(i), id = tostring(i) }, ev)
    end
  end)

  it("parses an event stream that arrives one byte per write", function()
    local evs = {}
    assert(http.request {
      url = srv.url .. "/_f/bytewise/sse/3", framing = "sse",
      stream = function(ev) evs[#evs + 1] = ev.id .. "=" .. ev.data end,
    })
    assert.same({ '1={"i":1}', '2={"i":2}', '3={"i":3}' }, evs)
  end)

  it("delivers NDJSON lines in order", function()
    local lines = {}
    assert(http.request {
      url = srv.url .. "/ndjson/3", framing = "ndjson",
      stream = function(l) lines[#lines + 1] = l end,
    })
    assert.same({ '{"i":1}', '{"i":2}', '{"i":3}' }, lines)
  end)

  it("lets the callback yield and keeps the order", function()
    local out = in_tasks(3, function()
      local seen = {}
      assert(http.request {
        url = srv.url .. "/sse/20", framing = "sse",
        stream = function(ev)
          weft.sleep(0.001)
          seen[#seen + 1] = tonumber(ev.id)
        end,
      })
      return seen
    end)
    local want = {}
    for i = 1, 20 do want[i] = i end
    for i = 1, 3 do assert.same(want, out[i][1]) end
  end)

  it("returns the body of a non-2xx reply instead of streaming it", function()
    local called = 0
    local res, err = http.request {
      url = srv.url .. "/status/429?retry_after=2", framing = "sse",
      stream = function() called = called + 1 end,
    }
    assert.is_nil(err)
    assert.equal(429, res.status)
    assert.equal("2", res.headers["retry-after"])
    assert.same({ status = 429 }, json.decode(res.body))
    assert.equal(0, called)
  end)

  it("stops when the callback returns false and returns what was received", function()
    local n = 0
    local res, err = http.request {
      url = srv.url .. "/sse/1000", framing = "sse",
      stream = function() n = n + 1; if n == 3 then return false end end,
    }
    assert.is_nil(err)
    assert.equal(200, res.status)
    assert.equal("text/event-stream", res.headers["content-type"])
    assert.equal(3, n)
  end)
end)

describe("http.request failures #http", function()
  -- Asserts that http.request(opts) returns nil, an error mentioning each of
  -- `...`, and `code`.
  local function request_fails(code, opts, ...)
    local res, err, got = http.request(opts)
    assert.is_nil(res)
    assert.equal(code, got)
    assert.is_string(err)
    for i = 1, select("#", ...) do assert.mentions((select(i, ...)), err) end
  end

  it("returns code 'connect' when nothing listens", function()
    local port = procs.free_port()
    request_fails("connect", { url = "http://127.0.0.1:" .. port .. "/" }, "127.0.0.1:" .. port, "refused")
  end)

  it("returns code 'dns' for a name that does not resolve", function()
    request_fails("dns", { url = "http://no-such-host.invalid/" }, "no-such-host.invalid")
  end)

  it("returns code 'timeout' when the total timeout passes", function()
    request_fails("timeout", { url = srv.url .. "/sleep/5000", timeout = 0.1 }, "127.0.0.1:" .. srv.port, "timed out")
  end)

  it("returns code 'idle_timeout' when the server accepts and never answers", function()
    request_fails("idle_timeout", { url = srv.url .. "/hang", idle_timeout = 0.1 }, "127.0.0.1:" .. srv.port)
  end)

  it("returns code 'idle_timeout' when a stream pauses too long", function()
    local got = 0
    request_fails("idle_timeout", {
      url = srv.url .. "/_f/chunk_delay=1000/sse/3", framing = "sse", idle_timeout = 0.2,
      stream = function() got = got + 1 end,
    }, "idle")
    assert.equal(1, got)
  end)

  it("returns code 'protocol' when a stream is cut mid-way", function()
    local got = {}
    request_fails("protocol", {
      url = srv.url .. "/_f/cut=2/sse/5", framing = "sse",
      stream = function(ev) got[#got + 1] = ev.id end,
    }, "127.0.0.1:" .. srv.port)
    assert.same({ "1", "2" }, got)
  end)

  it("returns code 'protocol' when a body is cut short", function()
    request_fails("protocol", { url = srv.url .. "/_f/cut=20/bytes/100" })
  end)

  it("returns code 'protocol' when the server closes without a response", function()
    request_fails("protocol", { url = srv.url .. "/close" }, "127.0.0.1:" .. srv.port)
  end)

  it("returns code 'too_large' past max_body", function()
    request_fails("too_large", { url = srv.url .. "/bytes/5000", max_body = 1000 }, "1000")
    -- at the limit it is fine
    local res = assert(http.request { url = srv.url .. "/bytes/1000", max_body = 1000 })
    assert.equal(ps.bytes_body(1000), res.body)
  end)

  it("returns code 'too_large' for a streamed event past max_body", function()
    request_fails("too_large", { url = srv.url .. "/sse/3", framing = "sse", max_body = 4, stream = function() end })
  end)

  it("returns code 'error' for a URL it cannot use", function()
    request_fails("error", { url = "ftp://127.0.0.1/x" }, "http or https")
    request_fails("error", { url = "http://" }, "bad URL")
  end)

  it("raises on misuse, naming the option", function()
    local function raises(opts, needle)
      local ok, err = pcall(http.request, opts)
      assert.is_false(ok)
      assert.mentions(needle, err)
    end
    raises("http://x", "http.request: options must be a table, got string")
    raises({}, "url must be a string")
    raises({ url = srv.url, bogus = 1 }, "unknown option 'bogus'")
    raises({ url = srv.url, timeout = -1 }, "timeout must be")
    raises({ url = srv.url, idle_timeout = "1" }, "idle_timeout must be")
    raises({ url = srv.url, max_body = 1.5 }, "max_body must be")
    raises({ url = srv.url, headers = { ["X-A"] = "a\r\nX-B: b" } }, "line break")
    raises({ url = srv.url, headers = { ["bad name"] = "v" } }, "bad header name")
    raises({ url = srv.url, body = true }, "body must be")
    raises({ url = srv.url, body = { f = print } }, "body")
    raises({ url = srv.url, framing = "sse" }, "framing needs a stream")
    raises({ url = srv.url, stream = print, framing = "xml" }, "framing must be")
    raises({ url = srv.url, method = "GE T" }, "method")
    raises({ url = srv.url, max_redirects = 1001 }, "max_redirects must be an integer from 0 to 1000, got 1001")
    raises({ url = srv.url, cross_origin_redirects = "allow" },
           "cross_origin_redirects must be 'strip' or 'refuse', got 'allow'")
  end)

  it("names the valid options and the nearest one for a typo (weft.check)", function()
    local function err_of(f, opts)
      local ok, err = pcall(function() f(opts) end)
      assert.is_false(ok)
      return err
    end
    local err = err_of(http.request, { url = srv.url, timout = 1 })
    assert.mentions("http.request: unknown option 'timout' (options: body, connect_timeout, cross_origin_redirects, "
                    .. "framing, headers, idle_timeout, max_body, max_redirects, method, network, secret_headers, stream, "
                    .. "timeout, url); did you mean 'timeout'?", err)
    assert.mentions("http_spec.lua", err) -- raised at the caller
    assert.mentions("did you mean 'body'?", err_of(http.request, { url = srv.url, data = "x" }))
    assert.mentions("did you mean 'headers'?", err_of(http.request, { url = srv.url, Headers = {} }))
    err = err_of(http.configure, { max_per_hots = 2 })
    assert.mentions("http.configure: unknown option 'max_per_hots' (options: max_per_host, network); "
                    .. "did you mean 'max_per_host'?", err)
    assert.mentions("http_spec.lua", err)
    assert.mentions("http.configure: max_per_host must be an integer from 1 to 1000000, got 0",
                    err_of(http.configure, { max_per_host = 0 }))
  end)
end)

describe("http.request connections #http", function()
  it("reuses one connection for sequential requests to a host", with_server(function(s)
    for _ = 1, 20 do assert(http.request { url = s.url .. "/echo" }) end
    local st = s:stats()
    assert.equal(20, st.requests)
    assert.equal(1, st.connections)
  end))

  it("runs at most max_per_host transfers per host; the rest wait",
    with_server(function(s)
      http.configure { max_per_host = 2 }
      local max_running, max_queued, done = 0, 0, 0
      local probe = weft.go(function()
        local c = weft.cond()
        while done < 6 do
          local st = http.stats()
          if st.running > max_running then max_running = st.running end
          if st.queued > max_queued then max_queued = st.queued end
          c:wait(0.005)
        end
      end)
      in_tasks(6, function()
        assert(http.request { url = s.url .. "/sleep/30" })
        done = done + 1
      end)
      probe:wait()
      http.configure { max_per_host = 64 }
      assert.equal(2, max_running)
      assert.equal(4, max_queued)
      assert.equal(6, s:stats().requests)
      -- two connections served all six: never more than two at once
      assert.equal(2, s:stats().connections)
    end))

  it("starts waiting requests in FIFO order", function()
    http.configure { max_per_host = 1 }
    local order = {}
    local first = weft.go(function()
      assert(http.request { url = srv.url .. "/sleep/20" })
      order[#order + 1] = "first"
    end)
    in_tasks(4, function(i)
      local res = assert(http.request { url = srv.url .. "/echo", body = "r" .. i })
      order[#order + 1] = json.decode(res.body).body
    end)
    first:wait()
    http.configure { max_per_host = 64 }
    assert.same({ "first", "r1", "r2", "r3", "r4" }, order)
  end)

  it("starts queued requests when the limit is raised", function()
    http.configure { max_per_host = 1 }
    local tasks = {}
    for i = 1, 3 do
      tasks[i] = weft.go(function() return http.request { url = srv.url .. "/sleep/300" } end)
    end
    assert.truthy(eventually(function() return http.stats().queued == 2 end))
    assert.equal(1, http.stats().running)
    http.configure { max_per_host = 64 }
    assert.same({ running = 3, queued = 0 }, http.stats())
    for i = 1, 3 do assert.equal(200, tasks[i]:wait().status) end
  end)
end)

describe("http.request callers #http", function()
  it("works from the main thread, weft.go tasks and executors", function()
    assert.equal(200, http.request { url = srv.url .. "/echo" }.status)
    local out = in_tasks(5, function(i)
      local res = assert(http.request { url = srv.url .. "/echo", body = { i = i } })
      return json.decode(json.decode(res.body).body).i
    end)
    for i = 1, 5 do assert.equal(i, out[i][1]) end

    local fetch = weft.executor("fetch", function(msg, ctx)
      local res, err = http.request { url = srv.url .. "/sleep/" .. msg }
      ctx:yield_output(res and res.status or err)
    end)
    local wf = weft.workflow("fetcher"):start(fetch):build()
    local hs = {}
    for i = 1, 4 do hs[i] = wf:spawn(10 * i) end
    for i, r in ipairs(weft.wait_all(hs)) do
      assert.equal("completed", r.status, r.error)
      assert.same({ 200 }, r.outputs, "run " .. i)
    end
  end)

  it("aborts the request when the run is cancelled (the server sees the close)",
    with_server(function(s)
      local wf = weft.workflow("hang"):start(weft.executor("h", function()
        http.request { url = s.url .. "/hang" }
      end)):build()
      local h = wf:spawn("x")
      assert.truthy(eventually(function() return s:stats().open == 1 end))
      h:cancel()
      assert.equal("cancelled", h:wait().status)
      assert.equal(0, http.stats().running)
      assert.truthy(eventually(function() return s:stats().open == 0 end),
        "the server still has the connection open")
    end))

  it("aborts the request when the executor times out", with_server(function(s)
    local wf = weft.workflow("slow"):start(weft.executor("s", {
      timeout = 0.1,
      handle = function() http.request { url = s.url .. "/hang" } end,
    })):build()
    local res = wf:run("x")
    assert.equal("failed", res.status)
    assert.equal(0, http.stats().running)
    assert.truthy(eventually(function() return s:stats().open == 0 end),
      "the server still has the connection open")
  end))

  it("aborts a streaming request when its callback raises", with_server(function(s)
    local ok, err = pcall(http.request, {
      url = s.url .. "/_f/chunk_delay=50/sse/100", framing = "sse",
      stream = function(ev) if ev.id == "2" then error("boom") end end,
    })
    assert.is_false(ok)
    assert.mentions("boom", err)
    assert.equal(0, http.stats().running)
    assert.truthy(eventually(function() return s:stats().open == 0 end))
  end))

  it("aborts a request that is garbage-collected while running", with_server(function(s)
    local done = false
    weft.go(function()
      local core = require "weft.core.http"
      core.start { url = s.url .. "/hang" } -- dropped at once
      done = true
    end)
    assert.truthy(eventually(function() return done and s:stats().open == 1 end))
    collectgarbage("collect")
    collectgarbage("collect")
    assert.equal(0, http.stats().running)
    assert.truthy(eventually(function() return s:stats().open == 0 end))
  end))

  it("keeps a request alive while a task waits on it in a tail call of next()", with_server(function(s)
    local core = require "weft.core.http"
    -- a tail call leaves no frame of the caller holding the request: only
    -- the wait anchors it (it was collected, and its transfer cancelled
    -- with no notification: the task then waited forever)
    local t = weft.go(function() return core.start({ url = s.url .. "/hang" }):next() end)
    assert.truthy(eventually(function() return s:stats().open == 1 end))
    for _ = 1, 3 do
      collectgarbage("collect")
      for _ = 1, 1000 do local _ = tostring({}) end -- reuse what was freed
    end
    assert.equal(1, http.stats().running)
    s:stop() -- the transfer fails: the task gets its error
    local ok, a, err, code = pcall(t.wait, t)
    assert.is_true(ok, tostring(a))
    assert.is_nil(a)
    assert.is_string(err)
    assert.is_string(code)
  end))

  it("handles many concurrent requests", function()
    http.configure { max_per_host = 200 }
    local out = in_tasks(200, function(i)
      local res = http.request { url = srv.url .. "/echo", body = tostring(i) }
      return res and json.decode(res.body).body
    end)
    http.configure { max_per_host = 64 }
    for i = 1, 200 do assert.equal(tostring(i), out[i][1]) end
  end)
end)

describe("http.request memory #http", function()
  local ffi = require "ffi"
  pcall(ffi.cdef, [[
    struct weft_mallinfo2 { size_t arena, ordblks, smblks, hblks, hblkhd, usmblks,
                            fsmblks, uordblks, fordblks, keepcost; };
    struct weft_mallinfo2 mallinfo2(void);
  ]])
  -- bytes malloc has handed out (glibc; an ASan build's allocator is not
  -- seen: the figure then stays flat)
  local function c_heap()
    local mi = ffi.C.mallinfo2()
    return tonumber(mi.uordblks + mi.hblkhd)
  end

  it("does not copy a request body into C: the request borrows the Lua string (issue 14)",
    with_server(function(s)
      local n = 100
      http.configure { max_per_host = 1 }
      local body = string.rep("x", 20000) .. "!" -- one string, shared
      local first = weft.go(function() return http.request { url = s.url .. "/hang" } end)
      assert.truthy(eventually(function() return http.stats().running == 1 end))
      local before = c_heap()
      local tasks = {}
      for i = 1, n do tasks[i] = weft.go(function() return http.request { url = s.url .. "/echo", body = body } end) end
      assert.truthy(eventually(function() return http.stats().queued == n end))
      local per = (c_heap() - before) / n
      http.configure { max_per_host = 64 }
      s:stop()
      first:wait()
      for i = 1, n do tasks[i]:wait() end
      assert.is_true(per < 5000, string.format("%.0f bytes of C heap per queued request with a 20 kB body", per))
    end))

  it("keeps a borrowed body alive and intact while its request waits", with_server(function(s)
    http.configure { max_per_host = 1 }
    local first = weft.go(function() return http.request { url = s.url .. "/hang", timeout = 1 } end)
    assert.truthy(eventually(function() return http.stats().running == 1 end))
    local tasks = {}
    for i = 1, 20 do
      tasks[i] = weft.go(function()
        -- a string nothing else holds once the request started
        return http.request { url = s.url .. "/echo", body = table.concat { "body ", i, " ", string.rep("y", 1000) } }
      end)
    end
    assert.truthy(eventually(function() return http.stats().queued == 20 end))
    for _ = 1, 3 do
      collectgarbage("collect")
      for _ = 1, 2000 do local _ = tostring({}) .. "z" end -- reuse what was freed
    end
    http.configure { max_per_host = 64 }
    for i = 1, 20 do
      local res = assert(tasks[i]:wait())
      assert.equal("body " .. i .. " " .. string.rep("y", 1000), json.decode(res.body).body)
    end
    first:wait()
  end))

  -- Lua heap (bytes, after a full collection) per task of n weft.go tasks
  -- running fn, measured once blocked() says they all wait; returns it and
  -- the tasks.
  local function per_task(n, fn, blocked)
    collectgarbage("collect")
    collectgarbage("collect")
    local before = collectgarbage("count")
    local tasks = {}
    for i = 1, n do tasks[i] = weft.go(fn) end
    assert.truthy(eventually(blocked))
    collectgarbage("collect")
    collectgarbage("collect")
    return (collectgarbage("count") - before) * 1024 / n, tasks
  end

  it("keeps no Lua table or string of its own for a request waiting in its host's queue (issue 14)",
    with_server(function(s)
      local n = 200
      http.configure { max_per_host = 1 }
      local opts = { url = s.url .. "/hang", body = "{}", timeout = 60,
                     headers = { ["X-Trace"] = "abc", authorization = "Bearer k-123" } }
      -- the same tasks blocked on a condition, as the baseline
      local gate, waiting = weft.cond(), 0
      local base, ctl = per_task(n, function()
        waiting = waiting + 1
        gate:wait()
      end, function() return waiting == n end)
      local held, tasks = per_task(n, function() return http.request(opts) end, function()
        local st = http.stats()
        return st.running == 1 and st.queued == n - 1
      end)
      http.configure { max_per_host = 64 }
      gate:signal()
      s:stop() -- every request fails; the tasks end
      for i = 1, n do tasks[i]:wait(); ctl[i]:wait() end
      -- what a request adds to a waiting task: the deeper stack of its
      -- coroutine (~350 bytes) and its request userdata, not a copy of its
      -- options, header lines or the like (~1180 bytes in all with them,
      -- ~600-730 without)
      assert.is_true(held - base < 900, string.format("%.0f bytes per request (baseline %.0f)", held - base, base))
    end))
end)
