/* test_sse.c — unit tests of the SSE and NDJSON parsers (runtime/io/sse.c):
 * every WHATWG event-stream rule weft relies on, caps, stopping from the
 * callback, and the same streams split at every byte offset (and fed one
 * byte at a time) giving identical results. Depends on sse.h, harness.h. */
#include <stdarg.h>

#include "harness.h"
#include "sse.h"

/* ---- collecting events into a log string ---- */

typedef struct logbuf {
  char s[8192];
  size_t n;
  int count;
  int stop_after; /* stop (return 1) after this many events; 0: never */
} logbuf_t;

/* Append printf output to the log. */
static void logf_(logbuf_t *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void logf_(logbuf_t *l, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(l->s + l->n, sizeof l->s - l->n, fmt, ap);
  va_end(ap);
  if (k > 0) l->n += (size_t)k;
  if (l->n >= sizeof l->s) l->n = sizeof l->s - 1;
}

/* SSE callback: one "[event|id|retry|data]" entry per event. */
static int on_event(void *ud, const wf_sse_event_t *ev) {
  logbuf_t *l = ud;
  CHECK_INT(strlen(ev->data), ev->data_len);
  logf_(l, "[%s|%s|%ld|%s]", ev->event, ev->id, ev->retry, ev->data);
  l->count++;
  return l->stop_after && l->count >= l->stop_after;
}

/* Parse the whole stream in one feed; returns the log (static storage). */
static const char *sse_all(const char *stream, size_t n, int *finish_rc) {
  static logbuf_t l;
  wf_err_t err;
  memset(&l, 0, sizeof l);
  wf_sse_t *p = wf_sse_new(on_event, &l, 0);
  CHECK_INT(wf_sse_feed(p, stream, n, &err), WF_OK);
  int rc = wf_sse_finish(p);
  if (finish_rc) *finish_rc = rc;
  wf_sse_free(p);
  return l.s;
}

#define SSE(lit) sse_all(lit, sizeof(lit) - 1, NULL)

/* ---- the rules ---- */

static void test_basic_event(void) {
  CHECK_STR(SSE("data: hello\n\n"), "[message||-1|hello]");
  CHECK_STR(SSE("data: a\n\ndata: b\n\n"), "[message||-1|a][message||-1|b]");
}

static void test_line_ends(void) {
  CHECK_STR(SSE("data: a\r\n\r\n"), "[message||-1|a]");
  CHECK_STR(SSE("data: a\r\r"), "[message||-1|a]");
  CHECK_STR(SSE("data: a\n\r\ndata: b\r\rdata: c\r\n\n"),
            "[message||-1|a][message||-1|b][message||-1|c]");
  /* CR then LF is one line end, not two (no empty line between) */
  CHECK_STR(SSE("data: a\r\ndata: b\r\n\r\n"), "[message||-1|a\nb]");
}

static void test_multiline_data(void) {
  CHECK_STR(SSE("data: one\ndata: two\ndata: three\n\n"),
            "[message||-1|one\ntwo\nthree]");
  /* "data" alone adds an empty line */
  CHECK_STR(SSE("data\ndata\n\n"), "[message||-1|\n]");
  CHECK_STR(SSE("data:\n\n"), "[message||-1|]");
}

static void test_one_space_stripped(void) {
  CHECK_STR(SSE("data:x\n\n"), "[message||-1|x]");
  CHECK_STR(SSE("data:  two\n\n"), "[message||-1| two]");
  CHECK_STR(SSE("data: a:b: c\n\n"), "[message||-1|a:b: c]");
  CHECK_STR(SSE("data:\tx\n\n"), "[message||-1|\tx]");
}

static void test_event_type(void) {
  CHECK_STR(SSE("event: add\ndata: 1\n\ndata: 2\n\n"),
            "[add||-1|1][message||-1|2]");
  CHECK_STR(SSE("event:\ndata: 1\n\n"), "[message||-1|1]");
  CHECK_STR(SSE("event: a\nevent: b\ndata: 1\n\n"), "[b||-1|1]");
}

static void test_no_data_no_dispatch(void) {
  CHECK_STR(SSE("event: x\n\n"), "");
  CHECK_STR(SSE("id: 5\n\n"), "");
  /* the event type of an undispatched block does not leak into the next */
  CHECK_STR(SSE("event: x\n\ndata: y\n\n"), "[message||-1|y]");
  CHECK_STR(SSE("\n\n\n"), "");
}

static void test_comments_and_unknown_fields(void) {
  CHECK_STR(SSE(": hello\ndata: a\n:x\n\n"), "[message||-1|a]");
  CHECK_STR(SSE(":\n\n"), "");
  CHECK_STR(SSE("foo: bar\ndata: a\nDATA: b\n\n"), "[message||-1|a]");
  CHECK_STR(SSE("data : a\n\n"), ""); /* field "data " is unknown */
}

static void test_id(void) {
  CHECK_STR(SSE("id: 1\ndata: a\n\ndata: b\n\n"),
            "[message|1|-1|a][message|1|-1|b]");
  CHECK_STR(SSE("id: 1\ndata: a\n\nid\ndata: b\n\n"),
            "[message|1|-1|a][message||-1|b]");
  CHECK_STR(SSE("id: 1\ndata: a\n\nid: 2\n\ndata: b\n\n"),
            "[message|1|-1|a][message|2|-1|b]");
  /* an id containing NUL is ignored: the previous one stays */
  static const char nul[] = "id: 7\ndata: a\n\nid: x\0y\ndata: b\n\n";
  CHECK_STR(sse_all(nul, sizeof nul - 1, NULL),
            "[message|7|-1|a][message|7|-1|b]");
}

static void test_retry(void) {
  CHECK_STR(SSE("retry: 3000\ndata: a\n\ndata: b\n\n"),
            "[message||3000|a][message||-1|b]");
  CHECK_STR(SSE("retry: 30x\ndata: a\n\n"), "[message||-1|a]");
  CHECK_STR(SSE("retry: -1\ndata: a\n\n"), "[message||-1|a]");
  CHECK_STR(SSE("retry:\ndata: a\n\n"), "[message||-1|a]");
  CHECK_STR(SSE("retry: 1 \ndata: a\n\n"), "[message||-1|a]");
  CHECK_STR(SSE("retry: 99999999999999999999999\ndata: a\n\n"),
            "[message||9223372036854775807|a]");
  /* retry without data: no event; it does not carry to the next block */
  CHECK_STR(SSE("retry: 5\n\ndata: a\n\n"), "[message||-1|a]");
}

static void test_bom(void) {
  CHECK_STR(SSE("\xEF\xBB\xBF" "data: a\n\n"), "[message||-1|a]");
  /* only one leading BOM is stripped, and only at the start */
  CHECK_STR(SSE("\xEF\xBB\xBF\xEF\xBB\xBF" "data: a\n\n"), "");
  CHECK_STR(SSE("data: a\n\n\xEF\xBB\xBF" "data: b\n\n"), "[message||-1|a]");
  CHECK_STR(SSE("\xEF\xBB\xBF\ndata: a\n\n"), "[message||-1|a]");
}

static void test_unterminated_block_discarded(void) {
  int rc = -1;
  const char *s = sse_all("data: a\n\ndata: b\n", 17, &rc);
  CHECK_STR(s, "[message||-1|a]");
  CHECK_INT(rc, 1);
  s = sse_all("data: a\n\ndata: b", 16, &rc);
  CHECK_STR(s, "[message||-1|a]");
  CHECK_INT(rc, 1);
  s = sse_all("data: a\n\n", 9, &rc);
  CHECK_INT(rc, 0);
}

static void test_cap(void) {
  logbuf_t l;
  wf_err_t err;
  memset(&l, 0, sizeof l);
  wf_sse_t *p = wf_sse_new(on_event, &l, 16);
  CHECK_INT(wf_sse_feed(p, "data: 0123456789\n\n", 18, &err), WF_OK);
  CHECK_INT(wf_sse_feed(p, "data: 0123456789\ndata: 01234\n\n", 30, &err),
            WF_ERR);
  CHECK(strstr(err.msg, "size limit") != NULL);
  CHECK_INT(l.count, 1);
  /* once failed, it stays failed */
  CHECK_INT(wf_sse_feed(p, "data: x\n\n", 9, &err), WF_ERR);
  wf_sse_free(p);
  /* a partial line alone can exceed the cap too */
  memset(&l, 0, sizeof l);
  p = wf_sse_new(on_event, &l, 16);
  CHECK_INT(wf_sse_feed(p, "data: 0123456789", 16, &err), WF_OK);
  CHECK_INT(wf_sse_feed(p, "0123456789", 10, &err), WF_ERR);
  wf_sse_free(p);
}

static void test_stop_from_callback(void) {
  logbuf_t l;
  wf_err_t err;
  memset(&l, 0, sizeof l);
  l.stop_after = 2;
  wf_sse_t *p = wf_sse_new(on_event, &l, 0);
  CHECK_INT(wf_sse_feed(p, "data: 1\n\ndata: 2\n\ndata: 3\n\n", 27, &err),
            WF_ERR);
  CHECK_STR(err.msg, "stopped by callback");
  CHECK_INT(l.count, 2);
  wf_sse_free(p);
}

/* Event counter of test_long_lines_and_many_cr_lines. */
typedef struct counter {
  int count;
  size_t total;
} counter_t;

/* Counting callback: events and data bytes. */
static int on_count(void *ud, const wf_sse_event_t *ev) {
  counter_t *c = ud;
  c->count++;
  c->total += ev->data_len;
  return 0;
}

static void test_long_lines_and_many_cr_lines(void) {
  /* a 100 KB data line and 5000 CR-terminated lines in one feed */
  size_t big = 100000, n = 0;
  char *s = malloc(big + 64 + 5000 * 8);
  counter_t c = {0, 0};
  wf_err_t err;
  memcpy(s, "data: ", 6);
  n = 6;
  memset(s + n, 'x', big);
  n += big;
  memcpy(s + n, "\n\n", 2);
  n += 2;
  for (int i = 0; i < 5000; i++) {
    memcpy(s + n, "data: y\r", 8);
    n += 8;
  }
  s[n++] = '\r';
  wf_sse_t *p = wf_sse_new(on_count, &c, 0);
  CHECK_INT(wf_sse_feed(p, s, n, &err), WF_OK);
  CHECK_INT(c.count, 2);
  CHECK_INT(c.total, big + 5000 * 2 - 1);
  wf_sse_free(p);
  free(s);
}

/* ---- splitting at every offset ---- */

/* Log of stream fed as the pieces [0,a) [a,b) [b,n). */
static void sse_split(const char *stream, size_t n, size_t a, size_t b,
                      logbuf_t *l) {
  wf_err_t err;
  memset(l, 0, sizeof *l);
  wf_sse_t *p = wf_sse_new(on_event, l, 0);
  CHECK_INT(wf_sse_feed(p, stream, a, &err), WF_OK);
  CHECK_INT(wf_sse_feed(p, stream + a, b - a, &err), WF_OK);
  CHECK_INT(wf_sse_feed(p, stream + b, n - b, &err), WF_OK);
  wf_sse_finish(p);
  wf_sse_free(p);
}

/* Every 2- and 3-piece split of stream, and byte-at-a-time, equal the
 * one-feed result. */
static void check_sse_splits(const char *stream, size_t n) {
  static logbuf_t whole, part;
  int bad = 0;
  sse_split(stream, n, n, n, &whole);
  for (size_t a = 0; a <= n; a++)
    for (size_t b = a; b <= n; b++) {
      sse_split(stream, n, a, b, &part);
      if (strcmp(whole.s, part.s) != 0 && bad++ == 0)
        fprintf(stderr, "split at %zu,%zu differs:\n%s\nvs\n%s\n", a, b,
                whole.s, part.s);
    }
  CHECK_INT(bad, 0);
  /* byte by byte */
  wf_err_t err;
  memset(&part, 0, sizeof part);
  wf_sse_t *p = wf_sse_new(on_event, &part, 0);
  for (size_t i = 0; i < n; i++) CHECK_INT(wf_sse_feed(p, stream + i, 1, &err), WF_OK);
  wf_sse_free(p);
  CHECK_STR(part.s, whole.s);
}

static void test_split_every_offset(void) {
  static const char s1[] =
      "\xEF\xBB\xBF: comment\r\nevent: add\r\ndata: one\r\ndata:two\r\n"
      "id: 42\r\nretry: 1500\r\n\r\ndata\rdata: x\r\rid\ndata: é\n\n"
      "event: skip\n\ndata: last\r\n\r\n";
  static const char s2[] = "data: a\r\r\n\r\n\rdata: b\n\r\n\r";
  check_sse_splits(s1, sizeof s1 - 1);
  check_sse_splits(s2, sizeof s2 - 1);
  CHECK_STR(SSE("\xEF\xBB\xBF: comment\r\nevent: add\r\ndata: one\r\ndata:two\r\n"
                "id: 42\r\nretry: 1500\r\n\r\ndata\rdata: x\r\rid\ndata: é\n\n"
                "event: skip\n\ndata: last\r\n\r\n"),
            "[add|42|1500|one\ntwo][message|42|-1|\nx][message||-1|é]"
            "[message||-1|last]");
  CHECK_STR(SSE("data: a\r\r\n\r\n\rdata: b\n\r\n\r"),
            "[message||-1|a][message||-1|b]");
}

/* ---- NDJSON ---- */

/* NDJSON callback: one "<line>" entry per line. */
static int on_line(void *ud, const char *line, size_t n) {
  logbuf_t *l = ud;
  logf_(l, "<%.*s>", (int)n, line);
  l->count++;
  return l->stop_after && l->count >= l->stop_after;
}

/* Log of an NDJSON stream fed as [0,a) [a,n), then finished. */
static const char *nd_split(const char *s, size_t n, size_t a, logbuf_t *l) {
  wf_err_t err;
  memset(l, 0, sizeof *l);
  wf_ndjson_t *p = wf_ndjson_new(on_line, l, 0);
  CHECK_INT(wf_ndjson_feed(p, s, a, &err), WF_OK);
  CHECK_INT(wf_ndjson_feed(p, s + a, n - a, &err), WF_OK);
  CHECK_INT(wf_ndjson_finish(p, &err), WF_OK);
  wf_ndjson_free(p);
  return l->s;
}

static void test_ndjson(void) {
  static logbuf_t l, m;
  static const char s[] = "{\"a\":1}\n\n  \r\n{\"b\":2}\r\n\t\n[3]";
  CHECK_STR(nd_split(s, sizeof s - 1, sizeof s - 1, &l),
            "<{\"a\":1}><{\"b\":2}><[3]>");
  for (size_t a = 0; a < sizeof s; a++) {
    nd_split(s, sizeof s - 1, a, &m);
    CHECK_STR(m.s, l.s);
  }
  CHECK_STR(nd_split("x\n", 2, 1, &l), "<x>");
  CHECK_STR(nd_split("", 0, 0, &l), "");
}

static void test_ndjson_cap_and_stop(void) {
  logbuf_t l;
  wf_err_t err;
  memset(&l, 0, sizeof l);
  wf_ndjson_t *p = wf_ndjson_new(on_line, &l, 8);
  CHECK_INT(wf_ndjson_feed(p, "12345678\n", 9, &err), WF_OK);
  CHECK_INT(wf_ndjson_feed(p, "12345", 5, &err), WF_OK);
  CHECK_INT(wf_ndjson_feed(p, "6789\n", 5, &err), WF_ERR);
  CHECK(strstr(err.msg, "size limit") != NULL);
  wf_ndjson_free(p);

  memset(&l, 0, sizeof l);
  l.stop_after = 1;
  p = wf_ndjson_new(on_line, &l, 0);
  CHECK_INT(wf_ndjson_feed(p, "a\nb\n", 4, &err), WF_ERR);
  CHECK_STR(err.msg, "stopped by callback");
  CHECK_STR(l.s, "<a>");
  wf_ndjson_free(p);
}

int main(void) {
  RUN(test_basic_event);
  RUN(test_line_ends);
  RUN(test_multiline_data);
  RUN(test_one_space_stripped);
  RUN(test_event_type);
  RUN(test_no_data_no_dispatch);
  RUN(test_comments_and_unknown_fields);
  RUN(test_id);
  RUN(test_retry);
  RUN(test_bom);
  RUN(test_unterminated_block_discarded);
  RUN(test_cap);
  RUN(test_stop_from_callback);
  RUN(test_long_lines_and_many_cr_lines);
  RUN(test_split_every_offset);
  RUN(test_ndjson);
  RUN(test_ndjson_cap_and_stop);
  return harness_end(__FILE__);
}
