/* lua_watchdog.c — Lua binding of the blocked-loop watchdog (watchdog.h),
 * module "weft.core.watchdog": start(limit_s, report_path) -> handle,
 * handle:stop(). One watchdog per Lua state at a time, kept in rt->watchdog
 * so that the one resume point (wf_task_resume in lua_rt.c) tells it which
 * executor runs. The watchdog lives until stop() or the state's close (a
 * close hook), not until its handle is collected. Depends on lua.h,
 * lua_rt.h, watchdog.h. */
#include <stdlib.h>

#include "lua_rt.h"
#include "watchdog.h"

#define LW_MT "weft.watchdog"

/* Per state: the close hook, and a generation so that a stale handle
 * cannot stop a later watchdog. Found through its close hook. */
typedef struct lw_state {
  wf_lua_hook_t hook; /* first: the hook is the state */
  unsigned gen;       /* of the watchdog in rt->watchdog */
} lw_state_t;

/* The handle userdata. */
typedef struct lw_handle {
  unsigned gen;
} lw_handle_t;

/* Stop rt's watchdog, if any. */
static void lw_stop(wf_lua_rt_t *rt) {
  wf_watchdog_t *w = rt->watchdog;
  rt->watchdog = NULL;
  wf_watchdog_stop(w);
}

/* Close hook: the state closes; stop the watchdog. */
static void lw_close(wf_lua_rt_t *rt, wf_lua_hook_t *h) {
  lw_stop(rt);
  free(h);
}

/* watchdog.start(limit_s[, report_path]) -> handle | nil, err, "error".
 * Starts watching this state's loop: when it has not turned for limit_s
 * seconds, one JSON line is written to report_path (and stderr) and the
 * process is killed (SIGKILL). Raises when one is running already. */
static int l_start(lua_State *L) {
  double limit = luaL_checknumber(L, 1);
  const char *path = luaL_optstring(L, 2, NULL);
  wf_lua_rt_t *rt = wf_lua_rt(L);
  lw_state_t *st;
  lw_handle_t *h;
  wf_watchdog_t *w;
  wf_err_t err;
  luaL_argcheck(L, limit > 0, 1, "the limit must be > 0 seconds");
  if (rt->watchdog)
    return luaL_error(L, "watchdog.start: a watchdog is running already "
                         "(stop it first)");
  h = lua_newuserdata(L, sizeof *h);
  st = (lw_state_t *)wf_lua_rt_hook(rt, lw_close);
  if (!st) {
    if (!(st = calloc(1, sizeof *st))) return luaL_error(L, "out of memory");
    st->hook.fn = lw_close;
    st->hook.order = WF_HOOK_IO;
    wf_lua_rt_on_close(rt, &st->hook);
  }
  if (!(w = wf_watchdog_start(rt->loop, limit, path, &err)))
    return wf_lua_fail(L, err.msg, "error");
  rt->watchdog = w;
  h->gen = ++st->gen;
  luaL_getmetatable(L, LW_MT);
  lua_setmetatable(L, -2);
  return 1;
}

/* handle:stop() -> true. Stops the watchdog this handle started (no-op
 * when stopped already). */
static int l_stop(lua_State *L) {
  lw_handle_t *h = luaL_checkudata(L, 1, LW_MT);
  wf_lua_rt_t *rt = wf_lua_rt(L);
  lw_state_t *st = (lw_state_t *)wf_lua_rt_hook(rt, lw_close);
  if (st && rt->watchdog && h->gen == st->gen) lw_stop(rt);
  lua_pushboolean(L, 1);
  return 1;
}

/* handle:running() -> whether this handle's watchdog still watches. */
static int l_running(lua_State *L) {
  lw_handle_t *h = luaL_checkudata(L, 1, LW_MT);
  wf_lua_rt_t *rt = wf_lua_rt(L);
  lw_state_t *st = (lw_state_t *)wf_lua_rt_hook(rt, lw_close);
  lua_pushboolean(L, st && rt->watchdog && h->gen == st->gen);
  return 1;
}

static const luaL_Reg handle_fns[] = {
    {"stop", l_stop}, {"running", l_running}, {NULL, NULL}};

int wf_lua_open_watchdog(lua_State *L) {
  wf_lua_class(L, LW_MT, handle_fns, NULL);
  lua_newtable(L);
  lua_pushcfunction(L, l_start);
  lua_setfield(L, -2, "start");
  return 1;
}
