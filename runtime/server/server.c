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
 * their 400 status line and headers twice). Error answers end with a
 * graceful close (srv_linger). Depends on libev,
 * libmicrohttpd, common.h. */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/tcp.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* MHD's own hard connection limit sits above the soft cap, so that the
 * connections over the cap can still be told 503. */
#define HARD_CONN_SLACK 64
#define STREAM_BLOCK (16 * 1024)
#define ACCEPT_BATCH 64
/* The graceful close after weft's own error answers (see srv_linger): what
 * the client still sends is read and dropped for at most this long, or
 * this many bytes, before the socket is closed. */
#define LINGER_SECS 2.0
#define LINGER_BYTES (64 * 1024)

/* cn->linger: how cn's socket is closed */
enum {
  LINGER_NO,      /* by MHD, or by conn_drop (nothing answered) */
  LINGER_WANTED,  /* MHD answered an error: linger when MHD closes it */
  LINGER_STARTED  /* weft holds a descriptor of it and lingers */
};

/* Per-connection state (MHD's socket context): the header/body deadline,
 * and the watch on the peer while a stream has nothing to send. */
typedef struct srv_conn srv_conn_t;
struct srv_conn {
  wf_server_t *s;
  int fd;
  int over_cap;   /* opened while the soft cap was reached: answer 503 */
  int timed_out;  /* deadline hit or body over the cap: answered, shut down */
  int linger;     /* LINGER_*: a graceful close after an error answer */
  ev_timer tm;    /* header or body deadline */
  ev_io peer;     /* readable while an idle stream waits: did the client go? */
  wf_server_req_t *req; /* the request in progress, or NULL */
  /* the gate: MHD reads only bytes weft has checked (see gate_read) */
  struct MHD_Connection *c;  /* NULL until handed to MHD */
  struct sockaddr_storage addr;
  socklen_t alen;
  ev_io gate;        /* readable: the next request head may be in */
  int gating;        /* weft reads the next head (MHD suspended or absent) */
  int refused;       /* unchecked bytes reached MHD: serve nothing more */
  int end_unknown;   /* a checked request has a chunked body */
  int checking;      /* on s->chk: a request completed, see conn_check */
  int active;        /* MHD began a request (on_uri) not yet completed */
  unsigned credits;  /* checked requests MHD has not started */
  uint64_t checked;  /* stream offset past the last checked request */
  size_t seen;       /* bytes peeked while the head was incomplete */
  const char *bad;   /* why the head at `checked` is refused, or NULL */
  int bad_status;    /* its status (400, 431) */
  srv_conn_t *prev, *next; /* all connections */
  srv_conn_t *cnext;       /* s->chk */
};

/* A socket closing gracefully after weft's last answer on it. Closing a
 * TCP socket with unread input resets the connection (RST), and a client
 * that is still sending (a body over the cap) may then never read the
 * answer: the kernel drops what was not yet sent or read. So the write
 * side is shut (FIN after the answer) and what the client still sends is
 * read and dropped on the loop until it closes its side, LINGER_BYTES
 * were dropped or LINGER_SECS passed; then the socket is closed. weft
 * holds its own descriptor (a dup when MHD has the connection), so MHD
 * may close its own at any time. */
typedef struct srv_linger srv_linger_t;
struct srv_linger {
  wf_server_t *s;
  int fd;
  int shared;   /* MHD may still hold the socket: shut it down at the end */
  srv_conn_t *held; /* suspended in MHD for the linger: resumed at the end */
  size_t got;   /* bytes dropped */
  ev_io io;
  ev_timer tm;
  srv_linger_t *prev, *next;
};

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

