/* sched_int.h — private to the scheduler (sched.c: runs and supersteps;
 * inv.c: invocations, their buffered records, retries, timers and the host
 * calls). The run and invocation structs, and the small helpers both files
 * use on the hot path. Nothing else includes this. Depends on sched.h. */
#ifndef WF_SCHED_INT_H
#define WF_SCHED_INT_H

#include <stddef.h>
#include <string.h>

#include "sched.h"

#define container_of(p, T, m) ((T *)(void *)((char *)(p)-offsetof(T, m)))

/* Kinds of records buffered by an invocation until the barrier. */
enum { REC_NONE = 0, REC_SEND, REC_OUTPUT, REC_STATE, REC_EVENT };

/* One buffered effect of an invocation; records of one invocation form a
 * singly linked list (indices into the run's record array). */
typedef struct wf_rec {
  int next; /* next record of the same invocation, or -1 */
  uint8_t kind;
  int target;    /* REC_SEND: target executor or -1 */
  wf_val_t v;    /* REC_SEND/OUTPUT/STATE: one reference */
  char *key;     /* REC_STATE: owned */
  wf_event_t ev; /* REC_EVENT: owned contents */
} wf_rec_t;

/* The scheduler's view of an invocation; the host sees &pub. */
typedef struct wf_invx {
  wf_inv_t pub;
  wf_run_t *run;
  int rhead, rtail; /* record list */
  int qnext;        /* start queue link */
  int aborted;      /* aborted (or being aborted) by the scheduler */
  int timer_on;
  int capped;       /* past a limit: 1 + 2 * kind + per_step, else 0 */
  int cnt[WF_LIM__COUNT]; /* effects buffered by the current attempt */
  ev_timer timer; /* timeout while RUNNING, retry delay while BACKOFF */
} wf_invx_t;

/* A message committed by a superstep, routed in the next one. */
typedef struct wf_pmsg {
  int src;
  int only;
  wf_val_t msg;
} wf_pmsg_t;

/* wf_pmsg_t is the public wf_pending_t with the same layout. */
_Static_assert(sizeof(wf_pmsg_t) == sizeof(wf_pending_t),
               "wf_pmsg_t and wf_pending_t differ");

/* seq of a retry attempt -> invocation order (sorted by seq). */
typedef struct wf_rseq {
  uint32_t seq;
  int order;
} wf_rseq_t;

/* A state conflict collected at commit, published after the invocations. */
typedef struct wf_conf {
  char *key;
  int32_t *ints;
  int n;
} wf_conf_t;

struct wf_run {
  wf_sched_t *s;
  wf_run_t *prev, *next;
  const wf_graph_t *g;
  char *id;
  wf_run_status_t status;
  int max_steps, max_conc, keep;
  int listen, flushing; /* hooks->events wanted; a flush is on the stack */
  void *host;
  wf_route_t *route;
  wf_state_t *state;
  wf_val_t input;
  int started;
  int nsteps;    /* supersteps executed */
  int superstep; /* index of the current/last superstep */
  int in_step;   /* invocations of superstep `superstep` exist */
  int in_advance, busy, dead, torn;
  wf_run_limits_t lim;        /* defaults filled in */
  int nstep[WF_LIM__COUNT];   /* effects buffered in the superstep */
  int capped;                 /* order of the first capped invocation, -1 */

  wf_dvec_t deliv; /* owns the delivered messages of the superstep */
  wf_invx_t *invs;
  size_t ninv, cinv;
  uint32_t seq_base, seq_next;
  wf_rseq_t *rseq;
  size_t nrseq, crseq;
  int qhead, qtail;
  int running, remaining;
  wf_rec_t *recs;
  size_t nrec, crec;
  int nstate; /* REC_STATE records alive */
  wf_pmsg_t *pend, *ptmp;
  size_t npend, cpend, cptmp;
  wf_conf_t *conf;
  size_t nconf, cconf;

