/* watchdog.c — the blocked-loop watchdog (see watchdog.h for the contract).
 *
 * The loop side only increments a counter (an ev_prepare before every poll
 * and an idle-proof repeating timer; no clock read on the loop's thread);
 * the thread keeps its own monotonic time of the last change it saw. When
 * the count stands still for the limit, the thread formats the report into
 * a buffer of its own (no malloc, no stdio: the loop's thread may hold any
 * lock), writes it with open/write/fsync/close and SIGKILLs the process.
 * The thread blocks every signal, so signals keep reaching the loop; it
 * sleeps in poll() on a pipe that stop writes to. C11 threads, not
 * <pthread.h>: that pulls in <sched.h>, which runtime/core/sched.h
 * shadows. Depends on loop.h (libev), common.h, C11 threads. */
#include "watchdog.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>
#include <time.h>
#include <unistd.h>

#define WD_REPORT_MAX 2048
#define WD_ID_MAX 256 /* bytes of an id kept in the report */

struct wf_watchdog {
  struct ev_loop *evl;
  ev_prepare prep;
  ev_timer timer;
  atomic_ulong turns;               /* written by the loop's thread only */
  _Atomic(const char *) run_id;     /* what runs now (see set_current) */
  _Atomic(const char *) exec_id;
  double limit, period;
  char *path;                       /* report file or NULL */
  thrd_t th;
  int wake[2];                      /* stop writes to [1]; the thread polls [0] */
  char buf[WD_REPORT_MAX];          /* the thread's report buffer */
};

/* ---- the loop's side ---- */

/* One more turn of the loop (before every poll, and on the timer). */
static void wd_turn(wf_watchdog_t *w) {
  atomic_store_explicit(&w->turns,
                        atomic_load_explicit(&w->turns, memory_order_relaxed) + 1,
                        memory_order_relaxed);
}

/* ev_prepare: the loop is about to poll. */
static void prep_cb(struct ev_loop *evl, ev_prepare *p, int revents) {
  (void)evl;
  (void)revents;
  wd_turn(p->data);
}

/* The repeating timer: an idle loop wakes up and turns. */
static void timer_cb(struct ev_loop *evl, ev_timer *t, int revents) {
  (void)evl;
  (void)revents;
  wd_turn(t->data);
}

void wf_watchdog_set_current(wf_watchdog_t *w, const char *run_id,
                             const char *exec_id) {
  atomic_store_explicit(&w->exec_id, exec_id, memory_order_release);
  atomic_store_explicit(&w->run_id, run_id, memory_order_release);
}

/* ---- the report (async-signal-safe style: a fixed buffer) ---- */

typedef struct wd_out {
  char *p, *end; /* end: the last byte, kept for the NUL */
} wd_out_t;

/* Append n bytes of s (as many as fit). */
static void out_mem(wd_out_t *o, const char *s, size_t n) {
  while (n-- && o->p < o->end) *o->p++ = *s++;
}

/* Append the NUL-terminated s. */
static void out_str(wd_out_t *o, const char *s) { out_mem(o, s, strlen(s)); }

/* Append v in decimal. */
static void out_uint(wd_out_t *o, unsigned long v) {
  char d[24];
  int n = 0;
  do d[n++] = (char)('0' + v % 10); while ((v /= 10) && n < 24);
  while (n) out_mem(o, &d[--n], 1);
}

/* Append s >= 0 with one decimal. */
static void out_secs(wd_out_t *o, double s) {
  unsigned long tenths = (unsigned long)(s * 10 + 0.5);
  out_uint(o, tenths / 10);
  out_mem(o, ".", 1);
  out_uint(o, tenths % 10);
}

/* Append the first WD_ID_MAX bytes of s escaped for a JSON string (", \
 * and control characters). */
static void out_esc(wd_out_t *o, const char *s) {
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; s[i] && i < WD_ID_MAX; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      out_mem(o, e, 2);
    } else if (c < 0x20 || c == 0x7f) {
      char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      out_mem(o, e, 6);
    } else {
      out_mem(o, (const char *)&c, 1);
    }
  }
}

size_t wf_watchdog_report(wf_watchdog_t *w, double s, char *buf, size_t cap) {
  const char *exec = atomic_load_explicit(&w->exec_id, memory_order_acquire);
  const char *run = atomic_load_explicit(&w->run_id, memory_order_acquire);
  wd_out_t o = {buf, buf + cap - 1};
  if (!cap) return 0;
  out_str(&o, "{\"pid\":");
  out_uint(&o, (unsigned long)getpid());
  out_str(&o, ",\"seconds\":");
  out_secs(&o, s);
  if (exec && run) {
    out_str(&o, ",\"run_id\":\"");
    out_esc(&o, run);
    out_str(&o, "\",\"executor_id\":\"");
    out_esc(&o, exec);
    out_str(&o, "\",\"what\":\"executor '");
    out_esc(&o, exec);
    out_str(&o, "' of run ");
    out_esc(&o, run);
    out_str(&o, " did not yield for ");
  } else {
    out_str(&o, ",\"what\":\"the event loop did not turn for ");
  }
  out_secs(&o, s);
  out_str(&o, " s\"}");
  *o.p = '\0';
  return (size_t)(o.p - buf);
}

