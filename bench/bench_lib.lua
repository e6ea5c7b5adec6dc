--- bench/bench_lib.lua — helpers shared by the benchmarks: the machine
-- header, medians, load average, peak RSS. Uses only the Lua standard
-- library and /proc.
local _M = {}

local sort, pairs = table.sort, pairs

--- The whole content of a file, or nil.
function _M.read_file(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

--- A description of the machine: cpu, cores, kernel, lua, date.
function _M.machine()
  local cpu, cores = "unknown", 0
  local info = _M.read_file("/proc/cpuinfo")
  if info then
    cpu = info:match("model name%s*:%s*([^\n]+)") or info:match("Hardware%s*:%s*([^\n]+)") or cpu
    for _ in info:gmatch("\nprocessor%s*:") do cores = cores + 1 end
    if info:match("^processor%s*:") then cores = cores + 1 end
  end
  local kernel = _M.read_file("/proc/sys/kernel/osrelease")
  if kernel then
    kernel = kernel:gsub("%s+$", "")
  else
    local p = io.popen and io.popen("uname -r 2>/dev/null")
    kernel = p and (p:read("*l") or "unknown") or "unknown"
    if p then p:close() end
  end
  local jit_ok, jit = pcall(require, "jit")
  local jitv = jit_ok and jit.version or _VERSION
  -- OpenResty's branch (Debian luajit2) has its table.nkeys extension
  if jit_ok then jitv = jitv .. (pcall(require, "table.nkeys") and ", OpenResty branch" or ", upstream") end
  local jit_on = jit_ok and (jit.status() and "JIT on" or "JIT off") or "no JIT"
  return {
    cpu = cpu,
    cores = cores > 0 and tostring(cores) or "unknown",
    kernel = kernel,
    lua = jitv .. " (" .. jit_on .. ")",
    date = os.date("!%Y-%m-%d %H:%M:%S UTC"),
  }
end

--- Median, min, max and count of a list of numbers.
function _M.stats(xs)
  local s = {}
  for k = 1, #xs do s[k] = xs[k] end
  sort(s)
  local n = #s
  local med = n % 2 == 1 and s[(n + 1) / 2] or (s[n / 2] + s[n / 2 + 1]) / 2
  return { median = med, min = s[1], max = s[n], n = n }
end

--- Read the command-line arguments argv into opts: flags maps each
-- "--name" to the opts field its number goes to; "--quick" (when quick is
-- given) calls quick(opts); anything else raises the usage line of script.
function _M.parse_flags(script, argv, opts, flags, quick)
  local names = {}
  for f in pairs(flags) do names[#names + 1] = "[" .. f .. " N]" end
  sort(names)
  if quick then names[#names + 1] = "[--quick]" end
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if flags[a] then
      opts[flags[a]] = tonumber(argv[i + 1]); i = i + 1
    elseif a == "--quick" and quick then
      quick(opts)
    else
      error("usage: " .. script .. " " .. table.concat(names, " "), 0)
    end
    i = i + 1
  end
  return opts
end

--- Print the benchmark's title, the machine line and a line of the load
-- average followed by `extra`.
function _M.header(title, extra)
  local m = _M.machine()
  print(title)
  print(string.format("  cpu: %s, cores: %s, kernel: %s, %s, %s", m.cpu, m.cores, m.kernel, m.lua, m.date))
  print(string.format("  load: %s; %s", _M.loadavg(), extra))
end

--- The load average line of /proc/loadavg (1, 5, 15 minutes).
function _M.loadavg()
  local s = _M.read_file("/proc/loadavg")
  return s and s:match("^(%S+ %S+ %S+)") or "unknown"
end

--- A process's resident set size now and at its peak, in KiB (Linux).
function _M.rss_kib(pid)
  local s = _M.read_file("/proc/" .. (pid or "self") .. "/status") or ""
  return tonumber(s:match("VmRSS:%s*(%d+)")), tonumber(s:match("VmHWM:%s*(%d+)"))
end

local ffi_ok, ffi = pcall(require, "ffi")
if ffi_ok then
  pcall(ffi.cdef, [[
    struct weft_mallinfo2 { size_t arena, ordblks, smblks, hblks, hblkhd, usmblks,
                            fsmblks, uordblks, fordblks, keepcost; };
    struct weft_mallinfo2 mallinfo2(void);
  ]])
end

--- Memory in use now, in KiB: the Lua heap plus malloc's allocated bytes
-- (glibc mallinfo2; the C part is 0 when unavailable). Unlike RSS it drops
-- when memory is freed, so it measures what a workload holds.
function _M.heap_kib()
  local c = 0
  if ffi_ok then
    local ok, mi = pcall(ffi.C.mallinfo2)
    if ok then c = tonumber(mi.uordblks + mi.hblkhd) / 1024 end
  end
  return collectgarbage("count") + c
end

--- A buffered printer: p(fmt, ...) adds a line, flush() writes them.
function _M.printer()
  local out = {}
  local function p(...) out[#out + 1] = string.format(...) end
  local function flush()
    io.write(table.concat(out, "\n"), "\n")
    io.stdout:flush()
    out = {}
  end
  return p, flush
end

--- The script's command-line arguments: the chunk's varargs, or the
-- global arg when `weft exec` passed them there.
function _M.argv(...)
  local argv = { ... }
  if #argv == 0 and type(rawget(_G, "arg")) == "table" then
    for k = 1, #_G.arg do argv[k] = _G.arg[k] end
  end
  return argv
end

--- Raise o.runs to min (noting it in o.notes) when it is below.
function _M.min_runs(o, min)
  if o.runs < min then
    o.notes[#o.notes + 1] = ("--runs %d raised to the minimum of %d"):format(o.runs, min)
    o.runs = min
  end
end

--- Raise unless res is a completed run (label names it) with the expected
-- supersteps and first output (nil: not checked).
function _M.check_run(label, res, supersteps, output)
  local fmt = string.format
  if type(res) ~= "table" then
    error(fmt("%s: wf:run returned %s, not a result table", label, type(res)), 0)
  end
  if res.status ~= "completed" then
    error(fmt("%s: run status '%s' (expected 'completed')%s", label, tostring(res.status),
      res.error and (": " .. tostring(res.error)) or ""), 0)
  end
  if supersteps and res.supersteps ~= supersteps then
    error(fmt("%s: %s supersteps (expected %d)", label, tostring(res.supersteps), supersteps), 0)
  end
  if output ~= nil then
    local got = res.outputs and res.outputs[1]
    if got ~= output then
      error(fmt("%s: output %s (expected %s)", label, tostring(got), tostring(output)), 0)
    end
  end
end

return _M
