/* lua_module.c — the entry point of weft/core.so, so that a plain luajit
 * can `require "weft.core"` (LUA_CPATH pointing at <build>/lib/?.so). The
 * weft executable does not use this file: it preloads the same modules. */
#include <lua.h>

#include "lua_core.h"

/* require "weft.core": register the sub-modules, return the core table. */
int luaopen_weft_core(lua_State *L) {
  wf_lua_preload(L);
  return wf_lua_open_core(L);
}
