/* test_route.c — routing of messages along direct, conditional, switch,
 * fan-out and fan-in edges, with C hooks over int values: conditions test
 * parity / thresholds, a selector picks by value, make_list builds int
 * lists. Checks value reference counts throughout. Depends on route.c,
 * graph.c, val.c and the harness. */
#include "graph_fixture.h"
#include "harness.h"
#include "route.h"

/* Conditions: edge name picks the test; "fail" raises. Case i of a switch
 * "mod3" holds when msg % 3 == i. */
static int cond(void *ud, const wf_graph_t *g, int e, int i, wf_val_t msg,
                int *out, wf_err_t *err) {
  (void)ud;
  const char *n = g->edges[e].name ? g->edges[e].name : "";
  int v = hv_get(msg);
  if (strcmp(n, "fail") == 0) return wf_err_set(err, "boom %d", v);
  if (strcmp(n, "even") == 0) *out = v % 2 == 0;
  else if (strcmp(n, "mod3") == 0) *out = v % 3 == i;
  else *out = 1;
  return WF_OK;
}

/* Selector: msg -1 raises, -2 returns an out-of-range index, else selects
 * targets whose index has the bits of msg set, in reverse order with a
 * duplicate (the router dedupes and keeps target order). */
static int sel(void *ud, const wf_graph_t *g, int e, wf_val_t msg, int *out,
               int *nout, wf_err_t *err) {
  (void)ud;
  int v = hv_get(msg), n = 0;
  if (v == -1) return wf_err_set(err, "selector says no");
  if (v == -2) {
    out[0] = g->edges[e].ntgt;
    *nout = 1;
    return WF_OK;
  }
  for (int t = g->edges[e].ntgt - 1; t >= 0; t--)
    if (v & (1 << t)) out[n++] = t;
  if (n && n < g->edges[e].ntgt) out[n++] = out[0];
  *nout = n;
  return WF_OK;
}

/* make_list hook. */
static wf_val_t mklist(void *ud, const wf_val_t *vals, int n) {
  (void)ud;
  return hv_list(vals, n);
}

static const wf_route_hooks_t H = {NULL, cond, sel, mklist};

/* A fresh value table and a graph "r" with executors e0..e(n-1), start
 * e0. */
static wf_graph_t *mkgraph(int n) {
  hv_init();
  return fixture_graph("r", n, NULL);
}

/* Add an edge (tgts/srcs arrays, optional name, all conditional when
 * cond_all, switch default dflt, selector flag). */
static void add(wf_graph_t *g, wf_edge_kind_t k, const char *name,
                const int *srcs, int ns, const int *tgts, int nt, int cond_all,
                int dflt, int select) {
  unsigned char c[16];
  memset(c, cond_all, sizeof c);
  wf_edge_spec_t s = {k, name, ns, srcs, nt, tgts, c, dflt, select};
  wf_err_t err;
  if (wf_graph_add_edge(g, &s, &err) < 0) {
    fprintf(stderr, "add_edge: %s\n", err.msg);
    CHECK(0);
  }
}

/* Route int value v from src without flushing fan-ins (a message among
 * others of the same superstep); returns the rc; the message is released. */
static int route_only(wf_route_t *r, int src, int v, int only,
                      wf_dvec_t *out, wf_err_t *err) {
  wf_val_t m = hv_int(v);
  int rc = wf_route_message(r, &H, src, m, only, out, err);
  wf_vals_release(HV, m);
  return rc;
}

/* Route v from src as the only message of a superstep (then flush). */
static int send(wf_route_t *r, int src, int v, int only, wf_dvec_t *out,
                wf_err_t *err) {
  int rc = route_only(r, src, v, only, out, err);
  if (rc == WF_OK) wf_route_flush(r, &H, out);
  return rc;
}

/* Finalize g and return its router. */
static wf_route_t *open_route(wf_graph_t *g) {
  CHECK_INT(wf_graph_finalize(g, NULL), WF_OK);
  return wf_route_new(g, HV);
}