struct wf_server {
  struct ev_loop *evl;
  struct MHD_Daemon *d;
  ev_io io;
  ev_timer tm;
  ev_io lio;     /* the listening socket (weft accepts) */
  int port, listen_fd, closed;
  int in_run;         /* inside MHD_run (its callbacks) */
  srv_conn_t *conns;  /* every open connection, handed to MHD or not */
  srv_conn_t *chk;    /* connections whose request completed in MHD_run */
  srv_conn_t *adding; /* being handed to MHD (on_connection takes it) */
  srv_linger_t *lingers; /* sockets closing gracefully */
  unsigned nlingers;
  char *scratch;      /* peeked request heads */
  size_t scratch_len;
  wf_server_opts_t o;
  wf_server_notify_fn notify;
  void *ud;
  wf_server_req_t *rhead, *rtail; /* ready, not yet taken */
  wf_server_req_t *live;
  unsigned inflight, nconns;
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

/* The JSON error body {"error":{"code":..,"message":..}} (static text). */
static int error_body(char *buf, size_t n, const char *code, const char *msg) {
  return snprintf(buf, n, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}",
                  code, msg);
}

/* Reason phrase used for the raw 408 we write ourselves. */
static void notify_owner(wf_server_t *s) {
  if (s->notify) s->notify(s->ud);
}

/* Run MHD soon (after a resume or a shutdown made work for it). */
static void srv_kick(wf_server_t *s) {
  ev_timer_stop(s->evl, &s->tm);
  ev_timer_set(&s->tm, 0., 0.);
  ev_timer_start(s->evl, &s->tm);
}

static void conn_check(srv_conn_t *cn);
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
    conn_check(cn);
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
  if (r->s) srv_kick(r->s);
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
  int n = error_body(buf, sizeof buf, code, msg);
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

static void gate_start(srv_conn_t *cn);
static void gate_stop(srv_conn_t *cn);

/* Close and free cn, which MHD never had (weft answered it at the gate,
 * or the client left before sending a head). */
static void conn_drop(srv_conn_t *cn) {
  wf_server_t *s = cn->s;
  ev_timer_stop(s->evl, &cn->tm);
  ev_io_stop(s->evl, &cn->gate);
  ev_io_stop(s->evl, &cn->peer);
  if (cn->prev) cn->prev->next = cn->next;
  else s->conns = cn->next;
  if (cn->next) cn->next->prev = cn->prev;
  if (cn->fd >= 0) close(cn->fd);
  s->nconns--;
  free(cn);
}

/* End l: close weft's descriptor (when MHD may still hold the socket,
 * shut it down first so that MHD reads the end and closes too, and run
 * MHD when kick). */
static void linger_end(srv_linger_t *l, int kick) {
  wf_server_t *s = l->s;
  ev_io_stop(s->evl, &l->io);
  ev_timer_stop(s->evl, &l->tm);
  if (l->prev) l->prev->next = l->next;
  else s->lingers = l->next;
  if (l->next) l->next->prev = l->prev;
  s->nlingers--;
  if (l->shared) shutdown(l->fd, SHUT_RDWR);
  close(l->fd);
  if (l->held && l->held->c) MHD_resume_connection(l->held->c);
  if (l->shared && kick) srv_kick(s);
  free(l);
}

/* The client sent more: drop it; its end of stream, an error or the byte
 * bound end the linger. */
static void linger_io_cb(struct ev_loop *evl, ev_io *w, int revents) {
  srv_linger_t *l = w->data;
  (void)evl;
  (void)revents;
  for (;;) {
    ssize_t n = recv(l->fd, l->s->scratch, l->s->scratch_len, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || (l->got += (size_t)n) >= LINGER_BYTES) break;
  }
  linger_end(l, 1);
}

static void linger_timer_cb(struct ev_loop *evl, ev_timer *w, int revents) {
  (void)evl;
  (void)revents;
  linger_end(w->data, 1);
}

/* Linger on fd (weft's own descriptor, taken over; its write side is
 * already shut); shared: MHD may still hold the socket; held: the
 * connection suspended in MHD meanwhile (or NULL). */
static void linger_start(wf_server_t *s, int fd, int shared,
                         srv_conn_t *held) {
  srv_linger_t *l = wf_xcalloc(1, sizeof *l);
  int one = 1;
  /* the gate may have raised the wake-up threshold */
  setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
  l->s = s;
  l->fd = fd;
  l->shared = shared;
  l->held = held;
  ev_io_init(&l->io, linger_io_cb, fd, EV_READ);
  l->io.data = l;
  ev_io_start(s->evl, &l->io);
  ev_timer_init(&l->tm, linger_timer_cb, LINGER_SECS, 0.);
  l->tm.data = l;
  ev_timer_start(s->evl, &l->tm);
  l->next = s->lingers;
  if (s->lingers) s->lingers->prev = l;
  s->lingers = l;
  s->nlingers++;
}

