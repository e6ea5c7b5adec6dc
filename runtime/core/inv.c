/* inv.c — invocations of the current superstep: starting an attempt, the
 * records an attempt buffers until the barrier (sends, outputs, events,
 * state writes), the start queue used by max_concurrency, per-attempt
 * timeouts and retry delays (ev_timers), failure handling (retry, continue,
 * or fail the run), the limits on buffered effects (an integer compare per
 * host call; past one the invocation fails and so does the run), and the
 * host calls made on behalf of a running invocation, keyed by seq.
 * Depends on sched_int.h and libev. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched_int.h"

/* Stop the invocation's timer if it runs. */
void wf_inv_timer_stop(wf_run_t *r, wf_invx_t *x) {
  if (!x->timer_on) return;
  ev_timer_stop(wf_loop_ev(r->s->loop), &x->timer);
  x->timer_on = 0;
}

static void timer_cb(struct ev_loop *evl, ev_timer *w, int revents);

/* Start the invocation's one-shot timer for `after` seconds. */
static void timer_start(wf_run_t *r, wf_invx_t *x, double after) {
  struct ev_loop *evl = wf_loop_ev(r->s->loop);
  wf_inv_timer_stop(r, x);
  /* count from now, not from libev's time cached before the Lua work that
   * preceded this call (a timeout or backoff would otherwise end early) */
  ev_now_update(evl);
  ev_timer_init(&x->timer, timer_cb, after, 0.);
  ev_timer_start(evl, &x->timer);
  x->timer_on = 1;
}

/* Append x to the start queue (state QUEUED). */
static void enqueue(wf_run_t *r, wf_invx_t *x) {
  int i = x->pub.order;
  x->pub.state = WF_INV_QUEUED;
  x->qnext = -1;
  if (r->qtail >= 0)
    r->invs[r->qtail].qnext = i;
  else
    r->qhead = i;
  r->qtail = i;
}

/* Pop the head of the start queue. */
wf_invx_t *wf_inv_dequeue(wf_run_t *r) {
  wf_invx_t *x = &r->invs[r->qhead];
  r->qhead = x->qnext;
  if (r->qhead < 0) r->qtail = -1;
  return x;
}

/* A new record of kind for x, linked at the end of its list. */
static wf_rec_t *rec_add(wf_run_t *r, wf_invx_t *x, int kind) {
  if (r->nrec == r->crec) WF_GROW(r->recs, r->crec, r->nrec + 1);
  int i = (int)r->nrec++;
  wf_rec_t *c = &r->recs[i];
  c->next = -1;
  c->kind = (uint8_t)kind;
  c->target = -1;
  c->v = 0;
  c->key = NULL;
  if (x->rtail >= 0)
    r->recs[x->rtail].next = i;
  else
    x->rhead = i;
  x->rtail = i;
  return c;
}

/* Release what a record still owns and mark it consumed. */
void wf_inv_rec_drop(wf_run_t *r, wf_rec_t *c) {
  switch (c->kind) {
  case REC_SEND:
  case REC_OUTPUT:
    wf_vals_release(r->s->vals, c->v);
    break;
  case REC_STATE:
    wf_vals_release(r->s->vals, c->v);
    free(c->key);
    r->nstate--;
    break;
  case REC_EVENT:
    wf_event_clear(&c->ev, r->s->vals);
    break;
  default:
    break;
  }
  c->kind = REC_NONE;
  c->v = 0;
  c->key = NULL;
}

/* ---- failures and retries ----------------------------------------------- */

/* The run fails because invocation x exhausted its attempts. */
static void fail_with_inv(wf_run_t *r, wf_invx_t *x) {
  char msg[sizeof(wf_err_t)];
  const wf_inv_t *p = &x->pub;
  const char *why = p->nerrors ? p->errors[p->nerrors - 1].message : "?";
  if (p->attempt > 1)
    snprintf(msg, sizeof msg, "executor '%s' failed in superstep %d after %u "
             "attempts: %s", wf_sched_exec_id(r, p->exec), r->superstep, p->attempt, why);
  else
    snprintf(msg, sizeof msg, "executor '%s' failed in superstep %d: %s",
             wf_sched_exec_id(r, p->exec), r->superstep, why);
  wf_sched_end(r, WF_RUN_FAILED, msg, 1);
}

