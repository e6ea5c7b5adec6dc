/* lua_event.c — event records (event.c) as Lua tables for
 * "weft.core.sched": the table given to subscribers and kept in a run's log
 * ({type, run_id, superstep, executor_id, ts, data}, with data shaped per
 * event type), core.run_events, and the delivery of batches of events to a
 * run's subscriber: one call into weft.events' dispatcher per batch, which
 * reads the records through the FFI and builds the common tables in
 * compiled Lua (the others through event_table below). Depends on lua.h,
 * event.h (through sched.h), lua_rt.h, lua_sched_int.h. */
#include <stddef.h>
#include <string.h>

#include "lua_sched_int.h"

/* The keys of event tables, then the event type names, then the graph's
 * executor ids: the strings of a graph's strs table, by index. Pushing a
 * string from it is an array read; lua_setfield/lua_pushstring intern their
 * string at every call (they were 3/4 of a subscriber's cost). */
enum {
  K_TYPE = 1, K_RUN_ID, K_SUPERSTEP, K_EXECUTOR_ID, K_TS, K_DATA, K_ATTEMPT,
  K_WORKFLOW, K_ERROR, K_TRACEBACK, K_RETRYING, K_CONTINUED, K_TIMED_OUT,
  K_LEVEL, K_MESSAGE, K_KEY, K_WRITERS, K_FROM, K_TARGET, K_EDGES, K_NAME,
  K_TYPES /* type names from here, executor ids after them */
};
static const char *const key_names[] = {
  NULL, "type", "run_id", "superstep", "executor_id", "ts", "data",
  "attempt", "workflow", "error", "traceback", "retrying", "continued",
  "timed_out", "level", "message", "key", "writers", "from", "target",
  "edges", "name"};
#define K_EXEC (K_TYPES + WF_EV__COUNT)

/* Push the strs table of graph lg (made at the first call) on L. */
static void push_strs(lua_State *L, wf_lua_graph_t *lg) {
  const wf_graph_t *g = lg->g;
  int i;
  if (lg->strs_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, lg->strs_ref);
    return;
  }
  lua_createtable(L, K_EXEC + g->nexec, 0);
  for (i = 1; i < K_TYPES; i++) {
    lua_pushstring(L, key_names[i]);
    lua_rawseti(L, -2, i);
  }
  for (i = 0; i < WF_EV__COUNT; i++) {
    lua_pushstring(L, wf_event_type_name(i));
    lua_rawseti(L, -2, K_TYPES + i);
  }
  for (i = 0; i < g->nexec; i++) {
    lua_pushstring(L, g->execs[i].id);
    lua_rawseti(L, -2, K_EXEC + i);
  }
  lua_pushvalue(L, -1);
  lg->strs_ref = wf_lua_ref(lg->rt, L);
}

/* Push key strs[k] (strs at index s): the value and lua_rawset(L, -3)
 * follow, for the table t just below the key. Key first, value second: no
 * lua_insert (it was a tenth of a subscriber's cost). */
#define KEY(L, s, k) lua_rawgeti((L), (s), (k))

/* t[strs[k]] = string v (skipped when NULL). */
static void set_str(lua_State *L, int s, int k, const char *v) {
  if (!v) return;
  KEY(L, s, k);
  lua_pushstring(L, v);
  lua_rawset(L, -3);
}

/* t[strs[k]] = integer v. */
static void set_int(lua_State *L, int s, int k, lua_Integer v) {
  KEY(L, s, k);
  lua_pushinteger(L, v);
  lua_rawset(L, -3);
}

/* t[strs[k]] = boolean v. */
static void set_bool(lua_State *L, int s, int k, int v) {
  KEY(L, s, k);
  lua_pushboolean(L, v);
  lua_rawset(L, -3);
}

/* t[strs[k]] = strs[v]. */
static void set_s(lua_State *L, int s, int k, int v) {
  KEY(L, s, k);
  lua_rawgeti(L, s, v);
  lua_rawset(L, -3);
}

