/* lua_store.c — Lua binding of store.h (package "weft.core.store"): raw
 * primitives behind lua/weft/store.lua, which validates arguments and
 * builds batches. open(url) -> store userdata | nil, err; add_secret and
 * warning (redaction and file modes, store.h); get, scan, range,
 * commit and size yield the calling task until the store's callback (or,
 * on the main thread, run the loop until then); close(store).
 *
 * The userdata holds a pointer to the C store; close() and __gc close it
 * (which delivers every pending callback). A pending operation is a small
 * waiter: the callback pushes the results onto the waiting task's
 * coroutine and wakes it (never resumes Lua), or, for the main thread,
 * pushes them onto the caller's stack and flags it done. A task aborted
 * while it waits (executor timeout, cancel) leaves its waiter detached: the
 * operation still completes (a batch may be applied) and the result is
 * dropped. Depends on lua.h, lua_rt.h, store.h. */
#include <stdlib.h>
#include <string.h>

#include "lua_rt.h"
#include "store.h"

#define STORE_MT "weft.store"

enum { W_GET, W_SCAN, W_RANGE, W_COMMIT, W_SIZE, W_TIME };

typedef struct lstore lstore_t;

/* One operation a Lua caller waits for. */
typedef struct lwait {
  int kind;
  wf_task_t *t;   /* the waiting task; NULL: main thread or detached */
  lua_State *L;   /* main thread: where results go */
  int done, nret;
  lstore_t *ls;   /* NULL once detached */
  struct lwait *prev, *next;
} lwait_t;

struct lstore {
  wf_store_t *s;  /* NULL once closed */
  lwait_t *waits; /* task waits (detached at close) */
};

/* Take w out of its store's list. */
static void wait_unlink(lwait_t *w) {
  if (!w->ls) return;
  if (w->prev)
    w->prev->next = w->next;
  else
    w->ls->waits = w->next;
  if (w->next) w->next->prev = w->prev;
  w->prev = w->next = NULL;
  w->ls = NULL;
}

/* Push the Lua results of r for an operation of kind k; returns their
 * number. get: value | nil | nil, err; scan: {{key=, value=}...};
 * range: {{seq=, value=}...}; commit: true, {seq...} | nil, err,
 * "conflict" (an expectation failed); size: bytes; time: ms. */
static int push_result(lua_State *L, int k, const wf_store_result_t *r) {
  if (r->status != WF_OK) {
    lua_pushnil(L);
    lua_pushstring(L, r->err ? r->err : "store error");
    if (!r->conflict) return 2;
    lua_pushliteral(L, "conflict");
    return 3;
  }
  switch (k) {
    case W_GET:
      if (r->found)
        lua_pushlstring(L, r->value, r->len);
      else
        lua_pushnil(L);
      return 1;
    case W_SCAN:
    case W_RANGE:
      lua_createtable(L, (int)r->n, 0);
      for (size_t i = 0; i < r->n; i++) {
        lua_createtable(L, 0, 2);
        if (k == W_SCAN)
          lua_pushstring(L, r->keys[i]);
        else
          lua_pushnumber(L, (lua_Number)r->seqs[i]);
        lua_setfield(L, -2, k == W_SCAN ? "key" : "seq");
        lua_pushlstring(L, r->values[i], r->lens[i]);
        lua_setfield(L, -2, "value");
        lua_rawseti(L, -2, (int)i + 1);
      }
      return 1;
    case W_COMMIT:
      lua_pushboolean(L, 1);
      lua_createtable(L, (int)r->n, 0);
      for (size_t i = 0; i < r->n; i++) {
        lua_pushnumber(L, (lua_Number)r->seqs[i]);
        lua_rawseti(L, -2, (int)i + 1);
      }
      return 2;
    case W_SIZE:
      lua_pushnumber(L, (lua_Number)r->len);
      return 1;
    case W_TIME:
      lua_pushnumber(L, r->n ? (lua_Number)r->seqs[0] : 0);
      return 1;
  }
  return 0;
}