/* The current attempt of running invocation x failed: record the error,
 * discard the attempt's effects (keeping its events), then retry, continue
 * or fail the run; fatal (a limit was passed) always fails the run;
 * no_retry (the error would recur) rules out a retry only. flags: the
 * executor_failed event's. */
static void inv_fail(wf_run_t *r, wf_invx_t *x, const char *message,
                     const char *tb, unsigned flags, int fatal, int no_retry) {
  wf_inv_t *p = &x->pub;
  const wf_exec_opts_t *o = &r->g->execs[p->exec].o;
  if (!message || !*message) message = "unknown error";
  p->errors = wf_xrealloc(p->errors, (size_t)(p->nerrors + 1) *
                                         sizeof *p->errors);
  p->errors[p->nerrors].message = wf_xstrdup(message);
  p->errors[p->nerrors].traceback = wf_xstrdup(tb);
  p->nerrors++;
  for (int k = x->rhead; k >= 0; k = r->recs[k].next)
    if (r->recs[k].kind != REC_EVENT) wf_inv_rec_drop(r, &r->recs[k]);
  for (int k = 0; k < WF_LIM__COUNT; k++) { /* events stay buffered */
    if (k != WF_LIM_EVENTS) r->nstep[k] -= x->cnt[k];
    x->cnt[k] = 0;
  }
  r->running--;

  int retry = !fatal && !no_retry && p->attempt < (uint32_t)o->max_attempts;
  int go_on = !fatal && o->on_error_continue;
  if (retry)
    flags |= WF_EVF_RETRYING;
  else if (go_on)
    flags |= WF_EVF_CONTINUED;
  wf_rec_t *c = rec_add(r, x, REC_EVENT);
  c->ev = wf_sched_event(r, WF_EV_EXECUTOR_FAILED, p->exec, p->attempt);
  c->ev.flags = (uint8_t)flags;
  c->ev.str = wf_xstrdup(message);
  c->ev.str2 = wf_xstrdup(tb);

  if (retry) {
    double d = o->backoff;
    for (uint32_t a = 1; a < p->attempt && d > 0; a++) {
      d *= o->backoff_factor;
      if (o->backoff_max > 0 && d > o->backoff_max) break;
    }
    if (o->backoff_max > 0 && d > o->backoff_max) d = o->backoff_max;
    p->attempt++;
    if (d > 0) {
      p->state = WF_INV_BACKOFF;
      timer_start(r, x, d);
    } else {
      enqueue(r, x); /* started by the advance, never recursively */
    }
    return;
  }
  p->state = WF_INV_FAILED;
  r->remaining--;
  if (!go_on) fail_with_inv(r, x);
}

/* ---- limits --------------------------------------------------------------- */

/* Option names by kind, per invocation then per superstep. */
static const char *const lim_names[WF_LIM__COUNT][2] = {
    {"messages_per_invocation", "messages_per_superstep"},
    {"outputs_per_invocation", "outputs_per_superstep"},
    {"events_per_invocation", "events_per_superstep"},
    {"state_writes_per_invocation", "state_writes_per_superstep"}};

/* Option name of a limit, or NULL. */
const char *wf_run_limit_name(int kind, int per_step) {
  if (kind < 0 || kind >= WF_LIM__COUNT) return NULL;
  return lim_names[kind][per_step ? 1 : 0];
}

/* "limits.<name> (<value>) exceeded" for capped code c (see wf_invx_t). */
static void cap_msg(const wf_run_t *r, int c, char *buf, size_t n) {
  int k = (c - 1) / 2, step = (c - 1) % 2;
  snprintf(buf, n, "limits.%s (%d) exceeded", lim_names[k][step],
           step ? r->lim.per_step[k] : r->lim.per_inv[k]);
}

