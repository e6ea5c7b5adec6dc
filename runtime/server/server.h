/* server.h — the HTTP/1.1 server core behind weft.server: libmicrohttpd
 * (MHD) in external-polling epoll mode, driven by a libev loop (an ev_io on
 * MHD's epoll descriptor, an ev_timer from MHD_get_timeout; no threads).
 * Each complete request (headers + body, capped) is handed to the owner
 * through wf_server_next while its connection stays suspended; the owner
 * answers with a complete response or a stream of chunks (a callback
 * response that suspends the connection while its queue is empty).
 * Limits: connection cap (503), header bytes (431), body bytes (413; a
 * chunked body is not read past the cap), header/body deadlines (408,
 * enforced here: MHD only has an idle timeout). An idle stream's socket is
 * watched, so a client that leaves is released at once. weft accepts the
 * connections and checks each request head before MHD reads it (framing
 * headers MHD mishandles get one clean 400; see docs/server.md). After an
 * error answer the connection closes gracefully: the write side is shut
 * and the client's input dropped (at most 2 s or 64 KiB, on the loop)
 * before the socket is closed, so that no reset destroys the answer.
 * Depends on libev, libmicrohttpd, common.h. Never includes lua.h. */
#ifndef WF_SERVER_H
#define WF_SERVER_H

#include <ev.h>
#include <stddef.h>

#include "common.h"

typedef struct wf_server wf_server_t;
typedef struct wf_server_req wf_server_req_t;

typedef struct wf_server_opts {
  const char *host;           /* numeric address or name; "*": any */
  int port;                   /* 0: any free port (see wf_server_port) */
  unsigned max_connections;   /* more get a 503 and are closed */
  size_t max_header_bytes;    /* sum of name + value + 4 per header: 431 */
  size_t max_body_bytes;      /* 413 */
  double header_timeout;      /* connect (or previous response) -> headers */
  double body_timeout;        /* headers -> complete body */
  double idle_timeout;        /* MHD's inactivity timeout (whole seconds) */
} wf_server_opts_t;

/* Something changed for the owner: a request is ready, the number of
 * requests in flight dropped, or the server stopped. Called from the loop
 * (inside MHD_run or wf_server_free): it must not call back into s. */
typedef void (*wf_server_notify_fn)(void *ud);
/* r's queued stream bytes were taken, or r was closed (client gone,
 * server stopped). Same restrictions as wf_server_notify_fn. */
typedef void (*wf_server_req_notify_fn)(void *ud, wf_server_req_t *r);

/* Fill o with the defaults of docs/server.md. */
void wf_server_opts_default(wf_server_opts_t *o);
/* Listen and serve on evl; notify(ud) reports changes. NULL + err on
 * failure (bad address, port taken, MHD refused the options). */
wf_server_t *wf_server_new(struct ev_loop *evl, const wf_server_opts_t *o,
                           wf_server_notify_fn notify, void *ud,
                           wf_err_t *err);
/* Stop the daemon (suspended connections are resumed and closed first) and
 * free s. Requests still held by the owner become closed (their notify is
 * called) and stay valid until released. NULL is a no-op. */
void wf_server_free(wf_server_t *s);
/* The bound port. */
int wf_server_port(const wf_server_t *s);
/* Stop accepting connections (the listening socket is closed); requests
 * on open connections are still served, with "Connection: close".
 * Idempotent. */
void wf_server_close(wf_server_t *s);
/* Nonzero once wf_server_close was called. */
int wf_server_is_closed(const wf_server_t *s);
/* The next ready request, or NULL. The caller owns it until
 * wf_server_req_release and must answer it. */
wf_server_req_t *wf_server_next(wf_server_t *s);
/* Requests received and not yet completed (handed out or waiting). */
unsigned wf_server_inflight(const wf_server_t *s);
/* Open connections. */
unsigned wf_server_connections(const wf_server_t *s);

/* Request accessors (valid until release, even after close). */
const char *wf_server_req_method(const wf_server_req_t *r);
/* The raw path as sent (not percent-decoded: MHD's decoded copy is cut at
 * an encoded NUL), without the query. */
const char *wf_server_req_path(const wf_server_req_t *r);
/* The raw query (after '?', not decoded), "" when none. */
const char *wf_server_req_query(const wf_server_req_t *r);
const char *wf_server_req_version(const wf_server_req_t *r);
const char *wf_server_req_body(const wf_server_req_t *r, size_t *len);
size_t wf_server_req_nheaders(const wf_server_req_t *r);
/* Header i: name lower-cased. */
void wf_server_req_header(const wf_server_req_t *r, size_t i,
                          const char **name, const char **value);
/* Set r's notify callback (NULL: none). */
void wf_server_req_set_notify(wf_server_req_t *r, wf_server_req_notify_fn fn,
                              void *ud);
/* Answer r with a complete response; hdrs holds nh (name, value) pairs.
 * The body is copied. WF_ERR: "closed", "response already sent", bad
 * header. */
int wf_server_req_respond(wf_server_req_t *r, int status,
                          const char *const *hdrs, size_t nh,
                          const char *body, size_t len, wf_err_t *err);
/* Start a streamed (chunked) response; then write/end. */
int wf_server_req_stream(wf_server_req_t *r, int status,
                         const char *const *hdrs, size_t nh, wf_err_t *err);
/* Queue len bytes (copied) on r's stream. WF_ERR "closed" when the client
 * left or the server stopped. */
int wf_server_req_write(wf_server_req_t *r, const char *data, size_t len,
                        wf_err_t *err);
/* Bytes written and not yet taken by MHD. */
size_t wf_server_req_pending(const wf_server_req_t *r);
/* End r's stream (the terminating chunk follows the queued data). */
int wf_server_req_end(wf_server_req_t *r, wf_err_t *err);
/* Nonzero once r's connection is gone (completed, client left, stopped). */
int wf_server_req_closed(const wf_server_req_t *r);
/* The owner drops r. An unanswered request gets a 500; an unended stream
 * is ended. Frees r once MHD is done with it. NULL is a no-op. */
void wf_server_req_release(wf_server_req_t *r);

#endif
