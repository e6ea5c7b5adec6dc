/* lua_ctx.c — the primitives behind ctx in "weft.core.sched": an
 * invocation's sends, outputs, custom and live events, logs, shared-state
 * reads and writes, whether it still runs, its earlier attempts' errors,
 * the invocation of the calling task (core.current), and the Lua body every
 * task coroutine runs (core.set_worker). These are an executor's hot
 * path: the run check and the failure result are inline (lua_sched_int.h),
 * the work is one call into the scheduler (inv.c). A value that is not
 * a table is checked as JSON here (nil, msg, "json" when it is not); the
 * Lua side walks tables. Depends on lua.h, sched.h, lua_rt.h,
 * lua_sched_int.h, utf8.h. */
#include <math.h>
#include <string.h>

#include "lua_sched_int.h"
#include "utf8.h"

/* The run (argument 1) and seq (argument 2) every primitive starts with. */
static inline wf_lua_run_t *ctx_args(lua_State *L, uint32_t *seq) {
  wf_lua_run_t *lr = wf_lua_run_check(L, 1);
  *seq = (uint32_t)luaL_checkinteger(L, 2);
  return lr;
}

/* Whether the value at idx passes as JSON without walking it: a string
 * of valid UTF-8, a finite number, a boolean, nil, json.null (a NULL light
 * userdata) or a table (tables are walked in Lua, weft.json.check, before
 * the call; scalars are checked only here, where the value already is). */
static inline int ctx_plain(lua_State *L, int idx) {
  switch (lua_type(L, idx)) {
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    return wf_utf8_bad(s, n) == n;
  }
  case LUA_TNUMBER:
    return isfinite(lua_tonumber(L, idx));
  case LUA_TNIL:
  case LUA_TBOOLEAN:
  case LUA_TTABLE:
    return 1;
  case LUA_TLIGHTUSERDATA:
    return lua_touserdata(L, idx) == NULL;
  default:
    return 0;
  }
}

/* The failure of a primitive given a value that is not JSON: nil, msg,
 * "json" (the Lua side describes it with weft.json.check's path). */
static int ctx_not_json(lua_State *L, int idx) {
  const char *what = lua_type(L, idx) == LUA_TSTRING ? "a string that is not valid UTF-8"
                   : lua_type(L, idx) == LUA_TNUMBER ? "a number that is not finite"
                                                     : luaL_typename(L, idx);
  lua_pushfstring(L, "%s is not JSON-serialisable", what);
  return wf_lua_fail(L, lua_tostring(L, -1), "json");
}

/* The value at idx put in lr's value table (nil: no value) in *v; 0 when
 * it is not JSON (ctx_plain). Called after every argument check, so a
 * raising check leaks no handle. */
static inline int ctx_val(lua_State *L, wf_lua_run_t *lr, int idx, wf_val_t *v) {
  if (!ctx_plain(L, idx)) return 0;
  *v = lua_isnil(L, idx) ? 0 : wf_lua_val_put(lr->rt, L, idx);
  return 1;
}

