/* loop.h — the event loop wrapper: a libev loop plus a queue of deferred
 * work. I/O callbacks never run Lua or advance runs directly: they defer a
 * node, and the queue is drained after each poll (ev_check), with an ev_idle
 * kept active while work is queued so the loop does not block.
 * Depends on libev and common.h. */
#ifndef WF_LOOP_H
#define WF_LOOP_H

#include <ev.h>

#include "common.h"

typedef struct wf_loop wf_loop_t;

/* A node of deferred work. Embed it in the owner struct; cb gets the node
 * back (use a container-of cast). queued is managed by the loop. */
typedef struct wf_defer {
  void (*cb)(struct wf_defer *d);
  struct wf_defer *next;
  int queued;
} wf_defer_t;

/* Wrap an existing libev loop (NULL: ev_default_loop(0)). */
wf_loop_t *wf_loop_new(struct ev_loop *evl);
/* Stop the loop's watchers and free the wrapper (not the libev loop).
 * NULL is a no-op. */
void wf_loop_free(wf_loop_t *l);
/* The underlying libev loop. */
struct ev_loop *wf_loop_ev(wf_loop_t *l);
/* Queue d to run on the next drain; no-op if d is already queued. */
void wf_loop_defer(wf_loop_t *l, wf_defer_t *d);
/* Remove d from the queue if it is queued. */
void wf_loop_undefer(wf_loop_t *l, wf_defer_t *d);
/* Run every node queued at the time of the call (nodes queued meanwhile wait
 * for the next drain). Returns the number run. */
int wf_loop_drain(wf_loop_t *l);
/* Number of queued nodes. */
int wf_loop_pending(const wf_loop_t *l);
/* One loop iteration: if deferred work was ready, run it and poll I/O
 * without blocking when the last poll is WF_LOOP_POLL_EVERY old (else
 * return 1 at once); otherwise block in ev_run(EV_RUN_ONCE) until some event
 * arrives, then drain. Returns nonzero if the loop still has active watchers
 * or deferred work. */
int wf_loop_step(wf_loop_t *l);
/* While ready work keeps coming, wf_loop_step polls I/O at most this often
 * (seconds): I/O readiness and timers wait at most this long behind it. */
#define WF_LOOP_POLL_EVERY 100e-6
/* Like wf_loop_step but never blocks (EV_RUN_NOWAIT). */
int wf_loop_poll(wf_loop_t *l);

#endif
