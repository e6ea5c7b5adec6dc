/* sched.h — the superstep scheduler. A wf_sched_t owns every run on one
 * loop; each wf_run_t executes a finalized graph in bulk-synchronous
 * supersteps: deliver (route pending messages in source-graph order, then
 * send order), execute (one invocation per delivery, all concurrent, capped
 * by max_concurrency), barrier, commit (sends, outputs, events, state writes
 * in invocation order). Retries with backoff, per-attempt timeouts,
 * on_error = continue, max_supersteps, limits on buffered effects and
 * cancellation live here.
 * Running user code is the host's job (hooks->invoke); the scheduler never
 * includes lua.h. Depends on loop.h, graph.h, route.h, state.h, event.h. */
#ifndef WF_SCHED_H
#define WF_SCHED_H

#include "event.h"
#include "graph.h"
#include "loop.h"
#include "route.h"
#include "state.h"
#include "val.h"

typedef enum {
  WF_RUN_PENDING = 0, /* created, superstep 0 not started yet */
  WF_RUN_RUNNING,
  WF_RUN_COMPLETED,
  WF_RUN_IDLE, /* waiting on outstanding requests (durability issue) */
  WF_RUN_FAILED,
  WF_RUN_CANCELLED
} wf_run_status_t;

typedef enum {
  WF_INV_QUEUED = 0, /* waiting for a max_concurrency slot */
  WF_INV_RUNNING,
  WF_INV_BACKOFF, /* failed, waiting for the retry delay */
  WF_INV_DONE,
  WF_INV_FAILED, /* exhausted; on_error = continue */
  WF_INV_WAITING /* suspended on a request to a human (request_info) */
} wf_inv_state_t;

typedef struct wf_sched wf_sched_t;
typedef struct wf_run wf_run_t;

/* An error of an earlier attempt (ctx.previous_errors). */
typedef struct wf_attempt_err {
  char *message;
  char *traceback;
} wf_attempt_err_t;

/* One invocation = one (executor, message) delivery of a superstep. The host
 * reads these fields; only the scheduler writes them. */
typedef struct wf_inv {
  uint32_t seq;      /* unique within the run, increasing: the host's key.
                        Each attempt gets a fresh seq, so a failed attempt's
                        context is stale for the retry. */
  int exec;          /* executor index */
  int order;         /* index in the superstep (invocation order) */
  wf_val_t msg;      /* the delivered message (borrowed by the host) */
  uint32_t attempt;  /* 1-based */
  wf_inv_state_t state;
  wf_attempt_err_t *errors; /* previous attempts' errors, nerrors of them */
  int nerrors;
  void *host;        /* free for the host (its task) */
  /* private to sched.c below (buffers of the current attempt) */
  void *priv;
} wf_inv_t;

typedef struct wf_sched_hooks {
  void *ud;
  wf_route_hooks_t route; /* cond, select, make_list (route.ud is ignored:
                             ud above is passed) */
  wf_reduce_fn reduce;
  /* Start running inv (attempt inv->attempt). The host must eventually call
   * wf_run_inv_done exactly once — possibly before invoke returns. */
  void (*invoke)(void *ud, wf_run_t *run, wf_inv_t *inv);
  /* Stop a running invocation (timeout, cancel, sibling failure): the host
   * cancels its I/O and drops its task, and must NOT call wf_run_inv_done. */
  void (*abort)(void *ud, wf_run_t *run, wf_inv_t *inv);
  /* Events published by a listening run (wf_run_opts_t.listen), in order,
   * at most WF_EV_BATCH at a time: handed over before an executor's code
   * starts, after a live event, and when the run's outermost frame
   * unwinds (back to the loop). evs stays valid until the hook publishes
   * an event of this run (copy it first if it may). */
  void (*events)(void *ud, wf_run_t *run, const wf_event_t *evs, size_t n);
  /* The run reached a terminal status (completed, failed, cancelled) or idle.
   * Called once per status change, from a deferred callback. */
  void (*finished)(void *ud, wf_run_t *run);
  /* Durable runs only: called after each superstep's commit, before the
   * next superstep starts. Return WF_OK to go on, or WF_AGAIN to hold the
   * run until wf_run_checkpoint_done. Snapshot accessors are valid here. */
  int (*checkpoint)(void *ud, wf_run_t *run);
} wf_sched_hooks_t;

