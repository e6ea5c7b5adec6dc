-- install_spec.lua — `cmake --install` of this build tree ($WEFT_BUILD_DIR)
-- into a temp prefix, as C and Lua users meet it: a C host compiled and
-- linked with nothing but `pkg-config --cflags --libs weft`, a plain luajit
-- with the LUA_PATH/LUA_CPATH line documented in docs/embedding.md, the
-- installed executable, the same after the prefix is moved; and the one
-- version (project(VERSION) in CMakeLists.txt) everywhere it is printed.
-- In a sanitized tree ($WEFT_SANITIZE) the C host is linked with the
-- sanitizers and the plain-luajit cases are left out (a plain luajit cannot
-- load an ASan-instrumented core.so).
local SRC = os.getenv("WEFT_SOURCE_DIR") or "."
local BUILD = os.getenv("WEFT_BUILD_DIR") or (SRC .. "/build")
local BIN = os.getenv("WEFT_BIN") or (BUILD .. "/weft")
local SANITIZED = os.getenv("WEFT_SANITIZE") == "1"

local files = require "support.files"
local q, sh = files.quote, files.sh

--- The version of project(weft VERSION x) in CMakeLists.txt.
local function project_version()
  return (assert(files.read(SRC .. "/CMakeLists.txt"):match("project%(weft VERSION ([%d%.]+)"),
    "CMakeLists.txt: no project(weft VERSION ...)"))
end

--- `cmake --install` of the build tree into prefix; asserts it worked.
local function install(prefix)
  local rc, out = sh("cmake --install " .. q(BUILD) .. " --prefix " .. q(prefix))
  assert(rc == 0, "cmake --install failed:\n" .. out)
end

--- Compile examples/embed/host.c in dir with only pkg-config's flags for
-- the weft.pc under prefix, run it on examples/hello.lua with the root
-- weft.pc names (weftdir); returns its exit code and output.
local function build_and_run_host(prefix, dir)
  local env = "PKG_CONFIG_PATH=" .. q(prefix .. "/lib/pkgconfig") .. " "
  local san = SANITIZED and " -fsanitize=address,undefined" or ""
  local rc, out = sh("cd " .. q(dir) .. " && " .. env .. "cc -o host " .. q(SRC .. "/examples/embed/host.c")
    .. " $(" .. env .. "pkg-config --cflags --libs weft)" .. san)
  assert(rc == 0, "the C host does not build with pkg-config's flags:\n" .. out)
  return sh("cd " .. q(dir) .. " && WEFT_PATH=\"$(" .. env .. "pkg-config --variable=weftdir weft)\" ./host "
    .. q(SRC .. "/examples/hello.lua"))
end

--- The LUA_PATH/LUA_CPATH line docs/embedding.md gives for a prefix.
local function documented_lua_env()
  local doc = files.read(SRC .. "/docs/embedding.md")
  return (assert(doc:match("\n(export LUA_PATH=\"%$PREFIX[^\n]*)\n"),
    "docs/embedding.md: no `export LUA_PATH=\"$PREFIX...` line"))
end

-- A tiny workflow for a plain luajit: prints the version and the output.
local TINY = [[
local weft = require "weft"
local e = weft.executor("e", function(m, ctx) ctx:yield_output(m .. "!") end)
local r = weft.workflow("w"):start(e):build():run("hi")
print(weft.version, r.status, r.outputs[1])]]

--- Run TINY in a plain luajit with the documented line for prefix.
local function run_plain_luajit(prefix, dir)
  files.write(dir .. "/tiny.lua", TINY)
  return sh("cd " .. q(dir) .. " && PREFIX=" .. q(prefix) .. " && " .. documented_lua_env()
    .. " && luajit tiny.lua")
end

