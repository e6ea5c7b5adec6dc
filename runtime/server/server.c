/* server.c — the HTTP/1.1 server core (see server.h): libmicrohttpd in
 * external epoll mode on a libev loop, suspended connections for requests
 * being handled, callback responses for streams, and the limits MHD lacks
 * (header/body deadlines, a soft connection cap answered with 503, a header
 * byte cap answered with 431, a body cap that stops reading at once with a
 * 413, a watch on the peer of idle streams). Requests are routed on the raw
 * URI (MHD's decoded URL is cut at an encoded NUL).
 * weft accepts the connections and reads every request head (MSG_PEEK)
 * before MHD may read it: framing headers MHD mishandles (a malformed,
 * overflowing or conflicting Content-Length, Content-Length with
 * Transfer-Encoding, another coding than chunked, folded lines) get weft's
 * own 400 and the connection is closed (libmicrohttpd 0.9.75-0.9.77 write
 * their 400 status line and headers twice); that gate and the graceful
 * close that ends error answers are in gate.c. Depends on libev,
 * libmicrohttpd, common.h, tcp.h (the listening socket), server_int.h
 * (gate.c). */
#include "server_int.h"
#include "tcp.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* MHD's own hard connection limit sits above the soft cap, so that the
 * connections over the cap can still be told 503. */
#define HARD_CONN_SLACK 64
#define STREAM_BLOCK (16 * 1024)
#define ACCEPT_BATCH 64

struct wf_server_req {
  wf_server_t *s;          /* NULL once the server is freed */
  struct MHD_Connection *c; /* NULL once MHD completed the request */
  srv_conn_t *conn;
  char *uri, *method, *path, *version;
  char *body;
  size_t blen, bcap;
  char **hdrs; /* 2 * nh strings: lower-case name, value */
  size_t nh, hcap, hbytes;
  int started, dispatched, held, done, suspended;
  int responded, streaming, ended, queued;
  int peer_gone; /* the client closed or reset its end of an idle stream */
  int refused;   /* begun from bytes weft did not check: never served */
  struct MHD_Response *resp; /* built, waiting for the access handler */
  unsigned status;
  char *q; /* stream queue q[qoff, qlen) */
  size_t qoff, qlen, qcap;
  wf_server_req_notify_fn nfn;
  void *nud;
  wf_server_req_t *rnext;        /* ready queue */
  wf_server_req_t *prev, *next;  /* live requests */
};

/* ---- small helpers ----------------------------------------------------- */

void wf_server_opts_default(wf_server_opts_t *o) {
  memset(o, 0, sizeof *o);
  o->host = "127.0.0.1";
  o->port = 0;
  o->max_connections = 1000;
  o->max_header_bytes = 16384;
  o->max_body_bytes = 1048576;
  o->header_timeout = 10;
  o->body_timeout = 30;
  o->idle_timeout = 60;
}

int wf_server_error_body(char *buf, size_t n, const char *code,
                         const char *msg) {
  return snprintf(buf, n, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}",
                  code, msg);
}

/* Tell the owner there is news (a request ready, one completed). */
static void notify_owner(wf_server_t *s) {
  if (s->notify) s->notify(s->ud);
}

void wf_server_kick(wf_server_t *s) {
  ev_timer_stop(s->evl, &s->tm);
  ev_timer_set(&s->tm, 0., 0.);
  ev_timer_start(s->evl, &s->tm);
}

static srv_conn_t *conn_of(struct MHD_Connection *c);

/* One MHD turn, the gate's look at connections whose request completed,
 * then re-arm the timer from MHD_get_timeout. */
