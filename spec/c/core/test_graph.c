/* test_graph.c — graph building and validation: error messages, edge
 * labels, out-edge lists, fan-in slots, reachability, targeted-send
 * checks and the comparison of reducer signatures. Depends on graph.c and
 * the harness. */
#include "graph.h"
#include "harness.h"

/* Add executors named by the strings in ids (NULL-terminated). */
static void add_all(wf_graph_t *g, const char *const *ids) {
  for (; *ids; ids++) CHECK(wf_graph_add_exec(g, *ids, NULL, NULL) >= 0);
}

/* Add an edge of kind from srcs to tgts (ns/nt counts). */
static int edge(wf_graph_t *g, wf_edge_kind_t kind, const int *srcs, int ns,
                const int *tgts, int nt, wf_err_t *err) {
  wf_edge_spec_t s = {kind, NULL, ns, srcs, nt, tgts, NULL, -1, 0};
  return wf_graph_add_edge(g, &s, err);
}

static void test_no_start(void) {
  wf_err_t err;
  wf_graph_t *g = wf_graph_new("w");
  CHECK_INT(wf_graph_finalize(g, &err), WF_ERR);
  CHECK_STR(err.msg, "workflow 'w': no start executor");
  wf_graph_free(g);
}

static void test_duplicate_and_empty_ids(void) {
  wf_err_t err;
  wf_graph_t *g = wf_graph_new("w");
  CHECK_INT(wf_graph_add_exec(g, "a", NULL, &err), 0);
  CHECK_INT(wf_graph_add_exec(g, "b", NULL, &err), 1);
  CHECK_INT(wf_graph_add_exec(g, "a", NULL, &err), WF_ERR);
  CHECK_STR(err.msg, "workflow 'w': duplicate executor id 'a'");
  CHECK_INT(wf_graph_add_exec(g, "", NULL, &err), WF_ERR);
  CHECK(strstr(err.msg, "non-empty") != NULL);
  CHECK_INT(wf_graph_add_exec(g, NULL, NULL, &err), WF_ERR);
  CHECK_INT(g->nexec, 2);
  wf_graph_free(g);
}

static void test_find_many(void) {
  char id[32];
  wf_graph_t *g = wf_graph_new("big");
  for (int i = 0; i < 5000; i++) {
    snprintf(id, sizeof id, "x%d", i);
    CHECK_INT(wf_graph_add_exec(g, id, NULL, NULL), i);
  }
  int bad = 0;
  for (int i = 0; i < 5000; i++) {
    snprintf(id, sizeof id, "x%d", i);
    bad += wf_graph_find(g, id) != i;
  }
  CHECK_INT(bad, 0);
  CHECK_INT(wf_graph_find(g, "nope"), -1);
  CHECK_INT(wf_graph_find(g, "x5000"), -1);
  wf_graph_free(g);
}

static void test_options_validated(void) {
  wf_err_t err;
  wf_exec_opts_t o;
  wf_graph_t *g = wf_graph_new("w");
  wf_exec_opts_default(&o);
  CHECK_INT(o.max_attempts, 1);
  CHECK(o.timeout == 0);
  o.max_attempts = 0;
  CHECK_INT(wf_graph_add_exec(g, "a", &o, &err), WF_ERR);
  CHECK_STR(err.msg, "workflow 'w': executor 'a': max_attempts must be >= 1");
  wf_exec_opts_default(&o);
  o.backoff = -1;
  CHECK_INT(wf_graph_add_exec(g, "a", &o, &err), WF_ERR);
  CHECK_STR(err.msg, "workflow 'w': executor 'a': backoff must be >= 0");
  wf_exec_opts_default(&o);
  o.backoff_factor = 0.5;
  CHECK_INT(wf_graph_add_exec(g, "a", &o, &err), WF_ERR);
  CHECK_STR(err.msg,
            "workflow 'w': executor 'a': backoff_factor must be >= 1");
  wf_exec_opts_default(&o);
  o.timeout = -0.1;
  CHECK_INT(wf_graph_add_exec(g, "a", &o, &err), WF_ERR);
  CHECK_STR(err.msg, "workflow 'w': executor 'a': timeout must be >= 0");
  wf_exec_opts_default(&o);
  o.max_attempts = 3;
  o.timeout = 2;
  CHECK_INT(wf_graph_add_exec(g, "a", &o, &err), 0);
  CHECK_INT(g->execs[0].o.max_attempts, 3);
  wf_graph_free(g);
}

