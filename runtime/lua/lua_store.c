/* lua_store.c — Lua binding of store.h (package "weft.core.store"): raw
 * primitives behind lua/weft/store.lua, which validates arguments and
 * builds batches. open(url) -> store userdata | nil, err, code; add_secret
 * and warning (redaction and file modes, store.h); get, scan, range,
 * commit, size, time and the queue operations (queue_take,
 * queue_reclaim, queue_touch, queue_info) suspend the caller until the
 * store's callback
 * (wf_task_waiter: a task yields, the main thread runs the loop); close.
 *
 * The userdata holds a pointer to the C store; close() and __gc close it
 * (which delivers every pending callback). A pending operation is a small
 * heap waiter following the wait protocol (lua_rt.h): the store callback
 * copies the result into it (the store's result lives only during the
 * callback) and marks the caller ready; the Lua values are built by its
 * prepare function when the caller resumes. A caller aborted while it
 * waits (executor timeout, cancel) leaves its waiter detached: the
 * operation still completes (a batch may be applied) and the result is
 * dropped. Depends on lua.h, lua_rt.h, store.h. */
#include <stdlib.h>
#include <string.h>

#include "lua_rt.h"
#include "store.h"

#define STORE_MT "weft.store"

enum { W_GET, W_SCAN, W_RANGE, W_COMMIT, W_SIZE, W_TIME, W_QTAKE,
       W_QRECLAIM, W_QTOUCH, W_QINFO };

typedef struct lstore lstore_t;

/* One operation a Lua caller waits for. */
typedef struct lwait {
  int kind;
  wf_task_t *t;   /* the waiter (a task or the main thread); NULL: detached */
  lstore_t *ls;   /* NULL once unlinked (completed or detached) */
  int done;       /* the result is in r (owned: buf) */
  int closed;     /* it completed while its store was closing */
  wf_store_result_t r;
  void *buf;      /* one allocation holding everything r points to */
  struct lwait *prev, *next;
} lwait_t;

struct lstore {
  wf_store_t *s;  /* NULL once closed */
  lwait_t *waits; /* operations not yet completed */
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

/* Push the Lua results of r for an operation of kind k (closed: it
 * completed while the store was closing); returns their number. get:
 * value | nil; scan: {{key=, value=}...}; range: {{seq=, value=}...};
 * commit: true, {seq...}, {id...}; size: bytes; time: ms; queue_take and
 * queue_reclaim: {{id=, payload= [, owner=]}...}; queue_touch: count;
 * queue_info: {waiting=, taken=, consumers={[name]=n}}. A failure is nil, err,
 * code: "conflict" (an expectation failed), "closed" (the store was
 * closed meanwhile) or "io" (the backend failed: the message says how). */
static int push_result(lua_State *L, int k, const wf_store_result_t *r,
                       int closed) {
  if (r->status != WF_OK)
    return wf_lua_fail(L, r->err ? r->err : "store error",
                       r->conflict ? "conflict" : closed ? "closed" : "io");
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
      lua_createtable(L, (int)r->nids, 0);
      for (size_t i = 0; i < r->nids; i++) {
        lua_pushstring(L, r->ids[i]);
        lua_rawseti(L, -2, (int)i + 1);
      }
      return 3;
    case W_QTAKE:
    case W_QRECLAIM:
      lua_createtable(L, (int)r->n, 0);
      for (size_t i = 0; i < r->n; i++) {
        lua_createtable(L, 0, 3);
        lua_pushstring(L, r->keys[i]);
        lua_setfield(L, -2, "id");
        lua_pushlstring(L, r->values[i], r->lens[i]);
        lua_setfield(L, -2, "payload");
        if (r->owners) {
          lua_pushstring(L, r->owners[i]);
          lua_setfield(L, -2, "owner");
        }
        lua_rawseti(L, -2, (int)i + 1);
      }
      return 1;
    case W_QTOUCH:
      lua_pushnumber(L, (lua_Number)r->count);
      return 1;
    case W_QINFO:
      lua_createtable(L, 0, 3);
      lua_pushnumber(L, (lua_Number)r->count);
      lua_setfield(L, -2, "waiting");
      lua_pushnumber(L, (lua_Number)r->taken);
      lua_setfield(L, -2, "taken");
      lua_createtable(L, 0, (int)r->n);
      for (size_t i = 0; i < r->n; i++) {
        lua_pushnumber(L, (lua_Number)r->seqs[i]);
        lua_setfield(L, -2, r->keys[i]);
      }
      lua_setfield(L, -2, "consumers");
      return 1;
    case W_SIZE:
      lua_pushnumber(L, (lua_Number)r->len);
      return 1;
    case W_TIME:
      lua_pushnumber(L, r->n ? (lua_Number)r->seqs[0] : 0);
      return 1;
  }
  return 0;
}