/* A host call of x would pass limit (k, step): refuse it (v released),
 * mark x capped and queue the deferred failure of the first capped
 * invocation (the call runs inside x's own code: it cannot be aborted
 * from here). */
static int cap_hit(wf_run_t *r, wf_invx_t *x, int k, int step, wf_val_t v,
                   wf_err_t *err) {
  char msg[96];
  int c = 1 + 2 * k + step;
  wf_vals_release(r->s->vals, v);
  if (!x->capped) {
    x->capped = c;
    if (r->capped < 0) {
      r->capped = x->pub.order;
      wf_loop_defer(r->s->loop, &r->cap);
    }
  }
  cap_msg(r, c, msg, sizeof msg);
  return wf_err_set(err, "%s", msg);
}

/* Count one effect of kind k buffered by x; past a limit, cap_hit. Two
 * integer compares on the hot path. */
static inline int count(wf_run_t *r, wf_invx_t *x, int k, wf_val_t v,
                        wf_err_t *err) {
  if (x->cnt[k] < r->lim.per_inv[k] && r->nstep[k] < r->lim.per_step[k]) {
    x->cnt[k]++;
    r->nstep[k]++;
    return WF_OK;
  }
  return cap_hit(r, x, k, x->cnt[k] < r->lim.per_inv[k], v, err);
}

/* Fail capped invocation x (running, its task stopped or finished): no
 * retry, no on_error = continue, the run fails naming the limit. tb: the
 * traceback of the handler's error, if it raised one. */
static void cap_fail(wf_run_t *r, wf_invx_t *x, const char *tb) {
  char msg[96];
  cap_msg(r, x->capped, msg, sizeof msg);
  wf_inv_timer_stop(r, x);
  inv_fail(r, x, msg, tb, 0, 1, 1);
}

/* Deferred node: the first capped invocation of the superstep is still
 * running (its code caught the error, or is waiting on I/O): abort it and
 * fail the run. */
void wf_inv_cap_cb(wf_defer_t *d) {
  wf_run_t *r = container_of(d, wf_run_t, cap);
  wf_sched_t *s = r->s;
  if (r->capped < 0 || !r->in_step || (size_t)r->capped >= r->ninv) return;
  wf_invx_t *x = &r->invs[r->capped];
  wf_sched_enter(r);
  if (r->status == WF_RUN_RUNNING && x->capped &&
      x->pub.state == WF_INV_RUNNING && !x->aborted) {
    x->aborted = 1; /* an inv_done from inside abort is ignored */
    if (s->h.abort) s->h.abort(s->h.ud, r, &x->pub);
    x->aborted = 0;
    if (r->status == WF_RUN_RUNNING && x->pub.state == WF_INV_RUNNING)
      cap_fail(r, x, NULL);
  }
  wf_sched_kick(r);
  wf_sched_leave(r);
}

/* Timeout of a running attempt, or end of a retry delay. */
static void timer_cb(struct ev_loop *evl, ev_timer *w, int revents) {
  (void)evl;
  (void)revents;
  wf_invx_t *x = container_of(w, wf_invx_t, timer);
  wf_run_t *r = x->run;
  wf_sched_t *s = r->s;
  x->timer_on = 0;
  wf_sched_enter(r);
  if (r->status == WF_RUN_RUNNING && x->pub.state == WF_INV_RUNNING) {
    x->aborted = 1; /* an inv_done from inside abort is ignored */
    if (s->h.abort) s->h.abort(s->h.ud, r, &x->pub);
    x->aborted = 0;
    if (r->status == WF_RUN_RUNNING && x->pub.state == WF_INV_RUNNING) {
      char msg[160];
      snprintf(msg, sizeof msg, "executor '%s' timed out after %gs",
               wf_sched_exec_id(r, x->pub.exec), r->g->execs[x->pub.exec].o.timeout);
      inv_fail(r, x, msg, NULL, WF_EVF_TIMEOUT, 0, 0);
    }
  } else if (r->status == WF_RUN_RUNNING && x->pub.state == WF_INV_BACKOFF) {
    enqueue(r, x);
  }
  wf_sched_kick(r);
  wf_sched_leave(r);
}

