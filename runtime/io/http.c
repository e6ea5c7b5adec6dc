/* http.c — the asynchronous HTTP client of http.h: libcurl multi handles
 * driven by libev (CURLMOPT_SOCKETFUNCTION keeps one ev_io per socket,
 * CURLMOPT_TIMERFUNCTION one ev_timer per multi; both call
 * curl_multi_socket_action, then finished transfers are collected with
 * curl_multi_info_read). No polling, no threads of ours (curl's threaded
 * resolver does use one per name lookup; IP literals and "localhost" need
 * none).
 *
 * Lanes: libcurl 7.88 walks its whole connection cache several times per
 * transfer (looking for a reusable connection, for the "last connection" on
 * removal, for the oldest idle one), which is quadratic with thousands of
 * concurrent transfers. So transfers go to the first of several multi
 * handles ("lanes") that runs fewer than WF_HTTP_LANE_MAX of them. Lane 0
 * always exists and takes everything at ordinary concurrency, so its cache
 * gives keep-alive reuse; extra lanes only absorb bursts and are closed
 * (with their idle connections) a few seconds after they empty. DNS and TLS
 * sessions are shared by all lanes (a CURLSH).
 *
 * Our own per-host FIFO queue bounds concurrent transfers per
 * scheme://host:port. Easy handles are pooled and only exist while a
 * transfer runs, so a queued request costs its options and nothing else.
 * Idle timeouts use one ev_timer per request that is re-armed lazily from
 * the time of the last received byte (no timer update per chunk).
 *
 * Redirects are followed here, not by curl (CURLOPT_FOLLOWLOCATION is
 * off): a finished 3xx transfer with a Location starts again on the new
 * URL, through the host queue of its new origin, with the total timeout
 * that is left. This is what lets a redirect to another origin drop every
 * secret header (curl only drops Authorization and Cookie, and sends
 * x-api-key and the like on to the new host) or fail the request.
 *
 * Pooled easy handles are reset (curl_easy_reset) and every option is set
 * again, checked, for each transfer; a handle whose transfer failed or was
 * cancelled is closed instead of pooled, because curl 7.88 keeps some
 * per-transfer state across a reset (after a refused redirect, its 4 KiB
 * receive buffer stayed allocated and a later CURLOPT_BUFFERSIZE failed,
 * leaving curl believing in a 16 KiB buffer: a heap overflow).
 *
 * A network policy is checked on each hop's host and port before it
 * starts (the first URL, each redirect target) and on each connection's
 * address: CURLOPT_OPENSOCKETFUNCTION sees every address curl is about to
 * connect to, after DNS (a refused one gets no socket, so nothing is sent
 * to it), and CURLOPT_PREREQFUNCTION sees the address of the connection a
 * transfer is about to use, new or reused (a connection to a private
 * address left open by a request without a policy is not reused by one
 * with a policy that refuses it).
 *
 * Owners are never called from inside a curl callback: write/header
 * callbacks only append records and mark the request pending; pending
 * notifications are delivered after curl returns (leave()), where owners
 * may cancel or free anything. Depends on libcurl, libev, loop.h, sse.h,
 * netpolicy.h. */
#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define WF_HTTP_MAX_BODY ((size_t)64 << 20)
#define WF_HTTP_MAX_PER_HOST 64
#define WF_HTTP_POOL_MAX 256          /* idle easy handles kept */
#define WF_HTTP_PAUSE_HIGH ((size_t)4 << 20) /* untaken record bytes */
#define WF_HTTP_HOST_BUCKETS 64
#define WF_HTTP_LANE_MAX 500 /* transfers per multi handle */
#define WF_HTTP_RECV_BUFFER 4096L
#define WF_HTTP_LANE_REAP 5.0 /* seconds before an empty extra lane closes */
#define WF_HTTP_MAX_REDIRECTS 10

const char *const wf_http_secret_headers[] = {
    "authorization", "cookie",         "proxy-authorization",
    "x-api-key",     "x-goog-api-key", "api-key",
    NULL};

typedef struct wf_http_lane wf_http_lane_t;

/* One multi handle with its timer. */
struct wf_http_lane {
  wf_http_t *h;
  CURLM *multi;
  ev_timer timer; /* curl's timeout for this multi */
  int running;
  int idx;
};

/* One socket curl asked us to watch. */
typedef struct wf_http_sock {
  ev_io io;
  wf_http_lane_t *lane;
  curl_socket_t fd;
  int events;
  struct wf_http_sock *prev, *next;
} wf_http_sock_t;

/* A pooled easy handle with its error buffer, and the state of the
 * transfer it runs (kept here, not in every request: most requests of a
 * burst wait in a host queue with no transfer). */
typedef struct wf_http_easy {
  CURL *curl;
  struct wf_http_easy *next; /* pool */
  wf_http_lane_t *lane;      /* the lane running the transfer */
  ev_timer idle;             /* the transfer's idle timeout */
  ev_tstamp last;            /* time of the last byte received */
  int paused;                /* reading paused: records wait to be taken */
  struct curl_slist *hdrs;   /* the transfer's header lines (curl's list) */
  char *refused; /* the policy's refusal of an address curl tried: the
                    error when the connect then fails */
  char errbuf[CURL_ERROR_SIZE];
} wf_http_easy_t;

/* Per-host accounting: running transfers and the FIFO of waiting ones. */
typedef struct wf_http_host {
  char *key; /* "scheme://host:port" */
  int running;
  wf_http_req_t *qhead, *qtail;
  struct wf_http_host *next; /* hash chain */
} wf_http_host_t;

enum { REQ_QUEUED, REQ_RUNNING, REQ_DONE };

/* A request: 10,000 of them may wait at once, so flags are bytes, the
 * timeouts floats, the URL and host:port after a redirect one block, and
 * what only a running transfer needs (curl's header list, a policy
 * refusal) is in its wf_http_easy_t: 320 bytes. */
struct wf_http_req {
  wf_http_t *h; /* NULL once done and notified */
  wf_http_host_t *host;
  wf_http_req_t *qnext;        /* host FIFO */
  wf_http_req_t *prev, *next;  /* h->live: queued and running */
  wf_http_req_t *pprev, *pnext; /* h->pending notifications */
  wf_http_notify_fn notify;
  void *ud;
  /* the request: one block holding url, method, "host:port", the origin
   * ("scheme://host:port" of the first URL), the header lines (each one
   * flag byte, 's' secret or '-', then "Name: value", NUL-terminated; then
   * an empty string) and the body (unless borrowed: then the caller's) */
  char *blob;
  const char *url, *method, *hostport, *origin, *hdrtext, *body;
  char *redir; /* after a redirect: its URL then its "host:port", one
                  block (url and hostport point into it) */
  size_t body_len;
  short max_redirects, nredirects;
  unsigned char state;       /* REQ_* */
  unsigned char pending;     /* on the notification queue */
  unsigned char has_expect;
  unsigned char xo_refuse;   /* a cross-origin redirect fails the request */
  unsigned char left_origin; /* a redirect left the origin: no secret
                                headers since */
  unsigned char hdr_done;    /* blank line seen: later lines are trailers */
  unsigned char framing;     /* wf_http_framing_t as requested */
  unsigned char mode;        /* of the current response: a non-2xx final
                                response is buffered, not framed */
  unsigned char code;        /* wf_http_errcode_t */
  int status;                /* response status */
  float t_left;      /* total timeout left at the current activation */
  ev_tstamp t_first; /* first activation: the total timeout runs from it */
  float connect_timeout, timeout, idle_timeout; /* seconds, <= 1e6 */
  size_t max_body;
  wf_http_easy_t *easy; /* the running transfer */
  /* the response */
  char **hdr; /* "Name: value", NULL-terminated */
  size_t nhdr, caphdr;
  char *buf;    /* BUFFER body */
  size_t nbuf, capbuf;
  wf_sse_t *sse;
  wf_ndjson_t *nd;
  wf_http_record_t *rhead, *rtail;
  size_t rbytes; /* record bytes not yet taken */
  char *errmsg;
  wf_netpolicy_t *policy; /* a reference, or NULL */
};

