/* lua_sched.c — Lua binding of the graph and scheduler (package
 * "weft.core.sched"): graph building and validation, runs as userdata with
 * their Lua run table, the hooks that run executor invocations in tasks and
 * call conditions, selectors, reducers and event subscribers, and the
 * primitives behind ctx (send, output, emit, log, state).
 * Lua API conventions: indices are 1-based on the Lua side, 0-based in C.
 * Expected failures return nil, err; misuse raises.
 * Depends on lua.h, sched.h, lua_rt.h. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_sched.h"

#define GRAPH_MT "weft.graph"
#define RUN_MT "weft.run"

/* A graph shared by the Lua workflow object and every run of it. */
typedef struct wf_lua_graph {
  wf_graph_t *g;
  wf_lua_rt_t *rt;
  int fns_ref;  /* {conds = {[e] = {[i] = fn}}, selects = {[e] = fn},
                   reducers = {[r] = fn}} (1-based) */
  int refs;     /* the userdata + one per run */
  struct wf_lua_graph **box; /* the userdata's pointer, cleared on free */
  struct wf_lua_graph *prev, *next;
} wf_lua_graph_t;

/* A run: the C run, its Lua run table and whoever waits for it. */
typedef struct wf_lua_run {
  wf_run_t *run;
  wf_lua_rt_t *rt;
  wf_lua_graph_t *lg;
  int table_ref;    /* the Lua run table, anchored while the run is active */
  int on_event_ref; /* subscriber or LUA_NOREF */
  int finished;      /* terminal */
  int idle;          /* paused on requests (cleared when one is answered) */
  int ending;        /* run_table:on_end() runs; the end is not told yet */
  wf_task_t *waiters;  /* tasks in core.run_wait */
  wf_task_t *asking;   /* tasks suspended in core.request_wait */
  struct wf_lua_run *prev, *next;
} wf_lua_run_t;

/* ---- graphs ------------------------------------------------------------ */

/* Drop one reference of lg; free it at zero. */
static void graph_unref(wf_lua_graph_t *lg) {
  if (--lg->refs > 0) return;
  if (lg->prev) lg->prev->next = lg->next;
  else if (lg->rt) lg->rt->graphs = lg->next;
  if (lg->next) lg->next->prev = lg->prev;
  wf_lua_unref(lg->rt, lg->fns_ref);
  if (lg->box) *lg->box = NULL;
  wf_graph_free(lg->g);
  free(lg);
}

/* The graph of userdata arg i. */
static wf_lua_graph_t *check_graph(lua_State *L, int i) {
  wf_lua_graph_t **p = luaL_checkudata(L, i, GRAPH_MT);
  if (!*p) luaL_argerror(L, i, "graph already freed");
  return *p;
}

/* core.graph_new(name) -> graph userdata. */
static int l_graph_new(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  wf_lua_rt_t *rt = wf_lua_rt(L);
  wf_lua_graph_t **p = lua_newuserdata(L, sizeof(*p));
  wf_lua_graph_t *lg = calloc(1, sizeof(*lg));
  *p = lg;
  luaL_getmetatable(L, GRAPH_MT);
  lua_setmetatable(L, -2);
  if (!lg) return luaL_error(L, "out of memory");
  lg->g = wf_graph_new(name);
  lg->g->host = lg;
  lg->rt = rt;
  lg->fns_ref = LUA_NOREF;
  lg->refs = 1;
  lg->box = p;
  lg->next = rt->graphs;
  if (rt->graphs) rt->graphs->prev = lg;
  rt->graphs = lg;
  return 1;
}

/* __gc of a graph userdata. */
static int l_graph_gc(lua_State *L) {
  wf_lua_graph_t **p = luaL_checkudata(L, 1, GRAPH_MT);
  wf_lua_graph_t *lg = *p;
  *p = NULL;
  if (lg) {
    lg->box = NULL;
    graph_unref(lg);
  }
  return 0;
}

/* core.graph_add_exec(g, id, kind, max_attempts, backoff, factor,
 * backoff_max, timeout, continue) -> index (1-based) | nil, err. */
static int l_graph_add_exec(lua_State *L) {
  wf_lua_graph_t *lg = check_graph(L, 1);
  const char *id = luaL_checkstring(L, 2);
  wf_exec_opts_t o;
  wf_err_t err;
  int i;
  wf_exec_opts_default(&o);
  o.kind = (wf_exec_kind_t)luaL_optinteger(L, 3, 0);
  o.max_attempts = (int)luaL_optinteger(L, 4, 1);
  o.backoff = luaL_optnumber(L, 5, 0);
  o.backoff_factor = luaL_optnumber(L, 6, 2);
  o.backoff_max = luaL_optnumber(L, 7, 30);
  o.timeout = luaL_optnumber(L, 8, 0);
  o.on_error_continue = lua_toboolean(L, 9);
  i = wf_graph_add_exec(lg->g, id, &o, &err);
  if (i < 0) {
    lua_pushnil(L);
    lua_pushstring(L, err.msg);
    return 2;
  }
  lua_pushinteger(L, i + 1);
  return 1;
}

/* core.graph_set_start(g, index) */
static int l_graph_set_start(lua_State *L) {
  wf_lua_graph_t *lg = check_graph(L, 1);
  int i = (int)luaL_checkinteger(L, 2) - 1;
  wf_err_t err;
  if (wf_graph_set_start(lg->g, i, &err) != WF_OK)
    return luaL_error(L, "%s", err.msg);
  return 0;
}

/* Read a Lua list of 1-based executor indices at idx into a new array. */
static int *int_list(lua_State *L, int idx, int *n) {
  int i, len = (int)lua_objlen(L, idx);
  int *v = malloc(sizeof(int) * (size_t)(len ? len : 1));
  for (i = 0; v && i < len; i++) {
    lua_rawgeti(L, idx, i + 1);
    v[i] = (int)lua_tointeger(L, -1) - 1;
    lua_pop(L, 1);
  }
  *n = len;
  return v;
}

