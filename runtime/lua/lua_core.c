/* lua_core.c — registers the binding's modules into package.preload
 * ("weft.core" and "weft.core.<mod>"), shared by the weft executable and
 * weft/core.so. Depends on lua.h and the lua_*.c openers. */
#include <lauxlib.h>

#include "lua_core.h"

static const luaL_Reg mods[] = {{"weft.core.json", wf_lua_open_json},
                                {"weft.core.loop", wf_lua_open_loop},
                                {"weft.core.sched", wf_lua_open_sched},
                                {"weft.core.http", wf_lua_open_http},
                                {"weft.core.tcp", wf_lua_open_tcp},
                                {"weft.core.proc", wf_lua_open_proc},
                                {"weft.core.store", wf_lua_open_store},
                                {"weft.core.server", wf_lua_open_server},
                                {"weft.core.watchdog", wf_lua_open_watchdog},
                                {"weft.core.child", wf_lua_open_child},
                                {"weft.core.gv", wf_lua_open_gv},
                                {"weft.core.notify", wf_lua_open_notify},
                                {NULL, NULL}};

/* preload loader for "weft.core". */
static int load_core(lua_State *L) { return wf_lua_open_core(L); }

int wf_lua_preload(lua_State *L) {
  const luaL_Reg *m;
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  for (m = mods; m->name; m++) {
    lua_pushcfunction(L, m->func);
    lua_setfield(L, -2, m->name);
  }
  lua_pushcfunction(L, load_core);
  lua_setfield(L, -2, "weft.core");
  lua_pop(L, 2);
  return 0;
}

int wf_lua_open_core(lua_State *L) {
  const luaL_Reg *m;
  lua_newtable(L);
  for (m = mods; m->name; m++) {
    lua_getglobal(L, "require");
    lua_pushstring(L, m->name);
    lua_call(L, 1, 1);
    lua_setfield(L, -2, m->name + sizeof("weft.core.") - 1);
  }
  lua_pushstring(L, WEFT_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}

void wf_lua_set_path(lua_State *L, const char *root) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  const char *old = lua_tostring(L, -1);
  /* stack: package, oldpath */
  lua_pushfstring(L,
                  "%s/lua/?.lua;%s/lua/?/init.lua;"
                  "%s/stdlib/?.lua;%s/stdlib/?/init.lua;%s",
                  root, root, root, root, old ? old : "");
  lua_setfield(L, -3, "path");
  lua_pop(L, 2);
}