/* A message committed by a superstep and not yet routed. */
typedef struct wf_pending {
  int src;      /* sender */
  int only;     /* targeted send: the target, else -1 */
  wf_val_t msg; /* borrowed */
} wf_pending_t;

/* A state write committed by the last superstep (raw, before reducers). */
typedef struct wf_write {
  const char *key;
  wf_val_t v; /* borrowed; 0 = delete */
} wf_write_t;

/* Effects an invocation buffers until the barrier, each capped per
 * invocation attempt and per superstep (wf_run_limits_t). */
typedef enum {
  WF_LIM_MESSAGES = 0, /* wf_run_send */
  WF_LIM_OUTPUTS,      /* wf_run_output */
  WF_LIM_EVENTS,       /* wf_run_emit and wf_run_log */
  WF_LIM_STATE_WRITES, /* wf_run_set_state */
  WF_LIM__COUNT
} wf_lim_kind_t;

#define WF_LIMIT_PER_INV_DEFAULT 100000
#define WF_LIMIT_PER_STEP_DEFAULT 1000000

/* Caps on buffered effects; 0 = the default. A host call past a cap fails
 * ("limits.messages_per_invocation (100000) exceeded") and so does the
 * invocation, without retry or on_error = continue: the run fails. */
typedef struct wf_run_limits {
  int per_inv[WF_LIM__COUNT];  /* per attempt of one invocation */
  int per_step[WF_LIM__COUNT]; /* all invocations of a superstep */
} wf_run_limits_t;

/* Option name of a limit: "messages_per_invocation", ...,
 * "state_writes_per_superstep"; NULL for an unknown kind. */
const char *wf_run_limit_name(int kind, int per_step);

typedef struct wf_run_opts {
  const char *id;        /* NULL: generated ("run-<n>-<random hex>") */
  int max_supersteps;    /* 0: default 100 */
  int max_concurrency;   /* 0: unlimited */
  wf_run_limits_t limits; /* zeroes: the defaults */
  int keep_events;       /* 1: keep the event log for wf_run_events */
  int listen;            /* 1: hand the events to hooks->events */
  int durable;           /* 1: call hooks->checkpoint, keep wf_run_writes */
  int undelivered_error; /* 1: a message no edge accepts fails the run */
  void *host;            /* free for the host */
} wf_run_opts_t;

/* A scheduler on loop l. vals is shared with the host; hooks are copied. */
wf_sched_t *wf_sched_new(wf_loop_t *l, wf_vals_t *vals,
                         const wf_sched_hooks_t *hooks);
/* Cancel and free every run, then the scheduler. NULL is a no-op. Not from
 * inside a hook of one of its runs. */
void wf_sched_free(wf_sched_t *s);
/* Number of runs started and not yet terminal. */
int wf_sched_active(const wf_sched_t *s);

/* Create a run of finalized graph g (borrowed: must outlive the run).
 * NULL with err on bad options. */
wf_run_t *wf_run_new(wf_sched_t *s, const wf_graph_t *g,
                     const wf_run_opts_t *o, wf_err_t *err);
/* Start: input (ownership taken) goes to the start executor in superstep 0.
 * Execution begins from a deferred callback, never inside this call. */
int wf_run_start(wf_run_t *r, wf_val_t input, wf_err_t *err);
/* Cancel: abort running invocations, drop pending messages, status
 * cancelled, workflow_cancelled event. No-op once terminal. */
