/* sched.c — the superstep scheduler: runs of a finalized graph, executed in
 * bulk-synchronous supersteps on a wf_loop. A run advances only from its
 * deferred node (never inside a host call): it routes the messages committed
 * by the previous superstep, starts one invocation per delivery (capped by
 * max_concurrency; see inv.c for invocations), waits for the barrier, then
 * commits sends, outputs, events and state writes in invocation order, and
 * ends the run (completed, failed, max_supersteps, cancelled). The limits
 * on what invocations buffer are counted per superstep here and per
 * invocation in inv.c. Per-run
 * arrays (invocations, records, deliveries, pending messages) are reused
 * across supersteps: no malloc per invocation in steady state. Host calls
 * re-entering a run (cancel or free from inside a hook) are safe: teardown
 * and freeing wait until the outermost frame of the run unwinds (busy
 * count). Depends on sched_int.h (loop, graph, route, state, event). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "sched_int.h"

/* Invocations started (plus supersteps begun) per advance before the run
 * yields back to the loop so other runs progress. */
#define WF_SCHED_BUDGET 4096

static void advance(wf_run_t *r);
static void teardown(wf_run_t *r);
static void really_free(wf_run_t *r);

/* ---- scheduler ---------------------------------------------------------- */

/* 64 random bits from the kernel (getrandom, else /dev/urandom, else time). */
static uint64_t seed64(void) {
  uint64_t x = 0;
  if (getrandom(&x, sizeof x, GRND_NONBLOCK) == (ssize_t)sizeof x) return x;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = read(fd, &x, sizeof x);
    close(fd);
    if (n == (ssize_t)sizeof x) return x;
  }
  return (uint64_t)(wf_time_mono() * 1e9) ^ (uint64_t)getpid() << 32;
}

/* A scheduler on loop l sharing the host's value table. */
wf_sched_t *wf_sched_new(wf_loop_t *l, wf_vals_t *vals,
                         const wf_sched_hooks_t *hooks) {
  wf_sched_t *s = wf_xcalloc(1, sizeof *s);
  s->loop = l;
  s->vals = vals;
  if (hooks) s->h = *hooks;
  s->rh = s->h.route;
  s->rh.ud = s->h.ud;
  s->rnd = seed64() | 1;
  return s;
}

/* Cancel and free every run, then the scheduler. Must not be called from
 * inside a hook of one of its runs. */
void wf_sched_free(wf_sched_t *s) {
  if (!s) return;
  while (s->runs) {
    if (s->runs->busy) {
      fprintf(stderr, "weft: wf_sched_free called from inside a run\n");
      abort();
    }
    wf_run_free(s->runs);
  }
  free(s);
}

/* Runs started and not yet terminal. */
int wf_sched_active(const wf_sched_t *s) { return s->nactive; }

/* ---- publishing and leaving --------------------------------------------- */

/* Append ev to the log (kept, or until handed to hooks->events); takes
 * ownership of ev's contents. The hook gets it in a batch (wf_sched_flush)
 * when the run's outermost frame unwinds, or before an executor starts. */
void wf_sched_publish(wf_run_t *r, wf_event_t *ev) {
  if (!wf_sched_wanted(r)) {
    wf_event_clear(ev, r->s->vals);
    return;
  }
  ev->ts = wf_time_wall();
  wf_evlog_push(&r->log, ev);
  if (!r->busy) { /* (every caller enters the run first) */
    wf_sched_enter(r);
    wf_sched_leave(r);
  }
}

/* Hand the events published since the last flush to hooks->events, in
 * order, WF_EV_BATCH at a time (the hook may publish more: they follow in
 * the same flush), then drop them unless the log is kept. A flush already
 * on the stack (the hook's own publishing) does it. */
void wf_sched_flush(wf_run_t *r) {
  wf_sched_t *s = r->s;
  if (r->flushing || r->nflushed == r->log.n) return;
  r->flushing = 1;
  while (r->listen && !r->dead && r->nflushed < r->log.n) {
    size_t from = r->nflushed, k = r->log.n - from;
    if (k > WF_EV_BATCH) k = WF_EV_BATCH;
    r->nflushed = from + k;
    s->h.events(s->h.ud, r, r->log.v + from, k);
  }
  r->flushing = 0;
  if (!r->keep) {
    for (size_t i = 0; i < r->log.n; i++) wf_event_clear(&r->log.v[i], s->vals);
    r->log.n = 0;
  }
  r->nflushed = r->log.n;
}

/* Stop or resume handing the run's events to hooks->events. */
void wf_run_listen(wf_run_t *r, int on) {
  if (r) r->listen = on && r->s->h.events;
}

