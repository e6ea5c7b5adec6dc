/* lua_http.c — Lua binding of the HTTP client (package "weft.core.http"):
 * start(opts, method, body, framing, header, policy) -> request object with
 * next(), cancel(); policy(network) and policy_both(a, b) -> network policy
 * objects (netpolicy.h; also taken by weft.core.tcp's connect); configure(n),
 * stats(), SECRET_HEADERS (the header names that always count as secret),
 * and sse_bench() for bench/sse.lua. Deliberately thin: headers,
 * JSON bodies, response-header folding and the stream callback live in
 * lua/weft/http.lua.
 *
 * One client (wf_http_t) per Lua state, created on first use and anchored
 * in the registry; its __gc cancels what is left. A request userdata holds
 * the C request; it is anchored by the coroutine that waits on it, and its
 * __gc cancels a transfer nobody waits for any more. next() follows the
 * wait protocol (lua_rt.h): a notification only marks the waiter ready;
 * its prepare function builds the Lua values when the waiter resumes, so
 * no Lua object is ever made from a loop callback. The waiter's cancel
 * hook (called when its run is cancelled or its executor times out) stays
 * set until it resumes, so an abort between the notification and the
 * resume still stops the transfer. Depends on lua.h, http.h, sse.h,
 * lua_rt.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "lua_core.h"
#include "lua_rt.h"
#include "sse.h"

#define CLIENT_MT "weft.http.client"
#define REQ_MT "weft.http.request"
#define POLICY_MT "weft.netpolicy"

static char client_key;

typedef struct lhttp_req lhttp_req_t;

/* The per-state client userdata. */
typedef struct lhttp_client {
  wf_http_t *h;
  wf_lua_rt_t *rt;
  lhttp_req_t *reqs; /* requests with a live C request */
} lhttp_client_t;

/* A request userdata. */
struct lhttp_req {
  lhttp_client_t *cl;  /* NULL once the client is gone */
  wf_http_req_t *req;  /* NULL once finished or cancelled */
  wf_task_t *task;     /* task waiting in next(), or NULL */
  int body_ref;        /* registry ref to the request body (a string),
                          which the C request borrows instead of copying */
  int ref;             /* registry ref anchoring this userdata while task
                          waits: next() may be tail-called, and a yield
                          from it leaves its arguments above the stack top
                          the GC marks */
  int framing;
  int finished;        /* the final result was returned */
  char *cancel_msg;    /* set by a cancel: what next() then returns */
  lhttp_req_t *prev, *next;
};

/* ---- the client -------------------------------------------------------- */

static void req_drop(lhttp_req_t *lr);

/* __gc of the client: cancel every request still running, free it. */
static int client_gc(lua_State *L) {
  lhttp_client_t *cl = lua_touserdata(L, 1);
  lhttp_req_t *lr;
  while ((lr = cl->reqs)) {
    req_drop(lr); /* unlinks it */
    lr->cl = NULL;
  }
  wf_http_free(cl->h);
  cl->h = NULL;
  return 0;
}