static void srv_run(wf_server_t *s) {
  MHD_UNSIGNED_LONG_LONG ms;
  srv_conn_t *cn;
  if (!s->d) return;
  s->in_run = 1;
  MHD_run(s->d);
  s->in_run = 0;
  ev_timer_stop(s->evl, &s->tm);
  if (MHD_get_timeout(s->d, &ms) == MHD_YES) {
    ev_timer_set(&s->tm, (double)ms / 1000.0, 0.);
    ev_timer_start(s->evl, &s->tm);
  }
  /* after the timer: a connection resumed here kicks MHD at once */
  while ((cn = s->chk)) {
    s->chk = cn->cnext;
    cn->cnext = NULL;
    cn->checking = 0;
    wf_gate_check(cn);
  }
}

static void srv_io_cb(struct ev_loop *evl, ev_io *w, int revents) {
  (void)evl;
  (void)revents;
  srv_run(w->data);
}

static void srv_timer_cb(struct ev_loop *evl, ev_timer *w, int revents) {
  (void)evl;
  (void)revents;
  srv_run(w->data);
}

/* Resume r's connection if it is suspended, and make MHD look at it. */
static void req_resume(wf_server_req_t *r) {
  if (r->suspended && r->c) {
    r->suspended = 0;
    if (r->conn && r->s) ev_io_stop(r->s->evl, &r->conn->peer);
    MHD_resume_connection(r->c);
  }
  if (r->s) wf_server_kick(r->s);
}

/* Free r's memory (MHD and the owner are both done with it). */
static void req_free(wf_server_req_t *r) {
  size_t i;
  if (r->s) {
    if (r->prev) r->prev->next = r->next;
    else r->s->live = r->next;
    if (r->next) r->next->prev = r->prev;
  }
  if (r->resp) MHD_destroy_response(r->resp);
  for (i = 0; i < 2 * r->nh; i++) free(r->hdrs[i]);
  free(r->hdrs);
  free(r->uri);
  free(r->method);
  free(r->path);
  free(r->version);
  free(r->body);
  free(r->q);
  free(r);
}