/* Copy the n strings of src into dst (room for them at *p, which
 * advances); NULL src: nothing. */
static const char *const *strs_copy(const char **dst, const char *const *src,
                                    size_t n, char **p) {
  if (!src) return NULL;
  for (size_t i = 0; i < n; i++) {
    size_t l = strlen(src[i]) + 1;
    dst[i] = memcpy(*p, src[i], l);
    *p += l;
  }
  return dst;
}

/* Bytes of the n strings of list (NULL: none), NULs included. */
static size_t strs_bytes(const char *const *list, size_t n) {
  size_t b = 0;
  for (size_t i = 0; list && i < n; i++) b += strlen(list[i]) + 1;
  return b;
}

/* Copy r into w (one allocation): arrays first (aligned), then bytes. A
 * copy that cannot be made becomes an "out of memory" failure. */
static void result_copy(lwait_t *w, const wf_store_result_t *r) {
  size_t n = r->n, i, bytes = 0, arrays;
  char *p;
  w->r = *r;
  w->r.err = NULL;
  w->r.keys = NULL;
  w->r.values = NULL;
  w->r.lens = NULL;
  w->r.seqs = NULL;
  w->r.value = NULL;
  w->r.owners = NULL;
  w->r.ids = NULL;
  arrays = n * (3 * sizeof(char *) + sizeof(size_t) + sizeof(long long)) +
           r->nids * sizeof(char *);
  if (r->err) bytes += strlen(r->err) + 1;
  if (r->value) bytes += r->len;
  bytes += strs_bytes(r->keys, n) + strs_bytes(r->owners, n) +
           strs_bytes(r->ids, r->nids);
  for (i = 0; i < n; i++)
    if (r->values) bytes += r->lens[i];
  if (!(w->buf = malloc(arrays + bytes + 1))) {
    memset(&w->r, 0, sizeof w->r);
    w->r.status = WF_ERR;
    w->r.err = "weft.store: out of memory";
    return;
  }
  {
    const char **keys = w->buf, **values = keys + n, **owners = values + n;
    const char **ids = owners + n;
    size_t *lens = (size_t *)(ids + r->nids);
    long long *seqs = (long long *)(lens + n);
    p = (char *)(seqs + n);
    w->r.keys = strs_copy(keys, r->keys, n, &p);
    w->r.owners = strs_copy(owners, r->owners, n, &p);
    w->r.ids = strs_copy(ids, r->ids, r->nids, &p);
    for (i = 0; i < n; i++) {
      if (r->values) {
        values[i] = memcpy(p, r->values[i], r->lens[i]);
        lens[i] = r->lens[i];
        p += r->lens[i];
      }
      if (r->seqs) seqs[i] = r->seqs[i];
    }
    if (r->values) {
      w->r.values = values;
      w->r.lens = lens;
    }
    if (r->seqs) w->r.seqs = seqs;
  }
  if (r->value) {
    w->r.value = memcpy(p, r->value, r->len);
    p += r->len;
  }
  if (r->err) w->r.err = strcpy(p, r->err);
}

/* Free a waiter and its result copy. */
static void wait_free(lwait_t *w) {
  free(w->buf);
  free(w);
}

/* Store callback (from the loop's deferred queue or a close): keep the
 * result for the waiter and mark it ready. Never builds Lua values. */
static void op_cb(void *ud, const wf_store_result_t *r) {
  lwait_t *w = ud;
  int closed = w->ls && !w->ls->s; /* lstore_close clears s first */
  wait_unlink(w);
  if (!w->t) { /* detached: nobody wants the result */
    free(w);
    return;
  }
  result_copy(w, r);
  w->closed = closed;
  w->done = 1;
  wf_task_ready(w->t);
}

/* The caller resumes: its results from the copy. */
static int op_prepare(wf_task_t *t, lua_State *L) {
  lwait_t *w = t->wait;
  int n = push_result(L, w->kind, &w->r, w->closed);
  wait_free(w);
  return n;
}

/* Cancel callback (abort, timeout, deadlock): a completed waiter is freed;
 * a pending one is detached and the operation completes without it. */
