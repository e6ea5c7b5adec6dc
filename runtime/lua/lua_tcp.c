/* lua_tcp.c — Lua binding of tcp.c (package "weft.core.tcp"): the raw
 * primitives behind the TCP cosockets of lua/weft/tcp.lua. Every I/O
 * primitive here is non-blocking and returns the AGAIN sentinel when it
 * would block; the only yielding one is wait(sock, "r"|"w", timeout), which
 * suspends the caller until the socket is ready (true) or the timeout fires
 * (false), following the wait protocol (lua_rt.h: a task yields, the main
 * thread runs the loop). The Lua side retries the operation after each
 * wait, so results are always pushed by the running coroutine itself,
 * never from a libev callback (which only records the outcome).
 *
 * A socket userdata holds a pointer to a C-owned lsock (tcp handle, which
 * also buffers and frames the input, and waiter); close() frees it at once (waking a task waiting on it),
 * __gc frees what close did not. A waiting task's own frame keeps the
 * userdata alive (the Lua wrapper holds it across the wait).
 * Depends on lua.h, tcp.h, lua_rt.h. */
#include <stdlib.h>
#include <string.h>

#include "lua_core.h"
#include "lua_rt.h"
#include "tcp.h"

#define SOCK_MT "weft.tcp.socket"

typedef struct lsock {
  wf_tcp_t *tcp;
  struct ev_loop *evl;
  int listener;
  wf_task_t *waiter; /* task (or main-thread waiter) suspended in wait() */
} lsock_t;

typedef struct sock_ud {
  lsock_t *s; /* NULL once closed */
} sock_ud_t;

static char again_key; /* the AGAIN sentinel (a light userdata) */

/* ---- socket objects ---------------------------------------------------- */

/* Push a new, still empty socket userdata (created before any resource is
 * taken, so that a memory error cannot leak one). */
static sock_ud_t *sock_new(lua_State *L) {
  sock_ud_t *u = lua_newuserdata(L, sizeof *u);
  u->s = NULL;
  luaL_getmetatable(L, SOCK_MT);
  lua_setmetatable(L, -2);
  return u;
}

/* Give the userdata u (made by sock_new) ownership of tcp. */
static void sock_attach(lua_State *L, sock_ud_t *u, wf_tcp_t *tcp,
                        int listener) {
  lsock_t *s = wf_xcalloc(1, sizeof *s);
  s->tcp = tcp;
  s->evl = wf_loop_ev(wf_lua_rt(L)->loop);
  s->listener = listener;
  u->s = s;
}

/* The socket userdata at idx (raises on another type). */
static sock_ud_t *sock_check(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, SOCK_MT);
}

/* End the wait on s, if any: the socket no longer holds the waiter, which
 * holds nothing (its cancel is cleared). */
static wf_task_t *sock_end_wait(lsock_t *s) {
  wf_task_t *t = s->waiter;
  wf_tcp_unwait(s->tcp);
  if (t) {
    s->waiter = NULL;
    t->wait = NULL;
    t->cancel = NULL;
  }
  return t;
}

/* Stop whatever waits on s: with wake, the waiter is ready with true, so
 * that it retries and sees the new state; without (state close), its
 * timeout is stopped and it is never resumed. */
static void sock_release_waiter(lsock_t *s, int wake) {
  wf_task_t *t = sock_end_wait(s);
  if (!t) return;
  if (wake) {
    t->result = 1;
    wf_task_ready(t);
  } else {
    ev_timer_stop(s->evl, &t->timer);
  }
}

/* Close s's socket and free it; a waiter is woken (it then sees "closed"). */
static void sock_free(lsock_t *s, int wake) {
  sock_release_waiter(s, wake);
  wf_tcp_close(s->tcp);
  free(s);
}

/* __gc: free what close() did not (at state close a task may still wait:
 * its watcher is stopped, it is not woken). */
static int l_sock_gc(lua_State *L) {
  sock_ud_t *u = lua_touserdata(L, 1);
  if (u && u->s) {
    sock_free(u->s, 0);
    u->s = NULL;
  }
  return 0;
}

/* __tostring: "weft.tcp socket (fd N)" or "weft.tcp socket (closed)". */
static int l_sock_tostring(lua_State *L) {
  sock_ud_t *u = sock_check(L, 1);
  if (u->s)
    lua_pushfstring(L, "weft.tcp %s (fd %d)",
                    u->s->listener ? "server" : "socket", wf_tcp_fd(u->s->tcp));
  else
    lua_pushliteral(L, "weft.tcp socket (closed)");
  return 1;
}