/* Push the run id of lr, a string made once per run (interning it at
 * every event was a fifth of a subscriber's cost). */
static void push_run_id(lua_State *L, wf_lua_run_t *lr) {
  if (lr->id_ref == LUA_NOREF) {
    lua_pushstring(L, wf_run_id(lr->run));
    lua_pushvalue(L, -1);
    lr->id_ref = wf_lua_ref(lr->rt, L);
  } else {
    lua_rawgeti(L, LUA_REGISTRYINDEX, lr->id_ref);
  }
}

/* t[strs[K_RUN_ID]] = the run id of lr. */
static void set_run_id(lua_State *L, int s, wf_lua_run_t *lr) {
  KEY(L, s, K_RUN_ID);
  push_run_id(L, lr);
  lua_rawset(L, -3);
}

/* Push the Lua table of event ev of run lr on L. */
void wf_lua_event_push(lua_State *L, wf_lua_run_t *lr, const wf_event_t *ev) {
  wf_lua_rt_t *rt = lr->rt;
  const wf_graph_t *g = lr->lg->g;
  int i, s;
  push_strs(L, lr->lg);
  s = lua_gettop(L);
  lua_createtable(L, 0, 8);
  set_s(L, s, K_TYPE, K_TYPES + ev->type);
  set_run_id(L, s, lr);
  set_int(L, s, K_SUPERSTEP, ev->superstep);
  if (ev->exec >= 0 && ev->exec < g->nexec) set_s(L, s, K_EXECUTOR_ID, K_EXEC + ev->exec);
  KEY(L, s, K_TS);
  lua_pushnumber(L, ev->ts);
  lua_rawset(L, -3);
  KEY(L, s, K_DATA); /* t.data = the table or value pushed below */
  switch (ev->type) {
  case WF_EV_WORKFLOW_STARTED:
    lua_createtable(L, 0, 1);
    set_str(L, s, K_WORKFLOW, g->name);
    break;
  case WF_EV_EXECUTOR_INVOKED:
  case WF_EV_EXECUTOR_COMPLETED:
    lua_createtable(L, 0, 1);
    set_int(L, s, K_ATTEMPT, ev->attempt);
    break;
  case WF_EV_EXECUTOR_FAILED:
    lua_createtable(L, 0, 6);
    set_str(L, s, K_ERROR, ev->str);
    set_str(L, s, K_TRACEBACK, ev->str2);
    set_int(L, s, K_ATTEMPT, ev->attempt);
    set_bool(L, s, K_RETRYING, ev->flags & WF_EVF_RETRYING);
    set_bool(L, s, K_CONTINUED, ev->flags & WF_EVF_CONTINUED);
    set_bool(L, s, K_TIMED_OUT, ev->flags & WF_EVF_TIMEOUT);
    break;
  case WF_EV_LOG:
    lua_createtable(L, 0, 2);
    set_str(L, s, K_LEVEL, ev->str2);
    set_str(L, s, K_MESSAGE, ev->str);
    break;
  case WF_EV_STATE_CONFLICT:
    lua_createtable(L, 0, 2);
    set_str(L, s, K_KEY, ev->str);
    KEY(L, s, K_WRITERS);
    lua_createtable(L, ev->nints, 0);
    for (i = 0; i < ev->nints; i++) {
      int x = ev->ints[i];
      if (x >= 0 && x < g->nexec) lua_rawgeti(L, s, K_EXEC + x);
      else lua_pushliteral(L, "?");
      lua_rawseti(L, -2, i + 1);
    }
    lua_rawset(L, -3);
    break;
  case WF_EV_WORKFLOW_FAILED:
    lua_createtable(L, 0, 1);
    set_str(L, s, K_ERROR, ev->str);
    break;
  case WF_EV_MESSAGE_UNDELIVERED: { /* exec = the sender, ints = the refusing
                                     edges, str2 = the target of a targeted
                                     send, data = the message */
      char label[256];
      lua_createtable(L, 0, 4);
      set_s(L, s, K_FROM, K_EXEC + ev->exec);
      set_str(L, s, K_TARGET, ev->str2);
      KEY(L, s, K_EDGES);
      lua_createtable(L, ev->nints, 0); /* data.edges: labels */
      for (i = 0; i < ev->nints; i++) {
        lua_pushstring(L, wf_graph_edge_label(g, ev->ints[i], label,
                                              sizeof label));
        lua_rawseti(L, -2, i + 1);
      }
      lua_rawset(L, -3);
      KEY(L, s, K_MESSAGE);
      wf_lua_val_push(rt, L, ev->data);
      lua_rawset(L, -3);
      break;
    }
  case WF_EV_CUSTOM:
  case WF_EV_AGENT_UPDATE:
  case WF_EV_REQUEST_INFO:
    /* name on the event itself: below its pending data key */
    lua_pop(L, 1);
    set_str(L, s, K_NAME, ev->str);
    KEY(L, s, K_DATA);
    wf_lua_val_push(rt, L, ev->data);
    break;
  default:
    wf_lua_val_push(rt, L, ev->data);
    break;
  }
  lua_rawset(L, -3); /* t.data */
  lua_remove(L, s);
}

