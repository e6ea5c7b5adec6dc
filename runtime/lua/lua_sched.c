/* lua_sched.c — the binding of the scheduler (sched.c) and the opener of
 * the Lua module "weft.core.sched". Provides the runtime's scheduler with
 * the hooks that call into Lua: edge conditions, fan-out selectors, fan-in
 * lists and reducers (called on the aux thread, protected, errors with the
 * first line of the message), executor invocations run in pooled tasks,
 * aborts, event subscribers, durable checkpoints and run ends (run_table
 * methods run in tasks); frees the runs and graphs left when the state
 * closes. The module's functions come from the files listed in
 * lua_sched_int.h; the hot hooks (invoke, cond, select, reduce) stay here
 * together. Depends on lua.h, sched.h, lua_rt.h, lua_sched.h,
 * lua_sched_int.h. */
#include <stdio.h>
#include <string.h>

#include "lua_core.h"
#include "lua_sched.h"
#include "lua_sched_int.h"

/* ---- hooks: calling Lua from the scheduler ------------------------------ */

/* Push fns[field][a][b] (b < 0: fns[field][a]) on the aux thread. */
static void push_fn(wf_lua_rt_t *rt, const wf_graph_t *g, const char *field,
                    int a, int b) {
  lua_State *L = rt->aux;
  wf_lua_graph_t *lg = g->host;
  lua_rawgeti(L, LUA_REGISTRYINDEX, lg->fns_ref);
  lua_getfield(L, -1, field);
  lua_remove(L, -2);
  if (lua_istable(L, -1)) {
    lua_rawgeti(L, -1, a + 1);
    lua_remove(L, -2);
  }
  if (b >= 0 && lua_istable(L, -1)) {
    lua_rawgeti(L, -1, b + 1);
    lua_remove(L, -2);
  }
}

/* The aux thread's stack slot of traceback_handler (see aux_pcall). */
#define AUX_HANDLER 1

/* Error handler for protected calls: append a traceback. */
static int traceback_handler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
  return 1;
}

/* pcall on the aux thread: function and nargs args already pushed. On error
 * fills err with the message (first line kept whole, traceback dropped). */
int wf_lua_aux_pcall(wf_lua_rt_t *rt, int nargs, int nres, wf_err_t *err) {
  lua_State *L = rt->aux;
  int st, h = AUX_HANDLER;
  /* the handler is the first slot of the aux thread's stack, pushed once
   * (wf_lua_sched_new): no closure, registry lookup or stack shuffle per
   * condition, selector, reducer and subscriber call. Inside a callback
   * (a subscriber cancelling another run, say), a C function's frame is
   * on the aux thread and stack indices count from its base: the handler
   * goes below the function then */
  if (rt->callback_depth > 0) {
    lua_pushcfunction(L, traceback_handler);
    lua_insert(L, -nargs - 2);
    h = lua_gettop(L) - nargs - 1;
  }
  rt->callback_depth++;
  st = lua_pcall(L, nargs, nres, h);
  rt->callback_depth--;
  if (st != 0) {
    const char *m = lua_tostring(L, -1);
    const char *nl = m ? strstr(m, "\nstack traceback:") : NULL;
    if (nl)
      wf_err_set(err, "%.*s", (int)(nl - m), m);
    else
      wf_err_set(err, "%s", m ? m : "error");
    lua_pop(L, 1);
  }
  if (h != AUX_HANDLER) lua_remove(L, h);
  return st ? WF_ERR : WF_OK;
}

/* route hook: evaluate when(msg) of (edge, i). */
static int hook_cond(void *ud, const wf_graph_t *g, int edge, int i,
                     wf_val_t msg, int *out, wf_err_t *err) {
  wf_lua_rt_t *rt = ud;
  push_fn(rt, g, "conds", edge, i);
  wf_lua_val_push(rt, rt->aux, msg);
  if (wf_lua_aux_pcall(rt, 1, 1, err) != WF_OK) return WF_ERR;
  *out = lua_toboolean(rt->aux, -1);
  lua_pop(rt->aux, 1);
  return WF_OK;
}

