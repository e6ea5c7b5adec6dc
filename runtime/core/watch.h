/* watch.h — one-shot watchers on the loop for the things weft waits on
 * besides I/O: a process signal (ev_signal) and a file's stat (ev_stat:
 * inotify where available, else polling), plus the loop's backend
 * descriptor for hosts that poll weft from their own loop. A watcher
 * notifies its owner once, from a libev callback (no Lua there), then
 * stops; the owner frees it. Depends on loop.h (libev). */
#ifndef WF_WATCH_H
#define WF_WATCH_H

#include "loop.h"

typedef struct wf_watch wf_watch_t;
/* The watched thing happened (called once; w is stopped, not freed). */
typedef void (*wf_watch_fn)(void *ud, wf_watch_t *w);

/* Watch for signal signo (1..64) reaching this process. NULL with err on
 * a bad number or no memory. */
wf_watch_t *wf_watch_signal(wf_loop_t *l, int signo, wf_watch_fn fn, void *ud,
                            wf_err_t *err);
/* Watch path's stat for a change (written, replaced by a rename, removed,
 * created), polling every interval seconds where inotify is not available
 * (0: libev's default). The path is copied. NULL with err on no memory. */
wf_watch_t *wf_watch_file(wf_loop_t *l, const char *path, double interval,
                          wf_watch_fn fn, void *ud, wf_err_t *err);
/* 1 once the watched thing happened. */
int wf_watch_fired(const wf_watch_t *w);
/* Stop w without freeing it (it will not notify); idempotent. */
void wf_watch_stop(wf_watch_t *w);
/* Stop and free w. NULL is a no-op. */
void wf_watch_free(wf_watch_t *w);

/* The libev backend descriptor of l (epoll/kqueue): it polls readable when
 * the loop has events to handle. -1 when the backend has none. */
int wf_watch_backend_fd(wf_loop_t *l);

#endif
