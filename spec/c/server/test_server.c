/* test_server.c — unit tests of the HTTP server core (runtime/server/server.c)
 * without Lua: the server listens on 127.0.0.1:0 on a libev loop that the
 * test turns itself, answers from a C handler, and is driven by clients on
 * raw non-blocking sockets (the loop turns between writes and reads; every
 * wait ends on an event, with a generous failure deadline, never a sleep).
 * Covered: a simple GET and its answer, keep-alive, pipelining, the body
 * cap (declared and chunked), the header cap (431, both sizes), the gate's
 * 400 for framing headers, header and body deadlines (408), the connection
 * cap (503), a streamed answer written in parts, a client leaving an idle
 * stream, close + drain, and the graceful close of weft's own error answers
 * (the client reads the whole answer even when it keeps sending).
 * Depends on server.h, harness.h, libev. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "server.h"

/* A wait that ends here failed: something the server should do never
 * happened (not a timing assertion, a bound on a hang). */
#define WAIT_LIMIT 20.0

static struct ev_loop *EVL;
static wf_server_t *S;
static int server_notes;

/* ---- the handler --------------------------------------------------------- */

/* What the handler saw of the last request it took. */
static struct {
  char method[16], path[256], query[256], version[16], xtest[64];
  char body[4096];
  size_t blen;
} last;
static int nreqs;               /* requests taken */
static wf_server_req_t *held[8]; /* "/hold..." requests, unanswered */
static int nheld;

/* Per-request notify: count calls (bytes taken, or closed). */
static int req_notes;
static void on_req_note(void *ud, wf_server_req_t *r) {
  (void)ud;
  (void)r;
  req_notes++;
}

/* Take one request: "/hold..." paths are kept for the test to answer;
 * others get 200 "METHOD PATH BODY" at once. */
static void handle(wf_server_req_t *r) {
  const char *body, *n, *v;
  size_t blen, i;
  char out[4400];
  int k;
  nreqs++;
  snprintf(last.method, sizeof last.method, "%s", wf_server_req_method(r));
  snprintf(last.path, sizeof last.path, "%s", wf_server_req_path(r));
  snprintf(last.query, sizeof last.query, "%s", wf_server_req_query(r));
  snprintf(last.version, sizeof last.version, "%s", wf_server_req_version(r));
  last.xtest[0] = 0;
  for (i = 0; i < wf_server_req_nheaders(r); i++) {
    wf_server_req_header(r, i, &n, &v);
    if (!strcmp(n, "x-test")) snprintf(last.xtest, sizeof last.xtest, "%s", v);
  }
  body = wf_server_req_body(r, &blen);
  last.blen = blen < sizeof last.body ? blen : sizeof last.body;
  memcpy(last.body, body, last.blen);
  if (!strncmp(last.path, "/hold", 5) && nheld < 8) {
    wf_server_req_set_notify(r, on_req_note, NULL);
    held[nheld++] = r;
    return;
  }
  k = snprintf(out, sizeof out, "%s %s %.*s", last.method, last.path,
               (int)last.blen, last.body);
  const char *h[4] = {"Content-Type", "text/plain", "X-Reply", "1"};
  CHECK_INT(wf_server_req_respond(r, 200, h, 2, out, (size_t)k, NULL), WF_OK);
  wf_server_req_release(r);
}

/* Server notify: only counted (the loop turn takes the requests). */
static void on_note(void *ud) {
  (void)ud;
  server_notes++;
}

/* Start the server with o (NULL: defaults). */
static void srv_start(const wf_server_opts_t *o) {
  wf_server_opts_t d;
  wf_err_t err;
  if (!o) {
    wf_server_opts_default(&d);
    o = &d;
  }
  nreqs = nheld = req_notes = server_notes = 0;
  S = wf_server_new(EVL, o, on_note, NULL, &err);
  CHECK(S != NULL);
  CHECK(wf_server_port(S) > 0);
}

static void srv_stop(void) {
  int i;
  wf_server_free(S);
  S = NULL;
  for (i = 0; i < nheld; i++) wf_server_req_release(held[i]);
  nheld = 0;
}

/* ---- the loop -------------------------------------------------------------- */

static int timed_out;
static void on_deadline(struct ev_loop *evl, ev_timer *w, int revents) {
  (void)evl;
  (void)w;
  (void)revents;
  timed_out = 1;
}

/* One loop turn (blocks until an event), then hand ready requests to the
 * handler. */
