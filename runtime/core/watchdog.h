/* watchdog.h — a watchdog for a blocked event loop: one thread that kills
 * the process (SIGKILL) when the loop has not turned for a given time, after
 * writing one JSON report line naming what was running (the executor and
 * its run, when the binding says so). Made for worker processes whose
 * supervisor replaces them: an executor that never yields (a busy loop in
 * compiled LuaJIT code runs no hook) blocks the whole loop, and a blocked
 * process cannot be trusted to exit cleanly (it ignores SIGTERM).
 * Depends on loop.h (libev), common.h, pthreads. */
#ifndef WF_WATCHDOG_H
#define WF_WATCHDOG_H

#include "loop.h"

typedef struct wf_watchdog wf_watchdog_t;

/* Start watching l: an ev_prepare (every loop iteration) and a timer every
 * limit_s/4 s (so an idle loop turns too) count the loop's turns; both are
 * unref'ed, so they alone never keep the loop alive. A thread samples the
 * count every min(limit_s/10, 1) s; when it has not changed for limit_s s
 * it writes one report line (see wf_watchdog_report) to report_path
 * (truncated; NULL: none) and to stderr, then SIGKILLs the process. The
 * thread allocates nothing after start. limit_s must be > 0. NULL with err
 * when the thread cannot be started. */
wf_watchdog_t *wf_watchdog_start(wf_loop_t *l, double limit_s,
                                 const char *report_path, wf_err_t *err);
/* What runs now: an executor id and its run id, or NULL, NULL when the
 * loop has control back. The caller keeps both strings alive until the
 * next call (atomic pointer stores: the hot path of every task resume). */
void wf_watchdog_set_current(wf_watchdog_t *w, const char *run_id,
                             const char *exec_id);
/* Format the report line (no newline) for a loop blocked for seconds s,
 * with what runs now, into buf (cap bytes, NUL-terminated, truncated to
 * fit): {"pid":P,"seconds":S,"run_id":"R","executor_id":"X","what":
 * "executor 'X' of run R did not yield for S s"}, ids JSON-escaped and
 * left out (what: "the event loop did not turn for S s") when no executor
 * runs. Allocates nothing (the thread calls it). Returns the length. */
size_t wf_watchdog_report(wf_watchdog_t *w, double s, char *buf, size_t cap);
/* Stop the watchers, wake and join the thread, free. Called on the loop's
 * thread; never waits on the loop. NULL is a no-op. */
void wf_watchdog_stop(wf_watchdog_t *w);

#endif
