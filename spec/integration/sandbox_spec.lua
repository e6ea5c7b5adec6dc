-- spec/integration/sandbox_spec.lua — weft.sandbox (docs/io.md
-- "weft.sandbox"): the result table, environment, stdin, cwd, the uid drop
-- (as root), fd hygiene, command not found, timeouts that kill the whole
-- process group, a gigabyte of output, a fork bomb under max_procs and
-- under the default cap, the memory and CPU limits, option validation, the
-- bwrap argv, use from executors (concurrent invocations, run
-- cancellation, executor timeouts) and weft.go tasks, tempdir/remove, no
-- fd left behind; and isolation: no network, a private /tmp, no store
-- directory, setsid and double-forked daemons killed (when the command
-- exits, on timeout, when weft is SIGKILLed), weft's environment, memory
-- and fds out of reach of a command of the same uid (weft run as nobody
-- through setpriv), no bwrap -> an error naming the fix, and isolation
-- "none" with its one warning per run.
--
-- The specs need a working bubblewrap (scripts/deps.sh installs it): they
-- fail, saying so, without it. Processes are checked through /proc:
-- "alive" unless /proc/PID/stat is gone or says zombie; the sleepers a test
-- starts carry a unique duration (a marker) so that they are found by
-- command line in any pid namespace. Waiting for a child to reach a state
-- polls /proc or the file system with a deadline (eventually); nothing
-- asserts on wall-clock durations.
local weft = require "weft"
local h = require "helpers"
local sandbox = require "weft.sandbox"
local proc = require "weft.core.proc"

local procs = require "support.procs"
local files = require "support.files"

local ROOT = proc.geteuid() == 0
local SRC = os.getenv("WEFT_SOURCE_DIR") or "."
local CHILD = SRC .. "/spec/fixtures/sandbox_child.lua"
local BWRAP, BWRAP_ERR = sandbox.mode()
assert(BWRAP == "bwrap", "the sandbox specs need a working bubblewrap (scripts/deps.sh installs it): "
  .. tostring(BWRAP_ERR))

-- Contents of a file, or nil.
local read_file = files.slurp

