/* test_task.c — the task primitives and the wait protocol of lua_rt.c, with
 * a real LuaJIT state: a waiter records wait, cancel and prepare; the event
 * side only calls wf_task_ready and the results are built by prepare when
 * the task resumes (never from the event); a task aborted between its
 * wake-up and its resume is cancelled, not prepared; the main thread waits
 * the same way (the loop runs until ready) and raises on a deadlock after
 * cancelling the wait; close hooks run in order at state close; conditions
 * (weft.core.loop.cond) wake tasks and the main thread; the waits of
 * weft.core.server; wf_lua_fail's shapes. Depends on LuaJIT, lua_rt.h, lua_core.h and harness.h. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "harness.h"
#include "lua_core.h"
#include "lua_rt.h"

/* What the test primitive saw. */
static struct {
  wf_task_t *waiter; /* suspended in test_wait */
  int prepared, cancelled, in_event;
  const char *built_in; /* "event" if prepare ever ran inside an event */
} g;

/* prepare of the test primitive: two results, "done" and t->result. */
static int t_prepare(wf_task_t *t, lua_State *L) {
  g.prepared++;
  if (g.in_event) g.built_in = "event";
  g.waiter = NULL;
  lua_pushliteral(L, "done");
  lua_pushinteger(L, t->result);
  return 2;
}

/* cancel of the test primitive. */
static void t_cancel(wf_task_t *t) {
  (void)t;
  g.cancelled++;
  g.waiter = NULL;
}

/* test_wait() -> "done", result: suspends until the test readies it. */
static int l_test_wait(lua_State *L) {
  wf_lua_rt_t *rt = wf_lua_rt(L);
  wf_task_t mw, *t = wf_task_waiter(rt, L, "test_wait", &mw);
  t->wait = &g;
  t->cancel = t_cancel;
  t->prepare = t_prepare;
  g.waiter = t;
  return wf_task_suspend(t, L, "test_wait");
}

/* The "event": ready the waiter with result r, as a libev callback would. */
static void event(int r) {
  g.in_event = 1;
  g.waiter->result = r;
  wf_task_ready(g.waiter);
  g.in_event = 0;
}

/* A fresh state with weft's runtime, test_wait and `loop` as globals. */
static lua_State *new_state(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  memset(&g, 0, sizeof g);
  wf_lua_rt(L);
  lua_register(L, "test_wait", l_test_wait);
  wf_lua_open_loop(L);
  lua_setglobal(L, "loop");
  return L;
}

/* Run chunk (a function body) in a weft.go task. */
static void go(lua_State *L, const char *chunk) {
  CHECK_INT(luaL_loadstring(L, chunk), 0);
  CHECK(wf_task_spawn(wf_lua_rt(L), L, 0, NULL) != NULL);
}

/* Global name as an integer (-1 when not a number). */
static long long global_int(lua_State *L, const char *name) {
  long long v;
  lua_getglobal(L, name);
  v = lua_isnumber(L, -1) ? (long long)lua_tointeger(L, -1) : -1;
  lua_pop(L, 1);
  return v;
}

static void test_results_built_on_resume(void) {
  lua_State *L = new_state();
  wf_lua_rt_t *rt = wf_lua_rt(L);
  go(L, "local s, r = test_wait(); got = r; status = s == 'done' and 1 or 0");
  wf_loop_poll(rt->loop); /* the task starts and suspends */
  CHECK(g.waiter != NULL);
  CHECK(g.waiter && g.waiter->waiting);
  event(42);
  CHECK_INT(g.prepared, 0); /* nothing built in the event */
  wf_loop_poll(rt->loop);  /* the resumer prepares, then resumes */
  CHECK_INT(g.prepared, 1);
  CHECK(g.built_in == NULL);
  CHECK_INT(global_int(L, "got"), 42);
  CHECK_INT(global_int(L, "status"), 1);
  CHECK_INT(g.cancelled, 0);
  lua_close(L);
}