/* Outermost leave: tear down a terminal run, free a run marked dead. */
void wf_sched_leave_outer(wf_run_t *r) {
  wf_sched_flush(r);
  /* a log not kept is empty now: a run waiting in the loop holds none */
  if (!r->keep && r->log.cap && !r->flushing) wf_evlog_free(&r->log, r->s->vals);
  if (wf_sched_terminal(r->status) && !r->torn) teardown(r);
  r->busy = 0;
  if (r->dead) really_free(r);
}

/* ---- ending a superstep or a run ---------------------------------------- */

/* Forget the superstep's invocations (records must be consumed already). */
static void end_step(wf_run_t *r) {
  for (size_t i = 0; i < r->ninv; i++) {
    wf_inv_t *p = &r->invs[i].pub;
    for (int k = 0; k < p->nerrors; k++) {
      free(p->errors[k].message);
      free(p->errors[k].traceback);
    }
    free(p->errors);
    p->errors = NULL;
    p->nerrors = 0;
  }
  r->nrec = 0;
  r->nstate = 0;
  wf_dvec_clear(&r->deliv, r->s->vals);
  r->ninv = 0;
  r->nrseq = 0;
  r->in_step = 0;
  r->capped = -1;
  r->qhead = r->qtail = -1;
  r->running = r->remaining = 0;
}

/* Release everything a terminal run holds besides its results (outputs,
 * events, state, fan-in buffers stay until free). */
static void teardown(wf_run_t *r) {
  wf_vals_t *vals = r->s->vals;
  for (size_t i = 0; i < r->ninv; i++) wf_inv_timer_stop(r, &r->invs[i]);
  for (size_t i = 0; i < r->nrec; i++) wf_inv_rec_drop(r, &r->recs[i]);
  end_step(r);
  for (size_t i = 0; i < r->npend; i++) wf_vals_release(vals, r->pend[i].msg);
  r->npend = 0;
  for (size_t i = 0; i < r->nconf; i++) {
    free(r->conf[i].key);
    free(r->conf[i].ints);
  }
  r->nconf = 0;
  wf_vals_release(vals, r->input);
  r->input = 0;
  wf_sched_writes_clear(r);
  r->torn = 1;
}

/* Release the state writes kept for the checkpoint of the last commit. */
void wf_sched_writes_clear(wf_run_t *r) {
  for (size_t i = 0; i < r->nwrites; i++) {
    free((char *)r->writes[i].key);
    wf_vals_release(r->s->vals, r->writes[i].v);
  }
  r->nwrites = 0;
}

/* Abort every running invocation and stop every timer. */
static void abort_all(wf_run_t *r) {
  wf_sched_t *s = r->s;
  for (size_t i = 0; i < r->ninv; i++) {
    wf_invx_t *x = &r->invs[i];
    wf_inv_timer_stop(r, x);
    if (x->pub.state == WF_INV_WAITING) {
      r->nwaiting--;
    } else if (x->pub.state == WF_INV_RUNNING) {
      r->running--;
    } else {
      continue;
    }
    x->pub.state = WF_INV_FAILED;
    x->aborted = 1;
    if (s->h.abort) s->h.abort(s->h.ud, r, &x->pub);
  }
}

/* Publish the buffered events (not outputs or sends) of the invocations
 * that finished, in invocation order: the superstep is not committed. */
static void publish_finished(wf_run_t *r) {
  for (size_t i = 0; i < r->ninv; i++) {
    wf_invx_t *x = &r->invs[i];
    if (x->aborted || (x->pub.state != WF_INV_DONE &&
                       x->pub.state != WF_INV_FAILED))
      continue;
    for (int k = x->rhead; k >= 0; k = r->recs[k].next) {
      wf_rec_t *c = &r->recs[k];
      if (c->kind != REC_EVENT) continue;
      wf_event_t ev = c->ev;
      c->kind = REC_NONE;
      wf_sched_publish(r, &ev);
    }
    if (x->pub.state == WF_INV_DONE)
      wf_sched_publish_simple(r, WF_EV_EXECUTOR_COMPLETED, x->pub.exec,
                     x->pub.attempt);
  }
}

/* Move the run to a terminal status: abort what runs, wf_sched_publish (optionally
 * the finished invocations' events, then) the terminal event, and queue the
 * finished hook. Always called inside enter/leave. */
void wf_sched_end(wf_run_t *r, wf_run_status_t st, const char *error,
                    int with_invs) {
  if (wf_sched_terminal(r->status)) return;
  if (r->started) r->s->nactive--;
  r->status = st;
  r->t_end = wf_time_mono();
  free(r->error);
  r->error = error ? wf_xstrdup(error) : NULL;
  abort_all(r);
  if (with_invs) publish_finished(r);
  int type = st == WF_RUN_COMPLETED ? WF_EV_WORKFLOW_COMPLETED
             : st == WF_RUN_FAILED  ? WF_EV_WORKFLOW_FAILED
                                    : WF_EV_WORKFLOW_CANCELLED;
  wf_event_t ev = wf_sched_event(r, type, -1, 0);
  ev.str = error ? wf_xstrdup(error) : NULL;
  wf_sched_publish(r, &ev);
  if (!r->dead) wf_loop_defer(r->s->loop, &r->fin);
}

