/* sse.c — incremental parsers for streamed HTTP bodies: server-sent events
 * (WHATWG "event stream interpretation": leading BOM, CR/LF/CRLF line ends
 * including a CR and its LF split across feeds, fields event/data/id/retry,
 * comments, dispatch on a blank line) and NDJSON lines. Lines complete inside
 * one feed are parsed in place; only a line split across feeds is copied.
 * Depends on common.h (sse.h). */
#include "sse.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define WF_SSE_DEFAULT_MAX ((size_t)16 << 20)

/* A growable byte buffer, always NUL-terminated once allocated. */
typedef struct sbuf {
  char *p;
  size_t n, cap;
} sbuf_t;

/* Append n bytes of s to b (keeps a NUL after the content). */
static void sbuf_add(sbuf_t *b, const char *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t c = b->cap ? b->cap : 64;
    while (c < b->n + n + 1) c *= 2;
    b->p = wf_xrealloc(b->p, c);
    b->cap = c;
  }
  if (n) memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}

/* Replace b's content with n bytes of s. */
static void sbuf_set(sbuf_t *b, const char *s, size_t n) {
  b->n = 0;
  sbuf_add(b, s, n);
}

/* Release b's memory. */
static void sbuf_free(sbuf_t *b) {
  free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
}

/* Line-end search state of one feed: the next CR and LF at or after the
 * cursor, each found once per feed (NULL: not searched yet; end: none). */
typedef struct eol_scan {
  const char *cr, *lf, *end;
} eol_scan_t;

/* First CR or LF at or after s, or NULL. With lf_only, CR is not an end. */
static const char *eol_next(eol_scan_t *e, const char *s, int lf_only) {
  if (!e->lf || e->lf < s) {
    e->lf = memchr(s, '\n', (size_t)(e->end - s));
    if (!e->lf) e->lf = e->end;
  }
  if (!lf_only && (!e->cr || e->cr < s)) {
    e->cr = memchr(s, '\r', (size_t)(e->end - s));
    if (!e->cr) e->cr = e->end;
  }
  const char *x = (lf_only || e->lf < e->cr) ? e->lf : e->cr;
  return x == e->end ? NULL : x;
}

/* ---- server-sent events ------------------------------------------------ */

struct wf_sse {
  wf_sse_cb cb;
  void *ud;
  size_t max;
  sbuf_t line;  /* a line split across feeds */
  sbuf_t data;  /* data buffer: each data line plus "\n" */
  sbuf_t event; /* event type buffer */
  sbuf_t id;    /* last event id: persists across events */
  long retry;   /* retry of the block being read, -1 if none */
  int skip_lf;  /* the last byte fed was a CR: skip one LF */
  int first;    /* no line completed yet: a BOM may lead it */
  int stopped;  /* the callback stopped the parser, or a cap was hit */
};

/* New SSE parser calling cb for each event; max_event 0 means 16 MiB. */
wf_sse_t *wf_sse_new(wf_sse_cb cb, void *ud, size_t max_event) {
  wf_sse_t *p = wf_xcalloc(1, sizeof *p);
  p->cb = cb;
  p->ud = ud;
  p->max = max_event ? max_event : WF_SSE_DEFAULT_MAX;
  p->retry = -1;
  p->first = 1;
  sbuf_set(&p->id, "", 0);
  return p;
}

/* Free the parser and its buffers. NULL is a no-op. */
void wf_sse_free(wf_sse_t *p) {
  if (!p) return;
  sbuf_free(&p->line);
  sbuf_free(&p->data);
  sbuf_free(&p->event);
  sbuf_free(&p->id);
  free(p);
}

/* Fail the parser for good with a message in err. */
static int sse_fail(wf_sse_t *p, wf_err_t *err, const char *what) {
  p->stopped = 1;
  return wf_err_set(err, "%s", what);
}

/* Blank line: dispatch the event being built, if it has data. */
static int sse_dispatch(wf_sse_t *p, wf_err_t *err) {
  wf_sse_event_t ev;
  long retry = p->retry;
  p->retry = -1;
  if (p->data.n == 0) { /* no data field: nothing to dispatch */
    p->event.n = 0;
    return WF_OK;
  }
  p->data.p[--p->data.n] = 0; /* drop the last "\n" */
  ev.event = p->event.n ? p->event.p : "message";
  ev.data = p->data.p;
  ev.data_len = p->data.n;
  ev.id = p->id.p;
  ev.retry = retry;
  int stop = p->cb(p->ud, &ev);
  p->data.n = 0;
  p->event.n = 0;
  return stop ? sse_fail(p, err, "stopped by callback") : WF_OK;
}

/* "retry" value: only ASCII digits (at least one); clamped to LONG_MAX. */
static long sse_retry(const char *v, size_t n) {
  long r = 0;
  if (n == 0) return -1;
  for (size_t i = 0; i < n; i++) {
    if (v[i] < '0' || v[i] > '9') return -1;
    int d = v[i] - '0';
    r = (r > (LONG_MAX - d) / 10) ? LONG_MAX : r * 10 + d;
  }
  return r;
}