/* The state's client, created on first use. */
static lhttp_client_t *client_get(lua_State *L) {
  lhttp_client_t *cl;
  lua_pushlightuserdata(L, &client_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  cl = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (cl) return cl;
  wf_lua_rt_t *rt = wf_lua_rt(L);
  cl = lua_newuserdata(L, sizeof *cl);
  memset(cl, 0, sizeof *cl);
  cl->rt = rt;
  luaL_getmetatable(L, CLIENT_MT);
  lua_setmetatable(L, -2);
  cl->h = wf_http_new(rt->loop, 0);
  if (!cl->h) {
    lua_pop(L, 1);
    luaL_error(L, "http: cannot initialise libcurl");
    return NULL;
  }
  lua_pushlightuserdata(L, &client_key);
  lua_pushvalue(L, -2);
  lua_rawset(L, LUA_REGISTRYINDEX);
  lua_pop(L, 1);
  return cl;
}

/* ---- requests ---------------------------------------------------------- */

/* Unlink lr from its client's list. */
static void req_unlink(lhttp_req_t *lr) {
  if (!lr->cl) return;
  if (lr->prev)
    lr->prev->next = lr->next;
  else if (lr->cl->reqs == lr)
    lr->cl->reqs = lr->next;
  if (lr->next) lr->next->prev = lr->prev;
  lr->prev = lr->next = NULL;
}

/* The waiter on lr, if any, is ready (its prepare builds next()'s
 * results). Its cancel hook stays set until it resumes, so that an abort
 * meanwhile still stops the transfer. */
static void req_wake(lhttp_req_t *lr) {
  if (lr->task) wf_task_ready(lr->task);
}

/* Free lr's C request (stopping its transfer if it runs), unlink lr from
 * its client and release the body the request borrowed. lr->req must be
 * set (then lr->cl is too). */
static void req_drop(lhttp_req_t *lr) {
  wf_lua_rt_t *rt = lr->cl->rt;
  int ref = lr->body_ref;
  wf_http_cancel(lr->req); /* frees a finished request too */
  lr->req = NULL;
  lr->body_ref = LUA_NOREF;
  req_unlink(lr);
  wf_lua_unref(rt, ref);
}

/* Cancel lr's transfer, remembering a message for next(). */
static void req_cancel(lhttp_req_t *lr) {
  if (!lr->req) return;
  free(lr->cancel_msg);
  size_t n = strlen(wf_http_host(lr->req)) + 32;
  lr->cancel_msg = malloc(n);
  if (lr->cancel_msg)
    snprintf(lr->cancel_msg, n, "request to %s cancelled", wf_http_host(lr->req));
  req_drop(lr);
}

/* Notification from the client: wake the waiter (never runs Lua). */
static void on_notify(void *ud, wf_http_req_t *req) {
  (void)req;
  req_wake(ud);
}

/* The wait on lr is over: forget the waiter, drop the anchor. */
static void req_unwait(lhttp_req_t *lr, wf_task_t *t) {
  int ref = lr->ref;
  lr->task = NULL;
  lr->ref = LUA_NOREF;
  wf_lua_unref(t->rt, ref); /* lr may be collected from here on */
}

/* Waiter abort (run cancelled, executor timeout): stop the transfer. */
static void task_cancel(wf_task_t *t) {
  lhttp_req_t *lr = t->wait;
  req_cancel(lr);
  req_unwait(lr, t);
}

/* Number field k of the options table (1), or dflt; raises if not a
 * non-negative number. */
static double opt_num(lua_State *L, const char *k, double dflt) {
  double v = dflt;
  lua_getfield(L, 1, k);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "http: %s must be a number, got %s", k, luaL_typename(L, -1));
    v = lua_tonumber(L, -1);
    if (!(v >= 0) || v > 1e15)
      luaL_error(L, "http: %s must be a number >= 0, got %f", k, v);
  }
  lua_pop(L, 1);
  return v;
}

/* String field k of the options table (1), or NULL; raises on a wrong
 * type. The string stays anchored by the table. */
static const char *opt_str(lua_State *L, const char *k, size_t *len) {
  const char *s = NULL;
  lua_getfield(L, 1, k);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "http: %s must be a string, got %s", k, luaL_typename(L, -1));
    s = lua_tolstring(L, -1, len);
  }
  lua_pop(L, 1);
  return s;
}

/* Check the list of strings at field k of the options table (1); returns
 * its length (0 when absent) and leaves the list (or nil) on the stack. */
static int opt_strings(lua_State *L, const char *k) {
  int n = 0;
  lua_getfield(L, 1, k);
  if (!lua_isnil(L, -1)) {
    if (!lua_istable(L, -1)) return luaL_error(L, "http: %s must be a list", k);
    n = (int)lua_objlen(L, -1);
    for (int i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      if (lua_type(L, -1) != LUA_TSTRING)
        return luaL_error(L, "http: %s[%d] must be a string", k, i);
      lua_pop(L, 1);
    }
  }
  return n;
}

/* Fill out[0..n-1] from the list at idx (strings anchored by the list),
 * NULL-terminate it. */
static void fill_strings(lua_State *L, int idx, const char **out, int n) {
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    out[i - 1] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  out[n] = NULL;
}

