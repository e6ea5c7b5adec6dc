/* lua_snapshot.c — what durable runs need from "weft.core.sched": the
 * snapshot of a run after its last commit (what a checkpoint holds:
 * pending messages, state writes, fan-in buffers, counts), the restore of
 * a run from a checkpoint before it starts, the release of a run held for
 * its checkpoint, and the count of unfinished invocations (pending writes
 * are recorded only while siblings remain). The checkpoint hook itself is
 * in lua_sched.c. Depends on lua.h, sched.h, lua_rt.h, lua_sched_int.h. */
#include "lua_sched_int.h"

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
int wf_lua_snapshot_restore(lua_State *L, wf_lua_run_t *lr, int idx,
                            wf_err_t *err) {
  wf_lua_rt_t *rt = lr->rt;
  int i, n, k, m;
  if (wf_run_restore(lr->run, wf_lua_sched_opt_int(L, idx, "supersteps", 0),
                     err) != WF_OK)
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
  wf_lua_run_t *lr = wf_lua_run_check(L, 1);
  wf_lua_rt_t *rt = lr->rt;
  const wf_graph_t *g = lr->lg->g;
  size_t n, i;
  int nout, e, k, j, m;
  const wf_pending_t *p = wf_run_pending(lr->run, &n);
  lua_createtable(L, 0, 6);
  wf_lua_sched_set_int(L, "supersteps", wf_run_supersteps(lr->run));
  wf_lua_sched_set_int(L, "superstep", wf_run_superstep(lr->run));
  wf_run_outputs(lr->run, &nout);
  wf_lua_sched_set_int(L, "outputs", nout);
  lua_createtable(L, (int)n, 0);
  for (i = 0; i < n; i++) {
    lua_createtable(L, 0, 3);
    wf_lua_sched_set_int(L, "src", p[i].src + 1);
    if (p[i].only >= 0) wf_lua_sched_set_int(L, "only", p[i].only + 1);
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
      wf_lua_sched_set_int(L, "edge", e + 1);
      wf_lua_sched_set_int(L, "pos", j + 1);
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

/* core.checkpoint_done(run, ok, err): release a run held for its
 * checkpoint (a failure fails the run). */
static int l_checkpoint_done(lua_State *L) {
  wf_lua_run_t *lr = wf_lua_run_check(L, 1);
  wf_run_checkpoint_done(lr->run, lua_toboolean(L, 2),
                         luaL_optstring(L, 3, NULL));
  return 0;
}

/* core.remaining(run) -> invocations of the current superstep not finished
 * yet (the caller's own included while it runs). */
static int l_remaining(lua_State *L) {
  wf_lua_run_t *lr = wf_lua_run_check(L, 1);
  lua_pushinteger(L, wf_run_remaining(lr->run));
  return 1;
}

static const luaL_Reg snapshot_fns[] = {{"snapshot", l_snapshot},
                                        {"checkpoint_done", l_checkpoint_done},
                                        {"remaining", l_remaining},
                                        {NULL, NULL}};

/* Add snapshot, checkpoint_done and remaining to the module table at the
 * top of L. */
void wf_lua_snapshot_open(lua_State *L) {
  luaL_register(L, NULL, snapshot_fns);
}
