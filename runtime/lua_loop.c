/* lua_loop.c — Lua binding of the event loop (package "weft.core.loop"):
 * sleep (the first yielding primitive), step/poll for hosts that drive the
 * loop, and clocks. Depends on lua.h, loop.h, lua_rt.h. */
#include <stdlib.h>
#include <string.h>

#include "lua_rt.h"
#include "lua_sched.h"

/* Start timer w (initialised with its delay) counting from now: libev's
 * cached time is that of the last loop iteration, which may be long past
 * after Lua work (a 0.1 s sleep after 90 ms of work would end at once). */
static void timer_start_now(wf_lua_rt_t *rt, ev_timer *w) {
  struct ev_loop *evl = wf_loop_ev(rt->loop);
  ev_now_update(evl);
  ev_timer_start(evl, w);
}

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
    timer_start_now(rt, &t->timer);
    t->cancel = sleep_cancel;
    return wf_task_yield(t, L);
  } else {
    int fired = 0;
    ev_timer w;
    ev_timer_init(&w, main_timer_cb, s, 0);
    w.data = &fired;
    timer_start_now(rt, &w);
    while (!fired) wf_loop_step(rt->loop);
    return 0;
  }
}

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

/* ---- conditions: wait until signalled (tasks yield, main thread loops) - */

#define COND_MT "weft.cond"

typedef struct wf_cond {
  wf_task_t *waiters;
  unsigned long gen; /* bumped by every signal */
  /* registry ref to the cond's own userdata while tasks wait on it: a
   * yielded task keeps nothing of its C frame, so a cond that only its
   * waiters know would be collected mid-wait; taken by the first waiter,
   * released when the last one leaves (cond_release) */
  int ref;
} wf_cond_t;

/* The waiter list of c became empty: drop c's anchor (once per ref). */
static void cond_release(wf_lua_rt_t *rt, wf_cond_t *c) {
  if (c->waiters || c->ref == LUA_NOREF) return;
  wf_lua_unref(rt, c->ref);
  c->ref = LUA_NOREF;
}

/* Take t out of c's waiter list (releasing c's anchor with the last). */
static void cond_unlink(wf_cond_t *c, wf_task_t *t) {
  wf_task_t **p;
  for (p = &c->waiters; *p; p = &(*p)->next)
    if (*p == t) {
      *p = t->next;
      break;
    }
  t->next = NULL;
  cond_release(t->rt, c);
}

/* Cancel callback of a task waiting on a condition. */
static void cond_cancel(wf_task_t *t) {
  cond_unlink(t->wait, t);
  ev_timer_stop(wf_loop_ev(t->rt->loop), &t->timer);
}

/* Timeout of a task waiting on a condition: resume it with false. */
static void cond_timer_cb(struct ev_loop *evl, ev_timer *w, int revents) {
  wf_task_t *t = w->data;
  (void)evl;
  (void)revents;
  cond_unlink(t->wait, t);
  t->cancel = NULL;
  lua_pushboolean(t->co, 0);
  wf_task_wake(t, 1);
}

/* weft.core.loop.cond() -> a condition object. */
static int l_cond(lua_State *L) {
  wf_cond_t *c = lua_newuserdata(L, sizeof(*c));
  c->waiters = NULL;
  c->gen = 0;
  c->ref = LUA_NOREF;
  luaL_getmetatable(L, COND_MT);
  lua_setmetatable(L, -2);
  return 1;
}

/* cond:wait([timeout]) -> true when signalled, false on timeout. */
static int l_cond_wait(lua_State *L) {
  wf_cond_t *c = luaL_checkudata(L, 1, COND_MT);
  double timeout = luaL_optnumber(L, 2, -1);
  wf_lua_rt_t *rt = wf_lua_rt(L);
  wf_task_t *t = wf_task_check_blocking(rt, L, "cond:wait");
  if (t) {
    lua_settop(L, 1);
    if (c->ref == LUA_NOREF) c->ref = wf_lua_ref(rt, L); /* pops c */
    lua_settop(L, 0);
    t->wait = c;
    t->cancel = cond_cancel;
    t->next = c->waiters;
    c->waiters = t;
    if (timeout >= 0) {
      ev_timer_init(&t->timer, cond_timer_cb, timeout, 0);
      t->timer.data = t;
      timer_start_now(rt, &t->timer);
    }
    return wf_task_yield(t, L);
  } else {
    unsigned long gen = c->gen;
    double end = wf_time_mono() + timeout;
    while (c->gen == gen) {
      if (timeout >= 0 && wf_time_mono() >= end) {
        lua_pushboolean(L, 0);
        return 1;
      }
      if (timeout >= 0) {
        int fired = 0;
        ev_timer w;
        ev_timer_init(&w, main_timer_cb, end - wf_time_mono(), 0);
        w.data = &fired;
        timer_start_now(rt, &w);
        wf_loop_step(rt->loop);
        ev_timer_stop(wf_loop_ev(rt->loop), &w);
      } else if (!wf_loop_step(rt->loop) && c->gen == gen) {
        return luaL_error(L, "cond:wait: nothing left to wait on (deadlock)");
      }
    }
    lua_pushboolean(L, 1);
    return 1;
  }
}

