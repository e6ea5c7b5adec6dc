-- weft-0.1.0-1.rockspec — builds weft with its CMake build and installs it
-- into a LuaJIT luarocks tree: the Lua modules (weft.*) into the tree's
-- share/lua/5.1, the C module weft/core.so into its lib/lua/5.1 and the weft
-- executable into its bin. From a checkout:
--   luarocks --lua-version=5.1 make --tree DIR
-- weft is for LuaJIT (it uses the ffi library and links core.so against the
-- LuaJIT that loads it); its C libraries are found with pkg-config (luajit,
-- libcurl, sqlite3, hiredis, libmicrohttpd, libgvc) plus libev. The version must
-- equal project(VERSION) in CMakeLists.txt (checked by
-- spec/integration/rockspec_spec.lua).
rockspec_format = "3.0"
package = "weft"
version = "0.1.0-1"
source = {
  -- no published archive yet: `luarocks make` builds the checkout it is in
  url = "file://.",
}
description = {
  summary = "Lua-scriptable runtime for multi-agent LLM workflows",
  detailed = [[
weft runs graphs of executors (Lua functions, LLM agents) in Pregel-style
supersteps on LuaJIT and libev: HTTP, LLM calls and processes yield the
executor's coroutine while the event loop does the I/O; runs can be durable
(SQLite or Redis) and served over HTTP.]],
  license = "MIT",
}
dependencies = {
  "lua ~> 5.1",
}
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "RelWithDebInfo",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    CMAKE_INSTALL_BINDIR = "$(BINDIR)",
    WEFT_INSTALL_LUADIR = "$(LUADIR)",
    WEFT_INSTALL_CMODDIR = "$(LIBDIR)",
    WEFT_BUILD_TESTS = "OFF",
    WEFT_INSTALL_DEV = "OFF",
  },
}
