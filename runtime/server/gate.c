/* gate.c — the request-head gate of the HTTP server (server.c) and the
 * graceful close after weft's own answers. weft reads every request head
 * (MSG_PEEK) before libmicrohttpd may read it and checks the headers that
 * frame the body (Content-Length, Transfer-Encoding, folded lines): MHD
 * parses only checked requests; a refused head gets weft's 400 (431 when
 * too large) on the socket. Error answers end with a linger: the write
 * side is shut and the client's input dropped before the socket closes.
 * Depends on libev, libmicrohttpd, server_int.h. */
#include <errno.h>
#include <fcntl.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "server_int.h"

/* The graceful close after weft's own error answers (srv_linger_t): what
 * the client still sends is read and dropped for at most this long, or
 * this many bytes, before the socket is closed. */
#define LINGER_SECS 2.0
#define LINGER_BYTES (64 * 1024)

/* ---- closing: dropped connections, lingering sockets ------------------- */

/* Forget cn: one MHD never had (weft answered it at the gate, the client
 * left before sending a head, MHD refused it) or one MHD closed (cn->fd
 * is -1 then: the socket is MHD's). */
void wf_gate_drop(srv_conn_t *cn) {
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
void wf_gate_linger_end(srv_linger_t *l, int kick) {
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
  if (l->shared && kick) wf_server_kick(s);
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
  wf_gate_linger_end(l, 1);
}

static void linger_timer_cb(struct ev_loop *evl, ev_timer *w, int revents) {
  (void)evl;
  (void)revents;
  wf_gate_linger_end(w->data, 1);
}

/* Linger on fd (weft's own descriptor, taken over; its write side is
 * already shut); shared: MHD may still hold the socket; held: the
 * connection suspended in MHD meanwhile (or NULL). */
void wf_gate_linger(wf_server_t *s, int fd, int shared,
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
  wf_gate_stop(cn);
  if (cn->c) {
    MHD_resume_connection(cn->c);
    wf_server_kick(cn->s);
  }
}

/* weft's last answer on cn is written: close gracefully (srv_linger). One
 * MHD never had is freed here (cn is gone on return). One MHD has serves
 * nothing more: inside MHD_run the caller makes MHD close it at once
 * (MHD_NO); outside, it stays suspended in MHD (which reads nothing of
 * the client's input) until the linger ends, then MHD reads the end of
 * the socket and closes it. */
void wf_gate_finish(srv_conn_t *cn) {
  wf_server_t *s = cn->s;
  int fd;
  ev_timer_stop(s->evl, &cn->tm);
  shutdown(cn->fd, SHUT_WR);
  if (!cn->c) {
    fd = cn->fd;
    cn->fd = -1;
    wf_gate_drop(cn);
    wf_gate_linger(s, fd, 0, NULL);
    return;
  }
  cn->refused = 1;
  if (cn->linger != LINGER_STARTED) {
    cn->linger = LINGER_STARTED;
    fd = fcntl(cn->fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
      shutdown(cn->fd, SHUT_RDWR); /* no descriptor left: close now */
    } else if (s->in_run) {
      wf_gate_linger(s, fd, 1, NULL);
    } else {
      if (cn->gating) wf_gate_stop(cn); /* MHD is suspended already */
      else MHD_suspend_connection(cn->c);
      wf_gate_linger(s, fd, 1, cn);
      return;
    }
  }
  gate_release(cn);
  wf_server_kick(s);
}

/* Answer on cn's socket ourselves (no response has started on it: MHD is
 * still reading the request, or has not got it) with a JSON error, and
 * close gracefully (wf_gate_finish: one MHD never had is freed, cn is gone
 * on return then). status_line is e.g. "408 Request Timeout". */
void wf_gate_raw_error(srv_conn_t *cn, const char *status_line,
                           const char *code, const char *msg) {
  char body[512], head[512];
  int bl, hl;
  cn->timed_out = 1;
  bl = wf_server_error_body(body, sizeof body, code, msg);
  hl = snprintf(head, sizeof head,
                "HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\nConnection: close\r\n\r\n",
                status_line, bl);
  if (send(cn->fd, head, (size_t)hl, MSG_NOSIGNAL | MSG_DONTWAIT) == hl)
    (void)send(cn->fd, body, (size_t)bl, MSG_NOSIGNAL | MSG_DONTWAIT);
  wf_gate_finish(cn);
}

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
void wf_gate_refuse(srv_conn_t *cn) {
  char msg[160];
  wf_server_t *s = cn->s;
  if (cn->bad_status == 431) {
    snprintf(msg, sizeof msg, "request head exceeds %zu bytes",
             s->scratch_len);
    wf_gate_raw_error(cn, "431 Request Header Fields Too Large",
                   "headers_too_large", msg);
  } else {
    snprintf(msg, sizeof msg, "malformed request: %s", cn->bad);
    wf_gate_raw_error(cn, "400 Bad Request", "bad_request", msg);
  }
}

/* Check the heads at the front of cn's socket: every complete request in
 * the peeked bytes whose end is known becomes a credit (MHD may parse it);
 * a refused head is answered at once if it is the first, or after the
 * requests before it (wf_gate_check). GATE_OK: MHD may read; GATE_MORE: the
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
        wf_gate_refuse(cn);
        return GATE_DONE;
      }
      return GATE_MORE;
    }
    if (rc == HEAD_BAD) {
      cn->bad = hi.why;
      cn->bad_status = 400;
      if (!k) {
        wf_gate_refuse(cn);
        return GATE_DONE;
      }
      break; /* answered once the requests before it are (wf_gate_check) */
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
    if (!cn->c) wf_gate_drop(cn);
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
  wf_gate_stop(cn);
  s->adding = cn;
  /* MHD takes the socket (closing it on failure); on_connection adopts
   * cn through s->adding, and on a failure after that frees it */
  if (MHD_add_connection(s->d, cn->fd, (struct sockaddr *)&cn->addr,
                         cn->alen) != MHD_YES &&
      s->adding == cn) {
    s->adding = NULL;
    cn->fd = -1; /* closed by MHD */
    wf_gate_drop(cn);
    return;
  }
  s->adding = NULL;
  wf_server_kick(s);
}

