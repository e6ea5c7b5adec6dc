/* lua_child.c — Lua binding of long-lived child processes (child.h),
 * module "weft.core.child": spawn{argv = {...}, env = {K = "v"}} -> handle
 * with :pid(), :running(), :wait() and :kill(sig). wait() follows the wait
 * protocol (lua_rt.h): the exit callback marks every waiter ready, the
 * result table is built when each resumes. The handle userdata holds a
 * pointer to C-owned memory (luv's way): a child whose handle is collected
 * keeps running and is freed when it exits; one still running when the
 * Lua state closes is killed (SIGKILL) and reaped by the close hook.
 * Depends on lua.h, lua_rt.h, child.h. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "child.h"
#include "lua_rt.h"

#define LC_MT "weft.child"

typedef struct lc_state lc_state_t;

/* One child and whoever waits for it. */
typedef struct lc_child {
  wf_child_t *c;
  lc_state_t *st;
  struct lc_child **box; /* the userdata's pointer; NULL once collected */
  wf_task_t *waiters;    /* tasks (and a main-thread waiter) in wait() */
  struct lc_child *prev, *next;
} lc_child_t;

/* Per state: the live children, so that the state's close kills them.
 * Found through its close hook. */
struct lc_state {
  wf_lua_hook_t hook; /* first: the hook is the state */
  lc_child_t *live;
};

