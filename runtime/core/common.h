/* common.h — status codes, error buffers and small helpers shared by every
 * C module of weft. Depends on nothing but libc. Core modules (everything not
 * named lua_*.c) include this and never include lua.h. */
#ifndef WF_COMMON_H
#define WF_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define WF_OK 0
#define WF_ERR (-1)
#define WF_AGAIN 1

/* An error detail filled by a failing call; msg is always NUL-terminated. */
typedef struct wf_err {
  char msg[512];
} wf_err_t;

/* printf-style: format into e->msg (e may be NULL). Returns WF_ERR. */
int wf_err_set(wf_err_t *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Opaque handle of a host value (a Lua value in the binding, an int in the C
 * tests). 0 means "no value" (nil). Lifetimes are refcounted by wf_vals. */
typedef uint32_t wf_val_t;

/* malloc/realloc that abort the process with a message on exhaustion. */
void *wf_xmalloc(size_t n);
void *wf_xcalloc(size_t n, size_t sz);
void *wf_xrealloc(void *p, size_t n);
char *wf_xstrdup(const char *s);

/* Wall-clock seconds since the epoch (cheap coarse clock, for event ts). */
double wf_time_wall(void);
/* Monotonic seconds (precise), for durations. */
double wf_time_mono(void);

/* Grow *arr (element size sz) so that it holds at least need elements. */
void wf_grow(void **arr, size_t *cap, size_t need, size_t sz);
#define WF_GROW(arr, cap, need) \
  wf_grow((void **)&(arr), &(cap), (need), sizeof(*(arr)))

#endif
