--- Helpers shared by the code built-ins: pulling code out of an LLM reply,
-- compiling and running it in the sandbox, summarising diagnostics.
-- Uses weft.sandbox (its default environment and option schemas),
-- weft.check, weft.urandom.
local _M = {}

local sandbox = require "weft.sandbox"
local check = require "weft.check"

local type, error, ipairs, pairs, concat = type, error, ipairs, pairs, table.concat

--- Compilers by language: the driver and the source file extension.
_M.LANGUAGES = {
  c = { cc = "gcc", ext = "c" },
  cpp = { cc = "g++", ext = "cpp" },
}

--- The language entry, or raise naming the executor.
function _M.language(id, lang)
  local l = _M.LANGUAGES[lang or "c"]
  if not l then
    local known = {}
    for k in pairs(_M.LANGUAGES) do known[#known + 1] = k end
    table.sort(known)
    error(("executor '%s': unsupported language '%s' (supported: %s)"):format(
      id, tostring(lang), concat(known, ", ")), 0)
  end
  return l
end

--- The code in an LLM reply: the first fenced block if there is one (its
-- language tag dropped), else the whole text, trimmed.
function _M.extract(text)
  if type(text) ~= "string" then return "" end
  local body = text:match("```[%w%+%-_]*[ \t]*\r?\n(.-)```")
  return ((body or text):gsub("^%s+", ""):gsub("%s+$", "")) .. "\n"
end

--- The error lines of compiler output (": error:" diagnostics; else every
-- non-empty line), at most max of them.
function _M.diagnostics(text, max)
  local errors, all = {}, {}
  for line in (text or ""):gmatch("[^\n]+") do
    if line:find(": error:", 1, true) or line:find(": fatal error:", 1, true) then
      errors[#errors + 1] = line
    end
    all[#all + 1] = line
  end
  local list = #errors > 0 and errors or all
  local out = {}
  for i = 1, math.min(#list, max or 20) do out[i] = list[i] end
  return out
end

--- Write files {name = content} into a new sandbox directory; returns it.
function _M.workdir(id, files)
  local dir, err = sandbox.tempdir("weft-code")
  if not dir then error(("executor '%s': %s"):format(id, err), 0) end
  for name, content in pairs(files) do
    local f, ferr = io.open(dir .. "/" .. name, "wb")
    if not f then
      sandbox.remove(dir)
      error(("executor '%s': cannot write %s: %s"):format(id, name, ferr), 0)
    end
    f:write(content)
    f:close()
  end
  return dir
end

-- The sandbox's default environment, with the compilers' messages in the
-- C locale (English, ASCII quotes: diagnostics() looks for ": error:").
local ENV = { LC_ALL = "C" }
for k, v in pairs(sandbox.ENV) do ENV[k] = v end

--- Check the sandbox options shared by the code built-ins (raise naming
-- the executor, at the level of the built-in's caller).
function _M.check_opts(id, opts)
  check.arg(("executor '%s'"):format(id), "isolation", opts.isolation, sandbox.OPTIONS.properties.isolation, 3)
end

--- Run argv in dir under the sandbox with the executor's limits and
-- isolation (bwrap unless opts.isolation = "none"); raises when the
-- process cannot be started or bwrap is unusable (the sandbox's own
-- error, which names the fix).
function _M.run(id, dir, argv, opts)
  local r, err = sandbox.run{
    argv = argv, cwd = dir, env = ENV, timeout = opts.timeout or 30,
    memory_mb = opts.memory_mb or 1024, cpu_s = opts.cpu_s, max_procs = opts.max_procs or 64,
    max_output = opts.max_output or 256 * 1024, stdin = opts.stdin,
    isolation = opts.isolation,
  }
  if not r then error(("executor '%s': %s"):format(id, err), 0) end
  return r
end

--- A fresh random token (32 hex digits from /dev/urandom); raises naming
-- the executor when /dev/urandom cannot be read.
function _M.token(id)
  local hex = require("weft.urandom").hex(16)
  if not hex then error(("executor '%s': cannot read /dev/urandom"):format(id), 0) end
  return hex
end

--- A short human summary of a failed command for feedback to a model.
function _M.summary(what, r)
  if r.timed_out then return what .. " timed out" end
  if r.signal then return what .. " was killed by signal " .. r.signal end
  if r.error then return what .. ": " .. r.error end
  return what .. " failed with exit code " .. tostring(r.exit_code)
end

return _M