/* ---- constructors ------------------------------------------------------ */

/* listen(host, port, backlog) -> server socket | nil, err, "io" */
static int l_listen(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  int port = (int)luaL_checkinteger(L, 2);
  int backlog = (int)luaL_optinteger(L, 3, 0);
  wf_lua_rt_t *rt = wf_lua_rt(L);
  wf_err_t err;
  sock_ud_t *u = sock_new(L);
  wf_tcp_t *tcp = wf_tcp_listen(rt->loop, host, port, backlog, &err);
  if (!tcp) return wf_lua_fail(L, err.msg, "io");
  sock_attach(L, u, tcp, 1);
  return 1;
}

/* connect(host, port, policy) -> socket (connecting) | nil, err, "connect"
 * | nil, err, "policy" (refused by the network policy, when given) | nil,
 * err, "cancelled" (the calling task's invocation was aborted: nothing is
 * started). Completion: wait for "w", then connected(). */
static int l_connect(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  int port = (int)luaL_checkinteger(L, 2);
  wf_netpolicy_t *policy = wf_lua_http_policy(L, 3);
  wf_lua_rt_t *rt = wf_lua_rt(L);
  wf_err_t err;
  int refused = 0;
  sock_ud_t *u;
  if (wf_task_aborted(rt, L)) return wf_task_refuse(L, "weft.tcp.connect");
  u = sock_new(L);
  wf_tcp_t *tcp = wf_tcp_connect_policy(rt->loop, host, port, policy, &refused, &err);
  if (!tcp) return wf_lua_fail(L, err.msg, refused ? "policy" : "connect");
  sock_attach(L, u, tcp, 0);
  return 1;
}

/* connected(sock) -> true | AGAIN | nil, err, "connect" | nil, "closed",
 * "closed" */
static int l_connected(lua_State *L) {
  sock_ud_t *u = sock_check(L, 1);
  wf_err_t err;
  int rc;
  if (!u->s) return wf_lua_fail(L, "closed", "closed");
  rc = wf_tcp_connected(u->s->tcp, &err);
  if (rc == WF_AGAIN) {
    lua_pushlightuserdata(L, &again_key);
    return 1;
  }
  if (rc != WF_OK) return wf_lua_fail(L, err.msg, "connect");
  lua_pushboolean(L, 1);
  return 1;
}

/* accept(server) -> socket | AGAIN | nil, err, "io" | nil, "closed",
 * "closed" */
static int l_accept(lua_State *L) {
  sock_ud_t *u = sock_check(L, 1);
  wf_tcp_t *c;
  wf_err_t err;
  int rc;
  if (!u->s) return wf_lua_fail(L, "closed", "closed");
  if (!u->s->listener) return luaL_error(L, "accept: not a listening socket");
  sock_ud_t *cu = sock_new(L);
  rc = wf_tcp_accept(u->s->tcp, &c, &err);
  if (rc == WF_AGAIN) {
    lua_pushlightuserdata(L, &again_key);
    return 1;
  }
  if (rc != WF_OK) return wf_lua_fail(L, err.msg, "io");
  sock_attach(L, cu, c, 0);
  return 1;
}

/* ---- input ------------------------------------------------------------- */

/* recv(sock, mode, arg) -> data | AGAIN | nil, err, partial (the
 * cosocket shape: partial takes the code's place, err is "closed" at end
 * of stream or a sentence). mode "l": a line without its LF (and a CR
 * before it), arg = max length (longer: nil, "line too long", left
 * buffered); "a": everything until the peer closes; "n": exactly arg
 * bytes; "u": up to the delimiter arg (not included, consumed). At end of
 * stream "l", "n" and "u" fail with "closed" and the partial data.
 * Framing is tcp.c's (wf_tcp_recv). */