/* Signal names kill() accepts (with or without "SIG"). */
static const struct {
  const char *name;
  int sig;
} lc_signals[] = {{"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT},
                  {"KILL", SIGKILL}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
                  {"ALRM", SIGALRM}, {"TERM", SIGTERM}, {"CONT", SIGCONT},
                  {"STOP", SIGSTOP}, {NULL, 0}};

/* Unlink lc from its state's list, clear its userdata's pointer and free
 * it with its child (killed and reaped if still running). */
static void lc_free(lc_child_t *lc) {
  if (lc->prev)
    lc->prev->next = lc->next;
  else
    lc->st->live = lc->next;
  if (lc->next) lc->next->prev = lc->prev;
  if (lc->box) *lc->box = NULL;
  wf_child_free(lc->c);
  free(lc);
}

/* Close hook: the state closes; its waiters will never be resumed (they
 * forget the wait), its children still running are killed. */
static void lc_close(wf_lua_rt_t *rt, wf_lua_hook_t *h) {
  lc_state_t *st = (lc_state_t *)h;
  (void)rt;
  while (st->live) {
    wf_task_t *t;
    while ((t = st->live->waiters)) {
      st->live->waiters = t->next;
      t->next = NULL;
      t->cancel = NULL;
      t->prepare = NULL;
      t->wait = NULL;
    }
    lc_free(st->live);
  }
  free(st);
}

/* The child state of rt (registering its close hook on first use); NULL
 * when out of memory. */
static lc_state_t *lc_state(wf_lua_rt_t *rt) {
  lc_state_t *st = (lc_state_t *)wf_lua_rt_hook(rt, lc_close);
  if (st || !(st = calloc(1, sizeof *st))) return st;
  st->hook.fn = lc_close;
  st->hook.order = WF_HOOK_IO;
  wf_lua_rt_on_close(rt, &st->hook);
  return st;
}

/* Exit callback (libev, no Lua): every waiter is ready; a child nobody
 * holds any more is freed. */
static void lc_exited(void *ud, wf_child_t *c) {
  lc_child_t *lc = ud;
  wf_task_t *t;
  (void)c;
  while ((t = lc->waiters)) {
    lc->waiters = t->next;
    t->next = NULL;
    wf_task_ready(t);
  }
  if (!lc->box) lc_free(lc);
}

/* Push {code = n} or {signal = n} for an exited child. */
static void lc_push_result(lua_State *L, const wf_child_t *c) {
  lua_createtable(L, 0, 1);
  if (wf_child_signal(c)) {
    lua_pushinteger(L, wf_child_signal(c));
    lua_setfield(L, -2, "signal");
  } else {
    lua_pushinteger(L, wf_child_code(c));
    lua_setfield(L, -2, "code");
  }
}

/* The waiter resumes: the result table. */
static int lc_prepare(wf_task_t *t, lua_State *L) {
  lc_child_t *lc = t->wait;
  lc_push_result(L, lc->c);
  return 1;
}

/* Cancel (abort, deadlock): leave the waiter list (a waiter already woken
 * by the exit is no longer in it). */
static void lc_cancel(wf_task_t *t) {
  lc_child_t *lc = t->wait;
  wf_task_delist(t, &lc->waiters);
}

/* The live child of handle arg 1 (raises when the state closed it). */
static lc_child_t *lc_check(lua_State *L) {
  lc_child_t **box = luaL_checkudata(L, 1, LC_MT);
  if (!*box) luaL_error(L, "child: the handle is closed (the Lua state is closing)");
  return *box;
}

/* A NULL-terminated string array of n + 1 slots in a userdata left on
 * the stack (collected with it). */
static const char **lc_strv(lua_State *L, size_t n) {
  const char **v = lua_newuserdata(L, (n + 1) * sizeof *v);
  memset(v, 0, (n + 1) * sizeof *v);
  return v;
}

/* child.spawn{argv = {...}, env = {K = "v"}} -> handle | nil, err, "io".
 * Starts argv (argv[1] looked up in PATH when it has no '/') with this
 * process's environment plus env, stdout/stderr inherited, stdin
 * /dev/null; the child is SIGKILLed if this process dies. Misuse (argv
 * not a non-empty list of strings, env not a table of strings) raises. */
static int l_spawn(lua_State *L) {
  wf_lua_rt_t *rt = wf_lua_rt(L);
  const char **argv, **env;
  size_t n, nenv = 0, i = 0;
  lc_child_t **box, *lc;
  lc_state_t *st;
  wf_err_t err;
  luaL_checktype(L, 1, LUA_TTABLE);
  /* an aborted invocation's task starts no process */
  if (wf_task_aborted(rt, L)) return wf_task_refuse(L, "child.spawn");
  lua_getfield(L, 1, "argv"); /* 2 */
  if (!lua_istable(L, 2) || (n = lua_objlen(L, 2)) == 0)
    return luaL_error(L, "child.spawn: argv must be a non-empty list of strings");
  argv = lc_strv(L, n); /* 3 */
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, 2, (int)i + 1);
    if (lua_type(L, -1) != LUA_TSTRING || !lua_objlen(L, -1))
      return luaL_error(L, "child.spawn: argv[%d] must be a non-empty string",
                        (int)i + 1);
    argv[i] = lua_tostring(L, -1); /* anchored by the list */
    lua_pop(L, 1);
  }
  lua_getfield(L, 1, "env"); /* 4 */
  if (!lua_isnil(L, 4) && !lua_istable(L, 4))
    return luaL_error(L, "child.spawn: env must be a table of strings");
  if (lua_istable(L, 4))
    for (lua_pushnil(L); lua_next(L, 4); lua_pop(L, 1)) nenv++;
  env = lc_strv(L, nenv); /* 5 */
  lua_createtable(L, (int)nenv, 0); /* 6: anchors the "K=V" strings */
  if (nenv) {
    i = 0;
    for (lua_pushnil(L); lua_next(L, 4); lua_pop(L, 1)) {
      const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
      if (!k || !*k || strchr(k, '='))
        return luaL_error(L, "child.spawn: env keys must be names without '=' "
                             "(got %s)", k ? k : luaL_typename(L, -2));
      if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
        return luaL_error(L, "child.spawn: env.%s must be a string", k);
      lua_pushfstring(L, "%s=%s", k, lua_tostring(L, -1));
      env[i] = lua_tostring(L, -1);
      lua_rawseti(L, 6, (int)++i);
    }
  }
  box = lua_newuserdata(L, sizeof *box); /* 7 */
  *box = NULL;
  /* every check and Lua allocation is done: nothing below raises */
  if (!(st = lc_state(rt)) || !(lc = calloc(1, sizeof *lc)))
    return wf_lua_fail(L, "child.spawn: out of memory", "io");
  lc->c = wf_child_spawn(rt->loop, argv, env, lc_exited, lc, &err);
  if (!lc->c) {
    free(lc);
    return wf_lua_fail(L, err.msg, "io");
  }
  lc->st = st;
  lc->box = box;
  *box = lc;
  lc->next = st->live;
  if (st->live) st->live->prev = lc;
  st->live = lc;
  luaL_getmetatable(L, LC_MT);
  lua_setmetatable(L, 7);
  return 1;
}