/* ---- starting an attempt ----------------------------------------------- */

/* Start attempt x->pub.attempt of a queued invocation. */
void wf_inv_start(wf_run_t *r, wf_invx_t *x) {
  wf_sched_t *s = r->s;
  wf_inv_t *p = &x->pub;
  if (p->attempt > 1) { /* a fresh seq: the failed attempt's ctx is stale */
    p->seq = r->seq_next++;
    if (r->nrseq == r->crseq) WF_GROW(r->rseq, r->crseq, r->nrseq + 1);
    r->rseq[r->nrseq++] = (wf_rseq_t){p->seq, p->order};
  }
  wf_sched_publish_simple(r, WF_EV_EXECUTOR_INVOKED, p->exec, p->attempt);
  wf_sched_flush(r); /* a subscriber sees what came before the code runs */
  if (r->status != WF_RUN_RUNNING) return;
  p->state = WF_INV_RUNNING;
  r->running++;
  double t = r->g->execs[p->exec].o.timeout;
  if (t > 0) timer_start(r, x, t);
  if (s->h.invoke)
    s->h.invoke(s->h.ud, r, p);
  else
    wf_run_inv_done(r, p, 1, NULL, NULL, 0);
}

/* Stable sort of the pending messages by source graph index (merge sort;
 * already sorted input, the common case, costs one pass). */
/* ---- host calls for a running invocation -------------------------------- */

/* The invocation of the current superstep with this seq, whatever its
 * state, or NULL. */
static wf_invx_t *find_inv(wf_run_t *r, uint32_t seq) {
  if (!r->in_step) return NULL;
  wf_invx_t *x = NULL;
  if (seq - r->seq_base < r->ninv) {
    x = &r->invs[seq - r->seq_base];
  } else {
    size_t lo = 0, hi = r->nrseq;
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      if (r->rseq[mid].seq < seq)
        lo = mid + 1;
      else
        hi = mid;
    }
    if (lo < r->nrseq && r->rseq[lo].seq == seq) x = &r->invs[r->rseq[lo].order];
  }
  return (x && x->pub.seq == seq) ? x : NULL;
}

/* The running invocation with seq or NULL. */
static wf_invx_t *live_inv(wf_run_t *r, uint32_t seq) {
  if (r->status != WF_RUN_RUNNING) return NULL;
  wf_invx_t *x = find_inv(r, seq);
  return (x && x->pub.state == WF_INV_RUNNING && !x->aborted) ? x : NULL;
}

/* The running invocation with this seq, or NULL. */
wf_inv_t *wf_run_inv(wf_run_t *r, uint32_t seq) {
  wf_invx_t *x = live_inv(r, seq);
  return x ? &x->pub : NULL;
}

/* Error for a host call with a stale seq; releases v. */
static int stale(wf_run_t *r, uint32_t seq, wf_val_t v, wf_err_t *err) {
  wf_vals_release(r->s->vals, v);
  wf_invx_t *x = find_inv(r, seq);
  if (x)
    return wf_err_set(err, "invocation of '%s' is no longer running",
                      wf_sched_exec_id(r, x->pub.exec));
  return wf_err_set(err, "no running invocation %u", seq);
}

/* Buffer a message sent by the invocation (optionally to one target). */
int wf_run_send(wf_run_t *r, uint32_t seq, wf_val_t msg, int target,
                wf_err_t *err) {
  wf_invx_t *x = live_inv(r, seq);
  if (!x) return stale(r, seq, msg, err);
  if (target < 0) {
    target = -1;
  } else if (!wf_graph_reaches(r->g, x->pub.exec, target)) {
    wf_vals_release(r->s->vals, msg);
    if (target >= r->g->nexec)
      return wf_err_set(err, "executor '%s' has no edge to executor #%d",
                        wf_sched_exec_id(r, x->pub.exec), target);
    return wf_err_set(err, "executor '%s' has no edge to '%s'",
                      wf_sched_exec_id(r, x->pub.exec), wf_sched_exec_id(r, target));
  }
  if (count(r, x, WF_LIM_MESSAGES, msg, err) != WF_OK) return WF_ERR;
  wf_rec_t *c = rec_add(r, x, REC_SEND);
  c->v = msg;
  c->target = target;
  return WF_OK;
}