/* Store callback (from the loop's deferred queue or a close): hand the
 * results to whoever waits. Never resumes Lua. */
static void op_cb(void *ud, const wf_store_result_t *r) {
  lwait_t *w = ud;
  wf_task_t *t = w->t;
  int kind = w->kind;
  if (w->L) { /* main thread: its frame is below us on the C stack */
    w->nret = push_result(w->L, kind, r);
    w->done = 1;
    return;
  }
  wait_unlink(w);
  free(w);
  if (!t) return; /* detached: nobody wants the result */
  t->cancel = NULL;
  t->wait = NULL;
  wf_task_wake(t, push_result(t->co, kind, r));
}

/* Cancel callback of a waiting task (abort, timeout): detach its waiter;
 * the operation completes without it. */
static void op_cancel(wf_task_t *t) {
  lwait_t *w = t->wait;
  t->wait = NULL;
  if (w) {
    w->t = NULL;
    wait_unlink(w);
  }
}

/* ---- the store userdata ------------------------------------------------- */

/* Close ls's store, which runs every pending callback: waiting tasks get
 * their results (or "store closed") — unless detach is set (the state is
 * closing: they will never be resumed, so nothing is pushed for them). */
static void lstore_close(lstore_t *ls, int detach) {
  lwait_t *w;
  wf_store_t *s = ls->s;
  if (!s) return;
  ls->s = NULL;
  while (detach && (w = ls->waits)) {
    if (w->t) {
      w->t->cancel = NULL;
      w->t->wait = NULL;
      w->t = NULL;
    }
    wait_unlink(w);
  }
  wf_store_close(s);
}

/* __gc: close what close() did not. */
static int l_gc(lua_State *L) {
  lstore_t *ls = lua_touserdata(L, 1);
  /* a waiting task's frame anchors the userdata: only at state close can
   * a store with waiters be collected */
  if (ls) lstore_close(ls, 1);
  return 0;
}

/* The store userdata at index 1 (raises on another type). */
static lstore_t *check_store(lua_State *L) {
  return luaL_checkudata(L, 1, STORE_MT);
}

/* Push nil, msg; returns 2. */
static int push_fail(lua_State *L, const char *msg) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  return 2;
}

/* open(url) -> store | nil, err */
static int l_open(lua_State *L) {
  const char *url = luaL_checkstring(L, 1);
  wf_lua_rt_t *rt = wf_lua_rt(L);
  lstore_t *ls = lua_newuserdata(L, sizeof *ls);
  wf_err_t err;
  ls->s = NULL;
  ls->waits = NULL;
  luaL_getmetatable(L, STORE_MT);
  lua_setmetatable(L, -2);
  ls->s = wf_store_open(rt->loop, url, &err);
  if (!ls->s) return push_fail(L, err.msg);
  return 1;
}

/* kind(store) -> "sqlite" | "redis" | "memory" */
static int l_kind(lua_State *L) {
  lstore_t *ls = check_store(L);
  if (!ls->s) return push_fail(L, "store closed");
  lua_pushstring(L, wf_store_kind(ls->s));
  return 1;
}

/* url(store) -> the url, password redacted */
static int l_url(lua_State *L) {
  lstore_t *ls = check_store(L);
  if (!ls->s) return push_fail(L, "store closed");
  lua_pushstring(L, wf_store_url(ls->s));
  return 1;
}

/* warning(store) -> what opening found worth a warning, or nil */
static int l_warning(lua_State *L) {
  lstore_t *ls = check_store(L);
  const char *w = ls->s ? wf_store_warning(ls->s) : NULL;
  if (w)
    lua_pushstring(L, w);
  else
    lua_pushnil(L);
  return 1;
}

/* add_secret(store, secret): from now on every occurrence of secret in
 * what is written to the store becomes "[redacted]" (store.h). A closed
 * store ignores it. */
