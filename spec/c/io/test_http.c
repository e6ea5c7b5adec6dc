/* test_http.c — unit tests of the HTTP client core (runtime/io/http.c) without
 * Lua, against a tiny HTTP/1.1 server on 127.0.0.1 that runs on the same
 * libev loop (below): buffered and streamed bodies, the per-host FIFO
 * queue, connection reuse, timeouts and failure codes, cancelling a request
 * from another one's notification, freeing the client while transfers run
 * (also from inside a notification), pausing a stream whose records are not
 * taken, a thousand concurrent transfers, the heap a request waiting
 * in its host's queue takes, and the network policy on every hop and
 * connection. Depends on http.h, netpolicy.h, loop.h, harness.h and
 * libev. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "http.h"

/* ---- the test server ---------------------------------------------------- */

typedef struct conn {
  ev_io rio, wio;
  ev_timer delay;
  char in[4096];
  size_t nin;
  char *out; /* pending output */
  size_t nout, off, cap;
  int close_after; /* close once the output is written */
  int busy;        /* a request is being answered */
  struct conn *next;
} conn_t;

static struct {
  struct ev_loop *evl;
  int fd, port;
  ev_io aio;
  int connections, open, requests, in_flight, max_in_flight;
  conn_t *conns;
} S;

static void conn_close(conn_t *c);

/* Queue bytes for c (the write watcher sends them). */
static void conn_send(conn_t *c, const char *p, size_t n) {
  if (c->nout + n > c->cap) {
    c->cap = (c->nout + n) * 2;
    c->out = realloc(c->out, c->cap);
  }
  memcpy(c->out + c->nout, p, n);
  c->nout += n;
  ev_io_start(S.evl, &c->wio);
}

/* The request on c is answered. */
static void conn_done(conn_t *c) {
  if (c->busy) S.in_flight--;
  c->busy = 0;
}

/* Write what is pending; close when asked and drained. */
static void conn_write_cb(struct ev_loop *evl, ev_io *w, int revents) {
  conn_t *c = w->data;
  (void)evl;
  (void)revents;
  while (c->off < c->nout) {
    ssize_t k = write(c->rio.fd, c->out + c->off, c->nout - c->off);
    if (k < 0 && errno == EAGAIN) return;
    if (k <= 0) {
      conn_close(c);
      return;
    }
    c->off += (size_t)k;
  }
  c->off = c->nout = 0;
  ev_io_stop(S.evl, &c->wio);
  if (c->close_after) conn_close(c);
}

/* A formatted response with a Content-Length body. */
static void reply(conn_t *c, int status, const char *body) {
  char head[256];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d X\r\nX-Test: one\r\nContent-Length: %zu\r\n"
                   "x-test: two\r\n\r\n",
                   status, strlen(body));
  conn_send(c, head, (size_t)n);
  conn_send(c, body, strlen(body));
  conn_done(c);
}

/* Delayed reply of /sleep/MS. */
static void delay_cb(struct ev_loop *evl, ev_timer *w, int revents) {
  (void)evl;
  (void)revents;
  reply(w->data, 200, "slept");
}

/* One chunk of a chunked body. */
static void chunk(conn_t *c, const char *p, size_t n) {
  char len[32];
  int k = snprintf(len, sizeof len, "%zx\r\n", n);
  conn_send(c, len, (size_t)k);
  conn_send(c, p, n);
  conn_send(c, "\r\n", 2);
}

/* A redirect to loc (status 302 unless given in the path). */
static void redirect(conn_t *c, int status, const char *loc) {
  char head[512];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d Moved\r\nLocation: %s\r\n"
                   "Content-Length: 5\r\n\r\nmoved",
                   status, loc);
  conn_send(c, head, (size_t)n);
  conn_done(c);
}

/* A body of n bytes ("0123456789abcdef" repeated). */
static void bytes_reply(conn_t *c, int n) {
  char head[128], *body = malloc((size_t)n + 1);
  int k = snprintf(head, sizeof head,
                   "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", n);
  for (int i = 0; i < n; i++) body[i] = "0123456789abcdef"[i % 16];
  conn_send(c, head, (size_t)k);
  conn_send(c, body, (size_t)n);
  free(body);
  conn_done(c);
}

