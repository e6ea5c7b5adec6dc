/* val.h — reference counts for opaque host value handles (wf_val_t).
 * The scheduler never looks inside a value; it only retains a handle while a
 * pending message, fan-in buffer, state slot, output or event holds it, and
 * releases it after. When a count drops to zero the host's free callback runs
 * and the handle is recycled. Depends on common.h only. */
#ifndef WF_VAL_H
#define WF_VAL_H

#include "common.h"

typedef struct wf_vals wf_vals_t;
typedef void (*wf_vals_free_fn)(void *ud, wf_val_t h);

/* Create a handle table; free_fn(ud, h) is called when h's count reaches 0. */
wf_vals_t *wf_vals_new(wf_vals_free_fn free_fn, void *ud);
/* Free the table (does not call free_fn for live handles). NULL is a no-op. */
void wf_vals_free(wf_vals_t *v);
/* A fresh handle (never 0) with count 1, owned by the caller. */
wf_val_t wf_vals_alloc(wf_vals_t *v);
/* Add one reference. h == 0 is a no-op. */
void wf_vals_retain(wf_vals_t *v, wf_val_t h);
/* Drop one reference; at zero calls free_fn and recycles h. h == 0: no-op. */
void wf_vals_release(wf_vals_t *v, wf_val_t h);
/* Current count of h (0 when free) — for tests and leak checks. */
uint32_t wf_vals_count(const wf_vals_t *v, wf_val_t h);
/* Number of live handles — for leak checks. */
size_t wf_vals_live(const wf_vals_t *v);

#endif