/* ---- supersteps --------------------------------------------------------- */

static void sort_pending(wf_run_t *r) {
  size_t n = r->npend, i;
  for (i = 1; i < n; i++)
    if (r->pend[i].src < r->pend[i - 1].src) break;
  if (i >= n) return;
  WF_GROW(r->ptmp, r->cptmp, n);
  wf_pmsg_t *a = r->pend, *b = r->ptmp;
  for (size_t w = 1; w < n; w *= 2) {
    for (size_t lo = 0; lo < n; lo += 2 * w) {
      size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
      size_t p = lo, q = mid, k = lo;
      while (p < mid && q < hi) b[k++] = a[q].src < a[p].src ? a[q++] : a[p++];
      while (p < mid) b[k++] = a[p++];
      while (q < hi) b[k++] = a[q++];
    }
    wf_pmsg_t *t = a;
    a = b;
    b = t;
  }
  if (a != r->pend) { /* result sits in the scratch array: swap buffers */
    r->ptmp = r->pend;
    r->pend = a;
    size_t c = r->cptmp;
    r->cptmp = r->cpend;
    r->cpend = c;
  }
}

/* Publish the message_undelivered event of pending message pm (its message
 * m is still held by the caller), refused by edges ref[0..n-1]. */
static void publish_undelivered(wf_run_t *r, const wf_pmsg_t *pm, wf_val_t m,
                                const int *ref, int n) {
  if (!wf_sched_wanted(r)) return;
  wf_event_t ev = wf_sched_event(r, WF_EV_MESSAGE_UNDELIVERED, pm->src, 0);
  if (pm->only >= 0) ev.str2 = wf_xstrdup(wf_sched_exec_id(r, pm->only));
  ev.ints = wf_xcalloc((size_t)n, sizeof *ev.ints);
  memcpy(ev.ints, ref, (size_t)n * sizeof *ev.ints);
  ev.nints = n;
  wf_vals_retain(r->s->vals, m);
  ev.data = m;
  wf_sched_publish(r, &ev);
}

/* The run's error when max_supersteps is reached with deliveries left:
 * names the limit, the executors still active and how to raise it. */
static void fail_max_steps(wf_run_t *r) {
  char msg[sizeof(((wf_err_t *)0)->msg)];
  int n = snprintf(msg, sizeof msg,
                   "max_supersteps (%d) exceeded with executors still active:",
                   r->max_steps);
  int shown = 0;
  for (size_t i = 0; i < r->deliv.n && n < (int)sizeof msg; i++) {
    int x = r->deliv.v[i].exec, seen = 0;
    for (size_t j = 0; j < i && !seen; j++) seen = r->deliv.v[j].exec == x;
    if (seen) continue;
    if (shown == 8) {
      n += snprintf(msg + n, sizeof msg - (size_t)n, " ...");
      break;
    }
    n += snprintf(msg + n, sizeof msg - (size_t)n, "%s '%s'", shown ? "," : "",
                  wf_sched_exec_id(r, x));
    shown++;
  }
  if (n < (int)sizeof msg)
    snprintf(msg + n, sizeof msg - (size_t)n,
             "; raise the limit with the run option max_supersteps "
             "(workflow :defaults{max_supersteps = n}, weft run "
             "--max-supersteps N) if the loop is meant to run longer");
  wf_sched_end(r, WF_RUN_FAILED, msg, 0);
}

/* Begin the next superstep: route the pending messages (or deliver the
 * input), then create and queue the invocations. May end the run. */