/* Answer one request (head: the request line and headers). */
static void handle(conn_t *c, const char *path, const char *head) {
  int n;
  char host[64], rest[128], loc[256];
  S.requests++;
  S.in_flight++;
  c->busy = 1;
  if (S.in_flight > S.max_in_flight) S.max_in_flight = S.in_flight;
  if (strcmp(path, "/ok") == 0) {
    reply(c, 200, "ok");
  } else if (sscanf(path, "/sleep/%d", &n) == 1) {
    ev_timer_init(&c->delay, delay_cb, n / 1000.0, 0);
    c->delay.data = c;
    ev_timer_start(S.evl, &c->delay);
  } else if (strcmp(path, "/hang") == 0) {
    /* never answer */
  } else if (strcmp(path, "/echo") == 0) {
    reply(c, 200, head); /* the request head, to see the headers sent */
  } else if (sscanf(path, "/bytes/%d", &n) == 1) {
    bytes_reply(c, n);
  } else if (strcmp(path, "/redirect-file") == 0) {
    redirect(c, 302, "file:///etc/hostname");
  } else if (sscanf(path, "/redirect/%d/%63[^/]%127s", &n, host, rest) == 3) {
    /* /redirect/STATUS/HOST/PATH -> http://HOST:PORT/PATH */
    snprintf(loc, sizeof loc, "http://%s:%d%s", host, S.port, rest);
    redirect(c, n, loc);
  } else if (sscanf(path, "/sse/%d", &n) == 1 || strcmp(path, "/cut") == 0) {
    const char *h = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n";
    int cut = strcmp(path, "/cut") == 0;
    char ev[1200];
    if (cut) n = 2;
    conn_send(c, h, strlen(h));
    for (int i = 1; i <= n; i++) {
      int k = snprintf(ev, sizeof ev, "id: %d\r\ndata: %d %.*s\r\n\r\n", i, i,
                       n > 1000 ? 1000 : 0,
                       "................................................................"
                       "................................................................"
                       "................................................................"
                       "................................................................"
                       "................................................................"
                       "................................................................"
                       "................................................................"
                       "................................................................"
                       "................................................................"
                       "................................................................"
                       "................................................................"
                       "................................................................"
                       "................................................................"
                       "................................................................"
                       "................................................................"
                       "................................................................");
      /* split each event over two chunks, mid-line */
      chunk(c, ev, (size_t)k / 2);
      chunk(c, ev + k / 2, (size_t)k - (size_t)k / 2);
    }
    if (cut) {
      c->close_after = 1;
    } else {
      conn_send(c, "0\r\n\r\n", 5);
    }
    conn_done(c);
  } else {
    reply(c, 404, "no");
  }
}

/* Read requests (heads only; the tests send no bodies). */
static void conn_read_cb(struct ev_loop *evl, ev_io *w, int revents) {
  conn_t *c = w->data;
  char *end;
  (void)evl;
  (void)revents;
  ssize_t k = read(w->fd, c->in + c->nin, sizeof c->in - c->nin - 1);
  if (k <= 0) {
    if (k < 0 && errno == EAGAIN) return;
    conn_close(c);
    return;
  }
  c->nin += (size_t)k;
  c->in[c->nin] = 0;
  while ((end = strstr(c->in, "\r\n\r\n"))) {
    char path[256] = "", head[4096];
    sscanf(c->in, "%*s %255s", path);
    size_t used = (size_t)(end + 4 - c->in);
    memcpy(head, c->in, used);
    head[used] = 0;
    memmove(c->in, end + 4, c->nin - used + 1);
    c->nin -= used;
    handle(c, path, head);
  }
}

/* Close a connection and forget it. */
static void conn_close(conn_t *c) {
  conn_t **p;
  ev_io_stop(S.evl, &c->rio);
  ev_io_stop(S.evl, &c->wio);
  ev_timer_stop(S.evl, &c->delay);
  conn_done(c);
  close(c->rio.fd);
  for (p = &S.conns; *p; p = &(*p)->next)
    if (*p == c) {
      *p = c->next;
      break;
    }
  free(c->out);
  free(c);
  S.open--;
}

/* Accept connections. */
static void accept_cb(struct ev_loop *evl, ev_io *w, int revents) {
  (void)evl;
  (void)revents;
  for (;;) {
    int fd = accept(w->fd, NULL, NULL);
    if (fd < 0) return;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    conn_t *c = calloc(1, sizeof *c);
    ev_io_init(&c->rio, conn_read_cb, fd, EV_READ);
    ev_io_init(&c->wio, conn_write_cb, fd, EV_WRITE);
    ev_init(&c->delay, delay_cb);
    c->rio.data = c->wio.data = c;
    ev_io_start(S.evl, &c->rio);
    c->next = S.conns;
    S.conns = c;
    S.connections++;
    S.open++;
  }
}