static void op_cancel(wf_task_t *t) {
  lwait_t *w = t->wait;
  if (w->done) {
    wait_free(w);
    return;
  }
  w->t = NULL;
  wait_unlink(w);
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
    if (w->t) { /* never resumed: the waiter no longer holds w */
      w->t->cancel = NULL;
      w->t->prepare = NULL;
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

/* open(url) -> store | nil, err, "error" (a bad url, a file that cannot be
 * opened: the message says which) */
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
  if (!ls->s) return wf_lua_fail(L, err.msg, "error");
  return 1;
}

/* kind(store) -> "sqlite" | "redis" | "memory" */
static int l_kind(lua_State *L) {
  lstore_t *ls = check_store(L);
  if (!ls->s) return wf_lua_fail(L, "store closed", "closed");
  lua_pushstring(L, wf_store_kind(ls->s));
  return 1;
}

/* url(store) -> the url, password redacted */
static int l_url(lua_State *L) {
  lstore_t *ls = check_store(L);
  if (!ls->s) return wf_lua_fail(L, "store closed", "closed");
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
  const char **ids;     /* queue_touch (malloc'd; freed once started) */
  size_t nids;
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
    case W_QTAKE:
      wf_store_queue_take(s, a->ns, a->key, (size_t)a->n1, op_cb, w);
      break;
    case W_QRECLAIM:
      wf_store_queue_reclaim(s, a->ns, a->key, (long long)a->n2,
                             (size_t)a->n1, op_cb, w);
      break;
    case W_QTOUCH:
      wf_store_queue_touch(s, a->ns, a->key, a->ids, a->nids, op_cb, w);
      break;
    case W_QINFO:
      wf_store_queue_info(s, a->ns, op_cb, w);
      break;
  }
}

/* Run an operation for waiter t (wf_task_waiter) and suspend its caller
 * until it completes. Arguments are checked; a batch in a->b is owned
 * here. */
static int op_run(lua_State *L, lstore_t *ls, opargs_t *a, wf_task_t *t,
                  const char *fname) {
  lwait_t *w = calloc(1, sizeof *w);
  if (!w) {
    if (a->b) wf_store_discard(a->b);
    free(a->ids);
    return luaL_error(L, "%s: out of memory", fname);
  }
  w->kind = a->kind;
  w->t = t;
  w->ls = ls;
  w->next = ls->waits;
  if (ls->waits) ls->waits->prev = w;
  ls->waits = w;
  t->wait = w;
  t->cancel = op_cancel;
  t->prepare = op_prepare;
  op_start(ls->s, a, w);
  free(a->ids); /* the backends copied what they keep */
  return wf_task_suspend(t, L, fname);
}

/* A read operation called from L: nil, "store closed", "closed" once the
 * store is closed, nil, err, "cancelled" in a task whose invocation was
 * aborted (nothing started), else op_run for L's waiter. */
