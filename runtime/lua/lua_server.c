/* lua_server.c — Lua binding of server.c (package "weft.core.server"): the
 * raw primitives behind lua/weft/server.lua. Nothing here blocks except
 * the two wait primitives: wait(srv) suspends the calling task until the
 * server has news (a request ready, fewer requests in flight, stopped) and
 * flush(req) until the request's queued stream bytes are taken or it is
 * closed. Both follow the wait protocol (lua_rt.h): server callbacks only
 * record the outcome and make the waiter ready, the resumer pushes the
 * boolean; the Lua side retries (accept, inflight, pending) after each
 * wait, as with weft.tcp.
 *
 * Userdata hold pointers to C-owned objects: a server lives until stop()
 * or __gc; a request until release() or __gc (server.c keeps it valid,
 * marked closed, after the server is gone).
 * Depends on lua.h, server.h, lua_rt.h. */
#include <stdlib.h>
#include <string.h>

#include "lua_rt.h"
#include "server.h"

#define SRV_MT "weft.server"
#define REQ_MT "weft.server.request"
#define MAX_HEADERS 256

typedef struct lsrv {
  wf_server_t *s; /* NULL once stopped */
  wf_task_t *waiters; /* tasks in wait(), linked by t->next */
} lsrv_t;

typedef struct lreq {
  wf_server_req_t *r; /* NULL once released */
  wf_task_t *waiter;  /* task in flush() */
} lreq_t;

static char again_key; /* the AGAIN sentinel (a light userdata) */

/* ---- waiting ----------------------------------------------------------- */

/* End t's wait on the server (the server no longer lists it, the task
 * holds nothing: its cancel is cleared) and make it ready with ok. */
static void srv_ready(lsrv_t *ls, wf_task_t *t, int ok) {
  wf_task_delist(t, &ls->waiters);
  t->wait = NULL;
  t->cancel = NULL;
  t->result = ok;
  wf_task_ready(t);
}

/* Every waiter on the server is ready with true. */
static void srv_wake_all(lsrv_t *ls) {
  while (ls->waiters) srv_ready(ls, ls->waiters, 1);
}

/* server.c notify: news for the owner. */
static void srv_notify(void *ud) { srv_wake_all(ud); }

/* Cancel callback of a waiter in wait(srv) (abort, executor timeout,
 * deadlock): leave the list, never wake. */
static void srv_wait_cancel(wf_task_t *t) {
  wf_task_delist(t, &((lsrv_t *)t->wait)->waiters);
}

/* Timeout of a wait(srv): the waiter is ready with false. */
static void srv_wait_timer_cb(struct ev_loop *evl, ev_timer *w, int revents) {
  wf_task_t *t = w->data;
  (void)evl;
  (void)revents;
  srv_ready(t->wait, t, 0);
}

/* The waiter flushing lr, if any, is ready with true. */
static void req_wake(lreq_t *lr) {
  wf_task_t *t = lr->waiter;
  if (!t) return;
  lr->waiter = NULL;
  t->wait = NULL;
  t->cancel = NULL;
  t->result = 1;
  wf_task_ready(t);
}

/* server.c request notify: bytes taken, or closed. */
static void req_notify(void *ud, wf_server_req_t *r) {
  (void)r;
  req_wake(ud);
}

/* Cancel callback of a waiter in flush(req): the request forgets it. */
static void req_wait_cancel(wf_task_t *t) { ((lreq_t *)t->wait)->waiter = NULL; }

/* ---- server ------------------------------------------------------------ */

static lsrv_t *srv_check(lua_State *L, int idx) {
  return *(lsrv_t **)luaL_checkudata(L, idx, SRV_MT);
}

/* Stop ls's server (if running): open requests become closed. */
static void srv_stop(lsrv_t *ls) {
  wf_server_t *s = ls->s;
  if (!s) return;
  ls->s = NULL;
  wf_server_free(s);
  srv_wake_all(ls);
}

/* __gc: stop the server, free the wrapper. */
static int l_srv_gc(lua_State *L) {
  lsrv_t **u = lua_touserdata(L, 1);
  if (u && *u) {
    srv_stop(*u);
    free(*u);
    *u = NULL;
  }
  return 0;
}