/* Process one complete line (without its line end). */
static int sse_line(wf_sse_t *p, const char *s, size_t n, wf_err_t *err) {
  const char *colon, *v;
  size_t fl, vl;
  if (p->first) {
    p->first = 0;
    if (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
      s += 3;
      n -= 3;
    }
  }
  if (n == 0) return sse_dispatch(p, err);
  if (s[0] == ':') return WF_OK; /* comment */
  colon = memchr(s, ':', n);
  if (colon) {
    fl = (size_t)(colon - s);
    v = colon + 1;
    vl = n - fl - 1;
    if (vl && *v == ' ') {
      v++;
      vl--;
    }
  } else { /* a field name alone: empty value */
    fl = n;
    v = "";
    vl = 0;
  }
  if (fl == 4 && memcmp(s, "data", 4) == 0) {
    if (p->data.n + vl + 1 > p->max)
      return sse_fail(p, err, "server-sent event exceeds the size limit");
    sbuf_add(&p->data, v, vl);
    sbuf_add(&p->data, "\n", 1);
  } else if (fl == 5 && memcmp(s, "event", 5) == 0) {
    sbuf_set(&p->event, v, vl);
  } else if (fl == 2 && memcmp(s, "id", 2) == 0) {
    if (!memchr(v, 0, vl)) sbuf_set(&p->id, v, vl);
  } else if (fl == 5 && memcmp(s, "retry", 5) == 0) {
    long r = sse_retry(v, vl);
    if (r >= 0) p->retry = r;
  } /* any other field is ignored */
  return WF_OK;
}

/* Feed n bytes; events are dispatched to the callback as they complete. */
int wf_sse_feed(wf_sse_t *p, const char *buf, size_t n, wf_err_t *err) {
  const char *s = buf, *end = buf + n, *eol;
  eol_scan_t sc = {NULL, NULL, end};
  if (p->stopped) return wf_err_set(err, "parser already stopped");
  if (n == 0) return WF_OK;
  if (p->skip_lf) { /* CRLF split across feeds */
    p->skip_lf = 0;
    if (*s == '\n') s++;
  }
  while (s < end) {
    int rc;
    eol = eol_next(&sc, s, 0);
    if (!eol) {
      if (p->line.n + (size_t)(end - s) + p->data.n > p->max)
        return sse_fail(p, err, "server-sent event exceeds the size limit");
      sbuf_add(&p->line, s, (size_t)(end - s));
      break;
    }
    if (p->line.n) {
      if (p->line.n + (size_t)(eol - s) + p->data.n > p->max)
        return sse_fail(p, err, "server-sent event exceeds the size limit");
      sbuf_add(&p->line, s, (size_t)(eol - s));
      rc = sse_line(p, p->line.p, p->line.n, err);
      p->line.n = 0;
    } else {
      rc = sse_line(p, s, (size_t)(eol - s), err);
    }
    if (rc != WF_OK) return rc;
    s = eol + 1;
    if (*eol == '\r') {
      if (s == end)
        p->skip_lf = 1;
      else if (*s == '\n')
        s++;
    }
  }
  return WF_OK;
}

/* End of stream: drop an unterminated block; 1 if anything was dropped. */
int wf_sse_finish(wf_sse_t *p) {
  int dropped = p->line.n > 0 || p->data.n > 0;
  p->line.n = 0;
  p->data.n = 0;
  p->event.n = 0;
  p->retry = -1;
  p->skip_lf = 0;
  return dropped;
}

/* ---- NDJSON ------------------------------------------------------------ */

struct wf_ndjson {
  wf_ndjson_cb cb;
  void *ud;
  size_t max;
  sbuf_t line; /* a line split across feeds */
  int stopped;
};

/* New NDJSON splitter calling cb for each non-blank line; max_line 0 means
 * 16 MiB. */
wf_ndjson_t *wf_ndjson_new(wf_ndjson_cb cb, void *ud, size_t max_line) {
  wf_ndjson_t *p = wf_xcalloc(1, sizeof *p);
  p->cb = cb;
  p->ud = ud;
  p->max = max_line ? max_line : WF_SSE_DEFAULT_MAX;
  return p;
}

/* Free the splitter. NULL is a no-op. */
void wf_ndjson_free(wf_ndjson_t *p) {
  if (!p) return;
  sbuf_free(&p->line);
  free(p);
}

/* Deliver one line (a trailing CR dropped) unless it is blank. */
static int nd_line(wf_ndjson_t *p, const char *s, size_t n, wf_err_t *err) {
  size_t i;
  if (n && s[n - 1] == '\r') n--;
  for (i = 0; i < n; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') break;
  if (i == n) return WF_OK;
  if (p->cb(p->ud, s, n)) {
    p->stopped = 1;
    return wf_err_set(err, "stopped by callback");
  }
  return WF_OK;
}

/* Feed n bytes; complete lines go to the callback. */
int wf_ndjson_feed(wf_ndjson_t *p, const char *buf, size_t n, wf_err_t *err) {
  const char *s = buf, *end = buf + n, *eol;
  eol_scan_t sc = {NULL, NULL, end};
  if (p->stopped) return wf_err_set(err, "parser already stopped");
  while (s < end) {
    int rc;
    eol = eol_next(&sc, s, 1);
    if (!eol) {
      if (p->line.n + (size_t)(end - s) > p->max) {
        p->stopped = 1;
        return wf_err_set(err, "NDJSON line exceeds the size limit");
      }
      sbuf_add(&p->line, s, (size_t)(end - s));
      break;
    }
    if (p->line.n) {
      if (p->line.n + (size_t)(eol - s) > p->max) {
        p->stopped = 1;
        return wf_err_set(err, "NDJSON line exceeds the size limit");
      }
      sbuf_add(&p->line, s, (size_t)(eol - s));
      rc = nd_line(p, p->line.p, p->line.n, err);
      p->line.n = 0;
    } else {
      rc = nd_line(p, s, (size_t)(eol - s), err);
    }
    if (rc != WF_OK) return rc;
    s = eol + 1;
  }
  return WF_OK;
}

/* End of stream: deliver a last line that had no newline. */
int wf_ndjson_finish(wf_ndjson_t *p, wf_err_t *err) {
  int rc = WF_OK;
  if (p->stopped) return WF_OK;
  if (p->line.n) rc = nd_line(p, p->line.p, p->line.n, err);
  p->line.n = 0;
  return rc;
}