static void step_begin(wf_run_t *r) {
  wf_sched_t *s = r->s;
  wf_sched_writes_clear(r);
  if (r->nsteps == 0) {
    r->superstep = 0;
    wf_event_t ev = wf_sched_event(r, WF_EV_WORKFLOW_STARTED, -1, 0);
    wf_sched_publish(r, &ev);
    if (r->status != WF_RUN_RUNNING) return;
    wf_dvec_push(&r->deliv, (wf_delivery_t){r->g->start, -1, r->input});
    r->input = 0;
  } else {
    wf_err_t err;
    if (r->nsteps == r->restored_at && !r->announced) {
      /* a restored run announces itself once, then routes its checkpoint */
      r->announced = 1;
      wf_event_t ev = wf_sched_event(r, WF_EV_WORKFLOW_STARTED, -1, 0);
      wf_sched_publish(r, &ev);
      if (r->status != WF_RUN_RUNNING) return;
    }
    sort_pending(r);
    for (size_t i = 0; i < r->npend; i++) {
      wf_pmsg_t *pm = &r->pend[i];
      wf_val_t m = pm->msg;
      pm->msg = 0;
      int rc = wf_route_message(r->route, &s->rh, pm->src, m, pm->only,
                                &r->deliv, &err);
      const int *ref;
      int nref = wf_route_refused(r->route, &ref);
      if (nref > 0 && r->status == WF_RUN_RUNNING)
        publish_undelivered(r, pm, m, ref, nref);
      wf_vals_release(s->vals, m);
      if (r->status != WF_RUN_RUNNING) return; /* a hook ended the run */
      if (rc != WF_OK) {
        wf_sched_end(r, WF_RUN_FAILED, err.msg, 0);
        return;
      }
    }
    r->npend = 0;
    wf_route_flush(r->route, &s->rh, &r->deliv);
    if (r->deliv.n == 0) {
      wf_sched_end(r, WF_RUN_COMPLETED, NULL, 0);
      return;
    }
    if (r->nsteps >= r->max_steps) {
      fail_max_steps(r);
      return;
    }
  }
  r->superstep = r->nsteps++;
  wf_sched_publish_simple(r, WF_EV_SUPERSTEP_STARTED, -1, 0);
  if (r->status != WF_RUN_RUNNING) return;

  size_t n = r->deliv.n;
  if (n > r->cinv) { /* no timer is active between supersteps */
    WF_GROW(r->invs, r->cinv, n);
  }
  r->seq_base = r->seq_next;
  r->seq_next += (uint32_t)n;
  for (size_t i = 0; i < n; i++) {
    wf_invx_t *x = &r->invs[i];
    x->pub.seq = r->seq_base + (uint32_t)i;
    x->pub.exec = r->deliv.v[i].exec;
    x->pub.order = (int)i;
    x->pub.msg = r->deliv.v[i].msg;
    x->pub.attempt = 1;
    x->pub.state = WF_INV_QUEUED;
    x->pub.errors = NULL;
    x->pub.nerrors = 0;
    x->pub.host = NULL;
    x->pub.priv = NULL;
    x->run = r;
    x->rhead = x->rtail = -1;
    x->qnext = i + 1 < n ? (int)i + 1 : -1;
    x->aborted = 0;
    x->timer_on = 0;
    x->capped = 0;
    memset(x->cnt, 0, sizeof x->cnt);
  }
  memset(r->nstep, 0, sizeof r->nstep);
  r->ninv = n;
  r->qhead = 0;
  r->qtail = (int)n - 1;
  r->running = 0;
  r->remaining = (int)n;
  r->nrseq = 0;
  r->in_step = 1;
}

/* Conflict callback of wf_state_end: writers are invocation orders. */
static void collect_conflict(void *ud, const char *key, const int *writers,
                             int n) {
  wf_run_t *r = ud;
  if (r->nconf == r->cconf) WF_GROW(r->conf, r->cconf, r->nconf + 1);
  wf_conf_t *c = &r->conf[r->nconf++];
  c->key = wf_xstrdup(key);
  c->ints = wf_xmalloc((size_t)n * sizeof *c->ints);
  for (int i = 0; i < n; i++) c->ints[i] = r->invs[writers[i]].pub.exec;
  c->n = n;
}

/* The barrier is reached: apply state writes, then publish and commit every
 * invocation's records in invocation order, conflicts, superstep_completed.
 * Stops early (leaving the rest to teardown) if a hook ends the run. */