/* Start the server on a free port of 127.0.0.1. */
static void server_start(struct ev_loop *evl) {
  struct sockaddr_in a;
  socklen_t al = sizeof a;
  int one = 1;
  memset(&S, 0, sizeof S);
  S.evl = evl;
  S.fd = socket(AF_INET, SOCK_STREAM, 0);
  setsockopt(S.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(S.fd, (struct sockaddr *)&a, sizeof a);
  listen(S.fd, 4096);
  getsockname(S.fd, (struct sockaddr *)&a, &al);
  S.port = ntohs(a.sin_port);
  fcntl(S.fd, F_SETFL, O_NONBLOCK);
  ev_io_init(&S.aio, accept_cb, S.fd, EV_READ);
  ev_io_start(evl, &S.aio);
}

/* Stop the server and close every connection. */
static void server_stop(void) {
  while (S.conns) conn_close(S.conns);
  ev_io_stop(S.evl, &S.aio);
  close(S.fd);
}

/* ---- client side helpers ------------------------------------------------ */

static wf_loop_t *L;
static char url_buf[64][128];
static int url_n;

/* URL of path on the test server (static storage, rotating). */
static const char *url(const char *path) {
  char *u = url_buf[url_n++ % 64];
  snprintf(u, 128, "http://127.0.0.1:%d%s", S.port, path);
  return u;
}

/* What a test's owner saw of one request. */
typedef struct seen {
  wf_http_req_t *req;
  int notes;    /* notifications */
  int done;     /* finished (notified done) */
  int records;  /* records taken */
  int order;    /* completion order (1-based) */
  int take;     /* take records in the notification (default 1) */
  long last_id; /* SSE: last id seen */
  int ids_ok;   /* SSE ids arrived in order */
  int status;
  size_t body_len;
  wf_http_errcode_t code;
  char msg[256];
  char body[2048];
  void (*on_done)(struct seen *s);
  void *extra;
} seen_t;

static int completions;

/* Collect records, and on completion the outcome; free the request. */
static void on_note(void *ud, wf_http_req_t *r) {
  seen_t *s = ud;
  s->notes++;
  if (s->take) {
    wf_http_record_t *rec = wf_http_take(r), *x;
    for (x = rec; x; x = x->next) {
      s->records++;
      if (x->id) {
        long id = atol(x->id);
        if (id != s->last_id + 1) s->ids_ok = 0;
        s->last_id = id;
      }
    }
    wf_http_record_free(rec);
  }
  if (wf_http_done(r)) {
    const char *msg = NULL;
    size_t n;
    const char *body = wf_http_body(r, &n);
    s->done = 1;
    s->order = ++completions;
    s->status = wf_http_status(r);
    s->code = wf_http_error(r, &msg);
    snprintf(s->msg, sizeof s->msg, "%s", msg ? msg : "");
    s->body_len = body ? n : 0;
    if (body)
      snprintf(s->body, sizeof s->body, "%.*s",
               (int)(n < sizeof s->body - 1 ? n : sizeof s->body - 1), body);
    else
      snprintf(s->body, sizeof s->body, "(streamed)");
    if (s->take) {
      wf_http_free_req(r);
      s->req = NULL;
    }
    if (s->on_done) s->on_done(s);
  }
}

/* Start a request with default options (framing f, timeouts in opts). */
static wf_http_req_t *start(wf_http_t *h, const char *u, wf_http_framing_t f,
                            seen_t *s, const wf_http_opts_t *base) {
  wf_http_opts_t o;
  wf_err_t err;
  if (base)
    o = *base;
  else
    memset(&o, 0, sizeof o);
  o.url = u;
  o.framing = f;
  memset(s, 0, sizeof *s);
  s->take = 1;
  s->ids_ok = 1;
  s->req = wf_http_start(h, &o, on_note, s, &err);
  if (!s->req) fprintf(stderr, "start failed: %s\n", err.msg);
  return s->req;
}

/* Run the loop until every one of the n requests is done (bounded). */
static void wait_done(seen_t *s, int n) {
  for (int guard = 0; guard < 200000; guard++) {
    int all = 1;
    for (int i = 0; i < n; i++)
      if (!s[i].done) all = 0;
    if (all) return;
    wf_loop_step(L);
  }
  CHECK(!"requests did not finish");
}

/* Run a few loop iterations until cond holds (bounded). */
#define STEP_UNTIL(cond)                                               \
  do {                                                                 \
    for (int _g = 0; _g < 100000 && !(cond); _g++) wf_loop_step(L);    \
    CHECK(cond);                                                       \
  } while (0)

/* ---- tests -------------------------------------------------------------- */

static void test_buffered_get(void) {
  wf_http_t *h = wf_http_new(L, 0);
  seen_t s;
  start(h, url("/ok"), WF_HTTP_BUFFER, &s, NULL);
  wait_done(&s, 1);
  CHECK_INT(s.status, 200);
  CHECK_INT(s.code, WF_HTTP_ERR_NONE);
  CHECK_STR(s.body, "ok");
  CHECK_INT(s.records, 0);
  wf_http_free(h);
}

/* Owner that keeps the request to inspect headers. */
static void test_headers(void) {
  wf_http_t *h = wf_http_new(L, 0);
  seen_t s;
  start(h, url("/ok"), WF_HTTP_BUFFER, &s, NULL);
  s.take = 0;
  STEP_UNTIL(s.done);
  const char *const *hd = wf_http_headers(s.req);
  CHECK_STR(hd[0], "X-Test: one");
  CHECK_STR(hd[1], "Content-Length: 2");
  CHECK_STR(hd[2], "x-test: two");
  CHECK(hd[3] == NULL);
  wf_http_free_req(s.req);
  wf_http_free(h);
}

static void test_sse_records(void) {
  wf_http_t *h = wf_http_new(L, 0);
  seen_t s;
  start(h, url("/sse/50"), WF_HTTP_SSE, &s, NULL);
  wait_done(&s, 1);
  CHECK_INT(s.code, WF_HTTP_ERR_NONE);
  CHECK_INT(s.records, 50);
  CHECK_INT(s.last_id, 50);
  CHECK(s.ids_ok);
  wf_http_free(h);
}

static void test_streamed_error_reply_is_buffered(void) {
  wf_http_t *h = wf_http_new(L, 0);
  seen_t s[2];
  start(h, url("/nope"), WF_HTTP_SSE, &s[0], NULL);
  start(h, url("/sse/2"), WF_HTTP_RAW, &s[1], NULL);
  wait_done(s, 2);
  CHECK_INT(s[0].status, 404);
  CHECK_STR(s[0].body, "no");
  CHECK_INT(s[0].records, 0);
  CHECK_INT(s[1].status, 200);
  CHECK_STR(s[1].body, "(streamed)");
  CHECK(s[1].records >= 1);
  wf_http_free(h);
}

static void test_bad_options(void) {
  wf_http_t *h = wf_http_new(L, 0);
  wf_http_opts_t o;
  wf_err_t err;
  const char *bad_hdr[] = {"X-A: 1\r\nX-B: 2", NULL};
  const char *no_colon[] = {"NoColon", NULL};
  memset(&o, 0, sizeof o);
  o.url = "ftp://127.0.0.1/";
  CHECK(!wf_http_start(h, &o, on_note, NULL, &err));
  CHECK(strstr(err.msg, "http or https") != NULL);
  o.url = "not a url";
  CHECK(!wf_http_start(h, &o, on_note, NULL, &err));
  CHECK(strstr(err.msg, "bad URL") != NULL);
  o.url = url("/ok");
  o.headers = bad_hdr;
  CHECK(!wf_http_start(h, &o, on_note, NULL, &err));
  CHECK(strstr(err.msg, "header") != NULL);
  o.headers = no_colon;
  CHECK(!wf_http_start(h, &o, on_note, NULL, &err));
  o.headers = NULL;
  o.method = "GE T";
  CHECK(!wf_http_start(h, &o, on_note, NULL, &err));
  CHECK(strstr(err.msg, "method") != NULL);
  o.method = NULL;
  o.timeout = -1;
  CHECK(!wf_http_start(h, &o, on_note, NULL, &err));
  CHECK_INT(wf_http_running(h) + wf_http_queued(h), 0);
  wf_http_free(h);
}

static void test_failures(void) {
  wf_http_t *h = wf_http_new(L, 0);
  wf_http_opts_t o;
  seen_t s[5];
  char refused[64], hostport[32];
  int fd = socket(AF_INET, SOCK_STREAM, 0), port;
  struct sockaddr_in a;
  socklen_t al = sizeof a;
  /* a port that was free a moment ago: bound, never listened on */
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, (struct sockaddr *)&a, sizeof a);
  getsockname(fd, (struct sockaddr *)&a, &al);
  port = ntohs(a.sin_port);
  snprintf(refused, sizeof refused, "http://127.0.0.1:%d/", port);
  snprintf(hostport, sizeof hostport, "127.0.0.1:%d", port);
  memset(&o, 0, sizeof o);
  start(h, refused, WF_HTTP_BUFFER, &s[0], NULL);
  o.idle_timeout = 0.05;
  start(h, url("/hang"), WF_HTTP_BUFFER, &s[1], &o);
  o.idle_timeout = 0;
  o.timeout = 0.05;
  start(h, url("/sleep/5000"), WF_HTTP_BUFFER, &s[2], &o);
  start(h, url("/cut"), WF_HTTP_SSE, &s[3], NULL);
  o.timeout = 0;
  o.max_body = 100;
  start(h, url("/sse/20"), WF_HTTP_BUFFER, &s[4], &o);
  wait_done(s, 5);
  close(fd);
  CHECK_INT(s[0].code, WF_HTTP_ERR_CONNECT);
  CHECK(strstr(s[0].msg, hostport) != NULL);
  CHECK(strstr(s[0].msg, "refused") != NULL);
  CHECK_INT(s[1].code, WF_HTTP_ERR_IDLE);
  CHECK(strstr(s[1].msg, "idle") != NULL);
  CHECK_INT(s[2].code, WF_HTTP_ERR_TIMEOUT);
  CHECK_INT(s[3].code, WF_HTTP_ERR_PROTOCOL);
  CHECK_INT(s[3].records, 2);
  CHECK_INT(s[4].code, WF_HTTP_ERR_TOO_LARGE);
  CHECK_STR(wf_http_errcode_name(WF_HTTP_ERR_IDLE), "idle_timeout");
  CHECK_STR(wf_http_errcode_name(WF_HTTP_ERR_OTHER), "error");
  wf_http_free(h);
}

