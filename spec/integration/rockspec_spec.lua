-- rockspec_spec.lua — `luarocks make` of the rockspec at the root of the
-- source tree, on a copy of the sources in a temp dir (luarocks builds in
-- ./build.luarocks), into a temp luarocks tree; a plain luajit using that
-- tree then runs a workflow, and so does the tree's weft executable. It
-- builds weft once more (CMake, no tests): ctest label `slow`, and only in
-- non-sanitized trees. Needs luarocks (Debian package `luarocks`); without
-- it the spec fails saying so.
local SRC = os.getenv("WEFT_SOURCE_DIR") or "."

local files = require "support.files"
local q, sh = files.quote, files.sh

local VERSION = assert(files.read(SRC .. "/CMakeLists.txt"):match("project%(weft VERSION ([%d%.]+)"))
local ROCKSPEC = "weft-" .. VERSION .. "-1.rockspec"

describe("luarocks make " .. ROCKSPEC, function()
  local tmp

  setup(function() tmp = files.tempdir("weft_rock_") end)

  teardown(function()
    if tmp then files.remove(tmp) end
  end)

  it("builds weft into a luarocks tree where a plain luajit runs a workflow", function()
    local rc, out = sh("command -v luarocks")
    assert(rc == 0, "luarocks not found: apt-get install luarocks")

    -- what the CMake build reads when WEFT_BUILD_TESTS is OFF
    rc, out = sh("mkdir " .. q(tmp .. "/src") .. " && cd " .. q(SRC)
      .. " && cp -R CMakeLists.txt cmake runtime lua stdlib LICENSE " .. q(ROCKSPEC) .. " " .. q(tmp .. "/src"))
    assert.are.equal(0, rc, out)

    rc, out = sh("cd " .. q(tmp .. "/src") .. " && CMAKE_BUILD_PARALLEL_LEVEL=2 luarocks --lua-version=5.1 make "
      .. q(ROCKSPEC) .. " --tree " .. q(tmp .. "/tree"))
    assert.are.equal(0, rc, "luarocks make failed:\n" .. out)
    assert.truthy(out:find("weft " .. VERSION .. "-1 is now installed", 1, true), out)

    files.write(tmp .. "/tiny.lua", [[
local weft = require "weft"
local e = weft.executor("e", function(m, ctx) ctx:yield_output(m .. "!") end)
local r = weft.workflow("w"):start(e):build():run("rock")
print(weft.version, r.status, r.outputs[1], package.searchpath("weft.core", package.cpath))]])
    local tree = tmp .. "/tree"
    rc, out = sh("cd " .. q(tmp) .. " && eval \"$(luarocks --lua-version=5.1 path --tree " .. q(tree)
      .. ")\" && luajit tiny.lua")
    assert.are.equal(0, rc, out)
    assert.are.equal(VERSION .. "\tcompleted\t" .. "rock!\t" .. tree .. "/lib/lua/5.1/weft/core.so\n", out)

    -- the tree's weft executable, with the build copy gone, finds the
    -- modules through the tree's LUA_PATH
    rc, out = sh("rm -rf " .. q(tmp .. "/src") .. " && cd " .. q(tmp) .. " && eval \"$(luarocks --lua-version=5.1 path --tree "
      .. q(tree) .. ")\" && " .. q(tree .. "/bin/weft") .. " run " .. q(SRC .. "/examples/hello.lua") .. " --input rock")
    assert.are.equal(0, rc, out)
    assert.are.equal('"ROCK!"\n', out)
  end)
end)
