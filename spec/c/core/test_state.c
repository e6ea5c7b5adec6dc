/* test_state.c — shared state: snapshot reads, batches applied in writer
 * order, reducers (a summing one and a failing one), deletes, conflicts
 * and key order. Depends on state.c, graph.c, val.c and the harness. */
#include "graph.h"
#include "harness.h"
#include "state.h"

/* Reducer 0 ("sum") adds; reducer 1 ("bad") fails on 13. */
/* The acc_fresh of each reducer call, in order (the test reads them). */
static int freshes[16], nfresh;

static int reduce(void *ud, const wf_graph_t *g, int red, wf_val_t acc,
                  int fresh, wf_val_t val, wf_val_t *out,
                  wf_err_t *err) {
  if (nfresh < 16) freshes[nfresh++] = fresh;
  (void)ud;
  (void)g;
  if (red == 1 && hv_get(val) == 13) return wf_err_set(err, "unlucky");
  *out = hv_int(hv_get(acc) + hv_get(val));
  return WF_OK;
}

typedef struct conf {
  char key[32];
  int w[8], n;
} conf_t;
static conf_t confs[8];
static int nconf;

/* Conflict callback: remember key and writers. */
static void on_conflict(void *ud, const char *key, const int *w, int n) {
  (void)ud;
  conf_t *c = &confs[nconf++];
  snprintf(c->key, sizeof c->key, "%s", key);
  c->n = n;
  for (int i = 0; i < n && i < 8; i++) c->w[i] = w[i];
}

/* Apply key = int v (0: delete) by writer w. */
static int put(wf_state_t *s, const char *key, int v, int isnil, int w,
               wf_err_t *err) {
  return wf_state_apply(s, key, isnil ? 0 : hv_int(v), w, reduce, NULL, err);
}

static void test_last_writer_and_conflicts(void) {
  hv_init();
  nconf = 0;
  wf_graph_t *g = wf_graph_new("s");
  wf_graph_add_reducer(g, "sum");
  wf_state_t *s = wf_state_new(g, HV);
  wf_err_t err;
  CHECK_INT(wf_state_size(s), 0);
  CHECK_INT(wf_state_get(s, "x"), 0);
  wf_state_begin(s);
  CHECK_INT(put(s, "x", 1, 0, 0, &err), WF_OK);
  CHECK_INT(put(s, "y", 5, 0, 0, &err), WF_OK);
  CHECK_INT(put(s, "x", 2, 0, 0, &err), WF_OK); /* same writer twice */
  CHECK_INT(put(s, "x", 3, 0, 2, &err), WF_OK);
  CHECK_INT(put(s, "sum", 4, 0, 0, &err), WF_OK);
  CHECK_INT(put(s, "sum", 6, 0, 1, &err), WF_OK);
  CHECK_INT(put(s, "z", 7, 0, 1, &err), WF_OK);
  CHECK_INT(put(s, "z", 8, 0, 2, &err), WF_OK);
  wf_state_end(s, on_conflict, NULL);
  CHECK_INT(hv_get(wf_state_get(s, "x")), 3);
  CHECK_INT(hv_get(wf_state_get(s, "sum")), 10);
  CHECK_INT(nconf, 2); /* x then z, in first-write order; sum has a reducer */
  CHECK_STR(confs[0].key, "x");
  CHECK_INT(confs[0].n, 2);
  CHECK_INT(confs[0].w[0], 0);
  CHECK_INT(confs[0].w[1], 2);
  CHECK_STR(confs[1].key, "z");
  CHECK_INT(confs[1].w[0], 1);
  CHECK_INT(confs[1].w[1], 2);
  /* key order: first commit */
  wf_val_t v;
  CHECK_INT(wf_state_size(s), 4);
  CHECK_STR(wf_state_key_at(s, 0, &v), "x");
  CHECK_STR(wf_state_key_at(s, 1, &v), "y");
  CHECK_INT(hv_get(v), 5);
  CHECK_STR(wf_state_key_at(s, 2, &v), "sum");
  CHECK_STR(wf_state_key_at(s, 3, &v), "z");
  CHECK(wf_state_key_at(s, 4, &v) == NULL);
  /* the next batch folds into the committed value; no conflicts */
  nconf = 0;
  wf_state_begin(s);
  CHECK_INT(put(s, "sum", 1, 0, 0, &err), WF_OK);
  wf_state_end(s, on_conflict, NULL);
  CHECK_INT(hv_get(wf_state_get(s, "sum")), 11);
  CHECK_INT(nconf, 0);
  CHECK_INT(wf_vals_live(HV), 4);
  wf_state_free(s);
  wf_graph_free(g);
  HV_DONE();
}