-- The numbers of a file with one per line (empty list when absent).
local function pids_of(path)
  local out = {}
  for n in (read_file(path) or ""):gmatch("%d+") do out[#out + 1] = tonumber(n) end
  return out
end

-- True when pid exists and is not a zombie.
local function alive(pid)
  local s = read_file("/proc/" .. pid .. "/stat")
  local state = s and s:match("%) (%S) ")
  return state ~= nil and state ~= "Z" and state ~= "X"
end

-- A unique duration for `sleep`, so that the sleepers a test starts can be
-- found in /proc by their command line, whatever pid namespace they run in.
-- (Our pid makes it unique among concurrent spec runs.)
local nmarks = 0
local MYPID = tonumber(read_file("/proc/self/stat"):match("^%d+"))
local function marker()
  nmarks = nmarks + 1
  return string.format("1000.%07d%04d", MYPID, nmarks)
end

-- Live processes whose command line contains m.
local function with_marker(m)
  local out = {}
  local ls = assert(io.popen("ls /proc"))
  for name in ls:lines() do
    local pid = tonumber(name)
    if pid then
      local cmd = read_file("/proc/" .. name .. "/cmdline")
      if cmd and cmd:find(m, 1, true) and alive(pid) then out[#out + 1] = pid end
    end
  end
  ls:close()
  return out
end

-- Run the loop until cond() holds; fails after `limit` seconds (default
-- 10) naming what it waited for. A deadline guard, not a timing assert.
local function eventually(what, cond, limit)
  local deadline = weft.clock() + (limit or 10)
  while not cond() do
    if weft.clock() > deadline then error("gave up waiting: " .. what, 2) end
    weft.sleep(0.01)
  end
end

-- Wait until no process with marker m is alive.
local function none_left(m)
  eventually("processes running 'sleep " .. m .. "' to end", function()
    return #with_marker(m) == 0
  end)
end

-- Assert r is a well-formed result of a command that exited with code.
local function assert_exited(r, code)
  assert.is_table(r)
  assert.equal(code, r.exit_code)
  assert.is_nil(r.signal)
  assert.is_false(r.timed_out)
end

describe("weft.sandbox", function()
  local dir

  before_each(function() dir = assert(sandbox.tempdir("weft-spec")) end)
  after_each(function() if dir then assert(sandbox.remove(dir)) end end)

  describe("run", function()
    it("returns every field of the result", function()
      local r = sandbox.run{ argv = { "sh", "-c", "echo out; echo err >&2; exit 3" } }
      assert.equal(3, r.exit_code)
      assert.is_nil(r.signal)
      assert.equal("out\n", r.stdout)
      assert.equal("err\n", r.stderr)
      assert.is_false(r.timed_out)
      assert.is_false(r.truncated)
      assert.is_number(r.duration_ms)
      assert.is_true(r.duration_ms >= 0)
      assert.equal(sandbox.mode(), r.mode)
      assert.is_number(r.pid)
      assert.is_nil(r.error)
    end)

    it("reports the signal that ended the command, with no exit code", function()
      local r = sandbox.run{ argv = { "sh", "-c", "kill -TERM $$" } }
      assert.is_nil(r.exit_code)
      assert.equal(15, r.signal)
      assert.is_false(r.timed_out)
    end)

    it("gives the command PATH, LANG and HOME (its cwd, else /tmp) unless env is given", function()
      -- the README's example: a compiler found on the default PATH
      local dir = assert(sandbox.tempdir())
      local r = sandbox.run{ argv = { "env" }, cwd = dir }
      assert_exited(r, 0)
      -- bwrap itself sets PWD
      local out = r.mode == "bwrap" and r.stdout:gsub("PWD=[^\n]*\n", "") or r.stdout
      assert.equal("HOME=" .. proc.realpath(dir) .. "\nLANG=C.UTF-8\nPATH=/usr/local/bin:/usr/bin:/bin\n", out)
      r = sandbox.run{ argv = { "sh", "-c", "echo $HOME; touch $HOME/x && echo written" } }
      assert_exited(r, 0)
      assert.equal("/tmp\nwritten\n", r.stdout) -- the sandbox's private /tmp
      local cc = sandbox.run{ argv = { "cc", "-x", "c", "-c", "-o", "x.o", "-" }, cwd = dir,
                              stdin = "int f(void) { return 1; }\n" }
      assert_exited(cc, 0)
      assert(sandbox.remove(dir))
      -- env replaces the default environment as a whole
      r = sandbox.run{ argv = { "env" }, env = { B = "two words", A = 1 } }
      out = r.mode == "bwrap" and r.stdout:gsub("PWD=[^\n]*\n", "") or r.stdout
      assert.equal("A=1\nB=two words\n", out)
    end)

    it("passes nothing of weft's own environment on by default, in every isolation mode", function()
      local dir = assert(sandbox.tempdir("weft-spec-env"))
      local script = dir .. "/env_child.lua"
      local fh = assert(io.open(script, "w"))
      fh:write([[
local sandbox = require "weft.sandbox"
for _, iso in ipairs { "bwrap", "none" } do
  local r = assert(sandbox.run{ argv = { "env" }, isolation = iso })
  io.write("[", iso, "]\n", r.stdout)
end
]])
      fh:close()
      local rc, out, err = procs.run({ procs.weft_bin(), "exec", script },
                                     { OPENAI_API_KEY = "sk-fake-spec-key", WEFT_SPEC_MARK = "spec-mark" }, 60)
      assert(sandbox.remove(dir))
      assert.equal(0, rc, err)
      assert.mentions("[bwrap]\n", out)
      assert.mentions("[none]\n", out)
      assert.is_nil(out:find("sk-fake-spec-key", 1, true))
      assert.is_nil(out:find("spec-mark", 1, true))
      local _, paths = out:gsub("PATH=/usr/local/bin:/usr/bin:/bin\n", "")
      assert.equal(2, paths)
      local _, langs = out:gsub("LANG=C.UTF%-8\n", "")
      assert.equal(2, langs)
    end)

    it("looks the command up in the PATH of env", function()
      local r = sandbox.run{ argv = { "echo", "x" }, env = { PATH = "/nonexistent" } }
      assert.equal(127, r.exit_code)
      r = sandbox.run{ argv = { "echo", "x" }, env = { PATH = "/usr/bin:/bin" } }
      assert_exited(r, 0)
      assert.equal("x\n", r.stdout)
    end)

    it("round-trips 1 MB of stdin through cat", function()
      local parts = {}
      for i = 1, 16384 do parts[i] = string.format("%063d\n", i) end
      local data = table.concat(parts)
      assert.equal(1024 * 1024, #data)
      local r = sandbox.run{ argv = { "cat" }, stdin = data, max_output = 2 * #data }
      assert_exited(r, 0)
      assert.is_false(r.truncated)
      assert.equal(#data, #r.stdout)
      assert.is_true(r.stdout == data)
    end)

    it("runs in cwd", function()
      local r = sandbox.run{ argv = { "sh", "-c", "pwd; echo hi > made" }, cwd = dir }
      assert_exited(r, 0)
      assert.equal(proc.realpath(dir) .. "\n", r.stdout)
      assert.equal("hi\n", read_file(dir .. "/made"))
    end)

    it("runs a program of cwd given by a relative path", function()
      local r = sandbox.run{
        argv = { "sh", "-c", "printf '#!/bin/sh\\necho prog\\n' > prog && chmod 755 prog" },
        cwd = dir,
      }
      assert_exited(r, 0)
      r = sandbox.run{ argv = { "./prog" }, cwd = dir }
      assert_exited(r, 0)
      assert.equal("prog\n", r.stdout)
    end)

    it("names a cwd it cannot enter", function()
      local r = sandbox.run{ argv = { "true" }, cwd = "/no/such/dir" }
      assert.equal(126, r.exit_code)
      assert.mentions("cannot change directory to /no/such/dir", r.error)
    end)

    it("runs the command as nobody when weft is root", function()
      local r = sandbox.run{ argv = { "id", "-u" } }
      assert_exited(r, 0)
      assert.equal((ROOT and 65534 or proc.geteuid()) .. "\n", r.stdout)
    end)

    it("closes every fd of weft in the command", function()
      local r = sandbox.run{ argv = { "ls", "/proc/self/fd" } }
      assert_exited(r, 0)
      assert.equal("0\n1\n2\n3\n", r.stdout) -- 3: ls's own directory
    end)

    it("returns exit code 127 and 'command not found' for an unknown command", function()
      local r = sandbox.run{ argv = { "no-such-cmd", "--flag" }, stdin = "ignored" }
      assert.equal(127, r.exit_code)
      assert.is_nil(r.signal)
      assert.equal("command not found: no-such-cmd", r.error)
      assert.equal("command not found: no-such-cmd\n", r.stderr)
      assert.equal("", r.stdout)
    end)

    it("kills the command and its children on timeout", function()
      local m = marker()
      local r = sandbox.run{
        argv = { "sh", "-c", "sleep " .. m .. " & echo started; sleep 100" }, timeout = 0.3,
      }
      assert.is_true(r.timed_out)
      assert.equal(9, r.signal)
      assert.is_nil(r.exit_code)
      assert.is_false(alive(r.pid))
      none_left(m)
    end)

    it("does not let a background child outlive the command", function()
      local m = marker()
      local r = sandbox.run{ argv = { "sh", "-c", "sleep " .. m .. " & echo started" }, timeout = 30 }
      assert_exited(r, 0) -- not timed out: the sleeper did not hold the call
      assert.equal("started\n", r.stdout)
      none_left(m)
    end)

    it("bounds a command that prints a gigabyte", function()
      local r = sandbox.run{ argv = { "head", "-c", "1000000000", "/dev/zero" } }
      assert_exited(r, 0)
      assert.is_true(r.truncated)
      local marker = "\n[... output truncated at 1048576 bytes]"
      assert.equal(1024 * 1024 + #marker, #r.stdout)
      assert.equal(marker, r.stdout:sub(-#marker))
      assert.equal(string.rep("\0", 16), r.stdout:sub(1, 16))
    end)

    it("caps each stream at max_output", function()
      local r = sandbox.run{
        argv = { "sh", "-c", "yes | head -c 100000; echo short >&2" }, max_output = 10,
      }
      assert_exited(r, 0)
      assert.is_true(r.truncated)
      assert.equal("y\ny\ny\ny\ny\n\n[... output truncated at 10 bytes]", r.stdout)
      assert.equal("short\n", r.stderr)
    end)

    it("contains a fork bomb under max_procs and leaves nothing behind", function()
      -- bounded: forks up to 200 sleepers, each recording its pid, until
      -- fork fails (dash then exits with "Cannot fork")
      local m = marker()
      local r = sandbox.run{
        argv = { "sh", "-c",
                 "i=0; while [ $i -lt 200 ]; do sleep " .. m .. " & echo $! >> pids; " ..
                 "i=$((i+1)); done; wait" },
        cwd = dir, max_procs = 20, timeout = 60,
      }
      assert.is_false(r.timed_out)
      assert.is_not.equal(0, r.exit_code)
      assert.mentions("fork", r.stderr)
      local started = #pids_of(dir .. "/pids")
      assert.is_true(started < 20, started .. " sleepers started")
      none_left(m)
      -- the machine is still healthy: a normal command runs
      assert_exited(sandbox.run{ argv = { "true" }, max_procs = 20 }, 0)
    end)

    it("makes a big allocation fail under memory_mb", function()
      local argv = { "dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1" }
      local r = sandbox.run{ argv = argv, memory_mb = 64 }
      assert.is_not.equal(0, r.exit_code)
      assert.mentions("memory exhausted", r.stderr)
      r = sandbox.run{ argv = argv, memory_mb = 1024 }
      assert_exited(r, 0)
    end)

    it("kills a command that exceeds cpu_s", function()
      local r = sandbox.run{ argv = { "sh", "-c", "while :; do :; done" }, cpu_s = 1, timeout = 60 }
      assert.is_false(r.timed_out)
      assert.equal(24, r.signal) -- SIGXCPU
    end)

    it("raises naming the field for invalid options", function()
      local cases = {
        { nil, "options must be a table, got nil" },
        { {}, "argv must be a non-empty list of strings" },
        { { argv = {} }, "argv must be a non-empty list of strings" },
        { { argv = "ls" }, "argv must be a non-empty list of strings" },
        { { argv = { "ls", 3 } }, "argv must be a non-empty list of strings (argv[2] is a number)" },
        { { argv = { "" } }, "argv[1] must not be empty" },
        { { argv = { "ls", "a\0b" } }, "argv[2] contains a NUL byte" },
        { { argv = { "ls" }, stdin = 5 }, "stdin must be a string" },
        { { argv = { "ls" }, cwd = "" }, "cwd must be a non-empty string" },
        { { argv = { "ls" }, env = "A=1" }, "env must be a table" },
        { { argv = { "ls" }, env = { ["A=B"] = "1" } }, "env: invalid variable name A=B" },
        { { argv = { "ls" }, env = { A = true } }, "env.A must be a string" },
        { { argv = { "ls" }, timeout = 0 }, "timeout must be a number of seconds > 0" },
        { { argv = { "ls" }, timeout = "1" }, "timeout must be a number" },
        { { argv = { "ls" }, memory_mb = 1.5 }, "memory_mb must be a positive integer (at most 2^40)" },
        { { argv = { "ls" }, cpu_s = 0 }, "cpu_s must be a positive integer" },
        { { argv = { "ls" }, max_procs = -1 }, "max_procs must be a positive integer" },
        { { argv = { "ls" }, memory_mb = 1e300 }, "memory_mb must be a positive integer" },
        { { argv = { "ls" }, max_output = 0 / 0 }, "max_output must be a positive integer" },
        { { argv = { "ls" }, max_output = "big" }, "max_output must be a positive integer" },
        { { argv = { "ls" }, mode = "rlimits" }, "option mode was replaced by isolation" },
        { { argv = { "ls" }, isolation = "docker" }, 'isolation must be "bwrap" (the default) or "none"' },
        { { argv = { "ls" }, network = 1 }, "network must be a boolean" },
        { { argv = { "ls" }, isolation = "none", network = false }, 'network = false needs isolation "bwrap"' },
        { { argv = { "ls" }, ro_paths = { "rel" } }, "ro_paths[1] must be an absolute path without '..'" },
        { { argv = { "ls" }, ro_paths = { "/a/../etc" } }, "ro_paths[1] must be an absolute path" },
        { { argv = { "ls" }, ro_paths = "/opt" }, "ro_paths must be a list of absolute paths" },
        { { argv = { "ls" }, isolation = "none", ro_paths = { "/opt" } }, 'ro_paths needs isolation "bwrap"' },
        { { argv = { "ls" }, timout = 1 }, "unknown option 'timout' (options: argv, cpu_s, cwd, env, isolation, "
          .. "max_output, max_procs, memory_mb, network, ro_paths, stdin, timeout); did you mean 'timeout'?" },
      }
      for _, c in ipairs(cases) do
        local err = h.error_of(function() sandbox.run(c[1]) end)
        assert.is_string(err)
        assert.mentions("sandbox.run: " .. c[2], err)
        assert.mentions("sandbox_spec.lua", err) -- raised at the caller
      end
    end)

    it("suggests the option meant for a typo or another framework's name", function()
      local function err_of(opts) return h.error_of(function() sandbox.run(opts) end) end
      assert.mentions("sandbox.run: unknown option 'command' (options: argv, ", err_of{ command = { "ls" } })
      assert.mentions("; did you mean 'argv'?", err_of{ command = { "ls" } })
      assert.mentions("; did you mean 'env'?", err_of{ argv = { "ls" }, environment = {} })
      assert.mentions("; did you mean 'memory_mb'?", err_of{ argv = { "ls" }, memmory_mb = 5 })
      assert.mentions("sandbox_spec.lua", err_of{ argv = { "ls" }, memmory_mb = 5 })
    end)

    it("runs without isolation when asked to (isolation = \"none\")", function()
      local r = sandbox.run{ argv = { "true" }, isolation = "none" }
      assert_exited(r, 0)
      assert.equal("none", r.mode)
      assert.equal("bwrap", sandbox.run{ argv = { "true" }, isolation = "bwrap" }.mode)
    end)

    it("applies the default limits when none are given", function()
      assert.same({ timeout = 60, memory_mb = 1024, max_procs = 64, max_output = 1024 * 1024 },
        sandbox.DEFAULTS)
      -- address space: a 2 GiB allocation fails, 512 MiB does not
      local argv = { "dd", "if=/dev/zero", "of=/dev/null", "bs=2000M", "count=1" }
      local r = sandbox.run{ argv = argv }
      assert.is_not.equal(0, r.exit_code)
      assert.mentions("memory exhausted", r.stderr)
      argv[4] = "bs=512M"
      assert_exited(sandbox.run{ argv = argv }, 0)
    end)

    it("leaves no fd behind", function()
      local before = proc.fd_count()
      sandbox.run{ argv = { "cat" }, stdin = "abc" }
      sandbox.run{ argv = { "no-such-cmd" } }
      sandbox.run{ argv = { "sleep", "100" }, timeout = 0.05 }
      sandbox.run{ argv = { "head", "-c", "10000000", "/dev/zero" }, max_output = 100 }
      assert.equal(before, proc.fd_count())
    end)
  end)

  describe("bwrap_args", function()
    -- The position of the first v in list a after position from, or nil.
    local function index(a, v, from)
      for i = (from or 0) + 1, #a do if a[i] == v then return i end end
    end

    it("shows only system directories, a private /tmp and the writable cwd", function()
      local a = sandbox.bwrap_args("/usr/bin/bwrap", { cwd = "/tmp/w", prlimit = "/usr/bin/prlimit" })
      assert.equal("/usr/bin/bwrap", a[1])
      assert.same({ "--ro-bind", "/usr", "/usr" }, { a[2], a[3], a[4] })
      assert.is_nil(index(a, "/"), "the host's root is not bound")
      for _, v in ipairs(a) do
        assert.is_nil(v:match("^/home") or v:match("^/root") or v:match("^/var") or v:match("^/run"), v)
      end
      local tmpfs = index(a, "--tmpfs")
      assert.equal("/tmp", a[tmpfs + 1])
      local bind = index(a, "--bind")
      assert.is_true(bind > tmpfs) -- the cwd shows through the private /tmp
      assert.same({ "--bind", "/tmp/w", "/tmp/w", "--chdir", "/tmp/w" }, { a[bind], a[bind + 1], a[bind + 2], a[bind + 3], a[bind + 4] })
      assert.is_truthy(index(a, "--unshare-all"))
      assert.is_nil(index(a, "--share-net"))
      assert.same({ "--new-session", "--die-with-parent", "--", "/usr/bin/prlimit", "--nproc=64:64", "--" },
        { unpack(a, #a - 5) })
    end)

    it("enters a private /tmp without a cwd, and shares the network only when asked", function()
      local a = sandbox.bwrap_args("bwrap", { network = true, max_procs = 7, ro_paths = { "/opt/x" } })
      assert.is_nil(index(a, "--bind"))
      assert.equal("/tmp", a[index(a, "--chdir") + 1])
      assert.is_truthy(index(a, "--share-net"))
      assert.equal("/etc/resolv.conf", a[index(a, "--ro-bind-try", index(a, "/etc/localtime")) + 1])
      local ro = index(a, "/opt/x")
      assert.same({ "--ro-bind", "/opt/x", "/opt/x" }, { a[ro - 1], a[ro], a[ro + 1] })
      assert.equal("--nproc=7:7", a[#a - 1])
    end)

    it("confines the command", function()
      local r = sandbox.run{
        argv = { "sh", "-c", "echo ok > here; touch /usr/x 2>&1; ls /" }, cwd = dir,
      }
      assert.equal("bwrap", r.mode)
      assert.equal("ok\n", read_file(dir .. "/here"))
      assert.mentions("Read-only", r.stdout)
      assert.is_nil(r.stdout:find("\nhome\n", 1, true) or r.stdout:find("\nroot\n", 1, true))
    end)
  end)

  describe("from executors and tasks", function()
    it("runs concurrent invocations at once", function()
      -- each command waits for the other's marker: they can only both
      -- finish if both were started before either finished
      local function waiter(id, other)
        return weft.executor(id, function(_, ctx)
          local r = sandbox.run{
            argv = { "sh", "-c", "touch " .. id .. "; while [ ! -e " .. other ..
                     " ]; do sleep 0.01; done; echo " .. id },
            cwd = dir, timeout = 30,
          }
          ctx:yield_output({ id = id, out = r.stdout, timed_out = r.timed_out })
        end)
      end
      local start = h.forward("start")
      local a, b = waiter("a", "b"), waiter("b", "a")
      local res = weft.workflow("concurrent"):start(start):fan_out(start, { a, b })
        :build():run("go")
      assert.equal("completed", res.status)
      assert.same({
        { id = "a", out = "a\n", timed_out = false },
        { id = "b", out = "b\n", timed_out = false },
      }, res.outputs)
    end)

    it("kills the process when the run is cancelled", function()
      local finished = false
      local bg, main = marker(), marker()
      local ex = weft.executor("runner", function()
        sandbox.run{
          argv = { "sh", "-c", "sleep " .. bg .. " & touch started; exec sleep " .. main },
          cwd = dir,
        }
        finished = true
      end)
      local run = weft.workflow("cancel"):start(ex):build():spawn("x")
      eventually("the command to start", function()
        return read_file(dir .. "/started") ~= nil and #with_marker(main) > 0
      end)
      run:cancel()
      assert.equal("cancelled", run:wait().status)
      assert.is_false(finished)
      none_left(main)
      none_left(bg)
    end)

    it("kills the process when the executor times out", function()
      local bg, main = marker(), marker()
      local ex = weft.executor("slow", {
        timeout = 1,
        handle = function()
          sandbox.run{
            argv = { "sh", "-c", "sleep " .. bg .. " & touch started; exec sleep " .. main },
            cwd = dir,
          }
        end,
      })
      local res = weft.workflow("timeout"):start(ex):build():run("x")
      assert.equal("failed", res.status)
      assert.is_true(h.find(res.events, "executor_failed", "slow").data.timed_out)
      assert.is_string(read_file(dir .. "/started")) -- it did run
      none_left(main)
      none_left(bg)
    end)

    it("works in weft.go tasks", function()
      local t1 = weft.go(function() return sandbox.run{ argv = { "echo", "one" } } end)
      local t2 = weft.go(function() return sandbox.run{ argv = { "echo", "two" } } end)
      assert.equal("one\n", t1:wait().stdout)
      assert.equal("two\n", t2:wait().stdout)
    end)
  end)

  describe("isolation", function()
    it("refuses TCP connections, even to the host's loopback, unless network = true", function()
      local srv = assert(require("weft.tcp").listen("127.0.0.1", 0))
      local argv = { "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/" .. srv:port() .. " && echo connected" }
      local r = sandbox.run{ argv = argv }
      assert.is_not.equal(0, r.exit_code)
      assert.equal("", r.stdout)
      r = sandbox.run{ argv = argv, network = true }
      srv:close()
      assert_exited(r, 0)
      assert.equal("connected\n", r.stdout)
    end)

    it("keeps what the command writes to /tmp out of the host's /tmp", function()
      local name = "/tmp/weft-spec-private-" .. marker()
      local r = sandbox.run{ argv = { "sh", "-c", "echo x > " .. name .. " && cat " .. name } }
      assert_exited(r, 0)
      assert.equal("x\n", r.stdout)
      assert.is_nil(read_file(name))
    end)

    it("shows no store directory, nor anything else outside the system directories", function()
      -- a fake store (a 0700 directory in the host's /tmp) and a directory
      -- anyone may read, outside the system directories
      local store = assert(proc.mkdtemp("/tmp/weft-spec-store-XXXXXX"))
      local open = assert(proc.mkdtemp("/var/tmp/weft-spec-open-XXXXXX"))
      for _, f in ipairs{ store .. "/weft.db", open .. "/f" } do
        local fh = assert(io.open(f, "w"))
        fh:write("secret-rows\n")
        fh:close()
      end
      os.execute("chmod 755 " .. open .. " && chmod 644 " .. open .. "/f")
      local r = sandbox.run{ argv = { "sh", "-c", "cat " .. store .. "/weft.db " .. open .. "/f; ls /var" } }
      local r_none = ROOT and sandbox.run{ argv = { "cat", store .. "/weft.db" }, isolation = "none" }
      assert(proc.rmtree(store))
      assert(proc.rmtree(open))
      assert.is_nil(r.stdout:find("secret", 1, true))
      assert.mentions(store .. "/weft.db: No such file", r.stderr)
      assert.mentions(open .. "/f: No such file", r.stderr)
      if r_none then
        -- without isolation, weft (root) runs the command as nobody: a
        -- 0700 store directory is closed to it (not so for a weft run as
        -- an ordinary user: docs/io.md)
        assert.equal("", r_none.stdout)
        assert.mentions("Permission denied", r_none.stderr)
      end
    end)

    it("fails naming the fix when bwrap is missing; isolation = \"none\" warns once per run", function()
      local rc, out, err = procs.run({ procs.weft_bin(), "exec", CHILD },
        { WEFT_SPEC_CASE = "nobwrap", PATH = "/nonexistent" }, 120)
      assert.equal(0, rc, err)
      local fix = 'sandbox.run: bubblewrap (bwrap) is not usable: bwrap is not on PATH; install bubblewrap '
        .. '(apt-get install bubblewrap; scripts/deps.sh does it) or pass isolation = "none" to run the '
        .. 'command without isolation'
      assert.mentions("run=nil\nrun_err=" .. fix .. "\n", out)
      assert.mentions("mode=nil\nmode_err=" .. fix .. "\n", out)
      assert.mentions("none_run1_output=a\\nb\\nnone\nnone_run1_warnings=1\n", out)
      assert.mentions("none_run2_output=a\\nb\\nnone\nnone_run2_warnings=1\n", out)
    end)

    for _, iso in ipairs{ "bwrap", "none" } do
      describe("(isolation " .. iso .. ")", function()
        -- sh code starting a setsid daemon and a double-forked setsid daemon
        -- (`sleep m`), each touching dN in the cwd once running
        local function daemons(m)
          local d = "setsid sh -c 'touch d%d; exec sleep " .. m .. "' </dev/null >/dev/null 2>&1"
          return d:format(1) .. " & (" .. d:format(2) .. " &); " ..
            "while [ ! -e d1 ] || [ ! -e d2 ]; do sleep 0.01; done; "
        end

        it("kills setsid and double-forked daemons when the command exits", function()
          local m = marker()
          local r = sandbox.run{ argv = { "sh", "-c", daemons(m) .. "echo started" }, cwd = dir, isolation = iso }
          assert_exited(r, 0)
          assert.equal("started\n", r.stdout)
          none_left(m)
        end)

        it("kills setsid and double-forked daemons on timeout", function()
          local m = marker()
          local r = sandbox.run{
            argv = { "sh", "-c", daemons(m) .. "touch ready; exec sleep " .. m }, cwd = dir,
            isolation = iso, timeout = 3,
          }
          assert.is_true(r.timed_out)
          assert.is_string(read_file(dir .. "/ready")) -- the daemons were running
          none_left(m)
        end)

        it("kills the command and its daemons when weft is SIGKILLed", function()
          local m = marker()
          local p = procs.spawn({ procs.weft_bin(), "exec", CHILD }, {
            WEFT_SPEC_CASE = "daemons", WEFT_SPEC_DIR = dir, WEFT_SPEC_MARK = m, WEFT_SPEC_ISO = iso,
          })
          eventually("the command and both daemons to run", function()
            return read_file(dir .. "/ready") ~= nil and #with_marker(m) >= 3
          end, 30)
          procs.kill(p)
          procs.wait(p, 30)
          none_left(m)
        end)

        it("keeps weft's environment, memory and fds from a command of the same uid", function()
          -- weft runs as nobody (setpriv), like the command: only the
          -- sandbox stands between them. It runs from a copy nobody can read.
          local secret = "sk-weft-spec-" .. marker()
          local fh = assert(io.open(dir .. "/secret", "w"))
          fh:write(secret, "\n")
          fh:close()
          local stage = assert(sandbox.tempdir("weft-spec-stage"))
          os.execute(("cp %s %s/weft && cp -r %s/lua %s/stdlib %s && cp %s %s/child.lua && chmod -R a+rX %s %s")
            :format(procs.quote(procs.weft_bin()), stage, procs.quote(SRC), procs.quote(SRC), stage,
                    procs.quote(CHILD), stage, stage, dir))
          if ROOT then os.execute("chown -R 65534:65534 " .. stage .. " " .. dir) end
          local argv = { stage .. "/weft", "exec", stage .. "/child.lua" }
          if ROOT then
            argv = { "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", unpack(argv) }
          end
          local rc, out, err = procs.run(argv, {
            WEFT_SPEC_CASE = "secrets", WEFT_SPEC_DIR = dir, WEFT_SPEC_ISO = iso, WEFT_SPEC_SECRET = secret,
            OPENAI_API_KEY = secret, ANTHROPIC_API_KEY = secret, WEFT_PATH = stage,
            LUA_PATH = stage .. "/lua/?.lua;" .. stage .. "/lua/?/init.lua;" .. stage .. "/stdlib/?.lua;"
              .. stage .. "/stdlib/?/init.lua;;",
          }, 60)
          assert(sandbox.remove(stage))
          assert.equal(0, rc, err)
          assert.mentions("mode=" .. iso .. "\n", out)
          if ROOT then assert.mentions("uid=65534\n", out) end
          assert.mentions("secret_seen=false\n", out)
          assert.mentions("secret_file_seen=false\n", out)
          assert.mentions("weft_maps_seen=false\n", out)
          assert.mentions("\\n0 1 2 3 ", out) -- fds 0-2 (3: ls's own directory)
          assert.mentions("\\ndone\\n\n", out)
        end)

        it("closes the fds weft has open and shows none of them", function()
          local path = dir .. "/open-" .. marker()
          local fh = assert(io.open(path, "w"))
          local r = sandbox.run{ argv = { "ls", "/proc/self/fd" }, isolation = iso }
          local all = sandbox.run{ argv = { "sh", "-c", "ls -l /proc/[0-9]*/fd/ 2>/dev/null; true" }, isolation = iso }
          fh:close()
          assert_exited(r, 0)
          assert.equal("0\n1\n2\n3\n", r.stdout) -- 3: ls's own directory
          assert_exited(all, 0)
          assert.is_nil(all.stdout:find(path, 1, true))
        end)

        it("caps a fork bomb with the default process cap", function()
          if iso == "none" and not ROOT then
            -- RLIMIT_NPROC would count all of the user's processes: no
            -- default without isolation (docs/io.md)
            return
          end
          local m = marker()
          local r = sandbox.run{
            argv = { "sh", "-c",
                     "i=0; while [ $i -lt 250 ]; do sleep " .. m .. " & echo $! >> pids; " ..
                     "i=$((i+1)); done; wait" },
            cwd = dir, isolation = iso,
          }
          assert.is_false(r.timed_out)
          assert.mentions("fork", r.stderr)
          local started = #pids_of(dir .. "/pids")
          assert.is_true(started < 64, started .. " sleepers started")
          none_left(m)
        end)
      end)
    end
  end)

  describe("tempdir and remove", function()
    it("makes a private directory under the temp root that commands can write", function()
      local root = proc.realpath(os.getenv("TMPDIR") or "/tmp")
      assert.equal(root .. "/weft-spec-", dir:sub(1, #root + 11))
      local d2 = assert(sandbox.tempdir())
      assert.is_not.equal(dir, d2)
      assert.mentions("/weft-sandbox-", d2)
      local r = sandbox.run{ argv = { "sh", "-c", "mkdir sub && echo x > sub/f && stat -c %a ." }, cwd = d2 }
      assert_exited(r, 0)
      assert.equal("700\n", r.stdout)
      assert.is_true(sandbox.remove(d2))
      assert.is_nil(read_file(d2 .. "/sub/f"))
    end)

    it("removes everything inside, without following symbolic links", function()
      local keep = assert(sandbox.tempdir("weft-keep"))
      local r = sandbox.run{
        argv = { "sh", "-c", "mkdir -p a/b && touch a/b/f && ln -s " .. keep .. " a/link && chmod 0 a/b" },
        cwd = dir,
      }
      assert_exited(r, 0)
      assert.is_true(sandbox.remove(dir))
      dir = nil
      assert.is_true(sandbox.remove(keep)) -- the link's target survived
    end)

    it("refuses paths outside the temp root", function()
      local root = proc.realpath(os.getenv("TMPDIR") or "/tmp")
      for _, p in ipairs{ "/etc", "/", root, root .. "/..", dir .. "/../../etc" } do
        assert.mentions("refusing to remove", h.error_of(sandbox.remove, p))
      end
      assert.mentions("dir must be a non-empty string", h.error_of(sandbox.remove, 42))
      local ok, err = sandbox.remove(dir .. "/missing")
      assert.is_nil(ok)
      assert.mentions("No such file", err)
    end)

    it("gets nil, err, 'io' from every failing primitive of weft.core.proc", function()
      local missing = dir .. "/missing"
      local function io_fail(...)
        local r = { ... }
        assert.is_nil(r[1])
        assert.mentions(missing, r[2])
        assert.same({ "io", 3 }, { r[3], select("#", ...) })
      end
      io_fail(proc.realpath(missing))
      io_fail(proc.mkdtemp(missing .. "/d-XXXXXX"))
      io_fail(proc.chown(missing, 0, 0))
      io_fail(proc.rmtree(missing))
    end)

    it("validates the prefix", function()
      assert.mentions("prefix", h.error_of(sandbox.tempdir, "../x"))
      assert.mentions("prefix", h.error_of(sandbox.tempdir, ""))
    end)
  end)
end)