static int l_add_secret(lua_State *L) {
  lstore_t *ls = check_store(L);
  size_t len;
  const char *v = luaL_checklstring(L, 2, &len);
  if (ls->s) wf_store_add_secret(ls->s, v, len);
  return 0;
}

/* close(store) -> true (also when closed already); tasks waiting on it
 * resume with their results or nil, "store closed". */
static int l_close(lua_State *L) {
  lstore_t *ls = check_store(L);
  lstore_close(ls, 0);
  lua_pushboolean(L, 1);
  return 1;
}

/* is_closed(store) -> boolean */
static int l_is_closed(lua_State *L) {
  lua_pushboolean(L, check_store(L)->s == NULL);
  return 1;
}

/* inject_failure(store, after): the next commit fails after `after`
 * writes (tests). */
static int l_inject_failure(lua_State *L) {
  lstore_t *ls = check_store(L);
  lua_Integer after = luaL_checkinteger(L, 2);
  luaL_argcheck(L, after >= 0, 2, "must be >= 0");
  if (ls->s) wf_store_inject_failure(ls->s, (size_t)after);
  return 0;
}

/* ---- operations ---------------------------------------------------------- */

/* What an operation needs from its caller's arguments. */
typedef struct opargs {
  int kind;
  const char *ns, *key;
  lua_Number n1, n2;
  wf_store_batch_t *b;
} opargs_t;

/* Start the operation with waiter w. */
static void op_start(wf_store_t *s, opargs_t *a, lwait_t *w) {
  switch (a->kind) {
    case W_GET:
      wf_store_get(s, a->ns, a->key, op_cb, w);
      break;
    case W_SCAN:
      wf_store_scan(s, a->ns, a->key, (size_t)a->n1, op_cb, w);
      break;
    case W_RANGE:
      wf_store_range(s, a->ns, a->key, (long long)a->n1, (long long)a->n2,
                     op_cb, w);
      break;
    case W_COMMIT:
      wf_store_commit(a->b, op_cb, w);
      break;
    case W_SIZE:
      wf_store_size(s, a->ns, op_cb, w);
      break;
    case W_TIME:
      wf_store_time(s, op_cb, w);
      break;
  }
}

/* Run an operation for the caller: yield task t, or (t NULL: the main
 * thread) run the loop until it completes. Arguments are checked and
 * wf_task_check_blocking has passed; a batch in a->b is owned here. */
static int op_run(lua_State *L, lstore_t *ls, opargs_t *a, wf_task_t *t) {
  lwait_t mw;
  if (t) {
    lwait_t *w = calloc(1, sizeof *w);
    if (!w) {
      if (a->b) wf_store_discard(a->b);
      return luaL_error(L, "weft.store: out of memory");
    }
    w->kind = a->kind;
    w->t = t;
    w->ls = ls;
    w->next = ls->waits;
    if (ls->waits) ls->waits->prev = w;
    ls->waits = w;
    t->wait = w;
    t->cancel = op_cancel;
    op_start(ls->s, a, w);
    return wf_task_yield(t, L);
  }
  memset(&mw, 0, sizeof mw);
  mw.kind = a->kind;
  mw.L = L;
  op_start(ls->s, a, &mw);
  while (!mw.done) wf_loop_step(wf_lua_rt(L)->loop);
  return mw.nret;
}

/* A string argument without NUL bytes (C sees it whole). */
static const char *check_name(lua_State *L, int idx) {
  size_t n;
  const char *s = luaL_checklstring(L, idx, &n);
  luaL_argcheck(L, strlen(s) == n, idx, "must not contain NUL bytes");
  return s;
}