/* Free out, r and g, then check that no value is left. */
static void close_route(wf_dvec_t *out, wf_route_t *r, wf_graph_t *g) {
  wf_dvec_free(out);
  wf_route_free(r);
  wf_graph_free(g);
  HV_DONE();
}

/* Send v from src (see send) and check it made one delivery, to exec;
 * the delivery is released. */
static void send_one(wf_route_t *r, int src, int v, int only, int exec,
                     wf_dvec_t *out, wf_err_t *err) {
  CHECK_INT(send(r, src, v, only, out, err), WF_OK);
  CHECK_INT(out->n, 1);
  CHECK_INT(out->v[0].exec, exec);
  wf_dvec_clear(out, HV);
}

static void test_direct_and_conditional(void) {
  wf_graph_t *g = mkgraph(4);
  int s0 = 0, t1 = 1, t2 = 2;
  add(g, WF_EDGE_DIRECT, NULL, &s0, 1, &t1, 1, 0, -1, 0);
  add(g, WF_EDGE_DIRECT, "even", &s0, 1, &t2, 1, 1, -1, 0);
  int t3 = 3;
  add(g, WF_EDGE_DIRECT, NULL, &t1, 1, &t3, 1, 0, -1, 0);
  add(g, WF_EDGE_DIRECT, NULL, &t2, 1, &t3, 1, 0, -1, 0);
  wf_route_t *r = open_route(g);
  wf_dvec_t out = {0};
  wf_err_t err;
  CHECK_INT(send(r, 0, 4, -1, &out, &err), WF_OK);
  CHECK_INT(out.n, 2);
  CHECK_INT(out.v[0].exec, 1);
  CHECK_INT(out.v[0].edge, 0);
  CHECK_INT(out.v[1].exec, 2);
  CHECK_INT(out.v[1].edge, 1);
  CHECK_INT(hv_get(out.v[1].msg), 4);
  CHECK_INT(wf_vals_count(HV, out.v[0].msg), 2); /* one per delivery */
  wf_dvec_clear(&out, HV);
  send_one(r, 0, 5, -1, 1, &out, &err);
  /* targeted: only edges reaching e2; its condition still applies */
  send_one(r, 0, 6, 2, 2, &out, &err);
  CHECK_INT(send(r, 0, 7, 2, &out, &err), WF_OK);
  CHECK_INT(out.n, 0);
  /* a terminal executor routes nowhere */
  CHECK_INT(send(r, 3, 1, -1, &out, &err), WF_OK);
  CHECK_INT(out.n, 0);
  close_route(&out, r, g);
}

static void test_condition_error_names_edge(void) {
  wf_graph_t *g = mkgraph(3);
  int s0 = 0, t1 = 1, t2 = 2;
  add(g, WF_EDGE_DIRECT, NULL, &s0, 1, &t1, 1, 0, -1, 0);
  add(g, WF_EDGE_DIRECT, "fail", &s0, 1, &t2, 1, 1, -1, 0);
  wf_route_t *r = open_route(g);
  wf_dvec_t out = {0};
  wf_err_t err;
  CHECK_INT(send(r, 0, 3, -1, &out, &err), WF_ERR);
  CHECK_STR(err.msg, "condition of edge 'e0 -> e2 (fail)' failed: boom 3");
  CHECK_INT(out.n, 1); /* the earlier delivery stays */
  wf_dvec_clear(&out, HV);
  close_route(&out, r, g);
}