static void test_abort_between_ready_and_resume(void) {
  lua_State *L = new_state();
  wf_lua_rt_t *rt = wf_lua_rt(L);
  go(L, "test_wait(); reached = 1");
  wf_loop_poll(rt->loop);
  wf_task_t *t = g.waiter;
  event(1);
  wf_task_abort(t); /* before the loop resumes it */
  CHECK_INT(g.cancelled, 1); /* the wait is freed by cancel */
  CHECK_INT(g.prepared, 0);  /* and never prepared */
  wf_loop_poll(rt->loop);
  CHECK_INT(global_int(L, "reached"), -1);
  lua_close(L);
}

static void test_close_cancels_waiting_task(void) {
  lua_State *L = new_state();
  go(L, "test_wait()");
  wf_loop_poll(wf_lua_rt(L)->loop);
  CHECK(g.waiter != NULL);
  lua_close(L); /* the weft.go task is aborted: its wait is cancelled */
  CHECK_INT(g.cancelled, 1);
  CHECK_INT(g.prepared, 0);
}

/* A timer that readies the main-thread waiter (the "event"). */
static void ready_cb(struct ev_loop *evl, ev_timer *w, int revents) {
  (void)evl;
  (void)w;
  (void)revents;
  event(7);
}

static void test_main_thread_waits_the_same_way(void) {
  lua_State *L = new_state();
  wf_lua_rt_t *rt = wf_lua_rt(L);
  ev_timer tm;
  ev_timer_init(&tm, ready_cb, 0, 0);
  ev_timer_start(wf_loop_ev(rt->loop), &tm);
  CHECK_INT(luaL_dostring(L, "local s, r = test_wait(); got = r"), 0);
  CHECK_INT(global_int(L, "got"), 7);
  CHECK_INT(g.prepared, 1);
  CHECK(g.built_in == NULL);
  lua_close(L);
}

static void test_main_thread_deadlock(void) {
  lua_State *L = new_state();
  /* nothing can ready it: the loop has no watcher left */
  CHECK(luaL_dostring(L, "test_wait()") != 0);
  CHECK(strstr(lua_tostring(L, -1),
               "test_wait: nothing left to wait on (deadlock)") != NULL);
  CHECK_INT(g.cancelled, 1); /* the wait was given back before raising */
  CHECK_INT(g.prepared, 0);
  lua_close(L);
}

static void test_cond(void) {
  lua_State *L = new_state();
  wf_lua_rt_t *rt = wf_lua_rt(L);
  const char *setup =
      "c = loop.cond(); n = 0\n"
      "for i = 1, 3 do loop.go(function() if c:wait() then n = n + 1 end end) end\n"
      "loop.go(function() timed = c:wait(0) end)\n";
  CHECK_INT(luaL_dostring(L, setup), 0);
  wf_loop_poll(rt->loop);
  for (int i = 0; i < 100; i++) { /* until the zero timeout fired */
    lua_getglobal(L, "timed");
    int done = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (done) break;
    wf_loop_step(rt->loop);
  }
  lua_getglobal(L, "timed");
  CHECK(lua_isboolean(L, -1) && !lua_toboolean(L, -1)); /* timed out */
  lua_pop(L, 1);
  /* signal wakes the three waiting tasks, each resuming with true */
  CHECK_INT(luaL_dostring(L, "woken = c:signal()"), 0);
  CHECK_INT(global_int(L, "woken"), 3);
  wf_loop_poll(rt->loop);
  CHECK_INT(global_int(L, "n"), 3);
  /* the main thread waits like a task: a task signals it */
  CHECK_INT(luaL_dostring(L,
                          "loop.go(function() woken = c:signal() end)\n"
                          "main = c:wait()"),
            0);
  lua_getglobal(L, "main");
  CHECK(lua_toboolean(L, -1));
  lua_pop(L, 1);
  CHECK_INT(global_int(L, "woken"), 1);
  /* and a main-thread wait nothing can end is a deadlock, not a hang */
  CHECK(luaL_dostring(L, "c:wait()") != 0);
  CHECK(strstr(lua_tostring(L, -1), "cond:wait: nothing left to wait on") !=
        NULL);
  lua_close(L);
}

