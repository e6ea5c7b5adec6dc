/* loop.c — the libev loop wrapper and its queue of deferred work. An ev_check
 * watcher drains the queue after every poll; an ev_idle watcher is active
 * only while work is queued, so ev_run never blocks with work waiting. The
 * check watcher is unref'ed: it alone does not keep ev_run alive.
 * Drains may nest (a callback that runs the loop): each drain takes the
 * queue as it is into a batch of its own, and undefer searches the queue
 * and every batch in progress. Depends on libev and common.h (loop.h). */
#include "loop.h"

#include <stdlib.h>

/* A batch taken by a drain in progress (lives on that drain's stack). */
typedef struct wf_batch {
  wf_defer_t *head;
  struct wf_batch *up;
} wf_batch_t;

struct wf_loop {
  struct ev_loop *evl;
  ev_check check;
  ev_idle idle;
  wf_defer_t *head, *tail; /* the queue */
  wf_batch_t *batches;     /* innermost drain first */
  int n;                   /* nodes queued or in a batch not yet run */
  double polled;           /* wf_time_mono() of the last I/O poll */
};

/* After each poll: run what was deferred. */
static void check_cb(struct ev_loop *evl, ev_check *w, int revents) {
  (void)evl;
  (void)revents;
  wf_loop_drain((wf_loop_t *)w->data);
}

/* Only there to keep ev_run from blocking while work is queued. */
static void idle_cb(struct ev_loop *evl, ev_idle *w, int revents) {
  (void)evl;
  (void)w;
  (void)revents;
}

/* Wrap evl (NULL: the default loop) with a deferred-work queue. */
wf_loop_t *wf_loop_new(struct ev_loop *evl) {
  if (!evl) evl = ev_default_loop(0);
  if (!evl) return NULL;
  wf_loop_t *l = wf_xcalloc(1, sizeof *l);
  l->evl = evl;
  ev_check_init(&l->check, check_cb);
  l->check.data = l;
  ev_check_start(evl, &l->check);
  ev_unref(evl);
  ev_idle_init(&l->idle, idle_cb);
  l->idle.data = l;
  return l;
}

/* Stop the watchers and free the wrapper; queued nodes are forgotten. */
void wf_loop_free(wf_loop_t *l) {
  if (!l) return;
  ev_ref(l->evl);
  ev_check_stop(l->evl, &l->check);
  ev_idle_stop(l->evl, &l->idle);
  for (wf_defer_t *d = l->head; d; d = d->next) d->queued = 0;
  for (wf_batch_t *b = l->batches; b; b = b->up)
    for (wf_defer_t *d = b->head; d; d = d->next) d->queued = 0;
  free(l);
}

/* The wrapped libev loop. */
struct ev_loop *wf_loop_ev(wf_loop_t *l) { return l->evl; }

/* Append d to the queue unless it is queued already. */
void wf_loop_defer(wf_loop_t *l, wf_defer_t *d) {
  if (d->queued) return;
  d->queued = 1;
  d->next = NULL;
  if (l->tail)
    l->tail->next = d;
  else
    l->head = d;
  l->tail = d;
  l->n++;
  if (!ev_is_active(&l->idle)) ev_idle_start(l->evl, &l->idle);
}

/* Unlink d from the list at *head (tail updated when given); 1 if found. */
static int unlink_node(wf_defer_t **head, wf_defer_t **tail, wf_defer_t *d) {
  wf_defer_t *prev = NULL;
  for (wf_defer_t *p = *head; p; prev = p, p = p->next) {
    if (p != d) continue;
    if (prev)
      prev->next = p->next;
    else
      *head = p->next;
    if (tail && *tail == p) *tail = prev;
    return 1;
  }
  return 0;
}

/* Remove d from the queue or from a batch in progress, if it is there. */
void wf_loop_undefer(wf_loop_t *l, wf_defer_t *d) {
  if (!d->queued) return;
  int found = unlink_node(&l->head, &l->tail, d);
  for (wf_batch_t *b = l->batches; !found && b; b = b->up)
    found = unlink_node(&b->head, NULL, d);
  d->queued = 0;
  d->next = NULL;
  if (found) l->n--;
  if (!l->head && ev_is_active(&l->idle)) ev_idle_stop(l->evl, &l->idle);
}

/* Run the nodes queued now; nodes deferred meanwhile wait for next time. */
int wf_loop_drain(wf_loop_t *l) {
  if (!l->head) return 0;
  wf_batch_t b = {l->head, l->batches};
  l->head = l->tail = NULL;
  l->batches = &b;
  ev_idle_stop(l->evl, &l->idle);
  int ran = 0;
  while (b.head) {
    wf_defer_t *d = b.head;
    b.head = d->next;
    d->next = NULL;
    d->queued = 0;
    l->n--;
    ran++;
    d->cb(d); /* may re-defer d, undefer others, free d, or drain again */
  }
  l->batches = b.up;
  if (l->head && !ev_is_active(&l->idle)) ev_idle_start(l->evl, &l->idle);
  return ran;
}

/* Number of nodes waiting to run. */
int wf_loop_pending(const wf_loop_t *l) { return l->n; }

/* Drain, run one libev iteration (non-blocking while work is queued), drain
 * again. Nonzero while watchers or deferred work remain. */
int wf_loop_step(wf_loop_t *l) {
  /* ready work counts as "something happened": run it, and poll I/O without
   * blocking when the last poll is WF_LOOP_POLL_EVERY old (a poll is a
   * syscall: once per step it was a fifth of a one-executor run); block for
   * I/O only when nothing was ready */
  if (wf_loop_drain(l) > 0) {
    if (wf_time_mono() - l->polled >= WF_LOOP_POLL_EVERY)
      return wf_loop_poll(l) || l->n > 0;
    /* as wf_loop_poll without its ev_run: what that work queued (a run's
     * end notice) runs before the step returns */
    wf_loop_drain(l);
    return 1;
  }
  int active = ev_run(l->evl, EVRUN_ONCE);
  l->polled = wf_time_mono();
  wf_loop_drain(l);
  return active || l->n > 0;
}

/* Like wf_loop_step but never blocks. */
int wf_loop_poll(wf_loop_t *l) {
  wf_loop_drain(l);
  int active = ev_run(l->evl, EVRUN_NOWAIT);
  l->polled = wf_time_mono();
  wf_loop_drain(l);
  return active || l->n > 0;
}
