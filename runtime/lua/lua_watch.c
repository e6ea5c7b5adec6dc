/* lua_watch.c — weft.core.loop.watch_file: suspend a task until a file's
 * stat changes or a timeout passes, on a one-shot watcher of watch.h.
 * Depends on lua.h, lua_rt.h, lua_loop.h, watch.h. */
#include "lua_loop.h"
#include "lua_rt.h"
#include "watch.h"

/* The file changed: the task is ready with true. */
static void file_changed(void *ud, wf_watch_t *w) {
  wf_task_t *t = ud;
  (void)w;
  t->result = 1;
  wf_task_ready(t);
}

/* Timeout of a file watch: the task is ready with false (the watch is
 * freed by prepare). */
static void file_timer_cb(struct ev_loop *evl, ev_timer *w, int revents) {
  wf_task_t *t = w->data;
  (void)evl;
  (void)revents;
  wf_watch_stop(t->wait); /* a change from now on is too late */
  t->result = 0;
  wf_task_ready(t);
}

/* Cancel (abort, state close): stop watching. */
static void file_cancel(wf_task_t *t) { wf_watch_free(t->wait); }

/* Results of a file watch: true (changed) or false (timed out). */
static int file_prepare(wf_task_t *t, lua_State *L) {
  wf_watch_free(t->wait);
  return wf_task_prepare_bool(t, L);
}

/* weft.core.loop.watch_file(path[, interval[, timeout]]) -> true when
 * path's stat changes (written, replaced by a rename, removed, created),
 * false after timeout seconds; yields the calling task (libev ev_stat:
 * inotify where available, else polling every interval seconds, default
 * 0.1). Only from a task. */
static int l_watch_file(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  double interval = luaL_optnumber(L, 2, 0.1);
  double timeout = luaL_optnumber(L, 3, -1);
  wf_lua_rt_t *rt = wf_lua_rt(L);
  wf_task_t *t = wf_task_of(rt, L);
  wf_err_t err;
  if (!t) return luaL_error(L, "watch_file: call it from a task (weft.go)");
  t->wait = wf_watch_file(rt->loop, path, interval, file_changed, t, &err);
  if (!t->wait) return luaL_error(L, "watch_file: %s", err.msg);
  t->cancel = file_cancel;
  t->prepare = file_prepare;
  if (timeout >= 0) wf_task_timeout(t, timeout, file_timer_cb);
  return wf_task_suspend(t, L, "watch_file");
}

void wf_lua_loop_watch(lua_State *L) {
  lua_pushcfunction(L, l_watch_file);
  lua_setfield(L, -2, "watch_file");
}