static void turn(void) {
  wf_server_req_t *r;
  ev_run(EVL, EVRUN_ONCE);
  while (S && (r = wf_server_next(S))) handle(r);
}

/* Turn the loop until pred(ud) holds; 0 if it never did. */
static int wait_until(int (*pred)(void *), void *ud) {
  ev_timer dl;
  int ok;
  timed_out = 0;
  ev_now_update(EVL);
  ev_timer_init(&dl, on_deadline, WAIT_LIMIT, 0.);
  ev_timer_start(EVL, &dl);
  while (!(ok = pred(ud)) && !timed_out) turn();
  ev_timer_stop(EVL, &dl);
  return ok;
}

/* ---- clients --------------------------------------------------------------- */

typedef struct cli {
  int fd;
  ev_io rio, wio;
  char *buf;
  size_t n, cap;
  int eof;  /* the server closed its end */
  int err;  /* errno of a failed recv (ECONNRESET...) */
  int writable;
} cli_t;

/* Read whatever is there into c->buf; note the end or an error. */
static void cli_read_cb(struct ev_loop *evl, ev_io *w, int revents) {
  cli_t *c = w->data;
  (void)revents;
  for (;;) {
    ssize_t k;
    if (c->cap - c->n < 65536) {
      c->cap = c->cap * 2 + 65536;
      c->buf = realloc(c->buf, c->cap + 1);
    }
    k = recv(c->fd, c->buf + c->n, c->cap - c->n, MSG_DONTWAIT);
    if (k > 0) {
      c->n += (size_t)k;
      c->buf[c->n] = 0;
      continue;
    }
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
      return;
    if (k == 0) c->eof = 1;
    else c->err = errno;
    ev_io_stop(evl, w);
    return;
  }
}

static void cli_write_cb(struct ev_loop *evl, ev_io *w, int revents) {
  cli_t *c = w->data;
  (void)revents;
  c->writable = 1;
  ev_io_stop(evl, w);
}

/* A socket connected (or connecting) to the server; reads are collected
 * as the loop turns. */
static cli_t *cli_open(void) {
  struct sockaddr_in a;
  cli_t *c = calloc(1, sizeof *c);
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)wf_server_port(S));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(connect(c->fd, (struct sockaddr *)&a, sizeof a) == 0 ||
        errno == EINPROGRESS);
  ev_io_init(&c->rio, cli_read_cb, c->fd, EV_READ);
  c->rio.data = c;
  ev_io_init(&c->wio, cli_write_cb, c->fd, EV_WRITE);
  c->wio.data = c;
  ev_io_start(EVL, &c->rio);
  return c;
}

static void cli_close(cli_t *c) {
  if (!c) return;
  ev_io_stop(EVL, &c->rio);
  ev_io_stop(EVL, &c->wio);
  if (c->fd >= 0) close(c->fd);
  free(c->buf);
  free(c);
}

static int is_writable(void *ud) { return ((cli_t *)ud)->writable; }

/* Send all of p (the loop turns while the socket is full); 0 on an error
 * (a reset connection). */
static int cli_send(cli_t *c, const char *p, size_t n) {
  while (n) {
    ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);
    if (k > 0) {
      p += k;
      n -= (size_t)k;
      continue;
    }
    if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      return 0;
    c->writable = 0;
    ev_io_start(EVL, &c->wio);
    if (!wait_until(is_writable, c)) return 0;
  }
  return 1;
}

static int cli_sends(cli_t *c, const char *s) {
  return cli_send(c, s, strlen(s));
}

/* ---- responses ------------------------------------------------------------- */

typedef struct resp {
  int status;
  char head[2048]; /* status line and headers */
  char *body;
  size_t blen;
} resp_t;

/* The value of header name in r's head (static copy), or NULL. */
static const char *resp_header(const resp_t *r, const char *name) {
  static char v[512];
  size_t nl = strlen(name);
  const char *p = strstr(r->head, "\r\n");
  while (p && p[2]) {
    const char *line = p + 2, *end = strstr(line, "\r\n");
    if (!end) break;
    if (!strncasecmp(line, name, nl) && line[nl] == ':') {
      const char *s = line + nl + 1;
      while (*s == ' ') s++;
      snprintf(v, sizeof v, "%.*s", (int)(end - s), s);
      return v;
    }
    p = end;
  }
  return NULL;
}

/* Parse one response at b[0..n): bytes used, 0 when incomplete. r->body
 * is malloc'ed (resp_free). */
