/* lua_signal.c — weft.core.loop.signal_wait(signo): suspend the caller
 * until the process receives a signal, on a one-shot watcher of watch.h.
 * Depends on lua.h, lua_rt.h, lua_loop.h, watch.h. */
#include "lua_loop.h"
#include "lua_rt.h"
#include "watch.h"

/* The signal arrived: the waiter is ready (never runs Lua here). */
static void sig_fired(void *ud, wf_watch_t *w) {
  (void)w;
  wf_task_ready(ud);
}

/* Cancel (abort, state close) and prepare share the freeing. */
static void sig_cancel(wf_task_t *t) { wf_watch_free(t->wait); }

/* Results of a signal wait: true. */
static int sig_prepare(wf_task_t *t, lua_State *L) {
  wf_watch_free(t->wait);
  lua_pushboolean(L, 1);
  return 1;
}

/* weft.core.loop.signal_wait(signo) -> true once the process receives
 * signal signo (SIGTERM, SIGINT, ...): yields the calling task, or runs
 * the loop on the main thread. */
static int l_signal_wait(lua_State *L) {
  int signo = (int)luaL_checkinteger(L, 1);
  wf_lua_rt_t *rt = wf_lua_rt(L);
  wf_task_t mw, *t;
  wf_err_t err;
  luaL_argcheck(L, signo > 0 && signo < 65, 1, "not a signal number");
  t = wf_task_waiter(rt, L, "signal_wait", &mw);
  t->wait = wf_watch_signal(rt->loop, signo, sig_fired, t, &err);
  if (!t->wait) return luaL_error(L, "signal_wait: %s", err.msg);
  t->cancel = sig_cancel;
  t->prepare = sig_prepare;
  return wf_task_suspend(t, L, "signal_wait");
}

void wf_lua_loop_signal(lua_State *L) {
  lua_pushcfunction(L, l_signal_wait);
  lua_setfield(L, -2, "signal_wait");
}