/* Buffer a workflow output. */
int wf_run_output(wf_run_t *r, uint32_t seq, wf_val_t v, wf_err_t *err) {
  wf_invx_t *x = live_inv(r, seq);
  if (!x) return stale(r, seq, v, err);
  if (count(r, x, WF_LIM_OUTPUTS, v, err) != WF_OK) return WF_ERR;
  rec_add(r, x, REC_OUTPUT)->v = v;
  return WF_OK;
}

/* Buffer an event record of type with strings (copied) and data (taken). */
static int buffer_event(wf_run_t *r, uint32_t seq, int type, const char *str,
                        const char *str2, wf_val_t data, wf_err_t *err) {
  wf_invx_t *x = live_inv(r, seq);
  if (!x) return stale(r, seq, data, err);
  if (count(r, x, WF_LIM_EVENTS, data, err) != WF_OK) return WF_ERR;
  wf_rec_t *c = rec_add(r, x, REC_EVENT);
  c->ev = wf_sched_event(r, type, x->pub.exec, x->pub.attempt);
  c->ev.str = wf_xstrdup(str);
  c->ev.str2 = wf_xstrdup(str2);
  c->ev.data = data;
  return WF_OK;
}

/* Buffer a custom event. */
int wf_run_emit(wf_run_t *r, uint32_t seq, const char *name, wf_val_t data,
                wf_err_t *err) {
  return buffer_event(r, seq, WF_EV_CUSTOM, name, NULL, data, err);
}

/* Buffer a log event (str = message, str2 = level). */
int wf_run_log(wf_run_t *r, uint32_t seq, const char *level,
               const char *message, wf_err_t *err) {
  return buffer_event(r, seq, WF_EV_LOG, message, level, 0, err);
}

/* Publish a live event at once. */
int wf_run_emit_live(wf_run_t *r, uint32_t seq, wf_ev_type_t type,
                     const char *name, wf_val_t data, wf_err_t *err) {
  wf_invx_t *x = live_inv(r, seq);
  if (!x) return stale(r, seq, data, err);
  if ((int)type < 0 || type >= WF_EV__COUNT) {
    wf_vals_release(r->s->vals, data);
    return wf_err_set(err, "event type %d is invalid", (int)type);
  }
  wf_event_t ev = wf_sched_event(r, type, x->pub.exec, x->pub.attempt);
  ev.str = wf_xstrdup(name);
  ev.data = data;
  wf_sched_enter(r);
  wf_sched_publish(r, &ev);
  wf_sched_flush(r); /* live: at once, even from inside the run's frame */
  wf_sched_leave(r);
  return WF_OK;
}

/* Buffer a state write (v 0 deletes at commit). */
int wf_run_set_state(wf_run_t *r, uint32_t seq, const char *key, wf_val_t v,
                     wf_err_t *err) {
  wf_invx_t *x = live_inv(r, seq);
  if (!x) return stale(r, seq, v, err);
  if (!key) {
    wf_vals_release(r->s->vals, v);
    return wf_err_set(err, "state key is missing");
  }
  if (count(r, x, WF_LIM_STATE_WRITES, v, err) != WF_OK) return WF_ERR;
  wf_rec_t *c = rec_add(r, x, REC_STATE);
  c->key = wf_xstrdup(key);
  c->v = v;
  r->nstate++;
  return WF_OK;
}

/* The invocation's own latest write of key, else the committed value; for
 * a key with a reducer always the committed value (own writes are folded
 * at the barrier). */
