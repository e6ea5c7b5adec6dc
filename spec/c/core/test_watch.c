/* test_watch.c — unit tests of watch.c without Lua: a signal watcher
 * notifies once when the signal arrives (and not for another signal), a
 * file watcher notifies when the file is written, created or removed,
 * stopped and freed watchers never notify, and the loop's backend
 * descriptor polls readable when the loop has an event to handle.
 * Depends on harness.h, watch.h, loop.h. */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"
#include "watch.h"

static wf_loop_t *L;

typedef struct note {
  int calls;
  wf_watch_t *who;
} note_t;

/* wf_watch_fn: count the call. */
static void on_fired(void *ud, wf_watch_t *w) {
  note_t *n = ud;
  n->calls++;
  n->who = w;
}

/* Run the loop until n->calls reaches want (at most max iterations). */
static void run_until(note_t *n, int want, int max) {
  for (int i = 0; i < max && n->calls < want; i++) wf_loop_step(L);
}

static void test_signal_once(void) {
  note_t n = {0, NULL}, other = {0, NULL};
  wf_err_t err;
  wf_watch_t *w = wf_watch_signal(L, SIGUSR1, on_fired, &n, &err);
  wf_watch_t *o = wf_watch_signal(L, SIGUSR2, on_fired, &other, &err);
  CHECK(w != NULL && o != NULL);
  CHECK_INT(wf_watch_fired(w), 0);
  raise(SIGUSR1);
  run_until(&n, 1, 100);
  CHECK_INT(n.calls, 1);
  CHECK(n.who == w);
  CHECK_INT(wf_watch_fired(w), 1);
  CHECK_INT(other.calls, 0);
  wf_watch_free(w);
  /* a stopped watcher does not notify (and the signal is still caught by
   * libev while o is active, so the process is not killed) */
  wf_watch_stop(o);
  wf_watch_stop(o); /* idempotent */
  wf_watch_free(o);
  CHECK_INT(other.calls, 0);
}

static void test_bad_signal(void) {
  note_t n = {0, NULL};
  wf_err_t err;
  CHECK(wf_watch_signal(L, 0, on_fired, &n, &err) == NULL);
  CHECK(strstr(err.msg, "not a signal number") != NULL);
  CHECK(wf_watch_signal(L, 65, on_fired, &n, &err) == NULL);
  wf_watch_free(NULL); /* no-op */
}

/* Write s into path (replacing it). */
static void write_file(const char *path, const char *s) {
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (!f) return;
  fputs(s, f);
  fclose(f);
}

static void test_file_changes(void) {
  char dir[] = "/tmp/weft-test-watch-XXXXXX", path[64];
  note_t n = {0, NULL};
  wf_err_t err;
  wf_watch_t *w;
  CHECK(mkdtemp(dir) != NULL);
  snprintf(path, sizeof path, "%s/f", dir);
  /* created */
  w = wf_watch_file(L, path, 0.01, on_fired, &n, &err);
  CHECK(w != NULL);
  write_file(path, "one");
  run_until(&n, 1, 10000);
  CHECK_INT(n.calls, 1);
  CHECK_INT(wf_watch_fired(w), 1);
  wf_watch_free(w);
  /* written (a different size, so a polling stat sees it too) */
  n.calls = 0;
  w = wf_watch_file(L, path, 0.01, on_fired, &n, &err);
  write_file(path, "three");
  run_until(&n, 1, 10000);
  CHECK_INT(n.calls, 1);
  wf_watch_free(w);
  /* removed */
  n.calls = 0;
  w = wf_watch_file(L, path, 0.01, on_fired, &n, &err);
  CHECK_INT(unlink(path), 0);
  run_until(&n, 1, 10000);
  CHECK_INT(n.calls, 1);
  wf_watch_free(w);
  /* a freed watcher does not notify: nothing keeps the loop busy */
  n.calls = 0;
  w = wf_watch_file(L, path, 0.01, on_fired, &n, &err);
  wf_watch_free(w);
  write_file(path, "again");
  wf_loop_poll(L);
  CHECK_INT(n.calls, 0);
  unlink(path);
  rmdir(dir);
}

/* I/O callback: nothing (the readiness is the event). */
static void noop_cb(struct ev_loop *evl, ev_io *w, int revents) {
  (void)evl;
  (void)w;
  (void)revents;
}

static void test_backend_fd(void) {
  struct ev_loop *evl = ev_loop_new(EVBACKEND_EPOLL);
  wf_loop_t *l;
  ev_io io;
  int fds[2], fd;
  struct pollfd p;
  if (!evl) { /* no epoll here: the select backend has no descriptor */
    l = wf_loop_new(ev_loop_new(EVBACKEND_SELECT));
    CHECK_INT(wf_watch_backend_fd(l), -1);
    wf_loop_free(l);
    return;
  }
  l = wf_loop_new(evl);
  fd = wf_watch_backend_fd(l);
  CHECK(fd >= 0);
  CHECK(pipe(fds) == 0);
  ev_io_init(&io, noop_cb, fds[0], EV_READ);
  ev_io_start(evl, &io);
  wf_loop_poll(l); /* register the watcher with the backend */
  p.fd = fd;
  p.events = POLLIN;
  CHECK_INT(poll(&p, 1, 0), 0); /* nothing to handle */
  CHECK(write(fds[1], "x", 1) == 1);
  CHECK_INT(poll(&p, 1, 1000), 1); /* the pipe made the backend readable */
  ev_io_stop(evl, &io);
  close(fds[0]);
  close(fds[1]);
  wf_loop_free(l);
  ev_loop_destroy(evl);
  /* the select backend has none */
  evl = ev_loop_new(EVBACKEND_SELECT);
  l = wf_loop_new(evl);
  CHECK_INT(wf_watch_backend_fd(l), -1);
  wf_loop_free(l);
  ev_loop_destroy(evl);
}

int main(void) {
  L = wf_loop_new(NULL);
  RUN(test_signal_once);
  RUN(test_bad_signal);
  RUN(test_file_changes);
  RUN(test_backend_fd);
  wf_loop_free(L);
  return harness_end("test_watch");
}