static int l_recv(lua_State *L) {
  sock_ud_t *u = sock_check(L, 1);
  const char *mode = luaL_checkstring(L, 2);
  size_t n = 0, dl = 0, len;
  const char *delim = NULL, *data;
  wf_tcp_frame_t frame;
  wf_err_t err;
  int rc;
  switch (mode[0]) {
    case 'l': {
      lua_Number v = luaL_optnumber(L, 3, 1 << 20);
      luaL_argcheck(L, v >= 0 && v <= 9007199254740992.0, 3, "bad line limit");
      n = (size_t)v;
      frame = WF_TCP_LINE;
      break;
    }
    case 'a':
      frame = WF_TCP_ALL;
      break;
    case 'n': {
      lua_Number v = luaL_checknumber(L, 3);
      luaL_argcheck(
          L, v >= 0 && v <= 9007199254740992.0 && v == (lua_Number)(size_t)v, 3,
          "byte count must be a non-negative integer");
      n = (size_t)v;
      frame = WF_TCP_BYTES;
      break;
    }
    case 'u':
      delim = luaL_checklstring(L, 3, &dl);
      luaL_argcheck(L, dl > 0, 3, "delimiter must not be empty");
      frame = WF_TCP_UNTIL;
      break;
    default:
      return luaL_argerror(L, 2, "mode must be 'l', 'a', 'n' or 'u'");
  }
  if (!u->s) return wf_lua_fail(L, "closed", NULL); /* no partial */
  if (u->s->listener) return luaL_error(L, "receive: on a listening socket");
  rc = wf_tcp_recv(u->s->tcp, frame, n, delim, dl, &data, &len, &err);
  if (rc == WF_AGAIN) {
    lua_pushlightuserdata(L, &again_key);
    return 1;
  }
  if (rc == WF_OK) {
    lua_pushlstring(L, data, len);
    return 1;
  }
  if (!data) return wf_lua_fail(L, err.msg, NULL); /* line too long */
  wf_lua_fail(L, err.msg, NULL);
  lua_pushlstring(L, data, len); /* the partial input */
  return 3;
}

/* partial(sock) -> the buffered input (consumed), "" when none. */
static int l_partial(lua_State *L) {
  sock_ud_t *u = sock_check(L, 1);
  const char *data = "";
  size_t len = 0;
  if (u->s) wf_tcp_take(u->s->tcp, &data, &len);
  lua_pushlstring(L, data, len);
  return 1;
}

/* ---- output ------------------------------------------------------------ */

/* send(sock, data, i) -> #data | AGAIN, i | nil, err, i (the cosocket
 * shape: the count sent takes the code's place) — writes data from offset
 * i (bytes already sent) until done or it would block. */
static int l_send(lua_State *L) {
  sock_ud_t *u = sock_check(L, 1);
  size_t len, i = (size_t)luaL_optinteger(L, 3, 0), sent;
  const char *data = luaL_checklstring(L, 2, &len);
  wf_err_t err;
  luaL_argcheck(L, i <= len, 3, "offset beyond the data");
  if (!u->s) {
    wf_lua_fail(L, "closed", NULL);
    lua_pushinteger(L, (lua_Integer)i);
    return 3;
  }
  if (u->s->listener) return luaL_error(L, "send: on a listening socket");
  while (i < len) {
    int rc = wf_tcp_write(u->s->tcp, data + i, len - i, &sent, &err);
    if (rc == WF_AGAIN) {
      lua_pushlightuserdata(L, &again_key);
      lua_pushinteger(L, (lua_Integer)i);
      return 2;
    }
    if (rc != WF_OK) {
      wf_lua_fail(L, err.msg, NULL);
      lua_pushinteger(L, (lua_Integer)i);
      return 3;
    }
    i += sent;
  }
  lua_pushinteger(L, (lua_Integer)len);
  return 1;
}

/* ---- waiting (the yielding primitive) ---------------------------------- */

/* Readiness of the waiter's socket: it is ready with true. */
static void wait_notify(void *ud, wf_tcp_t *tcp, int revents) {
  wf_task_t *t = sock_end_wait(ud);
  (void)tcp;
  (void)revents;
  t->result = 1;
  wf_task_ready(t);
}

/* Timeout of a wait: the waiter is ready with false. */
static void wait_timer_cb(struct ev_loop *evl, ev_timer *w, int revents) {
  wf_task_t *t = w->data;
  (void)evl;
  (void)revents;
  sock_end_wait(t->wait);
  t->result = 0;
  wf_task_ready(t);
}

/* Cancel callback (abort, executor timeout): stop watching, never wake. */
static void wait_cancel(wf_task_t *t) { sock_end_wait(t->wait); }

/* wait(sock, "r"|"w", timeout) -> true when ready (or closed meanwhile),
 * false on timeout. timeout < 0: none. Suspends the caller (a task yields,
 * the main thread runs the loop); nil, err, "cancelled" in a task whose
 * invocation was aborted. */