/* Check the headers map at field "headers" of the options table (1):
 * string names, string or number values. Leaves the map (or nil) on the
 * stack; returns the number of headers and adds the bytes their
 * "Name: value" lines take (NULs included) to *bytes. */
static int opt_header_map(lua_State *L, size_t *bytes) {
  int n = 0;
  int t;
  lua_getfield(L, 1, "headers");
  if (lua_isnil(L, -1)) return 0;
  if (!lua_istable(L, -1))
    return luaL_error(L, "http: headers must be a table of name = value");
  t = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, t)) { /* stack: ..., map, name, value */
    size_t kl, vl;
    if (lua_type(L, -2) != LUA_TSTRING)
      return luaL_error(L, "http: header names must be strings, got %s",
                        luaL_typename(L, -2));
    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
      return luaL_error(L, "http: header '%s' must be a string, got %s",
                        lua_tostring(L, -2), luaL_typename(L, -1));
    lua_tolstring(L, -2, &kl);
    lua_tolstring(L, -1, &vl); /* a number becomes a string on the stack only */
    *bytes += kl + 2 + vl + 1;
    n++;
    lua_pop(L, 1);
  }
  return n;
}

/* Write the "Name: value" lines of the map at idx into text, their
 * addresses into out[0..]; returns the next free slot of out. */
static const char **fill_header_map(lua_State *L, int idx, const char **out,
                                    char *text) {
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    size_t kl, vl;
    const char *k = lua_tolstring(L, -2, &kl), *v = lua_tolstring(L, -1, &vl);
    *out++ = text;
    memcpy(text, k, kl);
    memcpy(text + kl, ": ", 2);
    memcpy(text + kl + 2, v, vl);
    text[kl + 2 + vl] = 0;
    text += kl + 2 + vl + 1;
    lua_pop(L, 1);
  }
  return out;
}

/* core.start(opts, method, body, framing, extra_header, policy) -> request
 * | nil, err, "error". policy: a network policy object or nil. opts are weft.http.request's options (only these are read:
 * url, headers = {name = value}, timeout, connect_timeout, idle_timeout,
 * max_body, max_redirects (0: none, default 10), cross_origin_redirects =
 * "strip"|"refuse", secret_headers = {name, ...}); what weft.http computes
 * is passed apart: method (default GET), body (a string, or nil), framing
 * ("buffer"|"raw"|"sse"|"ndjson", default buffer) and one more header line
 * ("Name: value", e.g. the content type of a JSON body). So no table is
 * built per request: the header lines are made here and freed once the
 * request has copied them. */