static void gate_cb(struct ev_loop *evl, ev_io *w, int revents) {
  (void)evl;
  (void)revents;
  gate_read(w->data);
}

void wf_gate_init(srv_conn_t *cn) {
  ev_io_init(&cn->gate, gate_cb, cn->fd, EV_READ);
  cn->gate.data = cn;
}

/* Watch cn's socket for the next head (MHD is suspended or absent). */
void wf_gate_start(srv_conn_t *cn) {
  cn->gating = 1;
  cn->seen = 0;
  ev_io_start(cn->s->evl, &cn->gate);
}

void wf_gate_stop(srv_conn_t *cn) {
  cn->gating = 0;
  ev_io_stop(cn->s->evl, &cn->gate);
}

/* After an MHD turn in which cn's request completed and the connection
 * stays open: if MHD holds nothing unchecked, either a checked request
 * follows (MHD goes on) or MHD is suspended while weft reads the next
 * head. Unchecked bytes in MHD's buffer (a request pipelined after the
 * peek) are never served: a refused head is answered, else the
 * connection is closed (a pipelining client retries). */
void wf_gate_check(srv_conn_t *cn) {
  wf_server_t *s = cn->s;
  int64_t used;
  ssize_t n;
  if (cn->active || cn->refused || cn->gating || !cn->c) return;
  used = cn->end_unknown ? -1 : conn_consumed(cn);
  if (used < 0 || (uint64_t)used > cn->checked) {
    if (cn->bad) {
      wf_gate_refuse(cn);
      return;
    }
    wf_gate_finish(cn);
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
      wf_server_kick(s);
      return;
    }
  } else if (n == 0) { /* the client left: MHD reads the end and closes */
    wf_server_kick(s);
    return;
  }
  MHD_suspend_connection(cn->c);
  wf_gate_start(cn);
  gate_read(cn);
}