void wf_run_cancel(wf_run_t *r);
/* Fail: as cancel (running invocations aborted, pending messages dropped),
 * but status failed with error msg (copied; NULL: "run failed") and a
 * workflow_failed event. No-op once terminal. Safe from any task or hook,
 * including an invocation of the run itself: that invocation is aborted
 * (hooks->abort, the host drops it when it returns) and the run's
 * teardown waits until the outermost frame of the run unwinds. */
void wf_run_fail(wf_run_t *r, const char *msg);
/* Stop (0) handing the run's events to hooks->events (its subscriber is
 * gone); 1 starts again with the events published from then on. */
void wf_run_listen(wf_run_t *r, int on);
/* Free a run (cancelling it first if still active). NULL is a no-op. Called
 * from inside one of the run's own hooks, the free happens when the hook
 * returns. */
void wf_run_free(wf_run_t *r);

/* Accessors. */
const char *wf_run_id(const wf_run_t *r);
wf_run_status_t wf_run_status(const wf_run_t *r);
const char *wf_run_status_name(wf_run_status_t s);
const wf_graph_t *wf_run_graph(const wf_run_t *r);
void *wf_run_host(const wf_run_t *r);
/* Error message of a failed run (NULL otherwise). */
const char *wf_run_error(const wf_run_t *r);
/* Supersteps executed so far. */
int wf_run_supersteps(const wf_run_t *r);
/* Current superstep index (0-based). */
int wf_run_superstep(const wf_run_t *r);
/* Committed outputs in order (borrowed handles). */
const wf_val_t *wf_run_outputs(const wf_run_t *r, int *n);
/* The kept event log (NULL/0 unless keep_events). */
const wf_event_t *wf_run_events(const wf_run_t *r, size_t *n);
/* Milliseconds from start to end (or to now while running). */
double wf_run_duration_ms(const wf_run_t *r);
/* The committed shared state. */
const wf_state_t *wf_run_state(const wf_run_t *r);

/* The limits in force for the run (defaults filled in). */
const wf_run_limits_t *wf_run_limits(const wf_run_t *r);

/* The running invocation with this seq, or NULL if it is finished, aborted
 * or from another superstep (stale context). */
wf_inv_t *wf_run_inv(wf_run_t *r, uint32_t seq);

/* Calls made by the host on behalf of a running invocation. Each fails with
 * WF_ERR ("invocation of 'x' is no longer running") on a stale seq. Those
 * that buffer an effect fail past a limit (see wf_run_limits_t): the
 * invocation is then failed by the scheduler whatever the host does next
 * (aborted from a deferred callback if still running), and the run fails.
 * Values: ownership of the reference is taken in every case, success or
 * not. */

/* Send msg; target -1 = along every out-edge, else only edges reaching
 * target (WF_ERR "executor 'a' has no edge to 'b'" if none does). */
int wf_run_send(wf_run_t *r, uint32_t seq, wf_val_t msg, int target,
                wf_err_t *err);
/* Buffer a workflow output (committed at the barrier, "output" event). */
int wf_run_output(wf_run_t *r, uint32_t seq, wf_val_t v, wf_err_t *err);
/* Buffer a custom event named name with data (published at the barrier). */
int wf_run_emit(wf_run_t *r, uint32_t seq, const char *name, wf_val_t data,
                wf_err_t *err);
/* Buffer a log event (level, message) published at the barrier. */
int wf_run_log(wf_run_t *r, uint32_t seq, const char *level,
               const char *message, wf_err_t *err);
/* Publish a live event right away (agent_update, streamed chunks): type,
 * optional name, data. Live events are outside the deterministic order. */
int wf_run_emit_live(wf_run_t *r, uint32_t seq, wf_ev_type_t type,
                     const char *name, wf_val_t data, wf_err_t *err);
/* Buffer a state write (applied at the barrier). */
int wf_run_set_state(wf_run_t *r, uint32_t seq, const char *key, wf_val_t v,
                     wf_err_t *err);