/* core.graph_add_edge(g, kind, name|nil, {srcs}, {tgts}, {has_cond booleans}
 * | nil, default|nil, has_select) -> index (1-based) | nil, err. */
static int l_graph_add_edge(lua_State *L) {
  wf_lua_graph_t *lg = check_graph(L, 1);
  wf_edge_spec_t s;
  wf_err_t err;
  int *srcs, *tgts, e, i, n;
  unsigned char *conds = NULL;
  memset(&s, 0, sizeof(s));
  s.kind = (wf_edge_kind_t)luaL_checkinteger(L, 2);
  s.name = luaL_optstring(L, 3, NULL);
  luaL_checktype(L, 4, LUA_TTABLE);
  luaL_checktype(L, 5, LUA_TTABLE);
  s.dflt = (int)luaL_optinteger(L, 7, 0) - 1;
  s.has_select = lua_toboolean(L, 8);
  srcs = int_list(L, 4, &s.nsrc);
  tgts = int_list(L, 5, &s.ntgt);
  if (lua_istable(L, 6) && s.ntgt > 0) {
    conds = calloc((size_t)s.ntgt, 1);
    for (i = 0; conds && i < s.ntgt; i++) {
      lua_rawgeti(L, 6, i + 1);
      conds[i] = (unsigned char)lua_toboolean(L, -1);
      lua_pop(L, 1);
    }
  }
  s.srcs = srcs;
  s.tgts = tgts;
  s.has_cond = conds;
  e = (srcs && tgts) ? wf_graph_add_edge(lg->g, &s, &err) : WF_ERR;
  if (!srcs || !tgts) wf_err_set(&err, "out of memory");
  free(srcs);
  free(tgts);
  free(conds);
  if (e < 0) {
    lua_pushnil(L);
    lua_pushstring(L, err.msg);
    return 2;
  }
  n = e + 1;
  lua_pushinteger(L, n);
  return 1;
}

/* core.graph_add_reducer(g, key) -> reducer id (1-based). */
static int l_graph_add_reducer(lua_State *L) {
  wf_lua_graph_t *lg = check_graph(L, 1);
  const char *key = luaL_checkstring(L, 2);
  lua_pushinteger(L, wf_graph_add_reducer(lg->g, key) + 1);
  return 1;
}

/* core.graph_finalize(g, fns) -> true | nil, err. fns holds the Lua
 * functions the hooks call (see wf_lua_graph_t). */
static int l_graph_finalize(lua_State *L) {
  wf_lua_graph_t *lg = check_graph(L, 1);
  wf_err_t err;
  luaL_checktype(L, 2, LUA_TTABLE);
  if (wf_graph_finalize(lg->g, &err) != WF_OK) {
    lua_pushnil(L);
    lua_pushstring(L, err.msg);
    return 2;
  }
  lua_pushvalue(L, 2);
  lg->fns_ref = wf_lua_ref(lg->rt, L);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.graph_edge_label(g, edge) -> "a -> b" */
static int l_graph_edge_label(lua_State *L) {
  wf_lua_graph_t *lg = check_graph(L, 1);
  char buf[256];
  int e = (int)luaL_checkinteger(L, 2) - 1;
  luaL_argcheck(L, e >= 0 && e < lg->g->nedge, 2, "no such edge");
  lua_pushstring(L, wf_graph_edge_label(lg->g, e, buf, sizeof(buf)));
  return 1;
}

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

/* Error handler for protected calls: append a traceback. */
static int traceback_handler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
  return 1;
}

/* pcall on the aux thread: function and nargs args already pushed. On error
 * fills err with the message (first line kept whole, traceback dropped). */
static int aux_pcall(wf_lua_rt_t *rt, int nargs, int nres, wf_err_t *err) {
  lua_State *L = rt->aux;
  int base = lua_gettop(L) - nargs, st;
  lua_pushcfunction(L, traceback_handler);
  lua_insert(L, base);
  rt->callback_depth++;
  st = lua_pcall(L, nargs, nres, base);
  rt->callback_depth--;
  lua_remove(L, base);
  if (st != 0) {
    const char *m = lua_tostring(L, -1);
    const char *nl = m ? strstr(m, "\nstack traceback:") : NULL;
    if (nl)
      wf_err_set(err, "%.*s", (int)(nl - m), m);
    else
      wf_err_set(err, "%s", m ? m : "error");
    lua_pop(L, 1);
    return WF_ERR;
  }
  return WF_OK;
}