/* ---- delivery to subscribers ------------------------------------------- */

/* Nesting levels of delivery with a buffer of their own (a subscriber
 * that makes another run publish nests one); deeper ones use the C
 * stack. */
#define DELIV_LEVELS 4

/* The delivery state (a full userdata, the upvalue of event_table): the
 * batch being delivered, how deep deliveries nest, and the buffers the
 * records are copied to, which the dispatcher reads through pointers it
 * made once. */
typedef struct wf_lua_deliv {
  wf_lua_run_t *lr; /* the batch being delivered: its run, records, count */
  const wf_event_t *ev;
  size_t n;
  int depth;
  wf_event_t buf[DELIV_LEVELS][WF_EV_BATCH];
} wf_lua_deliv_t;

/* Registry key (its address) anchoring the delivery state. */
static const char deliv_key;

/* event_table(i) -> the table of event i (0-based) of the batch being
 * delivered, built in C: the dispatcher's path for the events it does not
 * build itself (those with data or strings). */
static int l_event_table(lua_State *L) {
  const wf_lua_deliv_t *d = lua_touserdata(L, lua_upvalueindex(1));
  lua_Integer i = luaL_checkinteger(L, 1);
  luaL_argcheck(L, d->lr && i >= 0 && (size_t)i < d->n, 1,
                "no such event in the batch being delivered");
  wf_lua_event_push(L, d->lr, &d->ev[i]);
  return 1;
}

/* The layout the dispatcher's FFI declaration of wf_event_t must have
 * (weft.events checks it when it loads), the type names, where executor
 * ids start in a graph's strs, and the buffers of the nesting levels. */
