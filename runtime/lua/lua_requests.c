/* lua_requests.c — human in the loop for "weft.core.sched": an
 * invocation suspends on a request (core.request_wait; when every
 * unfinished invocation waits the run goes idle) until core.request_answer
 * resumes it with the answer (the task protocol of lua_rt.h: the answer is
 * anchored until the resumer's prepare pushes it). The request_info event
 * and its replay live in Lua (lua/weft/context.lua). Depends on lua.h,
 * sched.h, lua_rt.h, lua_sched_int.h. */
#include "lua_sched_int.h"

/* Cancel callback of a task suspended on a request: leave the list. */
static void asking_cancel(wf_task_t *t) {
  wf_lua_run_t *lr = t->wait;
  wf_task_delist(t, &lr->asking);
}

/* prepare of an answered request: push the answer (t->result, a registry
 * ref or LUA_REFNIL for nil) and drop its anchor. */
static int answer_prepare(wf_task_t *t, lua_State *L) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->result);
  wf_lua_unref(t->rt, t->result);
  return 1;
}

/* Cancel of an answered request not resumed yet (abort): drop the anchor. */
static void answer_cancel(wf_task_t *t) { wf_lua_unref(t->rt, t->result); }

/* core.request_wait(run, seq) -> the answer: the calling executor's
 * invocation waits on a human (the run may go idle) until
 * core.request_answer. Only from the invocation's own task. */
static int l_request_wait(lua_State *L) {
  wf_lua_run_t *lr = wf_lua_run_check(L, 1);
  uint32_t seq = (uint32_t)luaL_checkinteger(L, 2);
  wf_task_t *t = wf_task_of(lr->rt, L);
  wf_err_t err;
  if (!t || t->run != lr->run || t->seq != seq)
    return luaL_error(L, "request_info must be called from the executor's "
                         "own handler (not from a weft.go task or a callback)");
  if (wf_run_inv_wait(lr->run, seq, &err) != WF_OK)
    return luaL_error(L, "%s", err.msg);
  lua_settop(L, 0);
  wf_task_enlist(t, lr, asking_cancel, &lr->asking);
  return wf_task_suspend(t, L, "request_info");
}

/* core.request_answer(run, seq, value) -> true | nil, err: resume the
 * invocation waiting on a request with value. */
static int l_request_answer(lua_State *L) {
  wf_lua_run_t *lr = wf_lua_run_check(L, 1);
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
    wf_err_set(&err, "no invocation %d waits on a request", (int)seq);
    return wf_lua_fail(L, err.msg, NULL);
  }
  if (wf_run_inv_unwait(lr->run, seq, &err) != WF_OK)
    return wf_lua_fail(L, err.msg, NULL);
  *p = t->next;
  t->next = NULL;
  lr->idle = 0;
  if (lua_isnil(L, 3)) {
    t->result = LUA_REFNIL; /* luaL_ref takes no ref for nil */
  } else {
    lua_pushvalue(L, 3);
    t->result = wf_lua_ref(lr->rt, L);
  }
  t->wait = NULL;
  t->cancel = answer_cancel;
  t->prepare = answer_prepare;
  wf_task_ready(t);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg requests_fns[] = {{"request_wait", l_request_wait},
                                        {"request_answer", l_request_answer},
                                        {NULL, NULL}};

/* Add request_wait and request_answer to the module table at the top of
 * L. */
void wf_lua_requests_open(lua_State *L) {
  luaL_register(L, NULL, requests_fns);
}