/* route hook: evaluate when(msg) of (edge, i). */
static int hook_cond(void *ud, const wf_graph_t *g, int edge, int i,
                     wf_val_t msg, int *out, wf_err_t *err) {
  wf_lua_rt_t *rt = ud;
  push_fn(rt, g, "conds", edge, i);
  wf_lua_val_push(rt, rt->aux, msg);
  if (aux_pcall(rt, 1, 1, err) != WF_OK) return WF_ERR;
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
  if (aux_pcall(rt, 2, 1, err) != WF_OK) return WF_ERR;
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

/* state hook: reducers[r](acc, val) -> new value. */
static int hook_reduce(void *ud, const wf_graph_t *g, int r, wf_val_t acc,
                       wf_val_t val, wf_val_t *out, wf_err_t *err) {
  wf_lua_rt_t *rt = ud;
  lua_State *L = rt->aux;
  push_fn(rt, g, "reducers", r, -1);
  wf_lua_val_push(rt, L, acc);
  wf_lua_val_push(rt, L, val);
  if (aux_pcall(rt, 2, 1, err) != WF_OK) return WF_ERR;
  *out = lua_isnil(L, -1) ? 0 : wf_lua_val_put(rt, L, -1);
  lua_pop(L, 1);
  return WF_OK;
}

/* task owner callback: the invocation's attempt ended. */
static void inv_task_done(wf_task_t *t, int ok, const char *msg,
                          const char *tb) {
  wf_inv_t *inv = wf_run_inv(t->run, t->seq);
  if (!inv) return;
  inv->host = NULL;
  wf_run_inv_done(t->run, inv, ok, msg, tb);
}

/* sched hook: run inv in a task: worker(run, seq, exec, superstep, attempt,
 * msg, order). */
static void hook_invoke(void *ud, wf_run_t *run, wf_inv_t *inv) {
  wf_lua_rt_t *rt = ud;
  wf_lua_run_t *lr = wf_run_host(run);
  wf_task_t *t = wf_task_get(rt);
  lua_State *co;
  if (!t) {
    wf_run_inv_done(run, inv, 0, "out of memory", NULL);
    return;
  }
  co = t->co;
  t->run = run;
  t->seq = inv->seq;
  t->done = inv_task_done;
  inv->host = t;
  lua_rawgeti(co, LUA_REGISTRYINDEX, lr->table_ref);
  lua_pushinteger(co, (lua_Integer)inv->seq);
  lua_pushinteger(co, inv->exec + 1);
  lua_pushinteger(co, wf_run_superstep(run));
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

static const char *const run_status_names[] = {
    "pending", "running", "completed", "idle", "failed", "cancelled"};

/* Set t[k] = v for a string v (skipped when NULL). */
static void set_str(lua_State *L, const char *k, const char *v) {
  if (!v) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

/* Set t[k] = integer. */
static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

/* Set t[k] = boolean. */
static void set_bool(lua_State *L, const char *k, int v) {
  lua_pushboolean(L, v);
  lua_setfield(L, -2, k);
}

/* Push the Lua table of event ev of run lr on L. */
static void push_event(lua_State *L, wf_lua_run_t *lr, const wf_event_t *ev) {
  wf_lua_rt_t *rt = lr->rt;
  const wf_graph_t *g = lr->lg->g;
  int i;
  lua_createtable(L, 0, 8);
  set_str(L, "type", wf_event_type_name(ev->type));
  set_str(L, "run_id", wf_run_id(lr->run));
  set_int(L, "superstep", ev->superstep);
  if (ev->exec >= 0 && ev->exec < g->nexec)
    set_str(L, "executor_id", g->execs[ev->exec].id);
  lua_pushnumber(L, ev->ts);
  lua_setfield(L, -2, "ts");
  switch (ev->type) {
  case WF_EV_WORKFLOW_STARTED:
    lua_createtable(L, 0, 1);
    set_str(L, "workflow", g->name);
    break;
  case WF_EV_EXECUTOR_INVOKED:
  case WF_EV_EXECUTOR_COMPLETED:
    lua_createtable(L, 0, 1);
    set_int(L, "attempt", ev->attempt);
    break;
  case WF_EV_EXECUTOR_FAILED:
    lua_createtable(L, 0, 6);
    set_str(L, "error", ev->str);
    set_str(L, "traceback", ev->str2);
    set_int(L, "attempt", ev->attempt);
    set_bool(L, "retrying", ev->flags & WF_EVF_RETRYING);
    set_bool(L, "continued", ev->flags & WF_EVF_CONTINUED);
    set_bool(L, "timed_out", ev->flags & WF_EVF_TIMEOUT);
    break;
  case WF_EV_LOG:
    lua_createtable(L, 0, 2);
    set_str(L, "level", ev->str2);
    set_str(L, "message", ev->str);
    break;
  case WF_EV_STATE_CONFLICT:
    lua_createtable(L, 0, 2);
    set_str(L, "key", ev->str);
    lua_createtable(L, ev->nints, 0);
    for (i = 0; i < ev->nints; i++) {
      int x = ev->ints[i];
      lua_pushstring(L, (x >= 0 && x < g->nexec) ? g->execs[x].id : "?");
      lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "writers");
    break;
  case WF_EV_WORKFLOW_FAILED:
    lua_createtable(L, 0, 1);
    set_str(L, "error", ev->str);
    break;
  case WF_EV_MESSAGE_UNDELIVERED: { /* exec = the sender, ints = the refusing
                                     edges, str2 = the target of a targeted
                                     send, data = the message */
      char label[256];
      lua_createtable(L, 0, 4);
      set_str(L, "from", g->execs[ev->exec].id);
      if (ev->str2) set_str(L, "target", ev->str2);
      lua_createtable(L, ev->nints, 0); /* data.edges: labels */
      for (i = 0; i < ev->nints; i++) {
        lua_pushstring(L, wf_graph_edge_label(g, ev->ints[i], label,
                                              sizeof label));
        lua_rawseti(L, -2, i + 1);
      }
      lua_setfield(L, -2, "edges");
      wf_lua_val_push(rt, L, ev->data);
      lua_setfield(L, -2, "message");
      break;
    }
  case WF_EV_CUSTOM:
  case WF_EV_AGENT_UPDATE:
  case WF_EV_REQUEST_INFO:
    set_str(L, "name", ev->str);
    wf_lua_val_push(rt, L, ev->data);
    break;
  default:
    wf_lua_val_push(rt, L, ev->data);
    break;
  }
  lua_setfield(L, -2, "data");
}

/* sched hook: deliver a published event to the run's subscriber. A failing
 * subscriber is reported on stderr and removed; the run goes on. */
static void hook_event(void *ud, wf_run_t *run, const wf_event_t *ev) {
  wf_lua_rt_t *rt = ud;
  wf_lua_run_t *lr = wf_run_host(run);
  wf_err_t err;
  if (!lr || lr->on_event_ref == LUA_NOREF) return;
  lua_rawgeti(rt->aux, LUA_REGISTRYINDEX, lr->on_event_ref);
  push_event(rt->aux, lr, ev);
  if (aux_pcall(rt, 1, 0, &err) != WF_OK) {
    fprintf(stderr, "weft: run %s: on_event subscriber failed (removed): %s\n",
            wf_run_id(run), err.msg);
    wf_lua_unref(rt, lr->on_event_ref);
    lr->on_event_ref = LUA_NOREF;
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
  if (!wf_task_spawn(rt, L, 1)) {
    lua_pop(L, 2);
    return WF_OK;
  }
  return WF_AGAIN;
}

/* The run ended or went idle (and its on_end, if any, is done): mark it,
 * wake its waiters; a terminal run also drops its anchor (an idle one
 * keeps it: its tasks are suspended). */
static void run_ended(wf_lua_rt_t *rt, wf_lua_run_t *lr) {
  wf_task_t *t;
  wf_run_status_t st = wf_run_status(lr->run);
  if (st == WF_RUN_IDLE) {
    lr->idle = 1;
  } else if (st == WF_RUN_COMPLETED || st == WF_RUN_FAILED ||
             st == WF_RUN_CANCELLED) {
    lr->finished = 1;
  } else {
    return; /* idle, then answered before this deferred call ran */
  }
  while ((t = lr->waiters)) {
    lr->waiters = t->next;
    t->next = NULL;
    t->cancel = NULL;
    t->wait = NULL;
    wf_task_wake(t, 0);
  }
  if (lr->finished) {
    wf_lua_unref(rt, lr->table_ref);
    lr->table_ref = LUA_NOREF;
  }
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
      if (wf_task_spawn(rt, L, 1)) {
        lr->ending = 1;
        return;
      }
    }
    lua_pop(L, 2);
  }
  run_ended(rt, lr);
}

wf_sched_t *wf_lua_sched_new(wf_lua_rt_t *rt) {
  wf_sched_hooks_t h;
  memset(&h, 0, sizeof(h));
  h.ud = rt;
  h.route.ud = rt;
  h.route.cond = hook_cond;
  h.route.select = hook_select;
  h.route.make_list = hook_make_list;
  h.reduce = hook_reduce;
  h.invoke = hook_invoke;
  h.abort = hook_abort;
  h.event = hook_event;
  h.finished = hook_finished;
  h.checkpoint = hook_checkpoint;
  return wf_sched_new(rt->loop, rt->vals, &h);
}

/* ---- runs --------------------------------------------------------------- */

/* Free lr's C run and drop its references (idempotent). */
static void run_release(wf_lua_run_t *lr) {
  wf_lua_rt_t *rt = lr->rt;
  if (!lr->run) return;
  wf_run_free(lr->run);
  lr->run = NULL;
  if (lr->prev) lr->prev->next = lr->next;
  else rt->runs = lr->next;
  if (lr->next) lr->next->prev = lr->prev;
  lr->prev = lr->next = NULL;
  wf_lua_unref(rt, lr->table_ref);
  wf_lua_unref(rt, lr->on_event_ref);
  lr->table_ref = lr->on_event_ref = LUA_NOREF;
  graph_unref(lr->lg);
  lr->lg = NULL;
}

void wf_lua_sched_close(wf_lua_rt_t *rt) {
  wf_lua_graph_t *lg;
  while (rt->runs) run_release(rt->runs);
  /* graphs still referenced by Lua objects are freed here; their userdata
   * finalizers then find a NULL pointer */
  while ((lg = rt->graphs)) {
    lg->refs = 1; /* the runs are gone; drop the userdata's share too */
    graph_unref(lg);
  }
}

/* The run of userdata arg i. */
static wf_lua_run_t *check_run(lua_State *L, int i) {
  wf_lua_run_t *lr = luaL_checkudata(L, i, RUN_MT);
  if (!lr->run) luaL_argerror(L, i, "run already freed");
  return lr;
}

/* __gc of a run userdata. */
static int l_run_gc(lua_State *L) {
  wf_lua_run_t *lr = luaL_checkudata(L, 1, RUN_MT);
  if (lr->run && !lr->rt->closing) run_release(lr);
  return 0;
}

/* Integer field k of table idx, or dflt. */
static int opt_int_field(lua_State *L, int idx, const char *k, int dflt) {
  int v = dflt;
  lua_getfield(L, idx, k);
  if (!lua_isnil(L, -1)) v = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

/* Integer field k of the table at idx minus 1 (Lua 1-based -> C), or
 * dflt. */
static int idx_field(lua_State *L, int idx, const char *k, int dflt) {
  int v = dflt;
  lua_getfield(L, idx, k);
  if (lua_isnumber(L, -1)) v = (int)lua_tointeger(L, -1) - 1;
  lua_pop(L, 1);
  return v;
}

/* Apply the restore table at idx {supersteps, pending = {{src, only, msg}},
 * fanin = {{edge, pos, msgs = {...}}}, state = {k = v}, outputs = {...}}
 * (1-based executor and edge indices) to a run not started yet. */
static int restore_run(lua_State *L, wf_lua_run_t *lr, int idx, wf_err_t *err) {
  wf_lua_rt_t *rt = lr->rt;
  int i, n, k, m;
  if (wf_run_restore(lr->run, opt_int_field(L, idx, "supersteps", 0), err) !=
      WF_OK)
    return WF_ERR;
  lua_getfield(L, idx, "pending");
  n = lua_istable(L, -1) ? (int)lua_objlen(L, -1) : 0;
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    int t = lua_gettop(L);
    int src = idx_field(L, t, "src", -1), only = idx_field(L, t, "only", -1);
    lua_getfield(L, t, "msg");
    wf_val_t v = lua_isnil(L, -1) ? 0 : wf_lua_val_put(rt, L, -1);
    lua_pop(L, 2);
    if (wf_run_restore_pending(lr->run, src, only, v, err) != WF_OK) {
      lua_pop(L, 1);
      return WF_ERR;
    }
  }
  lua_pop(L, 1);
  lua_getfield(L, idx, "fanin");
  n = lua_istable(L, -1) ? (int)lua_objlen(L, -1) : 0;
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    int t = lua_gettop(L);
    int e = idx_field(L, t, "edge", -1), pos = idx_field(L, t, "pos", -1);
    lua_getfield(L, t, "msgs");
    m = lua_istable(L, -1) ? (int)lua_objlen(L, -1) : 0;
    for (k = 1; k <= m; k++) {
      lua_rawgeti(L, -1, k);
      wf_val_t v = lua_isnil(L, -1) ? 0 : wf_lua_val_put(rt, L, -1);
      lua_pop(L, 1);
      if (wf_run_restore_fanin(lr->run, e, pos, v, err) != WF_OK) {
        lua_pop(L, 3);
        return WF_ERR;
      }
    }
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
  lua_getfield(L, idx, "state");
  if (lua_istable(L, -1)) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      if (lua_type(L, -2) == LUA_TSTRING) {
        wf_val_t v = wf_lua_val_put(rt, L, -1);
        wf_run_restore_state(lr->run, lua_tostring(L, -2), v, err);
      }
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  lua_getfield(L, idx, "outputs");
  n = lua_istable(L, -1) ? (int)lua_objlen(L, -1) : 0;
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    wf_val_t v = lua_isnil(L, -1) ? 0 : wf_lua_val_put(rt, L, -1);
    lua_pop(L, 1);
    wf_run_restore_output(lr->run, v, err);
  }
  lua_pop(L, 1);
  return WF_OK;
}

/* core.snapshot(run) -> {supersteps, superstep, outputs = n, pending =
 * {{src, only, msg}}, writes = {{key, value}}, fanin = {{edge, pos, msgs}}}
 * (1-based indices): what a checkpoint after the last commit holds. */
static int l_snapshot(lua_State *L) {
  wf_lua_run_t *lr = check_run(L, 1);
  wf_lua_rt_t *rt = lr->rt;
  const wf_graph_t *g = lr->lg->g;
  size_t n, i;
  int nout, e, k, j, m;
  const wf_pending_t *p = wf_run_pending(lr->run, &n);
  lua_createtable(L, 0, 6);
  set_int(L, "supersteps", wf_run_supersteps(lr->run));
  set_int(L, "superstep", wf_run_superstep(lr->run));
  wf_run_outputs(lr->run, &nout);
  set_int(L, "outputs", nout);
  lua_createtable(L, (int)n, 0);
  for (i = 0; i < n; i++) {
    lua_createtable(L, 0, 3);
    set_int(L, "src", p[i].src + 1);
    if (p[i].only >= 0) set_int(L, "only", p[i].only + 1);
    wf_lua_val_push(rt, L, p[i].msg);
    lua_setfield(L, -2, "msg");
    lua_rawseti(L, -2, (int)i + 1);
  }
  lua_setfield(L, -2, "pending");
  const wf_write_t *w = wf_run_writes(lr->run, &n);
  lua_createtable(L, (int)n, 0);
  for (i = 0; i < n; i++) {
    lua_createtable(L, 2, 0);
    lua_pushstring(L, w[i].key);
    lua_rawseti(L, -2, 1);
    wf_lua_val_push(rt, L, w[i].v);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, (int)i + 1);
  }
  lua_setfield(L, -2, "writes");
  lua_newtable(L);
  k = 0;
  for (e = 0; e < g->nedge; e++) {
    if (g->edges[e].kind != WF_EDGE_FANIN) continue;
    for (j = 0; j < g->edges[e].nsrc; j++) {
      const wf_val_t *v = wf_run_fanin(lr->run, e, j, &m);
      if (m == 0) continue;
      lua_createtable(L, 0, 3);
      set_int(L, "edge", e + 1);
      set_int(L, "pos", j + 1);
      lua_createtable(L, m, 0);
      for (int q = 0; q < m; q++) {
        wf_lua_val_push(rt, L, v[q]);
        lua_rawseti(L, -2, q + 1);
      }
      lua_setfield(L, -2, "msgs");
      lua_rawseti(L, -2, ++k);
    }
  }
  lua_setfield(L, -2, "fanin");
  return 1;
}

