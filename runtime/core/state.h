/* state.h — a run's shared state with snapshot semantics. Reads see the
 * committed map; writes of a superstep are applied together at the barrier,
 * in invocation order, folded by the key's reducer when the graph declares
 * one, else last writer wins and the conflict is reported.
 * Depends on graph.h and val.h. */
#ifndef WF_STATE_H
#define WF_STATE_H

#include "graph.h"
#include "val.h"

typedef struct wf_state wf_state_t;

/* Reducer callback: *out = reduce(acc, val) as a new handle with count 1.
 * acc may be 0 (no value yet). Must not consume acc or val. acc_fresh is
 * 1 when acc is what this reducer returned for an earlier write of the
 * same batch: no one else holds it, so the host may update it in place
 * (an append need not copy the list for every write); 0 when acc is the
 * committed value, which readers may still hold. */
typedef int (*wf_reduce_fn)(void *ud, const wf_graph_t *g, int reducer,
                            wf_val_t acc, int acc_fresh, wf_val_t val,
                            wf_val_t *out, wf_err_t *err);
/* Called once per key written by more than one writer without a reducer;
 * writers are the writer ids given to wf_state_apply, in write order. */
typedef void (*wf_conflict_fn)(void *ud, const char *key, const int *writers,
                               int n);

wf_state_t *wf_state_new(const wf_graph_t *g, wf_vals_t *vals);
/* Release every value and free; NULL is a no-op. */
void wf_state_free(wf_state_t *s);
/* Committed value of key (borrowed, not retained) or 0. */
wf_val_t wf_state_get(const wf_state_t *s, const char *key);
/* Number of committed keys. */
int wf_state_size(const wf_state_t *s);
/* Iterate committed keys: i from 0 to size-1, in first-commit order. */
const char *wf_state_key_at(const wf_state_t *s, int i, wf_val_t *val);
/* Set key to val directly (reference taken; 0 deletes), outside a batch:
 * restoring a checkpoint. */
void wf_state_set(wf_state_t *s, const char *key, wf_val_t val);
/* Use graph g (the same reducer keys as the current one) from now on. */
void wf_state_set_graph(wf_state_t *s, const wf_graph_t *g);
/* Start a commit batch. */
void wf_state_begin(wf_state_t *s);
/* Apply one write of the batch (writers in invocation order); val 0
 * deletes the key (reducer or not). writer identifies the writing
 * invocation (the scheduler passes its invocation order; consecutive writes
 * with the same writer count once). A reducer returning 0 deletes. Takes
 * ownership of val's reference. Fails only when the reducer fails (err names
 * the key); the batch is then abandoned with wf_state_abort. */
int wf_state_apply(wf_state_t *s, const char *key, wf_val_t val, int writer,
                   wf_reduce_fn reduce, void *ud, wf_err_t *err);
/* End the batch: report conflicts (keys without reducer written by more
 * than one distinct invocation) through cf in first-write order. */
void wf_state_end(wf_state_t *s, wf_conflict_fn cf, void *ud);
/* Abandon a batch after a failed apply: values already applied stay. */
void wf_state_abort(wf_state_t *s);

#endif
