/* test_sched.c — the superstep scheduler driven by a C host: executors are C
 * behaviours over int values (forward msg+1, output, fail, hang, complete
 * later from a deferred node or an ev_timer). Covers chains, loops,
 * deterministic event order, async completion, retries with backoff,
 * timeouts, on_error = continue, failures aborting siblings,
 * max_supersteps, max_concurrency, cancellation, several runs on one loop,
 * targeted sends, stale seqs, state, re-entrant hooks, value leaks, and
 * the limits on buffered effects per invocation and per superstep.
 * Depends on sched.c and the other core modules, libev, and the harness. */
#include <stdint.h>

#include "graph_fixture.h"
#include "harness.h"
#include "sched.h"
#include "sched_int.h" /* test_event_batches: a log not kept holds nothing */

/* ---- the test host ------------------------------------------------------ */

typedef void (*beh_fn)(wf_run_t *r, wf_inv_t *inv);

typedef struct rec_ev {
  wf_run_t *run;
  int type, exec, superstep, attempt, flags;
  char str[200], str2[64];
  int ints[8], nints;
  int data;
} rec_ev_t;

enum { MAXEV = 1 << 16, MAXLATER = 4096 };

/* A completion the host will report later (deferred node or timer). */
typedef struct later {
  wf_defer_t d;
  ev_timer t;
  wf_run_t *r;
  uint32_t seq;
  int ok, active, manual;
  const char *msg;
} later_t;

static wf_loop_t *L;
static wf_sched_t *S;
static beh_fn BEH[2048];
static rec_ev_t *EV;
static int nev;
static later_t LATER[MAXLATER];
static int nlater;
static int ninvoke, naborted, nfinished, running_now, max_running;
static uintptr_t stack_lo, stack_hi;
static wf_run_t *cancel_on_completed_of; /* cancel this run from a hook */
static int cancel_exec;
static int free_in_finished;
static wf_run_t *finished_order[16];
static int fail_attempts = 2;         /* b_flaky fails this many times */
static int seen_prev_errors = -1;     /* b_flaky: nerrors at success */
static char seen_err0[64], seen_err1[64];
static uint32_t saved_seq[8];
static long evseq; /* every event counts, even past MAXEV */
static wf_run_t *mark_run[2];
static long nbatches; /* calls of the events hook */
static long mark_started[2], mark_completed[2], mark_5000[2], mark_9000[2];

/* Record the host's view of one event. */
static void h_event(wf_run_t *run, const wf_event_t *ev) {
  evseq++;
  for (int i = 0; i < 2; i++) {
    if (run != mark_run[i]) continue;
    if (ev->type == WF_EV_WORKFLOW_STARTED) mark_started[i] = evseq;
    if (ev->type == WF_EV_WORKFLOW_COMPLETED) mark_completed[i] = evseq;
    if (ev->type == WF_EV_EXECUTOR_INVOKED && ev->exec == 5000)
      mark_5000[i] = evseq;
    if (ev->type == WF_EV_EXECUTOR_INVOKED && ev->exec == 9000)
      mark_9000[i] = evseq;
  }
  if (nev >= MAXEV) return;
  rec_ev_t *e = &EV[nev++];
  memset(e, 0, sizeof *e);
  e->run = run;
  e->type = ev->type;
  e->exec = ev->exec;
  e->superstep = (int)ev->superstep;
  e->attempt = (int)ev->attempt;
  e->flags = ev->flags;
  if (ev->str) snprintf(e->str, sizeof e->str, "%s", ev->str);
  if (ev->str2) snprintf(e->str2, sizeof e->str2, "%s", ev->str2);
  e->nints = ev->nints;
  for (int i = 0; i < ev->nints && i < 8; i++) e->ints[i] = ev->ints[i];
  e->data = ev->data ? hv_get(ev->data) : -999;
  if (run == cancel_on_completed_of && ev->type == WF_EV_EXECUTOR_COMPLETED &&
      ev->exec == cancel_exec)
    wf_run_cancel(run);
}

/* The events hook: a batch, copied first (a cancel from h_event publishes
 * and may move the run's log). */
static void h_events(void *ud, wf_run_t *run, const wf_event_t *evs,
                     size_t n) {
  wf_event_t buf[WF_EV_BATCH];
  (void)ud;
  nbatches++;
  CHECK(n >= 1 && n <= WF_EV_BATCH);
  memcpy(buf, evs, n * sizeof *buf);
  for (size_t i = 0; i < n; i++) h_event(run, &buf[i]);
}

/* Invoke: track concurrency and stack depth, run the behaviour. */
static void h_invoke(void *ud, wf_run_t *run, wf_inv_t *inv) {
  (void)ud;
  char here;
  uintptr_t p = (uintptr_t)&here;
  if (!stack_lo || p < stack_lo) stack_lo = p;
  if (p > stack_hi) stack_hi = p;
  ninvoke++;
  running_now++;
  if (running_now > max_running) max_running = running_now;
  BEH[inv->exec % 2048](run, inv);
}

/* Complete now (sync). */
static void done(wf_run_t *r, wf_inv_t *inv, int ok, const char *msg) {
  running_now--;
  wf_run_inv_done(r, inv, ok, msg, ok ? NULL : "traceback", 0);
}

/* Deferred completion: report it if the invocation still runs. */
static void later_cb(wf_defer_t *d) {
  later_t *x = (later_t *)d;
  if (!x->active) return;
  x->active = 0;
  wf_inv_t *inv = wf_run_inv(x->r, x->seq);
  if (inv) done(x->r, inv, x->ok, x->msg);
}

/* Timer completion. */
static void later_timer(struct ev_loop *evl, ev_timer *w, int revents) {
  (void)evl;
  (void)revents;
  later_cb(&((later_t *)((char *)w - offsetof(later_t, t)))->d);
}

/* Register a later completion: mode 0 deferred node, 1 timer, 2 manual. */
static later_t *complete_later(wf_run_t *r, wf_inv_t *inv, int ok,
                               const char *msg, int mode) {
  later_t *x = &LATER[nlater++ % MAXLATER];
  memset(x, 0, sizeof *x);
  x->d.cb = later_cb;
  x->r = r;
  x->seq = inv->seq;
  x->ok = ok;
  x->msg = msg;
  x->active = 1;
  x->manual = mode == 2;
  inv->host = x;
  if (mode == 0) wf_loop_defer(L, &x->d);
  if (mode == 1) {
    ev_timer_init(&x->t, later_timer, 0.001 * (1 + nlater % 3), 0);
    ev_timer_start(wf_loop_ev(L), &x->t);
  }
  return x;
}

/* Abort: drop the pending completion of inv. */
static void h_abort(void *ud, wf_run_t *run, wf_inv_t *inv) {
  (void)ud;
  (void)run;
  naborted++;
  running_now--;
  later_t *x = inv->host;
  if (x && x->active) {
    x->active = 0;
    wf_loop_undefer(L, &x->d);
    ev_timer_stop(wf_loop_ev(L), &x->t);
  }
  inv->host = NULL;
}

/* Finished: count, remember order, optionally free the run right here. */
static void h_finished(void *ud, wf_run_t *run) {
  (void)ud;
  if (nfinished < 16) finished_order[nfinished] = run;
  nfinished++;
  if (free_in_finished) wf_run_free(run);
}

/* Conditions: edge name "even"/"odd"/"lt10"/"ge10"/"fail". */
static int h_cond(void *ud, const wf_graph_t *g, int e, int i, wf_val_t msg,
                  int *out, wf_err_t *err) {
  (void)ud;
  (void)i;
  const char *n = g->edges[e].name ? g->edges[e].name : "";
  int v = hv_get(msg);
  if (!strcmp(n, "fail")) return wf_err_set(err, "boom");
  *out = !strcmp(n, "even") ? v % 2 == 0
         : !strcmp(n, "odd") ? v % 2 != 0
         : !strcmp(n, "lt10") ? v < 10
         : !strcmp(n, "ge10") ? v >= 10
                              : 1;
  return WF_OK;
}

/* Selector: every target (unused by most tests). */
static int h_select(void *ud, const wf_graph_t *g, int e, wf_val_t msg,
                    int *out, int *nout, wf_err_t *err) {
  (void)ud;
  (void)msg;
  (void)err;
  for (int t = 0; t < g->edges[e].ntgt; t++) out[t] = t;
  *nout = g->edges[e].ntgt;
  return WF_OK;
}

/* make_list hook. */
static wf_val_t h_list(void *ud, const wf_val_t *vals, int n) {
  (void)ud;
  return hv_list(vals, n);
}

/* Reducer: sum; fails on 13. */
static int h_reduce(void *ud, const wf_graph_t *g, int red, wf_val_t acc,
                    int fresh, wf_val_t val, wf_val_t *out,
                  wf_err_t *err) {
  (void)fresh;
  (void)ud;
  (void)g;
  (void)red;
  if (hv_get(val) == 13) return wf_err_set(err, "unlucky 13");
  *out = hv_int(hv_get(acc) + hv_get(val));
  return WF_OK;
}

/* Fresh loop, value table, scheduler and counters. */
static void setup(void) {
  hv_init();
  L = wf_loop_new(ev_loop_new(0));
  wf_sched_hooks_t h = {0};
  h.route.cond = h_cond;
  h.route.select = h_select;
  h.route.make_list = h_list;
  h.reduce = h_reduce;
  h.invoke = h_invoke;
  h.abort = h_abort;
  h.events = h_events;
  h.finished = h_finished;
  S = wf_sched_new(L, HV, &h);
  if (!EV) EV = calloc(MAXEV, sizeof *EV);
  nev = nlater = ninvoke = naborted = nfinished = nbatches = 0;
  running_now = max_running = 0;
  stack_lo = stack_hi = 0;
  cancel_on_completed_of = NULL;
  free_in_finished = 0;
  fail_attempts = 2;
  seen_prev_errors = -1;
}

/* Free the scheduler and loop; check no value leaked. */
static void teardown_all(void) {
  wf_sched_free(S);
  struct ev_loop *evl = wf_loop_ev(L);
  wf_loop_free(L);
  ev_loop_destroy(evl);
  HV_DONE();
}

/* Drive the loop until run r has been reported finished (or n finishes). */
static void drive_finished(int n) {
  for (int i = 0; i < 1000000 && nfinished < n; i++) wf_loop_step(L);
}

/* ---- behaviours --------------------------------------------------------- */

/* Forward msg+1 along every out-edge. */
static void b_fwd(wf_run_t *r, wf_inv_t *inv) {
  wf_err_t err;
  CHECK_INT(wf_run_send(r, inv->seq, hv_int(hv_get(inv->msg) + 1), -1, &err),
            WF_OK);
  done(r, inv, 1, NULL);
}