static size_t resp_parse(const char *b, size_t n, resp_t *r) {
  const char *he = NULL, *cl, *te;
  size_t hl, pos, i;
  memset(r, 0, sizeof *r);
  for (i = 0; i + 3 < n; i++)
    if (!memcmp(b + i, "\r\n\r\n", 4)) {
      he = b + i;
      break;
    }
  if (!he) return 0;
  hl = (size_t)(he - b) + 4;
  snprintf(r->head, sizeof r->head, "%.*s", (int)(hl - 2), b);
  if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1) return 0;
  cl = resp_header(r, "Content-Length");
  if (cl) {
    size_t len = strtoul(cl, NULL, 10);
    if (n - hl < len) return 0;
    r->body = malloc(len + 1);
    memcpy(r->body, b + hl, len);
    r->body[len] = 0;
    r->blen = len;
    return hl + len;
  }
  te = resp_header(r, "Transfer-Encoding");
  if (!te || strcasecmp(te, "chunked")) return 0;
  r->body = malloc(n + 1);
  for (pos = hl;;) {
    char *e;
    const char *crlf;
    unsigned long sz;
    crlf = memmem(b + pos, n - pos, "\r\n", 2);
    if (!crlf) goto more;
    sz = strtoul(b + pos, &e, 16);
    pos = (size_t)(crlf - b) + 2;
    if (!sz) {
      if (n - pos < 2) goto more;
      r->body[r->blen] = 0;
      return pos + 2;
    }
    if (n - pos < sz + 2) goto more;
    memcpy(r->body + r->blen, b + pos, sz);
    r->blen += sz;
    pos += sz + 2;
  }
more:
  free(r->body);
  r->body = NULL;
  r->blen = 0;
  return 0;
}

static void resp_free(resp_t *r) {
  free(r->body);
  r->body = NULL;
}

/* Complete responses in c's input. */
static int cli_nresp(const cli_t *c) {
  size_t off = 0, k;
  int count = 0;
  resp_t r;
  while ((k = resp_parse(c->buf + off, c->n - off, &r))) {
    resp_free(&r);
    off += k;
    count++;
  }
  return count;
}

/* Response i of c's input into r (0 if not there). */
static int cli_resp(const cli_t *c, int i, resp_t *r) {
  size_t off = 0, k;
  for (;;) {
    k = resp_parse(c->buf + off, c->n - off, r);
    if (!k) return 0;
    if (!i--) return 1;
    resp_free(r);
    off += k;
  }
}

typedef struct want {
  cli_t *c;
  int n;
} want_t;
static int has_nresp(void *ud) {
  want_t *w = ud;
  return cli_nresp(w->c) >= w->n || w->c->err || w->c->eof;
}
/* Wait for n complete responses on c. */
static int wait_resp(cli_t *c, int n) {
  want_t w = {c, n};
  return wait_until(has_nresp, &w) && cli_nresp(c) >= n;
}
static int is_closed(void *ud) {
  cli_t *c = ud;
  return c->eof || c->err;
}
/* Wait until the server closed c (end of stream or an error). */
static int wait_closed(cli_t *c) { return wait_until(is_closed, c); }

typedef struct want_text {
  cli_t *c;
  const char *text;
} want_text_t;
static int has_text(void *ud) {
  want_text_t *w = ud;
  return (w->c->buf && strstr(w->c->buf, w->text)) || w->c->err;
}

/* One response on a fresh connection for the request text req; the
 * server closes it afterwards when must_close. Returns the status and
 * fills r (the caller frees it). */
static int exchange(const char *req, resp_t *r, int must_close) {
  cli_t *c = cli_open();
  int st = 0;
  CHECK(cli_sends(c, req));
  CHECK(wait_resp(c, 1));
  if (cli_resp(c, 0, r)) st = r->status;
  if (must_close) {
    CHECK(wait_closed(c));
    CHECK_INT(c->err, 0);
  }
  cli_close(c);
  return st;
}

/* exchange() for a request the server refuses and closes: checks the
 * status, the error code in the JSON body and detail (when not NULL) in
 * it; r stays filled for more checks (the caller frees it). */
static void refused(const char *req, resp_t *r, int status, const char *code,
                    const char *detail) {
  char quoted[64];
  snprintf(quoted, sizeof quoted, "\"%s\"", code);
  CHECK_INT(exchange(req, r, 1), status);
  CHECK(r->body && strstr(r->body, quoted) != NULL);
  if (detail) CHECK(strstr(r->body, detail) != NULL);
}