static int op_call(lua_State *L, lstore_t *ls, opargs_t *a,
                   const char *fname) {
  wf_lua_rt_t *rt = wf_lua_rt(L);
  wf_task_t mw, *t;
  if (wf_task_aborted(rt, L)) {
    free(a->ids);
    return wf_task_refuse(L, fname);
  }
  t = wf_task_waiter(rt, L, fname, &mw);
  if (!ls->s) {
    free(a->ids);
    return wf_lua_fail(L, "store closed", "closed");
  }
  return op_run(L, ls, a, t, fname);
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

/* The read operations (they write nothing, or only queue ownership): the
 * kind, the name errors use, how many name arguments follow the store (the
 * missing ones are ""), and up to two counts: the argument each is read
 * from (0: none) and its default. */
typedef struct readop {
  const char *name, *fname; /* the field, and "store:<name>" */
  int kind, names;
  int n1_arg, n2_arg;
  lua_Number n1_dflt, n2_dflt;
} readop_t;

static const readop_t readops[] = {
    /* get(store, ns, key) -> value | nil (absent) | nil, err, code */
    {"get", "store:get", W_GET, 2, 0, 0, 0, 0},
    /* scan(store, ns, prefix, limit) -> {{key=, value=}...} */
    {"scan", "store:scan", W_SCAN, 2, 4, 0, 0, 0},
    /* range(store, ns, key, from, to) -> {{seq=, value=}...} */
    {"range", "store:range", W_RANGE, 2, 4, 5, 1, 0},
    /* size(store, ns) -> bytes */
    {"size", "store:size", W_SIZE, 1, 0, 0, 0, 0},
    /* time(store) -> the store's clock in ms */
    {"time", "store:time", W_TIME, 0, 0, 0, 0, 0},
    /* queue_take(store, q, consumer, n) -> {{id=, payload=}...} */
    {"queue_take", "store:queue_take", W_QTAKE, 2, 4, 0, 1, 0},
    /* queue_reclaim(store, q, consumer, min_idle_ms, n) -> {{id=,
     * payload=, owner=}...} */
    {"queue_reclaim", "store:queue_reclaim", W_QRECLAIM, 2, 5, 4, 1, 0},
    /* queue_info(store, q) -> {waiting=, taken=, consumers={}} */
    {"queue_info", "store:queue_info", W_QINFO, 1, 0, 0, 0, 0},
};

/* A read operation of readops (upvalue 1): its result, or nil, err, code
 * (code "closed" once the store is closed). */
static int l_read(lua_State *L) {
  const readop_t *r = lua_touserdata(L, lua_upvalueindex(1));
  lstore_t *ls = check_store(L);
  opargs_t a = {r->kind, r->names > 0 ? check_name(L, 2) : "",
                r->names > 1 ? check_name(L, 3) : "", 0, 0, NULL, NULL, 0};
  if (r->n1_arg) a.n1 = check_count(L, r->n1_arg, r->n1_dflt);
  if (r->n2_arg) a.n2 = check_count(L, r->n2_arg, r->n2_dflt);
  return op_call(L, ls, &a, r->fname);
}

/* queue_touch(store, q, consumer, {id...}) -> count | nil, err, code */
static int l_queue_touch(lua_State *L) {
  lstore_t *ls = check_store(L);
  opargs_t a = {W_QTOUCH, check_name(L, 2), check_name(L, 3),
                0, 0, NULL, NULL, 0};
  size_t i;
  luaL_checktype(L, 4, LUA_TTABLE);
  a.nids = lua_objlen(L, 4);
  for (i = 1; i <= a.nids; i++) { /* the ids stay anchored by the table */
    lua_rawgeti(L, 4, (int)i);
    if (lua_type(L, -1) != LUA_TSTRING)
      return luaL_error(L, "store:queue_touch: id %d must be a string",
                        (int)i);
    lua_pop(L, 1);
  }
  if (!(a.ids = malloc((a.nids + 1) * sizeof *a.ids)))
    return luaL_error(L, "store:queue_touch: out of memory");
  for (i = 1; i <= a.nids; i++) {
    lua_rawgeti(L, 4, (int)i);
    a.ids[i - 1] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  if (!ls->s) {
    free(a.ids);
    return wf_lua_fail(L, "store closed", "closed");
  }
  return op_call(L, ls, &a, "store:queue_touch");
}

/* Batch op codes of the flat ops list (lua/weft/store.lua uses them). */
enum { B_PUT = 1, B_DEL, B_DEL_PREFIX, B_APPEND, B_TRIM, B_EXPECT,
       B_EXPECT_LAST, B_QPUSH, B_QACK };

/* commit(store, ops, n) -> true, {seq...}, {id...} | nil, err, code. ops
 * is a flat list of n writes and expectations, 4 slots each: code, ns (or
 * queue), key (queue_ack: the id; queue_push: ""), value (a string) or
 * keep_from / last (a number) or false (expect: the record must be
 * absent; queue_ack). */
static int l_commit(lua_State *L) {
  lstore_t *ls = check_store(L);
  lua_Integer n = luaL_checkinteger(L, 3), i;
  opargs_t a = {W_COMMIT, NULL, NULL, 0, 0, NULL, NULL, 0};
  wf_task_t mw, *t;
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_argcheck(L, n >= 0, 3, "must be >= 0");
  /* check every slot before anything is held */
  for (i = 0; i < n; i++) {
    int code, k;
    lua_rawgeti(L, 2, (int)(4 * i + 1));
    code = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (code < B_PUT || code > B_QACK)
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
    if ((code == B_PUT || code == B_APPEND || code == B_QPUSH) &&
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
  if (wf_task_aborted(wf_lua_rt(L), L)) /* a write would still apply */
    return wf_task_refuse(L, "batch:commit");
  t = wf_task_waiter(wf_lua_rt(L), L, "batch:commit", &mw);
  if (!ls->s) return wf_lua_fail(L, "store closed", "closed");
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
      case B_QPUSH:
        wf_store_queue_push(a.b, ns, val, vlen);
        break;
      case B_QACK:
        wf_store_queue_ack(a.b, ns, key);
        break;
    }
    lua_pop(L, 4);
  }
  return op_run(L, ls, &a, t, "batch:commit");
}

static const luaL_Reg store_fns[] = {{"open", l_open},
                                     {"kind", l_kind},
                                     {"url", l_url},
                                     {"warning", l_warning},
                                     {"add_secret", l_add_secret},
                                     {"close", l_close},
                                     {"is_closed", l_is_closed},
                                     {"commit", l_commit},
                                     {"queue_touch", l_queue_touch},
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
  for (size_t i = 0; i < sizeof readops / sizeof *readops; i++) {
    lua_pushlightuserdata(L, (void *)&readops[i]);
    lua_pushcclosure(L, l_read, 1);
    lua_setfield(L, -2, readops[i].name);
  }
  return 1;
}