static void commit(wf_run_t *r) {
  wf_sched_t *s = r->s;
  if (r->nstate > 0) {
    wf_err_t err;
    wf_state_begin(r->state);
    for (size_t i = 0; i < r->ninv; i++) {
      wf_invx_t *x = &r->invs[i];
      for (int k = x->rhead; k >= 0; k = r->recs[k].next) {
        wf_rec_t *c = &r->recs[k];
        if (c->kind != REC_STATE) continue;
        char *key = c->key;
        wf_val_t v = c->v;
        c->kind = REC_NONE;
        c->key = NULL;
        c->v = 0;
        r->nstate--;
        if (r->durable) {
          WF_GROW(r->writes, r->cwrites, r->nwrites + 1);
          r->writes[r->nwrites++] = (wf_write_t){wf_xstrdup(key), v};
          wf_vals_retain(s->vals, v);
        }
        int rc = wf_state_apply(r->state, key, v, x->pub.order, s->h.reduce,
                                s->h.ud, &err);
        free(key);
        if (r->status != WF_RUN_RUNNING) {
          wf_state_abort(r->state);
          return;
        }
        if (rc != WF_OK) {
          wf_state_abort(r->state);
          wf_sched_end(r, WF_RUN_FAILED, err.msg, 1);
          return;
        }
      }
    }
    wf_state_end(r->state, collect_conflict, r);
  }
  for (size_t i = 0; i < r->ninv; i++) {
    wf_invx_t *x = &r->invs[i];
    for (int k = x->rhead; k >= 0; k = r->recs[k].next) {
      wf_rec_t *c = &r->recs[k];
      wf_event_t ev;
      switch (c->kind) {
      case REC_SEND:
        if (r->npend == r->cpend) WF_GROW(r->pend, r->cpend, r->npend + 1);
        r->pend[r->npend++] = (wf_pmsg_t){x->pub.exec, c->target, c->v};
        c->kind = REC_NONE;
        continue;
      case REC_OUTPUT:
        if (r->nout == r->cout) WF_GROW(r->outs, r->cout, r->nout + 1);
        r->outs[r->nout++] = c->v;
        c->kind = REC_NONE;
        ev = wf_sched_event(r, WF_EV_OUTPUT, x->pub.exec, x->pub.attempt);
        wf_vals_retain(s->vals, c->v);
        ev.data = c->v;
        break;
      case REC_EVENT:
        ev = c->ev;
        c->kind = REC_NONE;
        break;
      default:
        continue;
      }
      wf_sched_publish(r, &ev);
      if (r->status != WF_RUN_RUNNING) return;
    }
    if (x->pub.state == WF_INV_DONE) {
      wf_sched_publish_simple(r, WF_EV_EXECUTOR_COMPLETED, x->pub.exec,
                     x->pub.attempt);
      if (r->status != WF_RUN_RUNNING) return;
    }
  }
  for (size_t i = 0; i < r->nconf; i++) {
    wf_event_t ev = wf_sched_event(r, WF_EV_STATE_CONFLICT, -1, 0);
    ev.str = r->conf[i].key;
    ev.ints = r->conf[i].ints;
    ev.nints = r->conf[i].n;
    r->conf[i].key = NULL;
    r->conf[i].ints = NULL;
    wf_sched_publish(r, &ev);
    if (r->status != WF_RUN_RUNNING) return;
  }
  r->nconf = 0;
  wf_sched_publish_simple(r, WF_EV_SUPERSTEP_COMPLETED, -1, 0);
  if (r->status != WF_RUN_RUNNING) return;
  end_step(r);
}

/* Advance the run as far as it goes without waiting: start queued
 * invocations, commit at the barrier, begin the next superstep; yield back
 * to the loop after a budget of work. */
static void advance(wf_run_t *r) {
  if (r->in_advance) return; /* the advance on the stack re-checks */
  if (r->status == WF_RUN_PENDING) {
    if (!r->started) return;
    r->status = WF_RUN_RUNNING;
  }
  wf_sched_enter(r);
  r->in_advance = 1;
  int budget = WF_SCHED_BUDGET;
  while (r->status == WF_RUN_RUNNING && !r->ckpt_wait) {
    if (r->qhead >= 0 && (!r->max_conc || r->running < r->max_conc)) {
      if (budget-- <= 0) {
        wf_loop_defer(r->s->loop, &r->adv);
        break;
      }
      wf_inv_start(r, wf_inv_dequeue(r));
      continue;
    }
    if (r->remaining > 0) { /* waiting for completions or timers */
      if (r->nwaiting > 0 && r->nwaiting == r->remaining && r->qhead < 0) {
        r->status = WF_RUN_IDLE; /* every unfinished one waits on a human */
        wf_sched_publish_simple(r, WF_EV_WORKFLOW_IDLE, -1, 0);
        wf_loop_defer(r->s->loop, &r->fin);
      }
      break;
    }
    if (r->in_step) {
      commit(r);
      if (r->status == WF_RUN_RUNNING && !r->in_step && r->durable &&
          r->s->h.checkpoint &&
          r->s->h.checkpoint(r->s->h.ud, r) == WF_AGAIN)
        r->ckpt_wait = 1;
      continue;
    }
    if (budget-- <= 0) {
      wf_loop_defer(r->s->loop, &r->adv);
      break;
    }
    step_begin(r);
  }
  r->in_advance = 0;
  wf_sched_leave(r);
}

/* Deferred node: advance. */
static void adv_cb(wf_defer_t *d) { advance(container_of(d, wf_run_t, adv)); }

/* Deferred node: tell the host the run ended. */
static void fin_cb(wf_defer_t *d) {
  wf_run_t *r = container_of(d, wf_run_t, fin);
  wf_sched_enter(r);
  if (!r->dead && r->s->h.finished) r->s->h.finished(r->s->h.ud, r);
  wf_sched_leave(r);
}

/* ---- runs --------------------------------------------------------------- */

/* Next value of the scheduler's xorshift generator. */
static uint64_t next_rand(wf_sched_t *s) {
  uint64_t x = s->rnd;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return s->rnd = x;
}


/* A new run id "run-N-XXXXXXXX" (N the counter, X eight hex digits of
 * rnd), malloc'd; written by hand: snprintf was 5% of a short run. */
