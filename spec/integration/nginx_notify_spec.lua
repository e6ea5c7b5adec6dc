-- spec/integration/nginx_notify_spec.lua — weft.core.notify, the waiter
-- that weft.hosts.nginx drives weft's loop with, outside nginx: its unix
-- socket protocol (answers "t" when the wait passed, "r" when weft.fd()
-- polled readable), poll() from coroutines weft does not manage, detach().
local weft = require "weft"
local tcp = require "weft.tcp"
local notify = require "weft.core.notify"
local ffi = require "ffi"

ffi.cdef [[
struct weft_spec_sockaddr_un { unsigned short sun_family; char sun_path[108]; };
int socket(int domain, int type, int protocol);
int connect(int fd, const void *addr, unsigned int len);
long read(int fd, void *buf, unsigned long n);
long write(int fd, const void *buf, unsigned long n);
int close(int fd);
]]
local C = ffi.C

-- A blocking unix socket client of path: send(line) -> the reply line.
local function client(path)
  local fd = C.socket(1, 1, 0) -- AF_UNIX, SOCK_STREAM
  assert(fd >= 0, "socket")
  local sa = ffi.new("struct weft_spec_sockaddr_un")
  sa.sun_family = 1
  ffi.copy(sa.sun_path, path)
  assert(C.connect(fd, sa, ffi.sizeof(sa)) == 0, "connect " .. path)
  local c = {}
  function c.ask(line)
    assert(C.write(fd, line, #line) == #line)
    local buf = ffi.new("char[8]")
    local n = C.read(fd, buf, 8)
    return n > 0 and ffi.string(buf, n) or nil
  end
  function c.close() C.close(fd) end
  return c
end

describe("weft.core.notify", function()
  describe("open", function()
    it("answers t when the wait passes and r once weft has I/O", function()
      local n = assert(notify.open())
      local path = n:path()
      assert.is_string(path)
      local c = client(path)
      finally(function() c.close(); n:close() end)
      n:unlink()
      assert.is_nil(n:path())
      assert.is_nil(io.open(path)) -- removed once connected
      assert.are.equal("t\n", c.ask("0\n"))

      -- a pending connection on a weft listener makes weft.fd() readable
      local l = assert(tcp.listen("127.0.0.1", 0))
      local accepted
      weft.go(function() accepted = l:accept() end)
      weft.poll() -- the accept watcher reaches the kernel
      local peer = assert(tcp.connect("127.0.0.1", l:port(), 5))
      -- a long wait, answered at once: the fd is readable ("t" after 30 s if not)
      assert.are.equal("r\n", c.ask("30000\n"))
      while not accepted do weft.poll() end
      accepted:close(); peer:close(); l:close()
    end)

    it("closes twice without harm and then has no path", function()
      local n = assert(notify.open())
      n:close()
      n:close()
      assert.is_nil(n:path())
    end)
  end)

  describe("poll", function()
    it("runs weft's loop from a coroutine weft does not manage", function()
      local ran = false
      weft.go(function() ran = true end)
      local co = coroutine.wrap(function()
        -- weft.poll refuses here: only the main thread may drive the loop
        assert.has_error(function() weft.poll() end)
        return notify.poll()
      end)
      co()
      assert.is_true(ran)
    end)

    it("raises inside an executor, naming the problem", function()
      local err
      local ex = weft.executor("a", function(_, ctx)
        local ok, e = pcall(notify.poll)
        err = not ok and e or nil
        ctx:yield_output("done")
      end)
      local res = weft.workflow("w"):start(ex):build():run("x")
      assert.are.equal("completed", res.status)
      assert.matches("weft.notify.poll: runs the event loop: not from an executor", err, 1, true)
    end)
  end)

  describe("detach", function()
    it("says whether this LuaJIT has exdata to clear (OpenResty's has)", function()
      local ok = notify.detach()
      assert.is_boolean(ok)
      -- OpenResty's branch carries thread.exdata (nginx's Lua module needs it)
      local has_exdata = pcall(require, "thread.exdata")
      assert.are.equal(has_exdata, ok)
    end)
  end)
end)
