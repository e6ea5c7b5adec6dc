--- spec/support/procs.lua — child processes for integration specs that
-- must not block the loop (the test server may run in the same process):
-- start a command in the background with its output in files, poll its
-- exit with weft.sleep, kill it; start and stop a private redis-server;
-- declare a test once per store kind (`each_store`).
local weft = require "weft"
local files = require "support.files"

local _M = {}

local fmt = string.format

--- The weft executable under test.
function _M.weft_bin()
  return os.getenv("WEFT_BIN") or "weft"
end

-- Quote s for sh; read a whole file (nil if absent): support.files.
local q, slurp = files.quote, files.slurp
_M.quote = q
_M.slurp = slurp

--- Start argv (a list) in the background with env (table) set; returns a
-- process {pid, out, err, rc paths}.
function _M.spawn(argv, env)
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p " .. q(dir))
  local p = { dir = dir, out = dir .. "/out", err = dir .. "/err", rc = dir .. "/rc", pidf = dir .. "/pid" }
  local parts = {}
  for k, v in pairs(env or {}) do parts[#parts + 1] = k .. "=" .. q(v) end
  for _, a in ipairs(argv) do parts[#parts + 1] = q(a) end
  local cmd = table.concat(parts, " ")
  -- the outer shell's own output ("Killed" after kill -9) is dropped, and
  -- it holds none of ours: a child left running cannot keep the pipe of
  -- whoever runs the specs (ctest) open
  os.execute(fmt("sh -c %s >/dev/null 2>&1 &", q(fmt("env %s >%s 2>%s & echo $! >%s; wait $!; echo $? >%s",
    cmd, q(p.out), q(p.err), q(p.pidf), q(p.rc)))))
  for _ = 1, 500 do
    local s = slurp(p.pidf)
    if s and s:match("%d+") then p.pid = tonumber(s:match("%d+")); break end
    weft.sleep(0.002)
  end
  assert(p.pid, "the child did not start")
  return p
end

--- Wait (yielding to the loop) until p exits; returns its exit status,
-- stdout, stderr. Raises after timeout seconds.
function _M.wait(p, timeout)
  local deadline = weft.clock() + (timeout or 60)
  while true do
    local rc = slurp(p.rc)
    if rc and rc:match("%d") then
      local out, err = slurp(p.out) or "", slurp(p.err) or ""
      os.execute("rm -rf " .. q(p.dir))
      return tonumber(rc:match("%d+")), out, err
    end
    if weft.clock() > deadline then
      _M.kill(p)
      error("child " .. p.pid .. " did not exit in time; stderr: " .. (slurp(p.err) or ""), 2)
    end
    weft.sleep(0.005)
  end
end

--- The last non-empty line of s (a child's output).
function _M.last_line(s)
  local last
  for line in s:gmatch("[^\n]+") do last = line end
  return last
end

--- SIGKILL the child.
function _M.kill(p)
  os.execute("kill -9 " .. p.pid .. " 2>/dev/null")
end

--- The pids of the live child processes of process pid (a sorted list;
-- read from /proc).
function _M.children(pid)
  local out = {}
  local ls = io.popen("ls /proc 2>/dev/null")
  for name in ls:lines() do
    if name:match("^%d+$") then
      local st = slurp("/proc/" .. name .. "/stat")
      -- "pid (comm) state ppid ...": comm may hold spaces and parentheses
      local state, ppid
      if st then state, ppid = st:match("%) (%S) (%d+)") end
      if ppid and tonumber(ppid) == pid and state ~= "Z" then out[#out + 1] = tonumber(name) end
    end
  end
  ls:close()
  table.sort(out)
  return out
end

--- Run argv to completion (yielding); returns status, stdout, stderr.
function _M.run(argv, env, timeout)
  return _M.wait(_M.spawn(argv, env), timeout)
end

--- A free loopback TCP port.
function _M.free_port()
  local tcp = require "weft.tcp"
  local s = assert(tcp.listen("127.0.0.1", 0))
  local port = s:port()
  s:close()
  return port
end

--- True once something accepts connections on loopback port (yielding
-- between tries), false after `tries` tries (default 1000).
function _M.accepting(port, tries)
  for _ = 1, tries or 1000 do
    local ok, c = pcall(require("weft.tcp").connect, "127.0.0.1", port, 0.05)
    if ok and c then c:close(); return true end
    weft.sleep(0.005)
  end
  return false
end

--- Wait (yielding) until something accepts on loopback port; raises
-- "nothing listens on port N" when nothing does.
function _M.wait_port(port)
  if not _M.accepting(port) then error("nothing listens on port " .. port, 2) end
end

--- Start a private redis-server on a free port (nil when not installed);
-- opts.dir + opts.persist keep data across restarts (appendonly, fsync
-- always). Returns {port, url, stop(), start()}.
function _M.redis(opts)
  opts = opts or {}
  if os.execute("command -v redis-server >/dev/null 2>&1") ~= 0 then return nil end
  local r = { port = _M.free_port(), dir = opts.dir }
  r.url = fmt("redis://127.0.0.1:%d/0", r.port)
  function r.start()
    local args = { "redis-server", "--port", tostring(r.port), "--bind", "127.0.0.1", "--save", "" }
    if opts.persist then
      for _, a in ipairs({ "--appendonly", "yes", "--appendfsync", "always", "--dir", r.dir }) do args[#args + 1] = a end
    else
      for _, a in ipairs({ "--appendonly", "no" }) do args[#args + 1] = a end
    end
    r.proc = _M.spawn(args)
    if not _M.accepting(r.port, 400) then error("redis-server did not start on port " .. r.port) end
  end
  function r.stop()
    if r.proc then
      os.execute("kill " .. r.proc.pid .. " 2>/dev/null")
      _M.wait(r.proc, 10)
      r.proc = nil
    end
  end
  r.start()
  return r
end

--- Declare the busted tests "on sqlite" and "on redis #redis", each
-- calling fn(url) with a fresh store: a weft.db in tmpdir(), or a private
-- redis-server (pending when none is installed) stopped through
-- b.defer(stop). b holds the spec's busted functions it, pending and
-- defer (busted gives them to the spec file only, not to this module).
function _M.each_store(b, tmpdir, fn)
  b.it("on sqlite", function()
    fn("sqlite:" .. tmpdir() .. "/weft.db")
  end)
  b.it("on redis #redis", function()
    local redis = _M.redis()
    if not redis then return b.pending("redis-server is not installed") end
    b.defer(redis.stop)
    fn(redis.url)
  end)
end

return _M
