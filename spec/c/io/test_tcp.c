/* test_tcp.c — unit tests of tcp.c without Lua: listen on port 0, connect,
 * accept, read and write (including the WF_AGAIN paths and readiness
 * notification through the loop), refused connections, half-close, close,
 * bad addresses; framing of the input (lines with LF or CRLF and their
 * limit, n bytes, up to a delimiter split across reads, everything until
 * end of stream, the partial input at end of stream). Depends on
 * harness.h, tcp.h, loop.h. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "harness.h"
#include "tcp.h"

static wf_loop_t *L;

/* Notification record for wf_tcp_wait. */
typedef struct note {
  int calls;
  int revents;
  wf_tcp_t *who;
} note_t;

/* wf_tcp_notify_fn: count the call. */
static void on_ready(void *ud, wf_tcp_t *t, int revents) {
  note_t *n = ud;
  n->calls++;
  n->revents = revents;
  n->who = t;
}

/* Run the loop until n->calls reaches want (at most `max` iterations). */
static void run_until(note_t *n, int want, int max) {
  for (int i = 0; i < max && n->calls < want; i++) wf_loop_step(L);
}

/* Wait (through the loop) for events on t; returns the notification count. */
static int wait_for(wf_tcp_t *t, int events) {
  note_t n = {0, 0, NULL};
  wf_tcp_wait(t, events, on_ready, &n);
  run_until(&n, 1, 1000);
  wf_tcp_unwait(t);
  return n.calls;
}

/* A connected pair (client, server side) through a listener on port 0. */
static void pair(wf_tcp_t **srv, wf_tcp_t **cli, wf_tcp_t **acc) {
  wf_err_t err;
  *srv = wf_tcp_listen(L, "127.0.0.1", 0, 16, &err);
  CHECK(*srv != NULL);
  *cli = wf_tcp_connect(L, "127.0.0.1", wf_tcp_port(*srv), &err);
  CHECK(*cli != NULL);
  CHECK_INT(wait_for(*cli, EV_WRITE), 1);
  CHECK_INT(wf_tcp_connected(*cli, &err), WF_OK);
  CHECK_INT(wait_for(*srv, EV_READ), 1);
  CHECK_INT(wf_tcp_accept(*srv, acc, &err), WF_OK);
  CHECK(*acc != NULL);
}

static void test_listen_port_zero(void) {
  wf_err_t err;
  wf_tcp_t *a = wf_tcp_listen(L, "127.0.0.1", 0, 0, &err);
  wf_tcp_t *b = wf_tcp_listen(L, "127.0.0.1", 0, 0, &err);
  CHECK(a != NULL && b != NULL);
  CHECK(wf_tcp_port(a) > 0);
  CHECK(wf_tcp_port(b) > 0);
  CHECK(wf_tcp_port(a) != wf_tcp_port(b));
  /* the same port twice: refused with the reason */
  wf_tcp_t *c = wf_tcp_listen(L, "127.0.0.1", wf_tcp_port(a), 0, &err);
  CHECK(c == NULL);
  CHECK(strstr(err.msg, "in use") != NULL);
  wf_tcp_close(a);
  wf_tcp_close(b);
  wf_tcp_close(NULL); /* no-op */
}

static void test_accept_again_then_ok(void) {
  wf_err_t err;
  wf_tcp_t *srv = wf_tcp_listen(L, "127.0.0.1", 0, 16, &err), *acc = NULL;
  CHECK_INT(wf_tcp_accept(srv, &acc, &err), WF_AGAIN);
  CHECK(acc == NULL);
  wf_tcp_t *cli = wf_tcp_connect(L, "localhost", wf_tcp_port(srv), &err);
  CHECK(cli != NULL);
  CHECK_INT(wait_for(srv, EV_READ), 1);
  CHECK_INT(wf_tcp_accept(srv, &acc, &err), WF_OK);
  CHECK(acc != NULL);
  wf_tcp_t *none = acc;
  CHECK_INT(wf_tcp_accept(srv, &none, &err), WF_AGAIN);
  CHECK(none == NULL);
  wf_tcp_close(acc);
  wf_tcp_close(cli);
  wf_tcp_close(srv);
}