/* A non-negative integer argument (a lua_Number holding one). */
static lua_Number check_count(lua_State *L, int idx, lua_Number dflt) {
  lua_Number v = luaL_optnumber(L, idx, dflt);
  luaL_argcheck(L,
                v >= 0 && v <= 9007199254740992.0 &&
                    v == (lua_Number)(long long)v,
                idx, "must be an integer >= 0");
  return v;
}

/* get(store, ns, key) -> value | nil (absent) | nil, err */
static int l_get(lua_State *L) {
  lstore_t *ls = check_store(L);
  opargs_t a = {W_GET, check_name(L, 2), check_name(L, 3), 0, 0, NULL};
  wf_task_t *t = wf_task_check_blocking(wf_lua_rt(L), L, "store:get");
  if (!ls->s) return push_fail(L, "store closed");
  return op_run(L, ls, &a, t);
}

/* scan(store, ns, prefix, limit) -> {{key=, value=}...} | nil, err */
static int l_scan(lua_State *L) {
  lstore_t *ls = check_store(L);
  opargs_t a = {W_SCAN, check_name(L, 2), check_name(L, 3), 0, 0, NULL};
  a.n1 = check_count(L, 4, 0);
  wf_task_t *t = wf_task_check_blocking(wf_lua_rt(L), L, "store:scan");
  if (!ls->s) return push_fail(L, "store closed");
  return op_run(L, ls, &a, t);
}

/* range(store, ns, key, from, to) -> {{seq=, value=}...} | nil, err */
static int l_range(lua_State *L) {
  lstore_t *ls = check_store(L);
  opargs_t a = {W_RANGE, check_name(L, 2), check_name(L, 3), 0, 0, NULL};
  a.n1 = check_count(L, 4, 1);
  a.n2 = check_count(L, 5, 0);
  wf_task_t *t = wf_task_check_blocking(wf_lua_rt(L), L, "store:range");
  if (!ls->s) return push_fail(L, "store closed");
  return op_run(L, ls, &a, t);
}

/* size(store, ns) -> bytes | nil, err */
static int l_size(lua_State *L) {
  lstore_t *ls = check_store(L);
  opargs_t a = {W_SIZE, check_name(L, 2), "", 0, 0, NULL};
  wf_task_t *t = wf_task_check_blocking(wf_lua_rt(L), L, "store:size");
  if (!ls->s) return push_fail(L, "store closed");
  return op_run(L, ls, &a, t);
}

/* time(store) -> the store's clock in ms | nil, err */
static int l_time(lua_State *L) {
  lstore_t *ls = check_store(L);
  opargs_t a = {W_TIME, "", "", 0, 0, NULL};
  wf_task_t *t = wf_task_check_blocking(wf_lua_rt(L), L, "store:time");
  if (!ls->s) return push_fail(L, "store closed");
  return op_run(L, ls, &a, t);
}

/* Batch op codes of the flat ops list (lua/weft/store.lua uses them). */
enum { B_PUT = 1, B_DEL, B_DEL_PREFIX, B_APPEND, B_TRIM, B_EXPECT,
       B_EXPECT_LAST };

/* commit(store, ops, n) -> true, {seq...} | nil, err[, "conflict"]. ops is
 * a flat list of n writes and expectations, 4 slots each: code, ns, key,
 * value (a string) or keep_from / last (a number) or false (expect: the
 * record must be absent). */
