/* http.h — asynchronous HTTP client: libcurl multi driven by libev (socket
 * and timer callbacks, no polling, no threads). Requests are queued per host
 * beyond a concurrency limit; connections are reused; timeouts for connect,
 * total and idle-between-chunks; streamed bodies are split into records in
 * C (raw chunks, SSE events or NDJSON lines) and queued on the request for
 * its owner to take. Redirects are followed here, not by libcurl, so that
 * credentials never follow a redirect to another origin (see
 * wf_http_opts_t.cross_origin). Callbacks never run Lua: they only tell
 * the owner that the request has something new (the owner defers its own
 * work).
 * A network policy (netpolicy.h), when given, is checked on the URL of
 * every hop and on the address of every connection.
 * Depends on libcurl, loop.h, sse.h, netpolicy.h. */
#ifndef WF_HTTP_H
#define WF_HTTP_H

#include "loop.h"
#include "netpolicy.h"
#include "sse.h"

typedef struct wf_http wf_http_t;
typedef struct wf_http_req wf_http_req_t;

typedef enum {
  WF_HTTP_BUFFER = 0, /* keep the whole body, no records */
  WF_HTTP_RAW,        /* records = body chunks as received */
  WF_HTTP_SSE,        /* records = server-sent events */
  WF_HTTP_NDJSON      /* records = lines */
} wf_http_framing_t;

/* What a redirect to another origin (scheme://host:port: another host, or
 * the same host on another port or scheme) does. */
typedef enum {
  WF_HTTP_XO_STRIP = 0, /* follow it without the secret headers */
  WF_HTTP_XO_REFUSE     /* fail with WF_HTTP_ERR_PROTOCOL naming both */
} wf_http_cross_origin_t;

/* Header names that always count as secret (credentials), lower-case,
 * NULL-terminated: authorization, cookie, proxy-authorization, x-api-key,
 * x-goog-api-key, api-key. */
extern const char *const wf_http_secret_headers[];

typedef struct wf_http_opts {
  const char *method;           /* "GET", "POST", ... (NULL: GET) */
  const char *url;
  const char *const *headers;   /* "Name: value" strings, NULL-terminated */
  const char *body;             /* copied, unless body_borrowed */
  size_t body_len;
  int body_borrowed;            /* 1: body is not copied; the caller keeps
                                   it alive and unchanged until the request
                                   is freed (a large prompt is then not
                                   held twice) */
  double connect_timeout;       /* seconds, 0: 10 */
  double timeout;               /* total seconds, 0: none */
  double idle_timeout;          /* max seconds without a byte from the server
                                   once the request is sent (waiting for the
                                   headers, between body bytes), 0: none */
  wf_http_framing_t framing;
  size_t max_body;              /* cap on a buffered body, 0: 64 MiB */
  int max_redirects;            /* redirects followed, 0: 10, < 0: none (a
                                   3xx reply is then the response); at
                                   most 30000 */
  wf_http_cross_origin_t cross_origin;
  const char *const *secret_headers; /* more secret header names (any
                                   case), NULL-terminated; may be NULL */
  wf_netpolicy_t *policy;       /* may be NULL; the request keeps a
                                   reference: the host and port of every
                                   URL (redirects too) and the address of
                                   every connection (new or reused) are
                                   checked, a refusal failing the request
                                   with WF_HTTP_ERR_POLICY */
} wf_http_opts_t;

/* A record taken from a streaming request. For SSE the event fields are
 * copied into the record; for RAW/NDJSON only data is set. Owned by the
 * caller after wf_http_take: free with wf_http_record_free. Each record is
 * one allocation (data, event and id point inside it); data is
 * NUL-terminated. */
typedef struct wf_http_record {
  char *data;
  size_t len;
  char *event; /* SSE only */
  char *id;    /* SSE only */
  long retry;  /* SSE only, -1 if absent */
  struct wf_http_record *next;
} wf_http_record_t;