/* Close hooks: record the order. */
static char order[8];
static int norder;
static void hook_fn(wf_lua_rt_t *rt, wf_lua_hook_t *h) {
  (void)rt;
  CHECK(rt->closing);
  order[norder++] = (char)('0' + h->order);
}

static void test_close_hooks_in_order(void) {
  lua_State *L = new_state();
  wf_lua_rt_t *rt = wf_lua_rt(L);
  wf_lua_hook_t a = {hook_fn, 3, NULL}, b = {hook_fn, 1, NULL},
                c = {hook_fn, 2, NULL}, d = {hook_fn, 1, NULL};
  norder = 0;
  wf_lua_rt_on_close(rt, &a);
  wf_lua_rt_on_close(rt, &b);
  wf_lua_rt_on_close(rt, &c);
  wf_lua_rt_on_close(rt, &d);
  CHECK(wf_lua_rt_hook(rt, hook_fn) == &b);
  lua_close(L);
  order[norder] = 0;
  CHECK_STR(order, "1123");
}

/* weft.core.server's two waits are on the protocol: on the main thread
 * wait(srv, timeout) runs the loop until news or the timeout (false),
 * not one loop step; a task's wait is ready with true when the server
 * stops, its boolean built on resume; an abort between the stop and the
 * resume frees nothing twice. */
static void test_server_waits(void) {
  lua_State *L = new_state();
  wf_lua_rt_t *rt = wf_lua_rt(L);
  wf_lua_open_server(L);
  lua_setglobal(L, "server");
  CHECK_INT(luaL_dostring(L,
                          "s = server.listen{host = '127.0.0.1', port = 0}\n"
                          /* another watcher ends a loop step first */
                          "loop.go(function() end)\n"
                          "main = server.wait(s, 0.01)"),
            0);
  lua_getglobal(L, "main");
  CHECK(lua_isboolean(L, -1) && !lua_toboolean(L, -1)); /* timed out */
  lua_pop(L, 1);
  CHECK_INT(luaL_dostring(L,
                          "loop.go(function() a = server.wait(s) end)\n"
                          "loop.go(function() b = server.wait(s) end)"),
            0);
  wf_loop_poll(rt->loop); /* both wait */
  lua_getglobal(L, "a");
  CHECK(lua_isnil(L, -1));
  lua_pop(L, 1);
  /* the second task: aborted between the stop and its resume */
  wf_task_t *b = rt->spawned;
  CHECK(b && b->waiting);
  CHECK_INT(luaL_dostring(L, "server.stop(s)"), 0);
  CHECK(b->cancel == NULL); /* ready: it holds nothing */
  wf_task_abort(b);
  wf_loop_poll(rt->loop);
  lua_getglobal(L, "a");
  CHECK(lua_isboolean(L, -1) && lua_toboolean(L, -1));
  lua_getglobal(L, "b");
  CHECK(lua_isnil(L, -1)); /* never resumed */
  lua_pop(L, 2);
  lua_close(L);
}

static void test_fail_shapes(void) {
  lua_State *L = new_state();
  CHECK_INT(wf_lua_fail(L, "no", "closed"), 3);
  CHECK(lua_isnil(L, -3));
  CHECK_STR(lua_tostring(L, -2), "no");
  CHECK_STR(lua_tostring(L, -1), "closed");
  lua_settop(L, 0);
  CHECK_INT(wf_lua_fail(L, "no", NULL), 2);
  CHECK_INT(lua_gettop(L), 2);
  lua_close(L);
}

int main(void) {
  RUN(test_results_built_on_resume);
  RUN(test_abort_between_ready_and_resume);
  RUN(test_close_cancels_waiting_task);
  RUN(test_main_thread_waits_the_same_way);
  RUN(test_main_thread_deadlock);
  RUN(test_cond);
  RUN(test_close_hooks_in_order);
  RUN(test_server_waits);
  RUN(test_fail_shapes);
  return harness_end("test_task");
}