static int l_start(lua_State *L) {
  static const char *const framings[] = {"buffer", "raw", "sse", "ndjson", NULL};
  wf_http_opts_t o;
  wf_err_t err;
  const char *stack_hdrs[33], **hdrs = stack_hdrs, **hp;
  const char *stack_sec[9], **sec = stack_sec;
  char stack_text[1024], *text = stack_text;
  const char *extra;
  size_t text_len = 0;
  int nh = 0, ns = 0, i;
  double redirects;
  lhttp_client_t *cl;
  lhttp_req_t *lr;
  luaL_checktype(L, 1, LUA_TTABLE);
  memset(&o, 0, sizeof o);
  /* every check first: nothing below may raise while holding memory */
  o.method = luaL_optstring(L, 2, NULL);
  o.body = luaL_optlstring(L, 3, NULL, &o.body_len);
  {
    const char *f = luaL_optstring(L, 4, NULL);
    for (i = 0; f && framings[i] && strcmp(framings[i], f) != 0; i++) {}
    if (f && !framings[i])
      return luaL_error(L, "http: framing must be \"buffer\", \"raw\", \"sse\" "
                        "or \"ndjson\", got \"%s\"", f);
    o.framing = f ? (wf_http_framing_t)i : WF_HTTP_BUFFER;
  }
  extra = luaL_optstring(L, 5, NULL);
  /* an aborted invocation's task starts no request (wf_task_aborted) */
  if (wf_task_aborted(wf_lua_rt(L), L)) return wf_task_refuse(L, "http.request");
  o.policy = wf_lua_http_policy(L, 6); /* the request takes a reference */
  lua_settop(L, 5); /* the arguments stay: they anchor the strings */
  o.url = opt_str(L, "url", NULL);
  if (!o.url) return luaL_error(L, "http: url is required");
  o.timeout = opt_num(L, "timeout", 0);
  o.connect_timeout = opt_num(L, "connect_timeout", 0);
  o.idle_timeout = opt_num(L, "idle_timeout", 0);
  o.max_body = (size_t)opt_num(L, "max_body", 0);
  redirects = opt_num(L, "max_redirects", -1);
  if (redirects > 1000)
    return luaL_error(L, "http: max_redirects must be at most 1000");
  o.max_redirects = redirects < 0 ? 0 : redirects == 0 ? -1 : (int)redirects;
  {
    const char *x = opt_str(L, "cross_origin_redirects", NULL);
    if (x && strcmp(x, "strip") != 0 && strcmp(x, "refuse") != 0)
      return luaL_error(L, "http: cross_origin_redirects must be \"strip\" or "
                        "\"refuse\", got \"%s\"", x);
    o.cross_origin = x && strcmp(x, "refuse") == 0 ? WF_HTTP_XO_REFUSE
                                                   : WF_HTTP_XO_STRIP;
  }
  nh = opt_header_map(L, &text_len); /* stack: opts, 4 args, headers */
  lua_settop(L, 6);
  ns = opt_strings(L, "secret_headers"); /* ..., headers, secret */
  cl = client_get(L);
  lr = lua_newuserdata(L, sizeof *lr); /* ..., headers, secret, lr */
  memset(lr, 0, sizeof *lr);
  lr->ref = lr->body_ref = LUA_NOREF;
  lr->framing = o.framing;
  luaL_getmetatable(L, REQ_MT);
  lua_setmetatable(L, -2);
  if (nh + 1 >= (int)(sizeof stack_hdrs / sizeof *stack_hdrs))
    hdrs = malloc(sizeof(*hdrs) * (size_t)(nh + 2));
  if (text_len > sizeof stack_text) text = malloc(text_len);
  if (ns >= (int)(sizeof stack_sec / sizeof *stack_sec))
    sec = malloc(sizeof(*sec) * (size_t)(ns + 1));
  if (!hdrs || !text || !sec) {
    if (hdrs != stack_hdrs) free(hdrs);
    if (text != stack_text) free(text);
    if (sec != stack_sec) free(sec);
    return luaL_error(L, "http: out of memory");
  }
  hp = nh ? fill_header_map(L, 6, hdrs, text) : hdrs;
  if (extra) *hp++ = extra;
  *hp = NULL;
  fill_strings(L, 7, sec, ns); /* strings anchored by the list */
  o.headers = hdrs;
  o.secret_headers = sec;
  o.body_borrowed = 1; /* anchored below, for as long as the request lives */
  lr->req = wf_http_start(cl->h, &o, on_notify, lr, &err); /* copies the rest */
  if (hdrs != stack_hdrs) free(hdrs);
  if (text != stack_text) free(text);
  if (sec != stack_sec) free(sec);
  if (!lr->req) return wf_lua_fail(L, err.msg, "error");
  if (o.body) {
    lua_pushvalue(L, 3);
    lr->body_ref = wf_lua_ref(cl->rt, L);
  }
  lr->cl = cl;
  lr->next = cl->reqs;
  if (cl->reqs) cl->reqs->prev = lr;
  cl->reqs = lr;
  return 1;
}

/* The request userdata at index 1. */
static lhttp_req_t *check_req(lua_State *L) {
  return luaL_checkudata(L, 1, REQ_MT);
}

/* Push the header lines of req as a list. */
static void push_headers(lua_State *L, wf_http_req_t *req) {
  const char *const *h = wf_http_headers(req);
  int n = 0;
  lua_newtable(L);
  for (; *h; h++) {
    lua_pushstring(L, *h);
    lua_rawseti(L, -2, ++n);
  }
}