static void test_host_queue_fifo_and_reuse(void) {
  wf_http_t *h = wf_http_new(L, 2);
  seen_t s[6];
  server_stop();
  server_start(wf_loop_ev(L));
  completions = 0;
  for (int i = 0; i < 6; i++) start(h, url("/sleep/10"), WF_HTTP_BUFFER, &s[i], NULL);
  CHECK_INT(wf_http_running(h), 2);
  CHECK_INT(wf_http_queued(h), 4);
  wait_done(s, 6);
  CHECK_INT(S.max_in_flight, 2);
  CHECK_INT(S.connections, 2);
  CHECK(s[4].order > 4 && s[5].order > 4);
  CHECK(s[0].order <= 2 && s[1].order <= 2);
  CHECK_INT(wf_http_running(h) + wf_http_queued(h), 0);
  /* sequential requests reuse one connection */
  for (int i = 0; i < 10; i++) {
    start(h, url("/ok"), WF_HTTP_BUFFER, &s[0], NULL);
    wait_done(s, 1);
  }
  CHECK_INT(S.connections, 2);
  wf_http_free(h);
}

static void test_raise_limit(void) {
  wf_http_t *h = wf_http_new(L, 1);
  seen_t s[3];
  for (int i = 0; i < 3; i++) start(h, url("/sleep/10"), WF_HTTP_BUFFER, &s[i], NULL);
  CHECK_INT(wf_http_queued(h), 2);
  wf_http_set_max_per_host(h, 10);
  CHECK_INT(wf_http_running(h), 3);
  CHECK_INT(wf_http_queued(h), 0);
  wait_done(s, 3);
  wf_http_free(h);
}