/* Output msg. */
static void b_out(wf_run_t *r, wf_inv_t *inv) {
  wf_err_t err;
  wf_vals_retain(HV, inv->msg);
  CHECK_INT(wf_run_output(r, inv->seq, inv->msg, &err), WF_OK);
  done(r, inv, 1, NULL);
}

/* Do nothing, succeed. */
static void b_nop(wf_run_t *r, wf_inv_t *inv) { done(r, inv, 1, NULL); }

/* Forward msg+1, complete from a deferred node. */
static void b_fwd_async(wf_run_t *r, wf_inv_t *inv) {
  wf_err_t err;
  wf_run_send(r, inv->seq, hv_int(hv_get(inv->msg) + 1), -1, &err);
  complete_later(r, inv, 1, NULL, 0);
}

/* Emit custom "c" with the exec index, send msg+1, complete from a
 * timer. */
static void b_emit_timer(wf_run_t *r, wf_inv_t *inv) {
  wf_err_t err;
  wf_run_send(r, inv->seq, hv_int(hv_get(inv->msg) + 1), -1, &err);
  wf_run_emit(r, inv->seq, "c", hv_int(inv->exec), &err);
  complete_later(r, inv, 1, NULL, 1);
}

/* Emit custom "c" and a log, send msg+1, completion left to the test
 * (manual). */
static void b_emit_manual(wf_run_t *r, wf_inv_t *inv) {
  wf_err_t err;
  wf_run_send(r, inv->seq, hv_int(hv_get(inv->msg) + 1), -1, &err);
  wf_run_emit(r, inv->seq, "c", hv_int(inv->exec), &err);
  wf_run_log(r, inv->seq, "info", "hello", &err);
  complete_later(r, inv, 1, NULL, 2);
}

/* Never complete. */
static void b_hang(wf_run_t *r, wf_inv_t *inv) {
  complete_later(r, inv, 1, NULL, 2);
}

/* Emit, send, then fail. */
static void b_fail(wf_run_t *r, wf_inv_t *inv) {
  wf_err_t err;
  wf_run_emit(r, inv->seq, "before", 0, &err);
  wf_run_send(r, inv->seq, hv_int(77), -1, &err);
  done(r, inv, 0, "boom");
}

/* Fail the first fail_attempts attempts (emitting, sending, writing state
 * and outputs that must be discarded), then forward. */
static void b_flaky(wf_run_t *r, wf_inv_t *inv) {
  wf_err_t err;
  char buf[32];
  wf_run_emit(r, inv->seq, "try", hv_int((int)inv->attempt), &err);
  if ((int)inv->attempt <= fail_attempts) {
    wf_run_send(r, inv->seq, hv_int(1000), -1, &err);
    wf_run_output(r, inv->seq, hv_int(1000), &err);
    wf_run_set_state(r, inv->seq, "k", hv_int(1000), &err);
    snprintf(buf, sizeof buf, "fail %u", inv->attempt);
    running_now--;
    wf_run_inv_done(r, inv, 0, buf, "tb", 0);
    return;
  }
  seen_prev_errors = inv->nerrors;
  if (inv->nerrors >= 2) {
    snprintf(seen_err0, sizeof seen_err0, "%s", inv->errors[0].message);
    snprintf(seen_err1, sizeof seen_err1, "%s", inv->errors[1].message);
  }
  b_fwd(r, inv);
}

/* Fail with WF_INV_NO_RETRY (an error that would recur, as a guardrail
 * block), after a send that must be discarded. */
static void b_fail_final(wf_run_t *r, wf_inv_t *inv) {
  wf_err_t err;
  wf_run_send(r, inv->seq, hv_int(77), -1, &err);
  running_now--;
  wf_run_inv_done(r, inv, 0, "blocked", "tb", WF_INV_NO_RETRY);
}

/* Fail the run from inside the invocation (as a budget does), then try to
 * report the invocation done (ignored: it was aborted). */
static void b_fail_run(wf_run_t *r, wf_inv_t *inv) {
  int before = naborted;
  wf_run_fail(r, "over budget");
  CHECK_INT(naborted, before + 1); /* this very invocation was aborted */
  CHECK_INT(wf_run_status(r), WF_RUN_FAILED);
  running_now++; /* h_abort counted it out already */
  done(r, inv, 1, NULL);
}

/* ---- graph helpers ------------------------------------------------------ */

/* Graph "t" with n executors e0..e(n-1) (opts o or defaults), start e0. */
static wf_graph_t *mkg(int n, const wf_exec_opts_t *o) {
  return fixture_graph("t", n, o);
}

/* Direct edge a -> b (conditional when name is given). */
static void ed(wf_graph_t *g, int a, int b, const char *cond) {
  unsigned char c = cond != NULL;
  wf_edge_spec_t s = {WF_EDGE_DIRECT, cond, 1, &a, 1, &b, &c, -1, 0};
  CHECK(wf_graph_add_edge(g, &s, NULL) >= 0);
}

/* Fan-out a -> tg[0..n). */
static void fo(wf_graph_t *g, int a, const int *tg, int n) {
  wf_edge_spec_t s = {WF_EDGE_FANOUT, NULL, 1, &a, n, tg, NULL, -1, 0};
  CHECK(wf_graph_add_edge(g, &s, NULL) >= 0);
}

/* Fan-in src[0..n) -> b. */
static void fi(wf_graph_t *g, const int *src, int n, int b) {
  wf_edge_spec_t s = {WF_EDGE_FANIN, NULL, n, src, 1, &b, NULL, -1, 0};
  CHECK(wf_graph_add_edge(g, &s, NULL) >= 0);
}

/* Finalize g, failing the test loudly otherwise. */
static void fin(wf_graph_t *g) {
  wf_err_t err;
  if (wf_graph_finalize(g, &err)) {
    fprintf(stderr, "finalize: %s\n", err.msg);
    CHECK(0);
  }
}

/* New run with keep_events and options, started with int input. */
static wf_run_t *start(wf_graph_t *g, int input, int max_steps, int max_conc) {
  wf_err_t err;
  wf_run_opts_t o = {0};
  o.keep_events = 1;
  o.listen = 1;
  o.max_supersteps = max_steps;
  o.max_concurrency = max_conc;
  wf_run_t *r = wf_run_new(S, g, &o, &err);
  CHECK(r != NULL);
  CHECK_INT(wf_run_start(r, hv_int(input), &err), WF_OK);
  return r;
}

/* Start g as start() does, drive it until it finishes, check it ended with
 * status want; the run. */
static wf_run_t *run_to_end(wf_graph_t *g, int input, int max_steps,
                            int max_conc, int want) {
  wf_run_t *r = start(g, input, max_steps, max_conc);
  drive_finished(1);
  CHECK_INT(wf_run_status(r), want);
  return r;
}

/* Fan-out e0 -> e1..en -> fan-in e(n+1) (n <= 1024), finalized: e0
 * forwards, e(n+1) outputs, e1..en as the caller sets BEH[1..n]. */
static wf_graph_t *fan_graph(int n) {
  static int t[1024];
  CHECK(n <= 1024);
  wf_graph_t *g = mkg(n + 2, NULL);
  for (int i = 0; i < n; i++) t[i] = i + 1;
  fo(g, 0, t, n);
  fi(g, t, n, n + 1);
  fin(g);
  BEH[0] = b_fwd;
  BEH[n + 1] = b_out;
  return g;
}

/* Index of the first recorded event of run r with type (and exec >= -1
 * when exec != -2), from position from; -1 if none. */
static int find_ev(wf_run_t *r, int type, int exec, int from) {
  for (int i = from; i < nev; i++)
    if (EV[i].run == r && EV[i].type == type && (exec == -2 ||
                                                 EV[i].exec == exec))
      return i;
  return -1;
}

/* Number of recorded events of run r with type. */
static int count_ev(wf_run_t *r, int type) {
  int n = 0;
  for (int i = 0; i < nev; i++) n += EV[i].run == r && EV[i].type == type;
  return n;
}

/* ---- tests -------------------------------------------------------------- */

static void test_chain_events(void) {
  setup();
  wf_graph_t *g = mkg(2, NULL);
  ed(g, 0, 1, NULL);
  fin(g);
  BEH[0] = b_fwd;
  BEH[1] = b_out;
  wf_run_t *r = start(g, 41, 0, 0);
  CHECK_INT(wf_run_status(r), WF_RUN_PENDING);
  CHECK_INT(ninvoke, 0); /* nothing runs inside start */
  drive_finished(1);
  CHECK_INT(wf_run_status(r), WF_RUN_COMPLETED);
  CHECK_INT(wf_run_supersteps(r), 2);
  int n;
  const wf_val_t *outs = wf_run_outputs(r, &n);
  CHECK_INT(n, 1);
  CHECK_INT(hv_get(outs[0]), 42);
  static const int want[][3] = {
      {WF_EV_WORKFLOW_STARTED, -1, 0},      {WF_EV_SUPERSTEP_STARTED, -1, 0},
      {WF_EV_EXECUTOR_INVOKED, 0, 0},       {WF_EV_EXECUTOR_COMPLETED, 0, 0},
      {WF_EV_SUPERSTEP_COMPLETED, -1, 0},   {WF_EV_SUPERSTEP_STARTED, -1, 1},
      {WF_EV_EXECUTOR_INVOKED, 1, 1},       {WF_EV_OUTPUT, 1, 1},
      {WF_EV_EXECUTOR_COMPLETED, 1, 1},     {WF_EV_SUPERSTEP_COMPLETED, -1, 1},
      {WF_EV_WORKFLOW_COMPLETED, -1, 1}};
  int nw = (int)(sizeof want / sizeof want[0]);
  CHECK_INT(nev, nw);
  size_t nk;
  const wf_event_t *kept = wf_run_events(r, &nk);
  CHECK_INT(nk, nw);
  for (int i = 0; i < nw && i < nev; i++) {
    CHECK_INT(EV[i].type, want[i][0]);
    CHECK_INT(EV[i].exec, want[i][1]);
    CHECK_INT(EV[i].superstep, want[i][2]);
    CHECK_INT(kept[i].type, want[i][0]);
    CHECK(kept[i].ts > 1e9);
  }
  CHECK_INT(EV[7].data, 42);
  CHECK_INT(EV[2].attempt, 1);
  CHECK(wf_run_duration_ms(r) >= 0);
  CHECK_INT(wf_sched_active(S), 0);
  {
    /* "run-N-XXXXXXXX": the counter in decimal, eight lower-case hex digits */
    const char *id = wf_run_id(r), *p = id + 4;
    CHECK(!strncmp(id, "run-", 4));
    while (*p >= '0' && *p <= '9') p++;
    CHECK(p > id + 4 && *p == '-');
    CHECK_INT(strlen(p + 1), 8);
    CHECK_INT(strspn(p + 1, "0123456789abcdef"), 8);
  }
  CHECK_STR(wf_run_status_name(wf_run_status(r)), "completed");
  wf_run_free(r);
  wf_graph_free(g);
  teardown_all();
}