static char *run_id(uint64_t n, uint32_t rnd) {
  static const char hex[] = "0123456789abcdef";
  char digits[24], *id;
  int nd = 0;
  do {
    digits[nd++] = (char)('0' + n % 10);
    n /= 10;
  } while (n);
  id = wf_xmalloc(4 + (size_t)nd + 1 + 8 + 1);
  memcpy(id, "run-", 4);
  for (int i = 0; i < nd; i++) id[4 + i] = digits[nd - 1 - i];
  id[4 + nd] = '-';
  for (int i = 0; i < 8; i++) id[5 + nd + i] = hex[(rnd >> (28 - 4 * i)) & 15];
  id[13 + nd] = 0;
  return id;
}

/* Create a (pending) run of finalized graph g. */
wf_run_t *wf_run_new(wf_sched_t *s, const wf_graph_t *g,
                     const wf_run_opts_t *o, wf_err_t *err) {
  wf_run_opts_t def;
  if (!o) {
    memset(&def, 0, sizeof def);
    o = &def;
  }
  if (!g || !g->finalized) {
    wf_err_set(err, "workflow '%s' is not built", g ? g->name : "?");
    return NULL;
  }
  if (o->max_supersteps < 0) {
    wf_err_set(err, "max_supersteps must be >= 1");
    return NULL;
  }
  if (o->max_concurrency < 0) {
    wf_err_set(err, "max_concurrency must be >= 0");
    return NULL;
  }
  for (int k = 0; k < WF_LIM__COUNT; k++)
    for (int step = 0; step < 2; step++)
      if ((step ? o->limits.per_step : o->limits.per_inv)[k] < 0) {
        wf_err_set(err, "limits.%s must be >= 1 (0: the default)",
                   wf_run_limit_name(k, step));
        return NULL;
      }
  wf_run_t *r = wf_xcalloc(1, sizeof *r);
  r->s = s;
  r->g = g;
  s->counter++;
  if (o->id && *o->id) {
    r->id = wf_xstrdup(o->id);
  } else {
    r->id = run_id(s->counter, (uint32_t)(next_rand(s) >> 32));
  }
  r->status = WF_RUN_PENDING;
  r->max_steps = o->max_supersteps ? o->max_supersteps : 100;
  r->max_conc = o->max_concurrency;
  r->keep = o->keep_events;
  r->listen = o->listen && s->h.events;
  r->durable = o->durable;
  for (int k = 0; k < WF_LIM__COUNT; k++) {
    int a = o->limits.per_inv[k], b = o->limits.per_step[k];
    r->lim.per_inv[k] = a ? a : WF_LIMIT_PER_INV_DEFAULT;
    r->lim.per_step[k] = b ? b : WF_LIMIT_PER_STEP_DEFAULT;
  }
  r->capped = -1;
  r->cap.cb = wf_inv_cap_cb;
  r->host = o->host;
  r->route = wf_route_new(g, s->vals);
  wf_route_set_strict(r->route, o->undelivered_error);
  r->state = wf_state_new(g, s->vals);
  r->qhead = r->qtail = -1;
  r->adv.cb = adv_cb;
  r->fin.cb = fin_cb;
  r->next = s->runs;
  if (s->runs) s->runs->prev = r;
  s->runs = r;
  return r;
}

/* Start the run with input (reference taken); execution is deferred. */
int wf_run_start(wf_run_t *r, wf_val_t input, wf_err_t *err) {
  if (r->started || r->status != WF_RUN_PENDING) {
    wf_vals_release(r->s->vals, input);
    return wf_err_set(err, "run '%s' was already started", r->id);
  }
  r->input = input;
  r->started = 1;
  r->t_start = wf_time_mono();
  r->s->nactive++;
  wf_loop_defer(r->s->loop, &r->adv);
  return WF_OK;
}

/* Cancel a run that is not wf_sched_terminal (also valid while pending). */
void wf_run_cancel(wf_run_t *r) {
  if (!r || wf_sched_terminal(r->status)) return;
  wf_sched_enter(r);
  wf_sched_end(r, WF_RUN_CANCELLED, NULL, 0);
  wf_sched_leave(r);
}

/* Fail a run that is not terminal (also valid while pending or idle). */
void wf_run_fail(wf_run_t *r, const char *msg) {
  if (!r || wf_sched_terminal(r->status)) return;
  wf_sched_enter(r);
  wf_sched_end(r, WF_RUN_FAILED, msg && *msg ? msg : "run failed", 0);
  wf_sched_leave(r);
}