/* refused() for an answer that needs no more checks: also checks
 * "Connection: close" when closes, then frees the answer. */
static void refused_only(const char *req, int status, const char *code,
                         const char *detail, int closes) {
  resp_t r;
  refused(req, &r, status, code, detail);
  if (closes) CHECK_STR(resp_header(&r, "Connection"), "close");
  resp_free(&r);
}

/* Open connections == (size_t)ud. */
static int conns_are(void *ud) {
  return wf_server_connections(S) == (unsigned)(size_t)ud;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_simple_get(void) {
  resp_t r;
  srv_start(NULL);
  CHECK_INT(exchange("GET /hello/w%20x?a=1&b=%20 HTTP/1.1\r\nHost: t\r\n"
                     "X-Test: Yes\r\n\r\n",
                     &r, 0),
            200);
  CHECK_STR(r.body, "GET /hello/w%20x ");
  CHECK_STR(resp_header(&r, "X-Reply"), "1");
  CHECK_STR(resp_header(&r, "Content-Type"), "text/plain");
  CHECK(resp_header(&r, "Connection") == NULL);
  CHECK_STR(last.method, "GET");
  CHECK_STR(last.path, "/hello/w%20x");
  CHECK_STR(last.query, "a=1&b=%20");
  CHECK_STR(last.version, "HTTP/1.1");
  CHECK_STR(last.xtest, "Yes");
  CHECK_INT(nreqs, 1);
  CHECK_INT(wf_server_inflight(S), 0);
  CHECK(server_notes > 0);
  resp_free(&r);
  srv_stop();
}

static void test_keep_alive(void) {
  resp_t r;
  cli_t *c;
  srv_start(NULL);
  c = cli_open();
  CHECK(cli_sends(c, "GET /one HTTP/1.1\r\nHost: t\r\n\r\n"));
  CHECK(wait_resp(c, 1));
  CHECK_INT(wf_server_connections(S), 1);
  CHECK(cli_sends(c, "POST /two HTTP/1.1\r\nHost: t\r\nContent-Length: 3"
                     "\r\n\r\nabc"));
  CHECK(wait_resp(c, 2));
  CHECK(cli_resp(c, 0, &r));
  CHECK_STR(r.body, "GET /one ");
  resp_free(&r);
  CHECK(cli_resp(c, 1, &r));
  CHECK_INT(r.status, 200);
  CHECK_STR(r.body, "POST /two abc");
  resp_free(&r);
  CHECK(!c->eof && !c->err);
  CHECK_INT(wf_server_connections(S), 1); /* the same connection */
  CHECK_INT(nreqs, 2);
  cli_close(c);
  srv_stop();
}

static void test_pipelined(void) {
  resp_t r;
  cli_t *c;
  srv_start(NULL);
  c = cli_open();
  CHECK(cli_sends(c, "GET /a HTTP/1.1\r\nHost: t\r\n\r\n"
                     "POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nxyz"
                     "GET /c?q HTTP/1.1\r\nHost: t\r\n\r\n"));
  CHECK(wait_resp(c, 3));
  CHECK(cli_resp(c, 0, &r));
  CHECK_STR(r.body, "GET /a ");
  resp_free(&r);
  CHECK(cli_resp(c, 1, &r));
  CHECK_STR(r.body, "POST /b xyz");
  resp_free(&r);
  CHECK(cli_resp(c, 2, &r));
  CHECK_STR(r.body, "GET /c ");
  resp_free(&r);
  CHECK_INT(nreqs, 3);
  CHECK(!c->eof && !c->err);
  cli_close(c);
  srv_stop();
}

static void test_body_limit(void) {
  wf_server_opts_t o;
  resp_t r;
  char req[2048], big[1500];
  wf_server_opts_default(&o);
  o.max_body_bytes = 1024;
  srv_start(&o);
  /* at the cap: served */
  memset(big, 'x', sizeof big);
  snprintf(req, sizeof req,
           "POST /at HTTP/1.1\r\nHost: t\r\nContent-Length: 1024\r\n\r\n%.*s",
           1024, big);
  CHECK_INT(exchange(req, &r, 0), 200);
  CHECK_INT(last.blen, 1024);
  resp_free(&r);
  /* declared over the cap: 413 before any body is read */
  refused_only("POST /over HTTP/1.1\r\nHost: t\r\nContent-Length: 1025\r\n"
               "\r\n",
               413, "body_too_large", "1024 bytes", 1);
  /* chunked over the cap: stopped at the first byte over */
  snprintf(req, sizeof req,
           "POST /chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked"
           "\r\n\r\n200\r\n%.*s\r\n200\r\n%.*s\r\n10\r\n%.*s\r\n0\r\n\r\n",
           512, big, 512, big, 16, big);
  refused_only(req, 413, "body_too_large", NULL, 1);
  CHECK_INT(nreqs, 1); /* neither over-cap request reached the handler */
  srv_stop();
}

static void test_header_limit(void) {
  wf_server_opts_t o;
  resp_t r;
  char req[12000], big[10000];
  wf_server_opts_default(&o);
  o.max_header_bytes = 512;
  srv_start(&o);
  memset(big, 'h', sizeof big);
  /* over the header cap, inside what the gate reads: weft's 431 */
  snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: t\r\nX-Big: %.*s\r\n\r\n",
           600, big);
  refused_only(req, 431, "headers_too_large", "512 bytes", 0);
  /* a head longer than the cap + 8 KiB: refused by the gate */
  snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: t\r\nX-Big: %.*s\r\n\r\n",
           9000, big);
  refused_only(req, 431, "headers_too_large",
               "request head exceeds 8704 bytes", 0);
  /* under the cap: served */
  snprintf(req, sizeof req, "GET /ok HTTP/1.1\r\nHost: t\r\nX-Big: %.*s\r\n\r\n",
           100, big);
  CHECK_INT(exchange(req, &r, 0), 200);
  resp_free(&r);
  CHECK_INT(nreqs, 1);
  srv_stop();
}

