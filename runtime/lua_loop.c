/* lua_loop.c — Lua binding of the event loop (package "weft.core.loop"):
 * sleep (the first yielding primitive), step/poll for hosts that drive the
 * loop, and clocks. Depends on lua.h, loop.h, lua_rt.h. */
#include "lua_rt.h"

/* Timer callback of a sleeping task: wake it (never resumes Lua here). */
static void sleep_timer_cb(struct ev_loop *evl, ev_timer *w, int revents) {
  wf_task_t *t = w->data;
  (void)evl;
  (void)revents;
  t->cancel = NULL;
  wf_task_wake(t, 0);
}

/* Cancel callback of a sleeping task (abort, timeout). */
static void sleep_cancel(wf_task_t *t) {
  ev_timer_stop(wf_loop_ev(t->rt->loop), &t->timer);
}

/* Timer callback of a blocking sleep on the main thread. */
static void main_timer_cb(struct ev_loop *evl, ev_timer *w, int revents) {
  (void)evl;
  (void)revents;
  *(int *)w->data = 1;
}

/* weft.core.loop.sleep(seconds): yield the calling task for that long; on
 * the main thread, run the loop for that long. */
static int l_sleep(lua_State *L) {
  double s = luaL_checknumber(L, 1);
  wf_lua_rt_t *rt = wf_lua_rt(L);
  wf_task_t *t;
  luaL_argcheck(L, s >= 0 && s == s, 1, "seconds must be >= 0");
  t = wf_task_check_blocking(rt, L, "weft.sleep");
  if (t) {
    ev_timer_init(&t->timer, sleep_timer_cb, s, 0);
    t->timer.data = t;
    ev_timer_start(wf_loop_ev(rt->loop), &t->timer);
    t->cancel = sleep_cancel;
    return wf_task_yield(t, L);
  } else {
    int fired = 0;
    ev_timer w;
    ev_timer_init(&w, main_timer_cb, s, 0);
    w.data = &fired;
    ev_timer_start(wf_loop_ev(rt->loop), &w);
    while (!fired) wf_loop_step(rt->loop);
    return 0;
  }
}

/* weft.core.loop.step(): one loop iteration, blocking until something
 * happens; returns true while work remains. */
static int l_step(lua_State *L) {
  wf_lua_rt_t *rt = wf_lua_rt(L);
  wf_task_check_blocking(rt, L, "weft.step");
  lua_pushboolean(L, wf_loop_step(rt->loop));
  return 1;
}

/* weft.core.loop.poll(): run ready work without blocking; returns true while
 * work remains. */
static int l_poll(lua_State *L) {
  wf_lua_rt_t *rt = wf_lua_rt(L);
  wf_task_check_blocking(rt, L, "weft.poll");
  lua_pushboolean(L, wf_loop_poll(rt->loop));
  return 1;
}

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

/* weft.core.loop.in_task() -> true when called from an executor's task. */
static int l_in_task(lua_State *L) {
  lua_pushboolean(L, wf_task_of(wf_lua_rt(L), L) != NULL);
  return 1;
}

static const luaL_Reg loop_fns[] = {{"sleep", l_sleep},   {"step", l_step},
                                    {"poll", l_poll},     {"now", l_now},
                                    {"clock", l_clock},   {"in_task", l_in_task},
                                    {NULL, NULL}};

int wf_lua_open_loop(lua_State *L) {
  wf_lua_rt(L);
  lua_newtable(L);
  luaL_register(L, NULL, loop_fns);
  return 1;
}