/* MHD may read cn again: the gate closes, a suspended connection resumes
 * (an answered one then reads the end of the stream and closes). */
static void gate_release(srv_conn_t *cn) {
  if (!cn->gating) return;
  gate_stop(cn);
  if (cn->c) {
    MHD_resume_connection(cn->c);
    srv_kick(cn->s);
  }
}

/* weft's last answer on cn is written: close gracefully (srv_linger). One
 * MHD never had is freed here (cn is gone on return). One MHD has serves
 * nothing more: inside MHD_run the caller makes MHD close it at once
 * (MHD_NO); outside, it stays suspended in MHD (which reads nothing of
 * the client's input) until the linger ends, then MHD reads the end of
 * the socket and closes it. */
static void conn_finish(srv_conn_t *cn) {
  wf_server_t *s = cn->s;
  int fd;
  ev_timer_stop(s->evl, &cn->tm);
  shutdown(cn->fd, SHUT_WR);
  if (!cn->c) {
    fd = cn->fd;
    cn->fd = -1;
    conn_drop(cn);
    linger_start(s, fd, 0, NULL);
    return;
  }
  cn->refused = 1;
  if (cn->linger != LINGER_STARTED) {
    cn->linger = LINGER_STARTED;
    fd = fcntl(cn->fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
      shutdown(cn->fd, SHUT_RDWR); /* no descriptor left: close now */
    } else if (s->in_run) {
      linger_start(s, fd, 1, NULL);
    } else {
      if (cn->gating) gate_stop(cn); /* MHD is suspended already */
      else MHD_suspend_connection(cn->c);
      linger_start(s, fd, 1, cn);
      return;
    }
  }
  gate_release(cn);
  srv_kick(s);
}

/* Answer on cn's socket ourselves (no response has started on it: MHD is
 * still reading the request, or has not got it) with a JSON error, and
 * close gracefully (conn_finish: one MHD never had is freed, cn is gone
 * on return then). status_line is e.g. "408 Request Timeout". */
static void conn_raw_error(srv_conn_t *cn, const char *status_line,
                           const char *code, const char *msg) {
  char body[512], head[512];
  int bl, hl;
  cn->timed_out = 1;
  bl = error_body(body, sizeof body, code, msg);
  hl = snprintf(head, sizeof head,
                "HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\nConnection: close\r\n\r\n",
                status_line, bl);
  if (send(cn->fd, head, (size_t)hl, MSG_NOSIGNAL | MSG_DONTWAIT) == hl)
    (void)send(cn->fd, body, (size_t)bl, MSG_NOSIGNAL | MSG_DONTWAIT);
  conn_finish(cn);
}

