/* route.h — edge routing for one run: turns a message sent by an executor
 * into deliveries (target executor + message), evaluating conditions and
 * selectors through host callbacks, and keeps the per-source fan-in buffers
 * that survive across supersteps. Depends on graph.h and val.h. */
#ifndef WF_ROUTE_H
#define WF_ROUTE_H

#include "graph.h"
#include "val.h"

/* Value-dependent decisions are the host's (Lua functions in the binding). */
typedef struct wf_route_hooks {
  void *ud;
  /* Evaluate the condition of (edge, target index i) on msg: *out = 0/1.
   * WF_ERR with err filled when the condition raised. */
  int (*cond)(void *ud, const wf_graph_t *g, int edge, int i, wf_val_t msg,
              int *out, wf_err_t *err);
  /* Fan-out selector: write 0-based target indices (each < ntgt, no
   * duplicates required) into out[0..ntgt-1], count in *nout. */
  int (*select)(void *ud, const wf_graph_t *g, int edge, wf_val_t msg,
                int *out, int *nout, wf_err_t *err);
  /* Make a new list value of n values in order (fan-in delivery); returns a
   * handle with count 1 owned by the caller; does not consume vals. */
  wf_val_t (*make_list)(void *ud, const wf_val_t *vals, int n);
} wf_route_hooks_t;

/* One delivery; msg holds one reference owned by the delivery. */
typedef struct wf_delivery {
  int exec;
  int edge; /* edge that delivered it, -1 for the run input */
  wf_val_t msg;
} wf_delivery_t;

/* A growable vector of deliveries. */
typedef struct wf_dvec {
  wf_delivery_t *v;
  size_t n, cap;
} wf_dvec_t;

typedef struct wf_route wf_route_t;

/* Routing state for one run of g (fan-in buffers start empty). */
wf_route_t *wf_route_new(const wf_graph_t *g, wf_vals_t *vals);
/* Release every buffered value and free; NULL is a no-op. */
void wf_route_free(wf_route_t *r);
/* Route msg sent by src. only >= 0 restricts deliveries to that target.
 * Appends to out in edge order (for fan-out, target order). Retains msg for
 * every delivery/buffer slot; the caller keeps its own reference. Fan-in
 * edges only buffer here: call wf_route_flush after routing every message
 * of a superstep, so that a fan-in delivers all that its sources sent.
 * On WF_ERR err names the edge ("condition of edge 'a -> b' failed: ...");
 * deliveries already appended stay in out. A message that edges could take
 * but none did is undelivered (see wf_route_refused): WF_OK, or WF_ERR
 * naming the sender and the edges when wf_route_set_strict is on. */
int wf_route_message(wf_route_t *r, const wf_route_hooks_t *h, int src,
                     wf_val_t msg, int only, wf_dvec_t *out, wf_err_t *err);
/* Append one delivery per fan-in edge completed since the last flush (every
 * source has sent): the buffered messages as one list value, in source
 * order, then send order. Completed edges are delivered in the order they
 * completed. */
void wf_route_flush(wf_route_t *r, const wf_route_hooks_t *h, wf_dvec_t *out);
/* The edges that refused the last message of wf_route_message when it
 * reached no executor and no fan-in buffer although src has edges that
 * could take it (conditions false, no switch case and no default, a
 * selector choosing none): their indices in *edges (borrowed, valid until
 * the next call), in edge order; returns their count, 0 when the message
 * was delivered, when src has no such edge, or after an error. */
int wf_route_refused(const wf_route_t *r, const int **edges);
/* strict = 1: an undelivered message is an error of wf_route_message. */
void wf_route_set_strict(wf_route_t *r, int strict);
/* Number of messages buffered by fan-in edge e from its i-th source. */
int wf_route_buffered(const wf_route_t *r, int edge, int i);
/* The messages buffered by fan-in edge e from its i-th source (borrowed),
 * count in *n. */
const wf_val_t *wf_route_buffer(const wf_route_t *r, int edge, int i, int *n);
/* Put msg (reference taken) in the buffer of fan-in edge e, source i, as
 * when restoring a checkpoint. WF_ERR on a bad edge or position. */
int wf_route_restore(wf_route_t *r, int edge, int i, wf_val_t msg,
                     wf_err_t *err);
/* Use graph g (the same edges as the current one) from now on. */
void wf_route_set_graph(wf_route_t *r, const wf_graph_t *g);
/* Total buffered messages across all fan-in edges. */
int wf_route_buffered_total(const wf_route_t *r);

/* Append to a delivery vector (takes ownership of d.msg's reference). */
void wf_dvec_push(wf_dvec_t *dv, wf_delivery_t d);
/* Release every message reference and empty the vector (keeps capacity). */
void wf_dvec_clear(wf_dvec_t *dv, wf_vals_t *vals);
/* Free the storage (after clear). */
void wf_dvec_free(wf_dvec_t *dv);

#endif
