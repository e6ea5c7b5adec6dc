/* lua_rt.c — the binding's per-state runtime: one wf_loop, value table,
 * scheduler and coroutine pool per Lua state, created on first use and torn
 * down when the state closes (close hooks first, in order). Also tasks:
 * pooled coroutines running the Lua worker body, and the one wait/resume
 * protocol (cosocket protocol, see STYLE.md): waiters, the single resume
 * point for every entry into Lua from the loop, the one main-thread spin
 * with its deadlock check, the blocking-call checks, and the one failure
 * shape (nil, msg, code). Depends on lua.h, loop.h, sched.h, lua_rt.h,
 * lua_sched.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_rt.h"
#include "lua_sched.h"
#include "watchdog.h"

#define WF_POOL_MAX 256
/* Registry-ref leak check at state close: compiled in by the WEFT_DEBUG_REFS
 * build option (on in sanitized builds) and in builds without NDEBUG;
 * $WEFT_DEBUG_REFS turns it on at run time in any build. */
#if defined(WEFT_DEBUG_REFS) || !defined(NDEBUG)
#define WF_DEBUG_REFS 1
#else
#define WF_DEBUG_REFS 0
#endif

static char rt_key; /* registry key of the runtime userdata */
static char done_key; /* the DONE sentinel address (a lightuserdata) */

static void rt_close(wf_lua_rt_t *rt);

/* Release the reference count of a value: clear vals[h]. */
static void vals_free_cb(void *ud, wf_val_t h) {
  wf_lua_rt_t *rt = ud;
  if (rt->closing > 1) return; /* the value table is already gone */
  lua_State *L = rt->aux;
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->vals_ref);
  lua_pushnil(L);
  lua_rawseti(L, -2, (int)h);
  lua_pop(L, 1);
}

/* __gc of the runtime userdata: the Lua state is closing. */
static int rt_gc(lua_State *L) {
  wf_lua_rt_t *rt = lua_touserdata(L, 1);
  rt_close(rt);
  return 0;
}

/* Create the runtime of L's state on libev loop evl (NULL: the default
 * loop) and anchor it in the registry. */
static wf_lua_rt_t *rt_create(lua_State *L, struct ev_loop *evl) {
  wf_lua_rt_t *rt = lua_newuserdata(L, sizeof(*rt));
  memset(rt, 0, sizeof(*rt));
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, rt_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_pushlightuserdata(L, &rt_key);
  lua_pushvalue(L, -2);
  lua_rawset(L, LUA_REGISTRYINDEX);
  lua_pop(L, 1);

  rt->aux = lua_newthread(L);
  rt->aux_ref = wf_lua_ref(rt, L);
  lua_newtable(L);
  rt->vals_ref = wf_lua_ref(rt, L);
  rt->worker_ref = LUA_NOREF;
  rt->loop = wf_loop_new(evl);
  rt->vals = wf_vals_new(vals_free_cb, rt);
  rt->sched = wf_lua_sched_new(rt);
  return rt;
}