static void test_unreachable(void) {
  wf_err_t err;
  static const char *const ids[] = {"a", "b", "x", "c", "y", NULL};
  wf_graph_t *g = wf_graph_new("w");
  add_all(g, ids);
  CHECK_INT(wf_graph_set_start(g, 0, &err), WF_OK);
  CHECK_INT(wf_graph_set_start(g, 9, &err), WF_ERR);
  int a = 0, b = 1, c = 3;
  CHECK(edge(g, WF_EDGE_DIRECT, &a, 1, &b, 1, &err) >= 0);
  CHECK(edge(g, WF_EDGE_DIRECT, &b, 1, &c, 1, &err) >= 0);
  CHECK_INT(wf_graph_finalize(g, &err), WF_ERR);
  CHECK_STR(err.msg,
            "workflow 'w': executors unreachable from start 'a': 'x', 'y'");
  CHECK(!g->finalized);
  wf_graph_free(g);
}

static void test_unreachable_capped(void) {
  wf_err_t err;
  char id[16];
  wf_graph_t *g = wf_graph_new("w");
  for (int i = 0; i < 15; i++) {
    snprintf(id, sizeof id, "n%d", i);
    wf_graph_add_exec(g, id, NULL, NULL);
  }
  wf_graph_set_start(g, 0, NULL);
  CHECK_INT(wf_graph_finalize(g, &err), WF_ERR);
  CHECK_STR(err.msg, "workflow 'w': executors unreachable from start 'n0': "
                     "'n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7', 'n8', 'n9', "
                     "'n10', ...");
  wf_graph_free(g);
}

static void test_edge_errors(void) {
  wf_err_t err;
  static const char *const ids[] = {"a", "b", "c", NULL};
  wf_graph_t *g = wf_graph_new("w");
  add_all(g, ids);
  int a = 0, bad = 7, bc[] = {1, 2}, ab[] = {0, 0};
  CHECK_INT(edge(g, WF_EDGE_DIRECT, &a, 1, &bad, 1, &err), WF_ERR);
  CHECK_STR(err.msg,
            "workflow 'w': edge 'a -> #7': executor index 7 out of range");
  CHECK_INT(edge(g, WF_EDGE_DIRECT, &a, 1, NULL, 0, &err), WF_ERR);
  CHECK(strstr(err.msg, "no target executor") != NULL);
  CHECK_INT(edge(g, WF_EDGE_FANOUT, &a, 1, NULL, 0, &err), WF_ERR);
  CHECK_INT(edge(g, WF_EDGE_FANIN, NULL, 0, &a, 1, &err), WF_ERR);
  CHECK(strstr(err.msg, "no source executor") != NULL);
  CHECK_INT(edge(g, WF_EDGE_DIRECT, &a, 1, bc, 2, &err), WF_ERR);
  CHECK(strstr(err.msg, "exactly one target") != NULL);
  CHECK_INT(edge(g, WF_EDGE_DIRECT, bc, 2, &a, 1, &err), WF_ERR);
  CHECK_INT(edge(g, WF_EDGE_FANIN, ab, 2, &bad, 1, &err), WF_ERR);
  CHECK_INT(edge(g, WF_EDGE_FANIN, ab, 2, &bc[0], 1, &err), WF_ERR);
  CHECK_STR(err.msg, "workflow 'w': edge '[a, a] -> b': duplicate source 'a'");
  CHECK_INT(g->nedge, 0);
  wf_graph_free(g);
}

static void test_labels(void) {
  char buf[128];
  static const char *const ids[] = {"a", "b", "c", "d", NULL};
  wf_graph_t *g = wf_graph_new("w");
  add_all(g, ids);
  int a = 0, b = 1, c = 2, d = 3, bc[] = {1, 2}, abc[] = {0, 1, 2};
  unsigned char cond = 1;
  wf_edge_spec_t s1 = {WF_EDGE_DIRECT, NULL, 1, &a, 1, &b, NULL, -1, 0};
  wf_edge_spec_t s2 = {WF_EDGE_DIRECT, "is_big", 1, &a, 1, &c, &cond, -1, 0};
  wf_edge_spec_t s3 = {WF_EDGE_FANOUT, NULL, 1, &a, 2, bc, NULL, -1, 1};
  wf_edge_spec_t s4 = {WF_EDGE_FANIN, NULL, 3, abc, 1, &d, NULL, -1, 0};
  wf_edge_spec_t s5 = {WF_EDGE_SWITCH, NULL, 1, &b, 1, &c, NULL, 3, 0};
  CHECK_INT(wf_graph_add_edge(g, &s1, NULL), 0);
  CHECK_INT(wf_graph_add_edge(g, &s2, NULL), 1);
  CHECK_INT(wf_graph_add_edge(g, &s3, NULL), 2);
  CHECK_INT(wf_graph_add_edge(g, &s4, NULL), 3);
  CHECK_INT(wf_graph_add_edge(g, &s5, NULL), 4);
  CHECK_STR(wf_graph_edge_label(g, 0, buf, sizeof buf), "a -> b");
  CHECK_STR(wf_graph_edge_label(g, 1, buf, sizeof buf), "a -> c (is_big)");
  CHECK_STR(wf_graph_edge_label(g, 2, buf, sizeof buf), "a -> [b, c]");
  CHECK_STR(wf_graph_edge_label(g, 3, buf, sizeof buf), "[a, b, c] -> d");
  CHECK_STR(wf_graph_edge_label(g, 4, buf, sizeof buf), "b -> [c, d]");
  CHECK_STR(wf_graph_edge_label(g, 9, buf, sizeof buf), "#9");
  CHECK_STR(wf_graph_edge_label(g, 0, buf, 4), "a -");
  /* per-kind flags */
  CHECK(!g->edges[0].has_cond[0]);
  CHECK(g->edges[1].has_cond[0]);
  CHECK(g->edges[4].has_cond[0]); /* switch cases always */
  CHECK_INT(g->edges[4].dflt, 3);
  CHECK(g->edges[2].has_select);
  wf_graph_free(g);
}