/* Queue an error response with a JSON body; returns MHD's result. */
static enum MHD_Result queue_error(wf_server_t *s, struct MHD_Connection *c,
                                   unsigned status, const char *code,
                                   const char *msg, int close) {
  char buf[512];
  int n = wf_server_error_body(buf, sizeof buf, code, msg);
  struct MHD_Response *resp = MHD_create_response_from_buffer(
      (size_t)n, buf, MHD_RESPMEM_MUST_COPY);
  enum MHD_Result ret;
  if (!resp) return MHD_NO;
  MHD_add_response_header(resp, "Content-Type", "application/json");
  if (close || s->closed) MHD_add_response_header(resp, "Connection", "close");
  if (close) { /* the client may still be sending its body */
    srv_conn_t *cn = conn_of(c);
    if (cn && cn->linger == LINGER_NO) cn->linger = LINGER_WANTED;
  }
  ret = MHD_queue_response(c, status, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* ---- connections and deadlines ----------------------------------------- */

/* A header or body deadline passed: answer 408 on the socket. */
static void conn_timer_cb(struct ev_loop *evl, ev_timer *w, int revents) {
  (void)evl;
  (void)revents;
  wf_gate_raw_error(w->data, "408 Request Timeout", "timeout",
                 "request not received in time");
}

/* (Re)start cn's deadline, in seconds from now. */
static void conn_arm(srv_conn_t *cn, double secs) {
  ev_timer_stop(cn->s->evl, &cn->tm);
  if (secs <= 0) return;
  ev_timer_set(&cn->tm, secs, 0.);
  ev_timer_start(cn->s->evl, &cn->tm);
}

static void conn_disarm(srv_conn_t *cn) { ev_timer_stop(cn->s->evl, &cn->tm); }

/* The socket of an idle stream became readable. A client reading a stream
 * sends nothing, so end of file or an error means it left: the stream is
 * ended at once (MHD never notices by itself, as nothing is written while
 * the stream is suspended). Bytes (a pipelined request) end the watch. */
static void conn_peer_cb(struct ev_loop *evl, ev_io *w, int revents) {
  srv_conn_t *cn = w->data;
  char c;
  ssize_t n;
  (void)revents;
  n = recv(cn->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return;
  ev_io_stop(evl, w);
  if (n > 0 || !cn->req) return;
  cn->req->peer_gone = 1;
  req_resume(cn->req);
}

/* Accept the connections waiting on the listening socket: each is counted
 * and its first head read by the gate before MHD gets it. Over MHD's hard
 * limit a connection is closed at once. */
static void srv_accept_cb(struct ev_loop *evl, ev_io *w, int revents) {
  wf_server_t *s = w->data;
  int i;
  (void)evl;
  (void)revents;
  for (i = 0; i < ACCEPT_BATCH; i++) {
    struct sockaddr_storage ss;
    socklen_t alen = sizeof ss;
    srv_conn_t *cn;
    int fd = accept4(s->listen_fd, (struct sockaddr *)&ss, &alen,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return; /* EAGAIN, or an error MHD would also skip */
    if (s->nconns + s->nlingers >= s->o.max_connections + HARD_CONN_SLACK) {
      close(fd);
      continue;
    }
    cn = wf_xcalloc(1, sizeof *cn);
    cn->s = s;
    cn->fd = fd;
    cn->addr = ss;
    cn->alen = alen;
    cn->over_cap = s->nconns >= s->o.max_connections;
    ev_timer_init(&cn->tm, conn_timer_cb, 0., 0.);
    cn->tm.data = cn;
    ev_io_init(&cn->peer, conn_peer_cb, fd, EV_READ);
    cn->peer.data = cn;
    wf_gate_init(cn);
    cn->next = s->conns;
    if (s->conns) s->conns->prev = cn;
    s->conns = cn;
    s->nconns++;
    conn_arm(cn, s->o.header_timeout);
    wf_gate_start(cn);
  }
}

/* MHD_OPTION_NOTIFY_CONNECTION: a connection weft accepted and checked is
 * now MHD's (adopt s->adding), or MHD closed one. */
static void on_connection(void *cls, struct MHD_Connection *c,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
  wf_server_t *s = cls;
  srv_conn_t *cn, **pp;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    cn = s->adding;
    s->adding = NULL;
    *socket_context = cn;
    if (cn) cn->c = c;
  } else if ((cn = *socket_context)) {
    /* MHD sent its error answer (and shut the write side): the socket
     * outlives MHD's descriptor while the client's input is dropped */
    if (cn->linger == LINGER_WANTED) {
      int fd = fcntl(cn->fd, F_DUPFD_CLOEXEC, 0);
      if (fd >= 0) wf_gate_linger(s, fd, 0, NULL);
    }
    if (cn->req) cn->req->conn = NULL;
    if (cn->checking)
      for (pp = &s->chk; *pp; pp = &(*pp)->cnext)
        if (*pp == cn) {
          *pp = cn->cnext;
          break;
        }
    cn->fd = -1; /* MHD closes the socket after this */
    wf_gate_drop(cn);
    *socket_context = NULL;
  }
}

/* The socket context of c (our srv_conn_t), or NULL. */
static srv_conn_t *conn_of(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? ci->socket_context : NULL;
}

/* ---- request lifecycle ------------------------------------------------- */

/* MHD_OPTION_URI_LOG_CALLBACK: the first thing MHD knows of a request; the
 * raw URI (with its query) is kept here, the result becomes req_cls. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c) {
  wf_server_t *s = cls;
  wf_server_req_t *r = wf_xcalloc(1, sizeof *r);
  srv_conn_t *cn = conn_of(c);
  if (cn) { /* each request MHD begins must be one the gate checked */
    cn->active = 1;
    if (cn->credits) cn->credits--;
    else if (!cn->refused && cn->bad)
      wf_gate_refuse(cn); /* the refused head after the checked requests */
    else if (!cn->refused)
      wf_gate_finish(cn);
    r->refused = cn->refused;
  }
  r->s = s;
  r->c = c;
  r->uri = wf_xstrdup(uri ? uri : "/");
  r->next = s->live;
  if (s->live) s->live->prev = r;
  s->live = r;
  return r;
}

/* Header iterator: copy with a lower-case name, count bytes. */
static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind,
                                      const char *key, const char *value) {
  wf_server_req_t *r = cls;
  char *name;
  size_t i;
  (void)kind;
  if (!key) return MHD_YES;
  if (!value) value = "";
  r->hbytes += strlen(key) + strlen(value) + 4;
  name = wf_xstrdup(key);
  for (i = 0; name[i]; i++)
    if (name[i] >= 'A' && name[i] <= 'Z') name[i] = (char)(name[i] + 32);
  if (2 * (r->nh + 1) > r->hcap) {
    r->hcap = r->hcap ? 2 * r->hcap : 16;
    r->hdrs = wf_xrealloc(r->hdrs, r->hcap * sizeof *r->hdrs);
  }
  r->hdrs[2 * r->nh] = name;
  r->hdrs[2 * r->nh + 1] = wf_xstrdup(value);
  r->nh++;
  return MHD_YES;
}