static int push_err(lua_State *L, const wf_err_t *err);

/* core.swap_graph(run, graph) -> true | nil, err: switch a run to a
 * compatible graph at a barrier (see wf_run_swap_graph). */
static int l_swap_graph(lua_State *L) {
  wf_lua_run_t *lr = check_run(L, 1);
  wf_lua_graph_t *lg = check_graph(L, 2);
  wf_err_t err;
  if (lg == lr->lg) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (wf_run_swap_graph(lr->run, lg->g, &err) != WF_OK) return push_err(L, &err);
  lg->refs++;
  graph_unref(lr->lg);
  lr->lg = lg;
  lua_pushboolean(L, 1);
  return 1;
}

/* core.remaining(run) -> invocations of the current superstep not finished
 * yet (the caller's own included while it runs). */
static int l_remaining(lua_State *L) {
  wf_lua_run_t *lr = check_run(L, 1);
  lua_pushinteger(L, wf_run_remaining(lr->run));
  return 1;
}

/* core.end_done(run): the run's on_end is done; tell its end (if it has
 * not been answered and resumed meanwhile). */
static int l_end_done(lua_State *L) {
  wf_lua_run_t *lr = check_run(L, 1);
  if (!lr->ending) return 0;
  lr->ending = 0;
  run_ended(lr->rt, lr);
  return 0;
}