/* Free everything; the run is unlinked from its scheduler. */
static void really_free(wf_run_t *r) {
  wf_sched_t *s = r->s;
  wf_vals_t *vals = s->vals;
  if (!r->torn) teardown(r);
  if (r->started && !wf_sched_terminal(r->status)) s->nactive--;
  wf_loop_undefer(s->loop, &r->adv);
  wf_loop_undefer(s->loop, &r->fin);
  wf_loop_undefer(s->loop, &r->cap);
  if (r->prev)
    r->prev->next = r->next;
  else
    s->runs = r->next;
  if (r->next) r->next->prev = r->prev;
  wf_route_free(r->route);
  wf_state_free(r->state);
  wf_dvec_free(&r->deliv);
  free(r->invs);
  free(r->rseq);
  free(r->recs);
  free(r->pend);
  free(r->ptmp);
  free(r->conf);
  free(r->writes);
  for (size_t i = 0; i < r->nout; i++) wf_vals_release(vals, r->outs[i]);
  free(r->outs);
  wf_evlog_free(&r->log, vals);
  free(r->error);
  free(r->id);
  free(r);
}

/* Free a run, cancelling it first when it is running; from inside one of
 * the run's hooks the free happens when the hook returns. */
void wf_run_free(wf_run_t *r) {
  if (!r) return;
  wf_sched_enter(r);
  if (r->started && !wf_sched_terminal(r->status))
    wf_sched_end(r, WF_RUN_CANCELLED, NULL, 0);
  if (r->busy == 1) wf_sched_flush(r); /* the host still listens here */
  r->dead = 1;
  wf_sched_leave(r);
}

/* ---- accessors ---------------------------------------------------------- */

/* The run id. */
const char *wf_run_id(const wf_run_t *r) { return r->id; }
/* The run status. */
wf_run_status_t wf_run_status(const wf_run_t *r) { return r->status; }
/* The graph the run executes. */
const wf_graph_t *wf_run_graph(const wf_run_t *r) { return r->g; }
/* The host pointer given in the options. */
void *wf_run_host(const wf_run_t *r) { return r->host; }
/* Error message of a failed run, else NULL. */
const char *wf_run_error(const wf_run_t *r) { return r->error; }
/* Supersteps executed. */
int wf_run_supersteps(const wf_run_t *r) { return r->nsteps; }
/* Current (or last) superstep index. */
int wf_run_superstep(const wf_run_t *r) { return r->superstep; }
/* The committed shared state. */
const wf_state_t *wf_run_state(const wf_run_t *r) { return r->state; }
/* The limits in force (defaults filled in). */
const wf_run_limits_t *wf_run_limits(const wf_run_t *r) { return &r->lim; }

/* "pending", "running", ... */
const char *wf_run_status_name(wf_run_status_t st) {
  static const char *const names[] = {"pending", "running", "completed",
                                      "idle",    "failed",  "cancelled"};
  return (st >= WF_RUN_PENDING && st <= WF_RUN_CANCELLED) ? names[st] : "?";
}

/* Committed outputs (borrowed). */
const wf_val_t *wf_run_outputs(const wf_run_t *r, int *n) {
  if (n) *n = (int)r->nout;
  return r->outs;
}

/* The kept event log. */
const wf_event_t *wf_run_events(const wf_run_t *r, size_t *n) {
  if (n) *n = r->keep ? r->log.n : 0;
  return r->keep ? r->log.v : NULL;
}

/* Milliseconds from start to end, or to now while running. */
double wf_run_duration_ms(const wf_run_t *r) {
  if (!r->started) return 0;
  double end = wf_sched_terminal(r->status) ? r->t_end : wf_time_mono();
  return (end - r->t_start) * 1e3;
}


/* ---- durability --------------------------------------------------------- */

/* The checkpoint held by the hook is written (or failed). */
void wf_run_checkpoint_done(wf_run_t *r, int ok, const char *error) {
  if (!r || !r->ckpt_wait) return;
  wf_sched_enter(r);
  r->ckpt_wait = 0;
  if (!ok) {
    char msg[sizeof(wf_err_t)];
    snprintf(msg, sizeof msg, "checkpoint failed after superstep %d: %s",
             r->superstep, error ? error : "unknown error");
    wf_sched_end(r, WF_RUN_FAILED, msg, 0);
  } else if (r->status == WF_RUN_RUNNING) {
    wf_loop_defer(r->s->loop, &r->adv);
  }
  wf_sched_leave(r);
}

/* Invocations of the current superstep not finished yet. */
int wf_run_remaining(const wf_run_t *r) { return r->in_step ? r->remaining : 0; }

/* Messages committed and not yet routed. */
const wf_pending_t *wf_run_pending(const wf_run_t *r, size_t *n) {
  *n = r->npend;
  return (const wf_pending_t *)r->pend;
}

/* Raw state writes of the last commit (durable runs). */
const wf_write_t *wf_run_writes(const wf_run_t *r, size_t *n) {
  *n = r->nwrites;
  return r->writes;
}

/* Fan-in buffer of edge e, source position i. */
const wf_val_t *wf_run_fanin(const wf_run_t *r, int e, int i, int *n) {
  return wf_route_buffer(r->route, e, i, n);
}