static void test_switch(void) {
  wf_graph_t *g = mkgraph(5);
  int s0 = 0, cases[] = {1, 2, 3};
  add(g, WF_EDGE_SWITCH, "mod3", &s0, 1, cases, 2, 1, 3, 0);
  int s1 = 1, t4 = 4;
  add(g, WF_EDGE_SWITCH, "mod3", &s1, 1, &t4, 1, 1, -1, 0); /* no default */
  wf_route_t *r = open_route(g);
  wf_dvec_t out = {0};
  wf_err_t err;
  CHECK_INT(send(r, 0, 3, -1, &out, &err), WF_OK); /* case 0 */
  CHECK_INT(send(r, 0, 4, -1, &out, &err), WF_OK); /* case 1 */
  CHECK_INT(send(r, 0, 5, -1, &out, &err), WF_OK); /* default */
  CHECK_INT(out.n, 3);
  CHECK_INT(out.v[0].exec, 1);
  CHECK_INT(out.v[1].exec, 2);
  CHECK_INT(out.v[2].exec, 3);
  wf_dvec_clear(&out, HV);
  CHECK_INT(send(r, 1, 0, -1, &out, &err), WF_OK); /* case 0 of e1 */
  send_one(r, 1, 1, -1, 4, &out, &err); /* no match: dropped */
  /* targeted at the default while a case matches: nothing */
  CHECK_INT(send(r, 0, 3, 3, &out, &err), WF_OK);
  CHECK_INT(out.n, 0);
  CHECK_INT(send(r, 0, 5, 3, &out, &err), WF_OK);
  CHECK_INT(out.n, 1);
  wf_dvec_clear(&out, HV);
  close_route(&out, r, g);
}

static void test_fanout(void) {
  wf_graph_t *g = mkgraph(7);
  int s0 = 0, t[] = {1, 2, 3}, s4 = 4, u[] = {5, 6, 1};
  add(g, WF_EDGE_FANOUT, NULL, &s0, 1, t, 3, 0, -1, 0);
  add(g, WF_EDGE_FANOUT, NULL, &s0, 1, &s4, 1, 0, -1, 0);
  add(g, WF_EDGE_FANOUT, "pick", &s4, 1, u, 3, 0, -1, 1);
  wf_route_t *r = open_route(g);
  wf_dvec_t out = {0};
  wf_err_t err;
  CHECK_INT(send(r, 0, 9, -1, &out, &err), WF_OK);
  CHECK_INT(out.n, 4);
  for (int i = 0; i < 4; i++) CHECK_INT(out.v[i].exec, i + 1);
  wf_dvec_clear(&out, HV);
  send_one(r, 0, 9, 2, 2, &out, &err); /* targeted */
  /* selector: bits 0 and 2 -> targets 5 and 1, in target order */
  CHECK_INT(send(r, 4, 5, -1, &out, &err), WF_OK);
  CHECK_INT(out.n, 2);
  CHECK_INT(out.v[0].exec, 5);
  CHECK_INT(out.v[1].exec, 1);
  wf_dvec_clear(&out, HV);
  send_one(r, 4, 5, 1, 1, &out, &err);
  CHECK_INT(send(r, 4, 0, -1, &out, &err), WF_OK); /* empty selection */
  CHECK_INT(out.n, 0);
  CHECK_INT(send(r, 4, -1, -1, &out, &err), WF_ERR);
  CHECK_STR(err.msg,
            "selector of edge 'e4 -> [e5, e6, e1] (pick)' failed: selector "
            "says no");
  CHECK_INT(send(r, 4, -2, -1, &out, &err), WF_ERR);
  CHECK_STR(err.msg, "selector of edge 'e4 -> [e5, e6, e1] (pick)' failed: "
                     "index 4 out of range 1..3");
  CHECK_INT(out.n, 0);
  close_route(&out, r, g);
}