static void test_finalize_adjacency(void) {
  wf_err_t err;
  static const char *const ids[] = {"a", "b", "c", "d", NULL};
  wf_graph_t *g = wf_graph_new("w");
  add_all(g, ids);
  int a = 0, b = 1, c = 2, d = 3, bc[] = {1, 2}, cb[] = {2, 1};
  CHECK(edge(g, WF_EDGE_FANOUT, &a, 1, bc, 2, &err) == 0);
  CHECK(edge(g, WF_EDGE_FANIN, cb, 2, &d, 1, &err) == 1);
  CHECK(edge(g, WF_EDGE_DIRECT, &b, 1, &c, 1, &err) == 2);
  CHECK(edge(g, WF_EDGE_FANIN, bc, 2, &a, 1, &err) == 3);
  wf_graph_set_start(g, a, NULL);
  CHECK_INT(wf_graph_finalize(g, &err), WF_OK);
  CHECK(g->finalized);
  CHECK_INT(g->nfanin, 2);
  CHECK_INT(g->edges[1].fanin, 0);
  CHECK_INT(g->edges[3].fanin, 1);
  CHECK_INT(g->edges[0].fanin, -1);
  CHECK_INT(g->execs[a].nout, 1);
  CHECK_INT(g->execs[b].nout, 3); /* fan-in 1, direct 2, fan-in 3 */
  CHECK_INT(g->execs[b].out[0], 1);
  CHECK_INT(g->execs[b].outpos[0], 1);
  CHECK_INT(g->execs[b].out[1], 2);
  CHECK_INT(g->execs[b].out[2], 3);
  CHECK_INT(g->execs[b].outpos[2], 0);
  CHECK_INT(g->execs[c].outpos[0], 0);
  CHECK_INT(g->execs[d].nout, 0);
  CHECK(wf_graph_reaches(g, a, b));
  CHECK(wf_graph_reaches(g, a, c));
  CHECK(!wf_graph_reaches(g, a, d));
  CHECK(wf_graph_reaches(g, b, d));
  CHECK(wf_graph_reaches(g, b, a));
  CHECK(!wf_graph_reaches(g, d, a));
  CHECK(!wf_graph_reaches(g, a, -1));
  /* built graphs are frozen */
  CHECK_INT(wf_graph_add_exec(g, "e", NULL, &err), WF_ERR);
  CHECK_STR(err.msg, "workflow 'w': already built");
  CHECK_INT(wf_graph_finalize(g, &err), WF_OK);
  wf_graph_free(g);
}

static void test_switch_default_reaches(void) {
  wf_err_t err;
  static const char *const ids[] = {"a", "b", "c", NULL};
  wf_graph_t *g = wf_graph_new("w");
  add_all(g, ids);
  int a = 0, b = 1;
  wf_edge_spec_t s = {WF_EDGE_SWITCH, NULL, 1, &a, 1, &b, NULL, 2, 0};
  CHECK_INT(wf_graph_add_edge(g, &s, &err), 0);
  wf_graph_set_start(g, 0, NULL);
  CHECK_INT(wf_graph_finalize(g, &err), WF_OK); /* c reachable by default */
  CHECK(wf_graph_reaches(g, a, 2));
  wf_graph_free(g);
}

static void test_reducers(void) {
  wf_graph_t *g = wf_graph_new("w");
  CHECK_INT(wf_graph_add_reducer(g, "log"), 0);
  CHECK_INT(wf_graph_add_reducer(g, "sum"), 1);
  CHECK_INT(wf_graph_add_reducer(g, "log"), 0);
  CHECK_INT(wf_graph_reducer(g, "sum"), 1);
  CHECK_INT(wf_graph_reducer(g, "other"), -1);
  wf_graph_free(g);
  wf_graph_free(NULL);
}

/* A graph with reducer keys keys[i] signed sigs[i] (signature bytes of
 * length lens[i], NULL: none) and labelled labels[i]; n keys. */
