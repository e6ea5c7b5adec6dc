--- weft.tcp: TCP cosockets in the OpenResty style, on the weft loop.
--
--     local tcp = require "weft.tcp"
--     local srv = assert(tcp.listen("127.0.0.1", 0))      -- port 0: any free port
--     weft.go(function()
--       local c = assert(srv:accept())
--       local line = c:receive("*l")
--       c:send("you said " .. line .. "\n")
--       c:close()
--     end)
--     local c = assert(tcp.connect("127.0.0.1", srv:port(), 5))
--     c:send("hi\n")
--     print(c:receive("*l"))                               --> you said hi
--
-- Every call that waits yields the calling executor or `weft.go` task (or,
-- on the main thread, runs the loop until done). Expected failures return
-- `nil, err, code`: code "timeout", "closed", "connect", "policy" or "io" (err is
-- "timeout", "closed" or a sentence); receive and send keep the cosocket
-- shape `nil, err, partial` / `nil, err, sent` (err "timeout", "closed" or
-- a sentence); misuse raises. Timeouts are in seconds; nil means no timeout. A socket is freed
-- by `close()` or when it is garbage-collected. One task at a time may wait
-- on a socket: a second one raises "socket busy".
--
-- The C primitives (weft.core.tcp, runtime/lua/lua_tcp.c) never block: they
-- return AGAIN and this module waits for readiness, then retries.
-- Arguments are checked by weft.check.
local core = require "weft.core.tcp"
local check = require "weft.check"
local clock = require("weft.core.loop").clock

local type, tostring, error, concat = type, tostring, error, table.concat
local arg = check.arg
local raw_recv, raw_send, raw_wait, raw_accept = core.recv, core.send, core.wait, core.accept
local raw_partial, raw_connected = core.partial, core.connected
local AGAIN = core.AGAIN

local _M = {}

--- The longest line `receive("*l")` accepts (bytes); longer fails with
-- "line too long".
_M.max_line = 1024 * 1024

local Socket = {}
core.socket_mt.__index = Socket

--- The schemas of the arguments (weft.check).
_M.ARGS = {
  host = { type = "string", required = true },
  listen_port = { type = "integer", minimum = 0, maximum = 65535, required = true },
  port = { type = "integer", minimum = 1, maximum = 65535, required = true },
  backlog = { type = "integer", minimum = 1, expect = "a positive integer" },
  timeout = { type = "number", minimum = 0, expect = "a number of seconds >= 0" },
  count = { type = "integer", minimum = 0 },
  delimiter = { type = "string", minLength = 1, required = true },
}
local ARGS = _M.ARGS

-- Validate an optional timeout argument (misuse raises at the caller).
local function check_timeout(fname, timeout)
  arg(fname, "timeout", timeout, ARGS.timeout, 3)
end

-- Seconds left before deadline (nil: none), never negative.
local function left(deadline)
  if not deadline then return nil end
  local r = deadline - clock()
  return r > 0 and r or 0
end

-- Wait until the socket is ready for "r"/"w" or the deadline passes: true
-- when ready, false on timeout.
local function wait(self, what, deadline)
  local rem = left(deadline)
  if rem == 0 then return false end
  return raw_wait(self, what, rem or -1)
end

--- Listen on host:port (port 0 picks a free port); backlog default SOMAXCONN.
-- Returns a server socket or nil, err, "io".
function _M.listen(host, port, backlog)
  if host == nil or host == "*" then host = "0.0.0.0" end
  arg("tcp.listen", "host", host, ARGS.host, 2)
  arg("tcp.listen", "port", port, ARGS.listen_port, 2)
  arg("tcp.listen", "backlog", backlog, ARGS.backlog, 2)
  return core.listen(host, port, backlog)
end

local policy -- weft.http.policy, loaded on the first connect