static void test_fanin(void) {
  wf_graph_t *g = mkgraph(5);
  int s0 = 0, mid[] = {1, 2, 3}, in[] = {3, 1, 2}, t4 = 4;
  add(g, WF_EDGE_FANOUT, NULL, &s0, 1, mid, 3, 0, -1, 0);
  add(g, WF_EDGE_FANIN, NULL, in, 3, &t4, 1, 0, -1, 0); /* order 3, 1, 2 */
  wf_route_t *r = open_route(g);
  wf_dvec_t out = {0};
  wf_err_t err;
  int e = 1;
  CHECK_INT(send(r, 1, 10, -1, &out, &err), WF_OK);
  CHECK_INT(send(r, 1, 11, -1, &out, &err), WF_OK); /* two from e1 */
  CHECK_INT(out.n, 0);
  CHECK_INT(wf_route_buffered(r, e, 1), 2);
  CHECK_INT(wf_route_buffered(r, e, 0), 0);
  CHECK_INT(wf_route_buffered_total(r), 2);
  CHECK_INT(send(r, 3, 30, 0, &out, &err), WF_OK); /* filtered: not e0 */
  CHECK_INT(wf_route_buffered_total(r), 2);
  CHECK_INT(send(r, 3, 30, 4, &out, &err), WF_OK);
  CHECK_INT(out.n, 0);
  CHECK_INT(send(r, 2, 20, -1, &out, &err), WF_OK); /* completes */
  CHECK_INT(out.n, 1);
  CHECK_INT(out.v[0].exec, 4);
  CHECK_INT(out.v[0].edge, e);
  wf_val_t l = out.v[0].msg;
  CHECK_INT(hv_get(l), 4);
  CHECK_INT(hv_item(l, 0), 30); /* source order: e3, e1, e1, e2 */
  CHECK_INT(hv_item(l, 1), 10);
  CHECK_INT(hv_item(l, 2), 11);
  CHECK_INT(hv_item(l, 3), 20);
  CHECK_INT(wf_vals_count(HV, l), 1);
  CHECK_INT(wf_route_buffered_total(r), 0);
  wf_dvec_clear(&out, HV);
  CHECK_INT(wf_vals_live(HV), 0); /* buffered messages released */
  /* within one superstep a fan-in takes everything routed before the
   * flush, whatever the order: e2 completes it first, e1 sends again */
  CHECK_INT(route_only(r, 3, 31, -1, &out, &err), WF_OK);
  CHECK_INT(route_only(r, 2, 22, -1, &out, &err), WF_OK);
  CHECK_INT(route_only(r, 1, 12, -1, &out, &err), WF_OK);
  CHECK_INT(out.n, 0);
  CHECK_INT(route_only(r, 1, 13, -1, &out, &err), WF_OK);
  wf_route_flush(r, &H, &out);
  CHECK_INT(out.n, 1);
  l = out.v[0].msg;
  CHECK_INT(hv_get(l), 4);
  CHECK_INT(hv_item(l, 0), 31);
  CHECK_INT(hv_item(l, 1), 12);
  CHECK_INT(hv_item(l, 2), 13);
  CHECK_INT(hv_item(l, 3), 22);
  wf_dvec_clear(&out, HV);
  CHECK_INT(wf_vals_live(HV), 0);
  /* a partial buffer survives and is released on free */
  CHECK_INT(send(r, 2, 21, -1, &out, &err), WF_OK);
  CHECK_INT(wf_route_buffered(r, e, 2), 1);
  CHECK_INT(wf_vals_live(HV), 1);
  close_route(&out, r, g);
}

static void test_fanin_large(void) {
  enum { N = 1000 };
  wf_graph_t *g = mkgraph(N + 2);
  int s0 = 0, mid[N], t = N + 1;
  for (int i = 0; i < N; i++) mid[i] = i + 1;
  add(g, WF_EDGE_FANOUT, NULL, &s0, 1, mid, N, 0, -1, 0);
  add(g, WF_EDGE_FANIN, NULL, mid, N, &t, 1, 0, -1, 0);
  wf_route_t *r = open_route(g);
  wf_dvec_t out = {0};
  wf_err_t err;
  for (int i = N; i >= 1; i--) CHECK_INT(send(r, i, i, -1, &out, &err), 0);
  CHECK_INT(out.n, 1);
  int bad = 0;
  for (int i = 0; i < N; i++) bad += hv_item(out.v[0].msg, i) != i + 1;
  CHECK_INT(bad, 0);
  wf_dvec_clear(&out, HV);
  close_route(&out, r, g);
}

/* Undelivered messages: the refusing edges of a message that edges could
 * take but none did (a false condition, a switch without a match or
 * default, a selector choosing none), nothing when something accepts it or
 * the source has no edge, and an error naming them in strict mode. */
