/* lua_step.c — driving the loop from Lua and from host loops:
 * weft.core.loop step() and poll() (main thread only), fd() and timeout()
 * for hosts that poll weft from their own loop (weft.fd, weft.timeout).
 * Depends on lua.h, lua_rt.h, lua_loop.h, watch.h. */
#include "lua_loop.h"
#include "lua_rt.h"
#include "watch.h"

/* Longest wait weft.timeout() reports while timers may be pending: libev
 * has no public "time until the next timer", so hosts re-poll this often. */
#define LOOP_TIMEOUT_CAP 0.05

/* Raise unless fname may drive the loop from L: only the main thread
 * outside weft callbacks may. In a task (an executor, a weft.go body) or a
 * coroutine the loop would run re-entrantly: other tasks would be resumed
 * inside this one, which the scheduler never expects. */
static void check_loop_driver(wf_lua_rt_t *rt, lua_State *L, const char *fname) {
  int main_thread = lua_pushthread(L);
  lua_pop(L, 1);
  if (!main_thread)
    luaL_error(L,
               "%s: runs the event loop: call it from the main thread only, "
               "not from an executor, a weft.go task, a callback or a "
               "coroutine (other tasks would be resumed inside it; use "
               "weft.sleep(0) to let other work run)",
               fname);
  wf_task_check_blocking(rt, L, fname); /* raises inside loop callbacks */
}

/* weft.core.loop.step(): one loop iteration, blocking until something
 * happens; returns true while work remains. Main thread only. */
static int l_step(lua_State *L) {
  wf_lua_rt_t *rt = wf_lua_rt(L);
  check_loop_driver(rt, L, "weft.step");
  lua_pushboolean(L, wf_loop_step(rt->loop));
  return 1;
}

/* weft.core.loop.poll(): run ready work without blocking; returns true while
 * work remains. Main thread only. */
static int l_poll(lua_State *L) {
  wf_lua_rt_t *rt = wf_lua_rt(L);
  check_loop_driver(rt, L, "weft.poll");
  lua_pushboolean(L, wf_loop_poll(rt->loop));
  return 1;
}

/* weft.core.loop.fd() -> a descriptor that polls readable when weft has
 * I/O to handle (then call poll), or nil, err, "unsupported" when the
 * backend has none. */
static int l_fd(lua_State *L) {
  int fd = wf_watch_backend_fd(wf_lua_rt(L)->loop);
  if (fd < 0)
    return wf_lua_fail(L,
                       "weft.fd: the libev backend has no pollable "
                       "descriptor (set LIBEV_FLAGS to use epoll)",
                       "unsupported");
  lua_pushinteger(L, fd);
  return 1;
}

/* weft.core.loop.timeout([cap]) -> seconds the host may wait on fd() before
 * it must call poll anyway: 0 with deferred work queued or events pending,
 * otherwise cap (default LOOP_TIMEOUT_CAP, for timers). Never runs the
 * loop; poll()'s result says whether weft has anything left at all. */
static int l_timeout(lua_State *L) {
  wf_lua_rt_t *rt = wf_lua_rt(L);
  double cap = luaL_optnumber(L, 1, LOOP_TIMEOUT_CAP);
  luaL_argcheck(L, cap >= 0 && cap == cap, 1, "cap must be >= 0");
  if (wf_loop_pending(rt->loop) > 0 ||
      ev_pending_count(wf_loop_ev(rt->loop)) > 0)
    cap = 0;
  lua_pushnumber(L, cap);
  return 1;
}

static const luaL_Reg step_fns[] = {{"step", l_step},
                                    {"poll", l_poll},
                                    {"fd", l_fd},
                                    {"timeout", l_timeout},
                                    {NULL, NULL}};

void wf_lua_loop_step(lua_State *L) { luaL_register(L, NULL, step_fns); }