static int l_wait(lua_State *L) {
  sock_ud_t *u = sock_check(L, 1);
  const char *what = luaL_checkstring(L, 2);
  double timeout = luaL_optnumber(L, 3, -1);
  wf_lua_rt_t *rt = wf_lua_rt(L);
  int events;
  lsock_t *s;
  wf_task_t mw, *t;
  if (what[0] == 'r' && what[1] == 0)
    events = EV_READ;
  else if (what[0] == 'w' && what[1] == 0)
    events = EV_WRITE;
  else
    return luaL_argerror(L, 2, "expected 'r' or 'w'");
  luaL_argcheck(L, timeout == timeout, 3, "timeout is NaN");
  if (wf_task_aborted(rt, L)) return wf_task_refuse(L, "weft.tcp");
  t = wf_task_waiter(rt, L, "weft.tcp", &mw);
  if (!(s = u->s)) { /* closed: the retried operation reports it */
    lua_pushboolean(L, 1);
    return 1;
  }
  if (s->waiter)
    return luaL_error(L,
                      "weft.tcp: socket busy (another task is already "
                      "waiting on it)");
  s->waiter = t;
  t->wait = s;
  t->cancel = wait_cancel;
  t->prepare = wf_task_prepare_bool;
  wf_tcp_wait(s->tcp, events, wait_notify, s);
  if (timeout >= 0) wf_task_timeout(t, timeout, wait_timer_cb);
  return wf_task_suspend(t, L, "weft.tcp");
}

/* ---- misc -------------------------------------------------------------- */

/* close(sock) -> true | nil, "closed", "closed" (already). Wakes a waiting
 * task. */
static int l_close(lua_State *L) {
  sock_ud_t *u = sock_check(L, 1);
  if (!u->s) return wf_lua_fail(L, "closed", "closed");
  sock_free(u->s, 1);
  u->s = NULL;
  lua_pushboolean(L, 1);
  return 1;
}

/* shutdown(sock) -> true | nil, "closed", "closed": half-close (no more
 * sending). */
static int l_shutdown(lua_State *L) {
  sock_ud_t *u = sock_check(L, 1);
  if (!u->s) return wf_lua_fail(L, "closed", "closed");
  wf_tcp_shutdown_write(u->s->tcp);
  lua_pushboolean(L, 1);
  return 1;
}

/* port(sock) -> local port | nil, "closed", "closed" */
static int l_port(lua_State *L) {
  sock_ud_t *u = sock_check(L, 1);
  if (!u->s) return wf_lua_fail(L, "closed", "closed");
  lua_pushinteger(L, wf_tcp_port(u->s->tcp));
  return 1;
}

/* is_closed(sock) -> boolean */
static int l_is_closed(lua_State *L) {
  lua_pushboolean(L, sock_check(L, 1)->s == NULL);
  return 1;
}

/* buffered(sock) -> bytes of input buffered and not yet returned */
static int l_buffered(lua_State *L) {
  lsock_t *s = sock_check(L, 1)->s;
  lua_pushinteger(L, s ? (lua_Integer)wf_tcp_buffered(s->tcp) : 0);
  return 1;
}

/* raise_nofile() -> the new RLIMIT_NOFILE soft limit | nil, err, "io" */
static int l_raise_nofile(lua_State *L) {
  long n = wf_tcp_raise_nofile();
  if (n < 0) return wf_lua_fail(L, "cannot raise RLIMIT_NOFILE", "io");
  lua_pushnumber(L, (lua_Number)n);
  return 1;
}

static const luaL_Reg tcp_fns[] = {{"listen", l_listen},
                                   {"connect", l_connect},
                                   {"connected", l_connected},
                                   {"accept", l_accept},
                                   {"recv", l_recv},
                                   {"partial", l_partial},
                                   {"send", l_send},
                                   {"wait", l_wait},
                                   {"close", l_close},
                                   {"shutdown", l_shutdown},
                                   {"port", l_port},
                                   {"is_closed", l_is_closed},
                                   {"buffered", l_buffered},
                                   {"raise_nofile", l_raise_nofile},
                                   {NULL, NULL}};

int wf_lua_open_tcp(lua_State *L) {
  wf_lua_rt(L);
  lua_newtable(L);
  luaL_register(L, NULL, tcp_fns);
  /* the socket metatable: lua/weft/tcp.lua sets its __index */
  luaL_newmetatable(L, SOCK_MT);
  lua_pushcfunction(L, l_sock_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, l_sock_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_setfield(L, -2, "socket_mt");
  lua_pushlightuserdata(L, &again_key);
  lua_setfield(L, -2, "AGAIN");
  return 1;
}