static wf_graph_t *signed_graph(int n, const char *const *keys,
                                const char *const *sigs, const size_t *lens,
                                const char *const *labels) {
  wf_graph_t *g = wf_graph_new("w");
  for (int i = 0; i < n; i++) {
    int id = wf_graph_add_reducer(g, keys[i]);
    if (sigs[i])
      CHECK_INT(wf_graph_set_reducer_sig(g, id, sigs[i], lens[i], labels[i], NULL),
                WF_OK);
  }
  return g;
}

static void test_reducer_signatures(void) {
  wf_err_t err;
  /* signatures are bytes: a NUL inside counts, the label does not */
  const char *k2[] = {"total", "log"}, *k2r[] = {"log", "total"};
  const char *s1[] = {"sum\0a", "app"}, *s1r[] = {"app", "sum\0a"};
  const char *s2[] = {"sum\0b", "app"};
  const size_t l1[] = {5, 3}, l1r[] = {3, 5};
  const char *lb1[] = {"weft.reduce.sum", "weft.reduce.append"};
  const char *lb1r[] = {"weft.reduce.append", "the function at f.lua:3"};
  const char *lb2[] = {"weft.reduce.max", "weft.reduce.append"};
  wf_graph_t *a = signed_graph(2, k2, s1, l1, lb1);
  wf_graph_t *same = signed_graph(2, k2r, s1r, l1r, lb1r); /* other order */
  wf_graph_t *changed = signed_graph(2, k2, s2, l1, lb2);
  CHECK_INT(wf_graph_same_reducers(a, same, &err), WF_OK);
  CHECK_INT(wf_graph_same_reducers(a, a, &err), WF_OK);
  CHECK_INT(wf_graph_same_reducers(a, changed, &err), WF_ERR);
  CHECK_STR(err.msg, "the reducer of state key 'total' changed "
                     "(weft.reduce.sum -> weft.reduce.max)");

  /* a key gained or lost: the first differing key in name order */
  const char *k3[] = {"total", "log", "count"}, *s3[] = {"sum\0a", "app", "n"};
  const size_t l3[] = {5, 3, 1};
  const char *lb3[] = {"weft.reduce.sum", "weft.reduce.append", "weft.reduce.count"};
  wf_graph_t *more = signed_graph(3, k3, s3, l3, lb3);
  CHECK_INT(wf_graph_same_reducers(a, more, &err), WF_ERR);
  CHECK_STR(err.msg, "state key 'count' gained a reducer (weft.reduce.count)");
  CHECK_INT(wf_graph_same_reducers(more, a, &err), WF_ERR);
  CHECK_STR(err.msg, "state key 'count' lost its reducer (weft.reduce.count)");
  CHECK_INT(wf_graph_same_reducers(more, changed, &err), WF_ERR);
  CHECK_STR(err.msg, "state key 'count' lost its reducer (weft.reduce.count)");

  /* unsigned on both sides (C builders) is the same; on one side it is not */
  const char *none[] = {NULL, NULL};
  wf_graph_t *u1 = signed_graph(2, k2, none, l1, lb1);
  wf_graph_t *u2 = signed_graph(2, k2r, none, l1, lb1);
  CHECK_INT(wf_graph_same_reducers(u1, u2, &err), WF_OK);
  CHECK_INT(wf_graph_same_reducers(u1, a, &err), WF_ERR);
  CHECK_STR(err.msg, "the reducer of state key 'log' changed "
                     "(an unlabelled reducer -> weft.reduce.append)");

  /* a built graph takes no signature; a bad id is named */
  CHECK_INT(wf_graph_set_reducer_sig(a, 7, "x", 1, NULL, &err), WF_ERR);
  CHECK_STR(err.msg, "workflow 'w': no reducer 8");
  CHECK_INT(wf_graph_add_exec(a, "x", NULL, NULL), 0);
  wf_graph_set_start(a, 0, NULL);
  CHECK_INT(wf_graph_finalize(a, &err), WF_OK);
  CHECK_INT(wf_graph_set_reducer_sig(a, 0, "x", 1, NULL, &err), WF_ERR);
  CHECK_STR(err.msg, "workflow 'w': already built");
  wf_graph_free(a);
  wf_graph_free(same);
  wf_graph_free(changed);
  wf_graph_free(more);
  wf_graph_free(u1);
  wf_graph_free(u2);
}

int main(void) {
  RUN(test_no_start);
  RUN(test_duplicate_and_empty_ids);
  RUN(test_find_many);
  RUN(test_options_validated);
  RUN(test_unreachable);
  RUN(test_unreachable_capped);
  RUN(test_edge_errors);
  RUN(test_labels);
  RUN(test_finalize_adjacency);
  RUN(test_switch_default_reaches);
  RUN(test_reducers);
  RUN(test_reducer_signatures);
  return harness_end(__FILE__);
}