/* The value of header name (lower case) of r, or NULL. */
static const char *req_find(const wf_server_req_t *r, const char *name) {
  size_t i;
  for (i = 0; i < r->nh; i++)
    if (!strcmp(r->hdrs[2 * i], name)) return r->hdrs[2 * i + 1];
  return NULL;
}

/* First call of a request: headers are in. Check the limits. */
static enum MHD_Result req_start(wf_server_t *s, wf_server_req_t *r,
                                 struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version) {
  const char *cl, *te;
  char msg[128];
  size_t plen = strcspn(r->uri, "?");
  (void)url; /* MHD's decoded copy: cut at an encoded NUL, decoded once */
  r->started = 1;
  r->method = wf_xstrdup(method);
  r->path = wf_xmalloc(plen + 1);
  memcpy(r->path, r->uri, plen);
  r->path[plen] = 0;
  r->version = wf_xstrdup(version);
  r->conn = conn_of(c);
  if (r->conn) {
    r->conn->req = r;
    conn_disarm(r->conn);
  }
  MHD_get_connection_values(c, MHD_HEADER_KIND, collect_header, r);
  if (r->conn && r->conn->over_cap)
    return queue_error(s, c, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                       "too many connections", 1);
  if (r->hbytes > s->o.max_header_bytes) {
    snprintf(msg, sizeof msg, "request headers exceed %zu bytes",
             s->o.max_header_bytes);
    return queue_error(s, c, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
                       "headers_too_large", msg, 1);
  }
  cl = req_find(r, "content-length");
  te = req_find(r, "transfer-encoding");
  if (cl && strtoull(cl, NULL, 10) > s->o.max_body_bytes) {
    snprintf(msg, sizeof msg, "request body exceeds %zu bytes",
             s->o.max_body_bytes);
    return queue_error(s, c, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large",
                       msg, 1);
  }
  if (r->conn && ((cl && strtoull(cl, NULL, 10) > 0) || te))
    conn_arm(r->conn, s->o.body_timeout);
  return MHD_YES;
}

/* Hand r to the owner: it waits in the ready queue, its connection
 * suspended until the owner answers. */
static void req_dispatch(wf_server_t *s, wf_server_req_t *r) {
  r->dispatched = 1;
  s->inflight++;
  if (s->rtail) s->rtail->rnext = r;
  else s->rhead = r;
  s->rtail = r;
  notify_owner(s);
}

/* The MHD access handler: called with the headers, with each piece of
 * body, once more at the end, and again after each resume. */
