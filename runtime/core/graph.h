/* graph.h — the compiled, immutable topology of a workflow: executors (with
 * their retry/timeout/error policies), edges of the five kinds, state keys
 * with reducers, and per-source adjacency used by routing. Built once by the
 * Lua builder (or a C test), validated by wf_graph_finalize, then shared
 * read-only by every run of the workflow. Depends on common.h only. */
#ifndef WF_GRAPH_H
#define WF_GRAPH_H

#include "common.h"

typedef enum {
  WF_KIND_WORKER = 0,
  WF_KIND_VALIDATOR,
  WF_KIND_ORCHESTRATOR
} wf_exec_kind_t;

typedef enum {
  WF_EDGE_DIRECT = 0, /* src -> tgt[0]; conditional when cond[0] is set */
  WF_EDGE_SWITCH,     /* src -> first tgt[i] whose cond holds, else dflt */
  WF_EDGE_FANOUT,     /* src -> every tgt, or those chosen by the selector */
  WF_EDGE_FANIN       /* srcs[...] -> tgt[0] once every source has sent */
} wf_edge_kind_t;

typedef struct wf_exec_opts {
  wf_exec_kind_t kind;
  int max_attempts;      /* >= 1; 1 = no retry */
  double backoff;        /* seconds before the 2nd attempt (0 = at once) */
  double backoff_factor; /* multiplier per further attempt (>= 1) */
  double backoff_max;    /* cap on one delay, seconds (0 = no cap) */
  double timeout;        /* seconds per attempt; 0 = none */
  int on_error_continue; /* 1: exhausted failures do not fail the run */
} wf_exec_opts_t;

typedef struct wf_gexec {
  char *id;
  wf_exec_opts_t o;
  int *out;  /* edges whose sources include this executor, in edge order */
  int *outpos; /* per out-edge: this executor's index in the edge's srcs */
  int nout;
} wf_gexec_t;

typedef struct wf_edge {
  wf_edge_kind_t kind;
  char *name;              /* label (may be NULL) */
  int nsrc, *srcs;         /* 1 source except for fan-in */
  int ntgt, *tgts;         /* targets / switch cases in order */
  unsigned char *has_cond; /* per target: a condition to evaluate (switch
                              cases always, direct only when conditional) */
  int dflt;                /* switch default target or -1 */
  int has_select;          /* fan-out selector present */
  int fanin;               /* fan-in edges: 0-based slot among fan-ins, else -1
                              (set by wf_graph_finalize) */
} wf_edge_t;

/* Describes an edge to add; arrays are copied. */
typedef struct wf_edge_spec {
  wf_edge_kind_t kind;
  const char *name;
  int nsrc;
  const int *srcs;
  int ntgt;
  const int *tgts;
  const unsigned char *has_cond; /* may be NULL: no conditions */
  int dflt;                      /* -1: none */
  int has_select;
} wf_edge_spec_t;

/* What makes a state key's reducer the same across builds: an opaque
 * signature compared byte for byte (the builder's; NULL = none given) and
 * a label naming the reducer in messages. */
typedef struct wf_greducer {
  char *sig;
  size_t siglen;
  char *label;
} wf_greducer_t;

typedef struct wf_graph {
  char *name;
  int start; /* -1 until set */
  int nexec;
  size_t cexec;
  wf_gexec_t *execs; /* in insertion order = "graph order" */
  int nedge;
  size_t cedge;
  wf_edge_t *edges;
  int nkeys;
  size_t ckeys;
  char **keys; /* state keys that declare a reducer, index = reducer id */
  size_t creducers;
  wf_greducer_t *reducers; /* per reducer id: signature and label */
  int nfanin;  /* number of fan-in edges (set by wf_graph_finalize) */
  int finalized;
  void *host; /* free for the host (the binding's graph object) */
  /* private to graph.c: open-addressing index of executor ids */
  int *idx;
  size_t cidx;
} wf_graph_t;

/* Default executor options (worker, 1 attempt, no timeout). */
void wf_exec_opts_default(wf_exec_opts_t *o);
/* New empty graph named name (copied). */
wf_graph_t *wf_graph_new(const char *name);
/* Free the graph; NULL is a no-op. */
void wf_graph_free(wf_graph_t *g);
/* Add an executor; returns its index, or WF_ERR if the id is empty or
 * duplicated ("duplicate executor id 'x'") or the options are invalid. */
int wf_graph_add_exec(wf_graph_t *g, const char *id, const wf_exec_opts_t *o,
                      wf_err_t *err);
/* Index of executor id, or -1. */
int wf_graph_find(const wf_graph_t *g, const char *id);
/* Set the start executor. WF_ERR on a bad index. */
int wf_graph_set_start(wf_graph_t *g, int exec, wf_err_t *err);
/* Add an edge; returns its index or WF_ERR naming the edge and the bad
 * endpoint (out-of-range index, empty target list, fan-in with < 1 source). */
int wf_graph_add_edge(wf_graph_t *g, const wf_edge_spec_t *s, wf_err_t *err);
/* Declare a reducer for state key; returns its reducer id (idempotent). */
int wf_graph_add_reducer(wf_graph_t *g, const char *key);
/* Reducer id of key or -1. */
int wf_graph_reducer(const wf_graph_t *g, const char *key);
/* Set the signature (len bytes, may hold NULs) and the label (a reducer as
 * users know it, e.g. "weft.reduce.sum"; NULL: none) of reducer id; both
 * copied. WF_ERR on a bad id or a finalized graph. */
int wf_graph_set_reducer_sig(wf_graph_t *g, int id, const char *sig, size_t len,
                             const char *label, wf_err_t *err);
/* WF_OK when graphs a and b have the same state keys with reducers and the
 * same reducer signature for each (order of declaration aside); else WF_ERR
 * with the reason for the first differing key in name order: "state key 'k'
 * gained a reducer (L)", "state key 'k' lost its reducer (L)", "the reducer
 * of state key 'k' changed (La -> Lb)". */
int wf_graph_same_reducers(const wf_graph_t *a, const wf_graph_t *b,
                           wf_err_t *err);
/* Validate and build adjacency: fails with a message naming the offender when
 * there is no start executor or some executors are unreachable from it
 * ("executors unreachable from start 'a': 'x', 'y'"). */
int wf_graph_finalize(wf_graph_t *g, wf_err_t *err);
/* 1 if some out-edge of src can deliver to tgt (targeted send check). */
int wf_graph_reaches(const wf_graph_t *g, int src, int tgt);
/* Human label of an edge for error messages: "a -> b" / "a -> [b, c]" /
 * "[a, b] -> c", plus " (name)" when named. Writes into buf. */
const char *wf_graph_edge_label(const wf_graph_t *g, int edge, char *buf,
                                size_t n);

#endif