describe("cmake --install", function()
  local tmp, prefix

  setup(function()
    tmp = files.tempdir("weft_install_")
    prefix = tmp .. "/prefix"
    install(prefix)
  end)

  teardown(function()
    if tmp then files.remove(tmp) end
  end)

  it("installs weft.h, libweft.a, weft.pc, the Lua modules, weft/core.so and the executable", function()
    for _, f in ipairs { "include/weft.h", "lib/libweft.a", "lib/pkgconfig/weft.pc",
                         "share/lua/5.1/weft/init.lua", "share/lua/5.1/weft/std/init.lua",
                         "lib/lua/5.1/weft/core.so", "bin/weft",
                         "share/weft/lua/weft/init.lua" } do
      assert.is_true(io.open(prefix .. "/" .. f) ~= nil, "not installed: " .. f)
    end
  end)

  it("writes a weft.pc that finds its prefix from its own directory", function()
    local pc = files.read(prefix .. "/lib/pkgconfig/weft.pc")
    assert.truthy(pc:find("\nprefix=${pcfiledir}/../..\n", 1, true), pc)
    assert.falsy(pc:find(BUILD, 1, true), "weft.pc names the build tree")
  end)

  it("lets a C host build with only `pkg-config --cflags --libs weft` and run a workflow", function()
    local rc, out = build_and_run_host(prefix, tmp)
    assert.are.equal(0, rc, out)
    assert.truthy(out:find('result {"outputs":["HI!"]', 1, true), out)
  end)

  it("runs the installed weft executable from its prefix", function()
    local rc, out = sh("cd " .. q(tmp) .. " && " .. q(prefix .. "/bin/weft") .. " run "
      .. q(SRC .. "/examples/hello.lua") .. " --input hi")
    assert.are.equal(0, rc, out)
    assert.are.equal('"HI!"\n', out)
  end)

  if SANITIZED then
    pending("a plain luajit with the documented LUA_PATH/LUA_CPATH (not in sanitized trees)")
  else
    it("lets a plain luajit require weft with the documented LUA_PATH/LUA_CPATH line", function()
      local rc, out = run_plain_luajit(prefix, tmp)
      assert.are.equal(0, rc, out)
      assert.are.equal(project_version() .. "\tcompleted\thi!\n", out)
    end)
  end
end)

describe("a moved install prefix", function()
  local tmp

  setup(function() tmp = files.tempdir("weft_install_") end)
  teardown(function()
    if tmp then files.remove(tmp) end
  end)

  it("still serves a C host, the executable and a plain luajit", function()
    install(tmp .. "/orig")
    local rc, out = sh("mv " .. q(tmp .. "/orig") .. " " .. q(tmp .. "/moved"))
    assert.are.equal(0, rc, out)
    local moved = tmp .. "/moved"

    rc, out = sh("PKG_CONFIG_PATH=" .. q(moved .. "/lib/pkgconfig") .. " pkg-config --cflags --libs weft")
    assert.are.equal(0, rc, out)
    assert.truthy(out:find(moved .. "/lib/pkgconfig/../../include", 1, true), out)
    assert.falsy(out:find(tmp .. "/orig", 1, true), out)

    rc, out = build_and_run_host(moved, tmp)
    assert.are.equal(0, rc, out)
    assert.truthy(out:find('"status":"completed"', 1, true), out)

    rc, out = sh("cd " .. q(tmp) .. " && " .. q(moved .. "/bin/weft") .. " run "
      .. q(SRC .. "/examples/hello.lua") .. " --input moved")
    assert.are.equal(0, rc, out)
    assert.are.equal('"MOVED!"\n', out)

    if not SANITIZED then
      rc, out = run_plain_luajit(moved, tmp)
      assert.are.equal(0, rc, out)
      assert.truthy(out:find("\tcompleted\thi!\n", 1, true), out)
    end
  end)
end)

describe("the version", function()
  local V = project_version()

  it("is project(VERSION) for `weft version` and require('weft').version", function()
    local rc, out = sh(q(BIN) .. " version")
    assert.are.equal(0, rc, out)
    assert.are.equal("weft " .. V .. " (", out:sub(1, #V + 7))
    assert.are.equal(V, require("weft").version)
  end)

  it("is weft.pc's Version", function()
    assert.truthy(files.read(BUILD .. "/weft.pc"):find("\nVersion: " .. V .. "\n", 1, true))
  end)

  it("is the rockspec's, in its file name and its version field", function()
    local rc, out = sh("cd " .. q(SRC) .. " && ls weft-*.rockspec")
    assert.are.equal(0, rc, out)
    assert.are.equal("weft-" .. V .. "-1.rockspec\n", out)
    local spec = files.read(SRC .. "/weft-" .. V .. "-1.rockspec")
    assert.truthy(spec:find('\nversion = "' .. V .. '-1"\n', 1, true), "rockspec version field")
  end)

  it("is spelled nowhere else in the C or Lua sources", function()
    local rc, out = sh("cd " .. q(SRC) .. " && grep -rnE '\"[0-9]+\\.[0-9]+\\.[0-9]+\"' runtime lua stdlib")
    assert.are.equal(1, rc, "version literals (use WEFT_VERSION from CMake):\n" .. out)
  end)
end)