wf_lua_rt_t *wf_lua_rt(lua_State *L) {
  wf_lua_rt_t *rt;
  lua_pushlightuserdata(L, &rt_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  rt = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return rt ? rt : rt_create(L, NULL);
}

wf_lua_rt_t *wf_lua_rt_attach(lua_State *L, struct ev_loop *evl) {
  wf_lua_rt_t *rt;
  lua_pushlightuserdata(L, &rt_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  rt = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (rt) return wf_loop_ev(rt->loop) == evl ? rt : NULL;
  return rt_create(L, evl);
}

int wf_lua_ref(wf_lua_rt_t *rt, lua_State *L) {
  int ref = luaL_ref(L, LUA_REGISTRYINDEX);
  /* nil takes no slot (LUA_REFNIL), and wf_lua_unref skips it: uncounted */
  if (ref != LUA_REFNIL) rt->nrefs++;
  return ref;
}

void wf_lua_unref(wf_lua_rt_t *rt, int ref) {
  if (ref == LUA_NOREF || ref == LUA_REFNIL) return;
  rt->nrefs--;
  luaL_unref(rt->aux, LUA_REGISTRYINDEX, ref);
}

/* The list a one-shot task is in: its owner's, or the unowned ones. */
static wf_task_t **oneshot_list(wf_task_t *t) {
  return t->kin ? &t->kin->kin : &t->rt->spawned;
}

/* Unlink one-shot task t from its list. */
static void oneshot_unlink(wf_task_t *t) {
  if (t->sprev) t->sprev->snext = t->snext;
  else *oneshot_list(t) = t->snext;
  if (t->snext) t->snext->sprev = t->sprev;
  t->sprev = t->snext = NULL;
}

/* Link one-shot task t into the list of owner (NULL: the unowned ones). */
static void oneshot_link(wf_task_t *t, wf_task_t *owner) {
  wf_task_t **head;
  t->kin = owner;
  head = oneshot_list(t);
  t->sprev = NULL;
  t->snext = *head;
  if (*head) (*head)->sprev = t;
  *head = t;
}

/* The invocation's task t ends: its weft.go tasks stop with it (stop: it
 * was aborted or failed) or go on owned by nobody (it completed). */
static void release_kin(wf_task_t *t, int stop) {
  wf_task_t *k;
  if (t->oneshot) return; /* a go task's kin is its owner */
  while ((k = t->kin)) {
    oneshot_unlink(k);
    oneshot_link(k, NULL); /* first: an abort may free it, or keep it */
    if (stop) wf_task_abort(k);
  }
}

/* Free a task's coroutine anchor and the task itself. */
static void task_free(wf_task_t *t) {
  wf_lua_rt_t *rt = t->rt;
  if (t->oneshot) oneshot_unlink(t);
  else release_kin(t, 1);
  wf_lua_unref(rt, t->co_ref);
  free(t);
}

void wf_lua_rt_on_close(wf_lua_rt_t *rt, wf_lua_hook_t *h) {
  wf_lua_hook_t **p = &rt->hooks;
  while (*p && (*p)->order <= h->order) p = &(*p)->next;
  h->next = *p;
  *p = h;
}

wf_lua_hook_t *wf_lua_rt_hook(wf_lua_rt_t *rt,
                              void (*fn)(wf_lua_rt_t *, wf_lua_hook_t *)) {
  wf_lua_hook_t *h = rt->hooks;
  while (h && h->fn != fn) h = h->next;
  return h;
}

/* Tear down at state close: close hooks, runs and graphs, then tasks,
 * scheduler, loop and values. Lua objects finalized later see
 * rt->closing. */
static void rt_close(wf_lua_rt_t *rt) {
  wf_task_t *t;
  wf_lua_hook_t *h;
  rt->closing = 1;
  while ((h = rt->hooks)) { /* a hook may free itself */
    rt->hooks = h->next;
    h->fn(rt, h);
  }
  wf_lua_sched_close(rt);
  while (rt->spawned) wf_task_abort(rt->spawned); /* weft.go tasks */
  while ((t = rt->pool)) {
    rt->pool = t->next;
    task_free(t);
  }
  wf_sched_free(rt->sched);
  rt->sched = NULL;
  wf_lua_unref(rt, rt->worker_ref);
  wf_lua_unref(rt, rt->vals_ref);
  rt->closing = 2;
  /* every anchor is released by now: what is left is a binding bug, and
   * the process must fail so the test that leaked it does */
  if (rt->nrefs != 1 && (getenv("WEFT_DEBUG_REFS") || WF_DEBUG_REFS)) {
    fprintf(stderr,
            "weft: %d registry reference(s) leaked at Lua state close "
            "(a wf_lua_ref without its wf_lua_unref); aborting "
            "(debug-refs check)\n",
            rt->nrefs - 1);
    fflush(stderr);
    abort();
  }
  wf_lua_unref(rt, rt->aux_ref);
  wf_vals_free(rt->vals);
  rt->vals = NULL;
  wf_loop_free(rt->loop);
  rt->loop = NULL;
}

wf_val_t wf_lua_val_put(wf_lua_rt_t *rt, lua_State *L, int idx) {
  wf_val_t h = wf_vals_alloc(rt->vals);
  if (idx < 0 && idx > LUA_REGISTRYINDEX) idx = lua_gettop(L) + idx + 1;
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->vals_ref);
  lua_pushvalue(L, idx);
  lua_rawseti(L, -2, (int)h);
  lua_pop(L, 1);
  return h;
}

void wf_lua_val_push(wf_lua_rt_t *rt, lua_State *L, wf_val_t h) {
  if (!h) {
    lua_pushnil(L);
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->vals_ref);
  lua_rawgeti(L, -1, (int)h);
  lua_remove(L, -2);
}

/* Resume-queue callback: the loop drained t's node. */
static void task_defer_cb(wf_defer_t *d) {
  wf_task_t *t = (wf_task_t *)((char *)d - offsetof(wf_task_t, defer));
  wf_task_resume(t);
}

wf_task_t *wf_task_get(wf_lua_rt_t *rt) {
  wf_task_t *t = rt->pool;
  if (t) {
    rt->pool = t->next;
    rt->npool--;
    t->next = NULL;
    return t;
  }
  t = calloc(1, sizeof(*t));
  if (!t) return NULL;
  t->rt = rt;
  t->co = lua_newthread(rt->aux);
  t->co_ref = wf_lua_ref(rt, rt->aux);
  t->defer.cb = task_defer_cb;
  ev_init(&t->timer, NULL);
  /* a fresh coroutine starts with the worker body on its stack */
  lua_rawgeti(t->co, LUA_REGISTRYINDEX, rt->worker_ref);
  return t;
}

wf_task_t *wf_task_spawn(wf_lua_rt_t *rt, lua_State *L, int nargs,
                         wf_task_t *owner) {
  wf_task_t *t = calloc(1, sizeof(*t));
  if (!t) return NULL;
  t->rt = rt;
  t->oneshot = 1;
  oneshot_link(t, owner);
  t->co = lua_newthread(L);
  t->co_ref = wf_lua_ref(rt, L);
  t->defer.cb = task_defer_cb;
  ev_init(&t->timer, NULL);
  lua_xmove(L, t->co, nargs + 1); /* the function and its arguments */
  t->nret = nargs; /* resumed with its arguments, the function below them */
  wf_loop_defer(rt->loop, &t->defer);
  return t;
}

/* Return a task that finished cleanly (suspended at DONE) to the pool. */
static void task_release(wf_task_t *t) {
  wf_lua_rt_t *rt = t->rt;
  t->run = NULL;
  t->done = NULL;
  t->cancel = NULL;
  t->prepare = NULL;
  t->wait = NULL;
  t->waiting = t->aborted = 0;
  if (t->oneshot || rt->npool >= WF_POOL_MAX || rt->closing) {
    task_free(t);
    return;
  }
  t->next = rt->pool;
  rt->pool = t;
  rt->npool++;
}

/* Stop t's timeout. An expired one-shot timer is no longer active but
 * still pending (its callback not run yet): ev_timer_stop clears both, so
 * the callback never sees a wait that ended another way. */
static inline void task_timer_stop(wf_task_t *t) {
  ev_timer_stop(wf_loop_ev(t->rt->loop), &t->timer);
}

/* Drop a task whose coroutine is unusable (died, aborted, yielded oddly):
 * what it still waits on is cancelled first (an event handler would
 * otherwise mark a freed task ready). */
static void task_discard(wf_task_t *t) {
  void (*cancel)(wf_task_t *) = t->cancel;
  t->cancel = NULL;
  if (cancel) cancel(t);
  t->prepare = NULL;
  t->wait = NULL;
  task_timer_stop(t);
  if (t->defer.queued) wf_loop_undefer(t->rt->loop, &t->defer);
  task_free(t);
}

/* Report the outcome of an invocation to the task's owner. */
static void task_finish(wf_task_t *t, int ok, const char *msg,
                        const char *tb, unsigned flags) {
  if (t->done) t->done(t, ok, msg, tb, flags);
}

/* Tell the watchdog what t runs: its invocation's executor and run ids
 * (both live as long as the invocation), or nothing (NULL t, a task of no
 * invocation). Only called when a watchdog exists. */
static void watch_task(wf_lua_rt_t *rt, wf_task_t *t) {
  const char *run = NULL, *exec = NULL;
  if (t && t->run) {
    wf_inv_t *inv = wf_run_inv(t->run, t->seq);
    run = wf_run_id(t->run);
    if (inv) exec = wf_run_graph(t->run)->execs[inv->exec].id;
  }
  wf_watchdog_set_current(rt->watchdog, run, exec);
}

void wf_task_resume(wf_task_t *t) {
  wf_lua_rt_t *rt = t->rt;
  lua_State *co = t->co;
  wf_task_t *prev = rt->current;
  int st, nargs = t->nret;
  /* the wait is over: stop its timeout, build the results here (never in
   * the event callback), forget the wait */
  task_timer_stop(t);
  if (t->prepare) nargs += t->prepare(t, co);
  t->prepare = NULL;
  t->cancel = NULL;
  t->wait = NULL;
  /* a fresh coroutine has the body below its arguments: resume it whole */
  t->nret = 0;
  t->waiting = 0;
  rt->current = t;
  if (rt->watchdog) watch_task(rt, t);
  st = lua_resume(co, nargs);
  rt->current = prev;
  if (rt->watchdog) watch_task(rt, prev);

  if (t->aborted) { /* cancelled from inside its own run: drop it now */
    task_discard(t);
    return;
  }
  if (st == LUA_YIELD) {
    if (lua_gettop(co) >= 1 && lua_touserdata(co, 1) == &done_key) {
      int ok = lua_toboolean(co, 2);
      const char *msg = NULL, *tb = NULL;
      unsigned flags = 0;
      if (!ok) {
        if (lua_istable(co, 3)) {
          /* {message, traceback, no_retry} (context.lua's on_error) */
          lua_getfield(co, 3, "message");
          lua_getfield(co, 3, "traceback");
          lua_getfield(co, 3, "no_retry");
          msg = lua_tostring(co, -3);
          tb = lua_tostring(co, -2);
          if (lua_toboolean(co, -1)) flags |= WF_INV_NO_RETRY;
        } else {
          msg = lua_tostring(co, 3);
        }
      }
      task_finish(t, ok, msg ? msg : (ok ? NULL : "error (no message)"), tb,
                  flags);
      lua_settop(co, 0);
      release_kin(t, !ok); /* a failed attempt's go tasks stop with it */
      task_release(t);
      return;
    }
    if (t->waiting) return; /* inside a primitive: the loop wakes it */
    lua_settop(co, 0);
    task_finish(t, 0,
                "the handler yielded outside a weft primitive "
                "(coroutine.yield is not allowed in executors; use weft.sleep "
                "and the other weft I/O functions)",
                NULL, 0);
    task_discard(t);
    return;
  }
  if (st == 0) {
    task_finish(t, 0, "the worker coroutine returned", NULL, 0);
  } else {
    const char *msg = lua_tostring(co, -1);
    luaL_traceback(rt->aux, co, msg ? msg : "error", 0);
    task_finish(t, 0, msg ? msg : "error", lua_tostring(rt->aux, -1), 0);
    lua_pop(rt->aux, 1);
  }
  task_discard(t);
}

void wf_task_ready(wf_task_t *t) {
  /* the wait is over: its timeout must not fire any more */
  task_timer_stop(t);
  if (t->main) {
    t->woken = 1;
    return;
  }
  wf_loop_defer(t->rt->loop, &t->defer);
}

void wf_task_abort(wf_task_t *t) {
  release_kin(t, 1); /* the go tasks of an aborted invocation stop now */
  if (t->cancel) t->cancel(t);
  t->cancel = NULL;
  t->prepare = NULL;
  t->wait = NULL;
  t->done = NULL;
  if (t->rt->current == t) { /* running right now: drop after it returns */
    t->aborted = 1;
    return;
  }
  task_discard(t);
}

wf_task_t *wf_task_owner(wf_lua_rt_t *rt, lua_State *L) {
  wf_task_t *t = wf_task_of(rt, L);
  if (!t || t->aborted) return NULL;
  if (t->oneshot) return t->kin;
  return t->run && !t->main ? t : NULL;
}

wf_task_t *wf_task_of(wf_lua_rt_t *rt, lua_State *L) {
  wf_task_t *t = rt->current;
  return (t && t->co == L) ? t : NULL;
}

int wf_task_aborted(wf_lua_rt_t *rt, lua_State *L) {
  wf_task_t *t = rt->current;
  return t && t->co == L && t->aborted;
}

int wf_task_refuse(lua_State *L, const char *fname) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: not started: the invocation was aborted", fname);
  lua_pushliteral(L, "cancelled");
  return 3;
}