/* Check the events hook has seen inv's executor_invoked (delivered before
 * an executor's code runs). */
static void check_seen(wf_run_t *r, wf_inv_t *inv) {
  CHECK(nev > 0 && EV[nev - 1].run == r &&
        EV[nev - 1].type == WF_EV_EXECUTOR_INVOKED &&
        EV[nev - 1].exec == inv->exec);
}

/* Forward after check_seen. */
static void b_fwd_seen(wf_run_t *r, wf_inv_t *inv) {
  check_seen(r, inv);
  b_fwd(r, inv);
}

/* A live event (agent_update) from inside the run's frame is handed to the
 * hook at once, not with the barrier's batch. */
static void b_live(wf_run_t *r, wf_inv_t *inv) {
  wf_err_t err;
  long before = nev;
  check_seen(r, inv);
  CHECK_INT(wf_run_emit_live(r, inv->seq, WF_EV_AGENT_UPDATE, "chunk",
                             hv_int(7), &err), WF_OK);
  CHECK_INT(nev, before + 1);
  CHECK_INT(EV[nev - 1].type, WF_EV_AGENT_UPDATE);
  b_fwd(r, inv);
}

/* A finalized chain e0 -> e1 -> ... -> e(n-1). */
static wf_graph_t *chain_graph(int n) {
  wf_graph_t *g = mkg(n, NULL);
  for (int i = 0; i + 1 < n; i++) ed(g, i, i + 1, NULL);
  fin(g);
  return g;
}

static void test_event_batches(void) {
  setup();
  enum { N = 40 };
  wf_graph_t *g = chain_graph(N);
  for (int i = 0; i < N; i++) BEH[i] = b_fwd_seen;
  BEH[7] = b_live;
  wf_run_t *r = start(g, 0, N + 5, 0);
  drive_finished(1);
  CHECK_INT(wf_run_status(r), WF_RUN_COMPLETED);
  /* every event once, in the kept log's order, in fewer calls than events */
  size_t nk;
  const wf_event_t *kept = wf_run_events(r, &nk);
  CHECK_INT(nev, (long)nk);
  for (size_t i = 0; i < nk && (long)i < nev; i++) {
    CHECK_INT(EV[i].type, kept[i].type);
    CHECK_INT(EV[i].exec, kept[i].exec);
    CHECK_INT(EV[i].superstep, (int)kept[i].superstep);
  }
  CHECK(nbatches > 0 && nbatches < nev / 2);
  wf_run_free(r);

  /* listen off: the hook gets nothing, the log is kept all the same */
  wf_err_t err;
  wf_run_opts_t o = {0};
  o.keep_events = 1;
  for (int i = 0; i < N; i++) BEH[i] = b_fwd;
  r = wf_run_new(S, g, &o, &err);
  CHECK_INT(wf_run_start(r, hv_int(0), &err), WF_OK);
  nev = 0;
  nbatches = 0;
  drive_finished(2);
  CHECK_INT(wf_run_status(r), WF_RUN_COMPLETED);
  CHECK_INT(nev, 0);
  CHECK_INT(nbatches, 0);
  CHECK(wf_run_events(r, &nk) != NULL && nk > 0);
  wf_run_free(r);

  /* listening without keeping: the events go, and their storage with them
   * once the run waits in the loop */
  o.keep_events = 0;
  o.listen = 1;
  BEH[1] = b_hang;
  r = wf_run_new(S, g, &o, &err);
  CHECK_INT(wf_run_start(r, hv_int(0), &err), WF_OK);
  for (int i = 0; i < 1000 && find_ev(r, WF_EV_EXECUTOR_INVOKED, 1, 0) < 0; i++)
    wf_loop_step(L);
  CHECK(find_ev(r, WF_EV_EXECUTOR_INVOKED, 1, 0) >= 0);
  CHECK_INT(wf_run_status(r), WF_RUN_RUNNING);
  CHECK(r->log.v == NULL && r->log.cap == 0);
  CHECK(wf_run_events(r, &nk) == NULL);
  wf_run_free(r);
  wf_graph_free(g);
  teardown_all();
}

static void test_long_chain_and_ids(void) {
  setup();
  enum { N = 10000 };
  wf_graph_t *g = chain_graph(N);
  for (int i = 0; i < N - 1; i++) BEH[i % 2048] = b_fwd;
  /* BEH is indexed by exec % 2048 through the invoke hook: keep it simple by
   * using only b_fwd (the last executor forwards into nothing) */
  wf_run_t *r = start(g, 0, N + 1, 0);
  wf_run_t *r2 = start(g, 0, N + 1, 0);
  mark_run[0] = r;
  mark_run[1] = r2;
  CHECK(strcmp(wf_run_id(r), wf_run_id(r2)) != 0);
  drive_finished(2);
  mark_run[0] = mark_run[1] = NULL;
  CHECK_INT(wf_run_status(r), WF_RUN_COMPLETED);
  CHECK_INT(wf_run_supersteps(r), N);
  CHECK_INT(wf_run_supersteps(r2), N);
  /* fairness: r2 started before r completed */
  CHECK(mark_started[1] > 0 && mark_started[1] < mark_completed[0]);
  /* the runs interleave: each advance has a budget */
  CHECK(mark_5000[1] > 0 && mark_5000[1] < mark_9000[0]);
  CHECK(mark_5000[0] > 0 && mark_5000[0] < mark_9000[1]);
  size_t nk;
  wf_run_events(r, &nk);
  CHECK_INT(nk, 4 * N + 2);
  wf_run_free(r);
  wf_run_free(r2);
  wf_graph_free(g);
  teardown_all();
}

static void test_loop_with_exit(void) {
  setup();
  /* e0 -> e1; e1 -> e0 while < 10; e1 -> e2 when >= 10 */
  wf_graph_t *g = mkg(3, NULL);
  ed(g, 0, 1, NULL);
  ed(g, 1, 0, "lt10");
  ed(g, 1, 2, "ge10");
  fin(g);
  BEH[0] = b_fwd;
  BEH[1] = b_fwd;
  BEH[2] = b_out;
  wf_run_t *r = run_to_end(g, 0, 0, 0, WF_RUN_COMPLETED);
  int n;
  const wf_val_t *o = wf_run_outputs(r, &n);
  CHECK_INT(n, 1);
  CHECK_INT(hv_get(o[0]), 10);
  CHECK_INT(wf_run_supersteps(r), 11); /* 0..9 ping-pong, then e2 */
  wf_run_free(r);
  wf_graph_free(g);
  teardown_all();
}

static void test_max_supersteps(void) {
  setup();
  wf_graph_t *g = mkg(1, NULL);
  ed(g, 0, 0, NULL);
  fin(g);
  BEH[0] = b_fwd;
  wf_run_t *r = run_to_end(g, 0, 5, 0, WF_RUN_FAILED);
  /* the error names the limit, the executors still active and the fix */
  const char *want = "max_supersteps (5) exceeded with executors still active: 'e0'; "
                     "raise the limit with the run option max_supersteps";
  CHECK(strncmp(wf_run_error(r), want, strlen(want)) == 0);
  CHECK_INT(wf_run_supersteps(r), 5);
  CHECK_INT(ninvoke, 5);
  int f = find_ev(r, WF_EV_WORKFLOW_FAILED, -1, 0);
  CHECK(f == nev - 1);
  CHECK(strncmp(EV[f].str, want, strlen(want)) == 0); /* (copied cut to 200) */
  wf_run_free(r);
  /* the default is 100 */
  nfinished = 0;
  r = start(g, 0, 0, 0);
  drive_finished(1);
  CHECK(strncmp(wf_run_error(r), "max_supersteps (100) exceeded with", 34) == 0);
  wf_run_free(r);
  wf_graph_free(g);
  teardown_all();
}

static void test_terminal_sends_and_condition_error(void) {
  setup();
  wf_graph_t *g = mkg(2, NULL);
  ed(g, 0, 1, NULL);
  fin(g);
  BEH[0] = b_fwd;
  BEH[1] = b_fwd; /* e1 has no out-edge: its send is dropped */
  wf_run_t *r = run_to_end(g, 0, 0, 0, WF_RUN_COMPLETED);
  CHECK_INT(wf_run_supersteps(r), 2);
  wf_run_free(r);
  wf_graph_free(g);

  g = mkg(2, NULL);
  ed(g, 0, 1, "fail");
  fin(g);
  nfinished = 0;
  r = start(g, 0, 0, 0);
  drive_finished(1);
  CHECK_INT(wf_run_status(r), WF_RUN_FAILED);
  CHECK_STR(wf_run_error(r), "condition of edge 'e0 -> e1 (fail)' failed: "
                             "boom");
  CHECK_INT(wf_run_supersteps(r), 1);
  wf_run_free(r);
  wf_graph_free(g);
  teardown_all();
}

/* Fan-out e0 -> e1..e3 completing manually in reverse order; the events
 * come out in invocation order all the same. Returns the run. */
static wf_run_t *reverse_run(wf_graph_t *g) {
  int lo = nlater;
  wf_run_t *r = start(g, 0, 0, 0);
  while (nlater < lo + 3) wf_loop_step(L);
  for (int k = 2; k >= 0; k--) {
    later_t *x = &LATER[lo + k];
    CHECK(x->manual && x->active);
    later_cb(&x->d); /* as from a host callback */
    wf_loop_poll(L);
  }
  return r;
}

