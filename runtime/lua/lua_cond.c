/* lua_cond.c — conditions (weft.core.loop.cond): cond:wait([timeout])
 * suspends the caller until cond:signal() (true) or the timeout (false);
 * tasks and the main thread wait the same way (wf_task_waiter). Depends on
 * lua.h, lua_rt.h, lua_loop.h. */
#include "lua_loop.h"
#include "lua_rt.h"

#define COND_MT "weft.cond"

typedef struct wf_cond {
  wf_task_t *waiters; /* linked by t->next */
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

/* Take t out of c's waiter list (releasing c's anchor with the last); t
 * no longer holds anything, so it needs no cancel any more. */
static void cond_unlink(wf_cond_t *c, wf_task_t *t) {
  wf_task_delist(t, &c->waiters);
  t->cancel = NULL;
  t->wait = NULL;
  cond_release(t->rt, c);
}

/* Cancel callback of a waiter (abort, executor timeout, deadlock). */
static void cond_cancel(wf_task_t *t) { cond_unlink(t->wait, t); }

/* Timeout of a waiter: it is ready with false. */
static void cond_timer_cb(struct ev_loop *evl, ev_timer *w, int revents) {
  wf_task_t *t = w->data;
  (void)evl;
  (void)revents;
  cond_unlink(t->wait, t);
  t->result = 0;
  wf_task_ready(t);
}

/* weft.core.loop.cond() -> a condition object. */
static int l_cond(lua_State *L) {
  wf_cond_t *c = lua_newuserdata(L, sizeof(*c));
  c->waiters = NULL;
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
  wf_task_t mw, *t = wf_task_waiter(rt, L, "cond:wait", &mw);
  lua_settop(L, 1);
  if (c->ref == LUA_NOREF) c->ref = wf_lua_ref(rt, L); /* pops c */
  lua_settop(L, 0);
  wf_task_enlist(t, c, cond_cancel, &c->waiters);
  t->prepare = wf_task_prepare_bool;
  if (timeout >= 0) wf_task_timeout(t, timeout, cond_timer_cb);
  return wf_task_suspend(t, L, "cond:wait");
}

/* cond:signal() -> number of waiters woken (each resumes with true). */
static int l_cond_signal(lua_State *L) {
  wf_cond_t *c = luaL_checkudata(L, 1, COND_MT);
  wf_lua_rt_t *rt = wf_lua_rt(L);
  wf_task_t *t;
  int n = 0;
  while ((t = c->waiters)) {
    c->waiters = t->next;
    t->next = NULL;
    t->cancel = NULL;
    t->wait = NULL;
    t->result = 1;
    wf_task_ready(t);
    n++;
  }
  cond_release(rt, c);
  lua_pushinteger(L, n);
  return 1;
}

void wf_lua_loop_cond(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"wait", l_cond_wait}, {"signal", l_cond_signal}, {NULL, NULL}};
  wf_lua_class(L, COND_MT, methods, NULL);
  lua_pushcfunction(L, l_cond);
  lua_setfield(L, -2, "cond");
}