/* write() all of buf to fd (best effort). */
static void write_all(int fd, const char *buf, size_t n) {
  while (n) {
    ssize_t k = write(fd, buf, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return;
    buf += k;
    n -= (size_t)k;
  }
}

/* Report the loop blocked for s seconds, then kill the process. */
static void wd_fire(wf_watchdog_t *w, double s) {
  static const char pre[] = "weft watchdog: ";
  size_t n = wf_watchdog_report(w, s, w->buf, sizeof w->buf - 1);
  w->buf[n++] = '\n';
  if (w->path) {
    int fd = open(w->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
      write_all(fd, w->buf, n);
      fsync(fd);
      close(fd);
    }
  }
  write_all(2, pre, sizeof pre - 1);
  write_all(2, w->buf, n);
  kill(getpid(), SIGKILL);
  for (;;) pause(); /* SIGKILL is on its way */
}

/* ---- the thread ---- */

/* Seconds from a to b. */
static double ts_diff(struct timespec a, struct timespec b) {
  return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
}

/* Sample the turn count every period; fire when it stood still for the
 * limit. Ends when stop writes to the wake pipe. */
static int wd_main(void *arg) {
  wf_watchdog_t *w = arg;
  struct timespec now, seen, before;
  unsigned long last = atomic_load_explicit(&w->turns, memory_order_relaxed);
  struct pollfd pfd = {w->wake[0], POLLIN, 0};
  int ms = (int)(w->period * 1000);
  if (ms < 1) ms = 1;
  clock_gettime(CLOCK_MONOTONIC, &seen);
  for (;;) {
    clock_gettime(CLOCK_MONOTONIC, &before);
    int r = poll(&pfd, 1, ms);
    if (r > 0) break; /* stop */
    if (r < 0 && errno != EINTR) break;
    unsigned long cur = atomic_load_explicit(&w->turns, memory_order_relaxed);
    clock_gettime(CLOCK_MONOTONIC, &now);
    /* this thread overslept (the process was stopped, the machine is
     * starved): the loop had no chance to turn either; judge from now */
    if (cur != last || ts_diff(before, now) - w->period > w->limit / 2) {
      last = cur;
      seen = now;
    } else if (ts_diff(seen, now) >= w->limit) {
      wd_fire(w, ts_diff(seen, now)); /* never returns */
    }
  }
  return 0;
}

wf_watchdog_t *wf_watchdog_start(wf_loop_t *l, double limit_s,
                                 const char *report_path, wf_err_t *err) {
  wf_watchdog_t *w;
  sigset_t all, old;
  int rc;
  if (!(limit_s > 0)) {
    wf_err_set(err, "watchdog: the limit must be > 0 seconds, got %g", limit_s);
    return NULL;
  }
  w = wf_xcalloc(1, sizeof *w);
  if (pipe2(w->wake, O_CLOEXEC) < 0) {
    wf_err_set(err, "watchdog: cannot create its pipe: %s", strerror(errno));
    free(w);
    return NULL;
  }
  w->evl = wf_loop_ev(l);
  w->limit = limit_s;
  w->period = limit_s / 10 < 1 ? limit_s / 10 : 1;
  w->path = report_path ? wf_xstrdup(report_path) : NULL;
  atomic_init(&w->turns, 0);
  atomic_init(&w->run_id, NULL);
  atomic_init(&w->exec_id, NULL);

  /* the thread inherits a full mask: signals stay with the loop (on Linux
   * sigprocmask acts on the calling thread) */
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &old);
  rc = thrd_create(&w->th, wd_main, w);
  sigprocmask(SIG_SETMASK, &old, NULL);
  if (rc != thrd_success) {
    wf_err_set(err, "watchdog: cannot start its thread");
    close(w->wake[0]);
    close(w->wake[1]);
    free(w->path);
    free(w);
    return NULL;
  }

  ev_prepare_init(&w->prep, prep_cb);
  w->prep.data = w;
  ev_prepare_start(w->evl, &w->prep);
  ev_unref(w->evl);
  ev_timer_init(&w->timer, timer_cb, limit_s / 4, limit_s / 4);
  w->timer.data = w;
  ev_timer_start(w->evl, &w->timer);
  ev_unref(w->evl);
  return w;
}

void wf_watchdog_stop(wf_watchdog_t *w) {
  if (!w) return;
  ev_ref(w->evl);
  ev_prepare_stop(w->evl, &w->prep);
  ev_ref(w->evl);
  ev_timer_stop(w->evl, &w->timer);
  while (write(w->wake[1], "x", 1) < 0 && errno == EINTR) {
  }
  thrd_join(w->th, NULL);
  close(w->wake[0]);
  close(w->wake[1]);
  free(w->path);
  free(w);
}
