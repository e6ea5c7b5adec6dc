-- weft.host.find: the files of a directory tree matching a glob, as
-- `find DIR -type f -name GLOB | sort` lists them, read in this process —
-- the server calls it on request paths, where a fork of `find` (as before)
-- blocked the loop.
local weft = require "weft"
local files = require "support.files"

describe("weft.host.find", function()
  local dir
  before_each(function()
    dir = files.tempdir()
    os.execute(("mkdir -p %s/sub/deeper %s/b.lua.d"):format(files.quote(dir), files.quote(dir)))
    for _, f in ipairs({ "a.lua", "b.txt", "x.lua.bak", "sub/c.lua", "sub/deeper/d.lua", "b.lua.d/e.lua", "[odd].lua" }) do
      files.write(dir .. "/" .. f, "return 1\n")
    end
    os.execute(("ln -s %s/a.lua %s/link.lua"):format(files.quote(dir), files.quote(dir)))
  end)
  after_each(function() files.remove(dir) end)

  it("lists the matching regular files, sorted, at every level or the top one", function()
    local popen = io.popen
    rawset(io, "popen", function() error("host.find must not start a process", 2) end)
    local ok, all, top = pcall(function()
      return weft.host.find(dir, "*.lua"), weft.host.find(dir, "*.lua", 1)
    end)
    rawset(io, "popen", popen)
    assert(ok, all)
    assert.same({ dir .. "/[odd].lua", dir .. "/a.lua", dir .. "/b.lua.d/e.lua", dir .. "/sub/c.lua",
                  dir .. "/sub/deeper/d.lua" }, all)
    assert.same({ dir .. "/[odd].lua", dir .. "/a.lua" }, top)
    assert.same({ dir .. "/sub/c.lua" }, weft.host.find(dir .. "/sub", "?.lua", 1))
    assert.same({}, weft.host.find(dir .. "/missing", "*.lua"))
  end)
end)