static void test_gate_bad_framing(void) {
  resp_t r;
  srv_start(NULL);
  refused("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n", &r,
          400, "bad_request", "not a decimal number");
  CHECK_STR(resp_header(&r, "Connection"), "close");
  CHECK_STR(resp_header(&r, "Content-Type"), "application/json");
  /* one status line, not two (MHD's own 400 writes it twice) */
  CHECK(strstr(r.head + 1, "HTTP/1.1") == NULL);
  resp_free(&r);
  refused_only("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
               "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
               400, "bad_request", "smuggling", 0);
  /* after a good pipelined request: its answer, then the 400 */
  {
    cli_t *c = cli_open();
    CHECK(cli_sends(c, "GET /good HTTP/1.1\r\nHost: t\r\n\r\n"
                       "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n"
                       "Content-Length: 2\r\n\r\nab"));
    CHECK(wait_resp(c, 2));
    CHECK(cli_resp(c, 0, &r));
    CHECK_INT(r.status, 200);
    resp_free(&r);
    CHECK(cli_resp(c, 1, &r));
    CHECK_INT(r.status, 400);
    CHECK(strstr(r.body, "different values") != NULL);
    resp_free(&r);
    CHECK(wait_closed(c));
    cli_close(c);
  }
  CHECK_INT(nreqs, 1);
  srv_stop();
}

static void test_deadlines(void) {
  wf_server_opts_t o;
  cli_t *c;
  resp_t r;
  wf_server_opts_default(&o);
  o.header_timeout = 0.05;
  o.body_timeout = 0.05;
  o.idle_timeout = 0.01; /* keep-alive: the next head is due in 0.06 s */
  srv_start(&o);
  /* slowloris: a head that never ends */
  c = cli_open();
  CHECK(cli_sends(c, "GET / HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n"));
  CHECK(wait_resp(c, 1));
  CHECK(cli_resp(c, 0, &r));
  CHECK_INT(r.status, 408);
  CHECK(strstr(r.body, "\"timeout\"") != NULL);
  resp_free(&r);
  CHECK(wait_closed(c));
  cli_close(c);
  /* a body that never ends; its rest, sent after the 408, is dropped:
   * the request never reaches the handler */
  c = cli_open();
  CHECK(cli_sends(c, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n"
                     "\r\nabc"));
  CHECK(wait_resp(c, 1));
  CHECK(cli_resp(c, 0, &r));
  CHECK_INT(r.status, 408);
  resp_free(&r);
  CHECK(wait_closed(c));
  CHECK(cli_sends(c, "defghij"));
  shutdown(c->fd, SHUT_WR);
  CHECK(wait_until(conns_are, (void *)0));
  cli_close(c);
  /* the same on a keep-alive connection after a first answer */
  c = cli_open();
  CHECK(cli_sends(c, "GET /first HTTP/1.1\r\nHost: t\r\n\r\n"));
  CHECK(wait_resp(c, 1));
  CHECK(cli_sends(c, "GET /second HTTP/1.1\r\n"));
  CHECK(wait_resp(c, 2));
  CHECK(cli_resp(c, 1, &r));
  CHECK_INT(r.status, 408);
  resp_free(&r);
  CHECK(wait_closed(c));
  cli_close(c);
  CHECK_INT(nreqs, 1);
  srv_stop();
}