/* on_done hook: cancel the request in extra. */
static void cancel_other(seen_t *s) {
  seen_t *o = s->extra;
  wf_http_cancel(o->req);
  o->req = NULL;
}

static void test_cancel_from_a_notification(void) {
  wf_http_t *h = wf_http_new(L, 0);
  seen_t a, b, q;
  wf_http_t *h1 = wf_http_new(L, 1);
  start(h, url("/sleep/5"), WF_HTTP_BUFFER, &a, NULL);
  start(h, url("/hang"), WF_HTTP_SSE, &b, NULL);
  a.on_done = cancel_other;
  a.extra = &b;
  wait_done(&a, 1);
  CHECK(b.req == NULL);
  CHECK_INT(b.done, 0);
  CHECK_INT(wf_http_running(h), 0);
  /* cancelling a queued request, and the running one ahead of it */
  start(h1, url("/hang"), WF_HTTP_BUFFER, &a, NULL);
  start(h1, url("/ok"), WF_HTTP_BUFFER, &q, NULL);
  CHECK_INT(wf_http_queued(h1), 1);
  wf_http_cancel(q.req);
  CHECK_INT(wf_http_queued(h1), 0);
  start(h1, url("/ok"), WF_HTTP_BUFFER, &q, NULL);
  wf_http_cancel(a.req); /* q starts in its place */
  CHECK_INT(wf_http_running(h1), 1);
  wait_done(&q, 1);
  CHECK_STR(q.body, "ok");
  CHECK_INT(a.notes, 0);
  /* the server saw the hanging connections go */
  STEP_UNTIL(S.in_flight == 0);
  wf_http_free(h);
  wf_http_free(h1);
}

static void test_free_while_running(void) {
  wf_http_t *h = wf_http_new(L, 2);
  seen_t s[4];
  for (int i = 0; i < 4; i++) start(h, url("/hang"), WF_HTTP_SSE, &s[i], NULL);
  STEP_UNTIL(S.in_flight == 2);
  wf_http_free(h); /* two running, two queued */
  for (int i = 0; i < 4; i++) {
    CHECK_INT(s[i].done, 1);
    CHECK_INT(s[i].code, WF_HTTP_ERR_CANCELLED);
  }
  STEP_UNTIL(S.in_flight == 0);
}

/* on_done hook: free the client in extra. */
static void free_client(seen_t *s) { wf_http_free(s->extra); }

static void test_free_from_a_notification(void) {
  wf_http_t *h = wf_http_new(L, 0);
  seen_t s[3];
  start(h, url("/ok"), WF_HTTP_BUFFER, &s[0], NULL);
  start(h, url("/hang"), WF_HTTP_BUFFER, &s[1], NULL);
  start(h, url("/hang"), WF_HTTP_RAW, &s[2], NULL);
  s[0].on_done = free_client;
  s[0].extra = h;
  wait_done(s, 3);
  CHECK_INT(s[0].code, WF_HTTP_ERR_NONE);
  CHECK_INT(s[1].code, WF_HTTP_ERR_CANCELLED);
  CHECK_INT(s[2].code, WF_HTTP_ERR_CANCELLED);
  /* after the free, the loop has nothing of the client left */
  STEP_UNTIL(S.in_flight == 0);
}

static void test_pause_when_records_pile_up(void) {
  wf_http_t *h = wf_http_new(L, 0);
  seen_t s;
  int n = 12000; /* 12000 events of ~1 KB: well past the 4 MiB pause mark */
  char path[32];
  snprintf(path, sizeof path, "/sse/%d", n);
  start(h, url(path), WF_HTTP_SSE, &s, NULL);
  s.take = 0;
  /* nobody takes records: the transfer must pause, not buffer 12 MB */
  for (int i = 0; i < 3000 && !s.done; i++) wf_loop_poll(L);
  CHECK_INT(s.done, 0);
  wf_http_record_t *rec = wf_http_take(s.req), *x;
  size_t bytes = 0;
  int count = 0;
  for (x = rec; x; x = x->next) {
    bytes += x->len;
    count++;
  }
  wf_http_record_free(rec);
  CHECK(bytes > 1000000);
  CHECK(bytes < 6 * 1024 * 1024);
  /* taking resumes the transfer; take everything until the end */
  s.take = 1;
  s.records = count;
  s.last_id = count;
  STEP_UNTIL(s.done);
  CHECK_INT(s.code, WF_HTTP_ERR_NONE);
  CHECK_INT(s.records, n);
  CHECK(s.ids_ok);
  wf_http_free(h);
}

/* A redirect to file:// is refused; the pooled handle that ran it must be
 * as good as new for the next transfer (a >16 KiB body once overflowed its
 * receive buffer: curl_easy_reset restored the 16 KiB default while the
 * 4 KiB buffer stayed allocated and a later CURLOPT_BUFFERSIZE failed). */