/* A primitive's result: true when rc is WF_OK, else nil, err. */
static inline int ctx_result(lua_State *L, int rc, const wf_err_t *err) {
  if (rc != WF_OK) return wf_lua_fail(L, err->msg, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.send(run, seq, msg, target) -> true | nil, err */
static int l_send(lua_State *L) {
  uint32_t seq;
  wf_lua_run_t *lr = ctx_args(L, &seq);
  int target = (int)luaL_optinteger(L, 4, 0) - 1;
  wf_err_t err;
  wf_val_t v;
  if (!ctx_val(L, lr, 3, &v)) return ctx_not_json(L, 3);
  int rc = wf_run_send(lr->run, seq, v, target, &err);
  return ctx_result(L, rc, &err);
}

/* core.output(run, seq, value) -> true | nil, err */
static int l_output(lua_State *L) {
  uint32_t seq;
  wf_lua_run_t *lr = ctx_args(L, &seq);
  wf_err_t err;
  wf_val_t v;
  if (!ctx_val(L, lr, 3, &v)) return ctx_not_json(L, 3);
  int rc = wf_run_output(lr->run, seq, v, &err);
  return ctx_result(L, rc, &err);
}

/* A primitive (run, seq, name, value) -> true | nil, err doing fn: emit a
 * custom event or write shared state. */
static inline int ctx_named(lua_State *L,
                            int (*fn)(wf_run_t *, uint32_t, const char *,
                                      wf_val_t, wf_err_t *)) {
  uint32_t seq;
  wf_lua_run_t *lr = ctx_args(L, &seq);
  const char *name = luaL_checkstring(L, 3);
  wf_err_t err;
  wf_val_t v;
  if (!ctx_plain(L, 3)) return ctx_not_json(L, 3);
  if (!ctx_val(L, lr, 4, &v)) return ctx_not_json(L, 4);
  int rc = fn(lr->run, seq, name, v, &err);
  return ctx_result(L, rc, &err);
}

/* core.emit(run, seq, name, data) -> true | nil, err */
static int l_emit(lua_State *L) { return ctx_named(L, wf_run_emit); }

/* core.emit_live(run, seq, type, name, data) -> true | nil, err; type is
 * "agent_update" or "request_info". */
static int l_emit_live(lua_State *L) {
  uint32_t seq;
  wf_lua_run_t *lr = ctx_args(L, &seq);
  const char *type = luaL_checkstring(L, 3);
  const char *name = luaL_optstring(L, 4, NULL);
  wf_err_t err;
  wf_ev_type_t ty;
  if (strcmp(type, "agent_update") == 0)
    ty = WF_EV_AGENT_UPDATE;
  else if (strcmp(type, "request_info") == 0)
    ty = WF_EV_REQUEST_INFO;
  else
    return luaL_argerror(L, 3, "live events are 'agent_update' or "
                               "'request_info'");
  wf_val_t v;
  if (!ctx_val(L, lr, 5, &v)) return ctx_not_json(L, 5);
  int rc = wf_run_emit_live(lr->run, seq, ty, name, v, &err);
  return ctx_result(L, rc, &err);
}

/* core.log(run, seq, level, message) -> true | nil, err */
static int l_log(lua_State *L) {
  uint32_t seq;
  wf_lua_run_t *lr = ctx_args(L, &seq);
  const char *level = luaL_checkstring(L, 3);
  const char *msg = luaL_checkstring(L, 4);
  wf_err_t err;
  return ctx_result(L, wf_run_log(lr->run, seq, level, msg, &err), &err);
}

/* core.set_state(run, seq, key, value) -> true | nil, err */
static int l_set_state(lua_State *L) { return ctx_named(L, wf_run_set_state); }

/* core.get_state(run, seq, key) -> value | nil */
static int l_get_state(lua_State *L) {
  uint32_t seq;
  wf_lua_run_t *lr = ctx_args(L, &seq);
  const char *key = luaL_checkstring(L, 3);
  wf_lua_val_push(lr->rt, L, wf_run_get_state(lr->run, seq, key));
  return 1;
}

/* core.running(run, seq) -> boolean: is the invocation still running? */
static int l_running(lua_State *L) {
  uint32_t seq;
  wf_lua_run_t *lr = ctx_args(L, &seq);
  lua_pushboolean(L, wf_run_inv(lr->run, seq) != NULL);
  return 1;
}

/* core.previous_errors(run, seq) -> {{message, traceback}, ...} */
static int l_previous_errors(lua_State *L) {
  uint32_t seq;
  wf_lua_run_t *lr = ctx_args(L, &seq);
  wf_inv_t *inv = wf_run_inv(lr->run, seq);
  int i, n = inv ? inv->nerrors : 0;
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    lua_createtable(L, 0, 2);
    wf_lua_sched_set_str(L, "message", inv->errors[i].message);
    wf_lua_sched_set_str(L, "traceback", inv->errors[i].traceback);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* core.current() -> run_table, seq, executor_id, superstep, order (0-based
 * in the superstep), attempt of the invocation whose executor task is
 * calling, or nothing (weft.task maps go tasks to their parent in Lua).
 * A task whose invocation was aborted while it ran (its run cancelled or
 * failed from inside, as a budget does) still works for it until it is
 * dropped at its next yield: it gets the same answer, so that what it
 * does meanwhile is still held to the run's network policy and budget. */
static int l_current(lua_State *L) {
  wf_lua_rt_t *rt = wf_lua_rt(L);
  wf_task_t *t = wf_task_of(rt, L);
  wf_lua_run_t *lr;
  if (!t || !t->run || (!t->aborted && !wf_run_inv(t->run, t->seq))) return 0;
  lr = wf_run_host(t->run);
  if (!lr || lr->table_ref == LUA_NOREF) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, lr->table_ref);
  lua_pushinteger(L, (lua_Integer)t->seq);
  lua_pushstring(L, lr->lg->g->execs[t->exec].id);
  lua_pushinteger(L, t->superstep);
  lua_pushinteger(L, t->order);
  lua_pushinteger(L, (lua_Integer)t->attempt);
  return 6;
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

static const luaL_Reg ctx_fns[] = {
    {"send", l_send},           {"output", l_output},
    {"emit", l_emit},           {"emit_live", l_emit_live},
    {"log", l_log},             {"set_state", l_set_state},
    {"get_state", l_get_state}, {"running", l_running},
    {"previous_errors", l_previous_errors},
    {"current", l_current},     {"set_worker", l_set_worker},
    {NULL, NULL}};

/* Add the ctx primitives, current and set_worker to the module table at
 * the top of L. */
void wf_lua_ctx_open(lua_State *L) { luaL_register(L, NULL, ctx_fns); }
