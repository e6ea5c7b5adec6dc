/* state.c — a run's shared state: committed key/value entries in
 * first-commit order with an open-addressing hash index, and the commit
 * batch of one barrier (keys written, their distinct writers) used to fold
 * reducer keys and report last-writer-wins conflicts.
 * Depends on graph.h and val.h (state.h). */
#include "state.h"

#include <stdlib.h>
#include <string.h>

typedef struct wf_sentry {
  char *key;
  uint32_t hash;
  wf_val_t val; /* one reference */
} wf_sentry_t;

/* A key written during the current batch. */
typedef struct wf_bkey {
  char *key;
  uint32_t hash;
  int reducer;  /* reducer id or -1 */
  int folded;   /* the entry holds a reducer's output of this batch */
  int *writers; /* distinct consecutive writers, in write order */
  int nw, cw;
} wf_bkey_t;

/* Open-addressing index: slot holds entry index + 1, 0 = empty. */
typedef struct wf_hidx {
  int *slot;
  size_t cap; /* power of two, or 0 */
} wf_hidx_t;

struct wf_state {
  const wf_graph_t *g;
  wf_vals_t *vals;
  wf_sentry_t *e;
  size_t n, cap;
  wf_hidx_t idx;
  wf_bkey_t *b;
  size_t nb, cb;
  wf_hidx_t bidx;
};

