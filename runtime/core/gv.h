/* gv.h — graph layout with Graphviz (libgvc): dot source in, SVG out, the
 * `dot` layout engine. Synchronous CPU work on the caller's thread (it
 * blocks an event loop while it runs: ~2 ms for 20 nodes, ~0.1 s for 100,
 * 1-2 s for 200 with curved edges; see docs/api.md), serialised process-wide by a mutex because Graphviz
 * keeps global state (its parser, its error reporting). Graphviz's own
 * messages are captured and returned as the error; nothing is printed.
 * Depends on common.h, libgvc/libcgraph, C11 threads, dlopen. */
#ifndef WF_GV_H
#define WF_GV_H

#include "common.h"

/* Largest dot source accepted, in bytes. */
#define WF_GV_MAX_SOURCE (1024 * 1024)
/* Largest graph laid out: nodes and edges. dot's layout is superlinear: a
 * layered graph of 500 nodes and ~1000 edges takes ~3 s even with straight
 * edges and one network-simplex pass (graphviz.svg's settings for large
 * graphs), 1000 nodes ~20 s, and the caller's loop waits that long. */
#define WF_GV_MAX_NODES 500
#define WF_GV_MAX_EDGES 2000

/* Lay out the dot source src (len bytes, NUL-terminated at src[len], no
 * NUL before) with the dot
 * engine and render it in format ("svg", the only one accepted). On
 * success *out is the output (NUL-terminated, *out_len bytes without the
 * NUL), owned by the caller and released with wf_gv_free. On failure
 * WF_ERR with err naming the problem: a source too large or with a NUL, a
 * graph over the node/edge limits, Graphviz's syntax or layout error, or
 * Graphviz's plugins missing. Thread-safe. */
int wf_gv_render(const char *src, size_t len, const char *format, char **out,
                 size_t *out_len, wf_err_t *err);
/* Release an output of wf_gv_render (NULL: no-op). */
void wf_gv_free(char *out);

#endif