static enum MHD_Result on_access(void *cls, struct MHD_Connection *c,
                                 const char *url, const char *method,
                                 const char *version, const char *upload,
                                 size_t *upload_size, void **req_cls) {
  wf_server_t *s = cls;
  wf_server_req_t *r = *req_cls;
  enum MHD_Result ret;
  if (!r) *req_cls = r = on_uri(s, url, c);
  /* unchecked bytes, or weft answered on the socket: close */
  if (r->refused || (r->conn && r->conn->refused)) return MHD_NO;
  if (!r->started) return req_start(s, r, c, url, method, version);
  if (*upload_size) {
    if (r->blen + *upload_size > s->o.max_body_bytes) {
      /* a chunked body (its size was not declared) went over the cap: MHD
       * cannot queue a response in the middle of a body, so answer on the
       * socket and stop reading rather than swallow the rest */
      char msg[128];
      *upload_size = 0;
      if (r->conn) {
        conn_disarm(r->conn);
        snprintf(msg, sizeof msg, "request body exceeds %zu bytes",
                 s->o.max_body_bytes);
        wf_gate_raw_error(r->conn, "413 Content Too Large", "body_too_large",
                       msg);
      }
      return MHD_NO; /* MHD closes the connection */
    }
    if (r->blen + *upload_size + 1 > r->bcap) {
      size_t cap = r->bcap ? r->bcap : 1024;
      while (cap < r->blen + *upload_size + 1) cap *= 2;
      r->body = wf_xrealloc(r->body, cap);
      r->bcap = cap;
    }
    memcpy(r->body + r->blen, upload, *upload_size);
    r->blen += *upload_size;
    *upload_size = 0;
    return MHD_YES;
  }
  if (r->conn) conn_disarm(r->conn);
  if (r->peer_gone) return MHD_NO; /* nobody to answer: close */
  if (r->resp) {
    /* after a chunked body the gate cannot know where the next request
     * starts: no keep-alive */
    if (s->closed || (r->conn && r->conn->end_unknown))
      MHD_add_response_header(r->resp, "Connection", "close");
    ret = MHD_queue_response(c, r->status, r->resp);
    MHD_destroy_response(r->resp);
    r->resp = NULL;
    r->queued = 1;
    return ret;
  }
  if (r->queued) return MHD_YES; /* resumed for a stream already queued */
  if (!r->dispatched) req_dispatch(s, r);
  r->suspended = 1;
  MHD_suspend_connection(c);
  return MHD_YES;
}

/* MHD_OPTION_NOTIFY_COMPLETED: the request is over (sent, client gone, or
 * daemon stopping). */
static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe) {
  wf_server_t *s = cls;
  wf_server_req_t *r = *req_cls, **pp, *prev = NULL;
  srv_conn_t *cn;
  (void)toe;
  *req_cls = NULL;
  /* keep-alive: the next request has header_timeout after idling; the
   * gate looks at the connection once MHD_run returns (wf_gate_check) */
  if ((cn = conn_of(c))) {
    cn->active = 0;
    if (!cn->timed_out)
      conn_arm(cn, s->o.header_timeout + s->o.idle_timeout);
    if (!cn->checking && !cn->refused && s->d) {
      cn->checking = 1;
      cn->cnext = s->chk;
      s->chk = cn;
    }
  }
  if (!r) return;
  if (r->conn) r->conn->req = NULL;
  r->conn = NULL;
  r->c = NULL;
  r->done = 1;
  r->suspended = 0;
  if (r->dispatched) {
    for (pp = &s->rhead; *pp; prev = *pp, pp = &(*pp)->rnext)
      if (*pp == r) { /* never taken: drop it */
        *pp = r->rnext;
        if (s->rtail == r) s->rtail = prev;
        break;
      }
    s->inflight--;
    notify_owner(s);
  }
  if (r->held) {
    if (r->nfn) r->nfn(r->nud, r);
  } else {
    req_free(r);
  }
}