/* core.checkpoint_done(run, ok, err): release a run held for its
 * checkpoint (a failure fails the run). */
static int l_checkpoint_done(lua_State *L) {
  wf_lua_run_t *lr = check_run(L, 1);
  wf_run_checkpoint_done(lr->run, lua_toboolean(L, 2), luaL_optstring(L, 3, NULL));
  return 0;
}

/* Read opts.limits (table at idx, validated by weft.run) into lim: the
 * fields named by wf_run_limit_name; absent fields stay 0 (the default),
 * values past INT_MAX are clamped. */
static void read_limits(lua_State *L, int idx, wf_run_limits_t *lim) {
  int k, step;
  lua_getfield(L, idx, "limits");
  if (lua_istable(L, -1)) {
    for (k = 0; k < WF_LIM__COUNT; k++)
      for (step = 0; step < 2; step++) {
        lua_Number v;
        lua_getfield(L, -1, wf_run_limit_name(k, step));
        v = lua_tonumber(L, -1);
        lua_pop(L, 1);
        (step ? lim->per_step : lim->per_inv)[k] =
            v >= (lua_Number)INT_MAX ? INT_MAX : v >= 1 ? (int)v : 0;
      }
  }
  lua_pop(L, 1);
}

/* core.run_new(graph, run_table, input, opts) -> run userdata | nil, err.
 * opts: {id, max_supersteps, max_concurrency, limits = {name = n},
 * keep_events, on_event, undelivered_error = 0|1}. The run starts from the
 * loop (never inside this call). */