--- Connect to host:port; returns a connected socket or nil, err, code
-- ("timeout"; "connect": refused, unreachable, unresolved; "policy":
-- refused by a network policy: the process's, the current run's or
-- network, a NETWORK table as weft.http's option).
function _M.connect(host, port, timeout, network)
  arg("tcp.connect", "host", host, ARGS.host, 2)
  arg("tcp.connect", "port", port, ARGS.port, 2)
  check_timeout("tcp.connect", timeout)
  if network ~= nil then arg("tcp.connect", "network", network, require("weft.run").NETWORK, 2) end
  policy = policy or require("weft.http").policy
  local c, err, code = core.connect(host, port, policy(network))
  if not c then return nil, err, code end
  local deadline = timeout and clock() + timeout
  while true do
    local ok, cerr, code = raw_connected(c)
    if ok == true then return c end
    if ok ~= AGAIN then
      core.close(c)
      return nil, "cannot connect to " .. host .. ":" .. port .. ": " .. cerr, code
    end
    if not wait(c, "w", deadline) then
      core.close(c)
      return nil, "timeout", "timeout"
    end
  end
end

--- Raise the open-files soft limit to the hard limit; returns the new limit.
_M.raise_nofile = core.raise_nofile

--- Accept a connection: the new socket, or nil, err, code ("timeout",
-- "closed", "io").
function Socket:accept(timeout)
  check_timeout("accept", timeout)
  local deadline = timeout and clock() + timeout
  while true do
    local c, err, code = raw_accept(self)
    if c ~= AGAIN then return c, err, code end
    if not wait(self, "r", deadline) then return nil, "timeout", "timeout" end
  end
end

-- The receive loop: mode/arg for core.recv, deadline or nil.
local function receive(self, mode, arg, timeout)
  local deadline = timeout and clock() + timeout
  while true do
    local data, err, partial = raw_recv(self, mode, arg)
    if data ~= AGAIN then return data, err, partial end
    if not wait(self, "r", deadline) then
      return nil, "timeout", raw_partial(self)
    end
  end
end

--- Receive "*l" (a line, without CR/LF; the default), "*a" (everything until
-- the peer closes) or a byte count. Returns the data, or nil, err, partial
-- (err "closed" at end of stream, "timeout", or a sentence).
function Socket:receive(pattern, timeout)
  check_timeout("receive", timeout)
  if pattern == nil or pattern == "*l" or pattern == "l" then
    return receive(self, "l", _M.max_line, timeout)
  elseif pattern == "*a" or pattern == "a" then
    return receive(self, "a", nil, timeout)
  elseif type(pattern) == "number" then
    arg("receive", "byte count", pattern, ARGS.count, 2)
    return receive(self, "n", pattern, timeout)
  end
  error("receive: pattern must be '*l', '*a' or a byte count, got " .. tostring(pattern), 2)
end

--- Receive up to (not including) the delimiter string, which is consumed.
function Socket:receive_until(delim, timeout)
  arg("receive_until", "delimiter", delim, ARGS.delimiter, 2)
  check_timeout("receive_until", timeout)
  return receive(self, "u", delim, timeout)
end

--- Send data (a string, a number or a list of strings) completely; returns
-- the number of bytes sent, or nil, err ("closed", "timeout", ...), sent.
function Socket:send(data, timeout)
  local t = type(data)
  if t == "table" then
    data = concat(data)
  elseif t == "number" then
    data = tostring(data)
  elseif t ~= "string" then
    error("send: data must be a string, a number or a list of strings, got " .. t, 2)
  end
  check_timeout("send", timeout)
  local deadline, i = timeout and clock() + timeout, 0
  while true do
    local n, err, sent = raw_send(self, data, i)
    if n ~= AGAIN then return n, err, sent end
    i = err
    if not wait(self, "w", deadline) then return nil, "timeout", i end
  end
end

--- Close the socket (a task waiting on it gets nil, "closed", "closed");
-- true, or nil, "closed", "closed" when it was closed already.
Socket.close = core.close

--- Half-close: no more sending; the peer sees end of stream.
Socket.shutdown = core.shutdown

--- The local port.
Socket.port = core.port

--- True once closed.
Socket.is_closed = core.is_closed

--- Bytes received and buffered but not yet returned by receive.
Socket.buffered = core.buffered

return _M