  wf_val_t *outs;
  size_t nout, cout;
  /* durability: raw state writes of the last commit, checkpoint gate,
   * invocations suspended on requests */
  int durable, ckpt_wait, nwaiting;
  int restored_at, announced; /* restored after restored_at supersteps */
  wf_write_t *writes;
  size_t nwrites, cwrites;
  wf_evlog_t log; /* kept events, or those not yet handed to the host */
  size_t nflushed; /* log.v[0..nflushed) were handed to hooks->events */
  char *error;
  double t_start, t_end;
  wf_defer_t adv, fin, cap;
};

struct wf_sched {
  wf_loop_t *loop;
  wf_vals_t *vals;
  wf_sched_hooks_t h;
  wf_route_hooks_t rh; /* h.route with ud = h.ud */
  wf_run_t *runs;
  int nactive;
  uint64_t counter;
  uint64_t rnd; /* xorshift state for run ids */
};

/* sched.c */
void wf_sched_leave_outer(wf_run_t *r);
void wf_sched_publish(wf_run_t *r, wf_event_t *ev);
void wf_sched_flush(wf_run_t *r);
void wf_sched_end(wf_run_t *r, wf_run_status_t st, const char *error,
                  int with_invs);

void wf_sched_writes_clear(wf_run_t *r);

/* inv.c */
void wf_inv_start(wf_run_t *r, wf_invx_t *x);
wf_invx_t *wf_inv_dequeue(wf_run_t *r);
void wf_inv_timer_stop(wf_run_t *r, wf_invx_t *x);
void wf_inv_rec_drop(wf_run_t *r, wf_rec_t *c);
void wf_inv_cap_cb(wf_defer_t *d);

/* 1 for completed, failed and cancelled. */
static inline int wf_sched_terminal(wf_run_status_t st) {
  return st == WF_RUN_COMPLETED || st == WF_RUN_FAILED ||
         st == WF_RUN_CANCELLED;
}

/* Enter the run from outside (defers teardown/free until leave). */
static inline void wf_sched_enter(wf_run_t *r) { r->busy++; }

/* Leave the run; the outermost frame tears down a terminal run and frees a
 * run whose free was requested meanwhile. */
static inline void wf_sched_leave(wf_run_t *r) {
  if (r->busy > 1)
    r->busy--;
  else
    wf_sched_leave_outer(r);
}

/* Queue the run's advance unless the advance on the stack will see it:
 * at the barrier, when only invocations waiting on requests are left (the
 * run goes idle), or when a queued invocation can start. */
static inline void wf_sched_kick(wf_run_t *r) {
  if (r->status != WF_RUN_RUNNING || r->in_advance) return;
  if (r->remaining == 0 || (r->nwaiting && r->nwaiting == r->remaining) ||
      (r->qhead >= 0 && (!r->max_conc || r->running < r->max_conc)))
    wf_loop_defer(r->s->loop, &r->adv);
}

/* An event of this run's current superstep with no owned parts. */
static inline wf_event_t wf_sched_event(const wf_run_t *r, int type, int exec,
                                        uint32_t attempt) {
  wf_event_t ev;
  memset(&ev, 0, sizeof ev);
  ev.type = (uint8_t)type;
  ev.exec = exec;
  ev.superstep = (uint32_t)r->superstep;
  ev.attempt = attempt;
  return ev;
}

/* Somebody keeps or listens to the run's events (else nothing is built). */
static inline int wf_sched_wanted(const wf_run_t *r) {
  return r->keep || (r->listen && !r->dead);
}

/* Publish an event without data or strings (nothing to build when nobody
 * keeps or listens). */
static inline void wf_sched_publish_simple(wf_run_t *r, int type, int exec,
                                           uint32_t attempt) {
  if (!wf_sched_wanted(r)) return;
  wf_event_t ev = wf_sched_event(r, type, exec, attempt);
  wf_sched_publish(r, &ev);
}

/* Executor id of index i. */
static inline const char *wf_sched_exec_id(const wf_run_t *r, int i) {
  return (i >= 0 && i < r->g->nexec) ? r->g->execs[i].id : "?";
}

#endif
