/* event.h — run events as compact C records, and the per-run event log.
 * Events are cheap to record; the binding turns them into Lua tables only
 * when somebody looks (a subscriber, or result.events).
 * Depends on val.h. */
#ifndef WF_EVENT_H
#define WF_EVENT_H

#include "val.h"

typedef enum {
  WF_EV_WORKFLOW_STARTED = 0,
  WF_EV_SUPERSTEP_STARTED,
  WF_EV_EXECUTOR_INVOKED,
  WF_EV_EXECUTOR_COMPLETED,
  WF_EV_EXECUTOR_FAILED,
  WF_EV_OUTPUT,
  WF_EV_REQUEST_INFO,
  WF_EV_AGENT_UPDATE,
  WF_EV_CUSTOM,
  WF_EV_LOG,
  WF_EV_STATE_CONFLICT,
  WF_EV_CHECKPOINT_SAVED,
  WF_EV_SUPERSTEP_COMPLETED,
  WF_EV_WORKFLOW_COMPLETED,
  WF_EV_WORKFLOW_IDLE,
  WF_EV_WORKFLOW_FAILED,
  WF_EV_WORKFLOW_CANCELLED,
  WF_EV_MESSAGE_UNDELIVERED,
  WF_EV__COUNT
} wf_ev_type_t;

/* executor_failed flags */
#define WF_EVF_RETRYING 1u  /* another attempt follows */
#define WF_EVF_CONTINUED 2u /* on_error = "continue": the run goes on */
#define WF_EVF_TIMEOUT 4u   /* the attempt timed out */

/* (Fields ordered so that there is no padding: 56 bytes; a run keeps every
 * event it publishes, 4 per invocation.) */
typedef struct wf_event {
  uint8_t type;     /* wf_ev_type_t */
  uint8_t flags;    /* WF_EVF_* */
  int32_t exec;     /* executor index or -1 */
  uint32_t superstep;
  uint32_t attempt; /* executor events: 1-based attempt */
  wf_val_t data;    /* one reference owned by the event; 0 = none */
  int nints;
  char *str;        /* owned or NULL: error message (failed), event name
                       (custom), state key (state_conflict), log message */
  char *str2;       /* owned or NULL: traceback (failed), log level (log) */
  int32_t *ints;    /* owned or NULL: writers (state_conflict) */
  double ts;        /* wall clock, seconds */
} wf_event_t;

/* Most events handed to the event hook in one call. */
#define WF_EV_BATCH 32

/* An append-only list of events (owns them). */
typedef struct wf_evlog {
  wf_event_t *v;
  size_t n, cap;
} wf_evlog_t;

/* "workflow_started", ... for a wf_ev_type_t; "?" when out of range. */
const char *wf_event_type_name(int type);
/* Release the event's value and strings (the struct itself is not freed). */
void wf_event_clear(wf_event_t *e, wf_vals_t *vals);
/* Append e by value; the log takes ownership of its contents. */
void wf_evlog_push(wf_evlog_t *l, const wf_event_t *e);
/* Clear every event and free the storage. */
void wf_evlog_free(wf_evlog_t *l, wf_vals_t *vals);

#endif