static void test_read_write(void) {
  wf_tcp_t *srv, *cli, *acc;
  wf_err_t err;
  char buf[64];
  size_t got = 99, sent = 0;
  pair(&srv, &cli, &acc);
  CHECK_INT(wf_tcp_read(acc, buf, sizeof buf, &got, &err), WF_AGAIN);
  CHECK_INT(got, 0);
  CHECK_INT(wf_tcp_write(cli, "hello", 5, &sent, &err), WF_OK);
  CHECK_INT(sent, 5);
  CHECK_INT(wait_for(acc, EV_READ), 1);
  CHECK_INT(wf_tcp_read(acc, buf, sizeof buf, &got, &err), WF_OK);
  CHECK_INT(got, 5);
  CHECK(memcmp(buf, "hello", 5) == 0);
  /* and back */
  CHECK_INT(wf_tcp_write(acc, "ok", 2, &sent, &err), WF_OK);
  CHECK_INT(wait_for(cli, EV_READ), 1);
  CHECK_INT(wf_tcp_read(cli, buf, sizeof buf, &got, &err), WF_OK);
  CHECK_INT(got, 2);
  wf_tcp_close(acc);
  wf_tcp_close(cli);
  wf_tcp_close(srv);
}

static void test_write_again_until_drained(void) {
  wf_tcp_t *srv, *cli, *acc;
  wf_err_t err;
  static char chunk[65536], sink[65536];
  size_t sent, got, total = 0, drained = 0;
  int rc = WF_OK, rounds = 0;
  pair(&srv, &cli, &acc);
  memset(chunk, 'x', sizeof chunk);
  /* nobody reads: the kernel buffers fill up and the write would block */
  while (rc == WF_OK && rounds++ < 100000) {
    rc = wf_tcp_write(cli, chunk, sizeof chunk, &sent, &err);
    if (rc == WF_OK) total += sent;
  }
  CHECK_INT(rc, WF_AGAIN);
  CHECK(total > 0);
  /* writability is signalled once the reader drains */
  note_t n = {0, 0, NULL};
  wf_tcp_wait(cli, EV_WRITE, on_ready, &n);
  for (int i = 0; i < 100000 && n.calls == 0; i++) {
    rc = wf_tcp_read(acc, sink, sizeof sink, &got, &err);
    if (rc == WF_OK) drained += got;
    wf_loop_poll(L);
  }
  CHECK_INT(n.calls, 1);
  CHECK(n.revents & EV_WRITE);
  CHECK(n.who == cli);
  CHECK(drained > 0);
  /* one-shot: no second notification without a new wait */
  wf_loop_poll(L);
  CHECK_INT(n.calls, 1);
  wf_tcp_close(acc);
  wf_tcp_close(cli);
  wf_tcp_close(srv);
}

static void test_refused_connect(void) {
  wf_err_t err;
  wf_tcp_t *srv = wf_tcp_listen(L, "127.0.0.1", 0, 16, &err);
  int port = wf_tcp_port(srv);
  wf_tcp_close(srv); /* nobody listens there now */
  err.msg[0] = 0;
  wf_tcp_t *cli = wf_tcp_connect(L, "127.0.0.1", port, &err);
  if (cli) {
    CHECK_INT(wait_for(cli, EV_WRITE), 1);
    CHECK_INT(wf_tcp_connected(cli, &err), WF_ERR);
    wf_tcp_close(cli);
  }
  CHECK(strstr(err.msg, "refused") != NULL);
}

static void test_bad_addresses(void) {
  wf_err_t err;
  CHECK(wf_tcp_connect(L, "127.0.0.1", 0, &err) == NULL);
  CHECK(strstr(err.msg, "invalid port") != NULL);
  CHECK(wf_tcp_connect(L, "127.0.0.1", 70000, &err) == NULL);
  CHECK(wf_tcp_connect(L, "", 80, &err) == NULL);
  CHECK(strstr(err.msg, "empty host") != NULL);
  CHECK(wf_tcp_connect(L, "no such host.invalid", 80, &err) == NULL);
  CHECK(strstr(err.msg, "cannot resolve") != NULL);
  CHECK(wf_tcp_listen(L, "127.0.0.1", -1, 0, &err) == NULL);
  CHECK(strstr(err.msg, "invalid port") != NULL);
  CHECK(wf_tcp_listen(L, "bad host", 0, 0, &err) == NULL);
  CHECK(strstr(err.msg, "cannot resolve") != NULL);
}

