/* common.c — error buffers, aborting allocators, clocks and array growth
 * shared by every C module. Depends on libc only (common.h). */
#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Format into e->msg (e may be NULL); always returns WF_ERR. */
int wf_err_set(wf_err_t *e, const char *fmt, ...) {
  if (e) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
  }
  return WF_ERR;
}

/* Print the failed request size and abort: weft does not limp on after OOM. */
static void oom(size_t n) {
  fprintf(stderr, "weft: out of memory (%zu bytes)\n", n);
  abort();
}

/* malloc that aborts on exhaustion (n == 0 allocates one byte). */
void *wf_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) oom(n);
  return p;
}

/* calloc that aborts on exhaustion or overflow. */
void *wf_xcalloc(size_t n, size_t sz) {
  void *p = calloc(n ? n : 1, sz ? sz : 1);
  if (!p) oom(n * sz);
  return p;
}

/* realloc that aborts on exhaustion. */
void *wf_xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) oom(n);
  return q;
}

/* strdup that aborts on exhaustion; NULL gives NULL. */
char *wf_xstrdup(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  char *d = wf_xmalloc(n);
  memcpy(d, s, n);
  return d;
}

/* Wall-clock seconds; the coarse clock is a vDSO read of a few ns. */
double wf_time_wall(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Precise monotonic seconds. */
double wf_time_mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Grow *arr to hold need elements of sz bytes, doubling; a first
 * allocation holds about 64 bytes (one element when elements are big), so
 * that small per-run arrays stay small. */
void wf_grow(void **arr, size_t *cap, size_t need, size_t sz) {
  if (need <= *cap) return;
  size_t c = *cap ? *cap : (sz >= 64 ? 1 : 64 / sz);
  while (c < need) c *= 2;
  if (c > SIZE_MAX / sz) oom(SIZE_MAX);
  *arr = wf_xrealloc(*arr, c * sz);
  *cap = c;
}
