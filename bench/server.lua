--- bench/server.lua — load benchmark of `weft serve` (docs/server.md).
--
-- Run: build/weft exec bench/server.lua [--seconds N] [--connections N] [--quick]
--   (defaults 30 s and 1000 connections; --quick: 5 s and 200)
--
-- `weft serve --port <free port> --store memory:` runs as a separate process (so the
-- server's figures are not mixed with the client's). The bench creates an
-- agent on the mock model (mock:echo) and a declarative workflow whose one
-- node is that agent, then drives load from this process: N keep-alive
-- connections, each a weft.tcp cosocket in its own weft.go task sending
-- raw HTTP/1.1 requests one after the other (the next one as soon as the
-- answer is in), for the duration, twice: on GET /api/v1/health (cheap)
-- and on POST /api/v1/workflows/{id}/execute {input} (one workflow run with
-- one agent turn per request). Each phase has an untimed 1 s warm-up on the
-- same connections. Printed per phase: requests/s, latency p50/p99/max (ms,
-- from sending the request to the end of the answer), error counts (a
-- status other than 200, an answer without the expected content, a
-- connection failure), the CPU seconds the server and the client used, and
-- the requests per server CPU-second ("per core": requests / server CPU
-- seconds, the figure of issue 14's row, independent of how much of a core
-- the server got on a shared machine).
-- The client is one thread too, so the figures are those of the pair:
-- compare them only within one run of the script. Timings are printed,
-- never asserted; the script exits non-zero only when setup fails.
-- Uses weft, weft.tcp, weft.json, bench/bench_lib.lua.
local weft = require "weft"
package.path = (arg and arg[0] and arg[0]:match("^(.*/)") or "bench/") .. "?.lua;" .. package.path
local blib = require "bench_lib"
local tcp = require "weft.tcp"
local json = weft.json

local fmt, concat, sort, ceil = string.format, table.concat, table.sort, math.ceil

local opts = { seconds = 30, connections = 1000 }
do
  blib.parse_flags("bench/server.lua", { ... }, opts,
    { ["--seconds"] = "seconds", ["--connections"] = "connections" },
    function(o) o.seconds, o.connections = 5, 200 end)
  assert(opts.seconds and opts.seconds > 0, "--seconds must be a positive number")
  assert(opts.connections and opts.connections >= 1 and opts.connections % 1 == 0,
    "--connections must be a positive integer")
end

local T = 30 -- seconds: a bound on one answer (a stuck server fails the bench, never hangs it)

local raised = tcp.raise_nofile()

-- A free loopback port (weft serve takes no port 0).
local free_port
do
  local s = assert(tcp.listen("127.0.0.1", 0))
  free_port = s:port()
  s:close()
end

-- The server as a child process; $$ is the shell (replaced by weft serve),
-- $PPID this weft process. Its stderr says where it listens.
local p = io.popen(fmt('echo $$; exec "$(readlink /proc/$PPID/exe)" serve --port %d --store memory: 2>&1',
  free_port), "r")
local pid = tonumber(p:read("*l"))
local port
for _ = 1, 20 do
  local line = p:read("*l")
  if not line then break end
  port = tonumber(line:match("serving http://127%.0%.0%.1:(%d+)/"))
  if port then break end
end
if not (pid and port) then
  if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
  error("weft serve did not start", 0)
end

-- Read one HTTP response from c: status, body; or nil, err.
local function read_response(c)
  local line, err = c:receive("*l", T)
  if not line then return nil, err end
  local status = tonumber(line:match("^HTTP/1%.%d (%d%d%d)"))
  if not status then return nil, "bad status line" end
  local len, close
  while true do
    local h, herr = c:receive("*l", T)
    if not h then return nil, herr end
    if h == "" then break end
    local k, v = h:match("^([^:]+):%s*(.-)%s*$")
    if k then
      k = k:lower()
      if k == "content-length" then len = tonumber(v)
      elseif k == "connection" and v:lower() == "close" then close = true end
    end
  end
  local body = ""
  if len and len > 0 then
    local b, berr = c:receive(len, T)
    if not b then return nil, berr end
    body = b
  end
  return status, body, close
end