static void test_deterministic_events(void) {
  setup();
  wf_graph_t *g = mkg(5, NULL);
  int t[] = {1, 2, 3};
  fo(g, 0, t, 3);
  fi(g, t, 3, 4);
  fin(g);
  BEH[0] = b_fwd;
  BEH[1] = BEH[2] = BEH[3] = b_emit_manual;
  BEH[4] = b_out;
  wf_run_t *a = reverse_run(g);
  drive_finished(1);
  wf_run_t *b = reverse_run(g);
  drive_finished(2);
  CHECK_INT(wf_run_status(a), WF_RUN_COMPLETED);
  CHECK_INT(wf_run_status(b), WF_RUN_COMPLETED);
  size_t na, nb;
  const wf_event_t *ea = wf_run_events(a, &na), *eb = wf_run_events(b, &nb);
  CHECK_INT(na, nb);
  int same = 1;
  for (size_t i = 0; i < na && i < nb; i++)
    same &= ea[i].type == eb[i].type && ea[i].exec == eb[i].exec &&
            ea[i].superstep == eb[i].superstep;
  CHECK(same);
  /* superstep 1: invoked 1,2,3 then per invocation custom, log, completed */
  int i = find_ev(a, WF_EV_SUPERSTEP_STARTED, -1, 0);
  i = find_ev(a, WF_EV_SUPERSTEP_STARTED, -1, i + 1);
  static const int want[][2] = {
      {WF_EV_EXECUTOR_INVOKED, 1},  {WF_EV_EXECUTOR_INVOKED, 2},
      {WF_EV_EXECUTOR_INVOKED, 3},  {WF_EV_CUSTOM, 1},
      {WF_EV_LOG, 1},               {WF_EV_EXECUTOR_COMPLETED, 1},
      {WF_EV_CUSTOM, 2},            {WF_EV_LOG, 2},
      {WF_EV_EXECUTOR_COMPLETED, 2}, {WF_EV_CUSTOM, 3},
      {WF_EV_LOG, 3},               {WF_EV_EXECUTOR_COMPLETED, 3},
      {WF_EV_SUPERSTEP_COMPLETED, -1}};
  for (int k = 0; k < 13; k++) {
    CHECK_INT(ea[i + 1 + k].type, want[k][0]);
    CHECK_INT(ea[i + 1 + k].exec, want[k][1]);
  }
  CHECK_STR(ea[i + 4].str, "c");
  CHECK_INT(hv_get(ea[i + 4].data), 1);
  CHECK_STR(ea[i + 5].str, "hello");
  CHECK_STR(ea[i + 5].str2, "info");
  /* fan-in got the three messages in source order */
  int n;
  const wf_val_t *o = wf_run_outputs(a, &n);
  CHECK_INT(n, 1);
  CHECK_INT(hv_get(o[0]), 3);
  CHECK_INT(hv_item(o[0], 0), 2);
  wf_run_free(a);
  wf_run_free(b);
  wf_graph_free(g);
  teardown_all();
}

static void test_async_fanout_fanin(void) {
  setup();
  enum { N = 1000 };
  wf_graph_t *g = fan_graph(N);
  for (int i = 1; i <= N; i++) BEH[i] = (i % 2) ? b_fwd_async : b_fwd;
  wf_run_t *r = run_to_end(g, 5, 0, 0, WF_RUN_COMPLETED);
  CHECK_INT(wf_run_supersteps(r), 3);
  int n;
  const wf_val_t *o = wf_run_outputs(r, &n);
  CHECK_INT(n, 1);
  CHECK_INT(hv_get(o[0]), N);
  int bad = 0;
  for (int i = 0; i < N; i++) bad += hv_item(o[0], i) != 7;
  CHECK_INT(bad, 0);
  wf_run_free(r);
  wf_graph_free(g);
  teardown_all();
}

static void test_timer_completion(void) {
  setup();
  wf_graph_t *g = mkg(5, NULL);
  int t[] = {1, 2, 3};
  fo(g, 0, t, 3);
  fi(g, t, 3, 4);
  fin(g);
  BEH[0] = b_fwd;
  BEH[1] = BEH[2] = BEH[3] = b_emit_timer;
  BEH[4] = b_out;
  wf_run_t *r = run_to_end(g, 0, 0, 0, WF_RUN_COMPLETED);
  CHECK_INT(count_ev(r, WF_EV_CUSTOM), 3);
  int c = find_ev(r, WF_EV_CUSTOM, -2, 0);
  CHECK_INT(EV[c].exec, 1);
  CHECK_INT(EV[c].data, 1);
  wf_run_free(r);
  wf_graph_free(g);
  teardown_all();
}

static void test_retries(void) {
  setup();
  wf_exec_opts_t o;
  wf_exec_opts_default(&o);
  o.max_attempts = 3;
  o.backoff = 0.001; /* goes through ev_timers */
  o.backoff_factor = 2;
  wf_graph_t *g = mkg(2, &o);
  ed(g, 0, 1, NULL);
  fin(g);
  BEH[0] = b_flaky;
  BEH[1] = b_out;
  wf_run_t *r = run_to_end(g, 0, 0, 0, WF_RUN_COMPLETED);
  CHECK_INT(seen_prev_errors, 2);
  CHECK_STR(seen_err0, "fail 1");
  CHECK_STR(seen_err1, "fail 2");
  int n;
  const wf_val_t *outs = wf_run_outputs(r, &n);
  CHECK_INT(n, 1); /* discarded outputs and sends of failed attempts */
  CHECK_INT(hv_get(outs[0]), 1);
  CHECK_INT(wf_state_size(wf_run_state(r)), 0);
  /* superstep 0 events */
  static const int want[][3] = {
      {WF_EV_EXECUTOR_INVOKED, 1, 0},
      {WF_EV_EXECUTOR_INVOKED, 2, 0},
      {WF_EV_EXECUTOR_INVOKED, 3, 0},
      {WF_EV_CUSTOM, 1, 0},
      {WF_EV_EXECUTOR_FAILED, 1, WF_EVF_RETRYING},
      {WF_EV_CUSTOM, 2, 0},
      {WF_EV_EXECUTOR_FAILED, 2, WF_EVF_RETRYING},
      {WF_EV_CUSTOM, 3, 0},
      {WF_EV_EXECUTOR_COMPLETED, 3, 0},
      {WF_EV_SUPERSTEP_COMPLETED, 0, 0}};
  int i = find_ev(r, WF_EV_EXECUTOR_INVOKED, 0, 0);
  for (int k = 0; k < 10; k++) {
    CHECK_INT(EV[i + k].type, want[k][0]);
    if (want[k][0] != WF_EV_SUPERSTEP_COMPLETED)
      CHECK_INT(EV[i + k].attempt, want[k][1]);
    CHECK_INT(EV[i + k].flags, want[k][2]);
  }
  CHECK_STR(EV[i + 4].str, "fail 1");
  CHECK_INT(EV[i + 3].data, 1);
  wf_run_free(r);
  wf_graph_free(g);
  teardown_all();
}

static void test_retries_exhausted(void) {
  setup();
  wf_exec_opts_t o;
  wf_exec_opts_default(&o);
  o.max_attempts = 3; /* backoff 0: retried through the loop at once */
  wf_graph_t *g = mkg(2, &o);
  ed(g, 0, 1, NULL);
  fin(g);
  BEH[0] = b_fwd;
  BEH[1] = b_flaky;
  fail_attempts = 5;
  wf_run_t *r = run_to_end(g, 0, 0, 0, WF_RUN_FAILED);
  CHECK_STR(wf_run_error(r),
            "executor 'e1' failed in superstep 1 after 3 attempts: fail 3");
  CHECK_INT(count_ev(r, WF_EV_EXECUTOR_INVOKED), 4);
  CHECK_INT(count_ev(r, WF_EV_EXECUTOR_FAILED), 3);
  int f = find_ev(r, WF_EV_EXECUTOR_FAILED, 1, 0);
  CHECK_INT(EV[f].flags, WF_EVF_RETRYING);
  CHECK_STR(EV[f].str, "fail 1");
  f = find_ev(r, WF_EV_EXECUTOR_FAILED, 1, f + 1);
  f = find_ev(r, WF_EV_EXECUTOR_FAILED, 1, f + 1);
  CHECK_INT(EV[f].flags, 0);
  CHECK_INT(EV[f].attempt, 3);
  CHECK_INT(EV[nev - 1].type, WF_EV_WORKFLOW_FAILED);
  CHECK_INT(count_ev(r, WF_EV_SUPERSTEP_COMPLETED), 1);
  wf_run_free(r);
  wf_graph_free(g);
  teardown_all();
}

/* A failure flagged WF_INV_NO_RETRY is not retried whatever max_attempts
 * says (one attempt, no backoff, no "after N attempts"), and on_error =
 * continue still goes on past it. */
static void test_no_retry(void) {
  setup();
  wf_exec_opts_t o;
  wf_exec_opts_default(&o);
  o.max_attempts = 3;
  o.backoff = 0.001; /* a retry would go through the backoff timer */
  wf_graph_t *g = mkg(3, &o);
  ed(g, 0, 1, NULL);
  ed(g, 1, 2, NULL);
  fin(g);
  BEH[0] = b_fwd;
  BEH[1] = b_fail_final;
  BEH[2] = b_out;
  wf_run_t *r = run_to_end(g, 0, 0, 0, WF_RUN_FAILED);
  CHECK_STR(wf_run_error(r), "executor 'e1' failed in superstep 1: blocked");
  CHECK_INT(count_ev(r, WF_EV_EXECUTOR_INVOKED), 2);
  CHECK_INT(count_ev(r, WF_EV_EXECUTOR_FAILED), 1);
  int f = find_ev(r, WF_EV_EXECUTOR_FAILED, 1, 0);
  CHECK_INT(EV[f].flags, 0); /* neither retrying nor continued */
  CHECK_INT(EV[f].attempt, 1);
  CHECK_STR(EV[f].str, "blocked");
  wf_run_free(r);
  wf_graph_free(g);

  /* on_error = continue: the run goes on without e1's send */
  o.on_error_continue = 1;
  g = mkg(3, &o);
  int t[] = {1, 2};
  fo(g, 0, t, 2);
  fin(g);
  BEH[0] = b_fwd;
  BEH[1] = b_fail_final;
  BEH[2] = b_out;
  nfinished = nev = 0; /* the next run may get the freed run's address */
  r = run_to_end(g, 0, 0, 0, WF_RUN_COMPLETED);
  CHECK_INT(count_ev(r, WF_EV_EXECUTOR_INVOKED), 3);
  f = find_ev(r, WF_EV_EXECUTOR_FAILED, 1, 0);
  CHECK(f >= 0);
  CHECK_INT(EV[f].flags, WF_EVF_CONTINUED);
  CHECK_INT(count_ev(r, WF_EV_EXECUTOR_FAILED), 1);
  int n;
  const wf_val_t *outs = wf_run_outputs(r, &n);
  CHECK_INT(n, 1);
  CHECK_INT(hv_get(outs[0]), 1);
  wf_run_free(r);
  wf_graph_free(g);
  teardown_all();
}

static void test_timeout(void) {
  setup();
  wf_exec_opts_t o;
  wf_exec_opts_default(&o);
  o.timeout = 0.005;
  o.max_attempts = 2;
  wf_graph_t *g = mkg(2, &o);
  ed(g, 0, 1, NULL);
  fin(g);
  BEH[0] = b_fwd;
  BEH[1] = b_hang;
  wf_run_t *r = run_to_end(g, 0, 0, 0, WF_RUN_FAILED);
  CHECK_INT(naborted, 2);
  CHECK_STR(wf_run_error(r), "executor 'e1' failed in superstep 1 after 2 "
                             "attempts: executor 'e1' timed out after 0.005s");
  int f = find_ev(r, WF_EV_EXECUTOR_FAILED, 1, 0);
  CHECK_INT(EV[f].flags, WF_EVF_TIMEOUT | WF_EVF_RETRYING);
  CHECK_STR(EV[f].str, "executor 'e1' timed out after 0.005s");
  f = find_ev(r, WF_EV_EXECUTOR_FAILED, 1, f + 1);
  CHECK_INT(EV[f].flags, WF_EVF_TIMEOUT);
  wf_run_free(r);
  wf_graph_free(g);
  teardown_all();
}