static void test_half_close_and_eof(void) {
  wf_tcp_t *srv, *cli, *acc;
  wf_err_t err;
  char buf[16];
  size_t got = 1, sent;
  pair(&srv, &cli, &acc);
  wf_tcp_shutdown_write(cli);
  CHECK_INT(wait_for(acc, EV_READ), 1);
  CHECK_INT(wf_tcp_read(acc, buf, sizeof buf, &got, &err), WF_OK);
  CHECK_INT(got, 0); /* end of stream */
  /* the other direction still works */
  CHECK_INT(wf_tcp_write(acc, "late", 4, &sent, &err), WF_OK);
  CHECK_INT(wait_for(cli, EV_READ), 1);
  CHECK_INT(wf_tcp_read(cli, buf, sizeof buf, &got, &err), WF_OK);
  CHECK_INT(got, 4);
  wf_tcp_close(acc);
  wf_tcp_close(cli);
  wf_tcp_close(srv);
}

static void test_write_to_closed_peer(void) {
  wf_tcp_t *srv, *cli, *acc;
  wf_err_t err;
  size_t sent;
  int rc = WF_OK;
  pair(&srv, &cli, &acc);
  wf_tcp_close(acc);
  /* the first writes may be accepted; the peer's reset then fails them */
  for (int i = 0; i < 100 && rc == WF_OK; i++) {
    rc = wf_tcp_write(cli, "x", 1, &sent, &err);
    if (rc == WF_OK) wait_for(cli, EV_READ); /* let the RST arrive */
  }
  CHECK_INT(rc, WF_ERR);
  CHECK(strstr(err.msg, "closed") != NULL || strstr(err.msg, "reset") != NULL);
  wf_tcp_close(cli);
  wf_tcp_close(srv);
}

static void test_close_cancels_wait(void) {
  wf_tcp_t *srv, *cli, *acc;
  note_t n = {0, 0, NULL};
  pair(&srv, &cli, &acc);
  wf_tcp_wait(acc, EV_READ, on_ready, &n);
  wf_tcp_close(acc); /* pending wait cancelled: the callback never runs */
  wf_tcp_wait(srv, EV_READ, on_ready, &n);
  wf_tcp_unwait(srv);
  wf_tcp_close(cli);
  for (int i = 0; i < 10; i++) wf_loop_poll(L);
  CHECK_INT(n.calls, 0);
  wf_tcp_close(srv);
}

static void test_raise_nofile(void) {
  long n = wf_tcp_raise_nofile();
  CHECK(n > 0);
}

/* Send s on w (small: one write) and wait until r is readable. */
static void feed(wf_tcp_t *w, wf_tcp_t *r, const char *s) {
  wf_err_t err;
  size_t sent;
  CHECK_INT(wf_tcp_write(w, s, strlen(s), &sent, &err), WF_OK);
  CHECK_INT(sent, strlen(s));
  CHECK_INT(wait_for(r, EV_READ), 1);
}

/* Receive one frame and compare it with want (NULL: expect WF_AGAIN). */
static void expect_frame(wf_tcp_t *t, wf_tcp_frame_t mode, size_t n,
                         const char *delim, const char *want) {
  const char *data;
  size_t len;
  wf_err_t err;
  int rc = wf_tcp_recv(t, mode, n, delim, delim ? strlen(delim) : 0, &data,
                       &len, &err);
  if (!want) {
    CHECK_INT(rc, WF_AGAIN);
    return;
  }
  CHECK_INT(rc, WF_OK);
  CHECK_INT(len, strlen(want));
  CHECK(data && memcmp(data, want, len) == 0);
}