/* Read field name of the options table at 1 as a positive number. */
static double opt_num(lua_State *L, const char *name, double def) {
  double v;
  lua_getfield(L, 1, name);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return def;
  }
  if (!lua_isnumber(L, -1))
    luaL_error(L, "server.listen: %s must be a number", name);
  v = lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (!(v > 0)) luaL_error(L, "server.listen: %s must be > 0", name);
  return v;
}

/* listen{host, port, max_connections, max_header_bytes, max_body_bytes,
 * header_timeout, body_timeout, idle_timeout} -> srv | nil, err, "io" */
static int l_listen(lua_State *L) {
  wf_lua_rt_t *rt = wf_lua_rt(L);
  wf_server_opts_t o;
  wf_err_t err;
  lsrv_t **u;
  wf_server_t *s;
  luaL_checktype(L, 1, LUA_TTABLE);
  wf_server_opts_default(&o);
  lua_getfield(L, 1, "host");
  if (!lua_isnil(L, -1)) o.host = luaL_checkstring(L, -1);
  lua_getfield(L, 1, "port");
  if (!lua_isnil(L, -1)) o.port = (int)luaL_checkinteger(L, -1);
  lua_pop(L, 1); /* keep host on the stack (its string is borrowed) */
  o.max_connections = (unsigned)opt_num(L, "max_connections", o.max_connections);
  o.max_header_bytes = (size_t)opt_num(L, "max_header_bytes", (double)o.max_header_bytes);
  o.max_body_bytes = (size_t)opt_num(L, "max_body_bytes", (double)o.max_body_bytes);
  o.header_timeout = opt_num(L, "header_timeout", o.header_timeout);
  o.body_timeout = opt_num(L, "body_timeout", o.body_timeout);
  o.idle_timeout = opt_num(L, "idle_timeout", o.idle_timeout);
  u = lua_newuserdata(L, sizeof *u);
  *u = NULL;
  luaL_getmetatable(L, SRV_MT);
  lua_setmetatable(L, -2);
  *u = calloc(1, sizeof **u);
  if (!*u) return luaL_error(L, "server.listen: out of memory");
  s = wf_server_new(wf_loop_ev(rt->loop), &o, srv_notify, *u, &err);
  if (!s) return wf_lua_fail(L, err.msg, "io");
  (*u)->s = s;
  return 1;
}

/* port(srv) -> the bound port | nil, "closed", "closed" */
static int l_port(lua_State *L) {
  lsrv_t *ls = srv_check(L, 1);
  if (!ls->s) return wf_lua_fail(L, "closed", "closed");
  lua_pushinteger(L, wf_server_port(ls->s));
  return 1;
}

/* Push the request userdata for r. */
static void push_req(lua_State *L, wf_server_req_t *r) {
  lreq_t *lr = lua_newuserdata(L, sizeof *lr);
  lr->r = r;
  lr->waiter = NULL;
  luaL_getmetatable(L, REQ_MT);
  lua_setmetatable(L, -2);
  wf_server_req_set_notify(r, req_notify, lr);
}

/* accept(srv) -> req, method, path, raw_query, headers, body | AGAIN |
 * nil (stopped). Repeated headers are joined with ", ". */
static int l_accept(lua_State *L) {
  lsrv_t *ls = srv_check(L, 1);
  wf_server_req_t *r;
  size_t i, n, blen;
  const char *body;
  if (!ls->s) {
    lua_pushnil(L);
    return 1;
  }
  luaL_checkstack(L, 10, "server.accept");
  /* everything that may raise (memory) before taking r */
  lua_newtable(L);
  if (!(r = wf_server_next(ls->s))) {
    lua_pop(L, 1);
    lua_pushlightuserdata(L, &again_key);
    return 1;
  }
  push_req(L, r); /* may raise on memory: r is then leaked, not freed twice */
  lua_insert(L, -2);
  n = wf_server_req_nheaders(r);
  for (i = 0; i < n; i++) {
    const char *name, *value;
    wf_server_req_header(r, i, &name, &value);
    lua_getfield(L, -1, name);
    if (lua_isstring(L, -1)) {
      lua_pushliteral(L, ", ");
      lua_pushstring(L, value);
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      lua_pushstring(L, value);
    }
    lua_setfield(L, -2, name);
  }
  /* stack: req, headers */
  lua_pushstring(L, wf_server_req_method(r));
  lua_pushstring(L, wf_server_req_path(r));
  lua_pushstring(L, wf_server_req_query(r));
  lua_pushvalue(L, -4);
  lua_remove(L, -5);
  body = wf_server_req_body(r, &blen);
  lua_pushlstring(L, body, blen);
  return 6;
}