/* FNV-1a hash of a string. */
static uint32_t hash_str(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

/* Key of entry i of an indexed array (entries and batch keys both start
 * with key and hash, so one accessor per array type). */
typedef const char *(*key_at_fn)(const void *arr, int i, uint32_t *hash);

/* Key accessor for committed entries. */
static const char *entry_key(const void *arr, int i, uint32_t *hash) {
  const wf_sentry_t *e = (const wf_sentry_t *)arr + i;
  *hash = e->hash;
  return e->key;
}

/* Key accessor for batch keys. */
static const char *bkey_key(const void *arr, int i, uint32_t *hash) {
  const wf_bkey_t *b = (const wf_bkey_t *)arr + i;
  *hash = b->hash;
  return b->key;
}

/* Index of key in arr through x, or -1. */
static int hidx_find(const wf_hidx_t *x, const void *arr, key_at_fn at,
                     const char *key, uint32_t hash) {
  if (!x->cap) return -1;
  size_t mask = x->cap - 1;
  for (size_t p = hash & mask; x->slot[p]; p = (p + 1) & mask) {
    uint32_t h;
    const char *k = at(arr, x->slot[p] - 1, &h);
    if (h == hash && strcmp(k, key) == 0) return x->slot[p] - 1;
  }
  return -1;
}

/* Insert entry i (absent) into x, which has room. */
static void hidx_put(wf_hidx_t *x, int i, uint32_t hash) {
  size_t mask = x->cap - 1, p = hash & mask;
  while (x->slot[p]) p = (p + 1) & mask;
  x->slot[p] = i + 1;
}

/* Rebuild x for the n entries of arr, at most half full. */
static void hidx_rebuild(wf_hidx_t *x, const void *arr, key_at_fn at,
                         size_t n) {
  size_t c = x->cap ? x->cap : 16;
  while (n * 2 > c) c *= 2;
  if (c != x->cap) {
    free(x->slot);
    x->slot = wf_xmalloc(c * sizeof *x->slot);
    x->cap = c;
  }
  memset(x->slot, 0, c * sizeof *x->slot);
  for (size_t i = 0; i < n; i++) {
    uint32_t h;
    at(arr, (int)i, &h);
    hidx_put(x, (int)i, h);
  }
}

/* Add entry n-1 (just appended) to x, growing when needed. */
static void hidx_add(wf_hidx_t *x, const void *arr, key_at_fn at, size_t n) {
  if (n * 2 > x->cap) {
    hidx_rebuild(x, arr, at, n);
    return;
  }
  uint32_t h;
  at(arr, (int)n - 1, &h);
  hidx_put(x, (int)n - 1, h);
}

/* Empty shared state for a run of g. */
wf_state_t *wf_state_new(const wf_graph_t *g, wf_vals_t *vals) {
  wf_state_t *s = wf_xcalloc(1, sizeof *s);
  s->g = g;
  s->vals = vals;
  return s;
}

/* Forget the batch's keys (the batch is over). */
static void batch_clear(wf_state_t *s) {
  for (size_t i = 0; i < s->nb; i++) {
    free(s->b[i].key);
    free(s->b[i].writers);
  }
  s->nb = 0;
  if (s->bidx.cap) memset(s->bidx.slot, 0, s->bidx.cap * sizeof(int));
}

/* Release every value and free the state. */
void wf_state_free(wf_state_t *s) {
  if (!s) return;
  batch_clear(s);
  for (size_t i = 0; i < s->n; i++) {
    wf_vals_release(s->vals, s->e[i].val);
    free(s->e[i].key);
  }
  free(s->e);
  free(s->idx.slot);
  free(s->b);
  free(s->bidx.slot);
  free(s);
}

/* Committed value of key (borrowed) or 0. */
wf_val_t wf_state_get(const wf_state_t *s, const char *key) {
  if (!key) return 0;
  int i = hidx_find(&s->idx, s->e, entry_key, key, hash_str(key));
  return i < 0 ? 0 : s->e[i].val;
}

/* Number of committed keys. */
int wf_state_size(const wf_state_t *s) { return (int)s->n; }

/* Key i in first-commit order, its value in *val (borrowed). */
const char *wf_state_key_at(const wf_state_t *s, int i, wf_val_t *val) {
  if (i < 0 || (size_t)i >= s->n) {
    if (val) *val = 0;
    return NULL;
  }
  if (val) *val = s->e[i].val;
  return s->e[i].key;
}

static void entry_set(wf_state_t *s, const char *key, uint32_t hash,
                      wf_val_t val);
static void entry_del(wf_state_t *s, const char *key, uint32_t hash);

/* Set key directly (restoring a checkpoint); val 0 deletes. */
void wf_state_set(wf_state_t *s, const char *key, wf_val_t val) {
  if (!key) {
    wf_vals_release(s->vals, val);
    return;
  }
  if (val)
    entry_set(s, key, hash_str(key), val);
  else
    entry_del(s, key, hash_str(key));
}

/* Use compatible graph g from now on (wf_run_swap_graph checked it). */
void wf_state_set_graph(wf_state_t *s, const wf_graph_t *g) { s->g = g; }

/* Start a batch (drops leftovers of an unfinished one). */
void wf_state_begin(wf_state_t *s) { batch_clear(s); }

/* Set committed key to val (reference moved in), replacing or appending. */
static void entry_set(wf_state_t *s, const char *key, uint32_t hash,
                      wf_val_t val) {
  int i = hidx_find(&s->idx, s->e, entry_key, key, hash);
  if (i >= 0) {
    wf_vals_release(s->vals, s->e[i].val);
    s->e[i].val = val;
    return;
  }
  WF_GROW(s->e, s->cap, s->n + 1);
  s->e[s->n] = (wf_sentry_t){wf_xstrdup(key), hash, val};
  s->n++;
  hidx_add(&s->idx, s->e, entry_key, s->n);
}

/* Delete committed key if present (compacts, keeping commit order). */
static void entry_del(wf_state_t *s, const char *key, uint32_t hash) {
  int i = hidx_find(&s->idx, s->e, entry_key, key, hash);
  if (i < 0) return;
  wf_vals_release(s->vals, s->e[i].val);
  free(s->e[i].key);
  memmove(s->e + i, s->e + i + 1, (s->n - (size_t)i - 1) * sizeof *s->e);
  s->n--;
  hidx_rebuild(&s->idx, s->e, entry_key, s->n);
}

/* The batch record of key, created on its first write of the batch. */
static wf_bkey_t *batch_key(wf_state_t *s, const char *key, uint32_t hash) {
  int i = hidx_find(&s->bidx, s->b, bkey_key, key, hash);
  if (i >= 0) return &s->b[i];
  WF_GROW(s->b, s->cb, s->nb + 1);
  wf_bkey_t *b = &s->b[s->nb];
  memset(b, 0, sizeof *b);
  b->key = wf_xstrdup(key);
  b->hash = hash;
  b->reducer = wf_graph_reducer(s->g, key);
  s->nb++;
  hidx_add(&s->bidx, s->b, bkey_key, s->nb);
  return b;
}

/* Apply one write of the batch (val's reference is taken): delete, fold
 * through the reducer, or replace. */
int wf_state_apply(wf_state_t *s, const char *key, wf_val_t val, int writer,
                   wf_reduce_fn reduce, void *ud, wf_err_t *err) {
  if (!key) {
    wf_vals_release(s->vals, val);
    return wf_err_set(err, "state key is missing");
  }
  uint32_t hash = hash_str(key);
  wf_bkey_t *b = batch_key(s, key, hash);
  if (!b->nw || b->writers[b->nw - 1] != writer) {
    if (b->nw == b->cw) {
      b->cw = b->cw ? b->cw * 2 : 2;
      b->writers = wf_xrealloc(b->writers, (size_t)b->cw * sizeof(int));
    }
    b->writers[b->nw++] = writer;
  }
  if (!val) {
    entry_del(s, key, hash);
    b->folded = 0;
    return WF_OK;
  }
  if (b->reducer >= 0 && reduce) {
    int i = hidx_find(&s->idx, s->e, entry_key, key, hash);
    wf_val_t acc = i >= 0 ? s->e[i].val : 0, out = 0;
    wf_err_t sub;
    sub.msg[0] = 0;
    int rc = reduce(ud, s->g, b->reducer, acc, b->folded && acc, val, &out,
                    &sub);
    wf_vals_release(s->vals, val);
    if (rc != WF_OK) {
      wf_vals_release(s->vals, out);
      return wf_err_set(err, "reducer of state key '%s' failed: %s", key,
                        sub.msg[0] ? sub.msg : "unknown error");
    }
    if (out)
      entry_set(s, key, hash, out);
    else
      entry_del(s, key, hash);
    b->folded = out != 0;
    return WF_OK;
  }
  entry_set(s, key, hash, val);
  b->folded = 0;
  return WF_OK;
}

/* Report keys without reducer written by several writers, then end. */
void wf_state_end(wf_state_t *s, wf_conflict_fn cf, void *ud) {
  for (size_t i = 0; cf && i < s->nb; i++)
    if (s->b[i].reducer < 0 && s->b[i].nw > 1)
      cf(ud, s->b[i].key, s->b[i].writers, s->b[i].nw);
  batch_clear(s);
}

/* Abandon the batch; writes already applied stay. */
void wf_state_abort(wf_state_t *s) { batch_clear(s); }