static int l_commit(lua_State *L) {
  lstore_t *ls = check_store(L);
  lua_Integer n = luaL_checkinteger(L, 3), i;
  opargs_t a = {W_COMMIT, NULL, NULL, 0, 0, NULL};
  wf_task_t *t;
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_argcheck(L, n >= 0, 3, "must be >= 0");
  /* check every slot before anything is held */
  for (i = 0; i < n; i++) {
    int code, k;
    lua_rawgeti(L, 2, (int)(4 * i + 1));
    code = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (code < B_PUT || code > B_EXPECT_LAST)
      return luaL_error(L, "commit: op %d: bad code", (int)i + 1);
    for (k = 2; k <= 3; k++) {
      lua_rawgeti(L, 2, (int)(4 * i + k));
      size_t len;
      const char *str = lua_tolstring(L, -1, &len);
      if (lua_type(L, -1) != LUA_TSTRING || strlen(str) != len)
        return luaL_error(L, "commit: op %d: %s must be a string without "
                          "NUL bytes", (int)i + 1, k == 2 ? "ns" : "key");
      lua_pop(L, 1);
    }
    lua_rawgeti(L, 2, (int)(4 * i + 4));
    if ((code == B_PUT || code == B_APPEND) &&
        lua_type(L, -1) != LUA_TSTRING)
      return luaL_error(L, "commit: op %d: value must be a string",
                        (int)i + 1);
    if ((code == B_TRIM || code == B_EXPECT_LAST) &&
        lua_type(L, -1) != LUA_TNUMBER)
      return luaL_error(L, "commit: op %d: %s must be a number", (int)i + 1,
                        code == B_TRIM ? "keep_from" : "last");
    if (code == B_EXPECT && lua_type(L, -1) != LUA_TSTRING &&
        lua_type(L, -1) != LUA_TBOOLEAN)
      return luaL_error(L, "commit: op %d: value must be a string or false",
                        (int)i + 1);
    lua_pop(L, 1);
  }
  t = wf_task_check_blocking(wf_lua_rt(L), L, "batch:commit");
  if (!ls->s) return push_fail(L, "store closed");
  /* nothing below raises until the batch is handed over */
  a.b = wf_store_batch(ls->s);
  for (i = 0; i < n; i++) {
    const char *ns, *key, *val = NULL;
    size_t vlen = 0;
    int code;
    lua_rawgeti(L, 2, (int)(4 * i + 1));
    lua_rawgeti(L, 2, (int)(4 * i + 2));
    lua_rawgeti(L, 2, (int)(4 * i + 3));
    lua_rawgeti(L, 2, (int)(4 * i + 4));
    code = (int)lua_tointeger(L, -4);
    ns = lua_tostring(L, -3);
    key = lua_tostring(L, -2);
    if (lua_type(L, -1) == LUA_TSTRING) val = lua_tolstring(L, -1, &vlen);
    switch (code) {
      case B_PUT:
        wf_store_put(a.b, ns, key, val, vlen);
        break;
      case B_DEL:
        wf_store_del(a.b, ns, key);
        break;
      case B_DEL_PREFIX:
        wf_store_del_prefix(a.b, ns, key);
        break;
      case B_APPEND:
        wf_store_append(a.b, ns, key, val, vlen);
        break;
      case B_TRIM:
        wf_store_trim(a.b, ns, key, (long long)lua_tonumber(L, -1));
        break;
      case B_EXPECT:
        wf_store_expect(a.b, ns, key, val, vlen);
        break;
      case B_EXPECT_LAST:
        wf_store_expect_last(a.b, ns, key, (long long)lua_tonumber(L, -1));
        break;
    }
    lua_pop(L, 4);
  }
  return op_run(L, ls, &a, t);
}

static const luaL_Reg store_fns[] = {{"open", l_open},
                                     {"kind", l_kind},
                                     {"url", l_url},
                                     {"warning", l_warning},
                                     {"add_secret", l_add_secret},
                                     {"close", l_close},
                                     {"is_closed", l_is_closed},
                                     {"get", l_get},
                                     {"scan", l_scan},
                                     {"range", l_range},
                                     {"size", l_size},
                                     {"time", l_time},
                                     {"commit", l_commit},
                                     {"inject_failure", l_inject_failure},
                                     {NULL, NULL}};

/* Push the weft.core.store module table (and register its metatable). */
int wf_lua_open_store(lua_State *L) {
  wf_lua_rt(L);
  if (luaL_newmetatable(L, STORE_MT)) {
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_newtable(L);
  luaL_register(L, NULL, store_fns);
  return 1;
}