static void test_redirect_to_file_then_big_body(void) {
  wf_http_t *h = wf_http_new(L, 0);
  seen_t s;
  start(h, url("/redirect-file"), WF_HTTP_BUFFER, &s, NULL);
  wait_done(&s, 1);
  CHECK_INT(s.code, WF_HTTP_ERR_PROTOCOL);
  CHECK(strstr(s.msg, "file") != NULL);
  for (int i = 0; i < 3; i++) {
    start(h, url("/bytes/40000"), WF_HTTP_BUFFER, &s, NULL);
    wait_done(&s, 1);
    CHECK_INT(s.code, WF_HTTP_ERR_NONE);
    CHECK_INT(s.status, 200);
    CHECK_INT(s.body_len, 40000);
  }
  start(h, url("/redirect-file"), WF_HTTP_RAW, &s, NULL);
  wait_done(&s, 1);
  CHECK_INT(s.code, WF_HTTP_ERR_PROTOCOL);
  start(h, url("/bytes/70000"), WF_HTTP_RAW, &s, NULL);
  wait_done(&s, 1);
  CHECK_INT(s.code, WF_HTTP_ERR_NONE);
  wf_http_free(h);
}

/* A redirect to another origin (localhost instead of 127.0.0.1) is
 * followed without any secret header; within the origin they all stay. */
static void test_cross_origin_redirect_strips_secrets(void) {
  wf_http_t *h = wf_http_new(L, 0);
  wf_http_opts_t o;
  seen_t s;
  const char *hdrs[] = {"Authorization: Bearer sk-secret-1",
                        "Cookie: session=secret-2",
                        "Proxy-Authorization: Basic secret-3",
                        "X-Api-Key: secret-4",
                        "x-goog-api-key: secret-5",
                        "Api-Key: secret-6",
                        "X-Custom-Token: secret-7",
                        "X-Plain: visible",
                        NULL};
  const char *extra[] = {"x-custom-token", NULL};
  char path[64];
  memset(&o, 0, sizeof o);
  o.headers = hdrs;
  o.secret_headers = extra;
  start(h, url("/redirect/302/localhost/echo"), WF_HTTP_BUFFER, &s, &o);
  wait_done(&s, 1);
  CHECK_INT(s.code, WF_HTTP_ERR_NONE);
  CHECK_INT(s.status, 200);
  CHECK(strstr(s.body, "GET /echo") != NULL);
  CHECK(strstr(s.body, "X-Plain: visible") != NULL);
  CHECK(strstr(s.body, "secret") == NULL);
  /* two hops, the second back to the first origin: still stripped */
  snprintf(path, sizeof path, "/redirect/307/localhost/redirect/307/127.0.0.1/echo");
  start(h, url(path), WF_HTTP_BUFFER, &s, &o);
  wait_done(&s, 1);
  CHECK_INT(s.status, 200);
  CHECK(strstr(s.body, "X-Plain: visible") != NULL);
  CHECK(strstr(s.body, "secret") == NULL);
  /* same origin: every header goes along */
  start(h, url("/redirect/301/127.0.0.1/echo"), WF_HTTP_BUFFER, &s, &o);
  wait_done(&s, 1);
  CHECK_INT(s.status, 200);
  for (int i = 0; hdrs[i]; i++) CHECK(strstr(s.body, hdrs[i]) != NULL);
  CHECK(wf_http_header_secret("X-API-KEY: x", NULL));
  CHECK(wf_http_header_secret("cookie", NULL));
  CHECK(!wf_http_header_secret("X-Custom-Token: x", NULL));
  CHECK(wf_http_header_secret("X-Custom-Token: x", extra));
  CHECK(!wf_http_header_secret("Authorizations: x", NULL));
  wf_http_free(h);
}

/* cross_origin = REFUSE: the redirect fails the request, naming both. */
static void test_cross_origin_redirect_refused(void) {
  wf_http_t *h = wf_http_new(L, 0);
  wf_http_opts_t o;
  seen_t s;
  char from[64], to[64];
  memset(&o, 0, sizeof o);
  o.cross_origin = WF_HTTP_XO_REFUSE;
  snprintf(from, sizeof from, "127.0.0.1:%d", S.port);
  snprintf(to, sizeof to, "localhost:%d", S.port);
  S.requests = 0;
  start(h, url("/redirect/302/localhost/echo"), WF_HTTP_BUFFER, &s, &o);
  wait_done(&s, 1);
  CHECK_INT(s.code, WF_HTTP_ERR_PROTOCOL);
  CHECK(strstr(s.msg, from) != NULL);
  CHECK(strstr(s.msg, to) != NULL);
  CHECK_INT(S.requests, 1); /* localhost was never asked */
  /* within the origin it is followed */
  start(h, url("/redirect/308/127.0.0.1/ok"), WF_HTTP_BUFFER, &s, &o);
  wait_done(&s, 1);
  CHECK_INT(s.code, WF_HTTP_ERR_NONE);
  CHECK_STR(s.body, "ok");
  wf_http_free(h);
}

/* max_redirects: the limit fails the request; < 0 returns the 3xx. */
static void test_redirect_limits(void) {
  wf_http_t *h = wf_http_new(L, 0);
  wf_http_opts_t o;
  seen_t s;
  memset(&o, 0, sizeof o);
  o.max_redirects = 1;
  start(h, url("/redirect/302/127.0.0.1/redirect/302/127.0.0.1/ok"),
        WF_HTTP_BUFFER, &s, &o);
  wait_done(&s, 1);
  CHECK_INT(s.code, WF_HTTP_ERR_PROTOCOL);
  CHECK(strstr(s.msg, "too many redirects") != NULL);
  o.max_redirects = 2;
  start(h, url("/redirect/302/127.0.0.1/redirect/302/127.0.0.1/ok"),
        WF_HTTP_BUFFER, &s, &o);
  wait_done(&s, 1);
  CHECK_STR(s.body, "ok");
  o.max_redirects = -1;
  start(h, url("/redirect/302/127.0.0.1/ok"), WF_HTTP_SSE, &s, &o);
  wait_done(&s, 1);
  CHECK_INT(s.code, WF_HTTP_ERR_NONE);
  CHECK_INT(s.status, 302);
  CHECK_STR(s.body, "moved");
  wf_http_free(h);
}

