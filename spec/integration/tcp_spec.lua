-- weft.tcp: TCP cosockets on 127.0.0.1 — listen/accept/connect, receive
-- patterns, timeouts, closed peers, many concurrent connections, waits that
-- are cancelled (executor timeout) or cut by close, and misuse errors.
local weft = require "weft"
local tcp = require "weft.tcp"
local h = require "helpers"

-- Servers started by serve(), ended after each test.
local servers = {}

-- A listening socket on a free port, with its accept loop running fn(conn)
-- for each connection in its own task. Returns srv.
local function serve(fn)
  local srv = assert(tcp.listen("127.0.0.1", 0))
  local tasks = {}
  local acceptor = weft.go(function()
    while true do
      local c = srv:accept()
      if not c then return end
      tasks[#tasks + 1] = weft.go(fn, c)
    end
  end)
  servers[#servers + 1] = { srv = srv, acceptor = acceptor, tasks = tasks }
  return srv
end

-- A client connection to the server srv (connect timeout in seconds, optional).
local function connect(srv, timeout)
  return assert(tcp.connect("127.0.0.1", srv:port(), timeout))
end

-- Asserts that a call returned (v, e, x) = nil, err and, when third is given,
-- that third value (the partial data of a receive, the code of an accept).
local function assert_fails(err, third, v, e, x)
  assert.is_nil(v)
  assert.equal(err, e)
  if third ~= nil then assert.equal(third, x) end
end

-- Close every server and wait for its tasks (none is left waiting at exit).
local function end_servers()
  for _, s in ipairs(servers) do
    s.srv:close()
    s.acceptor:wait()
    for _, t in ipairs(s.tasks) do t:wait() end
  end
  servers = {}
end

-- Echo each line back, prefixed, until the peer closes.
local function echo_lines(c)
  while true do
    local line = c:receive("*l")
    if not line then break end
    c:send("echo " .. line .. "\n")
  end
  c:close()
end

describe("weft.tcp", function()
  after_each(end_servers)

  describe("listen", function()
    it("picks a free port for port 0", function()
      local a = assert(tcp.listen("127.0.0.1", 0))
      local b = assert(tcp.listen("127.0.0.1", 0))
      assert.is_true(a:port() > 0)
      assert.are_not.equal(a:port(), b:port())
      a:close()
      b:close()
    end)

    it("returns nil and the reason when the port is taken", function()
      local a = assert(tcp.listen("127.0.0.1", 0))
      local b, err, code = tcp.listen("127.0.0.1", a:port())
      assert.is_nil(b)
      assert.mentions("in use", err)
      assert.equal("io", code)
      a:close()
    end)

    it("raises on a bad port", function()
      assert.mentions("port must be an integer", h.error_of(tcp.listen, "127.0.0.1", "x"))
      assert.mentions("port must be an integer", h.error_of(tcp.listen, "127.0.0.1", 70000))
    end)

    it("names the function, the argument, what it must be and the value (weft.check)", function()
      assert.mentions("tcp.listen: port must be an integer from 0 to 65535, got 70000",
                      h.error_of(tcp.listen, "127.0.0.1", 70000))
      assert.mentions("tcp.listen: backlog must be a positive integer, got 1.5",
                      h.error_of(tcp.listen, "127.0.0.1", 0, 1.5))
      assert.mentions("tcp.connect: timeout must be a number of seconds >= 0, got -1",
                      h.error_of(tcp.connect, "127.0.0.1", 80, -1))
      assert.mentions("tcp.connect: host must be a string, got nothing", h.error_of(tcp.connect, nil, 80))
    end)
  end)

  describe("connect", function()
    it("returns nil and 'connection refused' when nobody listens", function()
      local s = assert(tcp.listen("127.0.0.1", 0))
      local port = s:port()
      s:close()
      local c, err, code = tcp.connect("127.0.0.1", port, 5)
      assert.is_nil(c)
      assert.equal("connect", code)
      assert.mentions("refused", err:lower())
      assert.mentions("127.0.0.1:" .. port, err)
    end)

    it("raises on misuse", function()
      assert.mentions("host must be a string", h.error_of(tcp.connect, nil, 80))
      assert.mentions("port must be an integer", h.error_of(tcp.connect, "127.0.0.1", 0))
      assert.mentions("timeout must be", h.error_of(tcp.connect, "127.0.0.1", 80, -1))
    end)
  end)

  describe("an echo server in a task", function()
    it("answers a client on the main thread", function()
      local srv = serve(echo_lines)
      local c = connect(srv, 5)
      assert.equal(6, c:send("hello\n"))
      assert.equal("echo hello", c:receive("*l"))
      c:send("with crlf\r\n")
      assert.equal("echo with crlf", c:receive())
      c:close()
      srv:close()
    end)

    it("answers clients running in tasks", function()
      local srv = serve(echo_lines)
      local got = {}
      local ts = {}
      for i = 1, 5 do
        ts[i] = weft.go(function()
          local c = connect(srv, 5)
          c:send("n" .. i .. "\n")
          got[i] = c:receive("*l")
          c:close()
        end)
      end
      for i = 1, 5 do ts[i]:wait() end
      for i = 1, 5 do assert.equal("echo n" .. i, got[i]) end
      srv:close()
    end)

    it("answers a client running in an executor", function()
      local srv = serve(echo_lines)
      local wf = weft.workflow("tcp_client")
        :start(weft.executor("client", function(msg, ctx)
          local c = connect(srv, 5)
          c:send(msg .. "\n")
          ctx:yield_output(c:receive("*l", 5))
          c:close()
        end))
        :build()
      local res = wf:run("from an executor")
      assert.equal("completed", res.status)
      assert.same({ "echo from an executor" }, res.outputs)
    end)

    it("serves 500 concurrent connections", function()
      local n = 500
      local srv = serve(echo_lines)
      local ok, ts = 0, {}
      for i = 1, n do
        ts[i] = weft.go(function()
          local c = connect(srv, 30)
          c:send("x" .. i .. "\n")
          if c:receive("*l", 30) == "echo x" .. i then ok = ok + 1 end
          c:close()
        end)
      end
      for i = 1, n do ts[i]:wait() end
      assert.equal(n, ok)
      srv:close()
    end)
  end)

  describe("receive", function()
    -- a client connected to a server that sends `parts` (with yields between
    -- them) then closes; the server is closed after the test (end_servers)
    local function sender(parts)
      return connect(serve(function(c)
        for _, p in ipairs(parts) do
          c:send(p)
          weft.sleep(0)
        end
        c:close()
      end))
    end

    it("reads lines split over several writes, with or without CR", function()
      local c = sender({ "one\r", "\ntw", "o\nthree", "\n" })
      assert.equal("one", c:receive("*l"))
      assert.equal("two", c:receive("*l"))
      assert.equal("three", c:receive("*l"))
      assert_fails("closed", "", c:receive("*l"))
    end)

    it("reads exact byte counts across writes", function()
      local c = sender({ "abc", "defgh", "ij" })
      assert.equal("", c:receive(0))
      assert.equal("ab", c:receive(2))
      assert.equal("cdefg", c:receive(5))
      assert_fails("closed", "hij", c:receive(10))
    end)

    it("reads everything until the peer closes with '*a'", function()
      local c = sender({ "a", "b\n", "c" })
      assert.equal("ab", c:receive(2))
      assert.equal("\nc", c:receive("*a"))
      assert.equal("", c:receive("*a"))
    end)

    it("reads up to a delimiter with receive_until", function()
      local c = sender({ "GET / HTTP/1.1\r\nHost: x\r", "\n\r", "\nbody" })
      assert.equal("GET / HTTP/1.1\r\nHost: x", c:receive_until("\r\n\r\n"))
      assert.equal("body", c:receive("*a"))
    end)

    it("reads a 4 MB transfer that fills the socket buffers", function()
      local big = string.rep("0123456789abcdef", 256 * 1024)
      local sent
      local srv = serve(function(c)
        sent = c:send(big)
        c:close()
      end)
      local c = connect(srv)
      local got = c:receive(#big)
      assert.equal(#big, sent)
      assert.equal(#big, #got)
      assert.is_true(got == big)
      srv:close()
    end)

    it("returns nil, 'timeout' and the partial data when the peer is silent", function()
      local release = weft.cond()
      local srv = serve(function(c)
        c:send("partial line")
        release:wait()
        c:close()
      end)
      local c = connect(srv)
      assert_fails("timeout", "partial line", c:receive("*l", 0.05))
      -- the socket stays usable after a timeout
      assert_fails("timeout", nil, c:receive(1, 0))
      release:signal()
      assert.equal("", c:receive("*a"))
      srv:close()
    end)

    it("fails a line longer than tcp.max_line with 'line too long'", function()
      local old = tcp.max_line
      tcp.max_line = 10
      local c = sender({ string.rep("x", 50) .. "\n" })
      local d, err = c:receive("*l")
      tcp.max_line = old
      assert_fails("line too long", nil, d, err)
    end)

    it("raises on a bad pattern", function()
      local c = sender({})
      assert.mentions("pattern must be", h.error_of(c.receive, c, "*x"))
      assert.mentions("byte count must be", h.error_of(c.receive, c, 1.5))
      assert.mentions("delimiter must be", h.error_of(c.receive_until, c, ""))
      assert.mentions("timeout must be", h.error_of(c.receive, c, "*l", "soon"))
      c:close()
    end)
  end)

  describe("send", function()
    it("accepts lists of strings and numbers", function()
      local srv = serve(function(c)
        c:send(c:receive(9))
        c:close()
      end)
      local c = connect(srv)
      assert.equal(6, c:send({ "ab", "cd", "ef" }))
      assert.equal(3, c:send(123))
      assert.equal("abcdef123", c:receive("*a"))
      assert.mentions("data must be", h.error_of(c.send, c, print))
      srv:close()
    end)

    it("returns nil, 'closed' on a closed socket", function()
      local srv = serve(function(c) c:close() end)
      local c = connect(srv)
      c:close()
      assert_fails("closed", nil, c:send("x"))
      assert_fails("closed", nil, c:close())
      srv:close()
    end)

    it("fails once the peer has gone, instead of raising SIGPIPE", function()
      local srv = serve(function(c) c:close() end)
      local c = connect(srv)
      assert.equal("", c:receive("*a")) -- the peer closed
      local n, err
      for _ = 1, 100 do
        n, err = c:send(string.rep("x", 1000))
        if not n then break end
        weft.sleep(0)
      end
      assert.is_nil(n)
      assert.mentions("closed", err)
      srv:close()
    end)

    it("times out when the peer never reads", function()
      local hold = weft.cond()
      local srv = serve(function(c) hold:wait(); c:close() end)
      local c = connect(srv)
      local n, err, sent = c:send(string.rep("x", 64 * 1024 * 1024), 0.05)
      assert.is_nil(n)
      assert.equal("timeout", err)
      assert.is_true(sent > 0 and sent < 64 * 1024 * 1024)
      hold:signal()
      c:close()
      srv:close()
    end)
  end)

  describe("accept", function()
    it("times out with nil, 'timeout'", function()
      local s = assert(tcp.listen("127.0.0.1", 0))
      assert_fails("timeout", "timeout", s:accept(0.02))
      s:close()
    end)

    it("wakes a waiting task with 'closed' when the server is closed", function()
      local s = assert(tcp.listen("127.0.0.1", 0))
      local t = weft.go(function() return { s:accept() } end)
      weft.sleep(0)
      s:close()
      local r = t:wait()
      assert.same({ nil, "closed", "closed" }, r)
    end)
  end)

  describe("failures of a closed socket", function()
    it("are nil, 'closed', 'closed' (receive and send: nil, 'closed' and the sent count)", function()
      local s = assert(tcp.listen("127.0.0.1", 0))
      local c = connect(s)
      assert.is_true(c:close())
      local closed = { nil, "closed", "closed" }
      assert.same(closed, { c:close() })
      assert.same(closed, { c:shutdown() })
      assert.same(closed, { c:port() })
      assert.same({ nil, "closed" }, { c:receive("*l") })
      assert.same({ nil, "closed", 0 }, { c:send("x") })
      assert.is_true(s:close())
      assert.same(closed, { s:accept() })
      assert.same(closed, { s:close() })
    end)
  end)

  describe("waiting tasks", function()
    it("get nil, 'closed' when another task closes their socket", function()
      local srv = serve(function(c) c:receive("*a") end)
      local c = connect(srv)
      local t = weft.go(function() return { c:receive("*l") } end)
      weft.sleep(0)
      c:close()
      local r = t:wait()
      assert.is_nil(r[1])
      assert.equal("closed", r[2])
      srv:close()
    end)

    it("include the main thread: its wait ends with 'closed' when a task closes the socket", function()
      local srv = serve(function(c) c:receive("*a") end)
      local c = connect(srv)
      weft.go(function() c:close() end)
      assert_fails("closed", nil, c:receive("*l"))
    end)

    it("cannot share a socket: a second waiter raises 'socket busy'", function()
      local srv = serve(function(c) c:receive("*a") end)
      local c = connect(srv)
      local t1 = weft.go(function() return c:receive("*l") end)
      weft.sleep(0)
      local err = h.error_of(c.receive, c, "*l")
      assert.mentions("socket busy", err)
      c:close()
      assert.is_nil((t1:wait()))
      srv:close()
    end)

    it("stop waiting when their executor times out, leaving the socket usable", function()
      local srv = serve(function(c)
        c:receive("*l") -- wait for "go", then answer
        c:send("late\n")
        c:receive("*a")
      end)
      local c = connect(srv)
      local wf = weft.workflow("tcp_timeout")
        :start(weft.executor("reader", {
          timeout = 0.05,
          handle = function(_, ctx) ctx:yield_output(c:receive("*l")) end,
        }))
        :build()
      local res = wf:run("x")
      assert.equal("failed", res.status)
      assert.mentions("reader", res.error)
      -- the aborted wait is gone: this thread may wait now, and gets the line
      c:send("go\n")
      assert.equal("late", c:receive("*l", 5))
      c:close()
      srv:close()
    end)
  end)

  describe("lifetime", function()
    it("closes a socket that is garbage-collected", function()
      local peer
      local srv = serve(function(c) peer = c end)
      do
        local c = connect(srv)
        c:send("x")
      end
      h.poll_until(function() return peer ~= nil end)
      collectgarbage()
      collectgarbage()
      assert.equal("x", peer:receive("*a", 5))
      peer:close()
      srv:close()
    end)

    it("names its state in tostring", function()
      local s = assert(tcp.listen("127.0.0.1", 0))
      assert.mentions("weft.tcp server", tostring(s))
      s:close()
      assert.mentions("closed", tostring(s))
    end)
  end)

  describe("blocking rules", function()
    it("raises in a coroutine weft does not manage", function()
      local s = assert(tcp.listen("127.0.0.1", 0))
      local co = coroutine.create(function() return s:accept() end)
      local ok, err = coroutine.resume(co)
      assert.is_false(ok)
      assert.mentions("weft.tcp", err)
      assert.mentions("does not manage", err)
      s:close()
    end)
  end)

  it("raise_nofile returns the open-files limit", function()
    assert.is_true(tcp.raise_nofile() > 0)
  end)
end)
