/* sse.h — incremental parsers for streamed HTTP bodies: server-sent events
 * (the WHATWG event-stream format: fields event/data/id/retry, multi-line
 * data joined with "\n", comments, CR/LF/CRLF line ends, events split across
 * chunks at any byte) and NDJSON (one JSON text per line, blank lines
 * skipped). Pure C, no I/O: feed bytes, collect records through a callback.
 * Depends on common.h only. */
#ifndef WF_SSE_H
#define WF_SSE_H

#include "common.h"

/* One dispatched server-sent event. Strings are NUL-terminated and valid
 * only during the callback; event is "message" when the stream named none;
 * id is the last event id seen (may be ""); retry is -1 unless this event's
 * block carried a valid retry field (milliseconds). */
typedef struct wf_sse_event {
  const char *event;
  const char *data;
  size_t data_len;
  const char *id;
  long retry;
} wf_sse_event_t;

typedef struct wf_sse wf_sse_t;
/* Called for each complete event; return nonzero to stop parsing (the
 * current feed returns WF_ERR with "stopped by callback"). */
typedef int (*wf_sse_cb)(void *ud, const wf_sse_event_t *ev);

/* New parser; max_event caps one event's buffered size (0: 16 MiB). */
wf_sse_t *wf_sse_new(wf_sse_cb cb, void *ud, size_t max_event);
void wf_sse_free(wf_sse_t *p);
/* Feed n bytes. WF_ERR when an event exceeds the cap or cb stopped. */
int wf_sse_feed(wf_sse_t *p, const char *buf, size_t n, wf_err_t *err);
/* End of stream: an unterminated final block is discarded, per the spec
 * (returns 1 if data was discarded, 0 otherwise). */
int wf_sse_finish(wf_sse_t *p);

typedef struct wf_ndjson wf_ndjson_t;
/* Called for each non-blank line (without its line end). */
typedef int (*wf_ndjson_cb)(void *ud, const char *line, size_t n);
wf_ndjson_t *wf_ndjson_new(wf_ndjson_cb cb, void *ud, size_t max_line);
void wf_ndjson_free(wf_ndjson_t *p);
int wf_ndjson_feed(wf_ndjson_t *p, const char *buf, size_t n, wf_err_t *err);
/* End of stream: a final line without newline is delivered. */
int wf_ndjson_finish(wf_ndjson_t *p, wf_err_t *err);

#endif