static void test_connection_cap(void) {
  wf_server_opts_t o;
  cli_t *a, *b, *c;
  resp_t r;
  wf_server_opts_default(&o);
  o.max_connections = 2;
  srv_start(&o);
  a = cli_open();
  b = cli_open();
  CHECK(wait_until(conns_are, (void *)2));
  c = cli_open();
  CHECK(wait_until(conns_are, (void *)3));
  CHECK(cli_sends(c, "GET /third HTTP/1.1\r\nHost: t\r\n\r\n"));
  CHECK(wait_resp(c, 1));
  CHECK(cli_resp(c, 0, &r));
  CHECK_INT(r.status, 503);
  CHECK(strstr(r.body, "\"unavailable\"") != NULL);
  CHECK_STR(resp_header(&r, "Connection"), "close");
  resp_free(&r);
  CHECK(wait_closed(c));
  CHECK(wait_until(conns_are, (void *)2));
  CHECK(cli_sends(a, "GET /first HTTP/1.1\r\nHost: t\r\n\r\n"));
  CHECK(wait_resp(a, 1));
  CHECK(cli_resp(a, 0, &r));
  CHECK_INT(r.status, 200);
  resp_free(&r);
  CHECK_INT(nreqs, 1);
  cli_close(a);
  cli_close(b);
  cli_close(c);
  srv_stop();
}

static int has_held(void *ud) { return nheld >= (int)(size_t)ud; }

/* Wait until c's input holds text. */
static int wait_text(cli_t *c, const char *text) {
  want_text_t w = {c, text};
  return wait_until(has_text, &w) && strstr(c->buf, text);
}

static int req_closed(void *ud) { return wf_server_req_closed(ud); }
static int nothing_pending(void *ud) { return !wf_server_req_pending(ud); }

static void test_stream(void) {
  cli_t *c;
  resp_t r;
  wf_server_req_t *q;
  const char *h[2] = {"Content-Type", "text/plain"};
  srv_start(NULL);
  c = cli_open();
  CHECK(cli_sends(c, "GET /hold/stream HTTP/1.1\r\nHost: t\r\n\r\n"));
  CHECK(wait_until(has_held, (void *)1));
  q = held[0];
  CHECK_INT(wf_server_req_stream(q, 200, h, 1, NULL), WF_OK);
  CHECK_INT(wf_server_req_write(q, "part-one;", 9, NULL), WF_OK);
  CHECK(wait_text(c, "part-one;"));
  CHECK(wait_until(nothing_pending, q));
  CHECK(req_notes > 0); /* the bytes taken were reported */
  CHECK(strstr(c->buf, "part-two") == NULL);
  CHECK_INT(cli_nresp(c), 0); /* not ended yet */
  CHECK_INT(wf_server_req_write(q, "part-two;", 9, NULL), WF_OK);
  CHECK_INT(wf_server_req_write(q, "three", 5, NULL), WF_OK);
  CHECK(wait_text(c, "three"));
  CHECK_INT(cli_nresp(c), 0);
  CHECK_INT(wf_server_req_end(q, NULL), WF_OK);
  CHECK(wait_resp(c, 1));
  CHECK(cli_resp(c, 0, &r));
  CHECK_INT(r.status, 200);
  CHECK_STR(resp_header(&r, "Transfer-Encoding"), "chunked");
  CHECK_STR(r.body, "part-one;part-two;three");
  resp_free(&r);
  CHECK(wait_until(req_closed, q)); /* the response is complete */
  CHECK_INT(wf_server_req_write(q, "x", 1, NULL), WF_ERR);
  wf_server_req_release(q);
  nheld = 0;
  CHECK_INT(wf_server_inflight(S), 0);
  CHECK(!c->eof); /* keep-alive */
  cli_close(c);
  srv_stop();
}

