-- The files of a sqlite: store are private: a child `weft exec` (under a
-- given umask) opens a store, writes, and reports with stat(1) the modes of
-- the directories it made and of the database, -wal and -shm files while
-- they are open. Missing directories are made 0700, files 0600 (a stricter
-- umask still applies); an existing directory or file keeps its mode, and
-- the store warns when group or others can access it. As root, the test
-- also drops to uid 65534 to show another user cannot read the store.
local procs = require "support.procs"
require "helpers" -- assert.mentions

local bin = procs.weft_bin()
local q = procs.quote

-- The child: open sqlite:PATH, write, then print "MODE NAME" for each
-- existing name given (while the store is open), then the warning.
local CHILD = [[
local store = require "weft.store"
local path = ...
local s = assert(store.open("sqlite:" .. path))
assert(s:put("runs", "r1", string.rep("state ", 100)))
assert(s:append("ckpt", "r1", "checkpoint"))
for i = 2, select("#", ...) do
  local name = select(i, ...)
  local p = io.popen("stat -c '%a' " .. "'" .. name .. "' 2>/dev/null")
  local mode = p:read("*l")
  p:close()
  print((mode or "absent") .. " " .. name)
end
print("warning: " .. tostring(s.warning))
s:close()
]]

-- A fresh temp dir of the given mode (default 0700), removed after the
-- test; also the child script in it.
local function tmpdir(mode)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -m 700 " .. q(dir)) == 0)
  finally(function() os.execute("rm -rf " .. q(dir)) end)
  local f = assert(io.open(dir .. "/child.lua", "wb"))
  f:write(CHILD)
  f:close()
  if mode then assert(os.execute(("chmod %s %s"):format(mode, q(dir))) == 0) end
  return dir
end

-- Run the child under umask with the store at path; returns {name = mode},
-- the warning line and stderr.
local function child(dir, umask, path, ...)
  local argv = { "sh", "-c", 'umask "$0" && exec "$@"', umask, bin, "exec", dir .. "/child.lua", path, ... }
  local rc, out, err = procs.run(argv, {}, 60)
  assert.equal(0, rc, err)
  local modes = {}
  for mode, name in out:gmatch("(%w+) ([^\n]+)\n") do modes[name] = mode end
  return modes, out:match("warning: ([^\n]*)"), err
end

-- The mode of path (octal string), or nil.
local function mode_of(path)
  local p = io.popen("stat -c '%a' " .. q(path) .. " 2>/dev/null")
  local m = p:read("*l")
  p:close()
  return m
end

describe("sqlite store files", function()
  for _, umask in ipairs({ "022", "077" }) do
    it("are 0600 in directories made 0700, under umask " .. umask, function()
      local dir = tmpdir()
      local db = dir .. "/new/sub/weft.db"
      local modes, warning, err = child(dir, umask, db,
        dir .. "/new", dir .. "/new/sub", db, db .. "-wal", db .. "-shm")
      assert.equal("700", modes[dir .. "/new"])
      assert.equal("700", modes[dir .. "/new/sub"])
      assert.equal("600", modes[db])
      assert.equal("600", modes[db .. "-wal"])
      assert.equal("600", modes[db .. "-shm"])
      assert.equal("nil", warning)
      assert.is_nil(err:find("warning", 1, true), err)
    end)
  end

  it("leave an existing directory's mode alone and warn when others can access it", function()
    local dir = tmpdir()
    assert(os.execute("mkdir -m 755 " .. q(dir .. "/open")) == 0)
    local db = dir .. "/open/weft.db"
    local modes, warning, err = child(dir, "022", db, dir .. "/open", db, db .. "-wal")
    assert.equal("755", modes[dir .. "/open"]) -- not changed
    assert.equal("600", modes[db])
    assert.equal("600", modes[db .. "-wal"])
    assert.mentions("directory " .. dir .. "/open has mode 0755", warning)
    assert.mentions("weft: warning: sqlite " .. db .. ": directory " .. dir .. "/open has mode 0755", err)
    assert.equal("755", mode_of(dir .. "/open"))
  end)

  it("leave an existing file's mode alone and warn when others can read it", function()
    local dir = tmpdir()
    local db = dir .. "/old.db"
    child(dir, "022", db)
    assert(os.execute("chmod 644 " .. q(db)) == 0) -- as an older weft made it
    local modes, warning = child(dir, "022", db, db, db .. "-wal")
    assert.equal("644", modes[db])
    assert.mentions("file " .. db .. " has mode 0644", warning)
    assert.is_nil(warning:find("directory", 1, true)) -- the directory is 0700
  end)

  it("cannot be read by another user", function()
    local dir = tmpdir("755")
    local db = dir .. "/weft.db"
    child(dir, "022", db)
    assert.equal("600", mode_of(db))
    local p = io.popen("id -u")
    local uid = p:read("*l")
    p:close()
    if uid ~= "0" then return pending("needs root to drop to uid 65534") end
    local rc = os.execute("setpriv --reuid=65534 --regid=65534 --clear-groups cat " .. q(db)
                          .. " >/dev/null 2>&1")
    assert.is_not.equal(0, rc)
    -- the same command reads a file that others may read (the check works)
    assert(os.execute("chmod 644 " .. q(db)) == 0)
    rc = os.execute("setpriv --reuid=65534 --regid=65534 --clear-groups cat " .. q(db) .. " >/dev/null 2>&1")
    assert.equal(0, rc)
  end)
end)