/* wait(srv [, timeout]) -> true | false (timeout): suspends the caller
 * (a task yields, the main thread runs the loop) until the server has news
 * (a request, a completed one, stopped). */
static int l_wait(lua_State *L) {
  lsrv_t *ls = srv_check(L, 1);
  double timeout = luaL_optnumber(L, 2, -1);
  wf_lua_rt_t *rt = wf_lua_rt(L);
  wf_task_t mw, *t;
  luaL_argcheck(L, timeout == timeout, 2, "timeout is NaN");
  t = wf_task_waiter(rt, L, "weft.server", &mw);
  if (!ls->s) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_settop(L, 1); /* keep the server userdata alive across the wait */
  wf_task_enlist(t, ls, srv_wait_cancel, &ls->waiters);
  t->prepare = wf_task_prepare_bool;
  if (timeout >= 0) wf_task_timeout(t, timeout, srv_wait_timer_cb);
  return wf_task_suspend(t, L, "weft.server");
}

/* inflight(srv) -> requests received and not completed (0 once stopped) */
static int l_inflight(lua_State *L) {
  lsrv_t *ls = srv_check(L, 1);
  lua_pushinteger(L, ls->s ? (lua_Integer)wf_server_inflight(ls->s) : 0);
  return 1;
}

/* connections(srv) -> open connections (0 once stopped) */
static int l_connections(lua_State *L) {
  lsrv_t *ls = srv_check(L, 1);
  lua_pushinteger(L, ls->s ? (lua_Integer)wf_server_connections(ls->s) : 0);
  return 1;
}

/* close(srv): stop accepting connections (idempotent). */
static int l_close(lua_State *L) {
  lsrv_t *ls = srv_check(L, 1);
  if (ls->s) wf_server_close(ls->s);
  return 0;
}

/* stop(srv): close every connection and free the daemon (idempotent);
 * open requests become closed, waiters are woken. */
static int l_stop(lua_State *L) {
  srv_stop(srv_check(L, 1));
  return 0;
}

/* ---- requests ---------------------------------------------------------- */

static lreq_t *req_check(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, REQ_MT);
}

/* nil, "closed", "closed": lr's request is released or its client left. */
static int req_fail_closed(lua_State *L) {
  return wf_lua_fail(L, "closed", "closed");
}

/* The outcome rc of an operation on lr's request: true, or nil, err and
 * "closed" (the client left, the response completed) or "error" (misuse
 * the Lua side lets through: a response already sent, no open stream, a
 * bad status or header). */
static int req_result(lua_State *L, lreq_t *lr, int rc, const wf_err_t *err) {
  if (rc != WF_OK)
    return wf_lua_fail(L, err->msg,
                       wf_server_req_closed(lr->r) ? "closed" : "error");
  lua_pushboolean(L, 1);
  return 1;
}

/* Release lr's request (the waiter, if any, is woken first). */
static void req_release(lreq_t *lr) {
  if (!lr->r) return;
  req_wake(lr);
  wf_server_req_release(lr->r);
  lr->r = NULL;
}

/* __gc and release(req): an unanswered request gets a 500. */
static int l_req_gc(lua_State *L) {
  lreq_t *lr = lua_touserdata(L, 1);
  if (lr) req_release(lr);
  return 0;
}

/* Read the header list at idx ({name, value, name, value, ...}) into hdrs
 * (2 * MAX_HEADERS slots); returns the number of pairs. Raises on misuse
 * (before anything is allocated). */
static size_t read_headers(lua_State *L, int idx, const char **hdrs) {
  size_t n, i;
  if (lua_isnoneornil(L, idx)) return 0;
  luaL_checktype(L, idx, LUA_TTABLE);
  n = lua_objlen(L, idx);
  if (n % 2 || n / 2 > MAX_HEADERS)
    luaL_argerror(L, idx, "expected at most 256 name, value pairs");
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, idx, (int)i + 1);
    hdrs[i] = lua_tostring(L, -1);
    if (!hdrs[i]) luaL_argerror(L, idx, "header names and values must be strings");
    lua_pop(L, 1); /* the string stays anchored by the table */
  }
  return n / 2;
}

