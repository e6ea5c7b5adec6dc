--- spec/support/files.lua — files and shell commands for the specs: quote
-- a word for sh, read and write whole files (plain or atomic), make and
-- remove private temp directories, run a shell command without the specs'
-- LUA_PATH/LUA_CPATH, a set of temp directories removed after each test
-- (`scratch`). Lua standard library only (no weft), so the specs of
-- an installed weft (install_spec, rockspec_spec) use it as well.
--
-- Load with `local files = require "support.files"`.
local _M = {}

--- s quoted as one word for sh.
function _M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
local q = _M.quote

--- The whole contents of the file at path, or nil, err when it cannot be
-- opened.
function _M.slurp(path)
  local fh, err = io.open(path, "rb")
  if not fh then return nil, err end
  local s = fh:read("*a")
  fh:close()
  return s
end

--- The whole contents of the file at path; raises when it cannot be read.
function _M.read(path)
  return assert(_M.slurp(path))
end

--- Write text to path (created or truncated); returns path.
function _M.write(path, text)
  local fh = assert(io.open(path, "wb"))
  fh:write(text)
  fh:close()
  return path
end

--- Write text to path atomically, as editors save: a sibling file, then
-- rename over path (a new inode). Returns path.
function _M.put(path, text)
  _M.write(path .. ".tmp", text)
  assert(os.rename(path .. ".tmp", path))
  return path
end

--- Run a shell command without the specs' LUA_PATH/LUA_CPATH (they point
-- into the source tree); returns its exit code and its stdout+stderr.
function _M.sh(cmd)
  local p = assert(io.popen("(unset LUA_PATH LUA_CPATH; " .. cmd .. ") 2>&1; echo \"__rc=$?\""))
  local out = p:read("*a")
  p:close()
  local body, rc = out:match("^(.-)__rc=(%d+)%s*$")
  return tonumber(rc), body
end

--- A new private (0700) temp directory /tmp/<prefix>XXXXXX, with the
-- subdirectories named in the list subdirs (if any); returns its path.
function _M.tempdir(prefix, subdirs)
  local rc, out = _M.sh("mktemp -d /tmp/" .. (prefix or "weft_spec_") .. "XXXXXX")
  assert(rc == 0, "mktemp -d failed: " .. tostring(out))
  local dir = out:match("%S+")
  for _, sub in ipairs(subdirs or {}) do
    assert(os.execute("mkdir -p " .. q(dir .. "/" .. sub)) == 0, "mkdir " .. dir .. "/" .. sub)
  end
  return dir
end

--- Remove path and everything below it, read-only parts included
-- (nothing when absent).
function _M.remove(path)
  os.execute("chmod -R u+w " .. q(path) .. " 2>/dev/null; rm -rf " .. q(path))
end

--- A set of temp directories for one spec file: `scratch.dir()` makes a
-- new private one (files.tempdir; chmod'ed to mode, e.g. "777", when
-- given) and returns its path, `scratch.clean()` removes all made so far
-- (meant for `after_each(scratch.clean)`).
function _M.scratch(prefix)
  local dirs = {}
  local s = {}
  function s.dir(mode)
    local dir = _M.tempdir(prefix)
    if mode then assert(os.execute("chmod " .. mode .. " " .. q(dir)) == 0, "chmod " .. dir) end
    dirs[#dirs + 1] = dir
    return dir
  end
  function s.clean()
    for _, d in ipairs(dirs) do _M.remove(d) end
    dirs = {}
  end
  return s
end

return _M