wf_task_t *wf_task_check_blocking(wf_lua_rt_t *rt, lua_State *L,
                                  const char *fname) {
  wf_task_t *t = wf_task_of(rt, L);
  if (t) return t;
  /* first: a callback runs on weft's aux thread (or in a coroutine of its
   * own), which the check below would call unmanaged */
  if (rt->callback_depth > 0)
    luaL_error(L,
               "%s: cannot block inside a weft callback (on_event, a "
               "condition, a selector or a reducer)",
               fname);
  if (!lua_pushthread(L)) {
    lua_pop(L, 1);
    luaL_error(L,
               "%s: called from a coroutine weft does not manage (call it "
               "from an executor, or from the main thread)",
               fname);
    return NULL;
  }
  lua_pop(L, 1);
  return NULL;
}

wf_task_t *wf_task_waiter(wf_lua_rt_t *rt, lua_State *L, const char *fname,
                          wf_task_t *mw) {
  wf_task_t *t = wf_task_check_blocking(rt, L, fname);
  if (t) return t;
  memset(mw, 0, sizeof *mw);
  mw->rt = rt;
  mw->co = L;
  mw->main = 1;
  ev_init(&mw->timer, NULL);
  mw->co_ref = LUA_NOREF;
  return mw;
}

/* wf_lua_block condition of a main-thread waiter. */
static int waiter_woken(void *ud) { return ((wf_task_t *)ud)->woken; }