typedef enum {
  WF_HTTP_ERR_NONE = 0,
  WF_HTTP_ERR_CONNECT,  /* refused, unreachable */
  WF_HTTP_ERR_DNS,
  WF_HTTP_ERR_TIMEOUT,  /* total or connect */
  WF_HTTP_ERR_IDLE,     /* idle timeout between chunks */
  WF_HTTP_ERR_PROTOCOL, /* malformed response, stream cut, framing error */
  WF_HTTP_ERR_TOO_LARGE,
  WF_HTTP_ERR_CANCELLED,
  WF_HTTP_ERR_OTHER,
  WF_HTTP_ERR_POLICY    /* refused by the network policy */
} wf_http_errcode_t;

/* Owner notification: the request has new records, or has finished. Called
 * from libev callbacks, never from inside a libcurl callback: the owner may
 * take records, cancel or free this or any other request, start requests,
 * even free the client; it must not run Lua (defer instead). */
typedef void (*wf_http_notify_fn)(void *ud, wf_http_req_t *req);

/* Client on loop l; max_per_host limits concurrent transfers per host
 * (0: 64), the rest wait in a FIFO queue. */
wf_http_t *wf_http_new(wf_loop_t *l, int max_per_host);
/* Cancel every request (notifying owners: each ends with
 * WF_HTTP_ERR_CANCELLED and stays valid until wf_http_free_req, which then
 * no longer needs the client) and free. NULL is a no-op. May be called from
 * a notification; the client is then released when the callback returns. */
void wf_http_free(wf_http_t *h);
/* Change the per-host limit (0: 64); raising it starts queued requests. */
void wf_http_set_max_per_host(wf_http_t *h, int max_per_host);
/* Start (or queue) a request. notify(ud, req) fires when records arrive and
 * once when done. NULL with err on bad options (bad URL scheme, ...). A
 * URL the network policy refuses gives a request that is already done
 * with WF_HTTP_ERR_POLICY (notified as any failure). */
wf_http_req_t *wf_http_start(wf_http_t *h, const wf_http_opts_t *o,
                             wf_http_notify_fn notify, void *ud,
                             wf_err_t *err);
/* Abort a request; no notification follows. Frees it (a finished request
 * too). NULL is a no-op. */
void wf_http_cancel(wf_http_req_t *r);
/* Free a finished request (an unfinished one is cancelled). NULL: no-op. */
void wf_http_free_req(wf_http_req_t *r);
/* 1 once the transfer ended (success or error). */
int wf_http_done(const wf_http_req_t *r);
/* Take the queued records (a list in arrival order, or NULL). A streaming
 * transfer pauses while more than 4 MiB of records wait to be taken, and
 * resumes when they are taken. */
wf_http_record_t *wf_http_take(wf_http_req_t *r);
/* 1 when records wait to be taken. */
int wf_http_has_records(const wf_http_req_t *r);
/* Free rec and every record after it in its list. NULL is a no-op. */
void wf_http_record_free(wf_http_record_t *rec);
/* "host:port" of the request's URL, after redirects (for messages). */
const char *wf_http_host(const wf_http_req_t *r);
/* Response status (0 before headers arrive). */
int wf_http_status(const wf_http_req_t *r);
/* Response headers as "Name: value" lines of the final response, in order
 * (NULL-terminated array owned by the request). */
const char *const *wf_http_headers(const wf_http_req_t *r);
/* The buffered body: that of a BUFFER request, or of a streaming request
 * whose final response was not 2xx (such a body is buffered, up to
 * max_body, instead of being framed into records). NULL when the body was
 * streamed. */
const char *wf_http_body(const wf_http_req_t *r, size_t *len);
/* 1 if the header line "Name: value" (or a bare name) is secret: its name
 * is in wf_http_secret_headers or in extra (NULL-terminated, any case;
 * may be NULL). */
int wf_http_header_secret(const char *line, const char *const *extra);
/* Error of a failed transfer: code and message ("connect to 127.0.0.1:9
 * failed: Connection refused"). WF_HTTP_ERR_NONE on success. */
wf_http_errcode_t wf_http_error(const wf_http_req_t *r, const char **msg);
/* Name of an error code: "connect", "dns", "timeout", "idle_timeout",
 * "protocol", "too_large", "cancelled", "error", "policy". */
const char *wf_http_errcode_name(wf_http_errcode_t c);
/* Requests running / waiting in the per-host queues (for tests). */
int wf_http_running(const wf_http_t *h);
int wf_http_queued(const wf_http_t *h);

#endif
