/* tcp.c — non-blocking TCP sockets on the loop (implements tcp.h): listen,
 * accept, connect, read and write are tried at once and return WF_AGAIN when
 * they would block; wf_tcp_wait arms a one-shot readiness watcher (an ev_io
 * per socket) whose callback calls the owner's notify function. Framing of
 * the input (a line, up to a delimiter, n bytes, everything) on a buffer
 * per socket that holds no memory while empty. No Lua here: lua_tcp.c
 * turns this into cosockets. Also wf_tcp_raise_nofile for servers that
 * hold many connections. Outbound connects may be held to a network
 * policy (netpolicy.h), checked on the name and on each resolved address
 * before it is connected. Depends on libev, loop.h, common.h, netpolicy.h
 * (tcp.h). */
#include "tcp.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define RBUF_MIN 4096
#define RBUF_MAX_STEP (16u << 20)

struct wf_tcp {
  struct ev_loop *evl; /* kept directly: the wf_loop wrapper may go first */
  int fd;
  int port; /* local port */
  ev_io io; /* one-shot readiness watcher */
  wf_tcp_notify_fn fn;
  void *ud;
  /* buffered input: rbuf[roff..rlen); no LF in [roff, scan) (line search) */
  char *rbuf;
  size_t roff, rlen, rcap, scan;
  int eof;
};

/* Wrap an open non-blocking fd. */
static wf_tcp_t *tcp_wrap(wf_loop_t *l, struct ev_loop *evl, int fd) {
  wf_tcp_t *t = wf_xcalloc(1, sizeof *t);
  t->evl = l ? wf_loop_ev(l) : evl;
  t->fd = fd;
  t->port = -1;
  ev_init(&t->io, NULL);
  return t;
}

int wf_tcp_sock_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return -1;
  if (ss.ss_family == AF_INET)
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  if (ss.ss_family == AF_INET6)
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return -1;
}

/* Resolve host:port into *res (numeric hosts need no DNS). */
static int resolve(const char *host, int port, int passive,
                   struct addrinfo **res, wf_err_t *err) {
  struct addrinfo hints;
  char serv[16];
  int rc;
  if (port < 0 || port > 65535)
    return wf_err_set(err, "invalid port %d (expected 0..65535)", port);
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  snprintf(serv, sizeof serv, "%d", port);
  rc = getaddrinfo(host && *host ? host : NULL, serv, &hints, res);
  if (rc != 0)
    return wf_err_set(err, "cannot resolve '%s': %s", host ? host : "",
                      gai_strerror(rc));
  return WF_OK;
}

#define WF_TCP_NADDR 16

/* The k-th address to try: IPv4 addresses first (k < WF_TCP_NADDR), then
 * the others, so that "localhost" means 127.0.0.1 on both sides. */
static struct addrinfo *nth_addr(struct addrinfo *res, int k) {
  int v4 = k < WF_TCP_NADDR, i = 0;
  k %= WF_TCP_NADDR;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    if ((ai->ai_family == AF_INET) != v4) continue;
    if (i++ == k) return ai;
  }
  return NULL;
}

/* A non-blocking socket for ai, or -1 with errno in *e. */
static int addr_socket(const struct addrinfo *ai, int *e) {
  int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                  ai->ai_protocol);
  if (fd < 0) *e = errno;
  return fd;
}

int wf_tcp_listen_fd(const char *host, int port, int backlog, int *family,
                     wf_err_t *err) {
  struct addrinfo *res, *ai;
  int fd = -1, one = 1, e = 0;
  if (host && !strcmp(host, "*")) host = NULL;
  if (resolve(host, port, 1, &res, err) != WF_OK) return -1;
  for (int k = 0; fd < 0 && k < 2 * WF_TCP_NADDR; k++) {
    if (!(ai = nth_addr(res, k)) || (fd = addr_socket(ai, &e)) < 0) continue;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
        listen(fd, backlog > 0 ? backlog : SOMAXCONN) == 0) {
      if (family) *family = ai->ai_family;
      continue; /* fd >= 0 ends the loop */
    }
    e = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0)
    wf_err_set(err, "cannot listen on %s:%d: %s", host ? host : "*", port,
               strerror(e));
  return fd;
}

wf_tcp_t *wf_tcp_listen(wf_loop_t *l, const char *host, int port, int backlog,
                        wf_err_t *err) {
  int fd = wf_tcp_listen_fd(host, port, backlog, NULL, err);
  if (fd < 0) return NULL;
  wf_tcp_t *t = tcp_wrap(l, NULL, fd);
  t->port = wf_tcp_sock_port(fd);
  return t;
}

wf_tcp_t *wf_tcp_connect(wf_loop_t *l, const char *host, int port,
                         wf_err_t *err) {
  return wf_tcp_connect_policy(l, host, port, NULL, NULL, err);
}

