/* lua_go.c — weft.go tasks from Lua: weft.core.loop go(fn, ...) starts a
 * one-shot task (wf_task_spawn) that works for the caller's invocation
 * (stopped with it when it is aborted or fails), go_detached(fn, ...) one
 * that works for none, and in_task() tells whether the caller runs in one
 * of weft's tasks. Depends on lua.h, lua_rt.h, lua_loop.h. */
#include "lua_loop.h"
#include "lua_rt.h"

/* Start fn(...) (the stack of L) in a new task working for owner. */
static int go(lua_State *L, wf_lua_rt_t *rt, wf_task_t *owner) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (!wf_task_spawn(rt, L, lua_gettop(L) - 1, owner))
    return luaL_error(L, "go: out of memory");
  return 0;
}

/* weft.core.loop.go(fn, ...): run fn(...) in a new task from the loop,
 * working for the caller's invocation if any. */
static int l_go(lua_State *L) {
  wf_lua_rt_t *rt = wf_lua_rt(L);
  return go(L, rt, wf_task_owner(rt, L));
}

/* weft.core.loop.go_detached(fn, ...): the same, working for none. */
static int l_go_detached(lua_State *L) { return go(L, wf_lua_rt(L), NULL); }

/* weft.core.loop.in_task() -> true when called from an executor's task. */
static int l_in_task(lua_State *L) {
  lua_pushboolean(L, wf_task_of(wf_lua_rt(L), L) != NULL);
  return 1;
}

static const luaL_Reg go_fns[] = {{"go", l_go},
                                  {"go_detached", l_go_detached},
                                  {"in_task", l_in_task},
                                  {NULL, NULL}};

void wf_lua_loop_go(lua_State *L) { luaL_register(L, NULL, go_fns); }
