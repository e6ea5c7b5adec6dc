--- weft.sandbox: run commands as sandboxed child processes (docs/io.md
-- "weft.sandbox").
--
-- `run{argv, ...}` yields the calling executor or task while the command
-- runs (on the main thread it runs the loop until done). The command gets
-- an argv (no shell), an empty environment unless `env` is given, rlimits
-- (address space, CPU seconds, processes, no core files), its own process
-- group (killed as a whole on timeout, on cancellation of the run or
-- executor, and when the command exits: nothing it started survives it),
-- and capped output. When weft runs as root the command runs as
-- nobody/nogroup (65534), since RLIMIT_NPROC does not apply to root.
--
-- Mode "bwrap" (when bubblewrap is on PATH and works here) also gives a
-- read-only root file system, a writable `cwd`, a private /tmp, new
-- namespaces (no network) and death with weft; mode "rlimits" is the
-- fallback. Built on the raw primitives of weft.core.proc.
local _M = {}

local proc = require "weft.core.proc"

local type, pairs, ipairs, tostring, error = type, pairs, ipairs, tostring, error
local floor, huge = math.floor, math.huge
local sort = table.sort
local getenv = os.getenv

local DEFAULT_MAX_OUTPUT = 1024 * 1024
local DROP_UID, DROP_GID = 65534, 65534 -- nobody, nogroup
local DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"

local KNOWN = {
  argv = true, stdin = true, cwd = true, env = true, timeout = true,
  memory_mb = true, cpu_s = true, max_procs = true, max_output = true,
  mode = true,
}

-- A validation failure: raised as a table so that `run` can re-raise the
-- message at its caller's level, however deep the check.
local function bad(msg)
  error({ msg = "sandbox.run: " .. msg }, 0)
end

-- nil, or a positive integer up to 2^40 (else raise naming the field).
local function posint(opts, k)
  local v = opts[k]
  if v == nil then return nil end
  if type(v) ~= "number" or v ~= floor(v) or v < 1 or v > 2 ^ 40 then
    bad(k .. " must be a positive integer (at most 2^40)")
  end
  return v
end

-- The validated argv (a copy).
local function check_argv(argv)
  if type(argv) ~= "table" or #argv == 0 then
    bad("argv must be a non-empty list of strings")
  end
  local n, out = #argv, {}
  for k in pairs(argv) do
    if type(k) ~= "number" or k ~= floor(k) or k < 1 or k > n then
      bad("argv must be a non-empty list of strings (unexpected key " .. tostring(k) .. ")")
    end
  end
  for i = 1, n do
    local a = argv[i]
    if type(a) ~= "string" then
      bad("argv must be a non-empty list of strings (argv[" .. i .. "] is a " .. type(a) .. ")")
    end
    if a:find("\0", 1, true) then bad("argv[" .. i .. "] contains a NUL byte") end
    out[i] = a
  end
  if out[1] == "" then bad("argv[1] must not be empty") end
  return out
end