/* Content reader of a streamed response: hand out the queued bytes; when
 * none are queued, suspend the connection (returning 0 is allowed with a
 * suspend, per MHD_ContentReaderCallback) until write/end resumes it. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
  wf_server_req_t *r = cls;
  size_t n = r->qlen - r->qoff;
  (void)pos;
  /* the client left: end the stream normally; MHD then reads the end of
   * the socket and closes (an error here leaves MHD holding it) */
  if (r->peer_gone) return MHD_CONTENT_READER_END_OF_STREAM;
  if (n) {
    if (n > max) n = max;
    memcpy(buf, r->q + r->qoff, n);
    r->qoff += n;
    if (r->qoff == r->qlen) {
      r->qoff = r->qlen = 0;
      if (r->held && r->nfn) r->nfn(r->nud, r);
    }
    return (ssize_t)n;
  }
  if (r->ended) return MHD_CONTENT_READER_END_OF_STREAM;
  if (!r->held) return MHD_CONTENT_READER_END_WITH_ERROR;
  if (!r->c) return MHD_CONTENT_READER_END_WITH_ERROR;
  r->suspended = 1;
  if (r->conn && r->s) ev_io_start(r->s->evl, &r->conn->peer);
  MHD_suspend_connection(r->c);
  return 0;
}

/* ---- server ------------------------------------------------------------ */

/* MHD's log goes to stderr only when WEFT_DEBUG_SERVER is set. */
static void mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  if (getenv("WEFT_DEBUG_SERVER")) {
    fputs("weft.server (libmicrohttpd): ", stderr);
    vfprintf(stderr, fmt, ap);
  }
}

wf_server_t *wf_server_new(struct ev_loop *evl, const wf_server_opts_t *o,
                           wf_server_notify_fn notify, void *ud,
                           wf_err_t *err) {
  wf_server_t *s;
  const union MHD_DaemonInfo *di;
  unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                   MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET;
  size_t mem;
  int family = AF_INET, fd;
  unsigned idle;
  if (o->max_connections < 1 || o->max_header_bytes < 1 ||
      o->header_timeout <= 0 || o->body_timeout <= 0 || o->idle_timeout <= 0) {
    wf_err_set(err, "server: limits and timeouts must be positive");
    return NULL;
  }
  fd = wf_tcp_listen_fd(o->host, o->port, 0, &family, err);
  if (fd < 0) return NULL;
  s = wf_xcalloc(1, sizeof *s);
  s->evl = evl;
  s->o = *o;
  s->o.host = NULL; /* not owned */
  s->notify = notify;
  s->ud = ud;
  s->listen_fd = fd;
  s->port = wf_tcp_sock_port(fd);
  if (family == AF_INET6) flags |= MHD_USE_IPv6;
  /* the pool holds the read buffer and the parsed headers: leave room so
   * that our exact header cap answers first (431 JSON); the gate reads
   * heads up to scratch_len, well inside the pool */
  mem = 2 * o->max_header_bytes + 16384;
  if (mem < 32768) mem = 32768;
  s->scratch_len = o->max_header_bytes + 8192;
  s->scratch = wf_xmalloc(s->scratch_len);
  idle = (unsigned)ceil(o->idle_timeout);
  s->d = MHD_start_daemon(
      flags, 0, NULL, NULL, on_access, s,
      MHD_OPTION_CONNECTION_LIMIT, o->max_connections + HARD_CONN_SLACK,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, mem, MHD_OPTION_CONNECTION_TIMEOUT,
      idle, MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
      MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
      MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
  if (!s->d) {
    wf_err_set(err, "server: libmicrohttpd refused to start");
    goto err;
  }
  di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_EPOLL_FD);
  if (!di) {
    wf_err_set(err, "server: libmicrohttpd has no epoll descriptor");
    MHD_stop_daemon(s->d);
    goto err;
  }
  ev_io_init(&s->io, srv_io_cb, di->epoll_fd, EV_READ);
  s->io.data = s;
  ev_io_start(evl, &s->io);
  ev_io_init(&s->lio, srv_accept_cb, fd, EV_READ);
  s->lio.data = s;
  ev_io_start(evl, &s->lio);
  ev_init(&s->tm, srv_timer_cb);
  s->tm.data = s;
  srv_run(s);
  return s;
err:
  close(fd);
  free(s->scratch);
  free(s);
  return NULL;
}