static void test_refused(void) {
  wf_graph_t *g = mkgraph(5);
  int s0 = 0, s1 = 1, s2 = 2, t1 = 1, t2 = 2, t3 = 3, sw[2] = {3, 4};
  int fo[2] = {3, 4};
  add(g, WF_EDGE_DIRECT, "even", &s0, 1, &t1, 1, 1, -1, 0);  /* e0: 0 */
  add(g, WF_EDGE_DIRECT, "even", &s0, 1, &t2, 1, 1, -1, 0);  /* e0: 1 */
  add(g, WF_EDGE_SWITCH, "mod3", &s1, 1, sw, 2, 1, -1, 0);   /* e1: 2 */
  add(g, WF_EDGE_FANOUT, NULL, &s2, 1, fo, 2, 0, -1, 1);     /* e2: 3 */
  add(g, WF_EDGE_DIRECT, NULL, &s2, 1, &t3, 1, 0, -1, 0);    /* e2: 4 */
  wf_route_t *r = open_route(g);
  wf_dvec_t out = {0};
  wf_err_t err;
  const int *ref;
  /* odd: both conditions of e0 refuse */
  CHECK_INT(send(r, 0, 3, -1, &out, &err), WF_OK);
  CHECK_INT(out.n, 0);
  CHECK_INT(wf_route_refused(r, &ref), 2);
  CHECK_INT(ref[0], 0);
  CHECK_INT(ref[1], 1);
  /* even: delivered, nothing refused */
  CHECK_INT(send(r, 0, 4, -1, &out, &err), WF_OK);
  CHECK_INT(out.n, 2);
  CHECK_INT(wf_route_refused(r, &ref), 0);
  wf_dvec_clear(&out, HV);
  /* targeted at e2: only the edge to e2 counts */
  CHECK_INT(send(r, 0, 5, 2, &out, &err), WF_OK);
  CHECK_INT(wf_route_refused(r, &ref), 1);
  CHECK_INT(ref[0], 1);
  /* a switch whose cases all refuse, without a default */
  CHECK_INT(send(r, 1, 2, -1, &out, &err), WF_OK);
  CHECK_INT(out.n, 0);
  CHECK_INT(wf_route_refused(r, &ref), 1);
  CHECK_INT(ref[0], 2);
  CHECK_INT(send(r, 1, 3, -1, &out, &err), WF_OK);
  CHECK_INT(out.n, 1);
  CHECK_INT(wf_route_refused(r, &ref), 0);
  wf_dvec_clear(&out, HV);
  /* a selector choosing none, but a direct edge takes it: delivered */
  CHECK_INT(send(r, 2, 0, -1, &out, &err), WF_OK);
  CHECK_INT(out.n, 1);
  CHECK_INT(wf_route_refused(r, &ref), 0);
  wf_dvec_clear(&out, HV);
  /* a terminal executor has no edge: not undelivered */
  CHECK_INT(send(r, 4, 1, -1, &out, &err), WF_OK);
  CHECK_INT(wf_route_refused(r, &ref), 0);
  /* strict: an error naming the sender, the target and the edges */
  wf_route_set_strict(r, 1);
  CHECK_INT(send(r, 0, 3, -1, &out, &err), WF_ERR);
  CHECK_STR(err.msg, "message from 'e0' was not delivered: no edge accepted "
                     "it (edge 'e0 -> e1 (even)', edge 'e0 -> e2 (even)'); "
                     "on_undelivered = \"error\" made it fail the run");
  CHECK_INT(send(r, 0, 5, 2, &out, &err), WF_ERR);
  CHECK_STR(err.msg, "message from 'e0' to 'e2' was not delivered: no edge "
                     "accepted it (edge 'e0 -> e2 (even)'); on_undelivered = "
                     "\"error\" made it fail the run");
  CHECK_INT(send(r, 0, 4, -1, &out, &err), WF_OK);
  CHECK_INT(out.n, 2);
  wf_dvec_clear(&out, HV);
  close_route(&out, r, g);
}

int main(void) {
  RUN(test_direct_and_conditional);
  RUN(test_condition_error_names_edge);
  RUN(test_switch);
  RUN(test_fanout);
  RUN(test_fanin);
  RUN(test_fanin_large);
  RUN(test_refused);
  return harness_end(__FILE__);
}
