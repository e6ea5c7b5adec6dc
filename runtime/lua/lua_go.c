/* lua_go.c — weft.go tasks from Lua: weft.core.loop go(fn, ...) starts a
 * one-shot task (wf_task_spawn) and in_task() tells whether the caller
 * runs in one of weft's tasks. Depends on lua.h, lua_rt.h, lua_loop.h. */
#include "lua_loop.h"
#include "lua_rt.h"

/* weft.core.loop.go(fn, ...): run fn(...) in a new task from the loop. */
static int l_go(lua_State *L) {
  wf_lua_rt_t *rt = wf_lua_rt(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (!wf_task_spawn(rt, L, lua_gettop(L) - 1))
    return luaL_error(L, "go: out of memory");
  return 0;
}

/* weft.core.loop.in_task() -> true when called from an executor's task. */
static int l_in_task(lua_State *L) {
  lua_pushboolean(L, wf_task_of(wf_lua_rt(L), L) != NULL);
  return 1;
}

static const luaL_Reg go_fns[] = {{"go", l_go}, {"in_task", l_in_task},
                                  {NULL, NULL}};

void wf_lua_loop_go(lua_State *L) { luaL_register(L, NULL, go_fns); }