/* cond:signal() -> number of tasks woken (each resumes with true). */
static int l_cond_signal(lua_State *L) {
  wf_cond_t *c = luaL_checkudata(L, 1, COND_MT);
  wf_lua_rt_t *rt = wf_lua_rt(L);
  wf_task_t *t;
  int n = 0;
  c->gen++;
  while ((t = c->waiters)) {
    c->waiters = t->next;
    t->next = NULL;
    t->cancel = NULL;
    ev_timer_stop(wf_loop_ev(rt->loop), &t->timer);
    lua_pushboolean(t->co, 1);
    wf_task_wake(t, 1);
    n++;
  }
  cond_release(rt, c);
  lua_pushinteger(L, n);
  return 1;
}

/* weft.core.loop.go(fn, ...): run fn(...) in a new task from the loop. */
static int l_go(lua_State *L) {
  wf_lua_rt_t *rt = wf_lua_rt(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (!wf_task_spawn(rt, L, lua_gettop(L) - 1))
    return luaL_error(L, "go: out of memory");
  return 0;
}

/* ---- signals ----------------------------------------------------------- */

typedef struct wf_sigwait {
  ev_signal w;
  wf_task_t *t; /* the waiting task, or NULL on the main thread */
  int fired;
} wf_sigwait_t;

/* Signal callback: wake the waiting task (never runs Lua here). */
static void sig_cb(struct ev_loop *evl, ev_signal *w, int revents) {
  wf_sigwait_t *sw = (wf_sigwait_t *)w;
  (void)revents;
  ev_signal_stop(evl, w);
  sw->fired = 1;
  if (sw->t) {
    wf_task_t *t = sw->t;
    t->cancel = NULL;
    free(sw);
    lua_pushboolean(t->co, 1);
    wf_task_wake(t, 1);
  }
}

/* Cancel callback of a task waiting for a signal. */
static void sig_cancel(wf_task_t *t) {
  wf_sigwait_t *sw = t->wait;
  ev_signal_stop(wf_loop_ev(t->rt->loop), &sw->w);
  free(sw);
}

/* weft.core.loop.signal_wait(signo) -> true once the process receives
 * signal signo (SIGTERM, SIGINT, ...): yields the calling task, or runs
 * the loop on the main thread. */
static int l_signal_wait(lua_State *L) {
  int signo = (int)luaL_checkinteger(L, 1);
  wf_lua_rt_t *rt = wf_lua_rt(L);
  wf_task_t *t;
  wf_sigwait_t *sw;
  luaL_argcheck(L, signo > 0 && signo < 65, 1, "not a signal number");
  t = wf_task_check_blocking(rt, L, "signal_wait");
  sw = calloc(1, sizeof(*sw));
  if (!sw) return luaL_error(L, "signal_wait: out of memory");
  ev_signal_init(&sw->w, sig_cb, signo);
  ev_signal_start(wf_loop_ev(rt->loop), &sw->w);
  if (t) {
    sw->t = t;
    t->wait = sw;
    t->cancel = sig_cancel;
    return wf_task_yield(t, L);
  }
  while (!sw->fired) wf_loop_step(rt->loop);
  free(sw);
  lua_pushboolean(L, 1);
  return 1;
}

/* ---- host-loop integration: fd / timeout (weft.fd, weft.timeout) ------ */

/* Longest wait weft.timeout() reports while timers may be pending: libev
 * has no public "time until the next timer", so hosts re-poll this often. */
#define LOOP_TIMEOUT_CAP 0.05

/* The libev backend descriptor of evl (epoll/kqueue), or -1 when the
 * backend has none. libev does not export it: an ev_embed watcher started
 * on a throwaway select() loop copies it into its io member (ev_embed is the
 * documented way to poll one loop's backend fd from another). */
static int loop_backend_fd(struct ev_loop *evl) {
  struct ev_loop *tmp;
  ev_embed e;
  int fd;
  if (!(ev_backend(evl) & ev_embeddable_backends())) return -1;
  tmp = ev_loop_new(EVBACKEND_SELECT);
  if (!tmp) return -1;
  ev_embed_init(&e, NULL, evl);
  ev_embed_start(tmp, &e);
  fd = e.io.fd;
  ev_embed_stop(tmp, &e);
  ev_loop_destroy(tmp);
  return fd;
}

/* weft.core.loop.fd() -> a descriptor that polls readable when weft has
 * I/O to handle (then call poll), or nil, err when the backend has none. */
static int l_fd(lua_State *L) {
  wf_lua_rt_t *rt = wf_lua_rt(L);
  int fd = loop_backend_fd(wf_loop_ev(rt->loop));
  if (fd < 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "weft.fd: the libev backend has no pollable descriptor "
                       "(set LIBEV_FLAGS to use epoll)");
    return 2;
  }
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

/* ---- file watching ------------------------------------------------------ */

typedef struct wf_filewait {
  ev_stat w;
  wf_task_t *t;
} wf_filewait_t;

/* Stat change callback: wake the waiting task. */
static void stat_cb(struct ev_loop *evl, ev_stat *w, int revents) {
  wf_filewait_t *fw = (wf_filewait_t *)w;
  wf_task_t *t = fw->t;
  (void)revents;
  ev_stat_stop(evl, w);
  ev_timer_stop(evl, &t->timer);
  t->cancel = NULL;
  free(fw);
  lua_pushboolean(t->co, 1);
  wf_task_wake(t, 1);
}

/* Cancel callback of a task watching a file. */
static void stat_cancel(wf_task_t *t) {
  wf_filewait_t *fw = t->wait;
  ev_stat_stop(wf_loop_ev(t->rt->loop), &fw->w);
  ev_timer_stop(wf_loop_ev(t->rt->loop), &t->timer);
  free(fw);
}

/* Timeout of a file watch: resume the task with false. */
static void stat_timer_cb(struct ev_loop *evl, ev_timer *w, int revents) {
  wf_task_t *t = w->data;
  (void)evl;
  (void)revents;
  stat_cancel(t);
  t->cancel = NULL;
  lua_pushboolean(t->co, 0);
  wf_task_wake(t, 1);
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
  wf_filewait_t *fw;
  if (!t) return luaL_error(L, "watch_file: call it from a task (weft.go)");
  fw = calloc(1, sizeof(*fw) + strlen(path) + 1);
  if (!fw) return luaL_error(L, "watch_file: out of memory");
  /* ev_stat keeps the path pointer: store it after the struct */
  strcpy((char *)(fw + 1), path);
  ev_stat_init(&fw->w, stat_cb, (char *)(fw + 1), interval);
  fw->t = t;
  ev_stat_start(wf_loop_ev(rt->loop), &fw->w);
  if (timeout >= 0) {
    ev_timer_init(&t->timer, stat_timer_cb, timeout, 0);
    t->timer.data = t;
    timer_start_now(rt, &t->timer);
  }
  t->wait = fw;
  t->cancel = stat_cancel;
  return wf_task_yield(t, L);
}

/* weft.core.loop.DONE: the sentinel a task body yields when it ends. */

static const luaL_Reg loop_fns[] = {{"sleep", l_sleep},   {"step", l_step},
                                    {"poll", l_poll},     {"now", l_now},
                                    {"clock", l_clock},   {"in_task", l_in_task},
                                    {"cond", l_cond},     {"go", l_go},
                                    {"signal_wait", l_signal_wait},
                                    {"watch_file", l_watch_file},
                                    {"fd", l_fd},         {"timeout", l_timeout},
                                    {NULL, NULL}};

int wf_lua_open_loop(lua_State *L) {
  wf_lua_rt(L);
  if (luaL_newmetatable(L, COND_MT)) {
    lua_newtable(L);
    lua_pushcfunction(L, l_cond_wait);
    lua_setfield(L, -2, "wait");
    lua_pushcfunction(L, l_cond_signal);
    lua_setfield(L, -2, "signal");
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  lua_newtable(L);
  luaL_register(L, NULL, loop_fns);
  lua_pushlightuserdata(L, wf_lua_done_sentinel());
  lua_setfield(L, -2, "DONE");
  return 1;
}