struct wf_http {
  struct ev_loop *evl;
  wf_http_lane_t **lanes; /* lanes[0] always exists; others may be NULL */
  size_t nlanes, caplanes;
  CURLSH *share;  /* DNS cache and TLS sessions of every lane */
  ev_timer reap;  /* closes empty extra lanes */
  ev_timer kick;  /* delivers notifications queued outside a callback */
  int max_per_host;
  wf_http_host_t *hosts[WF_HTTP_HOST_BUCKETS];
  wf_http_req_t *live;
  wf_http_req_t *phead, *ptail;
  wf_http_sock_t *socks;
  wf_http_easy_t *pool;
  int npool;
  int running, queued;
  int depth; /* nesting of entries from libev (and wf_http_free) */
  int dying; /* wf_http_free called: tear down when depth drops to 0 */
};

static int curl_inited;

static void req_finish(wf_http_req_t *r, CURLcode cc);
static int req_redirect(wf_http_t *h, wf_http_req_t *r);
static void host_pump(wf_http_t *h, wf_http_host_t *ho);
static void teardown(wf_http_t *h);

/* ---- small helpers ----------------------------------------------------- */

/* A malloc'ed printf. */
static char *xasprintf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...) {
  va_list ap;
  char tmp[512];
  va_start(ap, fmt);
  vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  return wf_xstrdup(tmp);
}

/* Record the first error of r (later ones are consequences). */
static void req_error(wf_http_req_t *r, wf_http_errcode_t code, char *msg) {
  if (r->code != WF_HTTP_ERR_NONE) {
    free(msg);
    return;
  }
  r->code = code;
  r->errmsg = msg;
}

/* ---- notifications ----------------------------------------------------- */

/* Queue r's notification (once); delivered by leave() or the kick timer. */
static void pending_push(wf_http_req_t *r) {
  wf_http_t *h = r->h;
  if (r->pending || !h) return;
  r->pending = 1;
  r->pnext = NULL;
  r->pprev = h->ptail;
  if (h->ptail)
    h->ptail->pnext = r;
  else
    h->phead = r;
  h->ptail = r;
  if (h->depth == 0 && !ev_is_active(&h->kick)) ev_timer_start(h->evl, &h->kick);
}

/* Take r off the notification queue. */
static void pending_unlink(wf_http_req_t *r) {
  wf_http_t *h = r->h;
  if (!r->pending) return;
  if (r->pprev)
    r->pprev->pnext = r->pnext;
  else
    h->phead = r->pnext;
  if (r->pnext)
    r->pnext->pprev = r->pprev;
  else
    h->ptail = r->pprev;
  r->pprev = r->pnext = NULL;
  r->pending = 0;
}

/* Deliver every queued notification (owners may queue more meanwhile). */
static void flush(wf_http_t *h) {
  wf_http_req_t *r;
  while ((r = h->phead)) {
    pending_unlink(r);
    if (r->state == REQ_DONE) r->h = NULL; /* detached from the client */
    r->notify(r->ud, r);
  }
}

/* Entering from libev. */
static void enter(wf_http_t *h) { h->depth++; }

/* Leaving: deliver notifications at the outermost level, then tear down
 * the client if it was freed meanwhile. */
static void leave(wf_http_t *h) {
  if (h->depth == 1) flush(h);
  if (--h->depth == 0 && h->dying) teardown(h);
}

/* Kick timer: notifications queued outside any callback. */
static void kick_cb(struct ev_loop *evl, ev_timer *w, int revents) {
  wf_http_t *h = w->data;
  (void)evl;
  (void)revents;
  enter(h);
  leave(h);
}

/* ---- records ----------------------------------------------------------- */

/* Append a record: data plus (SSE) event, id and retry, in one block. */
static void rec_add(wf_http_req_t *r, const char *data, size_t len,
                    const char *event, const char *id, long retry) {
  size_t el = event ? strlen(event) + 1 : 0, il = id ? strlen(id) + 1 : 0;
  wf_http_record_t *rec = wf_xmalloc(sizeof *rec + len + 1 + el + il);
  char *p = (char *)(rec + 1);
  memcpy(p, data, len);
  p[len] = 0;
  rec->data = p;
  rec->len = len;
  p += len + 1;
  rec->event = rec->id = NULL;
  if (event) {
    memcpy(p, event, el);
    rec->event = p;
    p += el;
  }
  if (id) {
    memcpy(p, id, il);
    rec->id = p;
  }
  rec->retry = retry;
  rec->next = NULL;
  if (r->rtail)
    r->rtail->next = rec;
  else
    r->rhead = rec;
  r->rtail = rec;
  r->rbytes += len + el + il;
  pending_push(r);
}

/* SSE parser callback: one record per event. */
static int on_sse(void *ud, const wf_sse_event_t *ev) {
  wf_http_req_t *r = ud;
  rec_add(r, ev->data, ev->data_len, ev->event, ev->id, ev->retry);
  return 0;
}

/* NDJSON splitter callback: one record per line. */
static int on_line(void *ud, const char *line, size_t n) {
  wf_http_req_t *r = ud;
  rec_add(r, line, n, NULL, NULL, -1);
  return 0;
}

void wf_http_record_free(wf_http_record_t *rec) {
  while (rec) {
    wf_http_record_t *next = rec->next;
    free(rec);
    rec = next;
  }
}

/* ---- curl callbacks (never call owners from here) ----------------------- */

/* Body bytes: buffer them, or turn them into records. */
static size_t on_write(char *p, size_t sz, size_t n, void *ud) {
  wf_http_req_t *r = ud;
  size_t len = sz * n;
  wf_err_t err;
  r->easy->last = ev_now(r->h->evl);
  if (r->mode != WF_HTTP_BUFFER && r->rbytes > WF_HTTP_PAUSE_HIGH) {
    /* the owner is not taking records: stop reading until it does */
    r->easy->paused = 1;
    ev_timer_stop(r->h->evl, &r->easy->idle);
    return CURL_WRITEFUNC_PAUSE;
  }
  switch (r->mode) {
    case WF_HTTP_BUFFER:
      if (r->nbuf + len > r->max_body) {
        req_error(r, WF_HTTP_ERR_TOO_LARGE,
                  xasprintf("response body from %s exceeds max_body (%zu bytes)",
                            r->hostport, r->max_body));
        return 0;
      }
      if (r->nbuf + len + 1 > r->capbuf) {
        size_t c = r->capbuf ? r->capbuf : 1024;
        while (c < r->nbuf + len + 1) c *= 2;
        r->buf = wf_xrealloc(r->buf, c);
        r->capbuf = c;
      }
      memcpy(r->buf + r->nbuf, p, len);
      r->nbuf += len;
      r->buf[r->nbuf] = 0;
      break;
    case WF_HTTP_RAW:
      if (len) rec_add(r, p, len, NULL, NULL, -1);
      break;
    case WF_HTTP_SSE:
      if (wf_sse_feed(r->sse, p, len, &err) != WF_OK) {
        req_error(r, WF_HTTP_ERR_TOO_LARGE,
                  xasprintf("server-sent event from %s exceeds max_body (%zu "
                            "bytes)", r->hostport, r->max_body));
        return 0;
      }
      break;
    case WF_HTTP_NDJSON:
      if (wf_ndjson_feed(r->nd, p, len, &err) != WF_OK) {
        req_error(r, WF_HTTP_ERR_TOO_LARGE,
                  xasprintf("NDJSON line from %s exceeds max_body (%zu bytes)",
                            r->hostport, r->max_body));
        return 0;
      }
      break;
  }
  return len;
}