/* A header or body deadline passed: answer 408 on the socket. */
static void conn_timer_cb(struct ev_loop *evl, ev_timer *w, int revents) {
  (void)evl;
  (void)revents;
  conn_raw_error(w->data, "408 Request Timeout", "timeout",
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

/* ---- the gate: request heads checked before MHD reads them ------------ */

enum { HEAD_MORE, HEAD_OK, HEAD_BAD };
enum { GATE_MORE, GATE_OK, GATE_DONE }; /* GATE_DONE: answered, cn may be gone */

/* What head_parse found: the head's length, the declared body. */
typedef struct head_info {
  size_t len;      /* bytes of the head, its blank line included */
  uint64_t body;   /* Content-Length (0 when none) */
  int chunked;     /* Transfer-Encoding: chunked */
  const char *why; /* HEAD_BAD: the reason, for the 400 */
} head_info_t;

/* Case-insensitive: does [p, p+n) equal the lower-case word w? */
static int word_is(const char *p, size_t n, const char *w) {
  return strlen(w) == n && !strncasecmp(p, w, n);
}

/* Parse the request head at the start of b[0..n) as libmicrohttpd will
 * split it (lines end at LF, an optional CR before it is dropped; empty
 * lines before the request line are skipped) and check the headers that
 * frame the body. Stricter than RFC 9112 where MHD would misread: a value
 * is taken as MHD takes it (leading blanks dropped, trailing ones kept).
 * HEAD_MORE: the blank line that ends the head is not in b yet. */
static int head_parse(const char *b, size_t n, head_info_t *hi) {
  size_t pos = 0, lf, end, i;
  int have_cl = 0, have_te = 0, first = 1;
  uint64_t cl = 0;
  memset(hi, 0, sizeof *hi);
  for (;;) { /* spurious empty lines before the request line */
    if (pos < n && b[pos] == '\n') pos++;
    else if (pos + 1 < n && b[pos] == '\r' && b[pos + 1] == '\n') pos += 2;
    else break;
  }
  for (;;) {
    const char *line, *colon, *v;
    size_t len, vlen;
    const char *nl = memchr(b + pos, '\n', n - pos);
    if (!nl) return HEAD_MORE;
    lf = (size_t)(nl - b);
    end = (lf > pos && b[lf - 1] == '\r') ? lf - 1 : lf;
    line = b + pos;
    len = end - pos;
    pos = lf + 1;
    for (i = 0; i < len; i++)
      if (line[i] == '\r' || line[i] == '\0') {
        hi->why = "a bare CR or a NUL byte in the request head";
        return HEAD_BAD;
      }
    if (first) { /* the request line is MHD's to judge */
      first = 0;
      continue;
    }
    if (!len) break; /* the blank line: end of the head */
    if (line[0] == ' ' || line[0] == '\t') {
      hi->why = "a folded header line (obsolete line folding)";
      return HEAD_BAD;
    }
    colon = memchr(line, ':', len);
    if (!colon || colon == line) {
      hi->why = "a header line without a name and a colon";
      return HEAD_BAD;
    }
    if (memchr(line, ' ', (size_t)(colon - line)) ||
        memchr(line, '\t', (size_t)(colon - line))) {
      hi->why = "whitespace in a header name";
      return HEAD_BAD;
    }
    v = colon + 1;
    while (v < line + len && (*v == ' ' || *v == '\t')) v++;
    vlen = (size_t)(line + len - v);
    if (word_is(line, (size_t)(colon - line), "content-length")) {
      uint64_t x = 0;
      if (!vlen) {
        hi->why = "an empty Content-Length";
        return HEAD_BAD;
      }
      for (i = 0; i < vlen; i++) {
        unsigned d = (unsigned char)v[i] - '0';
        if (d > 9) {
          hi->why = "a Content-Length that is not a decimal number";
          return HEAD_BAD;
        }
        if (x > (UINT64_MAX - d) / 10) {
          hi->why = "a Content-Length too large to represent";
          return HEAD_BAD;
        }
        x = 10 * x + d;
      }
      if (have_cl && x != cl) {
        hi->why = "Content-Length headers with different values";
        return HEAD_BAD;
      }
      have_cl = 1;
      cl = x;
    } else if (word_is(line, (size_t)(colon - line), "transfer-encoding")) {
      if (have_te) {
        hi->why = "more than one Transfer-Encoding header";
        return HEAD_BAD;
      }
      if (!word_is(v, vlen, "chunked")) {
        hi->why = "a Transfer-Encoding other than chunked";
        return HEAD_BAD;
      }
      have_te = 1;
    }
  }
  if (have_cl && have_te) {
    hi->why = "both Content-Length and Transfer-Encoding (a request "
              "smuggling attempt)";
    return HEAD_BAD;
  }
  hi->len = pos;
  hi->body = cl;
  hi->chunked = have_te;
  return HEAD_OK;
}

/* Bytes of cn's stream that MHD has read so far (bytes received minus
 * bytes still queued); -1 on error. Nobody reads meanwhile, so the queue
 * only grows: equal queue lengths around TCP_INFO mean no segment
 * arrived in between and the two counts agree. */
static int64_t conn_consumed(srv_conn_t *cn) {
  struct tcp_info ti;
  socklen_t len;
  int inq = 0, inq2 = 0, tries;
  if (ioctl(cn->fd, FIONREAD, &inq) < 0) return -1;
  for (tries = 0; tries < 8; tries++) {
    len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(cn->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_received) +
                  sizeof ti.tcpi_bytes_received ||
        ioctl(cn->fd, FIONREAD, &inq2) < 0)
      return -1;
    if (inq2 == inq) return (int64_t)ti.tcpi_bytes_received - inq;
    inq = inq2;
  }
  return -1; /* a stream that never pauses: treated as unchecked bytes */
}

/* Record the readability threshold of cn's socket: wake only when more
 * than `seen` bytes are queued (a partial head must not spin the loop). */
static void gate_lowat(srv_conn_t *cn, size_t seen) {
  int v = seen ? (int)seen + 1 : 1;
  if (seen == cn->seen) return;
  cn->seen = seen;
  setsockopt(cn->fd, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof v);
}

/* Answer the refused head at cn->checked (400 or 431) and close. */
static void gate_refuse(srv_conn_t *cn) {
  char msg[160];
  wf_server_t *s = cn->s;
  if (cn->bad_status == 431) {
    snprintf(msg, sizeof msg, "request head exceeds %zu bytes",
             s->scratch_len);
    conn_raw_error(cn, "431 Request Header Fields Too Large",
                   "headers_too_large", msg);
  } else {
    snprintf(msg, sizeof msg, "malformed request: %s", cn->bad);
    conn_raw_error(cn, "400 Bad Request", "bad_request", msg);
  }
}

/* Check the heads at the front of cn's socket: every complete request in
 * the peeked bytes whose end is known becomes a credit (MHD may parse it);
 * a refused head is answered at once if it is the first, or after the
 * requests before it (conn_check). GATE_OK: MHD may read; GATE_MORE: the
 * first head is incomplete; GATE_DONE: refused (cn may be freed). */
static int gate_scan(srv_conn_t *cn, const char *b, size_t n) {
  size_t off = 0;
  unsigned k = 0;
  head_info_t hi;
  for (;;) {
    int rc = head_parse(b + off, n - off, &hi);
    if (rc == HEAD_MORE) {
      if (k) break;
      if (n >= cn->s->scratch_len) {
        cn->bad = "request head too large";
        cn->bad_status = 431;
        gate_refuse(cn);
        return GATE_DONE;
      }
      return GATE_MORE;
    }
    if (rc == HEAD_BAD) {
      cn->bad = hi.why;
      cn->bad_status = 400;
      if (!k) {
        gate_refuse(cn);
        return GATE_DONE;
      }
      break; /* answered once the requests before it are (conn_check) */
    }
    k++;
    cn->checked += hi.len;
    if (hi.chunked) { /* its end is the end of the chunks: unknown here */
      cn->end_unknown = 1;
      break;
    }
    cn->checked += hi.body;
    if (hi.body > n - off - hi.len) break; /* the body is not all here */
    off += hi.len + (size_t)hi.body;
    if (off >= n) break;
  }
  cn->credits += k;
  return GATE_OK;
}

/* Peek at cn's socket for the next request head and, once it is checked,
 * let MHD read: hand a new connection to MHD, or resume a suspended one. */
static void gate_read(srv_conn_t *cn) {
  wf_server_t *s = cn->s;
  ssize_t n = recv(cn->fd, s->scratch, s->scratch_len, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return;
  if (n <= 0 || (size_t)n <= cn->seen) {
    /* end of stream (or an error) before a complete head: nothing to
     * answer; MHD reads the end itself, one it never had is closed */
    if (!cn->c) conn_drop(cn);
    else {
      cn->refused = 1;
      gate_release(cn);
    }
    return;
  }
  switch (gate_scan(cn, s->scratch, (size_t)n)) {
  case GATE_DONE:
    return;
  case GATE_MORE:
    gate_lowat(cn, (size_t)n);
    return;
  }
  gate_lowat(cn, 0);
  if (cn->c) {
    gate_release(cn);
    return;
  }
  gate_stop(cn);
  s->adding = cn;
  /* MHD takes the socket (closing it on failure); on_connection adopts
   * cn through s->adding, and on a failure after that frees it */
  if (MHD_add_connection(s->d, cn->fd, (struct sockaddr *)&cn->addr,
                         cn->alen) != MHD_YES &&
      s->adding == cn) {
    s->adding = NULL;
    cn->fd = -1;
    ev_timer_stop(s->evl, &cn->tm);
    if (cn->prev) cn->prev->next = cn->next;
    else s->conns = cn->next;
    if (cn->next) cn->next->prev = cn->prev;
    s->nconns--;
    free(cn);
    return;
  }
  s->adding = NULL;
  srv_kick(s);
}

static void gate_cb(struct ev_loop *evl, ev_io *w, int revents) {
  (void)evl;
  (void)revents;
  gate_read(w->data);
}

/* Watch cn's socket for the next head (MHD is suspended or absent). */
static void gate_start(srv_conn_t *cn) {
  cn->gating = 1;
  cn->seen = 0;
  ev_io_start(cn->s->evl, &cn->gate);
}

static void gate_stop(srv_conn_t *cn) {
  cn->gating = 0;
  ev_io_stop(cn->s->evl, &cn->gate);
}

/* After an MHD turn in which cn's request completed and the connection
 * stays open: if MHD holds nothing unchecked, either a checked request
 * follows (MHD goes on) or MHD is suspended while weft reads the next
 * head. Unchecked bytes in MHD's buffer (a request pipelined after the
 * peek) are never served: a refused head is answered, else the
 * connection is closed (a pipelining client retries). */
static void conn_check(srv_conn_t *cn) {
  wf_server_t *s = cn->s;
  int64_t used;
  ssize_t n;
  if (cn->active || cn->refused || cn->gating || !cn->c) return;
  used = cn->end_unknown ? -1 : conn_consumed(cn);
  if (used < 0 || (uint64_t)used > cn->checked) {
    if (cn->bad) {
      gate_refuse(cn);
      return;
    }
    conn_finish(cn);
    return;
  }
  if (cn->credits) return; /* a checked request is on its way to MHD */
  /* the next head is often in already: checked there, MHD goes on
   * without a suspend/resume round (MHD is not running: nothing reads) */
  n = recv(cn->fd, s->scratch, s->scratch_len, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) {
    int rc = gate_scan(cn, s->scratch, (size_t)n);
    if (rc == GATE_DONE) return;
    if (rc == GATE_OK) {
      srv_kick(s);
      return;
    }
  } else if (n == 0) { /* the client left: MHD reads the end and closes */
    srv_kick(s);
    return;
  }
  MHD_suspend_connection(cn->c);
  gate_start(cn);
  gate_read(cn);
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
    ev_io_init(&cn->gate, gate_cb, fd, EV_READ);
    cn->gate.data = cn;
    cn->next = s->conns;
    if (s->conns) s->conns->prev = cn;
    s->conns = cn;
    s->nconns++;
    conn_arm(cn, s->o.header_timeout);
    gate_start(cn);
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
      if (fd >= 0) linger_start(s, fd, 0, NULL);
    }
    conn_disarm(cn);
    ev_io_stop(s->evl, &cn->peer); /* MHD closes the socket after this */
    ev_io_stop(s->evl, &cn->gate);
    if (cn->req) cn->req->conn = NULL;
    if (cn->checking)
      for (pp = &s->chk; *pp; pp = &(*pp)->cnext)
        if (*pp == cn) {
          *pp = cn->cnext;
          break;
        }
    if (cn->prev) cn->prev->next = cn->next;
    else s->conns = cn->next;
    if (cn->next) cn->next->prev = cn->prev;
    s->nconns--;
    free(cn);
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
      gate_refuse(cn); /* the refused head after the checked requests */
    else if (!cn->refused)
      conn_finish(cn);
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
        conn_raw_error(r->conn, "413 Content Too Large", "body_too_large",
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
   * gate looks at the connection once MHD_run returns (conn_check) */
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

/* Bind and listen on host:port (non-blocking); fd or -1 with err. */
static int listen_socket(const char *host, int port, int *family,
                         wf_err_t *err) {
  struct addrinfo hints, *res = NULL, *ai;
  char pstr[16];
  int fd = -1, rc, one = 1, e = 0;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  snprintf(pstr, sizeof pstr, "%d", port);
  if (host && (!strcmp(host, "*") || !*host)) host = NULL;
  rc = getaddrinfo(host, pstr, &hints, &res);
  if (rc) {
    wf_err_set(err, "cannot resolve '%s': %s", host ? host : "*",
               gai_strerror(rc));
    return -1;
  }
  for (ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                ai->ai_protocol);
    if (fd < 0) {
      e = errno;
      continue;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
        listen(fd, SOMAXCONN) == 0) {
      *family = ai->ai_family;
      break;
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

/* The port fd is bound to. */
static int socket_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len)) return 0;
  if (ss.ss_family == AF_INET)
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  if (ss.ss_family == AF_INET6)
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return 0;
}

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
  fd = listen_socket(o->host, o->port, &family, err);
  if (fd < 0) return NULL;
  s = wf_xcalloc(1, sizeof *s);
  s->evl = evl;
  s->o = *o;
  s->o.host = NULL; /* not owned */
  s->notify = notify;
  s->ud = ud;
  s->listen_fd = fd;
  s->port = socket_port(fd);
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
  while (s->lingers) linger_end(s->lingers, 0); /* resumes those held */
  /* MHD_stop_daemon requires every suspended connection resumed; those
   * MHD never had are weft's to close */
  for (r = s->live; r; r = r->next)
    if (r->suspended && r->c) {
      r->suspended = 0;
      MHD_resume_connection(r->c);
    }
  for (cn = s->conns; cn; cn = cnext) {
    cnext = cn->next;
    if (!cn->c) conn_drop(cn);
    else if (cn->gating) {
      gate_stop(cn);
      MHD_resume_connection(cn->c);
    }
  }
  s->chk = NULL;
  s->notify = NULL; /* completions during the stop are not news */
  MHD_stop_daemon(s->d); /* on_completed runs for every open request */
  s->d = NULL;
  while (s->lingers) linger_end(s->lingers, 0); /* MHD's last ones too */
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
  srv_kick(s);
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

/* Check that r can still be answered. */
static int req_answerable(wf_server_req_t *r, wf_err_t *err) {
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

int wf_server_req_respond(wf_server_req_t *r, int status,
                          const char *const *hdrs, size_t nh,
                          const char *body, size_t len, wf_err_t *err) {
  struct MHD_Response *resp;
  if (status < 100 || status > 999)
    return wf_err_set(err, "bad status %d", status);
  if (req_answerable(r, err)) return WF_ERR;
  resp = MHD_create_response_from_buffer(len, (void *)body,
                                         MHD_RESPMEM_MUST_COPY);
  if (!resp) return wf_err_set(err, "out of memory");
  if (add_headers(resp, hdrs, nh, err)) {
    MHD_destroy_response(resp);
    return WF_ERR;
  }
  r->resp = resp;
  r->status = (unsigned)status;
  r->responded = 1;
  req_resume(r);
  return WF_OK;
}

int wf_server_req_stream(wf_server_req_t *r, int status,
                         const char *const *hdrs, size_t nh, wf_err_t *err) {
  struct MHD_Response *resp;
  if (status < 100 || status > 999)
    return wf_err_set(err, "bad status %d", status);
  if (req_answerable(r, err)) return WF_ERR;
  resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK,
                                           stream_read, r, NULL);
  if (!resp) return wf_err_set(err, "out of memory");
  if (add_headers(resp, hdrs, nh, err)) {
    MHD_destroy_response(resp);
    return WF_ERR;
  }
  r->resp = resp;
  r->status = (unsigned)status;
  r->responded = r->streaming = 1;
  req_resume(r);
  return WF_OK;
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