wf_tcp_t *wf_tcp_connect_policy(wf_loop_t *l, const char *host, int port,
                                const wf_netpolicy_t *policy, int *refused,
                                wf_err_t *err) {
  struct addrinfo *res, *ai;
  int fd = -1, one = 1, e = 0, nrefused = 0;
  char what[300];
  wf_err_t perr;
  if (refused) *refused = 0;
  if (!host || !*host) {
    wf_err_set(err, "connect: empty host");
    return NULL;
  }
  if (port <= 0 || port > 65535) {
    wf_err_set(err, "connect: invalid port %d (expected 1..65535)", port);
    return NULL;
  }
  if (policy && wf_netpolicy_check_host(policy, host, port, err) != WF_OK) {
    if (refused) *refused = 1;
    return NULL;
  }
  if (resolve(host, port, 0, &res, err) != WF_OK) return NULL;
  snprintf(what, sizeof what, "%.200s:%d", host, port);
  for (int k = 0; fd < 0 && k < 2 * WF_TCP_NADDR; k++) {
    if (!(ai = nth_addr(res, k))) continue;
    if (policy && wf_netpolicy_check_addr(policy, ai->ai_addr, what, &perr) != WF_OK) {
      nrefused++; /* the first refusal is the message if nothing connects */
      if (nrefused == 1) *err = perr;
      continue;
    }
    if ((fd = addr_socket(ai, &e)) < 0) continue;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS)
      continue; /* fd >= 0 ends the loop */
    e = errno;  /* refused at once (rare on loopback): try the next address */
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0 && nrefused) {
    if (refused) *refused = 1;
    return NULL;
  }
  if (fd < 0) {
    wf_err_set(err, "cannot connect to %s:%d: %s", host, port, strerror(e));
    return NULL;
  }
  return tcp_wrap(l, NULL, fd);
}

int wf_tcp_connected(wf_tcp_t *t, wf_err_t *err) {
  int e = 0;
  socklen_t len = sizeof e;
  if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0) e = errno;
  if (e == 0) {
    /* writable without an error can still mean "not yet" after a spurious
     * wakeup: a connected socket has a peer */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getpeername(t->fd, (struct sockaddr *)&ss, &sl) == 0) return WF_OK;
    if (errno == ENOTCONN) return WF_AGAIN;
    e = errno;
  }
  if (e == EINPROGRESS || e == EALREADY) return WF_AGAIN;
  return wf_err_set(err, "%s", strerror(e));
}

int wf_tcp_accept(wf_tcp_t *srv, wf_tcp_t **out, wf_err_t *err) {
  int fd, one = 1;
  *out = NULL;
  for (;;) {
    fd = accept4(srv->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) break;
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return WF_AGAIN;
    return wf_err_set(err, "accept: %s", strerror(errno));
  }
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  *out = tcp_wrap(NULL, srv->evl, fd);
  return WF_OK;
}

int wf_tcp_read(wf_tcp_t *t, char *buf, size_t n, size_t *got, wf_err_t *err) {
  ssize_t r;
  *got = 0;
  for (;;) {
    r = recv(t->fd, buf, n, 0);
    if (r >= 0) break;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return WF_AGAIN;
    if (errno == ECONNRESET) return wf_err_set(err, "connection reset by peer");
    return wf_err_set(err, "read: %s", strerror(errno));
  }
  *got = (size_t)r;
  return WF_OK;
}

int wf_tcp_write(wf_tcp_t *t, const char *buf, size_t n, size_t *sent,
                 wf_err_t *err) {
  ssize_t r;
  *sent = 0;
  for (;;) {
    r = send(t->fd, buf, n, MSG_NOSIGNAL);
    if (r >= 0) break;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return WF_AGAIN;
    if (errno == EPIPE || errno == ECONNRESET)
      return wf_err_set(err, "connection closed by peer");
    return wf_err_set(err, "write: %s", strerror(errno));
  }
  *sent = (size_t)r;
  return WF_OK;
}

/* libev callback: disarm (one-shot), then notify the owner. */
static void io_cb(struct ev_loop *evl, ev_io *w, int revents) {
  wf_tcp_t *t = w->data;
  ev_io_stop(evl, w);
  if (t->fn) t->fn(t->ud, t, revents);
}

void wf_tcp_wait(wf_tcp_t *t, int events, wf_tcp_notify_fn fn, void *ud) {
  events &= EV_READ | EV_WRITE;
  if (ev_is_active(&t->io)) ev_io_stop(t->evl, &t->io);
  t->fn = fn;
  t->ud = ud;
  ev_io_init(&t->io, io_cb, t->fd, events);
  t->io.data = t;
  ev_io_start(t->evl, &t->io);
}

void wf_tcp_unwait(wf_tcp_t *t) {
  if (ev_is_active(&t->io)) ev_io_stop(t->evl, &t->io);
  t->fn = NULL;
  t->ud = NULL;
}

int wf_tcp_port(const wf_tcp_t *t) {
  return t->port >= 0 ? t->port : wf_tcp_sock_port(t->fd);
}

int wf_tcp_fd(const wf_tcp_t *t) { return t->fd; }

void wf_tcp_shutdown_write(wf_tcp_t *t) { shutdown(t->fd, SHUT_WR); }

void wf_tcp_close(wf_tcp_t *t) {
  if (!t) return;
  wf_tcp_unwait(t);
  close(t->fd);
  free(t->rbuf);
  free(t);
}