static int l_run_new(lua_State *L) {
  wf_lua_graph_t *lg = check_graph(L, 1);
  wf_lua_rt_t *rt = lg->rt;
  wf_lua_run_t *lr;
  wf_run_opts_t o;
  wf_err_t err;
  wf_val_t in;
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 4, LUA_TTABLE);
  memset(&o, 0, sizeof(o));
  lua_getfield(L, 4, "id");
  o.id = lua_tostring(L, -1); /* stays on the stack while used */
  o.max_supersteps = opt_int_field(L, 4, "max_supersteps", 0);
  o.max_concurrency = opt_int_field(L, 4, "max_concurrency", 0);
  read_limits(L, 4, &o.limits);
  o.keep_events = opt_int_field(L, 4, "keep_events", 1);
  o.durable = opt_int_field(L, 4, "durable", 0);
  o.undelivered_error = opt_int_field(L, 4, "undelivered_error", 0);
  lua_getfield(L, 4, "on_event");

  lr = lua_newuserdata(L, sizeof(*lr));
  memset(lr, 0, sizeof(*lr));
  lr->table_ref = lr->on_event_ref = LUA_NOREF;
  luaL_getmetatable(L, RUN_MT);
  lua_setmetatable(L, -2);
  o.host = lr;
  lr->run = wf_run_new(rt->sched, lg->g, &o, &err);
  if (!lr->run) {
    lua_pushnil(L);
    lua_pushstring(L, err.msg);
    return 2;
  }
  lr->rt = rt;
  lr->lg = lg;
  lg->refs++;
  lr->next = rt->runs;
  if (rt->runs) rt->runs->prev = lr;
  rt->runs = lr;
  if (lua_isfunction(L, -2)) {
    lua_pushvalue(L, -2);
    lr->on_event_ref = wf_lua_ref(rt, L);
  }
  lua_pushvalue(L, 2);
  lr->table_ref = wf_lua_ref(rt, L);
  lua_getfield(L, 4, "restore");
  if (lua_istable(L, -1) && restore_run(L, lr, lua_gettop(L), &err) != WF_OK) {
    run_release(lr);
    lua_pushnil(L);
    lua_pushstring(L, err.msg);
    return 2;
  }
  lua_pop(L, 1);
  in = lua_isnil(L, 3) ? 0 : wf_lua_val_put(rt, L, 3);
  if (wf_run_start(lr->run, in, &err) != WF_OK) {
    run_release(lr);
    lua_pushnil(L);
    lua_pushstring(L, err.msg);
    return 2;
  }
  return 1;
}

/* Cancel callback of a task waiting for a run: leave the waiter list. */
static void wait_cancel(wf_task_t *t) {
  wf_lua_run_t *lr = t->wait;
  wf_task_t **p;
  for (p = &lr->waiters; *p; p = &(*p)->next)
    if (*p == t) {
      *p = t->next;
      break;
    }
  t->next = NULL;
}

/* core.run_wait(run): inside a task, yield until the run ends; on the main
 * thread, run the loop until it does. */
static int l_run_wait(lua_State *L) {
  wf_lua_run_t *lr = check_run(L, 1);
  wf_lua_rt_t *rt = lr->rt;
  wf_task_t *t;
  if (lr->finished || lr->idle) return 0;
  t = wf_task_check_blocking(rt, L, "wait");
  if (t) {
    t->wait = lr;
    t->cancel = wait_cancel;
    t->next = lr->waiters;
    lr->waiters = t;
    return wf_task_yield(t, L);
  }
  while (!lr->finished && !lr->idle) {
    if (!wf_loop_step(rt->loop) && !lr->finished && !lr->idle)
      return luaL_error(L, "run %s cannot progress: nothing left to wait on",
                        wf_run_id(lr->run));
  }
  return 0;
}

/* core.run_info(run) -> status, error|nil, supersteps, duration_ms, id,
 * finished, idle */
static int l_run_info(lua_State *L) {
  wf_lua_run_t *lr = check_run(L, 1);
  const char *e = wf_run_error(lr->run);
  lua_pushstring(L, run_status_names[wf_run_status(lr->run)]);
  if (e) lua_pushstring(L, e);
  else lua_pushnil(L);
  lua_pushinteger(L, wf_run_supersteps(lr->run));
  lua_pushnumber(L, wf_run_duration_ms(lr->run));
  lua_pushstring(L, wf_run_id(lr->run));
  lua_pushboolean(L, lr->finished);
  lua_pushboolean(L, lr->idle);
  return 7;
}

/* core.run_status(run) -> status string */
static int l_run_status(lua_State *L) {
  wf_lua_run_t *lr = check_run(L, 1);
  lua_pushstring(L, run_status_names[wf_run_status(lr->run)]);
  return 1;
}