/* respond(req, status, headers, body) -> true | nil, err, code */
static int l_respond(lua_State *L) {
  lreq_t *lr = req_check(L, 1);
  int status = (int)luaL_checkinteger(L, 2);
  const char *hdrs[2 * MAX_HEADERS];
  size_t nh = read_headers(L, 3, hdrs), len;
  const char *body = luaL_optlstring(L, 4, "", &len);
  wf_err_t err;
  if (!lr->r) return req_fail_closed(L);
  return req_result(L, lr,
                    wf_server_req_respond(lr->r, status, hdrs, nh, body, len, &err),
                    &err);
}

/* stream(req, status, headers) -> true | nil, err, code */
static int l_stream(lua_State *L) {
  lreq_t *lr = req_check(L, 1);
  int status = (int)luaL_checkinteger(L, 2);
  const char *hdrs[2 * MAX_HEADERS];
  size_t nh = read_headers(L, 3, hdrs);
  wf_err_t err;
  if (!lr->r) return req_fail_closed(L);
  return req_result(L, lr, wf_server_req_stream(lr->r, status, hdrs, nh, &err),
                    &err);
}

/* write(req, data) -> true | nil, err, code */
static int l_write(lua_State *L) {
  lreq_t *lr = req_check(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  wf_err_t err;
  if (!lr->r) return req_fail_closed(L);
  return req_result(L, lr, wf_server_req_write(lr->r, data, len, &err), &err);
}

/* pending(req) -> bytes queued | nil, "closed", "closed" */
static int l_pending(lua_State *L) {
  lreq_t *lr = req_check(L, 1);
  if (!lr->r || wf_server_req_closed(lr->r)) return req_fail_closed(L);
  lua_pushinteger(L, (lua_Integer)wf_server_req_pending(lr->r));
  return 1;
}

/* flush(req) -> true: suspends the caller (a task yields, the main thread
 * runs the loop) until queued bytes are taken or the request is closed
 * (the caller checks pending()). */
static int l_flush(lua_State *L) {
  lreq_t *lr = req_check(L, 1);
  wf_lua_rt_t *rt = wf_lua_rt(L);
  wf_task_t mw, *t = wf_task_waiter(rt, L, "weft.server", &mw);
  if (!lr->r || wf_server_req_closed(lr->r) ||
      wf_server_req_pending(lr->r) == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (lr->waiter)
    return luaL_error(L, "weft.server: another task is already writing "
                         "this response");
  lua_settop(L, 1); /* keep the request userdata alive across the wait */
  lr->waiter = t;
  t->wait = lr;
  t->cancel = req_wait_cancel;
  t->prepare = wf_task_prepare_bool;
  return wf_task_suspend(t, L, "weft.server");
}

/* finish(req) -> true | nil, err, code: end the stream. */
static int l_finish(lua_State *L) {
  lreq_t *lr = req_check(L, 1);
  wf_err_t err;
  if (!lr->r) return req_fail_closed(L);
  return req_result(L, lr, wf_server_req_end(lr->r, &err), &err);
}

/* closed(req) -> true once the client left / the response completed. */
static int l_closed(lua_State *L) {
  lreq_t *lr = req_check(L, 1);
  lua_pushboolean(L, !lr->r || wf_server_req_closed(lr->r));
  return 1;
}

static const luaL_Reg server_fns[] = {
    {"listen", l_listen},   {"port", l_port},       {"accept", l_accept},
    {"wait", l_wait},       {"inflight", l_inflight},
    {"connections", l_connections},
    {"close", l_close},     {"stop", l_stop},       {"respond", l_respond},
    {"stream", l_stream},   {"write", l_write},     {"pending", l_pending},
    {"flush", l_flush},     {"finish", l_finish},   {"closed", l_closed},
    {"release", l_req_gc},  {NULL, NULL}};

int wf_lua_open_server(lua_State *L) {
  wf_lua_rt(L);
  luaL_newmetatable(L, SRV_MT);
  lua_pushcfunction(L, l_srv_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, REQ_MT);
  lua_pushcfunction(L, l_req_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lua_newtable(L);
  luaL_register(L, NULL, server_fns);
  lua_pushlightuserdata(L, &again_key);
  lua_setfield(L, -2, "AGAIN");
  return 1;
}