static void push_layout(lua_State *L, wf_lua_deliv_t *d) {
  int i;
  lua_createtable(L, 0, 15);
  wf_lua_sched_set_int(L, "size", (lua_Integer)sizeof(wf_event_t));
#define OFF(f) wf_lua_sched_set_int(L, #f, (lua_Integer)offsetof(wf_event_t, f))
  OFF(type); OFF(flags); OFF(exec); OFF(superstep); OFF(attempt); OFF(data);
  OFF(nints); OFF(str); OFF(str2); OFF(ints); OFF(ts);
#undef OFF
  lua_createtable(L, WF_EV__COUNT, 0); /* types[n] = name, 0-based */
  for (i = 0; i < WF_EV__COUNT; i++) {
    lua_pushstring(L, wf_event_type_name(i));
    lua_rawseti(L, -2, i);
  }
  lua_setfield(L, -2, "types");
  wf_lua_sched_set_int(L, "exec_base", K_EXEC);
  lua_createtable(L, DELIV_LEVELS, 0); /* buffers[level] = light userdata */
  for (i = 0; i < DELIV_LEVELS; i++) {
    lua_pushlightuserdata(L, d->buf[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "buffers");
}

/* Load the dispatcher at the first call: dispatch = require("weft.events")
 * (layout, event_table), kept in rt with the delivery state. */
void wf_lua_event_dispatcher(lua_State *L, wf_lua_rt_t *rt) {
  wf_lua_deliv_t *d;
  if (rt->deliv) return;
  d = lua_newuserdata(L, sizeof *d);
  memset(d, 0, sizeof *d);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "weft.events");
  lua_call(L, 1, 1);
  push_layout(L, d);
  lua_pushvalue(L, -3);
  lua_pushcclosure(L, l_event_table, 1);
  lua_call(L, 2, 1); /* d, ctor, layout, event_table -> d, dispatch */
  if (!lua_isfunction(L, -1))
    luaL_error(L, "weft.events did not give a dispatch function");
  rt->dispatch_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* for the state's life */
  lua_pushlightuserdata(L, (void *)&deliv_key);
  lua_insert(L, -2);
  lua_rawset(L, LUA_REGISTRYINDEX);
  rt->deliv = d;
}

/* Hand n events of run lr to its subscriber: dispatch(subscriber, level,
 * n, strs, run_id[, records]) on the aux thread, with the records copied
 * first to the buffer of this nesting level (the dispatcher reads it
 * through a pointer it keeps; a subscriber that publishes may move the
 * run's log) or, deeper, to the C stack (records then). */
int wf_lua_event_deliver(wf_lua_rt_t *rt, wf_lua_run_t *lr,
                         const wf_event_t *evs, size_t n, wf_err_t *err) {
  lua_State *L = rt->aux;
  wf_lua_deliv_t *d = rt->deliv;
  wf_lua_run_t *was_lr;
  const wf_event_t *was_ev;
  size_t was_n;
  wf_event_t stack_buf[WF_EV_BATCH], *buf;
  int rc, level;
  if (!d) return WF_OK; /* no dispatcher: nobody ever subscribed */
  if (n > WF_EV_BATCH) n = WF_EV_BATCH; /* the scheduler never gives more */
  level = d->depth < DELIV_LEVELS ? d->depth + 1 : 0;
  buf = level ? d->buf[level - 1] : stack_buf;
  memcpy(buf, evs, n * sizeof *buf);
  was_lr = d->lr; /* the batch of the delivery this one nests in */
  was_ev = d->ev;
  was_n = d->n;
  d->lr = lr;
  d->ev = buf;
  d->n = n;
  d->depth++;
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->dispatch_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, lr->on_event_ref);
  lua_pushinteger(L, level);
  lua_pushinteger(L, (lua_Integer)n);
  push_strs(L, lr->lg);
  push_run_id(L, lr);
  if (!level) lua_pushlightuserdata(L, buf);
  rc = wf_lua_aux_pcall(rt, level ? 5 : 6, 0, err);
  d->depth--;
  d->lr = was_lr;
  d->ev = was_ev;
  d->n = was_n;
  return rc;
}

/* core.run_events(run) -> list of event tables (from the kept log) */
static int l_run_events(lua_State *L) {
  wf_lua_run_t *lr = wf_lua_run_check(L, 1);
  size_t n, i;
  const wf_event_t *ev = wf_run_events(lr->run, &n);
  lua_createtable(L, (int)n, 0);
  for (i = 0; i < n; i++) {
    wf_lua_event_push(L, lr, &ev[i]);
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}

static const luaL_Reg event_fns[] = {{"run_events", l_run_events},
                                     {NULL, NULL}};

/* Add core.run_events to the module table at the top of L. */
void wf_lua_event_open(lua_State *L) { luaL_register(L, NULL, event_fns); }