static void test_on_error_continue(void) {
  setup();
  wf_exec_opts_t o;
  wf_exec_opts_default(&o);
  o.on_error_continue = 1;
  wf_graph_t *g = mkg(4, &o);
  int t[] = {1, 2};
  fo(g, 0, t, 2);
  ed(g, 1, 3, NULL);
  ed(g, 2, 3, NULL);
  fin(g);
  BEH[0] = b_fwd;
  BEH[1] = b_fail;
  BEH[2] = b_fwd;
  BEH[3] = b_out;
  wf_run_t *r = run_to_end(g, 0, 0, 0, WF_RUN_COMPLETED);
  int n;
  const wf_val_t *outs = wf_run_outputs(r, &n);
  CHECK_INT(n, 1); /* e1's send was dropped */
  CHECK_INT(hv_get(outs[0]), 2);
  int f = find_ev(r, WF_EV_EXECUTOR_FAILED, 1, 0);
  CHECK(f >= 0);
  CHECK_INT(EV[f].flags, WF_EVF_CONTINUED);
  CHECK_STR(EV[f].str, "boom");
  CHECK_INT(EV[f - 1].type, WF_EV_CUSTOM); /* "before" kept */
  CHECK_INT(EV[f + 1].type, WF_EV_EXECUTOR_COMPLETED);
  CHECK_INT(EV[f + 1].exec, 2);
  wf_run_free(r);
  wf_graph_free(g);
  teardown_all();
}

static void test_failure_aborts_siblings(void) {
  setup();
  wf_graph_t *g = mkg(5, NULL);
  int t[] = {1, 2, 3, 4};
  fo(g, 0, t, 4);
  fin(g);
  BEH[0] = b_fwd;
  BEH[1] = b_hang;
  BEH[2] = b_emit_manual; /* finished before the failure? no: manual */
  BEH[3] = b_fail;
  BEH[4] = b_nop;
  wf_run_t *r = run_to_end(g, 0, 0, 0, WF_RUN_FAILED);
  CHECK_STR(wf_run_error(r), "executor 'e3' failed in superstep 1: boom");
  CHECK_INT(naborted, 2); /* e1 and e2 were running */
  CHECK_INT(running_now, 0);
  CHECK_INT(ninvoke, 4); /* e4 never started */
  /* published: e3's custom + failed, then workflow_failed */
  CHECK_INT(EV[nev - 1].type, WF_EV_WORKFLOW_FAILED);
  CHECK_STR(EV[nev - 1].str, "executor 'e3' failed in superstep 1: boom");
  CHECK_INT(EV[nev - 2].type, WF_EV_EXECUTOR_FAILED);
  CHECK_INT(EV[nev - 2].exec, 3);
  CHECK_STR(EV[nev - 2].str, "boom");
  CHECK_INT(EV[nev - 3].type, WF_EV_CUSTOM);
  CHECK_INT(EV[nev - 4].type, WF_EV_EXECUTOR_INVOKED);
  CHECK_INT(count_ev(r, WF_EV_SUPERSTEP_COMPLETED), 1);
  CHECK_INT(nfinished, 1);
  for (int i = 0; i < 5; i++) wf_loop_poll(L);
  CHECK_INT(nfinished, 1);
  wf_run_free(r);
  wf_graph_free(g);
  teardown_all();
}

static void test_failure_publishes_finished(void) {
  setup();
  /* e1 completes (sync) first, e2 fails later (async): e1's events are
   * published before e2's failure */
  wf_graph_t *g = mkg(3, NULL);
  int t[] = {1, 2};
  fo(g, 0, t, 2);
  fin(g);
  BEH[0] = b_fwd;
  BEH[1] = b_out;
  BEH[2] = b_hang;
  wf_run_t *r = start(g, 0, 0, 0);
  while (ninvoke < 3) wf_loop_step(L);
  later_t *x = &LATER[nlater - 1];
  x->ok = 0;
  x->msg = "late failure";
  later_cb(&x->d);
  CHECK_INT(wf_run_status(r), WF_RUN_FAILED);
  CHECK_INT(nfinished, 0); /* deferred */
  drive_finished(1);
  CHECK_INT(EV[nev - 3].type, WF_EV_EXECUTOR_COMPLETED); /* no output ev */
  CHECK_INT(EV[nev - 3].exec, 1);
  CHECK_INT(EV[nev - 2].type, WF_EV_EXECUTOR_FAILED);
  CHECK_INT(EV[nev - 2].exec, 2);
  CHECK_STR(EV[nev - 2].str2, "traceback");
  CHECK_INT(EV[nev - 1].type, WF_EV_WORKFLOW_FAILED);
  CHECK_STR(EV[nev - 1].str,
            "executor 'e2' failed in superstep 1: late failure");
  int n;
  wf_run_outputs(r, &n);
  CHECK_INT(n, 0); /* not committed */
  wf_run_free(r);
  wf_graph_free(g);
  teardown_all();
}

static void test_max_concurrency(void) {
  setup();
  enum { N = 20 };
  wf_graph_t *g = fan_graph(N);
  for (int i = 1; i <= N; i++) BEH[i] = (i % 3) ? b_fwd_async : b_emit_timer;
  wf_run_t *r = run_to_end(g, 0, 0, 3, WF_RUN_COMPLETED);
  CHECK_INT(max_running, 3);
  CHECK_INT(ninvoke, N + 2);
  /* invoked events in invocation order even though started in waves */
  int prev = 0, ordered = 1;
  for (int i = 0; i < nev; i++)
    if (EV[i].type == WF_EV_EXECUTOR_INVOKED && EV[i].superstep == 1) {
      ordered &= EV[i].exec == prev + 1;
      prev = EV[i].exec;
    }
  CHECK(ordered);
  CHECK_INT(prev, N);
  wf_run_free(r);
  wf_graph_free(g);
  teardown_all();
}

static void test_sync_concurrency_no_recursion(void) {
  setup();
  enum { N = 5000 };
  wf_graph_t *g = mkg(N + 1, NULL);
  int *t = malloc(N * sizeof *t);
  for (int i = 0; i < N; i++) t[i] = i + 1;
  fo(g, 0, t, N);
  fin(g);
  BEH[0] = b_fwd;
  wf_exec_opts_t o;
  (void)o;
  for (int i = 1; i <= N; i++) BEH[i % 2048] = b_nop;
  BEH[0] = b_fwd;
  /* BEH index collisions: exec i uses BEH[i % 2048]; e0 is the only one
   * mapping to slot 0 besides 2048 and 4096, which forward harmlessly */
  wf_run_t *r = run_to_end(g, 0, 0, 1, WF_RUN_COMPLETED);
  CHECK_INT(max_running, 1);
  CHECK(stack_hi - stack_lo < 16384);
  wf_run_free(r);
  free(t);
  wf_graph_free(g);
  teardown_all();
}

/* A run of 0 -> {1, 2, 3} whose three targets hang, driven until all four
 * invocations started; *gp gets its graph. */
static wf_run_t *start_hanging_fanout(wf_graph_t **gp) {
  wf_graph_t *g = mkg(4, NULL);
  int t[] = {1, 2, 3};
  fo(g, 0, t, 3);
  fin(g);
  BEH[0] = b_fwd;
  BEH[1] = BEH[2] = BEH[3] = b_hang;
  wf_run_t *r = start(g, 0, 0, 0);
  while (ninvoke < 4) wf_loop_step(L);
  *gp = g;
  return r;
}

static void test_cancel_running(void) {
  setup();
  wf_graph_t *g;
  wf_run_t *r = start_hanging_fanout(&g);
  CHECK_INT(wf_sched_active(S), 1);
  wf_run_cancel(r);
  CHECK_INT(wf_run_status(r), WF_RUN_CANCELLED);
  CHECK_INT(naborted, 3);
  CHECK_INT(EV[nev - 1].type, WF_EV_WORKFLOW_CANCELLED);
  CHECK_INT(nfinished, 0); /* deferred */
  CHECK_INT(wf_sched_active(S), 0);
  wf_run_cancel(r); /* no-op */
  drive_finished(1);
  CHECK_INT(nfinished, 1);
  CHECK_INT(count_ev(r, WF_EV_WORKFLOW_CANCELLED), 1);
  /* host calls after cancel fail and release */
  wf_err_t err;
  CHECK_INT(wf_run_send(r, LATER[0].seq, hv_int(1), -1, &err), WF_ERR);
  wf_run_free(r);
  wf_graph_free(g);
  teardown_all();
}

/* wf_run_fail: from outside (hanging invocations aborted), from inside an
 * invocation of the run, before the run started; terminal once. */
static void test_run_fail(void) {
  setup();
  wf_graph_t *g;
  wf_run_t *r = start_hanging_fanout(&g);
  wf_run_fail(r, "run exceeded its budget: seconds (1 s)");
  CHECK_INT(wf_run_status(r), WF_RUN_FAILED);
  CHECK_STR(wf_run_error(r), "run exceeded its budget: seconds (1 s)");
  CHECK_INT(naborted, 3);
  CHECK_INT(EV[nev - 1].type, WF_EV_WORKFLOW_FAILED);
  CHECK_STR(EV[nev - 1].str, "run exceeded its budget: seconds (1 s)");
  CHECK_INT(nfinished, 0); /* deferred */
  CHECK_INT(wf_sched_active(S), 0);
  wf_run_fail(r, "again"); /* no-op once terminal */
  wf_run_cancel(r);
  CHECK_INT(wf_run_status(r), WF_RUN_FAILED);
  drive_finished(1);
  CHECK_INT(nfinished, 1);
  CHECK_INT(count_ev(r, WF_EV_WORKFLOW_FAILED), 1);
  CHECK_INT(count_ev(r, WF_EV_WORKFLOW_CANCELLED), 0);
  CHECK_STR(wf_run_error(r), "run exceeded its budget: seconds (1 s)");
  wf_run_free(r);

  /* from inside an invocation: e1 fails the run, e2 and e3 are aborted */
  BEH[1] = b_fail_run;
  nev = nfinished = naborted = ninvoke = 0;
  r = start(g, 0, 0, 0);
  drive_finished(1);
  CHECK_INT(wf_run_status(r), WF_RUN_FAILED);
  CHECK_STR(wf_run_error(r), "over budget");
  CHECK_INT(ninvoke, 2); /* e2 and e3 never started: the run had ended */
  CHECK_INT(count_ev(r, WF_EV_WORKFLOW_FAILED), 1);
  CHECK_INT(count_ev(r, WF_EV_EXECUTOR_COMPLETED), 1); /* e0's only */
  wf_run_free(r);

  /* before the first advance; NULL message */
  nev = nfinished = 0;
  r = start(g, 0, 0, 0);
  wf_run_fail(r, NULL);
  CHECK_INT(wf_run_status(r), WF_RUN_FAILED);
  CHECK_STR(wf_run_error(r), "run failed");
  drive_finished(1);
  CHECK_INT(nev, 1);
  CHECK_INT(EV[0].type, WF_EV_WORKFLOW_FAILED);
  wf_run_free(r);
  wf_run_fail(NULL, "x"); /* no-op */
  wf_graph_free(g);
  teardown_all();
}

