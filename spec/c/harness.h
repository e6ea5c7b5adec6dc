/* harness.h — a tiny assertion harness for the C unit tests, plus a host
 * value table whose values are ints or lists of ints (a stand-in for Lua
 * values). CHECK* print file:line and the failing expression and count the
 * failure; RUN(test) runs one test function; main returns harness_end().
 * Depends on val.h (and libc). Header-only: include it once per test. */
#ifndef WF_HARNESS_H
#define WF_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "val.h"

static int h_failed, h_checks, h_tests;
static const char *h_current;

#define CHECK(e)                                                          \
  do {                                                                    \
    h_checks++;                                                           \
    if (!(e)) {                                                           \
      h_failed++;                                                         \
      fprintf(stderr, "%s:%d: [%s] CHECK failed: %s\n", __FILE__,         \
              __LINE__, h_current, #e);                                   \
    }                                                                     \
  } while (0)

#define CHECK_INT(a, b)                                                   \
  do {                                                                    \
    long long _a = (long long)(a), _b = (long long)(b);                   \
    h_checks++;                                                           \
    if (_a != _b) {                                                       \
      h_failed++;                                                         \
      fprintf(stderr, "%s:%d: [%s] CHECK failed: %s == %s (%lld vs %lld)\n", \
              __FILE__, __LINE__, h_current, #a, #b, _a, _b);             \
    }                                                                     \
  } while (0)

#define CHECK_STR(a, b)                                                   \
  do {                                                                    \
    const char *_a = (a), *_b = (b);                                      \
    h_checks++;                                                           \
    if (!_a || !_b || strcmp(_a, _b) != 0) {                              \
      h_failed++;                                                         \
      fprintf(stderr, "%s:%d: [%s] CHECK failed: %s == %s\n  got:  %s\n"  \
              "  want: %s\n", __FILE__, __LINE__, h_current, #a, #b,      \
              _a ? _a : "(null)", _b ? _b : "(null)");                    \
    }                                                                     \
  } while (0)

/* Run one test function, naming it in failure messages. */
#define RUN(fn)                                                           \
  do {                                                                    \
    h_current = #fn;                                                      \
    h_tests++;                                                            \
    int _before = h_failed;                                               \
    fn();                                                                 \
    printf("%s %s\n", h_failed == _before ? "ok  " : "FAIL", #fn);        \
  } while (0)

/* Summary line; the process exit status. */
static inline int harness_end(const char *file) {
  printf("%s: %d tests, %d checks, %d failed\n", file, h_tests, h_checks,
         h_failed);
  return h_failed ? 1 : 0;
}

/* ---- host values: ints and lists of ints ---- */

typedef struct hv {
  int isl;   /* 1: a list */
  int i;     /* the int */
  int *items; /* list items (payload ints, copied) */
  int n;
} hv_t;

static wf_vals_t *HV;
static hv_t *hv_tab;
static size_t hv_cap;

/* Free callback: forget the value's payload. */
static inline void hv_free(void *ud, wf_val_t h) {
  (void)ud;
  free(hv_tab[h].items);
  memset(&hv_tab[h], 0, sizeof hv_tab[h]);
}

/* Fresh value table (call at the start of each test). */
static inline void hv_init(void) { HV = wf_vals_new(hv_free, NULL); }

/* Check no value leaked, then drop the table. */
#define HV_DONE()                                                         \
  do {                                                                    \
    CHECK_INT(wf_vals_live(HV), 0);                                       \
    wf_vals_free(HV);                                                     \
    HV = NULL;                                                            \
    free(hv_tab);                                                         \
    hv_tab = NULL;                                                        \
    hv_cap = 0;                                                           \
  } while (0)

/* Slot for handle h. */
static inline hv_t *hv_slot(wf_val_t h) {
  if (h >= hv_cap) {
    size_t c = hv_cap ? hv_cap : 64;
    while (c <= h) c *= 2;
    hv_tab = realloc(hv_tab, c * sizeof *hv_tab);
    memset(hv_tab + hv_cap, 0, (c - hv_cap) * sizeof *hv_tab);
    hv_cap = c;
  }
  return &hv_tab[h];
}

/* A new int value (count 1). */
static inline wf_val_t hv_int(int i) {
  wf_val_t h = wf_vals_alloc(HV);
  hv_t *v = hv_slot(h);
  v->isl = 0;
  v->i = i;
  return h;
}

/* The int of h (a list: its length; 0 for nil). */
static inline int hv_get(wf_val_t h) {
  if (!h) return 0;
  hv_t *v = hv_slot(h);
  return v->isl ? v->n : v->i;
}

/* A new list of the payloads of vals. */
static inline wf_val_t hv_list(const wf_val_t *vals, int n) {
  wf_val_t h = wf_vals_alloc(HV);
  hv_t *v = hv_slot(h);
  v->isl = 1;
  v->n = n;
  v->items = malloc((size_t)(n ? n : 1) * sizeof(int));
  for (int k = 0; k < n; k++) v->items[k] = hv_get(vals[k]);
  return h;
}

/* Item k of list h (or -1). */
static inline int hv_item(wf_val_t h, int k) {
  hv_t *v = hv_slot(h);
  return (v->isl && k >= 0 && k < v->n) ? v->items[k] : -1;
}

#endif
