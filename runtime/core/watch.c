/* watch.c — one-shot signal and file watchers on the loop, and the loop's
 * backend descriptor (see watch.h). Depends on libev and loop.h. */
#include "watch.h"

#include <stdlib.h>
#include <string.h>

enum { WATCH_SIGNAL, WATCH_FILE };

struct wf_watch {
  union { /* first, so that a watcher pointer is the wf_watch pointer */
    ev_signal sig;
    ev_stat stat;
  } w;
  int kind;
  int fired;
  struct ev_loop *evl;
  wf_watch_fn fn;
  void *ud;
  char path[]; /* WATCH_FILE: ev_stat keeps a pointer to it */
};

void wf_watch_stop(wf_watch_t *w) {
  if (w->kind == WATCH_SIGNAL)
    ev_signal_stop(w->evl, &w->w.sig);
  else
    ev_stat_stop(w->evl, &w->w.stat);
}

/* The watched event happened: stop and notify once. */
static void watch_fire(wf_watch_t *w) {
  wf_watch_stop(w);
  w->fired = 1;
  w->fn(w->ud, w);
}

/* Signal arrived. */
static void signal_cb(struct ev_loop *evl, ev_signal *ev, int revents) {
  (void)evl;
  (void)revents;
  watch_fire((wf_watch_t *)ev);
}

/* Stat changed. */
static void stat_cb(struct ev_loop *evl, ev_stat *ev, int revents) {
  (void)evl;
  (void)revents;
  watch_fire((wf_watch_t *)ev);
}

/* Allocate a watcher of kind with extra bytes after it. */
static wf_watch_t *watch_new(wf_loop_t *l, int kind, size_t extra,
                             wf_watch_fn fn, void *ud, wf_err_t *err) {
  wf_watch_t *w = calloc(1, sizeof *w + extra);
  if (!w) {
    wf_err_set(err, "watch: out of memory");
    return NULL;
  }
  w->kind = kind;
  w->evl = wf_loop_ev(l);
  w->fn = fn;
  w->ud = ud;
  return w;
}

wf_watch_t *wf_watch_signal(wf_loop_t *l, int signo, wf_watch_fn fn, void *ud,
                            wf_err_t *err) {
  wf_watch_t *w;
  if (signo < 1 || signo > 64) {
    wf_err_set(err, "watch: %d is not a signal number", signo);
    return NULL;
  }
  if (!(w = watch_new(l, WATCH_SIGNAL, 0, fn, ud, err))) return NULL;
  ev_signal_init(&w->w.sig, signal_cb, signo);
  ev_signal_start(w->evl, &w->w.sig);
  return w;
}

wf_watch_t *wf_watch_file(wf_loop_t *l, const char *path, double interval,
                          wf_watch_fn fn, void *ud, wf_err_t *err) {
  size_t n = strlen(path) + 1;
  wf_watch_t *w = watch_new(l, WATCH_FILE, n, fn, ud, err);
  if (!w) return NULL;
  memcpy(w->path, path, n);
  ev_stat_init(&w->w.stat, stat_cb, w->path, interval);
  ev_stat_start(w->evl, &w->w.stat);
  return w;
}

int wf_watch_fired(const wf_watch_t *w) { return w->fired; }

void wf_watch_free(wf_watch_t *w) {
  if (!w) return;
  wf_watch_stop(w);
  free(w);
}

/* libev does not export the backend descriptor: an ev_embed watcher
 * started on a throwaway select() loop copies it into its io member
 * (ev_embed is the documented way to poll one loop's backend fd from
 * another). */
int wf_watch_backend_fd(wf_loop_t *l) {
  struct ev_loop *evl = wf_loop_ev(l), *tmp;
  ev_embed e;
  int fd;
  if (!(ev_backend(evl) & ev_embeddable_backends())) return -1;
  tmp = ev_loop_new(EVBACKEND_SELECT);
  if (!tmp) return -1;
  ev_embed_init(&e, NULL, evl);
  ev_embed_start(tmp, &e);
  fd = e.io.fd;
  ev_embed_stop(tmp, &e);
  ev_loop_destroy(tmp);
  return fd;
}