static void test_cancel_pending_and_free_running(void) {
  setup();
  wf_graph_t *g = mkg(2, NULL);
  ed(g, 0, 1, NULL);
  fin(g);
  BEH[0] = b_fwd;
  BEH[1] = b_hang;
  wf_run_t *r = start(g, 0, 0, 0);
  wf_run_cancel(r); /* before the first advance */
  CHECK_INT(wf_run_status(r), WF_RUN_CANCELLED);
  drive_finished(1);
  CHECK_INT(ninvoke, 0);
  CHECK_INT(nev, 1);
  CHECK_INT(EV[0].type, WF_EV_WORKFLOW_CANCELLED);
  wf_run_free(r);
  /* a never-started run frees silently, its input-less state is empty */
  wf_run_t *r2 = wf_run_new(S, g, NULL, NULL);
  CHECK_INT(wf_run_status(r2), WF_RUN_PENDING);
  wf_run_free(r2);
  CHECK_INT(nev, 1);
  /* free while running: cancelled first, abort called */
  r = start(g, 0, 0, 0);
  while (ninvoke < 2) wf_loop_step(L);
  wf_run_free(r);
  CHECK_INT(naborted, 1);
  CHECK_INT(EV[nev - 1].type, WF_EV_WORKFLOW_CANCELLED);
  /* runs left to wf_sched_free are cancelled and freed */
  start(g, 0, 0, 0);
  r = start(g, 0, 0, 0);
  while (ninvoke < 4) wf_loop_step(L);
  wf_err_t err;
  CHECK(wf_run_start(r, hv_int(1), &err) == WF_ERR);
  CHECK_STR(err.msg + strlen(err.msg) - 15, "already started");
  teardown_all(); /* cancels and frees the two runs left */
  wf_graph_free(g);
}

static void test_reentrant_hooks(void) {
  setup();
  wf_graph_t *g = mkg(4, NULL);
  int t[] = {1, 2, 3};
  fo(g, 0, t, 3);
  fin(g);
  BEH[0] = b_fwd;
  BEH[1] = b_out;
  BEH[2] = b_out;
  BEH[3] = b_hang;
  /* cancel from the events hook on e0's completion: the hook gets the
   * superstep's events before e1's code would start, and no executor
   * starts after the cancel */
  BEH[3] = b_out;
  wf_run_t *r = start(g, 0, 0, 0);
  cancel_on_completed_of = r;
  cancel_exec = 0;
  free_in_finished = 1; /* and free from the finished hook */
  drive_finished(1);
  CHECK_INT(nfinished, 1);
  CHECK_INT(ninvoke, 1);
  int c = find_ev(r, WF_EV_EXECUTOR_COMPLETED, 0, 0);
  CHECK(c >= 0);
  CHECK(find_ev(r, WF_EV_EXECUTOR_COMPLETED, 1, 0) < 0);
  CHECK(find_ev(r, WF_EV_OUTPUT, -2, 0) < 0);
  CHECK_INT(EV[nev - 1].type, WF_EV_WORKFLOW_CANCELLED);
  CHECK_INT(wf_sched_active(S), 0);
  wf_graph_free(g);
  teardown_all();
}

/* e0: sends to e2 only, then tries e3 (no edge) and a bad index. */
static void b_targeted(wf_run_t *r, wf_inv_t *inv) {
  wf_err_t err;
  CHECK_INT(wf_run_send(r, inv->seq, hv_int(5), 2, &err), WF_OK);
  CHECK_INT(wf_run_send(r, inv->seq, hv_int(6), 3, &err), WF_ERR);
  CHECK_STR(err.msg, "executor 'e0' has no edge to 'e3'");
  CHECK_INT(wf_run_send(r, inv->seq, hv_int(6), 99, &err), WF_ERR);
  saved_seq[0] = inv->seq;
  done(r, inv, 1, NULL);
}

/* e2: uses the stale seq of e0 (previous superstep) and of e1 (same
 * superstep, finished), then its own. */
static void b_stale(wf_run_t *r, wf_inv_t *inv) {
  wf_err_t err;
  CHECK_INT(wf_run_send(r, saved_seq[0], hv_int(1), -1, &err), WF_ERR);
  char want[64];
  snprintf(want, sizeof want, "no running invocation %u", saved_seq[0]);
  CHECK_STR(err.msg, want);
  CHECK_INT(wf_run_output(r, saved_seq[1], hv_int(1), &err), WF_ERR);
  CHECK_STR(err.msg, "invocation of 'e1' is no longer running");
  CHECK_INT(wf_run_emit(r, saved_seq[1], "x", hv_int(1), &err), WF_ERR);
  CHECK_INT(wf_run_set_state(r, saved_seq[1], "k", hv_int(1), &err), WF_ERR);
  CHECK_INT(wf_run_emit_live(r, saved_seq[1], WF_EV_AGENT_UPDATE, "x",
                             hv_int(1), &err), WF_ERR);
  CHECK_INT(wf_run_log(r, saved_seq[1], "info", "m", &err), WF_ERR);
  CHECK(wf_run_inv(r, saved_seq[1]) == NULL);
  CHECK(wf_run_inv(r, inv->seq) == inv);
  CHECK_INT(wf_run_emit_live(r, inv->seq, WF_EV_AGENT_UPDATE, "chunk",
                             hv_int(3), &err), WF_OK);
  b_out(r, inv);
}

/* e0: remember the seq, forward. */
static void b_targeted2(wf_run_t *r, wf_inv_t *inv) {
  saved_seq[0] = inv->seq;
  b_fwd(r, inv);
}

/* e1: remember the seq, succeed. */
static void b_save1(wf_run_t *r, wf_inv_t *inv) {
  saved_seq[1] = inv->seq;
  done(r, inv, 1, NULL);
}

static void test_targeted_and_stale(void) {
  setup();
  /* e0 -> e1, e0 -> e2 (direct), e2 -> e3; e0 -> e1 -> ... */
  wf_graph_t *g = mkg(4, NULL);
  ed(g, 0, 1, NULL);
  ed(g, 0, 2, NULL);
  ed(g, 2, 3, NULL);
  fin(g);
  BEH[0] = b_targeted;
  BEH[1] = b_save1;
  BEH[2] = b_out;
  BEH[3] = b_nop;
  wf_run_t *r = run_to_end(g, 0, 0, 0, WF_RUN_COMPLETED);
  CHECK_INT(ninvoke, 2); /* e0, e2 only */
  CHECK(find_ev(r, WF_EV_EXECUTOR_INVOKED, 1, 0) < 0);
  wf_run_free(r);
  wf_graph_free(g);

  /* stale seqs: e0 fans out to e1 (sync) and e2 (uses stale seqs) */
  g = mkg(3, NULL);
  int t[] = {1, 2};
  ed(g, 0, 1, NULL);
  ed(g, 0, 2, NULL);
  (void)t;
  fin(g);
  BEH[0] = b_targeted2;
  BEH[1] = b_save1;
  BEH[2] = b_stale;
  nfinished = 0;
  r = start(g, 0, 0, 0);
  drive_finished(1);
  CHECK_INT(wf_run_status(r), WF_RUN_COMPLETED);
  int lv = find_ev(r, WF_EV_AGENT_UPDATE, 2, 0);
  int inv2 = find_ev(r, WF_EV_EXECUTOR_INVOKED, 2, 0);
  int comp1 = find_ev(r, WF_EV_EXECUTOR_COMPLETED, 1, 0);
  CHECK(lv > inv2 && lv < comp1); /* live: published at once */
  CHECK_STR(EV[lv].str, "chunk");
  wf_err_t err;
  CHECK_INT(wf_run_send(r, saved_seq[1], hv_int(1), -1, &err), WF_ERR);
  CHECK(wf_run_get_state(r, saved_seq[1], "k") == 0);
  wf_run_free(r);
  wf_graph_free(g);
  teardown_all();
}

/* e1..e3: write "x" = exec and "sum" += exec, read own writes back. */
static void b_writer(wf_run_t *r, wf_inv_t *inv) {
  wf_err_t err;
  CHECK(wf_run_get_state(r, inv->seq, "x") == 0);
  CHECK_INT(wf_run_set_state(r, inv->seq, "x", hv_int(100), &err), WF_OK);
  CHECK_INT(wf_run_set_state(r, inv->seq, "x", hv_int(inv->exec), &err),
            WF_OK);
  CHECK_INT(hv_get(wf_run_get_state(r, inv->seq, "x")), inv->exec);
  CHECK_INT(wf_run_set_state(r, inv->seq, "sum", hv_int(inv->exec), &err),
            WF_OK);
  CHECK_INT(wf_run_set_state(r, inv->seq, "gone", 0, &err), WF_OK);
  CHECK(wf_run_get_state(r, inv->seq, "gone") == 0);
  b_fwd(r, inv);
}

/* e4: reads the committed state and outputs x * 100 + sum. */
static void b_reader(wf_run_t *r, wf_inv_t *inv) {
  wf_err_t err;
  int x = hv_get(wf_run_get_state(r, inv->seq, "x"));
  int sum = hv_get(wf_run_get_state(r, inv->seq, "sum"));
  wf_run_output(r, inv->seq, hv_int(x * 100 + sum), &err);
  /* a write of 13 makes the reducer fail at this barrier when asked */
  if (hv_get(inv->msg) == 99)
    wf_run_set_state(r, inv->seq, "sum", hv_int(13), &err);
  done(r, inv, 1, NULL);
}