/* Push the taken records as a list (strings, or SSE event tables). */
static void push_records(lua_State *L, lhttp_req_t *lr, wf_http_record_t *recs) {
  wf_http_record_t *r;
  int n = 0;
  lua_newtable(L);
  for (r = recs; r; r = r->next) {
    if (lr->framing == WF_HTTP_SSE) {
      lua_createtable(L, 0, 4);
      lua_pushstring(L, r->event);
      lua_setfield(L, -2, "event");
      lua_pushlstring(L, r->data, r->len);
      lua_setfield(L, -2, "data");
      lua_pushstring(L, r->id ? r->id : "");
      lua_setfield(L, -2, "id");
      if (r->retry >= 0) {
        lua_pushnumber(L, (lua_Number)r->retry);
        lua_setfield(L, -2, "retry");
      }
    } else {
      lua_pushlstring(L, r->data, r->len);
    }
    lua_rawseti(L, -2, ++n);
  }
}

/* What next() returns once something is there: records, or the outcome. */
static int push_result(lua_State *L, lhttp_req_t *lr) {
  wf_http_req_t *req = lr->req;
  wf_http_record_t *recs = wf_http_take(req);
  const char *msg;
  wf_http_errcode_t code;
  int n;
  if (recs) {
    /* a Lua memory error here would leak recs: the list is short-lived and
     * allocation failures abort LuaJIT anyway */
    push_records(L, lr, recs);
    wf_http_record_free(recs);
    return 1;
  }
  code = wf_http_error(req, &msg);
  if (code != WF_HTTP_ERR_NONE) {
    n = wf_lua_fail(L, msg ? msg : "request failed", wf_http_errcode_name(code));
  } else {
    size_t len;
    const char *body = wf_http_body(req, &len);
    lua_pushinteger(L, wf_http_status(req));
    push_headers(L, req);
    if (body)
      lua_pushlstring(L, body, len);
    else
      lua_pushnil(L);
    n = 3;
  }
  req_drop(lr);
  lr->finished = 1;
  return n;
}

/* What next() returns now: records, the outcome, the cancellation, or
 * nothing (0) while none of these is there. */
static int next_results(lua_State *L, lhttp_req_t *lr) {
  if (!lr->req) {
    lr->finished = 1;
    return wf_lua_fail(L,
                       lr->cancel_msg ? lr->cancel_msg
                       : lr->cl       ? "request cancelled"
                                : "request cancelled: the HTTP client was closed",
                       "cancelled");
  }
  if (wf_http_has_records(lr->req) || wf_http_done(lr->req))
    return push_result(L, lr);
  return 0;
}

/* The waiter resumes: next()'s results (none after a spurious wake-up:
 * the caller calls next() again). */
static int next_prepare(wf_task_t *t, lua_State *L) {
  lhttp_req_t *lr = t->wait;
  int n;
  /* lr stays anchored on L (pushed from its ref) while its results are
   * built, then goes: only the caller's own references keep it */
  lua_rawgeti(L, LUA_REGISTRYINDEX, lr->ref);
  req_unwait(lr, t);
  n = next_results(L, lr);
  lua_remove(L, -n - 1);
  return n;
}

/* req:next() -> a list of records | status, header lines, body | nil, err,
 * code. Suspends the caller until one of these is ready (a task yields,
 * the main thread runs the loop). After a wake-up with nothing to return
 * it returns no values: the caller calls next() again (lua/weft/http.lua
 * does). */
static int l_next(lua_State *L) {
  lhttp_req_t *lr = check_req(L);
  wf_lua_rt_t *rt = wf_lua_rt(L);
  wf_task_t mw, *t;
  int n;
  if (lr->finished) return luaL_error(L, "http: request already finished");
  if ((n = next_results(L, lr)) > 0) return n;
  if (lr->task) return luaL_error(L, "http: another task waits on this request");
  if (wf_task_aborted(rt, L)) { /* it would never be resumed: stop, do not wait */
    req_cancel(lr);
    return next_results(L, lr);
  }
  t = wf_task_waiter(rt, L, "http.request", &mw);
  lua_settop(L, 1);
  lua_pushvalue(L, 1);
  lr->ref = wf_lua_ref(rt, L);
  lr->task = t;
  t->wait = lr;
  t->cancel = task_cancel;
  t->prepare = next_prepare;
  return wf_task_suspend(t, L, "http.request");
}