void wf_server_free(wf_server_t *s) {
  wf_server_req_t *r, *next;
  srv_conn_t *cn, *cnext;
  if (!s) return;
  ev_io_stop(s->evl, &s->io);
  ev_io_stop(s->evl, &s->lio);
  ev_timer_stop(s->evl, &s->tm);
  while (s->lingers) wf_gate_linger_end(s->lingers, 0); /* resumes those held */
  /* MHD_stop_daemon requires every suspended connection resumed; those
   * MHD never had are weft's to close */
  for (r = s->live; r; r = r->next)
    if (r->suspended && r->c) {
      r->suspended = 0;
      MHD_resume_connection(r->c);
    }
  for (cn = s->conns; cn; cn = cnext) {
    cnext = cn->next;
    if (!cn->c) wf_gate_drop(cn);
    else if (cn->gating) {
      wf_gate_stop(cn);
      MHD_resume_connection(cn->c);
    }
  }
  s->chk = NULL;
  s->notify = NULL; /* completions during the stop are not news */
  MHD_stop_daemon(s->d); /* on_completed runs for every open request */
  s->d = NULL;
  while (s->lingers) wf_gate_linger_end(s->lingers, 0); /* MHD's last ones too */
  s->chk = NULL;
  if (s->listen_fd >= 0) close(s->listen_fd);
  free(s->scratch);
  for (r = s->live; r; r = next) {
    next = r->next;
    r->s = NULL;
    r->prev = r->next = NULL;
    if (!r->done) {
      r->c = NULL;
      r->done = 1;
      if (r->held && r->nfn) r->nfn(r->nud, r);
    }
    if (!r->held) req_free(r);
  }
  free(s);
}

int wf_server_port(const wf_server_t *s) { return s->port; }

void wf_server_close(wf_server_t *s) {
  if (s->closed) return;
  s->closed = 1;
  ev_io_stop(s->evl, &s->lio);
  if (s->listen_fd >= 0) close(s->listen_fd);
  s->listen_fd = -1;
  wf_server_kick(s);
}

int wf_server_is_closed(const wf_server_t *s) { return s->closed; }

wf_server_req_t *wf_server_next(wf_server_t *s) {
  wf_server_req_t *r = s->rhead;
  if (!r) return NULL;
  s->rhead = r->rnext;
  if (!s->rhead) s->rtail = NULL;
  r->rnext = NULL;
  r->held = 1;
  return r;
}

unsigned wf_server_inflight(const wf_server_t *s) { return s->inflight; }
unsigned wf_server_connections(const wf_server_t *s) { return s->nconns; }

/* ---- requests ---------------------------------------------------------- */

const char *wf_server_req_method(const wf_server_req_t *r) {
  return r->method ? r->method : "";
}
const char *wf_server_req_path(const wf_server_req_t *r) {
  return r->path ? r->path : "/";
}
const char *wf_server_req_query(const wf_server_req_t *r) {
  const char *q = strchr(r->uri, '?');
  return q ? q + 1 : "";
}
const char *wf_server_req_version(const wf_server_req_t *r) {
  return r->version ? r->version : "";
}
const char *wf_server_req_body(const wf_server_req_t *r, size_t *len) {
  *len = r->blen;
  return r->body ? r->body : "";
}
size_t wf_server_req_nheaders(const wf_server_req_t *r) { return r->nh; }
void wf_server_req_header(const wf_server_req_t *r, size_t i,
                          const char **name, const char **value) {
  *name = r->hdrs[2 * i];
  *value = r->hdrs[2 * i + 1];
}

void wf_server_req_set_notify(wf_server_req_t *r, wf_server_req_notify_fn fn,
                              void *ud) {
  r->nfn = fn;
  r->nud = ud;
}

/* Check that r can still be answered with status. */
static int req_answerable(wf_server_req_t *r, int status, wf_err_t *err) {
  if (status < 100 || status > 999)
    return wf_err_set(err, "bad status %d", status);
  if (r->done || !r->c) return wf_err_set(err, "closed");
  if (r->responded) return wf_err_set(err, "response already sent");
  if (r->status < 100 || r->status > 999) r->status = 500;
  return WF_OK;
}