/* A redirect whose host is full (its own slot freed, others queued) goes
 * to the back of the queue and the queue moves on. */
static void test_redirect_with_a_full_host_queue(void) {
  wf_http_t *h = wf_http_new(L, 1);
  seen_t s[3];
  start(h, url("/redirect/302/127.0.0.1/ok"), WF_HTTP_BUFFER, &s[0], NULL);
  start(h, url("/ok"), WF_HTTP_BUFFER, &s[1], NULL);
  start(h, url("/redirect/307/127.0.0.1/ok"), WF_HTTP_BUFFER, &s[2], NULL);
  CHECK_INT(wf_http_queued(h), 2);
  /* non-blocking polls: a stalled queue fails here instead of hanging */
  double until = wf_time_mono() + 10;
  while (!(s[0].done && s[1].done && s[2].done) && wf_time_mono() < until)
    wf_loop_poll(L);
  for (int i = 0; i < 3; i++) CHECK_STR(s[i].body, "ok");
  CHECK_INT(wf_http_running(h) + wf_http_queued(h), 0);
  wf_http_free(h);
}

/* A total timeout on a kept-alive connection is reported as such, not as
 * a connect timeout (a reused connection has no connect time). */
static void test_timeout_on_reused_connection(void) {
  wf_http_t *h = wf_http_new(L, 0);
  wf_http_opts_t o;
  seen_t s;
  start(h, url("/ok"), WF_HTTP_BUFFER, &s, NULL);
  wait_done(&s, 1);
  memset(&o, 0, sizeof o);
  o.timeout = 0.2;
  start(h, url("/sleep/5000"), WF_HTTP_BUFFER, &s, &o);
  wait_done(&s, 1);
  CHECK_INT(s.code, WF_HTTP_ERR_TIMEOUT);
  CHECK(strstr(s.msg, "timed out after 0.2 s (timeout)") != NULL);
  CHECK(strstr(s.msg, "connect") == NULL);
  wf_http_free(h);
}

static void test_thousand_concurrent(void) {
  enum { N = 1000 };
  wf_http_t *h = wf_http_new(L, N);
  seen_t *s = calloc(N, sizeof *s);
  server_stop();
  server_start(wf_loop_ev(L));
  for (int i = 0; i < N; i++) start(h, url("/sleep/20"), WF_HTTP_BUFFER, &s[i], NULL);
  CHECK_INT(wf_http_running(h), N);
  wait_done(s, N);
  int ok = 0;
  for (int i = 0; i < N; i++) ok += s[i].status == 200 && strcmp(s[i].body, "slept") == 0;
  CHECK_INT(ok, N);
  free(s);
  wf_http_free(h);
}

/* A request waiting in its host's queue holds its options and its
 * bookkeeping, nothing of a transfer (issue 14: 10,000 runs in flight, most
 * of them queued): with a 27-byte URL, 399 bytes of heap (544 before the
 * transfer's state moved to its easy handle; 447 before the timeouts were
 * floats, the redirect's strings one block, and curl's header list and a
 * policy refusal moved to the easy handle). glibc's malloc counters; an
 * ASan build has its own allocator, so the figure is not checked there. */
static void test_queued_request_memory(void) {
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
  enum { N = 1000 };
  wf_http_t *h = wf_http_new(L, 1);
  seen_t *s = calloc(N, sizeof *s);
  size_t before, per;
  start(h, url("/hang"), WF_HTTP_BUFFER, &s[0], NULL); /* holds the slot */
  before = mallinfo2().uordblks;
  for (int i = 1; i < N; i++) start(h, url("/ok"), WF_HTTP_BUFFER, &s[i], NULL);
  CHECK_INT(wf_http_queued(h), N - 1);
  per = (mallinfo2().uordblks - before) / (N - 1);
  if (per > 420) fprintf(stderr, "a queued request takes %zu bytes\n", per);
  CHECK(per <= 420);
  wf_http_free(h); /* cancels them all */
  for (int i = 0; i < N; i++) CHECK(s[i].done);
  free(s);
#endif
}

/* A network policy: a private address is refused after DNS ("localhost"),
 * on the first hop and on a redirect; a host or port the policy refuses
 * fails at once and nothing reaches the server; a reused keep-alive
 * connection to a refused address is not used; allow_cidrs and
 * allow_private permit the server. */
