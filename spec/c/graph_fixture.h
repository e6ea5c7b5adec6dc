/* graph_fixture.h — the graph the core C tests start from: executors
 * e0..e(n-1) and start e0. Header-only, for spec/c tests that link
 * graph.c. */
#ifndef WF_GRAPH_FIXTURE_H
#define WF_GRAPH_FIXTURE_H

#include <stdio.h>

#include "graph.h"

/* Graph `name` with executors e0..e(n-1) (opts o or defaults), start e0. */
static inline wf_graph_t *fixture_graph(const char *name, int n,
                                        const wf_exec_opts_t *o) {
  char id[16];
  wf_graph_t *g = wf_graph_new(name);
  for (int i = 0; i < n; i++) {
    snprintf(id, sizeof id, "e%d", i);
    wf_graph_add_exec(g, id, o, NULL);
  }
  wf_graph_set_start(g, 0, NULL);
  return g;
}

#endif