-- One request with Connection: close on a fresh connection (setup calls).
local function call(method, path, body)
  local c = assert(tcp.connect("127.0.0.1", port, T))
  local data = body and json.encode(body) or ""
  assert(c:send(fmt("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    .. "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", method, path, #data, data), T))
  local status, rbody = read_response(c)
  c:close()
  if not status then error(fmt("%s %s: %s", method, path, tostring(rbody)), 0) end
  return status, rbody
end

-- Setup: the agent and the workflow, then one execution checked in full.
do
  local st, b = call("POST", "/api/v1/agents", { id = "bench_agent", name = "bench_agent", model = "mock:echo",
                                                 instructions = "Repeat the input." })
  if st ~= 201 then error("creating the agent: " .. st .. " " .. b, 0) end
  st, b = call("POST", "/api/v1/workflows", { id = "bench", name = "bench",
    nodes = { { id = "answer", agent = "bench_agent" } }, start = "answer" })
  if st ~= 201 then error("creating the workflow: " .. st .. " " .. b, 0) end
  st, b = call("POST", "/api/v1/workflows/bench/execute", { input = "hello" })
  local r = st == 200 and json.decode(b)
  if not (r and r.status == "completed" and r.outputs and #r.outputs >= 1) then
    error("the workflow did not complete: " .. st .. " " .. b, 0)
  end
end

-- CPU seconds (user + system) of process pid ("self" for this one).
local function cpu_s(which)
  local s = blib.read_file("/proc/" .. which .. "/stat")
  if not s then return 0 end
  local rest = s:match("%) (.*)$")
  local f = {}
  for x in rest:gmatch("%S+") do f[#f + 1] = x end
  -- after "(comm) ": state is field 3 of stat, utime 14 and stime 15
  return (tonumber(f[12]) + tonumber(f[13])) / 100
end

-- Percentile q (0..1) of the sorted list s.
local function pct(s, q)
  if #s == 0 then return 0 / 0 end
  return s[math.max(1, ceil(q * #s))]
end

local health_req = "GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
local exec_body = json.encode({ input = "hello" })
local exec_req = fmt("POST /api/v1/workflows/bench/execute HTTP/1.1\r\nHost: 127.0.0.1\r\n"
  .. "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", #exec_body, exec_body)

-- One phase: n connections send req until the time is up; check(body)
-- says whether an answer is right. Returns the figures.
local function phase(req, check, seconds, n)
  local lat, errs = {}, { status = 0, content = 0, connection = 0 }
  local conns, nconn = {}, 0
  local state = { timing = false, stop_at = 0 }
  -- open every connection first
  local opening = {}
  for i = 1, n do
    opening[i] = weft.go(function()
      local c, err = tcp.connect("127.0.0.1", port, T)
      if c then conns[i] = c; nconn = nconn + 1 else errs.connection = errs.connection + 1 end
      return err
    end)
  end
  for i = 1, n do opening[i]:wait() end
  local function worker(i)
    local c = conns[i]
    local clock = weft.clock
    while clock() < state.stop_at do
      if not c then
        local err
        c, err = tcp.connect("127.0.0.1", port, T)
        if not c then errs.connection = errs.connection + 1; return end
      end
      local t0 = clock()
      local ok, err = c:send(req, T)
      local status, body, close
      if ok then status, body, close = read_response(c) end
      if not ok or not status then
        errs.connection = errs.connection + 1
        c:close(); c = nil
      else
        if state.timing then
          if status ~= 200 then errs.status = errs.status + 1
          elseif not check(body) then errs.content = errs.content + 1
          else lat[#lat + 1] = clock() - t0 end
        end
        if close then c:close(); c = nil end
      end
    end
    conns[i] = c -- kept open for the next round
  end
  -- warm-up (untimed), then the timed run on the same connections
  state.stop_at = weft.clock() + 1
  local ws = {}
  for i = 1, n do ws[i] = weft.go(worker, i) end
  for i = 1, n do ws[i]:wait() end
  collectgarbage("collect")
  local srv0, cli0 = cpu_s(pid), cpu_s("self")
  state.timing = true
  local t0 = weft.clock()
  state.stop_at = t0 + seconds
  for i = 1, n do ws[i] = weft.go(worker, i) end -- on the warm-up's connections
  for i = 1, n do ws[i]:wait() end
  local wall = weft.clock() - t0
  local srv1, cli1 = cpu_s(pid), cpu_s("self")
  for i = 1, n do if conns[i] then conns[i]:close() end end
  sort(lat)
  return {
    requests = #lat, wall = wall, rps = #lat / wall,
    p50 = pct(lat, 0.5) * 1000, p99 = pct(lat, 0.99) * 1000, max = (lat[#lat] or 0 / 0) * 1000,
    errs = errs, opened = nconn, server_cpu = srv1 - srv0, client_cpu = cli1 - cli0,
  }
end

blib.header("weft server benchmark (bench/server.lua)",
  fmt("open-files limit %s; server: weft serve --store memory:, separate process (pid %d)", tostring(raised), pid))
print(fmt("  %d keep-alive connections (weft.tcp tasks, raw HTTP/1.1, one request in flight each), "
  .. "%g s per endpoint after a 1 s warm-up", opts.connections, opts.seconds))
print(fmt("  execute: a declarative workflow of one agent node on mock:echo, body %s", exec_body))

local phases = {
  { name = "GET /api/v1/health", req = health_req,
    check = function(b) return b:find('"status":"ok"', 1, true) ~= nil end },
  { name = "POST /api/v1/workflows/bench/execute", req = exec_req,
    check = function(b) return b:find('"status":"completed"', 1, true) ~= nil end },
}
print(fmt("%-38s %10s %9s %9s %9s %9s %22s %11s %9s", "endpoint", "req/s", "requests", "p50 ms", "p99 ms",
  "max ms", "errors status/body/conn", "cpu srv/cli", "per core"))
for _, ph in ipairs(phases) do
  local r = phase(ph.req, ph.check, opts.seconds, opts.connections)
  print(fmt("%-38s %10.0f %9d %9.2f %9.2f %9.2f %22s %11s %9.0f", ph.name, r.rps, r.requests, r.p50, r.p99, r.max,
    fmt("%d/%d/%d", r.errs.status, r.errs.content, r.errs.connection),
    fmt("%.1f/%.1f", r.server_cpu, r.client_cpu),
    r.server_cpu > 0 and r.requests / r.server_cpu or 0 / 0))
  if r.opened < opts.connections then
    print(fmt("  (only %d of %d connections could be opened)", r.opened, opts.connections))
  end
end
local _, peak = blib.rss_kib(pid)
local rss = blib.rss_kib(pid)
print(fmt("server RSS now %.1f MiB, peak %.1f MiB", (rss or 0) / 1024, (peak or 0) / 1024))

os.execute("kill " .. pid .. " 2>/dev/null")
p:close()