static void test_network_policy(void) {
  wf_http_t *h = wf_http_new(L, 0);
  wf_netpolicy_t *deny = wf_netpolicy_new(), *hosts = wf_netpolicy_new();
  wf_netpolicy_t *cidr = wf_netpolicy_new(), *open = wf_netpolicy_new();
  wf_http_opts_t o;
  wf_err_t err;
  char u[128], port[32];
  seen_t s;
  snprintf(port, sizeof port, "port %d", S.port);
  memset(&o, 0, sizeof o);
  /* default policy: any host, no private address */
  o.policy = deny;
  S.requests = 0;
  snprintf(u, sizeof u, "http://localhost:%d/ok", S.port);
  start(h, u, WF_HTTP_BUFFER, &s, &o);
  wait_done(&s, 1);
  CHECK_INT(s.code, WF_HTTP_ERR_POLICY);
  CHECK(strstr(s.msg, "private address") != NULL);
  CHECK(strstr(s.msg, "localhost") != NULL);
  CHECK_INT(S.requests, 0);
  CHECK_STR(wf_http_errcode_name(WF_HTTP_ERR_POLICY), "policy");
  /* an allowed host that redirects to a refused one */
  CHECK(wf_netpolicy_allow_host(hosts, "LOCALHOST.", &err) == WF_OK);
  wf_netpolicy_set_private(hosts, 1);
  o.policy = hosts;
  S.requests = 0;
  snprintf(u, sizeof u, "http://localhost:%d/redirect/302/127.0.0.1/ok", S.port);
  start(h, u, WF_HTTP_BUFFER, &s, &o);
  wait_done(&s, 1);
  CHECK_INT(s.code, WF_HTTP_ERR_POLICY);
  CHECK(strstr(s.msg, "'127.0.0.1'") != NULL && strstr(s.msg, "allow_hosts") != NULL);
  CHECK_INT(S.requests, 1);
  /* the first hop refused by name: done at once, never sent */
  S.requests = 0;
  start(h, url("/ok"), WF_HTTP_BUFFER, &s, &o);
  CHECK(s.req != NULL);
  wait_done(&s, 1);
  CHECK_INT(s.code, WF_HTTP_ERR_POLICY);
  CHECK_INT(S.requests, 0);
  /* a blocked port */
  CHECK(wf_netpolicy_block_port(hosts, S.port, &err) == WF_OK);
  snprintf(u, sizeof u, "http://localhost:%d/ok", S.port);
  start(h, u, WF_HTTP_BUFFER, &s, &o);
  wait_done(&s, 1);
  CHECK_INT(s.code, WF_HTTP_ERR_POLICY);
  CHECK(strstr(s.msg, "block_ports") != NULL);
  CHECK_INT(S.requests, 0);
  /* a keep-alive connection opened without a policy is not reused by a
   * request whose policy refuses its address */
  start(h, url("/ok"), WF_HTTP_BUFFER, &s, NULL);
  wait_done(&s, 1);
  CHECK_INT(s.code, WF_HTTP_ERR_NONE);
  o.policy = deny;
  S.requests = 0;
  start(h, url("/ok"), WF_HTTP_BUFFER, &s, &o);
  wait_done(&s, 1);
  CHECK_INT(s.code, WF_HTTP_ERR_POLICY);
  CHECK(strstr(s.msg, "127.0.0.1") != NULL);
  CHECK_INT(S.requests, 0);
  /* permitted: the range in allow_cidrs, or allow_private */
  CHECK(wf_netpolicy_allow_cidr(cidr, "127.0.0.0/8", &err) == WF_OK);
  wf_netpolicy_set_private(open, 1);
  o.policy = cidr;
  start(h, url("/redirect/302/127.0.0.1/ok"), WF_HTTP_BUFFER, &s, &o);
  wait_done(&s, 1);
  CHECK_INT(s.code, WF_HTTP_ERR_NONE);
  CHECK_STR(s.body, "ok");
  o.policy = open;
  start(h, u, WF_HTTP_BUFFER, &s, &o);
  wait_done(&s, 1);
  CHECK_INT(s.code, WF_HTTP_ERR_NONE);
  /* the requests keep their references: the policies go once unused */
  wf_netpolicy_unref(deny);
  wf_netpolicy_unref(hosts);
  wf_netpolicy_unref(cidr);
  wf_netpolicy_unref(open);
  wf_http_free(h);
}

int main(void) {
  struct rlimit rl;
  /* a thousand transfers need two thousand descriptors (both ends) */
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  L = wf_loop_new(NULL);
  server_start(wf_loop_ev(L));
  RUN(test_buffered_get);
  RUN(test_headers);
  RUN(test_sse_records);
  RUN(test_streamed_error_reply_is_buffered);
  RUN(test_bad_options);
  RUN(test_failures);
  RUN(test_host_queue_fifo_and_reuse);
  RUN(test_raise_limit);
  RUN(test_cancel_from_a_notification);
  RUN(test_free_while_running);
  RUN(test_free_from_a_notification);
  RUN(test_pause_when_records_pile_up);
  RUN(test_redirect_to_file_then_big_body);
  RUN(test_cross_origin_redirect_strips_secrets);
  RUN(test_cross_origin_redirect_refused);
  RUN(test_redirect_limits);
  RUN(test_timeout_on_reused_connection);
  RUN(test_redirect_with_a_full_host_queue);
  RUN(test_queued_request_memory);
  RUN(test_network_policy);
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur >= 2100)
    RUN(test_thousand_concurrent);
  else
    printf("skip test_thousand_concurrent (open-files limit below 2100)\n");
  server_stop();
  wf_loop_free(L);
  return harness_end(__FILE__);
}