static void test_state(void) {
  setup();
  wf_graph_t *g = mkg(5, NULL);
  wf_graph_add_reducer(g, "sum");
  int t[] = {1, 2, 3};
  fo(g, 0, t, 3);
  fi(g, t, 3, 4);
  fin(g);
  BEH[0] = b_fwd;
  BEH[1] = BEH[2] = BEH[3] = b_writer;
  BEH[4] = b_reader;
  wf_run_t *r = run_to_end(g, 0, 0, 0, WF_RUN_COMPLETED);
  int n;
  const wf_val_t *o = wf_run_outputs(r, &n);
  CHECK_INT(n, 1);
  CHECK_INT(hv_get(o[0]), 306); /* last writer e3; sum 1+2+3 */
  const wf_state_t *st = wf_run_state(r);
  CHECK_INT(hv_get(wf_state_get(st, "x")), 3);
  CHECK_INT(hv_get(wf_state_get(st, "sum")), 6);
  CHECK(wf_state_get(st, "gone") == 0);
  int c = find_ev(r, WF_EV_STATE_CONFLICT, -1, 0);
  CHECK(c >= 0);
  CHECK_STR(EV[c].str, "x");
  CHECK_INT(EV[c].nints, 3);
  CHECK_INT(EV[c].ints[0], 1);
  CHECK_INT(EV[c].ints[2], 3);
  CHECK_INT(EV[c + 1].type, WF_EV_STATE_CONFLICT); /* "gone" */
  CHECK_STR(EV[c + 1].str, "gone");
  CHECK_INT(EV[c + 2].type, WF_EV_SUPERSTEP_COMPLETED);
  CHECK_INT(EV[c - 1].type, WF_EV_EXECUTOR_COMPLETED);
  CHECK_INT(EV[c - 1].exec, 3);
  CHECK_INT(count_ev(r, WF_EV_STATE_CONFLICT), 2);
  wf_run_free(r);
  wf_graph_free(g);
  teardown_all();
}

static void test_reducer_failure_fails_run(void) {
  setup();
  wf_graph_t *g = mkg(2, NULL);
  wf_graph_add_reducer(g, "sum");
  ed(g, 0, 1, NULL);
  fin(g);
  BEH[0] = b_fwd;
  BEH[1] = b_reader;
  wf_run_t *r = run_to_end(g, 98, 0, 0, WF_RUN_FAILED);
  CHECK_STR(wf_run_error(r), "reducer of state key 'sum' failed: unlucky 13");
  int n;
  wf_run_outputs(r, &n);
  CHECK_INT(n, 0);
  CHECK_INT(EV[nev - 2].type, WF_EV_EXECUTOR_COMPLETED);
  CHECK_INT(EV[nev - 1].type, WF_EV_WORKFLOW_FAILED);
  wf_run_free(r);
  wf_graph_free(g);
  teardown_all();
}

/* A 2-executor graph e0 -> e1 with reducer key "sum" signed sig. */
static wf_graph_t *mkg_signed(const char *sig, const char *label) {
  wf_graph_t *g = mkg(2, NULL);
  int id = wf_graph_add_reducer(g, "sum");
  CHECK_INT(wf_graph_set_reducer_sig(g, id, sig, strlen(sig), label, NULL), WF_OK);
  ed(g, 0, 1, NULL);
  fin(g);
  return g;
}

static void test_swap_graph_checks_reducers(void) {
  setup();
  wf_err_t err;
  wf_run_opts_t o = {0};
  wf_graph_t *g = mkg_signed("sum", "weft.reduce.sum");
  wf_run_t *r = wf_run_new(S, g, &o, &err);
  CHECK(r != NULL);
  wf_graph_t *max = mkg_signed("max", "weft.reduce.max");
  CHECK_INT(wf_run_swap_graph(r, max, &err), WF_ERR);
  CHECK_STR(err.msg, "the reducer of state key 'sum' changed "
                     "(weft.reduce.sum -> weft.reduce.max)");
  CHECK(wf_run_graph(r) == g);
  wf_graph_t *same = mkg_signed("sum", "the function at f.lua:1");
  CHECK_INT(wf_run_swap_graph(r, same, &err), WF_OK);
  CHECK(wf_run_graph(r) == same);
  wf_graph_t *three = mkg(3, NULL);
  ed(three, 0, 1, NULL);
  ed(three, 1, 2, NULL);
  fin(three);
  CHECK_INT(wf_run_swap_graph(r, three, &err), WF_ERR);
  CHECK_STR(err.msg, "the executors changed (3 instead of 2)");
  wf_graph_t *loop = mkg(2, NULL);
  ed(loop, 0, 0, NULL);
  ed(loop, 0, 1, NULL);
  fin(loop);
  CHECK_INT(wf_run_swap_graph(r, loop, &err), WF_ERR);
  CHECK_STR(err.msg, "the edges changed (2 instead of 1)");
  wf_graph_t *cond = mkg(2, NULL);
  ed(cond, 0, 1, "when");
  fin(cond);
  CHECK_INT(wf_run_swap_graph(r, cond, &err), WF_ERR);
  CHECK_STR(err.msg, "the edges changed (edge 1 was e0 -> e1)");
  CHECK(wf_run_graph(r) == same);
  wf_run_free(r);
  wf_graph_free(g);
  wf_graph_free(max);
  wf_graph_free(same);
  wf_graph_free(three);
  wf_graph_free(loop);
  wf_graph_free(cond);
  teardown_all();
}

static void test_run_options(void) {
  setup();
  wf_graph_t *g = mkg(2, NULL);
  wf_err_t err;
  wf_run_opts_t o = {0};
  CHECK(wf_run_new(S, g, &o, &err) == NULL); /* not finalized */
  CHECK_STR(err.msg, "workflow 't' is not built");
  ed(g, 0, 1, NULL);
  fin(g);
  o.max_concurrency = -1;
  CHECK(wf_run_new(S, g, &o, &err) == NULL);
  o.max_concurrency = 0;
  o.id = "my-run";
  o.listen = 1;
  int host;
  o.host = &host;
  wf_run_t *r = wf_run_new(S, g, &o, &err);
  CHECK_STR(wf_run_id(r), "my-run");
  CHECK(wf_run_host(r) == &host);
  CHECK(wf_run_graph(r) == g);
  CHECK(wf_run_error(r) == NULL);
  size_t ne;
  CHECK(wf_run_events(r, &ne) == NULL); /* keep_events off */
  CHECK_INT(ne, 0);
  BEH[0] = b_fwd;
  BEH[1] = b_out;
  CHECK_INT(wf_run_start(r, hv_int(1), &err), WF_OK);
  drive_finished(1);
  CHECK_INT(wf_run_status(r), WF_RUN_COMPLETED);
  CHECK(nev > 0); /* the hook saw events all the same (listen) */
  CHECK(wf_run_events(r, &ne) == NULL);
  wf_run_free(r);
  wf_run_free(NULL);
  wf_graph_free(g);
  teardown_all();
}

static void test_many_runs(void) {
  setup();
  wf_graph_t *g = mkg(3, NULL);
  ed(g, 0, 1, NULL);
  ed(g, 1, 2, NULL);
  fin(g);
  BEH[0] = b_fwd_async;
  BEH[1] = b_emit_timer;
  BEH[2] = b_out;
  enum { R = 10 };
  wf_run_t *rs[R];
  for (int i = 0; i < R; i++) rs[i] = start(g, i * 10, 0, 0);
  CHECK_INT(wf_sched_active(S), R);
  drive_finished(R);
  for (int i = 0; i < R; i++) {
    int n;
    const wf_val_t *o = wf_run_outputs(rs[i], &n);
    CHECK_INT(wf_run_status(rs[i]), WF_RUN_COMPLETED);
    CHECK_INT(n, 1);
    CHECK_INT(hv_get(o[0]), i * 10 + 2);
    wf_run_free(rs[i]);
  }
  wf_graph_free(g);
  teardown_all();
}


/* ---- limits on buffered effects ------------------------------------------ */

static int spam_kind, spam_n, spam_ok, spam_end; /* end: 0 ok, 1 fail, 2 hang */
static char spam_err[sizeof(wf_err_t)];

/* Buffer spam_n effects of kind spam_kind, counting the accepted ones and
 * keeping the first refusal's error; then end per spam_end (a host that
 * swallows the error and reports success, fails, or never completes). */
static void b_spam(wf_run_t *r, wf_inv_t *inv) {
  wf_err_t err;
  for (int i = 0; i < spam_n; i++) {
    int rc;
    switch (spam_kind) {
    case WF_LIM_MESSAGES:
      rc = wf_run_send(r, inv->seq, hv_int(i), -1, &err);
      break;
    case WF_LIM_OUTPUTS:
      rc = wf_run_output(r, inv->seq, hv_int(i), &err);
      break;
    case WF_LIM_EVENTS:
      rc = i % 2 ? wf_run_log(r, inv->seq, "info", "x", &err)
                 : wf_run_emit(r, inv->seq, "c", hv_int(i), &err);
      break;
    default:
      rc = wf_run_set_state(r, inv->seq, "k", hv_int(i), &err);
      break;
    }
    if (rc == WF_OK)
      spam_ok++;
    else if (!spam_err[0])
      snprintf(spam_err, sizeof spam_err, "%s", err.msg);
  }
  if (spam_end == 2)
    complete_later(r, inv, 1, NULL, 2);
  else
    done(r, inv, spam_end == 0, "caught");
}

/* New run of g with the given limits (keep_events), started with 0. */
static wf_run_t *start_lim(wf_graph_t *g, const wf_run_limits_t *lim) {
  wf_err_t err;
  wf_run_opts_t o = {0};
  o.keep_events = 1;
  o.listen = 1;
  o.limits = *lim;
  wf_run_t *r = wf_run_new(S, g, &o, &err);
  CHECK(r != NULL);
  CHECK_INT(wf_run_start(r, hv_int(0), &err), WF_OK);
  return r;
}

static void test_limit_per_invocation(void) {
  static const char *const want[] = {
      "limits.messages_per_invocation (3) exceeded",
      "limits.outputs_per_invocation (3) exceeded",
      "limits.events_per_invocation (3) exceeded",
      "limits.state_writes_per_invocation (3) exceeded"};
  wf_exec_opts_t o;
  wf_exec_opts_default(&o);
  o.max_attempts = 3; /* a limit is not retried ... */
  o.on_error_continue = 1; /* ... nor continued past */
  for (int k = 0; k < WF_LIM__COUNT; k++) {
    for (int end = 0; end < 2; end++) {
      setup();
      wf_graph_t *g = mkg(2, &o);
      ed(g, 0, 1, NULL);
      fin(g);
      BEH[0] = b_spam;
      BEH[1] = b_out;
      spam_kind = k;
      spam_n = 10;
      spam_ok = 0;
      spam_end = end;
      spam_err[0] = 0;
      wf_run_limits_t lim = {{0}, {0}};
      lim.per_inv[k] = 3;
      wf_run_t *r = start_lim(g, &lim);
      drive_finished(1);
      CHECK_INT(spam_ok, 3);
      CHECK_STR(spam_err, want[k]);
      CHECK_INT(wf_run_status(r), WF_RUN_FAILED);
      char msg[160];
      snprintf(msg, sizeof msg, "executor 'e0' failed in superstep 0: %s",
               want[k]);
      CHECK_STR(wf_run_error(r), msg);
      CHECK_INT(ninvoke, 1); /* no retry, e1 never ran */
      CHECK_INT(count_ev(r, WF_EV_EXECUTOR_FAILED), 1);
      int f = find_ev(r, WF_EV_EXECUTOR_FAILED, 0, 0);
      CHECK(f >= 0);
      if (f >= 0) {
        CHECK_INT(EV[f].flags, 0); /* neither retrying nor continued */
        CHECK_STR(EV[f].str, want[k]);
      }
      wf_run_outputs(r, &f);
      CHECK_INT(f, 0); /* nothing of the capped attempt was committed */
      CHECK_INT(wf_state_size(wf_run_state(r)), 0);
      wf_run_free(r);
      wf_graph_free(g);
      teardown_all(); /* no value leaked */
    }
  }
}