/* A C function doing nothing (see thread_reclaim). */
static int rt_noop(lua_State *L) {
  (void)L;
  return 0;
}

/* Make L LuaJIT's current thread again (g->cur_L) after the loop resumed
 * tasks (lua_resume) and ran hooks on the aux thread (lua_pcall) from a C
 * function running on L: each left cur_L on its own thread, and only a
 * normal return of that C function resets it. LuaJIT before 2.1 commit
 * e86990f7 (issue #1066; Debian 12 ships one) does not reset it when the C
 * function raises instead and a Lua pcall catches the error: the next
 * trace exit on L then restores its snapshot onto the stack of the stale
 * thread and crashes. Entering the VM on L (a call) sets cur_L to L. */
static void thread_reclaim(lua_State *L) {
  /* one closure kept in the registry: a wait allocates nothing for this */
  lua_getfield(L, LUA_REGISTRYINDEX, "weft.rt_noop");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushcfunction(L, rt_noop);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "weft.rt_noop");
  }
  lua_call(L, 0, 0);
}

int wf_task_suspend(wf_task_t *t, lua_State *L, const char *fname) {
  wf_lua_rt_t *rt = t->rt;
  int n = 0;
  if (!t->main) {
    if (t->aborted) { /* dropped at this yield: nothing would end the wait */
      void (*cancel)(wf_task_t *) = t->cancel;
      t->cancel = NULL;
      if (cancel) cancel(t);
      task_timer_stop(t);
      t->prepare = NULL;
      t->wait = NULL;
      return wf_task_refuse(L, fname);
    }
    t->waiting = 1;
    return lua_yield(L, 0);
  }
  if (wf_lua_block(rt, waiter_woken, t) != WF_OK) {
    task_timer_stop(t);
    if (t->cancel) t->cancel(t);
    thread_reclaim(L); /* before raising on L: see there */
    if (t->what)
      return luaL_error(L, "%s %s: nothing left to wait on (deadlock)", fname, t->what);
    return luaL_error(L, "%s: nothing left to wait on (deadlock)", fname);
  }
  thread_reclaim(L); /* a prepare or the caller may raise */
  /* the main thread's resume: the same steps as wf_task_resume's */
  task_timer_stop(t);
  if (t->prepare) n = t->prepare(t, L);
  t->prepare = NULL;
  t->cancel = NULL;
  t->wait = NULL;
  return n;
}