/* core.run_outputs(run) -> list of outputs */
static int l_run_outputs(lua_State *L) {
  wf_lua_run_t *lr = check_run(L, 1);
  int n, i;
  const wf_val_t *v = wf_run_outputs(lr->run, &n);
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    wf_lua_val_push(lr->rt, L, v[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* core.run_events(run) -> list of event tables (from the kept log) */
static int l_run_events(lua_State *L) {
  wf_lua_run_t *lr = check_run(L, 1);
  size_t n, i;
  const wf_event_t *ev = wf_run_events(lr->run, &n);
  lua_createtable(L, (int)n, 0);
  for (i = 0; i < n; i++) {
    push_event(L, lr, &ev[i]);
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}

/* core.run_state(run) -> table of the committed shared state */
static int l_run_state(lua_State *L) {
  wf_lua_run_t *lr = check_run(L, 1);
  const wf_state_t *st = wf_run_state(lr->run);
  int n = wf_state_size(st), i;
  lua_createtable(L, 0, n);
  for (i = 0; i < n; i++) {
    wf_val_t v;
    const char *k = wf_state_key_at(st, i, &v);
    wf_lua_val_push(lr->rt, L, v);
    lua_setfield(L, -2, k);
  }
  return 1;
}

/* core.run_cancel(run) */
static int l_run_cancel(lua_State *L) {
  wf_lua_run_t *lr = check_run(L, 1);
  wf_run_cancel(lr->run);
  return 0;
}

/* ---- ctx primitives ----------------------------------------------------- */

/* Push nil, err.msg and return 2 (expected failure for the Lua wrapper). */
static int push_err(lua_State *L, const wf_err_t *err) {
  lua_pushnil(L);
  lua_pushstring(L, err->msg);
  return 2;
}

/* core.send(run, seq, msg, target) -> true | nil, err */
static int l_send(lua_State *L) {
  wf_lua_run_t *lr = check_run(L, 1);
  uint32_t seq = (uint32_t)luaL_checkinteger(L, 2);
  int target = (int)luaL_optinteger(L, 4, 0) - 1;
  wf_err_t err;
  wf_val_t h = lua_isnil(L, 3) ? 0 : wf_lua_val_put(lr->rt, L, 3);
  if (wf_run_send(lr->run, seq, h, target, &err) != WF_OK)
    return push_err(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.output(run, seq, value) -> true | nil, err */
static int l_output(lua_State *L) {
  wf_lua_run_t *lr = check_run(L, 1);
  uint32_t seq = (uint32_t)luaL_checkinteger(L, 2);
  wf_err_t err;
  wf_val_t h = lua_isnil(L, 3) ? 0 : wf_lua_val_put(lr->rt, L, 3);
  if (wf_run_output(lr->run, seq, h, &err) != WF_OK) return push_err(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.emit(run, seq, name, data) -> true | nil, err */
static int l_emit(lua_State *L) {
  wf_lua_run_t *lr = check_run(L, 1);
  uint32_t seq = (uint32_t)luaL_checkinteger(L, 2);
  const char *name = luaL_checkstring(L, 3);
  wf_err_t err;
  wf_val_t h = lua_isnil(L, 4) ? 0 : wf_lua_val_put(lr->rt, L, 4);
  if (wf_run_emit(lr->run, seq, name, h, &err) != WF_OK)
    return push_err(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.emit_live(run, seq, type, name, data) -> true | nil, err; type is
 * "agent_update" or "request_info". */
static int l_emit_live(lua_State *L) {
  wf_lua_run_t *lr = check_run(L, 1);
  uint32_t seq = (uint32_t)luaL_checkinteger(L, 2);
  const char *type = luaL_checkstring(L, 3);
  const char *name = luaL_optstring(L, 4, NULL);
  wf_err_t err;
  wf_val_t h;
  wf_ev_type_t ty;
  if (strcmp(type, "agent_update") == 0)
    ty = WF_EV_AGENT_UPDATE;
  else if (strcmp(type, "request_info") == 0)
    ty = WF_EV_REQUEST_INFO;
  else
    return luaL_argerror(L, 3, "live events are 'agent_update' or "
                               "'request_info'");
  h = lua_isnil(L, 5) ? 0 : wf_lua_val_put(lr->rt, L, 5);
  if (wf_run_emit_live(lr->run, seq, ty, name, h, &err) != WF_OK)
    return push_err(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.log(run, seq, level, message) -> true | nil, err */
static int l_log(lua_State *L) {
  wf_lua_run_t *lr = check_run(L, 1);
  uint32_t seq = (uint32_t)luaL_checkinteger(L, 2);
  const char *level = luaL_checkstring(L, 3);
  const char *msg = luaL_checkstring(L, 4);
  wf_err_t err;
  if (wf_run_log(lr->run, seq, level, msg, &err) != WF_OK)
    return push_err(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.set_state(run, seq, key, value) -> true | nil, err */
static int l_set_state(lua_State *L) {
  wf_lua_run_t *lr = check_run(L, 1);
  uint32_t seq = (uint32_t)luaL_checkinteger(L, 2);
  const char *key = luaL_checkstring(L, 3);
  wf_err_t err;
  wf_val_t h = lua_isnil(L, 4) ? 0 : wf_lua_val_put(lr->rt, L, 4);
  if (wf_run_set_state(lr->run, seq, key, h, &err) != WF_OK)
    return push_err(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.get_state(run, seq, key) -> value | nil */
static int l_get_state(lua_State *L) {
  wf_lua_run_t *lr = check_run(L, 1);
  uint32_t seq = (uint32_t)luaL_checkinteger(L, 2);
  const char *key = luaL_checkstring(L, 3);
  wf_lua_val_push(lr->rt, L, wf_run_get_state(lr->run, seq, key));
  return 1;
}

/* core.running(run, seq) -> boolean: is the invocation still running? */
static int l_running(lua_State *L) {
  wf_lua_run_t *lr = check_run(L, 1);
  uint32_t seq = (uint32_t)luaL_checkinteger(L, 2);
  lua_pushboolean(L, wf_run_inv(lr->run, seq) != NULL);
  return 1;
}

/* core.previous_errors(run, seq) -> {{message, traceback}, ...} */
static int l_previous_errors(lua_State *L) {
  wf_lua_run_t *lr = check_run(L, 1);
  uint32_t seq = (uint32_t)luaL_checkinteger(L, 2);
  wf_inv_t *inv = wf_run_inv(lr->run, seq);
  int i, n = inv ? inv->nerrors : 0;
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    lua_createtable(L, 0, 2);
    set_str(L, "message", inv->errors[i].message);
    set_str(L, "traceback", inv->errors[i].traceback);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* core.current() -> run_table, seq, executor_id, superstep, order (0-based
 * in the superstep), attempt of the invocation whose executor task is
 * calling, or nothing (weft.task maps go tasks to their parent in Lua). */
static int l_current(lua_State *L) {
  wf_lua_rt_t *rt = wf_lua_rt(L);
  wf_task_t *t = wf_task_of(rt, L);
  wf_lua_run_t *lr;
  wf_inv_t *inv;
  if (!t || !t->run || !(inv = wf_run_inv(t->run, t->seq))) return 0;
  lr = wf_run_host(t->run);
  if (!lr || lr->table_ref == LUA_NOREF) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, lr->table_ref);
  lua_pushinteger(L, (lua_Integer)t->seq);
  lua_pushstring(L, lr->lg->g->execs[inv->exec].id);
  lua_pushinteger(L, wf_run_superstep(t->run));
  lua_pushinteger(L, inv->order);
  lua_pushinteger(L, (lua_Integer)inv->attempt);
  return 6;
}

/* Cancel callback of a task suspended on a request: leave the list. */
static void asking_cancel(wf_task_t *t) {
  wf_lua_run_t *lr = t->wait;
  wf_task_t **p;
  for (p = &lr->asking; *p; p = &(*p)->next)
    if (*p == t) {
      *p = t->next;
      break;
    }
  t->next = NULL;
}

/* core.request_wait(run, seq) -> the answer: the calling executor's
 * invocation waits on a human (the run may go idle) until
 * core.request_answer. Only from the invocation's own task. */
static int l_request_wait(lua_State *L) {
  wf_lua_run_t *lr = check_run(L, 1);
  uint32_t seq = (uint32_t)luaL_checkinteger(L, 2);
  wf_task_t *t = wf_task_of(lr->rt, L);
  wf_err_t err;
  if (!t || t->run != lr->run || t->seq != seq)
    return luaL_error(L, "request_info must be called from the executor's "
                         "own handler (not from a weft.go task or a callback)");
  if (wf_run_inv_wait(lr->run, seq, &err) != WF_OK)
    return luaL_error(L, "%s", err.msg);
  lua_settop(L, 0);
  t->wait = lr;
  t->cancel = asking_cancel;
  t->next = lr->asking;
  lr->asking = t;
  return wf_task_yield(t, L);
}

/* core.request_answer(run, seq, value) -> true | nil, err: resume the
 * invocation waiting on a request with value. */
static int l_request_answer(lua_State *L) {
  wf_lua_run_t *lr = check_run(L, 1);
  uint32_t seq = (uint32_t)luaL_checkinteger(L, 2);
  wf_task_t **p, *t = NULL;
  wf_err_t err;
  luaL_checkany(L, 3);
  for (p = &lr->asking; *p; p = &(*p)->next)
    if ((*p)->seq == seq) {
      t = *p;
      break;
    }
  if (!t) {
    lua_pushnil(L);
    lua_pushfstring(L, "no invocation %d waits on a request", (int)seq);
    return 2;
  }
  if (wf_run_inv_unwait(lr->run, seq, &err) != WF_OK) return push_err(L, &err);
  *p = t->next;
  t->next = NULL;
  t->cancel = NULL;
  t->wait = NULL;
  lr->idle = 0;
  lua_pushvalue(L, 3);
  lua_xmove(L, t->co, 1);
  wf_task_wake(t, 1);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.set_worker(fn): the Lua body every task coroutine runs. */
static int l_set_worker(lua_State *L) {
  wf_lua_rt_t *rt = wf_lua_rt(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  wf_lua_unref(rt, rt->worker_ref);
  lua_pushvalue(L, 1);
  rt->worker_ref = wf_lua_ref(rt, L);
  return 0;
}

static const luaL_Reg sched_fns[] = {
    {"graph_new", l_graph_new},
    {"graph_add_exec", l_graph_add_exec},
    {"graph_set_start", l_graph_set_start},
    {"graph_add_edge", l_graph_add_edge},
    {"graph_add_reducer", l_graph_add_reducer},
    {"graph_finalize", l_graph_finalize},
    {"graph_edge_label", l_graph_edge_label},
    {"run_new", l_run_new},
    {"run_wait", l_run_wait},
    {"run_info", l_run_info},
    {"run_status", l_run_status},
    {"run_outputs", l_run_outputs},
    {"run_events", l_run_events},
    {"run_state", l_run_state},
    {"run_cancel", l_run_cancel},
    {"send", l_send},
    {"output", l_output},
    {"emit", l_emit},
    {"emit_live", l_emit_live},
    {"log", l_log},
    {"set_state", l_set_state},
    {"get_state", l_get_state},
    {"running", l_running},
    {"previous_errors", l_previous_errors},
    {"set_worker", l_set_worker},
    {"current", l_current},
    {"request_wait", l_request_wait},
    {"snapshot", l_snapshot},
    {"checkpoint_done", l_checkpoint_done},
    {"end_done", l_end_done},
    {"remaining", l_remaining},
    {"swap_graph", l_swap_graph},
    {"request_answer", l_request_answer},
    {NULL, NULL}};

/* Set LIMITS = {names in order} and LIMIT_DEFAULTS = {name = default} on
 * the module table at the top of L. */
static void push_limits(lua_State *L) {
  int k, step, i = 0;
  lua_newtable(L); /* LIMITS */
  lua_newtable(L); /* LIMIT_DEFAULTS */
  for (k = 0; k < WF_LIM__COUNT; k++)
    for (step = 0; step < 2; step++) {
      const char *name = wf_run_limit_name(k, step);
      lua_pushstring(L, name);
      lua_rawseti(L, -3, ++i);
      lua_pushinteger(L, step ? WF_LIMIT_PER_STEP_DEFAULT
                              : WF_LIMIT_PER_INV_DEFAULT);
      lua_setfield(L, -2, name);
    }
  lua_setfield(L, -3, "LIMIT_DEFAULTS");
  lua_setfield(L, -2, "LIMITS");
}

int wf_lua_open_sched(lua_State *L) {
  wf_lua_rt(L);
  if (luaL_newmetatable(L, GRAPH_MT)) {
    lua_pushcfunction(L, l_graph_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, RUN_MT)) {
    lua_pushcfunction(L, l_run_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_newtable(L);
  luaL_register(L, NULL, sched_fns);
  lua_pushlightuserdata(L, wf_lua_done_sentinel());
  lua_setfield(L, -2, "DONE");
  push_limits(L);
  return 1;
}