/* route hook: select(msg, n) -> list of 1-based indices. */
static int hook_select(void *ud, const wf_graph_t *g, int edge, wf_val_t msg,
                       int *out, int *nout, wf_err_t *err) {
  wf_lua_rt_t *rt = ud;
  lua_State *L = rt->aux;
  int n = g->edges[edge].ntgt, i, len;
  push_fn(rt, g, "selects", edge, -1);
  wf_lua_val_push(rt, L, msg);
  lua_pushinteger(L, n);
  if (wf_lua_aux_pcall(rt, 2, 1, err) != WF_OK) return WF_ERR;
  if (!lua_istable(L, -1)) {
    wf_err_set(err, "selector must return a list of indices, got %s",
               luaL_typename(L, -1));
    lua_pop(L, 1);
    return WF_ERR;
  }
  len = (int)lua_objlen(L, -1);
  if (len > n) {
    lua_pop(L, 1);
    return wf_err_set(err, "selector returned %d indices for %d targets", len,
                      n);
  }
  for (i = 0; i < len; i++) {
    lua_Number x;
    lua_rawgeti(L, -1, i + 1);
    x = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (x != (int)x || x < 1 || x > n) {
      lua_pop(L, 1);
      return wf_err_set(err,
                        "selector returned invalid index %g (targets are 1..%d)",
                        x, n);
    }
    out[i] = (int)x - 1;
  }
  *nout = len;
  lua_pop(L, 1);
  return WF_OK;
}

/* route hook: a list value of n values (fan-in delivery). */
static wf_val_t hook_make_list(void *ud, const wf_val_t *vals, int n) {
  wf_lua_rt_t *rt = ud;
  lua_State *L = rt->aux;
  wf_val_t h;
  int i;
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    wf_lua_val_push(rt, L, vals[i]);
    lua_rawseti(L, -2, i + 1);
  }
  h = wf_lua_val_put(rt, L, -1);
  lua_pop(L, 1);
  return h;
}

/* state hook: reducers[r](acc, val, fresh) -> new value (fresh: acc is
 * this reducer's own output earlier in the commit, free to update). */
static int hook_reduce(void *ud, const wf_graph_t *g, int r, wf_val_t acc,
                       int acc_fresh, wf_val_t val, wf_val_t *out,
                       wf_err_t *err) {
  wf_lua_rt_t *rt = ud;
  lua_State *L = rt->aux;
  push_fn(rt, g, "reducers", r, -1);
  wf_lua_val_push(rt, L, acc);
  wf_lua_val_push(rt, L, val);
  lua_pushboolean(L, acc_fresh);
  if (wf_lua_aux_pcall(rt, 3, 1, err) != WF_OK) return WF_ERR;
  *out = lua_isnil(L, -1) ? 0 : wf_lua_val_put(rt, L, -1);
  lua_pop(L, 1);
  return WF_OK;
}

/* task owner callback: the invocation's attempt ended (flags: a failure's
 * WF_INV_NO_RETRY, from the error table's no_retry). */
static void inv_task_done(wf_task_t *t, int ok, const char *msg,
                          const char *tb, unsigned flags) {
  wf_inv_t *inv = wf_run_inv(t->run, t->seq);
  if (!inv) return;
  inv->host = NULL;
  wf_run_inv_done(t->run, inv, ok, msg, tb, flags);
}

/* sched hook: run inv in a task: worker(run, seq, exec, superstep, attempt,
 * msg, order). */
static void hook_invoke(void *ud, wf_run_t *run, wf_inv_t *inv) {
  wf_lua_rt_t *rt = ud;
  wf_lua_run_t *lr = wf_run_host(run);
  wf_task_t *t = wf_task_get(rt);
  lua_State *co;
  if (!t) {
    wf_run_inv_done(run, inv, 0, "out of memory", NULL, 0);
    return;
  }
  co = t->co;
  t->run = run;
  t->seq = inv->seq;
  t->exec = inv->exec;
  t->superstep = wf_run_superstep(run);
  t->order = inv->order;
  t->attempt = inv->attempt;
  t->done = inv_task_done;
  inv->host = t;
  lua_rawgeti(co, LUA_REGISTRYINDEX, lr->table_ref);
  lua_pushinteger(co, (lua_Integer)inv->seq);
  lua_pushinteger(co, inv->exec + 1);
  lua_pushinteger(co, t->superstep);
  lua_pushinteger(co, (lua_Integer)inv->attempt);
  wf_lua_val_push(rt, co, inv->msg);
  lua_pushinteger(co, inv->order);
  t->nret = 7;
  wf_task_resume(t);
}

/* sched hook: stop a running invocation. */
static void hook_abort(void *ud, wf_run_t *run, wf_inv_t *inv) {
  wf_task_t *t = inv->host;
  (void)ud;
  (void)run;
  inv->host = NULL;
  if (t) wf_task_abort(t);
}

/* sched hook: deliver a batch of published events to the run's
 * subscriber. A failing subscriber is reported on stderr and removed; the
 * run goes on. */
