/* lua_sleep.c — weft.core.loop.sleep, the simplest yielding primitive: a
 * timeout and nothing else to wait for. Depends on lua.h, lua_rt.h,
 * lua_loop.h. */
#include "lua_loop.h"
#include "lua_rt.h"

/* Timer of a sleeping waiter: it is ready (never resumes Lua here). */
static void sleep_timer_cb(struct ev_loop *evl, ev_timer *w, int revents) {
  (void)evl;
  (void)revents;
  wf_task_ready(w->data);
}

/* weft.core.loop.sleep(seconds): yield the calling task for that long; on
 * the main thread, run the loop for that long. In a task whose invocation
 * was aborted: nil, err, "cancelled" at once (wf_task_refuse). */
static int l_sleep(lua_State *L) {
  double s = luaL_checknumber(L, 1);
  wf_lua_rt_t *rt = wf_lua_rt(L);
  wf_task_t mw, *t;
  luaL_argcheck(L, s >= 0 && s == s, 1, "seconds must be >= 0");
  if (wf_task_aborted(rt, L)) return wf_task_refuse(L, "weft.sleep");
  t = wf_task_waiter(rt, L, "weft.sleep", &mw);
  wf_task_timeout(t, s, sleep_timer_cb); /* the resumer stops it */
  return wf_task_suspend(t, L, "weft.sleep");
}

void wf_lua_loop_sleep(lua_State *L) {
  lua_pushcfunction(L, l_sleep);
  lua_setfield(L, -2, "sleep");
}
