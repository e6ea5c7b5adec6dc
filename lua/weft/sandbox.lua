--- weft.sandbox: run commands as sandboxed child processes (docs/io.md
-- "weft.sandbox").
--
-- `run{argv, ...}` yields the calling executor or task while the command
-- runs (on the main thread it runs the loop until done). The command gets
-- an argv (no shell), a minimal environment (PATH, LANG, HOME: never
-- anything of weft's own) unless `env` is given, no fd
-- but 0-2, rlimits (address space, CPU seconds, processes, no core files),
-- a timeout and capped output — with defaults when the caller gives none
-- (DEFAULTS) — and a supervisor that kills everything it started, daemons
-- included, when it exits, times out, is cancelled, or when weft dies.
-- When weft runs as root the command runs as nobody/nogroup (65534).
--
-- Isolation is bubblewrap (bwrap): the command sees the system directories
-- read-only, its cwd (or a fresh private /tmp when none is given), a
-- private /tmp, its own /dev and /proc, and nothing else of the host; no
-- network unless `network = true`; its own pid namespace and session. When
-- bwrap is missing or unusable, `run` fails with an error that names the
-- fix, unless the caller opts out with `isolation = "none"` (rlimits and
-- the supervisor only; a warning is logged once per run). Built on the raw
-- primitives of weft.core.proc; options are checked by weft.check.
local _M = {}

local proc = require "weft.core.proc"
local check = require "weft.check"

local type, pairs, ipairs, tostring, error, pcall, setmetatable, select =
  type, pairs, ipairs, tostring, error, pcall, setmetatable, select
local floor, huge = math.floor, math.huge
local sort = table.sort
local getenv = os.getenv

--- Limits applied when the caller gives none (docs/io.md): seconds, MiB
-- of address space, processes, bytes per output stream. (A copy: changing
-- it changes nothing.)
local DEFAULTS = { timeout = 60, memory_mb = 1024, max_procs = 64, max_output = 1024 * 1024 }
_M.DEFAULTS = {}
for k, v in pairs(DEFAULTS) do _M.DEFAULTS[k] = v end

local DROP_UID, DROP_GID = 65534, 65534 -- nobody, nogroup
local DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"

--- The environment a command gets when `run` is given no `env`, besides
-- HOME (its cwd, else /tmp). (A copy: changing it changes nothing.)
local ENV = { PATH = DEFAULT_PATH, LANG = "C.UTF-8" }
_M.ENV = {}
for k, v in pairs(ENV) do _M.ENV[k] = v end

-- A positive integer up to 2^40 (limits).
local function count()
  return { type = "integer", minimum = 1, maximum = 2 ^ 40, expect = "a positive integer (at most 2^40)" }
end

--- The spec of run options (weft.check).
_M.OPTIONS = check.spec("sandbox.run", { properties = {
  argv = { type = "table", required = true, expect = "a non-empty list of strings",
           aliases = { "cmd", "command", "args" } },
  stdin = { type = "string", aliases = { "input" } },
  cwd = { type = "string", minLength = 1, aliases = { "dir", "workdir", "chdir" },
          test = function(v) return not v:find("\0", 1, true) end, expect = "a non-empty string without NUL" },
  env = { type = "table", expect = "a table of name = value strings", aliases = { "environment" } },
  timeout = { type = "number", expect = "a number of seconds > 0",
              test = function(v) return v > 0 and v ~= huge end },
  memory_mb = count(), cpu_s = count(), max_procs = count(), max_output = count(),
  isolation = { enum = { "bwrap", "none" }, expect = '"bwrap" (the default) or "none"', aliases = { "mode" } },
  network = { type = "boolean" },
  ro_paths = { type = "table", expect = "a list of absolute paths" },
} })

-- What the command sees of the host in bwrap mode: these directories (or
-- symbolic links into /usr, as on merged-/usr systems), read-only ...
local SYSTEM_DIRS = { "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32" }
-- ... and these files of /etc (when they exist): the dynamic linker's
-- cache, compiler alternatives, user and group names, the time zone.
local ETC = {
  "/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
  "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/localtime",
}
-- With network = true, also name resolution and the CA certificates.
local ETC_NET = {
  "/etc/resolv.conf", "/etc/hosts", "/etc/host.conf", "/etc/gai.conf",
  "/etc/services", "/etc/protocols", "/etc/ssl", "/etc/ca-certificates",
}

local FIX = 'install bubblewrap (apt-get install bubblewrap; scripts/deps.sh does it) '
  .. 'or pass isolation = "none" to run the command without isolation'

-- A validation failure: raised as a table so that `run` can re-raise the
-- message at its caller's level, however deep the check.
local function bad(msg)
  error({ msg = "sandbox.run: " .. msg }, 0)
end

-- The validated argv (a copy; a table, see OPTIONS).
local function check_argv(argv)
  if #argv == 0 then bad("argv must be a non-empty list of strings") end
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

-- The environment as a sorted list of "K=V" (env a table, see OPTIONS).
local function check_env(env)
  local out = {}
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

-- The validated ro_paths (a copy): absolute paths, no NUL, no "..".
local function check_ro_paths(list)
  if list == nil then return nil end
  local out = {}
  for i = 1, #list do
    local p = list[i]
    if type(p) ~= "string" or p:sub(1, 1) ~= "/" or p:find("\0", 1, true)
      or ("/" .. p .. "/"):find("/%.%./") then
      bad("ro_paths[" .. i .. "] must be an absolute path without '..'")
    end
    out[i] = p
  end
  return out
end

-- The uid/gid the command runs as: nobody when weft is root, else ours.
local function drop_ids()
  if proc.geteuid() == 0 then return DROP_UID, DROP_GID end
  return -1, -1
end

-- Append the arguments to the list a.
local function push(a, ...)
  for i = 1, select("#", ...) do a[#a + 1] = select(i, ...) end
end

--- The bwrap argv prefix of bwrap mode (its last item is "--"; the command
-- follows): the system directories read-only (symbolic links into /usr
-- kept as links; the layout is read from this host), a few files of /etc,
-- fresh /dev and /proc, a private /tmp, the `ro_paths` read-only, `cwd`
-- (an absolute path, or nil: the private /tmp) bound writable and entered,
-- every namespace unshared (no network unless `network`), a new session,
-- death with the parent, then `prlimit` setting RLIMIT_NPROC to
-- `max_procs` inside the new user namespace (so that only the sandbox's
-- own processes count). opts: {cwd, network, ro_paths, max_procs, prlimit}.
function _M.bwrap_args(bwrap, opts)
  opts = opts or {}
  local a = { bwrap or "bwrap" }
  for _, d in ipairs(SYSTEM_DIRS) do
    local real = proc.realpath(d)
    if real == d then
      push(a, "--ro-bind", d, d)
    elseif real and real:sub(1, 5) == "/usr/" then
      push(a, "--symlink", real:sub(2), d)
    elseif real then
      push(a, "--ro-bind", real, d)
    end
  end
  for _, f in ipairs(ETC) do push(a, "--ro-bind-try", f, f) end
  if opts.network then
    for _, f in ipairs(ETC_NET) do push(a, "--ro-bind-try", f, f) end
  end
  push(a, "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp")
  for _, p in ipairs(opts.ro_paths or {}) do push(a, "--ro-bind", p, p) end
  if opts.cwd then
    push(a, "--bind", opts.cwd, opts.cwd, "--chdir", opts.cwd)
  else
    push(a, "--chdir", "/tmp")
  end
  push(a, "--unshare-all")
  if opts.network then push(a, "--share-net") end
  push(a, "--new-session", "--die-with-parent", "--")
  local n = opts.max_procs or DEFAULTS.max_procs
  push(a, opts.prlimit or "prlimit", "--nproc=" .. n .. ":" .. n, "--")
  return a
end

-- bwrap probing: nil (not yet), or {bwrap, prlimit} when usable, or
-- {err = why not}. Callers arriving while a probe runs probe too
-- (harmless, and nothing is left waiting if a probing task is aborted).
local bwrap_state

-- The first executable `name` on weft's own PATH, or nil.
local function find_on_path(name)
  for dir in ((getenv("PATH") or DEFAULT_PATH) .. ":"):gmatch("([^:]*):") do
    if dir ~= "" and proc.executable(dir .. "/" .. name) then return dir .. "/" .. name end
  end
end

-- The first line of s, trimmed, or nil.
local function first_line(s)
  local l = s and s:match("^%s*([^\n]-)%s*\n") or (s and s:match("^%s*(.-)%s*$"))
  if l and l ~= "" then return l end
end

-- The probed bwrap state (see bwrap_state). Probes once, as the user
-- commands run as, with the arguments bwrap mode uses.
local function probe()
  if bwrap_state then return bwrap_state end
  local bwrap, prlimit = find_on_path("bwrap"), find_on_path("prlimit")
  local st
  if not bwrap then
    st = { err = "bwrap is not on PATH" }
  elseif not prlimit then
    st = { err = "prlimit (util-linux) is not on PATH" }
  else
    local uid, gid = drop_ids()
    local argv = _M.bwrap_args(bwrap, { prlimit = prlimit })
    argv[#argv + 1] = "true"
    local r, err = proc.run{
      argv = argv, uid = uid, gid = gid, timeout = 30, max_output = 4096,
    }
    if r and r.exit_code == 0 then
      st = { bwrap = bwrap, prlimit = prlimit }
    else
      local why = err or first_line(r.stderr) or r.error
        or (r.signal and "killed by signal " .. r.signal) or ("exit status " .. tostring(r.exit_code))
      st = { err = bwrap .. " does not work here: " .. why }
    end
  end
  bwrap_state = st
  return st
end

-- The "bwrap is not usable" error.
local function unusable(st)
  return "sandbox.run: bubblewrap (bwrap) is not usable: " .. st.err .. "; " .. FIX
end

--- The isolation `run` uses by default: "bwrap", or nil and the error
-- `run` would fail with (which names the fix). Probes bubblewrap once; may
-- yield like `run`.
function _M.mode()
  local st = probe()
  if st.bwrap then return "bwrap" end
  return nil, unusable(st)
end

-- The output with the truncation marker when it was cut.
local function mark(s, truncated, cap)
  if not truncated then return s end
  return s .. "\n[... output truncated at " .. cap .. " bytes]"
end

-- The checked options of run as the spec of proc.run (without uid, gid
-- and wrap), and the isolation options. Raises through bad().
local function validate(opts)
  if type(opts) == "table" and opts.mode ~= nil then
    bad('option mode was replaced by isolation: bwrap is the default; '
      .. 'isolation = "none" runs without isolation')
  end
  local err = check.problem(_M.OPTIONS, opts)
  if err then error({ msg = err }, 0) end
  local isolation, network = opts.isolation, opts.network
  if isolation == "none" and network == false then
    bad('network = false needs isolation "bwrap" (without isolation the command can use the network)')
  end
  local ro_paths = check_ro_paths(opts.ro_paths)
  if isolation == "none" and ro_paths then
    bad('ro_paths needs isolation "bwrap" (without isolation the command sees every path its user can)')
  end
  return {
    argv = check_argv(opts.argv), env = opts.env and check_env(opts.env), cwd = opts.cwd, stdin = opts.stdin,
    timeout = opts.timeout or DEFAULTS.timeout,
    memory_mb = opts.memory_mb or DEFAULTS.memory_mb,
    cpu_s = opts.cpu_s,
    max_procs = opts.max_procs,
    max_output = opts.max_output or DEFAULTS.max_output,
  }, { isolation = isolation or "bwrap", network = network, ro_paths = ro_paths }
end

-- The environment of a command given no env: ENV and HOME = home.
local function default_env(home)
  local out = {}
  for k, v in pairs(ENV) do out[#out + 1] = k .. "=" .. v end
  out[#out + 1] = "HOME=" .. home
  sort(out)
  return out
end

local NONE_WARNING = 'sandbox.run: isolation = "none": the command runs without isolation '
  .. '(it can use the network and read and write whatever its user can)'

-- Runs already warned about isolation "none" (weak keys), and whether this
-- process warned outside runs.
local warned_runs = setmetatable({}, { __mode = "k" })
local warned_process = false

-- The warning of isolation "none": a `log` event (level "warn") once per
-- run; outside runs, one line on stderr once per process.
local function warn_none()
  local inv = require("weft.invocation").current()
  if inv then
    local run = inv._run -- the run object (weak key: forgotten with the run)
    if warned_runs[run] then return end
    warned_runs[run] = true
    pcall(inv.log, inv, "warn", NONE_WARNING)
  elseif not warned_process then
    warned_process = true
    io.stderr:write("weft: warning: ", NONE_WARNING, "\n")
  end
end

-- Isolation "none" hides weft from same-uid commands: not dumpable, its
-- /proc/<pid>/environ, mem and fd are closed to them (once per process).
local protected = false

--- Run a command: `run{argv, stdin, cwd, env, timeout, memory_mb, cpu_s,
-- max_procs, max_output, isolation, network, ro_paths}` (env: the whole
-- environment; default PATH, LANG=C.UTF-8 and HOME = cwd or /tmp) → `{exit_code,
-- signal, stdout, stderr, timed_out, truncated, duration_ms, mode, pid,
-- error}`, or nil, err when the process could not be started, or bwrap is
-- unusable and isolation "none" was not asked for (err names the fix).
-- `mode` is "bwrap" or "none". `exit_code` is nil when a signal ended the
-- command (`signal` is then its number; in bwrap mode an exit status
-- 128 + N is read as signal N); 127 and `error = "command not found: x"`
-- when argv[1] is not found, 126 when it cannot be run. In bwrap mode the
-- command also sees PWD (bwrap sets it) and pids of its own namespace.
-- Invalid options raise, naming the field.
function _M.run(opts)
  local ok, spec, iso = pcall(validate, opts)
  if not ok then
    if type(spec) == "table" then error(spec.msg, 2) end
    error(spec, 0)
  end
  local cwd, max_output = spec.cwd, spec.max_output
  local real_cwd = cwd and (proc.realpath(cwd) or cwd)
  -- HOME: the work dir (bound at the same path in bwrap mode), else /tmp
  -- (bwrap mode: the sandbox's private /tmp, where the command starts)
  if not spec.env then spec.env = default_env(real_cwd or "/tmp") end

  local wrap, mode
  if iso.isolation == "bwrap" then
    local st = probe()
    if not st.bwrap then return nil, unusable(st) end
    wrap = _M.bwrap_args(st.bwrap, {
      cwd = real_cwd, network = iso.network,
      ro_paths = iso.ro_paths, max_procs = spec.max_procs, prlimit = st.prlimit,
    })
    spec.max_procs = nil -- set inside the sandbox by prlimit
    mode = "bwrap"
  else
    warn_none()
    if not protected then
      local pok, perr = proc.nondumpable()
      if not pok then return nil, "sandbox.run: " .. perr end
      protected = true
    end
    -- RLIMIT_NPROC counts every process of the uid: by default only for
    -- nobody (weft is root), never for the user weft runs as
    if not spec.max_procs and proc.geteuid() == 0 then spec.max_procs = DEFAULTS.max_procs end
    mode = "none"
  end

  spec.uid, spec.gid = drop_ids()
  spec.wrap = wrap
  -- journaled in durable runs: a re-executed invocation gets this result
  local r, err = require("weft.journal").call("sandbox", { what = table.concat(spec.argv, " "), stdin = spec.stdin,
                                                           cwd = real_cwd }, proc.run, spec)
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