/* req:cancel() -> status, header lines (what had arrived). Stops the
 * transfer; a waiting task gets nil, "...cancelled", "cancelled". */
static int l_cancel(lua_State *L) {
  lhttp_req_t *lr = check_req(L);
  if (!lr->req) {
    lua_pushinteger(L, 0);
    lua_newtable(L);
    return 2;
  }
  lua_pushinteger(L, wf_http_status(lr->req));
  push_headers(L, lr->req);
  req_cancel(lr);
  req_wake(lr);
  return 2;
}

/* __gc of a request: a transfer nobody can wait for any more is stopped. */
static int l_req_gc(lua_State *L) {
  lhttp_req_t *lr = lua_touserdata(L, 1);
  if (lr->req) req_drop(lr);
  free(lr->cancel_msg);
  lr->cancel_msg = NULL;
  return 0;
}

/* core.http.configure(max_per_host): the per-host limit (default 64). */
static int l_configure(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 1 && n <= 1000000, 1, "max_per_host must be >= 1");
  lhttp_client_t *cl = client_get(L);
  wf_http_set_max_per_host(cl->h, (int)n);
  return 0;
}

/* ---- network policies -------------------------------------------------- */

/* A policy userdata: a reference to the C policy, which requests in
 * flight may hold after the userdata is collected. */
typedef struct lhttp_policy {
  wf_netpolicy_t *p;
} lhttp_policy_t;

/* __gc of a policy: drop its reference. */
static int l_policy_gc(lua_State *L) {
  lhttp_policy_t *u = lua_touserdata(L, 1);
  wf_netpolicy_unref(u->p);
  u->p = NULL;
  return 0;
}

/* A new policy userdata holding p (taking its reference). */
static lhttp_policy_t *policy_push(lua_State *L, wf_netpolicy_t *p) {
  lhttp_policy_t *u = lua_newuserdata(L, sizeof *u);
  u->p = p;
  luaL_getmetatable(L, POLICY_MT);
  lua_setmetatable(L, -2);
  return u;
}

/* The policy at index idx (a policy userdata), or NULL for nil; raises
 * for another value. */
wf_netpolicy_t *wf_lua_http_policy(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return NULL;
  return ((lhttp_policy_t *)luaL_checkudata(L, idx, POLICY_MT))->p;
}

/* Field k of the NETWORK table (1) as a list (or nil) on the stack:
 * returns its length; raises for another value. */
static int policy_list(lua_State *L, const char *k) {
  lua_getfield(L, 1, k);
  if (lua_isnil(L, -1)) return -1;
  if (!lua_istable(L, -1)) return luaL_error(L, "network: %s must be a list", k);
  return (int)lua_objlen(L, -1);
}

/* core.http.policy{allow_hosts = {...}, block_ports = {...}, allow_private
 * = bool, allow_cidrs = {...}} -> a policy object (checked by
 * weft.check first; a bad element still raises, naming it). */
static int l_policy(lua_State *L) {
  wf_err_t err;
  int n, i;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  /* the userdata owns the policy from here: a raise below frees it */
  lhttp_policy_t *u = policy_push(L, wf_netpolicy_new()); /* 2 */
  if ((n = policy_list(L, "allow_hosts")) >= 0) { /* 3 */
    wf_netpolicy_restrict_hosts(u->p);
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, 3, i);
      if (lua_type(L, -1) != LUA_TSTRING)
        return luaL_error(L, "network: allow_hosts[%d] must be a string", i);
      if (wf_netpolicy_allow_host(u->p, lua_tostring(L, -1), &err) != WF_OK)
        return luaL_error(L, "network: allow_hosts[%d]: %s", i, err.msg);
      lua_pop(L, 1);
    }
  }
  lua_settop(L, 2);
  if ((n = policy_list(L, "block_ports")) >= 0) {
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, 3, i);
      if (lua_type(L, -1) != LUA_TNUMBER ||
          wf_netpolicy_block_port(u->p, (int)lua_tointeger(L, -1), &err) != WF_OK)
        return luaL_error(L, "network: block_ports[%d] must be a port (1 to 65535)", i);
      lua_pop(L, 1);
    }
  }
  lua_settop(L, 2);
  if ((n = policy_list(L, "allow_cidrs")) >= 0) {
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, 3, i);
      if (lua_type(L, -1) != LUA_TSTRING)
        return luaL_error(L, "network: allow_cidrs[%d] must be a string", i);
      if (wf_netpolicy_allow_cidr(u->p, lua_tostring(L, -1), &err) != WF_OK)
        return luaL_error(L, "network: allow_cidrs[%d]: %s", i, err.msg);
      lua_pop(L, 1);
    }
  }
  lua_settop(L, 2);
  lua_getfield(L, 1, "allow_private");
  wf_netpolicy_set_private(u->p, lua_toboolean(L, -1));
  lua_settop(L, 2);
  return 1;
}

