/* lua_run.c — runs as Lua userdata for "weft.core.sched": starting a run
 * of a graph with its Lua run table and options (limits, subscriber,
 * restore), waiting for it (yielding in a task, running the loop on the
 * main thread), its status, outputs and committed state, cancel, failure
 * from outside (a budget), the switch to a compatible graph (hot reload),
 * its end (after run_table:on_end) and release; the run limits' names and
 * defaults for Lua. Depends on lua.h, sched.h, lua_rt.h, lua_sched_int.h
 * (lua_graph.c, lua_snapshot.c). */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "lua_sched_int.h"

static const char *const run_status_names[] = {
    "pending", "running", "completed", "idle", "failed", "cancelled"};

/* Free lr's C run and drop its references (idempotent). */
void wf_lua_run_release(wf_lua_run_t *lr) {
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
  wf_lua_unref(rt, lr->id_ref);
  lr->table_ref = lr->on_event_ref = lr->id_ref = LUA_NOREF;
  wf_lua_graph_unref(lr->lg);
  lr->lg = NULL;
}

/* The run ended or went idle (and its on_end, if any, is done): mark it,
 * wake its waiters; a terminal run also drops its anchor and its
 * subscriber (an idle one keeps both: its tasks are suspended, and it
 * publishes again when answered). */
void wf_lua_run_ended(wf_lua_rt_t *rt, wf_lua_run_t *lr) {
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
    wf_task_ready(t);
  }
  if (lr->finished) {
    /* a terminal run publishes nothing more: its subscriber goes too (it
     * often holds what holds the run — the server's execution, the run
     * handle —, and the registry ref would keep that cycle forever) */
    wf_lua_unref(rt, lr->table_ref);
    wf_lua_unref(rt, lr->on_event_ref);
    wf_lua_unref(rt, lr->id_ref);
    lr->table_ref = lr->on_event_ref = lr->id_ref = LUA_NOREF;
  }
}

/* __gc of a run userdata. */
static int l_run_gc(lua_State *L) {
  wf_lua_run_t *lr = luaL_checkudata(L, 1, WF_LUA_RUN_MT);
  if (lr->run && !lr->rt->closing) wf_lua_run_release(lr);
  return 0;
}

/* Read opts.limits (table at idx, validated by weft.run) into lim: the
 * fields named by wf_run_limit_name; absent fields stay 0 (the default),
 * values past INT_MAX are clamped. */
static void read_limits(lua_State *L, int idx, wf_run_limits_t *lim) {
  int k, step;
  for (k = 0; k < WF_LIM__COUNT; k++)
    for (step = 0; step < 2; step++) {
      lua_Number v;
      lua_getfield(L, idx, wf_run_limit_name(k, step));
      v = lua_tonumber(L, -1);
      lua_pop(L, 1);
      (step ? lim->per_step : lim->per_inv)[k] =
          v >= (lua_Number)INT_MAX ? INT_MAX : v >= 1 ? (int)v : 0;
    }
}

/* Stack slots of run_new's options that stay while the run is made. */
enum { RUN_ID = 5, RUN_ON_EVENT, RUN_RESTORE, RUN_TOP = RUN_RESTORE };

/* Read run_new's options (the table at slot 4) into o: one pass over the
 * keys present (the common run gives none), so that an option costs
 * nothing when absent. id, on_event and restore are left in their slots
 * (id's string stays referenced while o is used). Raises on an unknown
 * key (run.lua is the only caller). */