static void test_client_leaves_idle_stream(void) {
  cli_t *c;
  wf_server_req_t *q;
  wf_err_t err;
  srv_start(NULL);
  c = cli_open();
  CHECK(cli_sends(c, "GET /hold/sse HTTP/1.1\r\nHost: t\r\n\r\n"));
  CHECK(wait_until(has_held, (void *)1));
  q = held[0];
  CHECK_INT(wf_server_req_stream(q, 200, NULL, 0, NULL), WF_OK);
  CHECK_INT(wf_server_req_write(q, "hello", 5, NULL), WF_OK);
  CHECK(wait_text(c, "hello"));
  CHECK(wait_until(nothing_pending, q));
  /* the stream is idle: nothing is written; the client leaves */
  cli_close(c);
  CHECK(wait_until(req_closed, q));
  CHECK_INT(wf_server_req_write(q, "more", 4, &err), WF_ERR);
  CHECK_STR(err.msg, "closed");
  CHECK(wait_until(conns_are, (void *)0));
  wf_server_req_release(q);
  nheld = 0;
  CHECK_INT(wf_server_inflight(S), 0);
  srv_stop();
}

static int inflight_zero(void *ud) {
  (void)ud;
  return wf_server_inflight(S) == 0;
}

static void test_close_and_drain(void) {
  cli_t *st, *rq;
  resp_t r;
  struct sockaddr_in a;
  int fd, port;
  const char *h[2] = {"Content-Type", "text/event-stream"};
  srv_start(NULL);
  port = wf_server_port(S);
  st = cli_open();
  CHECK(cli_sends(st, "GET /hold/events HTTP/1.1\r\nHost: t\r\n\r\n"));
  CHECK(wait_until(has_held, (void *)1));
  CHECK_INT(wf_server_req_stream(held[0], 200, h, 1, NULL), WF_OK);
  CHECK_INT(wf_server_req_write(held[0], "data: 1\n\n", 9, NULL), WF_OK);
  CHECK(wait_text(st, "data: 1"));
  rq = cli_open();
  CHECK(cli_sends(rq, "POST /hold/work HTTP/1.1\r\nHost: t\r\n"
                      "Content-Length: 2\r\n\r\nhi"));
  CHECK(wait_until(has_held, (void *)2));
  CHECK_INT(wf_server_inflight(S), 2);
  /* close: no new connections */
  wf_server_close(S);
  CHECK(wf_server_is_closed(S));
  wf_server_close(S); /* idempotent */
  fd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) < 0 &&
        errno == ECONNREFUSED);
  close(fd);
  /* drain: the open stream is ended first */
  CHECK_INT(wf_server_req_write(held[0], "event: shutdown\n\n", 17, NULL),
            WF_OK);
  CHECK_INT(wf_server_req_end(held[0], NULL), WF_OK);
  CHECK(wait_resp(st, 1));
  CHECK(cli_resp(st, 0, &r));
  CHECK_STR(r.body, "data: 1\n\nevent: shutdown\n\n");
  resp_free(&r);
  CHECK(wait_until(req_closed, held[0]));
  CHECK_INT(wf_server_inflight(S), 1);
  /* then the request in flight finishes, with Connection: close */
  CHECK_INT(wf_server_req_respond(held[1], 200, NULL, 0, "done", 4, NULL),
            WF_OK);
  CHECK(wait_resp(rq, 1));
  CHECK(cli_resp(rq, 0, &r));
  CHECK_INT(r.status, 200);
  CHECK_STR(r.body, "done");
  CHECK_STR(resp_header(&r, "Connection"), "close");
  resp_free(&r);
  CHECK(wait_closed(rq));
  CHECK(wait_until(inflight_zero, NULL));
  cli_close(st);
  cli_close(rq);
  srv_stop();
}

/* Open descriptors of this process. */
static int open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  int n = 0;
  if (!d) return -1;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1; /* the directory's own descriptor */
}
static int fds_at_most(void *ud) { return open_fds() <= (int)(size_t)ud; }

/* A watch that notes readability without reading. */
typedef struct peek {
  ev_io io;
  int ready;
} peek_t;
static void peek_cb(struct ev_loop *evl, ev_io *w, int revents) {
  (void)revents;
  ((peek_t *)w->data)->ready = 1;
  ev_io_stop(evl, w);
}
static int peek_ready(void *ud) { return ((peek_t *)ud)->ready; }

/* Send req (a request whose answer is an error weft writes before the
 * body is read), wait until the answer is in, send `more` bytes of body
 * and end the request side, then read: the whole answer must be there,
 * with no reset (closing with unread bytes would reset the connection and
 * the client would lose the answer). Returns the status read. */
