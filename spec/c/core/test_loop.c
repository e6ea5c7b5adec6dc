/* test_loop.c — the deferred-work queue: FIFO order, re-deferral during a
 * drain, undefer (also of nodes in a drain in progress), nested drains,
 * libev integration (ev_run does not block while work is queued; ready work
 * that never ends does not starve I/O), two loops
 * side by side. Also the value handle table. Depends on loop.c, val.c and
 * the harness. */
#include <unistd.h>

#include "harness.h"
#include "loop.h"

typedef struct node {
  wf_defer_t d;
  wf_loop_t *l;
  int id, runs, redefer;
  struct node *kill; /* undefer this one when run */
  struct node *chain; /* defer this one when run */
  int nest;          /* drain the loop from inside */
} node_t;

static int trace[64], ntrace;

/* Record the run; optionally re-defer, undefer another, or nest a drain. */
static void node_cb(wf_defer_t *d) {
  node_t *n = (node_t *)d;
  n->runs++;
  trace[ntrace++] = n->id;
  if (n->redefer-- > 0) wf_loop_defer(n->l, &n->d);
  if (n->kill) wf_loop_undefer(n->l, &n->kill->d);
  if (n->chain) wf_loop_defer(n->l, &n->chain->d);
  if (n->nest) wf_loop_drain(n->l);
}

/* A queue on a libev loop of its own. */
static wf_loop_t *loop_new(void) { return wf_loop_new(ev_loop_new(0)); }

/* Free l and its libev loop. */
static void loop_free(wf_loop_t *l) {
  struct ev_loop *evl = wf_loop_ev(l);
  wf_loop_free(l);
  ev_loop_destroy(evl);
}

/* A node with id on loop l. */
static node_t mk(wf_loop_t *l, int id) {
  node_t n;
  memset(&n, 0, sizeof n);
  n.d.cb = node_cb;
  n.l = l;
  n.id = id;
  return n;
}

static void test_fifo_and_redefer(void) {
  wf_loop_t *l = loop_new();
  node_t a = mk(l, 1), b = mk(l, 2), c = mk(l, 3);
  ntrace = 0;
  a.redefer = 2;
  wf_loop_defer(l, &a.d);
  wf_loop_defer(l, &b.d);
  wf_loop_defer(l, &a.d); /* already queued: no-op */
  wf_loop_defer(l, &c.d);
  CHECK_INT(wf_loop_pending(l), 3);
  CHECK_INT(wf_loop_drain(l), 3);
  CHECK_INT(ntrace, 3);
  CHECK_INT(trace[0], 1);
  CHECK_INT(trace[1], 2);
  CHECK_INT(trace[2], 3);
  CHECK_INT(wf_loop_pending(l), 1); /* a re-deferred itself */
  CHECK_INT(wf_loop_drain(l), 1);
  CHECK_INT(wf_loop_drain(l), 1);
  CHECK_INT(wf_loop_drain(l), 0);
  CHECK_INT(a.runs, 3);
  loop_free(l);
}

static void test_undefer(void) {
  wf_loop_t *l = loop_new();
  node_t a = mk(l, 1), b = mk(l, 2), c = mk(l, 3);
  ntrace = 0;
  wf_loop_defer(l, &a.d);
  wf_loop_defer(l, &b.d);
  wf_loop_defer(l, &c.d);
  wf_loop_undefer(l, &b.d);
  wf_loop_undefer(l, &b.d); /* not queued: no-op */
  CHECK_INT(wf_loop_pending(l), 2);
  wf_loop_undefer(l, &c.d); /* the tail: defer after must still work */
  wf_loop_defer(l, &b.d);
  a.kill = &b; /* a removes b from the batch being drained */
  CHECK_INT(wf_loop_drain(l), 1);
  CHECK_INT(b.runs, 0);
  CHECK_INT(c.runs, 0);
  CHECK_INT(wf_loop_pending(l), 0);
  loop_free(l);
}

static void test_nested_drain(void) {
  wf_loop_t *l = loop_new();
  node_t a = mk(l, 1), b = mk(l, 2), c = mk(l, 3);
  ntrace = 0;
  a.nest = 1;
  a.redefer = 1; /* queued for the nested drain */
  wf_loop_defer(l, &a.d);
  wf_loop_defer(l, &b.d);
  wf_loop_defer(l, &c.d);
  a.kill = NULL;
  CHECK_INT(wf_loop_drain(l), 3);
  /* a, (nested: a again), b, c */
  CHECK_INT(ntrace, 4);
  CHECK_INT(trace[0], 1);
  CHECK_INT(trace[1], 1);
  CHECK_INT(trace[2], 2);
  CHECK_INT(trace[3], 3);
  CHECK_INT(wf_loop_pending(l), 0);
  loop_free(l);
}

static int fired;
/* Timer callback: count. */
static void tcb(struct ev_loop *evl, ev_timer *w, int revents) {
  (void)evl;
  (void)w;
  (void)revents;
  fired++;
}