/* core.http.policy_both(a, b) -> a policy allowing what both allow. */
static int l_policy_both(lua_State *L) {
  wf_netpolicy_t *a = ((lhttp_policy_t *)luaL_checkudata(L, 1, POLICY_MT))->p;
  wf_netpolicy_t *b = ((lhttp_policy_t *)luaL_checkudata(L, 2, POLICY_MT))->p;
  policy_push(L, wf_netpolicy_both(a, b));
  return 1;
}

/* core.http.stats() -> running, queued (transfers of this state). */
static int l_stats(lua_State *L) {
  lhttp_client_t *cl = client_get(L);
  lua_pushinteger(L, wf_http_running(cl->h));
  lua_pushinteger(L, wf_http_queued(cl->h));
  return 2;
}

/* sse_bench callback: count events and data bytes. */
static int bench_cb(void *ud, const wf_sse_event_t *ev) {
  size_t *acc = ud;
  acc[0]++;
  acc[1] += ev->data_len;
  return 0;
}

/* core.http.sse_bench(stream, chunk) -> events, data bytes: feed stream
 * through the SSE parser in pieces of chunk bytes (for bench/sse.lua). */
static int l_sse_bench(lua_State *L) {
  size_t n, acc[2] = {0, 0};
  const char *s = luaL_checklstring(L, 1, &n);
  lua_Integer chunk = luaL_optinteger(L, 2, 16384);
  wf_err_t err;
  int rc = WF_OK;
  luaL_argcheck(L, chunk >= 1, 2, "chunk must be >= 1");
  wf_sse_t *p = wf_sse_new(bench_cb, acc, 0);
  for (size_t off = 0; off < n && rc == WF_OK; off += (size_t)chunk)
    rc = wf_sse_feed(p, s + off,
                     n - off < (size_t)chunk ? n - off : (size_t)chunk, &err);
  wf_sse_finish(p);
  wf_sse_free(p);
  if (rc != WF_OK) return luaL_error(L, "sse_bench: %s", err.msg);
  lua_pushnumber(L, (lua_Number)acc[0]);
  lua_pushnumber(L, (lua_Number)acc[1]);
  return 2;
}

static const luaL_Reg http_fns[] = {{"start", l_start},
                                    {"policy", l_policy},
                                    {"policy_both", l_policy_both},
                                    {"configure", l_configure},
                                    {"stats", l_stats},
                                    {"sse_bench", l_sse_bench},
                                    {NULL, NULL}};

int wf_lua_open_http(lua_State *L) {
  int i;
  wf_lua_rt(L);
  static const luaL_Reg req_methods[] = {
      {"next", l_next}, {"cancel", l_cancel}, {NULL, NULL}};
  wf_lua_class(L, CLIENT_MT, NULL, client_gc);
  wf_lua_class(L, REQ_MT, req_methods, l_req_gc);
  wf_lua_class(L, POLICY_MT, NULL, l_policy_gc);
  lua_newtable(L);
  luaL_register(L, NULL, http_fns);
  lua_newtable(L);
  for (i = 0; wf_http_secret_headers[i]; i++) {
    lua_pushstring(L, wf_http_secret_headers[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "SECRET_HEADERS");
  return 1;
}