static int answer_survives(const char *req, size_t more, resp_t *r) {
  cli_t *c = cli_open();
  char *pad = malloc(more);
  int st = 0;
  memset(pad, 'z', more);
  ev_io_stop(EVL, &c->rio); /* the client does not read yet */
  CHECK(cli_sends(c, req));
  {
    /* wait for the answer without taking it */
    peek_t pk = {.ready = 0};
    ev_io_init(&pk.io, peek_cb, c->fd, EV_READ);
    pk.io.data = &pk;
    ev_io_start(EVL, &pk.io);
    CHECK(wait_until(peek_ready, &pk));
    ev_io_stop(EVL, &pk.io);
  }
  CHECK(cli_send(c, pad, more)); /* the client keeps sending */
  shutdown(c->fd, SHUT_WR);
  ev_io_start(EVL, &c->rio);
  CHECK(wait_closed(c));
  CHECK_INT(c->err, 0);
  CHECK(c->eof);
  {
    /* Linux keeps received bytes readable after a reset that follows the
     * server's FIN; the reset still leaves its error on the socket */
    int soerr = -1;
    socklen_t sl = sizeof soerr;
    CHECK(getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0);
    CHECK_INT(soerr, 0);
  }
  CHECK_INT(cli_nresp(c), 1);
  if (cli_resp(c, 0, r)) st = r->status;
  cli_close(c);
  free(pad);
  return st;
}

static void test_graceful_close(void) {
  wf_server_opts_t o;
  resp_t r;
  char req[4096], body[2048];
  int base = open_fds(), serving;
  wf_server_opts_default(&o);
  o.max_body_bytes = 1024;
  srv_start(&o);
  serving = open_fds();
  memset(body, 'b', sizeof body);
  /* chunked over the cap: weft's raw 413 */
  snprintf(req, sizeof req,
           "POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
           "\r\n800\r\n%.*s\r\n",
           2048, body);
  CHECK_INT(answer_survives(req, 16384, &r), 413);
  CHECK(r.body && strstr(r.body, "\"body_too_large\"") != NULL);
  resp_free(&r);
  /* declared over the cap, body sent anyway: 413 */
  snprintf(req, sizeof req,
           "POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 40000\r\n\r\n"
           "%.*s",
           2048, body);
  CHECK_INT(answer_survives(req, 16384, &r), 413);
  resp_free(&r);
  /* the gate's 400, with a body behind it */
  snprintf(req, sizeof req,
           "POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 1x\r\n\r\n"
           "%.*s",
           2048, body);
  CHECK_INT(answer_survives(req, 16384, &r), 400);
  resp_free(&r);
  CHECK_INT(nreqs, 0);
  /* every lingering socket is closed once its client is done */
  CHECK(wait_until(fds_at_most, (void *)(size_t)serving));
  srv_stop();
  CHECK_INT(open_fds(), base);
}

/* A client sending "Content-Length: 1x" then `more` bytes (0: nothing),
 * left open: its lingering socket must still be closed. */
static void linger_ends(size_t more) {
  cli_t *c;
  char *pad = calloc(1, more + 1);
  int serving;
  srv_start(NULL);
  serving = open_fds();
  c = cli_open();
  CHECK(cli_sends(c, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1x\r\n"
                     "\r\n"));
  CHECK(wait_resp(c, 1));
  CHECK(wait_closed(c)); /* the answer ends with the server's FIN */
  CHECK(open_fds() > serving + 1); /* the client's and the lingering one */
  if (more) (void)cli_send(c, pad, more);
  CHECK(wait_until(fds_at_most, (void *)(size_t)(serving + 1)));
  cli_close(c);
  srv_stop();
  free(pad);
}

static void test_linger_is_bounded(void) {
  linger_ends(200000); /* past the byte bound */
  linger_ends(0);      /* silent client: the time bound (2 s) */
}

int main(void) {
  EVL = ev_loop_new(EVFLAG_AUTO);
  RUN(test_simple_get);
  RUN(test_keep_alive);
  RUN(test_pipelined);
  RUN(test_body_limit);
  RUN(test_header_limit);
  RUN(test_gate_bad_framing);
  RUN(test_deadlines);
  RUN(test_connection_cap);
  RUN(test_stream);
  RUN(test_client_leaves_idle_stream);
  RUN(test_close_and_drain);
  RUN(test_graceful_close);
  RUN(test_linger_is_bounded);
  ev_loop_destroy(EVL);
  return harness_end("test_server.c");
}