static void hook_events(void *ud, wf_run_t *run, const wf_event_t *evs,
                        size_t n) {
  wf_lua_rt_t *rt = ud;
  wf_lua_run_t *lr = wf_run_host(run);
  wf_err_t err;
  if (!lr || lr->on_event_ref == LUA_NOREF) return;
  if (wf_lua_event_deliver(rt, lr, evs, n, &err) != WF_OK) {
    fprintf(stderr, "weft: run %s: on_event subscriber failed (removed): %s\n",
            wf_run_id(run), err.msg);
    wf_lua_unref(rt, lr->on_event_ref);
    lr->on_event_ref = LUA_NOREF;
    wf_run_listen(run, 0);
  }
}

/* sched hook (durable runs): write the checkpoint of the last commit from
 * a task running run_table:checkpoint(); the run waits for
 * core.checkpoint_done. */
static int hook_checkpoint(void *ud, wf_run_t *run) {
  wf_lua_rt_t *rt = ud;
  wf_lua_run_t *lr = wf_run_host(run);
  lua_State *L = rt->aux;
  if (!lr || lr->table_ref == LUA_NOREF) return WF_OK;
  lua_rawgeti(L, LUA_REGISTRYINDEX, lr->table_ref);
  lua_getfield(L, -1, "checkpoint");
  if (!lua_isfunction(L, -1)) {
    lua_pop(L, 2);
    return WF_OK;
  }
  lua_insert(L, -2); /* fn, run_table */
  if (!wf_task_spawn(rt, L, 1, NULL)) {
    lua_pop(L, 2);
    return WF_OK;
  }
  return WF_AGAIN;
}

/* sched hook: the run ended or went idle. A run table with an on_end
 * method (durable runs: the final record, the lease) has it run in a task
 * first; the run counts as ended (result, wait) when it calls
 * core.end_done, so a host that polls sees the record written. */
static void hook_finished(void *ud, wf_run_t *run) {
  wf_lua_rt_t *rt = ud;
  wf_lua_run_t *lr = wf_run_host(run);
  lua_State *L = rt->aux;
  if (!lr || lr->ending) return;
  if (lr->table_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, lr->table_ref);
    lua_getfield(L, -1, "on_end");
    if (lua_isfunction(L, -1)) {
      lua_insert(L, -2); /* fn, run_table */
      if (wf_task_spawn(rt, L, 1, NULL)) {
        lr->ending = 1;
        return;
      }
    }
    lua_pop(L, 2);
  }
  wf_lua_run_ended(rt, lr);
}

/* The scheduler of rt, with the hooks above. */
wf_sched_t *wf_lua_sched_new(wf_lua_rt_t *rt) {
  wf_sched_hooks_t h;
  /* the error handler of aux_pcall, at the bottom of the (new, empty) aux
   * thread's stack for good: every user of the aux thread pops what it
   * pushes */
  lua_settop(rt->aux, 0);
  lua_pushcfunction(rt->aux, traceback_handler);
  memset(&h, 0, sizeof(h));
  h.ud = rt;
  h.route.ud = rt;
  h.route.cond = hook_cond;
  h.route.select = hook_select;
  h.route.make_list = hook_make_list;
  h.reduce = hook_reduce;
  h.invoke = hook_invoke;
  h.abort = hook_abort;
  h.events = hook_events;
  h.finished = hook_finished;
  h.checkpoint = hook_checkpoint;
  return wf_sched_new(rt->loop, rt->vals, &h);
}

/* Free every run and graph still alive (the Lua state is closing). */
void wf_lua_sched_close(wf_lua_rt_t *rt) {
  wf_lua_graph_t *lg;
  while (rt->runs) wf_lua_run_release(rt->runs);
  /* graphs still referenced by Lua objects are freed here; their userdata
   * finalizers then find a NULL pointer */
  while ((lg = rt->graphs)) {
    lg->refs = 1; /* the runs are gone; drop the userdata's share too */
    wf_lua_graph_unref(lg);
  }
}

/* The module "weft.core.sched": every concept file's functions, the DONE
 * sentinel and the run limits (names, defaults). */
int wf_lua_open_sched(lua_State *L) {
  wf_lua_rt(L);
  lua_newtable(L);
  wf_lua_graph_open(L);
  wf_lua_run_open(L);
  wf_lua_event_open(L);
  wf_lua_snapshot_open(L);
  wf_lua_ctx_open(L);
  wf_lua_requests_open(L);
  lua_pushlightuserdata(L, wf_lua_done_sentinel());
  lua_setfield(L, -2, "DONE");
  return 1;
}
