/* event.c — names of event types, clearing an event's owned parts, and the
 * append-only per-run event log. Depends on val.h (event.h). */
#include "event.h"

#include <stdlib.h>

static const char *const type_names[WF_EV__COUNT] = {
    "workflow_started",    "superstep_started",  "executor_invoked",
    "executor_completed",  "executor_failed",    "output",
    "request_info",        "agent_update",       "custom",
    "log",                 "state_conflict",     "checkpoint_saved",
    "superstep_completed", "workflow_completed", "workflow_idle",
    "workflow_failed",     "workflow_cancelled", "message_undelivered"};

/* Name of an event type, "?" when out of range. */
const char *wf_event_type_name(int type) {
  return (type >= 0 && type < WF_EV__COUNT) ? type_names[type] : "?";
}

/* Release e's value reference and free its strings and writers. */
void wf_event_clear(wf_event_t *e, wf_vals_t *vals) {
  /* most events own nothing: skip the calls */
  if (!e->data && !e->str && !e->str2 && !e->ints) return;
  wf_vals_release(vals, e->data);
  free(e->str);
  free(e->str2);
  free(e->ints);
  e->data = 0;
  e->str = e->str2 = NULL;
  e->ints = NULL;
  e->nints = 0;
}

/* Events a log has room for at its first push: a one-executor run logs 6,
 * so that short runs allocate once instead of growing 1, 2, 4, 8. */
#define WF_EVLOG_FIRST 8

/* Append e by value; the log now owns its contents. */
void wf_evlog_push(wf_evlog_t *l, const wf_event_t *e) {
  if (l->n == l->cap) WF_GROW(l->v, l->cap, l->n < WF_EVLOG_FIRST ? WF_EVLOG_FIRST : l->n + 1);
  l->v[l->n++] = *e;
}

/* Clear every event and free the storage. */
void wf_evlog_free(wf_evlog_t *l, wf_vals_t *vals) {
  for (size_t i = 0; i < l->n; i++) wf_event_clear(&l->v[i], vals);
  free(l->v);
  l->v = NULL;
  l->n = l->cap = 0;
}
