/* proc.h — child processes on the loop: fork/exec with an argv (no shell),
 * an explicit environment (empty unless given), a working directory, stdin
 * data, rlimits (address space, CPU seconds, processes), its own process
 * group (the whole group is killed on timeout or cancel), stdout/stderr
 * captured through non-blocking pipes with a cap (excess discarded and
 * marked truncated), reaped with an ev_child watcher. Exec failures in the
 * child are reported through a close-on-exec pipe ("command not found").
 * Depends on loop.h (the default libev loop: ev_child needs it). */
#ifndef WF_PROC_H
#define WF_PROC_H

#include "loop.h"

typedef struct wf_proc wf_proc_t;

typedef struct wf_proc_opts {
  const char *const *argv;   /* argv[0] is looked up in PATH of env (or
                                /usr/local/bin:/usr/bin:/bin) */
  const char *const *env;    /* "K=V", NULL-terminated; NULL: empty */
  const char *cwd;           /* NULL: inherit */
  const char *stdin_data;    /* copied; NULL: /dev/null */
  size_t stdin_len;
  double timeout;            /* seconds, 0: none */
  long memory_mb;            /* RLIMIT_AS, 0: none */
  long cpu_s;                /* RLIMIT_CPU, 0: none */
  long max_procs;            /* RLIMIT_NPROC, 0: none (see uid below) */
  size_t max_output;         /* per stream, 0: 1 MiB */
  int drop_to_uid;           /* >= 0: setgid/setuid to it before exec (as
                                root, so RLIMIT_NPROC applies); -1: keep */
  const char *const *wrap;   /* argv prefix (e.g. bwrap ...), NULL: none */
} wf_proc_opts_t;

/* Called once when the process has exited and both pipes are drained. From
 * a libev callback: no Lua here. */
typedef void (*wf_proc_notify_fn)(void *ud, wf_proc_t *p);

/* Spawn. NULL with err when fork/pipe fail or argv is empty. A program that
 * cannot be executed still yields a process whose exit code is 127 and whose
 * wf_proc_exec_error is set. */
wf_proc_t *wf_proc_spawn(wf_loop_t *l, const wf_proc_opts_t *o,
                         wf_proc_notify_fn fn, void *ud, wf_err_t *err);
/* Kill the process group now (SIGKILL); the notification still follows. */
void wf_proc_kill(wf_proc_t *p);
/* Kill if running, stop watchers, free; no notification follows. */
void wf_proc_free(wf_proc_t *p);
int wf_proc_done(const wf_proc_t *p);
int wf_proc_exit_code(const wf_proc_t *p); /* -1 when killed by a signal */
int wf_proc_signal(const wf_proc_t *p);    /* 0 unless killed by a signal */
int wf_proc_timed_out(const wf_proc_t *p);
const char *wf_proc_stdout(const wf_proc_t *p, size_t *len, int *truncated);
const char *wf_proc_stderr(const wf_proc_t *p, size_t *len, int *truncated);
double wf_proc_duration_ms(const wf_proc_t *p);
/* Why exec failed in the child ("No such file or directory"), or NULL. */
const char *wf_proc_exec_error(const wf_proc_t *p);

#endif
