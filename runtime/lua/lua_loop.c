/* lua_loop.c — package "weft.core.loop": builds the module table from the
 * loop's binding files (lua_loop.h: sleep, step/poll, go, cond, signals,
 * file watches) and adds the clocks and the DONE sentinel. Depends on
 * lua.h, lua_rt.h, lua_loop.h, lua_sched.h. */
#include "lua_loop.h"

#include "lua_rt.h"
#include "lua_sched.h"

/* weft.core.loop.now() -> wall-clock seconds since the epoch. */
static int l_now(lua_State *L) {
  lua_pushnumber(L, wf_time_wall());
  return 1;
}

/* weft.core.loop.clock() -> monotonic seconds (for measuring durations). */
static int l_clock(lua_State *L) {
  lua_pushnumber(L, wf_time_mono());
  return 1;
}

static const luaL_Reg loop_fns[] = {{"now", l_now}, {"clock", l_clock},
                                    {NULL, NULL}};

/* Push the weft.core.loop module table. */
int wf_lua_open_loop(lua_State *L) {
  wf_lua_rt(L);
  lua_newtable(L);
  luaL_register(L, NULL, loop_fns);
  wf_lua_loop_sleep(L);
  wf_lua_loop_step(L);
  wf_lua_loop_go(L);
  wf_lua_loop_cond(L);
  wf_lua_loop_signal(L);
  wf_lua_loop_watch(L);
  /* the sentinel a task body yields when it ends */
  lua_pushlightuserdata(L, wf_lua_done_sentinel());
  lua_setfield(L, -2, "DONE");
  return 1;
}