static void test_delete(void) {
  hv_init();
  wf_graph_t *g = wf_graph_new("s");
  wf_graph_add_reducer(g, "sum");
  wf_state_t *s = wf_state_new(g, HV);
  wf_err_t err;
  char key[16];
  wf_state_begin(s);
  for (int i = 0; i < 100; i++) {
    snprintf(key, sizeof key, "k%d", i);
    put(s, key, i, 0, 0, &err);
  }
  put(s, "sum", 5, 0, 0, &err);
  wf_state_end(s, NULL, NULL);
  wf_state_begin(s);
  put(s, "k3", 0, 1, 0, &err);
  put(s, "sum", 0, 1, 0, &err); /* delete despite the reducer */
  put(s, "nothere", 0, 1, 0, &err);
  wf_state_end(s, NULL, NULL);
  CHECK_INT(wf_state_size(s), 99);
  CHECK_INT(wf_state_get(s, "k3"), 0);
  CHECK_INT(wf_state_get(s, "sum"), 0);
  CHECK_INT(hv_get(wf_state_get(s, "k4")), 4);
  CHECK_INT(hv_get(wf_state_get(s, "k99")), 99);
  CHECK_STR(wf_state_key_at(s, 3, NULL), "k4");
  /* set again after delete: goes last */
  wf_state_begin(s);
  put(s, "k3", 33, 0, 0, &err);
  put(s, "sum", 2, 0, 0, &err); /* reducer starts from nothing */
  wf_state_end(s, NULL, NULL);
  CHECK_STR(wf_state_key_at(s, 99, NULL), "k3");
  CHECK_INT(hv_get(wf_state_get(s, "sum")), 2);
  CHECK_INT(wf_vals_live(HV), 101);
  wf_state_free(s);
  wf_graph_free(g);
  HV_DONE();
}

/* acc is fresh (the reducer's own output) from the second fold of a key in
 * a batch on; never for the committed value, nor after a delete. */
static void test_fresh_acc(void) {
  hv_init();
  wf_graph_t *g = wf_graph_new("s");
  wf_graph_add_reducer(g, "sum");
  wf_state_t *s = wf_state_new(g, HV);
  wf_err_t err;
  nfresh = 0;
  wf_state_begin(s);
  CHECK_INT(put(s, "sum", 1, 0, 0, &err), WF_OK);  /* acc 0: not fresh */
  CHECK_INT(put(s, "sum", 2, 0, 1, &err), WF_OK);  /* own output: fresh */
  CHECK_INT(put(s, "sum", 3, 0, 2, &err), WF_OK);  /* fresh */
  wf_state_end(s, NULL, NULL);
  wf_state_begin(s);
  CHECK_INT(put(s, "sum", 4, 0, 0, &err), WF_OK);  /* committed: not fresh */
  CHECK_INT(put(s, "sum", 0, 1, 1, &err), WF_OK);  /* delete */
  CHECK_INT(put(s, "sum", 5, 0, 2, &err), WF_OK);  /* acc 0 again */
  CHECK_INT(put(s, "sum", 6, 0, 3, &err), WF_OK);  /* fresh */
  wf_state_end(s, NULL, NULL);
  CHECK_INT(hv_get(wf_state_get(s, "sum")), 11);
  CHECK_INT(nfresh, 6);
  int want[] = {0, 1, 1, 0, 0, 1};
  for (int i = 0; i < 6; i++) CHECK_INT(freshes[i], want[i]);
  wf_state_free(s);
  wf_graph_free(g);
  HV_DONE();
}

static void test_reducer_failure(void) {
  hv_init();
  wf_graph_t *g = wf_graph_new("s");
  wf_graph_add_reducer(g, "sum");
  wf_graph_add_reducer(g, "bad");
  wf_state_t *s = wf_state_new(g, HV);
  wf_err_t err;
  wf_state_begin(s);
  CHECK_INT(put(s, "bad", 1, 0, 0, &err), WF_OK);
  CHECK_INT(put(s, "bad", 13, 0, 1, &err), WF_ERR);
  CHECK_STR(err.msg, "reducer of state key 'bad' failed: unlucky");
  wf_state_abort(s);
  CHECK_INT(hv_get(wf_state_get(s, "bad")), 1); /* applied writes stay */
  CHECK_INT(wf_vals_live(HV), 1);
  /* a later batch works normally */
  wf_state_begin(s);
  CHECK_INT(put(s, "bad", 2, 0, 0, &err), WF_OK);
  wf_state_end(s, NULL, NULL);
  CHECK_INT(hv_get(wf_state_get(s, "bad")), 3);
  wf_state_free(s);
  wf_state_free(NULL);
  wf_graph_free(g);
  HV_DONE();
}

int main(void) {
  RUN(test_last_writer_and_conflicts);
  RUN(test_delete);
  RUN(test_reducer_failure);
  RUN(test_fresh_acc);
  return harness_end(__FILE__);
}