/* Refuse restoring a run that already started; releases v. */
static int restorable(wf_run_t *r, wf_val_t v, wf_err_t *err) {
  if (r->started) {
    wf_vals_release(r->s->vals, v);
    return wf_err_set(err, "run '%s': cannot restore a started run", r->id);
  }
  return WF_OK;
}

/* The run resumes after supersteps_done supersteps. */
int wf_run_restore(wf_run_t *r, int supersteps_done, wf_err_t *err) {
  if (restorable(r, 0, err) != WF_OK) return WF_ERR;
  if (supersteps_done < 1)
    return wf_err_set(err, "restore: supersteps_done must be >= 1");
  r->nsteps = supersteps_done;
  r->superstep = supersteps_done - 1;
  r->restored_at = supersteps_done;
  return WF_OK;
}

/* A pending message of the checkpoint. */
int wf_run_restore_pending(wf_run_t *r, int src, int only, wf_val_t msg,
                           wf_err_t *err) {
  if (restorable(r, msg, err) != WF_OK) return WF_ERR;
  if (src < 0 || src >= r->g->nexec || only < -1 || only >= r->g->nexec) {
    wf_vals_release(r->s->vals, msg);
    return wf_err_set(err, "restore: pending message from executor #%d to "
                      "#%d is out of range", src, only);
  }
  WF_GROW(r->pend, r->cpend, r->npend + 1);
  r->pend[r->npend++] = (wf_pmsg_t){src, only, msg};
  return WF_OK;
}

/* A fan-in buffered message of the checkpoint. */
int wf_run_restore_fanin(wf_run_t *r, int edge, int pos, wf_val_t msg,
                         wf_err_t *err) {
  if (restorable(r, msg, err) != WF_OK) return WF_ERR;
  return wf_route_restore(r->route, edge, pos, msg, err);
}

/* A committed state key of the checkpoint. */
int wf_run_restore_state(wf_run_t *r, const char *key, wf_val_t v,
                         wf_err_t *err) {
  if (restorable(r, v, err) != WF_OK) return WF_ERR;
  wf_state_set(r->state, key, v);
  return WF_OK;
}

/* An output committed before the checkpoint. */
int wf_run_restore_output(wf_run_t *r, wf_val_t v, wf_err_t *err) {
  if (restorable(r, v, err) != WF_OK) return WF_ERR;
  WF_GROW(r->outs, r->cout, r->nout + 1);
  r->outs[r->nout++] = v;
  return WF_OK;
}

/* 1 when edges a and b of two graphs have the same shape. */
static int edge_same(const wf_edge_t *a, const wf_edge_t *b) {
  if (a->kind != b->kind || a->nsrc != b->nsrc || a->ntgt != b->ntgt ||
      a->dflt != b->dflt || a->has_select != b->has_select)
    return 0;
  for (int i = 0; i < a->nsrc; i++)
    if (a->srcs[i] != b->srcs[i]) return 0;
  for (int i = 0; i < a->ntgt; i++)
    if (a->tgts[i] != b->tgts[i] ||
        (a->has_cond ? a->has_cond[i] : 0) != (b->has_cond ? b->has_cond[i] : 0))
      return 0;
  return 1;
}

/* Switch a run to a compatible graph between supersteps: the same executor
 * ids in the same order, the same edges and the same state reducers (see
 * wf_graph_same_reducers); the reason says what differs. */
int wf_run_swap_graph(wf_run_t *r, const wf_graph_t *g, wf_err_t *err) {
  const wf_graph_t *o = r->g;
  if (!g || !g->finalized) return wf_err_set(err, "swap: the graph is not built");
  if (r->in_step) return wf_err_set(err, "swap: only between supersteps");
  if (g->nexec != o->nexec)
    return wf_err_set(err, "the executors changed (%d instead of %d)", g->nexec,
                      o->nexec);
  for (int i = 0; i < g->nexec; i++)
    if (strcmp(g->execs[i].id, o->execs[i].id) != 0)
      return wf_err_set(err, "the executors changed (executor %d is '%s', was '%s')",
                        i + 1, g->execs[i].id, o->execs[i].id);
  if (g->nedge != o->nedge)
    return wf_err_set(err, "the edges changed (%d instead of %d)", g->nedge,
                      o->nedge);
  for (int e = 0; e < g->nedge; e++)
    if (!edge_same(&g->edges[e], &o->edges[e])) {
      char lbl[256];
      return wf_err_set(err, "the edges changed (edge %d was %s)", e + 1,
                        wf_graph_edge_label(o, e, lbl, sizeof lbl));
    }
  if (wf_graph_same_reducers(o, g, err) != WF_OK) return WF_ERR;
  r->g = g;
  wf_route_set_graph(r->route, g);
  wf_state_set_graph(r->state, g);
  return WF_OK;
}