/* handle:pid() -> the child's pid. */
static int l_pid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)wf_child_pid(lc_check(L)->c));
  return 1;
}

/* handle:running() -> true until the child has exited. */
static int l_running(lua_State *L) {
  lua_pushboolean(L, wf_child_running(lc_check(L)->c));
  return 1;
}

/* handle:wait() -> {code = n} | {signal = n}. Yields the calling task
 * until the child exits; on the main thread runs the loop. */
static int l_wait(lua_State *L) {
  lc_child_t *lc = lc_check(L);
  wf_task_t mw, *t;
  if (!wf_child_running(lc->c)) {
    lc_push_result(L, lc->c);
    return 1;
  }
  t = wf_task_waiter(wf_lua_rt(L), L, "child:wait", &mw);
  wf_task_enlist(t, lc, lc_cancel, &lc->waiters);
  t->prepare = lc_prepare;
  return wf_task_suspend(t, L, "child:wait");
}

/* handle:kill([sig]) -> true | nil, err, "exited". sig: a number or a
 * name ("TERM", "SIGKILL", ...); default SIGTERM. Misuse raises. */
static int l_kill(lua_State *L) {
  lc_child_t *lc = lc_check(L);
  int sig = SIGTERM;
  wf_err_t err;
  if (lua_type(L, 2) == LUA_TSTRING) {
    const char *name = lua_tostring(L, 2);
    if (!strncmp(name, "SIG", 3)) name += 3;
    sig = 0;
    for (int i = 0; lc_signals[i].name && !sig; i++)
      if (!strcmp(lc_signals[i].name, name)) sig = lc_signals[i].sig;
    if (!sig)
      return luaL_error(L, "child:kill: unknown signal '%s' (names: HUP, INT, "
                           "QUIT, KILL, USR1, USR2, ALRM, TERM, CONT, STOP, or "
                           "a number)", lua_tostring(L, 2));
  } else if (!lua_isnoneornil(L, 2)) {
    sig = (int)luaL_checkinteger(L, 2);
    luaL_argcheck(L, sig > 0 && sig < 65, 2, "not a signal number");
  }
  if (wf_child_kill(lc->c, sig, &err) != WF_OK)
    return wf_lua_fail(L, err.msg, "exited");
  lua_pushboolean(L, 1);
  return 1;
}

/* __gc: the handle is collected; a child still running is left to run
 * and freed when it exits. */
static int l_gc(lua_State *L) {
  lc_child_t **box = luaL_checkudata(L, 1, LC_MT), *lc = *box;
  if (!lc) return 0;
  lc->box = NULL;
  *box = NULL;
  if (!wf_child_running(lc->c)) lc_free(lc);
  return 0;
}

static const luaL_Reg handle_fns[] = {{"pid", l_pid},
                                      {"running", l_running},
                                      {"wait", l_wait},
                                      {"kill", l_kill},
                                      {NULL, NULL}};

int wf_lua_open_child(lua_State *L) {
  wf_lua_class(L, LC_MT, handle_fns, l_gc);
  lua_newtable(L);
  lua_pushcfunction(L, l_spawn);
  lua_setfield(L, -2, "spawn");
  return 1;
}