/* Read key as this invocation sees it: its own latest write (a write of 0
 * deletes the key at commit), else the committed value; for a key with a
 * reducer, the committed value (own writes are folded at the barrier). Borrowed handle,
 * 0 = none; also 0 for a stale seq. */
wf_val_t wf_run_get_state(wf_run_t *r, uint32_t seq, const char *key);

/* ---- durability -------------------------------------------------------- */

/* The checkpoint held by WF_AGAIN is written (ok = 1): the run goes on; or
 * it failed: the run fails with "checkpoint failed: <error>". */
void wf_run_checkpoint_done(wf_run_t *r, int ok, const char *error);
/* Invocations of the current superstep not finished yet. */
int wf_run_remaining(const wf_run_t *r);
/* Messages waiting to be routed in the next superstep, in commit order. */
const wf_pending_t *wf_run_pending(const wf_run_t *r, size_t *n);
/* State writes of the last committed superstep, in invocation order
 * (durable runs; valid until the next superstep starts). */
const wf_write_t *wf_run_writes(const wf_run_t *r, size_t *n);
/* Fan-in buffer of edge e, source position i: *n borrowed handles. */
const wf_val_t *wf_run_fanin(const wf_run_t *r, int e, int i, int *n);

/* Restore a run created with wf_run_new, before wf_run_start (which then
 * takes input 0): supersteps already executed, then the pieces of the
 * checkpoint. Each call takes ownership of the value passed. */
int wf_run_restore(wf_run_t *r, int supersteps_done, wf_err_t *err);
int wf_run_restore_pending(wf_run_t *r, int src, int only, wf_val_t msg,
                           wf_err_t *err);
int wf_run_restore_fanin(wf_run_t *r, int edge, int pos, wf_val_t msg,
                         wf_err_t *err);
int wf_run_restore_state(wf_run_t *r, const char *key, wf_val_t v,
                         wf_err_t *err);
int wf_run_restore_output(wf_run_t *r, wf_val_t v, wf_err_t *err);

/* The running invocation seq suspends on a request to a human: its timeout
 * stops; when every unfinished invocation of the superstep waits, the run
 * becomes idle (hooks->finished). */
int wf_run_inv_wait(wf_run_t *r, uint32_t seq, wf_err_t *err);
/* The request of waiting invocation seq was answered: it runs again (and
 * the run too, if it was idle). */
int wf_run_inv_unwait(wf_run_t *r, uint32_t seq, wf_err_t *err);
/* The invocation with this seq (running or waiting), or NULL. */
wf_inv_t *wf_run_inv_any(wf_run_t *r, uint32_t seq);

/* Switch a run to graph g at a barrier (from the checkpoint hook, before
 * the next superstep): g must be finalized and compatible — the same
 * executor ids in the same order and the same edges (kinds, endpoints,
 * conditions, selectors) and the same state reducers (wf_graph_same_reducers:
 * keys and signatures) — so that pending messages, fan-in buffers and state
 * stay valid. WF_ERR naming the difference otherwise ("the executors
 * changed (...)", "the edges changed (...)", the reducer's reason). */
int wf_run_swap_graph(wf_run_t *r, const wf_graph_t *g, wf_err_t *err);

/* Flags of a failed attempt (wf_run_inv_done). */
enum {
  /* the error would recur on a retry (a guardrail block: the same input
   * meets the same guards): no retry, but on_error = continue applies */
  WF_INV_NO_RETRY = 1u
};

/* The host reports the end of the current attempt of inv. ok = 1: success.
 * ok = 0: error (message and traceback copied; either may be NULL): retried
 * per the executor's policy unless flags has WF_INV_NO_RETRY, else the run
 * fails (or continues). flags is ignored on success. */
void wf_run_inv_done(wf_run_t *r, wf_inv_t *inv, int ok, const char *message,
                     const char *traceback, unsigned flags);

#endif