-- The environment as a sorted list of "K=V" (empty when env is nil).
local function check_env(env)
  local out = {}
  if env == nil then return out end
  if type(env) ~= "table" then bad("env must be a table of name = value strings") end
  for k, v in pairs(env) do
    if type(k) ~= "string" or k == "" or k:find("[=%z]") then
      bad("env: invalid variable name " .. tostring(k))
    end
    if type(v) == "number" then v = tostring(v) end
    if type(v) ~= "string" then
      bad("env." .. k .. " must be a string (got " .. type(v) .. ")")
    end
    if v:find("\0", 1, true) then bad("env." .. k .. " contains a NUL byte") end
    out[#out + 1] = k .. "=" .. v
  end
  sort(out)
  return out
end

-- The uid/gid the command runs as: nobody when weft is root, else ours.
local function drop_ids()
  if proc.geteuid() == 0 then return DROP_UID, DROP_GID end
  return -1, -1
end

--- The bwrap argv prefix of bwrap mode (ends with "--"; the command
-- follows): read-only root, fresh /dev and /proc, a private /tmp, `cwd`
-- (an absolute path, or nil) bound writable and entered, every namespace
-- unshared (no network), a new session, death with the parent. Pure: for
-- tests and inspection.
function _M.bwrap_args(bwrap, cwd)
  local a = {
    bwrap or "bwrap",
    "--ro-bind", "/", "/",
    "--dev", "/dev",
    "--proc", "/proc",
    "--tmpfs", "/tmp",
  }
  if cwd then
    a[#a + 1] = "--bind"; a[#a + 1] = cwd; a[#a + 1] = cwd
    a[#a + 1] = "--chdir"; a[#a + 1] = cwd
  end
  for _, o in ipairs{ "--unshare-all", "--new-session", "--die-with-parent", "--" } do
    a[#a + 1] = o
  end
  return a
end

-- bwrap probing: nil (not yet), false (unusable), or the path of bwrap.
-- Callers arriving while a probe runs probe too (harmless, and nothing is
-- left waiting if a probing task is aborted).
local bwrap_state

-- The first executable bwrap on weft's own PATH, or nil.
local function find_bwrap()
  for dir in ((getenv("PATH") or DEFAULT_PATH) .. ":"):gmatch("([^:]*):") do
    if dir ~= "" and proc.executable(dir .. "/bwrap") then return dir .. "/bwrap" end
  end
end

-- The path of a working bwrap, or nil. Probes once (as the user commands
-- run as) with a command that needs what bwrap mode uses.
local function bwrap_path()
  if bwrap_state == nil then
    local found, usable = find_bwrap(), false
    if found then
      local uid, gid = drop_ids()
      local r = proc.run{
        argv = { found, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                 "--unshare-net", "--die-with-parent", "true" },
        uid = uid, gid = gid, timeout = 10, max_output = 4096,
      }
      usable = r ~= nil and r.exit_code == 0 and found
    end
    bwrap_state = usable
  end
  return bwrap_state or nil
end

--- The mode `run` uses by default: "bwrap" or "rlimits" (probes bubblewrap
-- once; may yield like `run`).
function _M.mode()
  return bwrap_path() and "bwrap" or "rlimits"
end

-- The output with the truncation marker when it was cut.
local function mark(s, truncated, cap)
  if not truncated then return s end
  return s .. "\n[... output truncated at " .. cap .. " bytes]"
end

-- The checked options of run as the spec of proc.run (without uid, gid
-- and wrap), and the requested mode. Raises through bad().
local function validate(opts)
  if type(opts) ~= "table" then bad("expects a table of options") end
  for k in pairs(opts) do
    if not KNOWN[k] then bad("unknown option '" .. tostring(k) .. "'") end
  end
  local argv = check_argv(opts.argv)
  local env = check_env(opts.env)
  local stdin, cwd, timeout = opts.stdin, opts.cwd, opts.timeout
  if stdin ~= nil and type(stdin) ~= "string" then bad("stdin must be a string") end
  if cwd ~= nil and (type(cwd) ~= "string" or cwd == "") then
    bad("cwd must be a non-empty string")
  end
  if timeout ~= nil and (type(timeout) ~= "number" or not (timeout > 0) or timeout == huge) then
    bad("timeout must be a number of seconds > 0")
  end
  local memory_mb, cpu_s = posint(opts, "memory_mb"), posint(opts, "cpu_s")
  local max_procs = posint(opts, "max_procs")
  local max_output = posint(opts, "max_output") or DEFAULT_MAX_OUTPUT
  local mode = opts.mode
  if mode ~= nil and mode ~= "auto" and mode ~= "bwrap" and mode ~= "rlimits" then
    bad("mode must be \"bwrap\", \"rlimits\" or \"auto\"")
  end
  return {
    argv = argv, env = env, cwd = cwd, stdin = stdin, timeout = timeout,
    memory_mb = memory_mb, cpu_s = cpu_s, max_procs = max_procs,
    max_output = max_output,
  }, mode
end

--- Run a command: `run{argv, stdin, cwd, env, timeout, memory_mb, cpu_s,
-- max_procs, max_output, mode}` → `{exit_code, signal, stdout, stderr,
-- timed_out, truncated, duration_ms, mode, pid, error}`, or nil, err when
-- the process could not be started. `exit_code` is nil when a signal
-- ended the command (`signal` is then its number; in bwrap mode an exit
-- status 128 + N is read as signal N); 127 and `error = "command not
-- found: x"` when argv[1] is not found, 126 when it cannot be run. In
-- bwrap mode the command also sees PWD (bwrap sets it) and pids of its own
-- namespace. Invalid options raise, naming the field.
function _M.run(opts)
  local ok, spec, mode = pcall(validate, opts)
  if not ok then
    if type(spec) == "table" then error(spec.msg, 2) end
    error(spec, 0)
  end
  local cwd, max_output = spec.cwd, spec.max_output

  local wrap
  if mode ~= "rlimits" then
    local bwrap = bwrap_path()
    if bwrap then
      wrap = _M.bwrap_args(bwrap, cwd and (proc.realpath(cwd) or cwd))
    elseif mode == "bwrap" then
      return nil, "sandbox.run: bubblewrap (bwrap) is not installed or not usable here"
    end
  end
  mode = wrap and "bwrap" or "rlimits"

  spec.uid, spec.gid = drop_ids()
  spec.wrap = wrap
  -- journaled in durable runs: a re-executed invocation gets this result
  local r, err = require("weft.durable").call("sandbox", proc.run, spec)
  if not r then return nil, "sandbox.run: " .. err end
  local stderr = r.stderr
  if r.error and stderr == "" then stderr = r.error .. "\n" end
  local code, sig = r.exit_code, r.signal
  if wrap and code and code > 128 and code <= 128 + 64 then
    -- bwrap exits with 128 + N when the command died of signal N
    code, sig = nil, code - 128
  end
  return {
    exit_code = code,
    signal = sig,
    stdout = mark(r.stdout, r.stdout_truncated, max_output),
    stderr = mark(stderr, r.stderr_truncated, max_output),
    timed_out = r.timed_out,
    truncated = r.stdout_truncated or r.stderr_truncated,
    duration_ms = r.duration_ms,
    mode = mode,
    pid = r.pid,
    error = r.error,
  }
end

-- The temp root: $TMPDIR or /tmp, resolved.
local function temp_root()
  local t = getenv("TMPDIR")
  if not t or t == "" then t = "/tmp" end
  return proc.realpath(t) or t
end

--- A fresh private directory under $TMPDIR (or /tmp), named
-- `<prefix>-XXXXXX` (prefix default "weft-sandbox"), writable by the
-- commands `run` starts (owned by nobody when weft runs as root). Returns
-- its path, or nil, err.
function _M.tempdir(prefix)
  if prefix == nil then prefix = "weft-sandbox" end
  if type(prefix) ~= "string" or not prefix:match("^[%w._-]+$") then
    error("sandbox.tempdir: prefix must be a non-empty string of letters, digits, '.', '_' or '-'", 2)
  end
  local dir, err = proc.mkdtemp(temp_root() .. "/" .. prefix .. "-XXXXXX")
  if not dir then return nil, "sandbox.tempdir: " .. err end
  if proc.geteuid() == 0 then
    local ok, cerr = proc.chown(dir, DROP_UID, DROP_GID)
    if not ok then
      proc.rmtree(dir)
      return nil, "sandbox.tempdir: " .. cerr
    end
  end
  return dir
end

--- Remove a directory made by `tempdir` and everything in it (symbolic
-- links are removed, never followed). Refuses (raises) for a path outside
-- the temp root; returns true, or nil, err.
function _M.remove(dir)
  if type(dir) ~= "string" or dir == "" then
    error("sandbox.remove: dir must be a non-empty string", 2)
  end
  local root = temp_root()
  local real, err = proc.realpath(dir)
  if not real then return nil, "sandbox.remove: " .. err end
  if root == "/" or #real <= #root + 1 or real:sub(1, #root + 1) ~= root .. "/" then
    error("sandbox.remove: refusing to remove '" .. dir .. "': not inside the temp root " .. root, 2)
  end
  local ok, rerr = proc.rmtree(real)
  if not ok then return nil, "sandbox.remove: " .. rerr end
  return true
end

return _M
