/* val.c — reference counts of opaque host value handles: a flat array of
 * counts indexed by handle, and a stack of recycled handles. Handle 0 is
 * never issued (it means nil). Depends on common.h. */
#include "val.h"

#include <stdio.h>
#include <stdlib.h>

struct wf_vals {
  uint32_t *cnt;   /* cnt[h]: references of h; 0 = free */
  size_t cap;      /* allocated slots in cnt */
  uint32_t top;    /* next never-issued handle */
  uint32_t *free_; /* recycled handles */
  size_t nfree, cfree;
  size_t live;
  wf_vals_free_fn free_fn;
  void *ud;
};

/* New empty handle table calling free_fn(ud, h) when h drops to zero. */
wf_vals_t *wf_vals_new(wf_vals_free_fn free_fn, void *ud) {
  wf_vals_t *v = wf_xcalloc(1, sizeof *v);
  v->top = 1;
  v->free_fn = free_fn;
  v->ud = ud;
  return v;
}

/* Free the table; live handles are forgotten without callbacks. */
void wf_vals_free(wf_vals_t *v) {
  if (!v) return;
  free(v->cnt);
  free(v->free_);
  free(v);
}

/* A fresh handle with count 1: a recycled one if any, else a new slot. */
wf_val_t wf_vals_alloc(wf_vals_t *v) {
  wf_val_t h;
  if (v->nfree) {
    h = v->free_[--v->nfree];
  } else {
    if (v->top == UINT32_MAX) {
      fprintf(stderr, "weft: value handles exhausted\n");
      abort();
    }
    h = v->top++;
    WF_GROW(v->cnt, v->cap, (size_t)h + 1);
  }
  v->cnt[h] = 1;
  v->live++;
  return h;
}

/* Add one reference to a live handle. */
void wf_vals_retain(wf_vals_t *v, wf_val_t h) {
  if (!h) return;
  if (h >= v->top || v->cnt[h] == 0) {
    fprintf(stderr, "weft: retain of dead value handle %u\n", h);
    abort();
  }
  v->cnt[h]++;
}

/* Drop one reference; the last one runs the free callback and recycles h. */
void wf_vals_release(wf_vals_t *v, wf_val_t h) {
  if (!h) return;
  if (h >= v->top || v->cnt[h] == 0) {
    fprintf(stderr, "weft: release of dead value handle %u\n", h);
    abort();
  }
  if (--v->cnt[h]) return;
  v->live--;
  /* the host frees its slot before h can be handed out again */
  if (v->free_fn) v->free_fn(v->ud, h);
  WF_GROW(v->free_, v->cfree, v->nfree + 1);
  v->free_[v->nfree++] = h;
}

/* References held on h (0 when h is free or was never issued). */
uint32_t wf_vals_count(const wf_vals_t *v, wf_val_t h) {
  return (h && h < v->top) ? v->cnt[h] : 0;
}

/* Number of live handles. */
size_t wf_vals_live(const wf_vals_t *v) { return v->live; }