/* Drop the headers collected so far (a new response begins). */
static void hdr_clear(wf_http_req_t *r) {
  for (size_t i = 0; i < r->nhdr; i++) free(r->hdr[i]);
  r->nhdr = 0;
  if (r->hdr) r->hdr[0] = NULL;
}

/* Header lines: keep those of the final response (a status line starts a
 * new block, so 1xx and redirect headers are dropped); skip trailers. */
static size_t on_header(char *p, size_t sz, size_t n, void *ud) {
  wf_http_req_t *r = ud;
  size_t len = sz * n, all = len;
  r->easy->last = ev_now(r->h->evl);
  while (len && (p[len - 1] == '\n' || p[len - 1] == '\r')) len--;
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
    const char *sp = memchr(p, ' ', len);
    hdr_clear(r);
    r->hdr_done = 0;
    r->status = sp ? atoi(sp + 1) : 0;
    r->nbuf = 0; /* a body of an interim response is not ours */
    r->mode = r->framing;
    return all;
  }
  if (len == 0) {
    /* an error reply to a streaming request is kept whole for the caller
     * (its body is an error message, not a stream) */
    if (r->status >= 300 && !r->hdr_done) r->mode = WF_HTTP_BUFFER;
    r->hdr_done = 1;
    return all;
  }
  if (r->hdr_done) return all;
  if ((p[0] == ' ' || p[0] == '\t') && r->nhdr) { /* obsolete folding */
    char *prev = r->hdr[r->nhdr - 1];
    size_t pl = strlen(prev);
    while (len && (*p == ' ' || *p == '\t')) p++, len--;
    prev = wf_xrealloc(prev, pl + 1 + len + 1);
    prev[pl] = ' ';
    memcpy(prev + pl + 1, p, len);
    prev[pl + 1 + len] = 0;
    r->hdr[r->nhdr - 1] = prev;
    return all;
  }
  WF_GROW(r->hdr, r->caphdr, r->nhdr + 2);
  r->hdr[r->nhdr] = wf_xmalloc(len + 1);
  memcpy(r->hdr[r->nhdr], p, len);
  r->hdr[r->nhdr][len] = 0;
  r->hdr[++r->nhdr] = NULL;
  return all;
}

/* Idle timer: fire when nothing arrived for idle_timeout seconds. */
static void idle_cb(struct ev_loop *evl, ev_timer *w, int revents) {
  wf_http_req_t *r = w->data;
  wf_http_t *h = r->h;
  ev_tstamp left = r->easy->last + r->idle_timeout - ev_now(evl);
  (void)revents;
  if (left > 1e-6) { /* bytes arrived meanwhile: wait for the rest */
    ev_timer_set(w, left, 0);
    ev_timer_start(evl, w);
    return;
  }
  enter(h);
  req_error(r, WF_HTTP_ERR_IDLE,
            xasprintf("no data from %s for %g s (idle_timeout)", r->hostport,
                      r->idle_timeout));
  req_finish(r, CURLE_OK);
  leave(h);
}

/* Connection ready, request about to be sent: start the idle clock. */
static int on_prereq(void *ud, char *ip, char *lip, int rport, int lport) {
  wf_http_req_t *r = ud;
  wf_err_t err;
  (void)lip;
  (void)lport;
  wf_http_easy_t *e = r->easy;
  /* the connection's address, also of a reused connection (which opened
   * no socket for this transfer) */
  if (r->policy &&
      wf_netpolicy_check_ip(r->policy, ip, rport, r->hostport, &err) != WF_OK) {
    req_error(r, WF_HTTP_ERR_POLICY, wf_xstrdup(err.msg));
    return CURL_PREREQFUNC_ABORT;
  }
  if (r->idle_timeout > 0 && !e->paused) {
    e->last = ev_now(r->h->evl);
    ev_timer_stop(r->h->evl, &e->idle);
    ev_timer_set(&e->idle, r->idle_timeout, 0);
    ev_timer_start(r->h->evl, &e->idle);
  }
  return CURL_PREREQFUNC_OK;
}

/* The socket of a new connection of a request under a network policy:
 * the address curl is about to connect to (after DNS; each one it tries)
 * is checked first, and a refused one gets no socket (curl then tries the
 * next address, if any). */
static curl_socket_t on_opensocket(void *ud, curlsocktype purpose,
                                   struct curl_sockaddr *a) {
  wf_http_req_t *r = ud;
  wf_err_t err;
  (void)purpose;
  if (wf_netpolicy_check_addr(r->policy, &a->addr, r->hostport, &err) != WF_OK) {
    if (!r->easy->refused) r->easy->refused = wf_xstrdup(err.msg);
    return CURL_SOCKET_BAD;
  }
  return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* ---- libev <-> curl multi ---------------------------------------------- */

/* Collect finished transfers of a lane. */
static void check_done(wf_http_lane_t *ln) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(ln->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    CURL *e = m->easy_handle;
    CURLcode cc = m->data.result;
    wf_http_req_t *r = NULL;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
    if (r) req_finish(r, cc);
  }
}

/* Socket readiness. */
static void io_cb(struct ev_loop *evl, ev_io *w, int revents) {
  wf_http_sock_t *s = w->data;
  wf_http_lane_t *ln = s->lane;
  wf_http_t *h = ln->h;
  int running, flags = 0;
  (void)evl;
  if (revents & EV_READ) flags |= CURL_CSELECT_IN;
  if (revents & EV_WRITE) flags |= CURL_CSELECT_OUT;
  enter(h);
  curl_multi_socket_action(ln->multi, s->fd, flags, &running);
  check_done(ln);
  leave(h);
}