static void read_run_opts(lua_State *L, wf_run_opts_t *o) {
  memset(o, 0, sizeof(*o));
  o->keep_events = 1;
  lua_settop(L, 4);
  lua_settop(L, RUN_TOP);
  if (lua_isnil(L, 4)) return; /* no options: every default */
  lua_pushnil(L);
  while (lua_next(L, 4)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    int v = lua_isnumber(L, -1) ? (int)lua_tointeger(L, -1) : 0;
    if (!strcmp(k, "id")) lua_replace(L, RUN_ID), lua_pushnil(L);
    else if (!strcmp(k, "on_event")) lua_replace(L, RUN_ON_EVENT), lua_pushnil(L);
    else if (!strcmp(k, "restore")) lua_replace(L, RUN_RESTORE), lua_pushnil(L);
    else if (!strcmp(k, "max_supersteps")) o->max_supersteps = v;
    else if (!strcmp(k, "max_concurrency")) o->max_concurrency = v;
    else if (!strcmp(k, "keep_events")) o->keep_events = v;
    else if (!strcmp(k, "durable")) o->durable = v;
    else if (!strcmp(k, "undelivered_error")) o->undelivered_error = v;
    else if (!strcmp(k, "limits")) {
      if (lua_istable(L, -1)) read_limits(L, lua_gettop(L), &o->limits);
    } else luaL_error(L, "run_new: unknown option '%s'", k);
    lua_pop(L, 1);
  }
  o->id = lua_tostring(L, RUN_ID);
  o->listen = lua_isfunction(L, RUN_ON_EVENT);
}

/* core.run_new(graph, run_table, input, opts|nil) -> run userdata, run id |
 * nil, err.
 * opts: {id, max_supersteps, max_concurrency, limits = {name = n},
 * keep_events, on_event, undelivered_error = 0|1}. The run starts from the
 * loop (never inside this call). */
static int l_run_new(lua_State *L) {
  wf_lua_graph_t *lg = wf_lua_graph_check(L, 1);
  wf_lua_rt_t *rt = lg->rt;
  wf_lua_run_t *lr;
  wf_run_opts_t o;
  wf_err_t err;
  wf_val_t in;
  luaL_checktype(L, 2, LUA_TTABLE);
  if (!lua_isnil(L, 4)) luaL_checktype(L, 4, LUA_TTABLE);
  read_run_opts(L, &o);
  if (o.listen) wf_lua_event_dispatcher(L, rt); /* may raise: first */

  lr = lua_newuserdata(L, sizeof(*lr));
  memset(lr, 0, sizeof(*lr));
  lr->table_ref = lr->on_event_ref = lr->id_ref = LUA_NOREF;
  luaL_getmetatable(L, WF_LUA_RUN_MT);
  lua_setmetatable(L, -2);
  o.host = lr;
  lr->run = wf_run_new(rt->sched, lg->g, &o, &err);
  if (!lr->run)
    return wf_lua_fail(L, err.msg, NULL);
  lr->rt = rt;
  lr->lg = lg;
  lg->refs++;
  lr->next = rt->runs;
  if (rt->runs) rt->runs->prev = lr;
  rt->runs = lr;
  if (lua_isfunction(L, RUN_ON_EVENT)) {
    lua_pushvalue(L, RUN_ON_EVENT);
    lr->on_event_ref = wf_lua_ref(rt, L);
  }
  lua_pushvalue(L, 2);
  lr->table_ref = wf_lua_ref(rt, L);
  if (lua_istable(L, RUN_RESTORE) &&
      wf_lua_snapshot_restore(L, lr, RUN_RESTORE, &err) != WF_OK) {
    wf_lua_run_release(lr);
    return wf_lua_fail(L, err.msg, NULL);
  }
  in = lua_isnil(L, 3) ? 0 : wf_lua_val_put(rt, L, 3);
  if (wf_run_start(lr->run, in, &err) != WF_OK) {
    wf_lua_run_release(lr);
    return wf_lua_fail(L, err.msg, NULL);
  }
  lua_pushstring(L, wf_run_id(lr->run));
  return 2;
}

/* Cancel callback of a task waiting for a run (abort, deadlock): leave the
 * waiter list (a waiter already woken by the end is no longer in it). */
static void wait_cancel(wf_task_t *t) {
  wf_lua_run_t *lr = t->wait;
  wf_task_delist(t, &lr->waiters);
}

/* core.run_wait(run): inside a task, yield until the run ends or goes
 * idle; on the main thread, run the loop until it does (raises naming the
 * run when nothing left could end it). */
static int l_run_wait(lua_State *L) {
  wf_lua_run_t *lr = wf_lua_run_check(L, 1);
  wf_task_t mw, *t;
  if (lr->finished || lr->idle) return 0;
  t = wf_task_waiter(lr->rt, L, "wait", &mw);
  if (t->main) t->what = wf_run_id(lr->run); /* the run outlives the wait */
  wf_task_enlist(t, lr, wait_cancel, &lr->waiters);
  return wf_task_suspend(t, L, "run");
}