wf_val_t wf_run_get_state(wf_run_t *r, uint32_t seq, const char *key) {
  wf_invx_t *x = live_inv(r, seq);
  if (!x || !key) return 0;
  if (wf_graph_reducer(r->g, key) >= 0) return wf_state_get(r->state, key);
  int found = 0;
  wf_val_t v = 0;
  for (int k = x->rhead; k >= 0; k = r->recs[k].next) {
    const wf_rec_t *c = &r->recs[k];
    if (c->kind == REC_STATE && strcmp(c->key, key) == 0) {
      found = 1;
      v = c->v;
    }
  }
  return found ? v : wf_state_get(r->state, key);
}

/* The invocation (running or waiting) with this seq, or NULL. */
wf_inv_t *wf_run_inv_any(wf_run_t *r, uint32_t seq) {
  if (r->status != WF_RUN_RUNNING && r->status != WF_RUN_IDLE) return NULL;
  wf_invx_t *x = find_inv(r, seq);
  if (!x || x->aborted) return NULL;
  if (x->pub.state != WF_INV_RUNNING && x->pub.state != WF_INV_WAITING)
    return NULL;
  return &x->pub;
}

/* Running invocation seq suspends on a request to a human. */
int wf_run_inv_wait(wf_run_t *r, uint32_t seq, wf_err_t *err) {
  wf_invx_t *x = live_inv(r, seq);
  if (!x) return stale(r, seq, 0, err);
  if (x->capped) { /* it fails at once, it does not wait */
    char msg[96];
    cap_msg(r, x->capped, msg, sizeof msg);
    return wf_err_set(err, "%s", msg);
  }
  wf_inv_timer_stop(r, x); /* a human may take longer than a timeout */
  x->pub.state = WF_INV_WAITING;
  r->running--;
  r->nwaiting++;
  if (!r->in_advance) wf_loop_defer(r->s->loop, &r->adv); /* maybe idle */
  return WF_OK;
}

/* The request of waiting invocation seq was answered: it runs again. */
int wf_run_inv_unwait(wf_run_t *r, uint32_t seq, wf_err_t *err) {
  wf_invx_t *x = (r->status == WF_RUN_RUNNING || r->status == WF_RUN_IDLE)
                     ? find_inv(r, seq) : NULL;
  if (!x || x->aborted || x->pub.state != WF_INV_WAITING)
    return wf_err_set(err, "no invocation %u waits on a request", seq);
  x->pub.state = WF_INV_RUNNING;
  r->nwaiting--;
  r->running++;
  if (r->status == WF_RUN_IDLE) r->status = WF_RUN_RUNNING;
  double t = r->g->execs[x->pub.exec].o.timeout;
  if (t > 0) timer_start(r, x, t);
  return WF_OK;
}

/* End of the current attempt of inv: success, or a failure to retry
 * (unless flags has WF_INV_NO_RETRY), continue past or fail the run with.
 * Never advances the run itself. */
void wf_run_inv_done(wf_run_t *r, wf_inv_t *inv, int ok, const char *message,
                     const char *traceback, unsigned flags) {
  if (!r || !inv || r->status != WF_RUN_RUNNING || !r->in_step) return;
  uintptr_t a = (uintptr_t)inv, lo = (uintptr_t)r->invs;
  if (a < lo || a >= lo + r->ninv * sizeof(wf_invx_t)) return;
  wf_invx_t *x = (wf_invx_t *)inv;
  if (inv->state != WF_INV_RUNNING || x->aborted) return;
  wf_sched_enter(r);
  wf_inv_timer_stop(r, x);
  if (x->capped) { /* even if its code caught the error and returned */
    cap_fail(r, x, ok ? NULL : traceback);
  } else if (ok) {
    inv->state = WF_INV_DONE;
    r->running--;
    r->remaining--;
  } else {
    inv_fail(r, x, message, traceback, 0, 0, (flags & WF_INV_NO_RETRY) != 0);
  }
  wf_sched_kick(r);
  wf_sched_leave(r);
}