static void test_frame_lines_and_bytes(void) {
  wf_tcp_t *srv, *cli, *acc;
  const char *data;
  size_t len;
  wf_err_t err;
  pair(&srv, &cli, &acc);
  expect_frame(acc, WF_TCP_LINE, 100, NULL, NULL); /* nothing yet */
  CHECK_INT(wf_tcp_buffered(acc), 0);
  feed(cli, acc, "one\r\ntw");
  expect_frame(acc, WF_TCP_LINE, 100, NULL, "one"); /* CR dropped */
  expect_frame(acc, WF_TCP_LINE, 100, NULL, NULL);  /* "tw" kept */
  CHECK_INT(wf_tcp_buffered(acc), 2);
  feed(cli, acc, "o\n\n12345");
  expect_frame(acc, WF_TCP_LINE, 100, NULL, "two");
  expect_frame(acc, WF_TCP_LINE, 100, NULL, ""); /* an empty line */
  expect_frame(acc, WF_TCP_BYTES, 3, NULL, "123");
  expect_frame(acc, WF_TCP_BYTES, 0, NULL, "");
  expect_frame(acc, WF_TCP_BYTES, 3, NULL, NULL); /* only "45" */
  feed(cli, acc, "6");
  expect_frame(acc, WF_TCP_BYTES, 3, NULL, "456");
  /* a line over the limit: refused, nothing consumed */
  feed(cli, acc, "abcdefgh\n");
  CHECK_INT(wf_tcp_recv(acc, WF_TCP_LINE, 4, NULL, 0, &data, &len, &err),
            WF_ERR);
  CHECK_STR(err.msg, "line too long");
  CHECK(data == NULL);
  CHECK_INT(wf_tcp_buffered(acc), 9);
  expect_frame(acc, WF_TCP_LINE, 8, NULL, "abcdefgh");
  CHECK_INT(wf_tcp_buffered(acc), 0);
  wf_tcp_close(acc);
  wf_tcp_close(cli);
  wf_tcp_close(srv);
}

static void test_frame_until_and_end(void) {
  wf_tcp_t *srv, *cli, *acc;
  const char *data;
  size_t len;
  wf_err_t err;
  pair(&srv, &cli, &acc);
  feed(cli, acc, "head--");
  expect_frame(acc, WF_TCP_UNTIL, 0, "--=", NULL); /* the delimiter is split */
  feed(cli, acc, "=body--=rest");
  expect_frame(acc, WF_TCP_UNTIL, 0, "--=", "head");
  expect_frame(acc, WF_TCP_UNTIL, 0, "--=", "body");
  wf_tcp_take(acc, &data, &len); /* what is buffered */
  CHECK(len == 4 && memcmp(data, "rest", 4) == 0);
  feed(cli, acc, "tail");
  wf_tcp_shutdown_write(cli);
  /* end of stream before the frame: "closed" with the input left */
  CHECK_INT(wait_for(acc, EV_READ), 1);
  CHECK_INT(wf_tcp_recv(acc, WF_TCP_LINE, 100, NULL, 0, &data, &len, &err),
            WF_ERR);
  CHECK_STR(err.msg, "closed");
  CHECK(len == 4 && memcmp(data, "tail", 4) == 0);
  expect_frame(acc, WF_TCP_ALL, 0, NULL, ""); /* at the end: empty */
  wf_tcp_close(acc);
  wf_tcp_close(cli);
  wf_tcp_close(srv);
}

static void test_frame_all(void) {
  wf_tcp_t *srv, *cli, *acc;
  char big[10000];
  size_t sent = 0, n;
  wf_err_t err;
  const char *data;
  size_t len;
  int rc;
  pair(&srv, &cli, &acc);
  memset(big, 'x', sizeof big);
  while (sent < sizeof big) {
    CHECK_INT(wf_tcp_write(cli, big + sent, sizeof big - sent, &n, &err), WF_OK);
    sent += n;
  }
  wf_tcp_shutdown_write(cli);
  /* everything until the peer closes, over several reads */
  while ((rc = wf_tcp_recv(acc, WF_TCP_ALL, 0, NULL, 0, &data, &len, &err)) ==
         WF_AGAIN)
    CHECK_INT(wait_for(acc, EV_READ), 1);
  CHECK_INT(rc, WF_OK);
  CHECK_INT(len, sizeof big);
  CHECK(memcmp(data, big, len) == 0);
  wf_tcp_close(acc);
  wf_tcp_close(cli);
  wf_tcp_close(srv);
}

int main(void) {
  L = wf_loop_new(NULL);
  RUN(test_listen_port_zero);
  RUN(test_accept_again_then_ok);
  RUN(test_read_write);
  RUN(test_write_again_until_drained);
  RUN(test_refused_connect);
  RUN(test_bad_addresses);
  RUN(test_half_close_and_eof);
  RUN(test_write_to_closed_peer);
  RUN(test_close_cancels_wait);
  RUN(test_raise_nofile);
  RUN(test_frame_lines_and_bytes);
  RUN(test_frame_until_and_end);
  RUN(test_frame_all);
  wf_loop_free(L);
  return harness_end("test_tcp");
}