/* ---- framing ----------------------------------------------------------- */

/* Give the buffer's memory back once everything was taken (idle sockets
 * hold none); frames returned earlier are invalid from here on. */
static void rbuf_trim(wf_tcp_t *t) {
  if (t->roff < t->rlen) return;
  free(t->rbuf);
  t->rbuf = NULL;
  t->roff = t->rlen = t->rcap = t->scan = 0;
}

/* Hand out rbuf[roff, roff+n) and consume n + skip bytes. */
static void rbuf_take(wf_tcp_t *t, size_t n, size_t skip, const char **data,
                      size_t *len) {
  *data = t->rbuf ? t->rbuf + t->roff : "";
  *len = n;
  t->roff += n + skip;
  t->scan = t->roff;
}

/* Make room for at least want more bytes at rbuf + rlen. */
static void rbuf_reserve(wf_tcp_t *t, size_t want) {
  if (t->roff > 0 && (t->roff == t->rlen || t->roff >= t->rcap / 2)) {
    memmove(t->rbuf, t->rbuf + t->roff, t->rlen - t->roff);
    t->rlen -= t->roff;
    t->scan -= t->roff;
    t->roff = 0;
  }
  if (t->rcap - t->rlen >= want) return;
  size_t cap = t->rcap ? t->rcap : RBUF_MIN;
  while (cap - t->rlen < want) cap *= 2;
  t->rbuf = wf_xrealloc(t->rbuf, cap);
  t->rcap = cap;
}

/* Find needle (len nl) in rbuf[from, rlen); returns its offset or -1. */
static long rbuf_find(wf_tcp_t *t, size_t from, const char *needle,
                      size_t nl) {
  if (t->rlen < from + nl) return -1;
  const char *p = memmem(t->rbuf + from, t->rlen - from, needle, nl);
  return p ? (long)(p - t->rbuf) : -1;
}

int wf_tcp_recv(wf_tcp_t *t, wf_tcp_frame_t mode, size_t n, const char *delim,
                size_t dl, const char **data, size_t *len, wf_err_t *err) {
  size_t uscan = 0;
  *data = NULL;
  *len = 0;
  rbuf_trim(t);
  if (mode == WF_TCP_BYTES && n == 0) {
    *data = "";
    return WF_OK;
  }
  for (;;) {
    size_t avail = t->rlen - t->roff, want = RBUF_MIN, got;
    if (mode == WF_TCP_BYTES && avail >= n) {
      rbuf_take(t, n, 0, data, len);
      return WF_OK;
    }
    if (mode == WF_TCP_LINE && avail > 0) {
      long p = rbuf_find(t, t->scan, "\n", 1);
      if (p >= 0) {
        size_t ll = (size_t)p - t->roff;
        size_t cr = ll > 0 && t->rbuf[p - 1] == '\r';
        if (ll - cr > n) return wf_err_set(err, "line too long");
        rbuf_take(t, ll - cr, 1 + cr, data, len);
        return WF_OK;
      }
      t->scan = t->rlen;
      if (avail > n) return wf_err_set(err, "line too long");
    }
    if (mode == WF_TCP_UNTIL && avail >= dl) {
      long p = rbuf_find(t, t->roff + uscan, delim, dl);
      if (p >= 0) {
        rbuf_take(t, (size_t)p - t->roff, dl, data, len);
        return WF_OK;
      }
      uscan = avail - (dl - 1);
    }
    if (t->eof) {
      rbuf_take(t, avail, 0, data, len);
      return mode == WF_TCP_ALL ? WF_OK : wf_err_set(err, "closed");
    }
    /* read more; grow with the data that arrives, not with what was
     * asked for */
    if (mode == WF_TCP_BYTES && n - avail > want)
      want = n - avail < RBUF_MAX_STEP ? n - avail : RBUF_MAX_STEP;
    if (mode == WF_TCP_ALL && avail >= RBUF_MIN)
      want = avail < RBUF_MAX_STEP ? avail : RBUF_MAX_STEP; /* grow x2 */
    rbuf_reserve(t, want);
    int rc = wf_tcp_read(t, t->rbuf + t->rlen, t->rcap - t->rlen, &got, err);
    if (rc == WF_AGAIN) {
      rbuf_trim(t); /* nothing buffered: keep no memory while idle */
      return WF_AGAIN;
    }
    if (rc != WF_OK) {
      t->eof = 1;
      rbuf_take(t, t->rlen - t->roff, 0, data, len);
      return WF_ERR;
    }
    if (got == 0)
      t->eof = 1;
    else
      t->rlen += got;
  }
}

void wf_tcp_take(wf_tcp_t *t, const char **data, size_t *len) {
  rbuf_trim(t);
  rbuf_take(t, t->rlen - t->roff, 0, data, len);
}

size_t wf_tcp_buffered(const wf_tcp_t *t) { return t->rlen - t->roff; }

long wf_tcp_raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
  if (rl.rlim_cur < rl.rlim_max) {
    rlim_t want = rl.rlim_max;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
  }
  return rl.rlim_cur == RLIM_INFINITY ? LONG_MAX : (long)rl.rlim_cur;
}
