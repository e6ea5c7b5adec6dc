/* lua_graph.c — graphs as Lua userdata for "weft.core.sched": building a
 * graph (executors, edges, reducer keys, start), finalizing it with the Lua
 * functions the scheduler's hooks call (conditions, selectors, reducers),
 * edge labels, and the graph's reference count shared by the workflow
 * object and every run of it. Indices are 1-based in Lua, 0-based in C.
 * Depends on lua.h, graph.h (through sched.h), lua_rt.h, lua_sched_int.h. */
#include <stdlib.h>
#include <string.h>

#include "lua_sched_int.h"

/* Drop one reference of lg; free it at zero (last run or userdata gone). */
void wf_lua_graph_unref(wf_lua_graph_t *lg) {
  if (--lg->refs > 0) return;
  if (lg->prev) lg->prev->next = lg->next;
  else if (lg->rt) lg->rt->graphs = lg->next;
  if (lg->next) lg->next->prev = lg->prev;
  wf_lua_unref(lg->rt, lg->fns_ref);
  wf_lua_unref(lg->rt, lg->strs_ref);
  if (lg->box) *lg->box = NULL;
  wf_graph_free(lg->g);
  free(lg);
}

/* The graph of userdata arg i (raises if already freed). */
wf_lua_graph_t *wf_lua_graph_check(lua_State *L, int i) {
  wf_lua_graph_t **p = luaL_checkudata(L, i, WF_LUA_GRAPH_MT);
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
  luaL_getmetatable(L, WF_LUA_GRAPH_MT);
  lua_setmetatable(L, -2);
  if (!lg) return luaL_error(L, "out of memory");
  lg->g = wf_graph_new(name);
  lg->g->host = lg;
  lg->rt = rt;
  lg->fns_ref = lg->strs_ref = LUA_NOREF;
  lg->refs = 1;
  lg->box = p;
  lg->next = rt->graphs;
  if (rt->graphs) rt->graphs->prev = lg;
  rt->graphs = lg;
  return 1;
}

/* __gc of a graph userdata. */
static int l_graph_gc(lua_State *L) {
  wf_lua_graph_t **p = luaL_checkudata(L, 1, WF_LUA_GRAPH_MT);
  wf_lua_graph_t *lg = *p;
  *p = NULL;
  if (lg) {
    lg->box = NULL;
    wf_lua_graph_unref(lg);
  }
  return 0;
}

/* core.graph_add_exec(g, id, kind, max_attempts, backoff, factor,
 * backoff_max, timeout, continue) -> index (1-based) | nil, err. */
static int l_graph_add_exec(lua_State *L) {
  wf_lua_graph_t *lg = wf_lua_graph_check(L, 1);
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
  if (i < 0)
    return wf_lua_fail(L, err.msg, NULL);
  lua_pushinteger(L, i + 1);
  return 1;
}

/* core.graph_set_start(g, index) */
static int l_graph_set_start(lua_State *L) {
  wf_lua_graph_t *lg = wf_lua_graph_check(L, 1);
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
  wf_lua_graph_t *lg = wf_lua_graph_check(L, 1);
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
  if (e < 0)
    return wf_lua_fail(L, err.msg, NULL);
  n = e + 1;
  lua_pushinteger(L, n);
  return 1;
}

/* core.graph_add_reducer(g, key[, sig, label]) -> reducer id (1-based):
 * sig (a string, may hold NULs) and label are what wf_run_swap_graph
 * compares and names (wf_graph_set_reducer_sig). */
static int l_graph_add_reducer(lua_State *L) {
  wf_lua_graph_t *lg = wf_lua_graph_check(L, 1);
  const char *key = luaL_checkstring(L, 2);
  size_t len = 0;
  const char *sig = luaL_optlstring(L, 3, NULL, &len);
  const char *label = luaL_optstring(L, 4, NULL);
  wf_err_t err;
  int id = wf_graph_add_reducer(lg->g, key);
  if (sig && wf_graph_set_reducer_sig(lg->g, id, sig, len, label, &err) != WF_OK)
    return luaL_error(L, "%s", err.msg);
  lua_pushinteger(L, id + 1);
  return 1;
}

/* core.graph_finalize(g, fns) -> true | nil, err. fns holds the Lua
 * functions the hooks call (see wf_lua_graph_t). */
static int l_graph_finalize(lua_State *L) {
  wf_lua_graph_t *lg = wf_lua_graph_check(L, 1);
  wf_err_t err;
  luaL_checktype(L, 2, LUA_TTABLE);
  if (wf_graph_finalize(lg->g, &err) != WF_OK)
    return wf_lua_fail(L, err.msg, NULL);
  lua_pushvalue(L, 2);
  lg->fns_ref = wf_lua_ref(lg->rt, L);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.graph_edge_label(g, edge) -> "a -> b" */
static int l_graph_edge_label(lua_State *L) {
  wf_lua_graph_t *lg = wf_lua_graph_check(L, 1);
  char buf[256];
  int e = (int)luaL_checkinteger(L, 2) - 1;
  luaL_argcheck(L, e >= 0 && e < lg->g->nedge, 2, "no such edge");
  lua_pushstring(L, wf_graph_edge_label(lg->g, e, buf, sizeof(buf)));
  return 1;
}

static const luaL_Reg graph_fns[] = {
    {"graph_new", l_graph_new},
    {"graph_add_exec", l_graph_add_exec},
    {"graph_set_start", l_graph_set_start},
    {"graph_add_edge", l_graph_add_edge},
    {"graph_add_reducer", l_graph_add_reducer},
    {"graph_finalize", l_graph_finalize},
    {"graph_edge_label", l_graph_edge_label},
    {NULL, NULL}};

/* Add the graph_* functions and the graph metatable to the module table at
 * the top of L. */
void wf_lua_graph_open(lua_State *L) {
  if (luaL_newmetatable(L, WF_LUA_GRAPH_MT)) {
    lua_pushcfunction(L, l_graph_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_register(L, NULL, graph_fns);
}