/* core.run_info(run) -> status, error|nil, supersteps, duration_ms, id,
 * finished, idle */
static int l_run_info(lua_State *L) {
  wf_lua_run_t *lr = wf_lua_run_check(L, 1);
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
  wf_lua_run_t *lr = wf_lua_run_check(L, 1);
  lua_pushstring(L, run_status_names[wf_run_status(lr->run)]);
  return 1;
}

/* core.run_outputs(run[, from]) -> list of the outputs numbered from..the
 * last (from defaults to 1), and the number of outputs in all */
static int l_run_outputs(lua_State *L) {
  wf_lua_run_t *lr = wf_lua_run_check(L, 1);
  int n, i, from = (int)luaL_optinteger(L, 2, 1);
  const wf_val_t *v = wf_run_outputs(lr->run, &n);
  if (from < 1) from = 1;
  lua_createtable(L, n >= from ? n - from + 1 : 0, 0);
  for (i = from - 1; i < n; i++) {
    wf_lua_val_push(lr->rt, L, v[i]);
    lua_rawseti(L, -2, i - from + 2);
  }
  lua_pushinteger(L, n);
  return 2;
}

/* core.run_state(run) -> table of the committed shared state */
static int l_run_state(lua_State *L) {
  wf_lua_run_t *lr = wf_lua_run_check(L, 1);
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
  wf_lua_run_t *lr = wf_lua_run_check(L, 1);
  wf_run_cancel(lr->run);
  return 0;
}

/* core.run_fail(run, msg): end the run as failed with error msg (its
 * invocations aborted, workflow_failed event; a no-op once it ended). Safe
 * from any task, an invocation of the run included: that invocation's task
 * is dropped at its next yield and starts no wait meanwhile. */
static int l_run_fail(lua_State *L) {
  wf_lua_run_t *lr = wf_lua_run_check(L, 1);
  const char *msg = luaL_checkstring(L, 2);
  wf_run_fail(lr->run, msg);
  return 0;
}

/* core.end_done(run): the run's on_end is done; tell its end (if it has
 * not been answered and resumed meanwhile). */
static int l_end_done(lua_State *L) {
  wf_lua_run_t *lr = wf_lua_run_check(L, 1);
  if (!lr->ending) return 0;
  lr->ending = 0;
  wf_lua_run_ended(lr->rt, lr);
  return 0;
}

/* core.swap_graph(run, graph) -> true | nil, err: switch a run to a
 * compatible graph at a barrier (see wf_run_swap_graph). */
static int l_swap_graph(lua_State *L) {
  wf_lua_run_t *lr = wf_lua_run_check(L, 1);
  wf_lua_graph_t *lg = wf_lua_graph_check(L, 2);
  wf_err_t err;
  if (lg == lr->lg) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (wf_run_swap_graph(lr->run, lg->g, &err) != WF_OK)
    return wf_lua_fail(L, err.msg, NULL);
  lg->refs++;
  wf_lua_graph_unref(lr->lg);
  lr->lg = lg;
  lua_pushboolean(L, 1);
  return 1;
}

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

static const luaL_Reg run_fns[] = {
    {"run_new", l_run_new},       {"run_wait", l_run_wait},
    {"run_info", l_run_info},     {"run_status", l_run_status},
    {"run_outputs", l_run_outputs}, {"run_state", l_run_state},
    {"run_cancel", l_run_cancel}, {"run_fail", l_run_fail},
    {"end_done", l_end_done},
    {"swap_graph", l_swap_graph}, {NULL, NULL}};

/* Add the run functions, the run metatable, LIMITS and LIMIT_DEFAULTS to
 * the module table at the top of L. */
void wf_lua_run_open(lua_State *L) {
  if (luaL_newmetatable(L, WF_LUA_RUN_MT)) {
    lua_pushcfunction(L, l_run_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_register(L, NULL, run_fns);
  push_limits(L);
}