static void test_step_with_libev(void) {
  struct ev_loop *evl = ev_loop_new(0);
  wf_loop_t *l = wf_loop_new(evl);
  wf_loop_t *l2 = wf_loop_new(evl); /* two wrappers on one libev loop */
  node_t a = mk(l, 1), b = mk(l2, 2);
  ntrace = 0;
  /* nothing active: step returns 0 without blocking */
  CHECK_INT(wf_loop_step(l), 0);
  a.redefer = 5; /* the check watcher drains it while ev_run spins */
  wf_loop_defer(l, &a.d);
  wf_loop_defer(l2, &b.d);
  int steps = 0;
  while (wf_loop_step(l) && steps < 100) steps++;
  CHECK_INT(a.runs, 6);
  CHECK_INT(b.runs, 1);
  CHECK_INT(wf_loop_pending(l), 0);
  CHECK_INT(wf_loop_pending(l2), 0);
  /* a timer keeps the loop alive; step blocks until it fires */
  ev_timer t;
  fired = 0;
  ev_timer_init(&t, tcb, 0.001, 0);
  ev_timer_start(evl, &t);
  while (wf_loop_step(l)) {
  }
  CHECK_INT(fired, 1);
  CHECK_INT(wf_loop_poll(l), 0);
  wf_loop_free(l2);
  wf_loop_free(l);
  wf_loop_free(NULL);
  ev_loop_destroy(evl);
}

static int io_seen;
/* I/O callback of the starvation test: read the byte, stop the watcher. */
static void iocb(struct ev_loop *evl, ev_io *w, int revents) {
  char c;
  (void)revents;
  CHECK_INT((int)read(w->fd, &c, 1), 1);
  ev_io_stop(evl, w);
  io_seen++;
}

/* Ready work that never ends does not starve I/O: steps poll it at most
 * WF_LOOP_POLL_EVERY apart (not at every step), so a readable pipe is
 * seen while the node keeps re-deferring itself. */
static void test_ready_work_polls_io(void) {
  struct ev_loop *evl = ev_loop_new(0);
  wf_loop_t *l = wf_loop_new(evl);
  node_t a = mk(l, 1);
  int fds[2];
  CHECK_INT(pipe(fds), 0);
  ev_io w;
  ev_io_init(&w, iocb, fds[0], EV_READ);
  ev_io_start(evl, &w);
  CHECK_INT((int)write(fds[1], "x", 1), 1);
  io_seen = 0;
  a.redefer = 1 << 30;
  wf_loop_defer(l, &a.d);
  long steps = 0;
  while (!io_seen && steps < 100000000L) {
    ntrace = 0;
    CHECK_INT(wf_loop_step(l), 1);
    steps++;
  }
  CHECK_INT(io_seen, 1);
  CHECK(a.runs >= 1);
  wf_loop_undefer(l, &a.d);
  close(fds[0]);
  close(fds[1]);
  wf_loop_free(l);
  ev_loop_destroy(evl);
}

/* What a step's ready work queues runs before the step returns (a run's end
 * notice: the embedding API reads the result once no run is running),
 * whether the step polls I/O or not. */
static void test_step_runs_what_work_queued(void) {
  struct ev_loop *evl = ev_loop_new(0);
  wf_loop_t *l = wf_loop_new(evl);
  node_t a = mk(l, 1), b = mk(l, 2);
  ntrace = 0;
  a.redefer = 0;
  for (int round = 0; round < 100; round++) {
    a.runs = b.runs = 0;
    a.chain = &b;
    wf_loop_poll(l); /* just polled: the next step may skip its poll */
    wf_loop_defer(l, &a.d);
    wf_loop_step(l);
    CHECK_INT(a.runs, 1);
    CHECK_INT(b.runs, 1);
    ntrace = 0;
  }
  wf_loop_free(l);
  ev_loop_destroy(evl);
}

static int freed[8], nfreed;
/* Free callback of the value table. */
static void on_free(void *ud, wf_val_t h) {
  (void)ud;
  freed[nfreed++] = (int)h;
}

static void test_vals(void) {
  wf_vals_t *v = wf_vals_new(on_free, NULL);
  nfreed = 0;
  wf_val_t a = wf_vals_alloc(v), b = wf_vals_alloc(v);
  CHECK(a != 0 && b != 0 && a != b);
  CHECK_INT(wf_vals_live(v), 2);
  wf_vals_retain(v, a);
  CHECK_INT(wf_vals_count(v, a), 2);
  wf_vals_release(v, a);
  CHECK_INT(nfreed, 0);
  wf_vals_release(v, a);
  CHECK_INT(nfreed, 1);
  CHECK_INT(freed[0], a);
  CHECK_INT(wf_vals_count(v, a), 0);
  CHECK_INT(wf_vals_live(v), 1);
  wf_val_t c = wf_vals_alloc(v);
  CHECK_INT(c, a); /* recycled */
  wf_vals_retain(v, 0);
  wf_vals_release(v, 0);
  CHECK_INT(wf_vals_count(v, 0), 0);
  CHECK_INT(wf_vals_count(v, 12345), 0);
  wf_vals_release(v, b);
  wf_vals_release(v, c);
  CHECK_INT(wf_vals_live(v), 0);
  wf_vals_free(v);
  wf_vals_free(NULL);
}

int main(void) {
  RUN(test_fifo_and_redefer);
  RUN(test_undefer);
  RUN(test_nested_drain);
  RUN(test_step_with_libev);
  RUN(test_ready_work_polls_io);
  RUN(test_step_runs_what_work_queued);
  RUN(test_vals);
  return harness_end(__FILE__);
}