/* curl's timeout of a lane expired. */
static void timer_cb(struct ev_loop *evl, ev_timer *w, int revents) {
  wf_http_lane_t *ln = w->data;
  wf_http_t *h = ln->h;
  int running;
  (void)evl;
  (void)revents;
  enter(h);
  curl_multi_socket_action(ln->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(ln);
  leave(h);
}

/* CURLMOPT_TIMERFUNCTION: (re)arm or stop the lane's timer. */
static int on_curl_timer(CURLM *m, long ms, void *ud) {
  wf_http_lane_t *ln = ud;
  (void)m;
  ev_timer_stop(ln->h->evl, &ln->timer);
  if (ms >= 0) {
    ev_timer_set(&ln->timer, (double)ms / 1000.0, 0);
    ev_timer_start(ln->h->evl, &ln->timer);
  }
  return 0;
}

/* Stop watching s and free it. */
static void sock_free(wf_http_t *h, wf_http_sock_t *s) {
  ev_io_stop(h->evl, &s->io);
  if (s->prev)
    s->prev->next = s->next;
  else
    h->socks = s->next;
  if (s->next) s->next->prev = s->prev;
  free(s);
}

/* CURLMOPT_SOCKETFUNCTION: one ev_io per socket, events as curl wants. */
static int on_socket(CURL *e, curl_socket_t fd, int what, void *ud,
                     void *sockp) {
  wf_http_lane_t *ln = ud;
  wf_http_t *h = ln->h;
  wf_http_sock_t *s = sockp;
  int events;
  (void)e;
  if (what == CURL_POLL_REMOVE) {
    if (s) {
      curl_multi_assign(ln->multi, fd, NULL);
      sock_free(h, s);
    }
    return 0;
  }
  events = ((what & CURL_POLL_IN) ? EV_READ : 0) |
           ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
  if (!s) {
    s = wf_xcalloc(1, sizeof *s);
    s->lane = ln;
    s->fd = fd;
    ev_init(&s->io, io_cb);
    s->io.data = s;
    s->next = h->socks;
    if (h->socks) h->socks->prev = s;
    h->socks = s;
    curl_multi_assign(ln->multi, fd, s);
  } else if (s->events == events && ev_is_active(&s->io)) {
    return 0;
  }
  ev_io_stop(h->evl, &s->io);
  ev_io_set(&s->io, fd, events);
  s->events = events;
  ev_io_start(h->evl, &s->io);
  return 0;
}

/* ---- lanes ------------------------------------------------------------- */

/* A new lane (multi handle) at index idx; NULL if curl fails. */
static wf_http_lane_t *lane_new(wf_http_t *h, int idx) {
  wf_http_lane_t *ln = wf_xcalloc(1, sizeof *ln);
  ln->h = h;
  ln->idx = idx;
  ln->multi = curl_multi_init();
  if (!ln->multi) {
    free(ln);
    return NULL;
  }
  curl_multi_setopt(ln->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(ln->multi, CURLMOPT_SOCKETDATA, ln);
  curl_multi_setopt(ln->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(ln->multi, CURLMOPT_TIMERDATA, ln);
  /* a fixed cache size: curl's default (4 per handle) shrinks as transfers
   * end and then scans the cache for the oldest connection on every end */
  curl_multi_setopt(ln->multi, CURLMOPT_MAXCONNECTS, (long)WF_HTTP_LANE_MAX);
  ev_init(&ln->timer, timer_cb);
  ln->timer.data = ln;
  return ln;
}

/* Close a lane: its idle connections, sockets and timer. */
static void lane_free(wf_http_t *h, wf_http_lane_t *ln) {
  wf_http_sock_t *s, *next;
  ev_timer_stop(h->evl, &ln->timer);
  curl_multi_cleanup(ln->multi); /* reports most sockets it closes */
  for (s = h->socks; s; s = next) {
    next = s->next;
    if (s->lane == ln) sock_free(h, s);
  }
  free(ln);
}

/* The first lane with room for one more transfer (created if needed). */
static wf_http_lane_t *lane_pick(wf_http_t *h) {
  size_t i, hole = h->nlanes;
  for (i = 0; i < h->nlanes; i++) {
    if (!h->lanes[i]) {
      if (hole == h->nlanes) hole = i;
      continue;
    }
    if (h->lanes[i]->running < WF_HTTP_LANE_MAX) return h->lanes[i];
  }
  if (hole == h->nlanes) {
    WF_GROW(h->lanes, h->caplanes, h->nlanes + 1);
    h->lanes[h->nlanes++] = NULL;
  }
  h->lanes[hole] = lane_new(h, (int)hole);
  return h->lanes[hole];
}

/* Reaper: close extra lanes that have no transfer. Runs from libev, never
 * inside a curl call. */
static void reap_cb(struct ev_loop *evl, ev_timer *w, int revents) {
  wf_http_t *h = w->data;
  (void)evl;
  (void)revents;
  for (size_t i = 1; i < h->nlanes; i++)
    if (h->lanes[i] && h->lanes[i]->running == 0) {
      lane_free(h, h->lanes[i]);
      h->lanes[i] = NULL;
    }
  while (h->nlanes > 1 && !h->lanes[h->nlanes - 1]) h->nlanes--;
}

/* ---- hosts ------------------------------------------------------------- */

/* Hash of a host key. */
static unsigned host_hash(const char *k) {
  unsigned x = 2166136261u;
  while (*k) x = (x ^ (unsigned char)*k++) * 16777619u;
  return x % WF_HTTP_HOST_BUCKETS;
}

/* The host entry of key, created when missing. */
static wf_http_host_t *host_get(wf_http_t *h, const char *key) {
  unsigned b = host_hash(key);
  wf_http_host_t *ho;
  for (ho = h->hosts[b]; ho; ho = ho->next)
    if (strcmp(ho->key, key) == 0) return ho;
  ho = wf_xcalloc(1, sizeof *ho);
  ho->key = wf_xstrdup(key);
  ho->next = h->hosts[b];
  h->hosts[b] = ho;
  return ho;
}

/* Forget a host entry nobody uses any more. */
static void host_release(wf_http_t *h, wf_http_host_t *ho) {
  wf_http_host_t **p;
  if (ho->running || ho->qhead) return;
  for (p = &h->hosts[host_hash(ho->key)]; *p; p = &(*p)->next)
    if (*p == ho) {
      *p = ho->next;
      break;
    }
  free(ho->key);
  free(ho);
}

/* ---- requests ---------------------------------------------------------- */

/* An easy handle from the pool (or a new one); NULL if curl fails. */
static wf_http_easy_t *easy_get(wf_http_t *h) {
  wf_http_easy_t *e = h->pool;
  if (e) {
    h->pool = e->next;
    h->npool--;
    return e;
  }
  e = wf_xcalloc(1, sizeof *e);
  e->curl = curl_easy_init();
  if (!e->curl) {
    free(e);
    return NULL;
  }
  return e;
}

/* Free what the transfer of e kept: its header list, a refusal. */
static void easy_clear(wf_http_easy_t *e) {
  curl_slist_free_all(e->hdrs);
  e->hdrs = NULL;
  free(e->refused);
  e->refused = NULL;
}

/* Close an easy handle. */
static void easy_close(wf_http_easy_t *e) {
  easy_clear(e);
  curl_easy_cleanup(e->curl);
  free(e);
}

/* Return an easy handle to the pool (reset) when its transfer ended
 * cleanly (clean = 1), else close it: see the header comment. */
static void easy_put(wf_http_t *h, wf_http_easy_t *e, int clean) {
  if (!clean || h->npool >= WF_HTTP_POOL_MAX || h->dying) {
    easy_close(e);
    return;
  }
  curl_easy_reset(e->curl);
  easy_clear(e);
  e->next = h->pool;
  h->pool = e;
  h->npool++;
}

/* Unlink r from the live list. */
static void live_unlink(wf_http_t *h, wf_http_req_t *r) {
  if (r->prev)
    r->prev->next = r->next;
  else
    h->live = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = NULL;
}

/* Unlink a queued r from its host's FIFO. */
static void queue_unlink(wf_http_host_t *ho, wf_http_req_t *r) {
  wf_http_req_t **p, *prev = NULL;
  for (p = &ho->qhead; *p; prev = *p, p = &(*p)->qnext)
    if (*p == r) {
      *p = r->qnext;
      if (ho->qtail == r) ho->qtail = prev;
      break;
    }
  r->qnext = NULL;
}

/* Set an option of the easy handle c; on failure name it in *what and
 * return curl's code from the enclosing function. */
#define SETOPT(c, opt, val)                                  \
  do {                                                       \
    CURLcode cc_ = curl_easy_setopt((c), (opt), (val));      \
    if (cc_ != CURLE_OK) {                                   \
      *what = #opt;                                          \
      return cc_;                                            \
    }                                                        \
  } while (0)

/* Set every option of r's transfer on the (reset or new) handle e: each
 * one explicitly, so that nothing depends on what a reset restores, and
 * checked. Returns the first failure with the option's name in *what. */
static CURLcode easy_setup(wf_http_t *h, wf_http_req_t *r, wf_http_easy_t *e,
                           struct curl_slist *hdrs, const char **what) {
  CURL *c = e->curl;
  int is_post = strcmp(r->method, "POST") == 0;
  e->errbuf[0] = 0;
  SETOPT(c, CURLOPT_URL, r->url);
  SETOPT(c, CURLOPT_PRIVATE, (char *)r);
  SETOPT(c, CURLOPT_ERRORBUFFER, e->errbuf);
  SETOPT(c, CURLOPT_NOSIGNAL, 1L);
  SETOPT(c, CURLOPT_SHARE, h->share);
  SETOPT(c, CURLOPT_PROTOCOLS_STR, "http,https");
  SETOPT(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  SETOPT(c, CURLOPT_FOLLOWLOCATION, 0L); /* we follow (req_redirect) */
  SETOPT(c, CURLOPT_UNRESTRICTED_AUTH, 0L);
  SETOPT(c, CURLOPT_ACCEPT_ENCODING, "");
  SETOPT(c, CURLOPT_WRITEFUNCTION, on_write);
  SETOPT(c, CURLOPT_WRITEDATA, r);
  SETOPT(c, CURLOPT_HEADERFUNCTION, on_header);
  SETOPT(c, CURLOPT_HEADERDATA, r);
  SETOPT(c, CURLOPT_PREREQFUNCTION, on_prereq);
  SETOPT(c, CURLOPT_PREREQDATA, r);
  SETOPT(c, CURLOPT_OPENSOCKETFUNCTION, r->policy ? on_opensocket : NULL);
  SETOPT(c, CURLOPT_OPENSOCKETDATA, r->policy ? (void *)r : NULL);
  SETOPT(c, CURLOPT_CONNECTTIMEOUT_MS, (long)ceil(r->connect_timeout * 1000));
  SETOPT(c, CURLOPT_TIMEOUT_MS,
         r->timeout > 0 ? (long)ceil(r->t_left * 1000) : 0L);
  SETOPT(c, CURLOPT_MAXFILESIZE_LARGE,
         r->framing == WF_HTTP_BUFFER ? (curl_off_t)r->max_body : (curl_off_t)0);
  if (r->body) {
    SETOPT(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    SETOPT(c, CURLOPT_POSTFIELDS, r->body);
    SETOPT(c, CURLOPT_CUSTOMREQUEST, is_post ? NULL : r->method);
  } else {
    SETOPT(c, CURLOPT_HTTPGET, 1L);
    SETOPT(c, CURLOPT_NOBODY, strcmp(r->method, "HEAD") == 0 ? 1L : 0L);
    SETOPT(c, CURLOPT_CUSTOMREQUEST,
           strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0
               ? NULL
               : r->method);
  }
  SETOPT(c, CURLOPT_HTTPHEADER, hdrs);
  /* curl allocates this receive buffer for every running transfer; 4 KiB
   * instead of 16 keeps 10,000 concurrent transfers 120 MB smaller and
   * reads a 100 MB body over loopback no slower (measured). It must take:
   * curl refuses it on a handle that kept its old buffer, and then reads
   * 16 KiB into that 4 KiB one. */
  SETOPT(c, CURLOPT_BUFFERSIZE, WF_HTTP_RECV_BUFFER);
  return CURLE_OK;
}

#undef SETOPT

/* Configure an easy handle for r and add it to a lane's multi handle. */
static int req_activate(wf_http_t *h, wf_http_req_t *r) {
  wf_http_lane_t *ln = lane_pick(h);
  wf_http_easy_t *e = ln ? easy_get(h) : NULL;
  struct curl_slist *hdrs = NULL; /* the header lines this hop sends */
  const char *what = NULL;
  CURLcode cc;
  if (!e) {
    req_error(r, WF_HTTP_ERR_OTHER,
              xasprintf("request to %s failed: cannot create a curl handle",
                        r->hostport));
    return WF_ERR;
  }
  if (r->timeout > 0) { /* the total timeout spans redirects */
    ev_tstamp now = ev_now(h->evl);
    if (r->t_first == 0) r->t_first = now;
    r->t_left = r->timeout - (now - r->t_first);
    if (r->t_left < 0.001) {
      easy_put(h, e, 1);
      req_error(r, WF_HTTP_ERR_TIMEOUT,
                xasprintf("request to %s timed out after %g s (timeout)",
                          r->hostport, r->timeout));
      return WF_ERR;
    }
  }
  for (const char *p = r->hdrtext; *p; p += strlen(p) + 1) {
    if (p[0] == 's' && r->left_origin) continue;
    if (!(hdrs = curl_slist_append(hdrs, p + 1))) abort();
  }
  /* no "Expect: 100-continue" round trip before larger bodies */
  if (!r->has_expect && !(hdrs = curl_slist_append(hdrs, "Expect:")))
    abort();
  if (r->framing == WF_HTTP_SSE && !r->sse)
    r->sse = wf_sse_new(on_sse, r, r->max_body);
  if (r->framing == WF_HTTP_NDJSON && !r->nd)
    r->nd = wf_ndjson_new(on_line, r, r->max_body);
  cc = easy_setup(h, r, e, hdrs, &what);
  if (cc != CURLE_OK) { /* a pooled handle kept state: take a fresh one */
    easy_close(e);
    e = wf_xcalloc(1, sizeof *e);
    if ((e->curl = curl_easy_init())) cc = easy_setup(h, r, e, hdrs, &what);
  }
  e->hdrs = hdrs; /* freed with the transfer (easy_clear) */
  if (cc == CURLE_OK) {
    r->easy = e;
    e->lane = ln;
    e->paused = 0;
    e->last = 0;
    ev_init(&e->idle, idle_cb);
    e->idle.data = r;
  }
  if (cc != CURLE_OK || curl_multi_add_handle(ln->multi, e->curl) != CURLM_OK) {
    r->easy = NULL;
    if (e->curl) {
      easy_close(e);
    } else {
      easy_clear(e);
      free(e);
    }
    req_error(r, WF_HTTP_ERR_OTHER,
              cc != CURLE_OK
                  ? xasprintf("request to %s failed: curl refused %s: %s",
                              r->hostport, what ? what : "a new handle",
                              curl_easy_strerror(cc))
                  : xasprintf("request to %s failed: cannot add the transfer",
                              r->hostport));
    return WF_ERR;
  }
  r->state = REQ_RUNNING;
  ln->running++;
  r->host->running++;
  h->running++;
  return WF_OK;
}

/* Start queued requests of ho while it has room. */
static void host_pump(wf_http_t *h, wf_http_host_t *ho) {
  wf_http_req_t *r;
  while (!h->dying && ho->running < h->max_per_host && (r = ho->qhead)) {
    ho->qhead = r->qnext;
    if (!ho->qhead) ho->qtail = NULL;
    r->qnext = NULL;
    h->queued--;
    if (req_activate(h, r) != WF_OK) {
      r->state = REQ_RUNNING; /* req_finish accounts it as running */
      ho->running++;
      h->running++;
      req_finish(r, CURLE_OK);
    }
  }
}

/* Stop r's transfer (running or queued) and give back what it holds; its
 * easy handle goes back to the pool only when the transfer ended cleanly
 * (clean = 1). */
static void req_detach(wf_http_t *h, wf_http_req_t *r, int clean) {
  if (r->state == REQ_RUNNING) {
    if (r->easy) {
      wf_http_lane_t *ln = r->easy->lane;
      ev_timer_stop(h->evl, &r->easy->idle);
      curl_multi_remove_handle(ln->multi, r->easy->curl);
      easy_put(h, r->easy, clean); /* frees its header list */
      r->easy = NULL;
      if (--ln->running == 0 && ln->idx > 0 && !ev_is_active(&h->reap)) {
        ev_timer_set(&h->reap, WF_HTTP_LANE_REAP, 0);
        ev_timer_start(h->evl, &h->reap);
      }
    }
    r->host->running--;
    h->running--;
  } else if (r->state == REQ_QUEUED) {
    queue_unlink(r->host, r);
    h->queued--;
  }
  live_unlink(h, r);
}

/* Map a curl failure to our code and a message naming host and cause. */
static void req_curl_error(wf_http_req_t *r, CURLcode cc, long os_errno,
                           int connected, const char *errbuf) {
  const char *why = errbuf && *errbuf ? errbuf : curl_easy_strerror(cc);
  switch (cc) {
    case CURLE_COULDNT_CONNECT:
      req_error(r, WF_HTTP_ERR_CONNECT,
                xasprintf("connect to %s failed: %s", r->hostport,
                          os_errno ? strerror((int)os_errno) : why));
      break;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      req_error(r, WF_HTTP_ERR_DNS,
                xasprintf("cannot resolve the host name of %s: %s",
                          r->hostport, why));
      break;
    case CURLE_OPERATION_TIMEDOUT:
      /* a connect timeout only when no connection was there (a reused one
       * has no connect time) and the total timeout was not the shorter */
      if (!connected && !(r->timeout > 0 && r->t_left <= r->connect_timeout))
        req_error(r, WF_HTTP_ERR_TIMEOUT,
                  xasprintf("connect to %s timed out after %g s", r->hostport,
                            r->connect_timeout));
      else
        req_error(r, WF_HTTP_ERR_TIMEOUT,
                  xasprintf("request to %s timed out after %g s (timeout)",
                            r->hostport, r->timeout));
      break;
    case CURLE_FILESIZE_EXCEEDED:
      req_error(r, WF_HTTP_ERR_TOO_LARGE,
                xasprintf("response body from %s exceeds max_body (%zu bytes)",
                          r->hostport, r->max_body));
      break;
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_TOO_MANY_REDIRECTS:
    case CURLE_UNSUPPORTED_PROTOCOL:
      req_error(r, WF_HTTP_ERR_PROTOCOL,
                xasprintf("bad response from %s: %s", r->hostport, why));
      break;
    default:
      req_error(r, WF_HTTP_ERR_OTHER,
                xasprintf("request to %s failed: %s", r->hostport, why));
  }
}

/* End r: detach it from curl and the queues, settle its outcome, start the
 * next queued request of its host and queue the owner's notification. */
static void req_finish(wf_http_req_t *r, CURLcode cc) {
  wf_http_t *h = r->h;
  wf_http_host_t *ho = r->host;
  wf_err_t err;
  if (r->state == REQ_DONE) return;
  if (cc == CURLE_COULDNT_CONNECT && r->easy && r->easy->refused)
    req_error(r, WF_HTTP_ERR_POLICY, wf_xstrdup(r->easy->refused));
  if (r->easy && cc != CURLE_OK && r->code == WF_HTTP_ERR_NONE) {
    long os_errno = 0;
    curl_off_t conn_us = 0, pre_us = 0;
    curl_easy_getinfo(r->easy->curl, CURLINFO_OS_ERRNO, &os_errno);
    curl_easy_getinfo(r->easy->curl, CURLINFO_CONNECT_TIME_T, &conn_us);
    curl_easy_getinfo(r->easy->curl, CURLINFO_PRETRANSFER_TIME_T, &pre_us);
    req_curl_error(r, cc, os_errno, conn_us > 0 || pre_us > 0,
                   r->easy->errbuf);
  } else if (cc != CURLE_OK && r->code == WF_HTTP_ERR_NONE) {
    req_curl_error(r, cc, 0, 0, NULL);
  }
  if (r->easy && r->code == WF_HTTP_ERR_NONE) {
    long status = 0;
    curl_easy_getinfo(r->easy->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status) r->status = (int)status;
    if (cc == CURLE_OK && req_redirect(h, r) == WF_OK) return; /* goes on */
  }
  req_detach(h, r, cc == CURLE_OK && r->code == WF_HTTP_ERR_NONE);
  r->state = REQ_DONE;
  if (r->code == WF_HTTP_ERR_NONE) { /* end of a complete body */
    if (r->sse) wf_sse_finish(r->sse);
    if (r->nd && wf_ndjson_finish(r->nd, &err) != WF_OK)
      req_error(r, WF_HTTP_ERR_PROTOCOL,
                xasprintf("bad NDJSON stream from %s: %s", r->hostport,
                          err.msg));
  }
  pending_push(r);
  host_pump(h, ho);
  host_release(h, ho);
}

/* Free everything r owns (r is detached from the client). */
static void req_free(wf_http_req_t *r) {
  hdr_clear(r);
  free(r->hdr);
  free(r->blob);
  free(r->redir);
  free(r->buf);
  wf_sse_free(r->sse);
  wf_ndjson_free(r->nd);
  wf_http_record_free(r->rhead);
  free(r->errmsg);
  wf_netpolicy_unref(r->policy);
  free(r);
}

/* 1 if s is a valid HTTP method token. */
static int method_ok(const char *s) {
  if (!*s) return 0;
  for (; *s; s++)
    if (!strchr("!#$%&'*+-.^_`|~", *s) &&
        !((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
          (*s >= '0' && *s <= '9')))
      return 0;
  return 1;
}

/* Parse and check o->url: http(s) with a host. Fills the host key and
 * "host:port"; with a policy (may be NULL), checks the host and port
 * against it: when it refuses them, WF_ERR with *refused = 1, and the key
 * and "host:port" are filled all the same. */
static int url_check(const char *url, char **key, char **hostport,
                     const wf_netpolicy_t *policy, int *refused,
                     wf_err_t *err) {
  CURLU *u = curl_url();
  char *scheme = NULL, *host = NULL, *port = NULL;
  int rc = WF_ERR;
  CURLUcode uc;
  if (!u) return wf_err_set(err, "out of memory");
  uc = curl_url_set(u, CURLUPART_URL, url, 0);
  if (uc != CURLUE_OK) {
    wf_err_set(err, "bad URL '%.200s': %s", url, curl_url_strerror(uc));
    goto out;
  }
  curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
  if (!scheme || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
    wf_err_set(err, "bad URL '%.200s': scheme must be http or https", url);
    goto out;
  }
  if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host) {
    wf_err_set(err, "bad URL '%.200s': no host", url);
    goto out;
  }
  curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
  *hostport = xasprintf("%s:%s", host, port ? port : "?");
  *key = xasprintf("%s://%s", scheme, *hostport);
  rc = WF_OK;
  if (policy && wf_netpolicy_check_host(policy, host, port ? atoi(port) : 0,
                                        err) != WF_OK) {
    *refused = 1;
    rc = WF_ERR;
  }
out:
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
  return rc;
}

/* Link r into the live list, then start its transfer if its host has room,
 * else queue it. WF_ERR (r's error set, r still live) when it cannot
 * start. */
static int req_admit(wf_http_t *h, wf_http_req_t *r) {
  r->prev = NULL;
  r->next = h->live;
  if (h->live) h->live->prev = r;
  h->live = r;
  if (r->host->running < h->max_per_host && !r->host->qhead)
    return req_activate(h, r);
  r->state = REQ_QUEUED;
  if (r->host->qtail)
    r->host->qtail->qnext = r;
  else
    r->host->qhead = r;
  r->host->qtail = r;
  h->queued++;
  return WF_OK;
}

/* Follow the redirect that r's transfer (finished, cleanly) answered, if
 * it is one: its target is checked (http or https, the redirect limit,
 * another origin refused or stripped of the secret headers), then r starts
 * again on it through the new host's queue, and WF_OK is returned. WF_ERR
 * when r is finished after all: no redirect (the 3xx reply is the
 * response), or a refused one (r's error is set). */
static int req_redirect(wf_http_t *h, wf_http_req_t *r) {
  wf_http_host_t *old = r->host;
  char *loc = NULL, *key = NULL, *hostport = NULL;
  int st = r->status, rc, refused = 0;
  wf_err_t err;
  if (r->max_redirects < 0) return WF_ERR;
  if (st != 301 && st != 302 && st != 303 && st != 307 && st != 308)
    return WF_ERR;
  if (curl_easy_getinfo(r->easy->curl, CURLINFO_REDIRECT_URL, &loc) !=
          CURLE_OK || !loc)
    return WF_ERR; /* a 3xx without a Location is a response */
  if (r->nredirects >= r->max_redirects) {
    req_error(r, WF_HTTP_ERR_PROTOCOL,
              xasprintf("too many redirects: %s redirects again after %d "
                        "(max_redirects)", r->hostport, r->nredirects));
    return WF_ERR;
  }
  if (url_check(loc, &key, &hostport, r->policy, &refused, &err) != WF_OK) {
    req_error(r, refused ? WF_HTTP_ERR_POLICY : WF_HTTP_ERR_PROTOCOL,
              xasprintf("redirect from %s refused: %s", r->hostport, err.msg));
    free(key);
    free(hostport);
    return WF_ERR;
  }
  if (strcmp(key, r->origin) != 0) {
    if (r->xo_refuse) {
      req_error(r, WF_HTTP_ERR_PROTOCOL,
                xasprintf("redirect from %s to %s refused: this request does "
                          "not follow redirects to another origin (%s)",
                          r->hostport, hostport, key));
      free(key);
      free(hostport);
      return WF_ERR;
    }
    r->left_origin = 1; /* for good: the secret headers stay behind */
  }
  { /* curl's copy of loc goes with the handle: one block, URL then
     * host:port, replaces the last hop's */
    size_t ul = strlen(loc), hl = strlen(hostport);
    char *redir = wf_xmalloc(ul + hl + 2);
    memcpy(redir, loc, ul + 1);
    memcpy(redir + ul + 1, hostport, hl + 1);
    free(hostport);
    req_detach(h, r, 1); /* the hop's refusal goes with its handle */
    r->nredirects++;
    free(r->redir);
    r->redir = redir;
    r->url = redir;
    r->hostport = redir + ul + 1;
  }
  /* 303, and 301/302 after a POST, go on as a GET without the body (what
   * browsers and curl do); 307 and 308 repeat the request as it was */
  if ((st == 303 && strcmp(r->method, "HEAD") != 0) ||
      ((st == 301 || st == 302) && strcmp(r->method, "POST") == 0)) {
    r->method = "GET";
    r->body = NULL;
    r->body_len = 0;
  }
  hdr_clear(r); /* a new response */
  r->hdr_done = 0;
  r->status = 0;
  r->nbuf = 0;
  r->mode = r->framing;
  r->host = host_get(h, key);
  free(key);
  rc = req_admit(h, r);
  /* r may have queued behind others while its slot is free: pump */
  if (rc == WF_OK) host_pump(h, r->host);
  if (old != r->host) {
    host_pump(h, old);
    host_release(h, old);
  }
  if (rc != WF_OK) { /* accounted as running for req_finish */
    r->state = REQ_RUNNING;
    r->host->running++;
    h->running++;
    req_finish(r, CURLE_OK);
  }
  return WF_OK;
}

int wf_http_header_secret(const char *line, const char *const *extra) {
  size_t n = strcspn(line, ":");
  const char *const *lists[2] = {wf_http_secret_headers, extra};
  for (int l = 0; l < 2; l++)
    for (const char *const *p = lists[l]; p && *p; p++)
      if (strlen(*p) == n && strncasecmp(*p, line, n) == 0) return 1;
  return 0;
}

wf_http_req_t *wf_http_start(wf_http_t *h, const wf_http_opts_t *o,
                             wf_http_notify_fn notify, void *ud,
                             wf_err_t *err) {
  wf_http_req_t *r;
  char *key = NULL, *hostport = NULL;
  const char *method = o->method ? o->method : "GET";
  const char *const *hp;
  int has_expect = 0, refused = 0;
  wf_err_t perr;
  size_t ul, ml, hl, kl, hdrlen = 1;
  char *p;
  if (h->dying) {
    wf_err_set(err, "the HTTP client is closing");
    return NULL;
  }
  if (!o->url) {
    wf_err_set(err, "no URL");
    return NULL;
  }
  if (!method_ok(method)) {
    wf_err_set(err, "bad HTTP method '%.100s'", method);
    return NULL;
  }
  if (o->cross_origin != WF_HTTP_XO_STRIP &&
      o->cross_origin != WF_HTTP_XO_REFUSE) {
    wf_err_set(err, "bad cross_origin mode %d", (int)o->cross_origin);
    return NULL;
  }
  if (!(o->connect_timeout >= 0) || !(o->timeout >= 0) ||
      !(o->idle_timeout >= 0) || isinf(o->connect_timeout) ||
      o->connect_timeout > 1e6 || o->timeout > 1e6 || o->idle_timeout > 1e6) {
    wf_err_set(err, "timeouts must be numbers of seconds between 0 and 1e6");
    return NULL;
  }
  for (hp = o->headers; hp && *hp; hp++) {
    const char *colon = strchr(*hp, ':');
    if (!colon || colon == *hp || strpbrk(*hp, "\r\n")) {
      wf_err_set(err, "bad request header '%.100s' (expected \"Name: value\" "
                 "on one line)", *hp);
      return NULL;
    }
    if (strncasecmp(*hp, "expect:", 7) == 0) has_expect = 1;
    hdrlen += strlen(*hp) + 2; /* flag byte, line, NUL */
  }
  /* refused by the policy: a request that fails at once (below) */
  if (url_check(o->url, &key, &hostport, o->policy, &refused, &perr) != WF_OK &&
      !refused) {
    *err = perr;
    return NULL;
  }

  r = wf_xcalloc(1, sizeof *r);
  r->h = h;
  r->notify = notify;
  r->ud = ud;
  ul = strlen(o->url) + 1;
  ml = strlen(method) + 1;
  hl = strlen(hostport) + 1;
  kl = strlen(key) + 1;
  p = r->blob = wf_xmalloc(ul + ml + hl + kl + hdrlen +
                           (o->body && !o->body_borrowed ? o->body_len + 1 : 0));
  r->url = memcpy(p, o->url, ul);
  r->method = memcpy(p += ul, method, ml);
  r->hostport = memcpy(p += ml, hostport, hl);
  r->origin = memcpy(p += hl, key, kl);
  r->hdrtext = p += kl;
  for (hp = o->headers; hp && *hp; hp++) {
    size_t n = strlen(*hp) + 1;
    *p++ = wf_http_header_secret(*hp, o->secret_headers) ? 's' : '-';
    memcpy(p, *hp, n);
    p += n;
  }
  *p++ = 0;
  if (o->body && o->body_borrowed) {
    r->body = o->body;
    r->body_len = o->body_len;
  } else if (o->body) {
    r->body = memcpy(p, o->body, o->body_len);
    p[o->body_len] = 0;
    r->body_len = o->body_len;
  }
  free(hostport);
  r->has_expect = has_expect;
  r->max_redirects = o->max_redirects == 0 ? WF_HTTP_MAX_REDIRECTS
                     : o->max_redirects < 0 ? -1
                     : o->max_redirects > 30000 ? 30000 /* fits a short */
                                               : (short)o->max_redirects;
  r->xo_refuse = o->cross_origin == WF_HTTP_XO_REFUSE;
  r->connect_timeout = o->connect_timeout > 0 ? o->connect_timeout : 10;
  r->timeout = o->timeout;
  r->idle_timeout = o->idle_timeout;
  r->framing = r->mode = (unsigned char)o->framing;
  r->max_body = o->max_body ? o->max_body : WF_HTTP_MAX_BODY;
  r->policy = wf_netpolicy_ref(o->policy);
  r->host = host_get(h, key);
  free(key);
  if (refused) { /* done at once, accounted as running for req_finish */
    req_error(r, WF_HTTP_ERR_POLICY, wf_xstrdup(perr.msg));
    r->prev = NULL;
    r->next = h->live;
    if (h->live) h->live->prev = r;
    h->live = r;
    r->state = REQ_RUNNING;
    r->host->running++;
    h->running++;
    req_finish(r, CURLE_OK);
    return r;
  }

  if (req_admit(h, r) != WF_OK) {
    wf_err_set(err, "%s", r->errmsg);
    live_unlink(h, r);
    host_release(h, r->host);
    req_free(r);
    return NULL;
  }
  return r;
}

void wf_http_cancel(wf_http_req_t *r) {
  wf_http_t *h;
  wf_http_host_t *ho;
  if (!r) return;
  h = r->h;
  if (r->state != REQ_DONE) {
    ho = r->host;
    req_detach(h, r, 0);
    r->state = REQ_DONE;
    host_pump(h, ho);
    host_release(h, ho);
  }
  if (r->pending) pending_unlink(r);
  req_free(r);
}

void wf_http_free_req(wf_http_req_t *r) { wf_http_cancel(r); }

int wf_http_done(const wf_http_req_t *r) { return r->state == REQ_DONE; }

wf_http_record_t *wf_http_take(wf_http_req_t *r) {
  wf_http_record_t *rec = r->rhead;
  r->rhead = r->rtail = NULL;
  r->rbytes = 0;
  if (r->state == REQ_RUNNING && r->easy && r->easy->paused) {
    /* resume reading; curl may deliver its held data right here, which
     * only appends records and queues a notification */
    wf_http_t *h = r->h;
    wf_http_easy_t *e = r->easy;
    e->paused = 0;
    if (r->idle_timeout > 0) {
      e->last = ev_now(h->evl);
      ev_timer_set(&e->idle, r->idle_timeout, 0);
      ev_timer_start(h->evl, &e->idle);
    }
    curl_easy_pause(r->easy->curl, CURLPAUSE_CONT);
  }
  return rec;
}

int wf_http_has_records(const wf_http_req_t *r) { return r->rhead != NULL; }

int wf_http_status(const wf_http_req_t *r) { return r->status; }

const char *const *wf_http_headers(const wf_http_req_t *r) {
  static const char *const none[] = {NULL};
  return r->hdr ? (const char *const *)r->hdr : none;
}

const char *wf_http_body(const wf_http_req_t *r, size_t *len) {
  if (len) *len = r->nbuf;
  if (r->mode != WF_HTTP_BUFFER) return NULL;
  return r->buf ? r->buf : "";
}

const char *wf_http_host(const wf_http_req_t *r) { return r->hostport; }

wf_http_errcode_t wf_http_error(const wf_http_req_t *r, const char **msg) {
  if (msg) *msg = r->errmsg;
  return r->code;
}

const char *wf_http_errcode_name(wf_http_errcode_t c) {
  switch (c) {
    case WF_HTTP_ERR_NONE: return "none";
    case WF_HTTP_ERR_CONNECT: return "connect";
    case WF_HTTP_ERR_DNS: return "dns";
    case WF_HTTP_ERR_TIMEOUT: return "timeout";
    case WF_HTTP_ERR_IDLE: return "idle_timeout";
    case WF_HTTP_ERR_PROTOCOL: return "protocol";
    case WF_HTTP_ERR_TOO_LARGE: return "too_large";
    case WF_HTTP_ERR_CANCELLED: return "cancelled";
    case WF_HTTP_ERR_POLICY: return "policy";
    default: return "error";
  }
}

int wf_http_running(const wf_http_t *h) { return h->running; }

int wf_http_queued(const wf_http_t *h) { return h->queued; }

/* ---- the client -------------------------------------------------------- */

wf_http_t *wf_http_new(wf_loop_t *l, int max_per_host) {
  wf_http_t *h;
  if (!curl_inited) { /* once per process; never cleaned up */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return NULL;
    curl_inited = 1;
  }
  h = wf_xcalloc(1, sizeof *h);
  h->evl = wf_loop_ev(l);
  h->max_per_host = max_per_host > 0 ? max_per_host : WF_HTTP_MAX_PER_HOST;
  h->share = curl_share_init();
  if (!h->share) goto err;
  curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  ev_timer_init(&h->kick, kick_cb, 0, 0);
  h->kick.data = h;
  ev_init(&h->reap, reap_cb);
  h->reap.data = h;
  if (!lane_pick(h)) goto err;
  return h;
err:
  if (h->share) curl_share_cleanup(h->share);
  free(h->lanes);
  free(h);
  return NULL;
}

void wf_http_set_max_per_host(wf_http_t *h, int max_per_host) {
  h->max_per_host = max_per_host > 0 ? max_per_host : WF_HTTP_MAX_PER_HOST;
  for (int b = 0; b < WF_HTTP_HOST_BUCKETS; b++) {
    wf_http_host_t *ho = h->hosts[b];
    while (ho) {
      wf_http_host_t *next = ho->next;
      host_pump(h, ho);
      ho = next;
    }
  }
}

/* Release the client's resources (no request is live any more). */
static void teardown(wf_http_t *h) {
  wf_http_easy_t *e;
  ev_timer_stop(h->evl, &h->kick);
  ev_timer_stop(h->evl, &h->reap);
  while ((e = h->pool)) {
    h->pool = e->next;
    curl_easy_cleanup(e->curl);
    free(e);
  }
  for (size_t i = 0; i < h->nlanes; i++)
    if (h->lanes[i]) lane_free(h, h->lanes[i]);
  free(h->lanes);
  curl_share_cleanup(h->share); /* after every handle using it is gone */
  while (h->socks) sock_free(h, h->socks);
  for (int b = 0; b < WF_HTTP_HOST_BUCKETS; b++)
    while (h->hosts[b]) {
      wf_http_host_t *ho = h->hosts[b];
      h->hosts[b] = ho->next;
      free(ho->key);
      free(ho);
    }
  free(h);
}

void wf_http_free(wf_http_t *h) {
  wf_http_req_t *r;
  if (!h || h->dying) return;
  h->dying = 1;
  enter(h);
  while ((r = h->live)) {
    req_error(r, WF_HTTP_ERR_CANCELLED,
              xasprintf("request to %s cancelled: the HTTP client was closed",
                        r->hostport));
    req_finish(r, CURLE_OK);
  }
  leave(h); /* notifies the owners; tears down unless nested */
}