/* Add hdrs to resp; WF_ERR naming the bad one. */
static int add_headers(struct MHD_Response *resp, const char *const *hdrs,
                       size_t nh, wf_err_t *err) {
  size_t i;
  for (i = 0; i < nh; i++)
    if (MHD_add_response_header(resp, hdrs[2 * i], hdrs[2 * i + 1]) !=
        MHD_YES)
      return wf_err_set(err, "bad response header '%s'", hdrs[2 * i]);
  return WF_OK;
}

/* Answer r with resp (NULL: out of memory; taken over, destroyed on
 * failure) and hdrs: the access handler queues it once r resumes. */
static int req_answer(wf_server_req_t *r, int status, int streaming,
                      struct MHD_Response *resp, const char *const *hdrs,
                      size_t nh, wf_err_t *err) {
  if (!resp) return wf_err_set(err, "out of memory");
  if (add_headers(resp, hdrs, nh, err)) {
    MHD_destroy_response(resp);
    return WF_ERR;
  }
  r->resp = resp;
  r->status = (unsigned)status;
  r->responded = 1;
  r->streaming = streaming;
  req_resume(r);
  return WF_OK;
}

int wf_server_req_respond(wf_server_req_t *r, int status,
                          const char *const *hdrs, size_t nh,
                          const char *body, size_t len, wf_err_t *err) {
  if (req_answerable(r, status, err)) return WF_ERR;
  return req_answer(r, status, 0,
                    MHD_create_response_from_buffer(len, (void *)body,
                                                    MHD_RESPMEM_MUST_COPY),
                    hdrs, nh, err);
}

int wf_server_req_stream(wf_server_req_t *r, int status,
                         const char *const *hdrs, size_t nh, wf_err_t *err) {
  if (req_answerable(r, status, err)) return WF_ERR;
  return req_answer(r, status, 1,
                    MHD_create_response_from_callback(
                        MHD_SIZE_UNKNOWN, STREAM_BLOCK, stream_read, r, NULL),
                    hdrs, nh, err);
}

int wf_server_req_write(wf_server_req_t *r, const char *data, size_t len,
                        wf_err_t *err) {
  if (r->done || !r->c) return wf_err_set(err, "closed");
  if (!r->streaming || r->ended) return wf_err_set(err, "stream not open");
  if (!len) return WF_OK;
  if (r->qlen + len > r->qcap) {
    size_t cap = r->qcap ? r->qcap : 1024;
    while (cap < r->qlen + len) cap *= 2;
    r->q = wf_xrealloc(r->q, cap);
    r->qcap = cap;
  }
  memcpy(r->q + r->qlen, data, len);
  r->qlen += len;
  req_resume(r);
  return WF_OK;
}

size_t wf_server_req_pending(const wf_server_req_t *r) {
  return r->qlen - r->qoff;
}

int wf_server_req_end(wf_server_req_t *r, wf_err_t *err) {
  if (r->done || !r->c) return wf_err_set(err, "closed");
  if (!r->streaming) return wf_err_set(err, "stream not open");
  if (!r->ended) {
    r->ended = 1;
    req_resume(r);
  }
  return WF_OK;
}

int wf_server_req_closed(const wf_server_req_t *r) { return r->done; }

void wf_server_req_release(wf_server_req_t *r) {
  if (!r) return;
  r->held = 0;
  r->nfn = NULL;
  r->nud = NULL;
  if (r->done) {
    req_free(r);
    return;
  }
  if (!r->responded) {
    static const char body[] =
        "{\"error\":{\"code\":\"internal\",\"message\":\"the handler sent no "
        "response\"}}";
    const char *h[2] = {"Content-Type", "application/json"};
    wf_server_req_respond(r, 500, h, 1, body, sizeof body - 1, NULL);
  } else if (r->streaming && !r->ended) {
    r->ended = 1;
    req_resume(r);
  }
}
