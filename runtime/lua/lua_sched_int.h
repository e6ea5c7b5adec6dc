/* lua_sched_int.h — private to the binding of the scheduler, the files
 * behind the one Lua module "weft.core.sched":
 *   lua_sched.c     the scheduler's hooks into Lua and the module table
 *   lua_graph.c     graphs as userdata (building, validation, labels)
 *   lua_run.c       runs as userdata: start, wait, queries, end, cancel
 *   lua_event.c     event records as Lua tables
 *   lua_snapshot.c  what durable runs need: snapshot, restore, checkpoints
 *   lua_ctx.c       the primitives behind ctx and the task worker body
 *   lua_requests.c  invocations suspended on a request and their answers
 * Holds the graph and run structs, the userdata check and table setters
 * they share (inline: ctx calls are the hot path), and each file's opener.
 * Nothing else includes this. Depends on lua_rt.h, sched.h. */
#ifndef WF_LUA_SCHED_INT_H
#define WF_LUA_SCHED_INT_H

#include "lua_rt.h"

#define WF_LUA_GRAPH_MT "weft.graph"
#define WF_LUA_RUN_MT "weft.run"

/* A graph shared by the Lua workflow object and every run of it. */
typedef struct wf_lua_graph {
  wf_graph_t *g;
  wf_lua_rt_t *rt;
  int fns_ref;  /* {conds = {[e] = {[i] = fn}}, selects = {[e] = fn},
                   reducers = {[r] = fn}} (1-based) */
  int refs;     /* the userdata + one per run */
  int strs_ref; /* the strings of its event tables (lua_event.c), made at
                   the first event pushed; LUA_NOREF until then */
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
  int id_ref;       /* the run id as a Lua string (made by the first event
                       table) or LUA_NOREF */
  int finished;      /* terminal */
  int idle;          /* paused on requests (cleared when one is answered) */
  int ending;        /* run_table:on_end() runs; the end is not told yet */
  wf_task_t *waiters;  /* tasks in core.run_wait */
  wf_task_t *asking;   /* tasks suspended in core.request_wait */
  struct wf_lua_run *prev, *next;
} wf_lua_run_t;

/* The run of userdata arg i (raises if it is not a live run). */
static inline wf_lua_run_t *wf_lua_run_check(lua_State *L, int i) {
  wf_lua_run_t *lr = luaL_checkudata(L, i, WF_LUA_RUN_MT);
  if (!lr->run) luaL_argerror(L, i, "run already freed");
  return lr;
}

/* Set t[k] = v on the table at the top of L for a string v (skipped when
 * NULL). */
static inline void wf_lua_sched_set_str(lua_State *L, const char *k,
                                        const char *v) {
  if (!v) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

/* Set t[k] = integer v on the table at the top of L. */
static inline void wf_lua_sched_set_int(lua_State *L, const char *k,
                                        lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

/* Set t[k] = boolean v on the table at the top of L. */
static inline void wf_lua_sched_set_bool(lua_State *L, const char *k, int v) {
  lua_pushboolean(L, v);
  lua_setfield(L, -2, k);
}

/* Integer field k of the table at idx, or dflt when it is nil. */
static inline int wf_lua_sched_opt_int(lua_State *L, int idx, const char *k,
                                       int dflt) {
  int v = dflt;
  lua_getfield(L, idx, k);
  if (!lua_isnil(L, -1)) v = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

/* Each file's opener adds its functions (and metatables, constants) to the
 * module table at the top of L. */
void wf_lua_graph_open(lua_State *L);
void wf_lua_run_open(lua_State *L);
void wf_lua_event_open(lua_State *L);
void wf_lua_snapshot_open(lua_State *L);
void wf_lua_ctx_open(lua_State *L);
void wf_lua_requests_open(lua_State *L);

/* lua_graph.c: the graph of userdata arg i (raises if freed). */
wf_lua_graph_t *wf_lua_graph_check(lua_State *L, int i);
/* lua_graph.c: drop one reference of lg; free it at zero. */
void wf_lua_graph_unref(wf_lua_graph_t *lg);

/* lua_run.c: free lr's C run and drop its references (idempotent). */
void wf_lua_run_release(wf_lua_run_t *lr);
/* lua_run.c: the run ended or went idle (its on_end, if any, is done):
 * mark it and wake its waiters; a terminal run drops its anchor. */
void wf_lua_run_ended(wf_lua_rt_t *rt, wf_lua_run_t *lr);

/* lua_event.c: push the Lua table of event ev of run lr on L. */
void wf_lua_event_push(lua_State *L, wf_lua_run_t *lr, const wf_event_t *ev);
/* lua_event.c: make sure the subscribers' dispatcher is loaded (require
 * "weft.events" at the first call; raises on L if it cannot be). */
void wf_lua_event_dispatcher(lua_State *L, wf_lua_rt_t *rt);
/* lua_event.c: hand n events (at most WF_EV_BATCH, copied first) of run
 * lr to its subscriber through the dispatcher, in one protected call on
 * the aux thread. WF_ERR with err when the subscriber failed. */
int wf_lua_event_deliver(wf_lua_rt_t *rt, wf_lua_run_t *lr,
                         const wf_event_t *evs, size_t n, wf_err_t *err);
/* lua_sched.c: lua_pcall on the aux thread of the function and nargs
 * arguments pushed, with a traceback handler; on error err has the message
 * (traceback dropped) and nothing is left on the stack. */
int wf_lua_aux_pcall(wf_lua_rt_t *rt, int nargs, int nres, wf_err_t *err);

/* lua_snapshot.c: apply the restore table at idx to lr, a run not started
 * yet (core.run_new's opts.restore). */
int wf_lua_snapshot_restore(lua_State *L, wf_lua_run_t *lr, int idx,
                            wf_err_t *err);

#endif