void wf_task_enlist(wf_task_t *t, void *what, void (*cancel)(wf_task_t *),
                    wf_task_t **list) {
  t->wait = what;
  t->cancel = cancel;
  t->next = *list;
  *list = t;
}

void wf_task_delist(wf_task_t *t, wf_task_t **list) {
  wf_task_t **p;
  for (p = list; *p; p = &(*p)->next)
    if (*p == t) {
      *p = t->next;
      break;
    }
  t->next = NULL;
}

int wf_task_prepare_bool(wf_task_t *t, lua_State *L) {
  lua_pushboolean(L, t->result);
  return 1;
}

void wf_task_timeout(wf_task_t *t, double seconds,
                     void (*cb)(struct ev_loop *, ev_timer *, int)) {
  struct ev_loop *evl = wf_loop_ev(t->rt->loop);
  ev_timer_init(&t->timer, cb, seconds, 0);
  t->timer.data = t;
  /* libev's cached time is that of the last loop iteration, which may be
   * long past after Lua work (a 0.1 s wait after 90 ms of work would end
   * at once): count from now */
  ev_now_update(evl);
  ev_timer_start(evl, &t->timer);
}

int wf_lua_block(wf_lua_rt_t *rt, int (*done)(void *ud), void *ud) {
  while (!done(ud))
    if (!wf_loop_step(rt->loop) && !done(ud)) return WF_ERR;
  return WF_OK;
}

void wf_lua_class(lua_State *L, const char *name, const luaL_Reg *methods,
                  lua_CFunction gc) {
  if (luaL_newmetatable(L, name)) {
    if (methods) {
      lua_newtable(L);
      luaL_register(L, NULL, methods);
      lua_setfield(L, -2, "__index");
    }
    if (gc) {
      lua_pushcfunction(L, gc);
      lua_setfield(L, -2, "__gc");
    }
  }
  lua_pop(L, 1);
}

int wf_lua_fail(lua_State *L, const char *msg, const char *code) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  if (!code) return 2;
  lua_pushstring(L, code);
  return 3;
}

/* The DONE sentinel pushed by the worker body when an invocation ends. */
void *wf_lua_done_sentinel(void) { return &done_key; }