static void test_limit_per_superstep(void) {
  setup();
  /* e0 fans out to e1..e4; each sends 3 (below 5 per invocation); the
   * superstep allows 10: the 4th invocation (e4) passes it */
  wf_graph_t *g = mkg(6, NULL);
  int t[] = {1, 2, 3, 4};
  fo(g, 0, t, 4);
  for (int i = 1; i <= 4; i++) ed(g, i, 5, NULL);
  fin(g);
  BEH[0] = b_fwd;
  for (int i = 1; i <= 4; i++) BEH[i] = b_spam;
  BEH[5] = b_nop;
  spam_kind = WF_LIM_MESSAGES;
  spam_n = 3;
  spam_ok = 0;
  spam_end = 0;
  spam_err[0] = 0;
  wf_run_limits_t lim = {{0}, {0}};
  lim.per_inv[WF_LIM_MESSAGES] = 5;
  lim.per_step[WF_LIM_MESSAGES] = 10;
  wf_run_t *r = start_lim(g, &lim);
  drive_finished(1);
  CHECK_INT(spam_ok, 10);
  CHECK_STR(spam_err, "limits.messages_per_superstep (10) exceeded");
  CHECK_INT(wf_run_status(r), WF_RUN_FAILED);
  CHECK_STR(wf_run_error(r), "executor 'e4' failed in superstep 1: "
                             "limits.messages_per_superstep (10) exceeded");
  CHECK_INT(count_ev(r, WF_EV_SUPERSTEP_COMPLETED), 1);
  wf_run_free(r);

  /* the counts start again at every superstep: 3 x 3 per superstep pass */
  nfinished = 0;
  spam_ok = 0;
  spam_err[0] = 0;
  lim.per_step[WF_LIM_MESSAGES] = 12;
  BEH[5] = b_nop;
  r = start_lim(g, &lim);
  drive_finished(1);
  CHECK_INT(wf_run_status(r), WF_RUN_COMPLETED);
  CHECK_INT(spam_ok, 12);
  wf_run_free(r);
  wf_graph_free(g);
  teardown_all();
}

static int spam_fail_first; /* b_spam_flaky: attempts left to fail */

/* Send 2 messages, then fail while spam_fail_first > 0, else succeed. */
static void b_spam_flaky(wf_run_t *r, wf_inv_t *inv) {
  wf_err_t err;
  for (int i = 0; i < 2; i++)
    CHECK_INT(wf_run_send(r, inv->seq, hv_int(i), -1, &err), WF_OK);
  running_now--;
  wf_run_inv_done(r, inv, spam_fail_first-- <= 0, "flaky", NULL, 0);
}

static void test_limit_retry_counts(void) {
  setup();
  /* a failed attempt's dropped sends no longer count: 2 attempts of 2
   * sends fit a superstep of 2 and an invocation of 2 */
  wf_exec_opts_t o;
  wf_exec_opts_default(&o);
  o.max_attempts = 3;
  wf_graph_t *g = mkg(2, &o);
  ed(g, 0, 1, NULL);
  fin(g);
  BEH[0] = b_spam_flaky;
  BEH[1] = b_nop;
  spam_fail_first = 2;
  wf_run_limits_t lim = {{0}, {0}};
  lim.per_inv[WF_LIM_MESSAGES] = 2;
  lim.per_step[WF_LIM_MESSAGES] = 2;
  wf_run_t *r = start_lim(g, &lim);
  drive_finished(1);
  CHECK_INT(wf_run_status(r), WF_RUN_COMPLETED);
  CHECK_INT(count_ev(r, WF_EV_EXECUTOR_FAILED), 2);
  CHECK_INT(count_ev(r, WF_EV_EXECUTOR_INVOKED), 5); /* 3 + 2 of e1 */
  wf_run_free(r);
  wf_graph_free(g);
  teardown_all();
}

static void test_limit_aborts_running(void) {
  setup();
  /* the host swallows the refusal and never completes: the scheduler
   * aborts the invocation from a deferred node and fails the run; a
   * sibling still running is aborted too; the next run works */
  wf_graph_t *g = mkg(4, NULL);
  int t[] = {1, 2};
  fo(g, 0, t, 2);
  ed(g, 1, 3, NULL);
  ed(g, 2, 3, NULL);
  fin(g);
  BEH[0] = b_fwd;
  BEH[1] = b_spam;
  BEH[2] = b_hang;
  BEH[3] = b_out;
  spam_kind = WF_LIM_EVENTS;
  spam_n = 4;
  spam_ok = 0;
  spam_end = 2;
  spam_err[0] = 0;
  wf_run_limits_t lim = {{0}, {0}};
  lim.per_inv[WF_LIM_EVENTS] = 3;
  wf_run_t *r = start_lim(g, &lim);
  drive_finished(1);
  CHECK_INT(wf_run_status(r), WF_RUN_FAILED);
  CHECK_STR(wf_run_error(r), "executor 'e1' failed in superstep 1: "
                             "limits.events_per_invocation (3) exceeded");
  CHECK_INT(naborted, 2); /* e1 (capped) and e2 (sibling) */
  CHECK_INT(count_ev(r, WF_EV_CUSTOM), 2); /* kept events of the failure */
  CHECK_INT(count_ev(r, WF_EV_LOG), 1);
  wf_run_free(r);

  /* the process is healthy: the same graph runs to completion next */
  BEH[1] = b_fwd;
  BEH[2] = b_fwd;
  nfinished = 0;
  r = start_lim(g, &lim);
  drive_finished(1);
  CHECK_INT(wf_run_status(r), WF_RUN_COMPLETED);
  wf_run_free(r);
  wf_graph_free(g);
  teardown_all();
}

static int wait_rc;
static char wait_err[sizeof(wf_err_t)];

/* Pass the message limit, then try to suspend on a request. */
static void b_spam_wait(wf_run_t *r, wf_inv_t *inv) {
  wf_err_t err;
  wf_run_send(r, inv->seq, hv_int(1), -1, &err);
  wf_run_send(r, inv->seq, hv_int(2), -1, &err);
  wait_rc = wf_run_inv_wait(r, inv->seq, &err);
  snprintf(wait_err, sizeof wait_err, "%s", err.msg);
  done(r, inv, 1, NULL);
}

static void test_limit_defaults(void) {
  setup();
  wf_graph_t *g = mkg(2, NULL);
  ed(g, 0, 1, NULL);
  fin(g);
  wf_err_t err;
  wf_run_opts_t o = {0};
  o.limits.per_step[WF_LIM_STATE_WRITES] = -1;
  CHECK(wf_run_new(S, g, &o, &err) == NULL);
  CHECK_STR(err.msg, "limits.state_writes_per_superstep must be >= 1 "
                     "(0: the default)");
  CHECK_STR(wf_run_limit_name(WF_LIM_EVENTS, 0), "events_per_invocation");
  CHECK(wf_run_limit_name(WF_LIM__COUNT, 0) == NULL);

  /* a capped invocation cannot suspend on a request */
  BEH[0] = b_spam_wait;
  BEH[1] = b_nop;
  wf_run_limits_t lim = {{0}, {0}};
  lim.per_inv[WF_LIM_MESSAGES] = 1;
  wf_run_t *r = start_lim(g, &lim);
  drive_finished(1);
  CHECK_INT(wait_rc, WF_ERR);
  CHECK_STR(wait_err, "limits.messages_per_invocation (1) exceeded");
  CHECK_INT(wf_run_status(r), WF_RUN_FAILED);
  wf_run_free(r);

  /* the defaults: 100,000 per invocation, 1,000,000 per superstep */
  BEH[0] = b_spam;
  spam_kind = WF_LIM_MESSAGES;
  spam_n = WF_LIMIT_PER_INV_DEFAULT + 1;
  spam_ok = 0;
  spam_end = 0;
  spam_err[0] = 0;
  nfinished = 0;
  memset(&lim, 0, sizeof lim);
  r = start_lim(g, &lim);
  const wf_run_limits_t *l = wf_run_limits(r);
  for (int k = 0; k < WF_LIM__COUNT; k++) {
    CHECK_INT(l->per_inv[k], 100000);
    CHECK_INT(l->per_step[k], 1000000);
  }
  drive_finished(1);
  CHECK_INT(spam_ok, 100000);
  CHECK_STR(wf_run_error(r), "executor 'e0' failed in superstep 0: "
                             "limits.messages_per_invocation (100000) "
                             "exceeded");
  wf_run_free(r);
  wf_graph_free(g);
  teardown_all();
}

int main(void) {
  RUN(test_swap_graph_checks_reducers);
  RUN(test_chain_events);
  RUN(test_event_batches);
  RUN(test_long_chain_and_ids);
  RUN(test_loop_with_exit);
  RUN(test_max_supersteps);
  RUN(test_terminal_sends_and_condition_error);
  RUN(test_deterministic_events);
  RUN(test_async_fanout_fanin);
  RUN(test_timer_completion);
  RUN(test_retries);
  RUN(test_retries_exhausted);
  RUN(test_no_retry);
  RUN(test_timeout);
  RUN(test_on_error_continue);
  RUN(test_failure_aborts_siblings);
  RUN(test_failure_publishes_finished);
  RUN(test_max_concurrency);
  RUN(test_sync_concurrency_no_recursion);
  RUN(test_cancel_running);
  RUN(test_cancel_pending_and_free_running);
  RUN(test_run_fail);
  RUN(test_reentrant_hooks);
  RUN(test_targeted_and_stale);
  RUN(test_state);
  RUN(test_reducer_failure_fails_run);
  RUN(test_run_options);
  RUN(test_many_runs);
  RUN(test_limit_per_invocation);
  RUN(test_limit_per_superstep);
  RUN(test_limit_retry_counts);
  RUN(test_limit_aborts_running);
  RUN(test_limit_defaults);
  free(EV);
  return harness_end(__FILE__);
}
