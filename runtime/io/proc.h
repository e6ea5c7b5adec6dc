/* proc.h — child processes on the loop: fork/exec with an argv (no shell),
 * an explicit environment (empty unless given), a working directory, stdin
 * data, rlimits (address space, CPU seconds, processes, no core files), its
 * own process group, optionally an unprivileged uid/gid (when running as
 * root, so that RLIMIT_NPROC applies), stdout/stderr captured through
 * non-blocking pipes with a cap (excess read and discarded, marked
 * truncated). Each command runs under a supervisor process (a child
 * subreaper forked from weft) that kills every descendant of the command —
 * setsid daemons and double forks included — when the command exits, on
 * timeout, kill and free, and when weft dies, however it dies. Exec
 * failures in the child are reported through a close-on-exec pipe
 * ("command not found: x").
 * Also the recursive removal used for sandbox working directories.
 * Depends on loop.h (the default libev loop: ev_child needs it). */
#ifndef WF_PROC_H
#define WF_PROC_H

#include <sys/types.h>

#include "loop.h"

typedef struct wf_proc wf_proc_t;

typedef struct wf_proc_opts {
  const char *const *argv;   /* argv[0] is looked up in PATH of env (or
                                /usr/local/bin:/usr/bin:/bin) */
  const char *const *env;    /* "K=V", NULL-terminated; NULL: empty */
  const char *cwd;           /* NULL: inherit (changed into after the uid
                                drop, so it must be reachable by that uid) */
  const char *stdin_data;    /* copied; NULL or empty: /dev/null */
  size_t stdin_len;
  double timeout;            /* seconds, 0: none */
  long memory_mb;            /* RLIMIT_AS, 0: none */
  long cpu_s;                /* RLIMIT_CPU, 0: none (SIGXCPU, then SIGKILL
                                a second later) */
  long max_procs;            /* RLIMIT_NPROC, 0: none (see uid below) */
  size_t max_output;         /* per stream, 0: 1 MiB */
  int drop_to_uid;           /* > 0 and running as root: setgroups({}),
                                setgid, setuid before exec, so RLIMIT_NPROC
                                applies; <= 0 or not root: keep */
  int drop_to_gid;           /* > 0: the gid for the drop; else = uid */
  const char *const *wrap;   /* argv prefix (e.g. bwrap ... --), NULL: none.
                                argv[0] is then resolved in the parent
                                (PATH of env, relative entries from cwd)
                                and passed as an absolute path; wrap[0] is
                                looked up in PATH too */
} wf_proc_opts_t;

/* Called once when the process has exited and its pipes are drained and
 * closed. From a libev callback: no Lua here. fn may free p. */
typedef void (*wf_proc_notify_fn)(void *ud, wf_proc_t *p);

/* Spawn. NULL with err when argv is empty, the loop is not the default
 * libev loop, or pipe/fork fail. A program that cannot be executed still
 * yields a process: exit code 127 when not found, 126 when it exists but
 * cannot be run (or the cwd, rlimits or uid drop failed), and
 * wf_proc_exec_error says why. The command runs with SIGPIPE and every
 * other signal at its default, an empty signal mask, no fds but 0-2, no
 * new privileges (PR_SET_NO_NEW_PRIVS), in its own process group, as the
 * child of a supervisor (see above) that is not dumpable, keeps no fd of
 * weft's and reports the command's exit code or signal as its own. When
 * the command exits, everything it started is killed (as a pid namespace
 * would do) and the pipes are closed. Needs /proc to find orphans. */
wf_proc_t *wf_proc_spawn(wf_loop_t *l, const wf_proc_opts_t *o,
                         wf_proc_notify_fn fn, void *ud, wf_err_t *err);
/* Kill the command and everything it started now (SIGKILL, by the
 * supervisor); the notification still follows. */
void wf_proc_kill(wf_proc_t *p);
/* Kill everything if running (and wait for the supervisor), stop
 * watchers, close fds, free; no notification follows. NULL is a no-op. */
void wf_proc_free(wf_proc_t *p);
int wf_proc_done(const wf_proc_t *p);
pid_t wf_proc_pid(const wf_proc_t *p);     /* the supervisor's pid */
int wf_proc_exit_code(const wf_proc_t *p); /* -1 when killed by a signal */
int wf_proc_signal(const wf_proc_t *p);    /* 0 unless killed by a signal */
int wf_proc_timed_out(const wf_proc_t *p);
/* Captured output (NUL-terminated, at most max_output bytes); *truncated is
 * set when the stream had more. len and truncated may be NULL. */
const char *wf_proc_stdout(const wf_proc_t *p, size_t *len, int *truncated);
const char *wf_proc_stderr(const wf_proc_t *p, size_t *len, int *truncated);
double wf_proc_duration_ms(const wf_proc_t *p);
/* Why exec failed in the child ("command not found: x", "cannot execute
 * x: Permission denied", "cannot change directory to d: ..."), or NULL. */
const char *wf_proc_exec_error(const wf_proc_t *p);

/* Make this process non-dumpable (PR_SET_DUMPABLE 0): processes of the
 * same uid can no longer read its /proc/<pid>/environ, mem, fd or maps,
 * nor ptrace it, and it leaves no core dump. WF_OK or WF_ERR. */
int wf_proc_nondumpable(wf_err_t *err);
/* Mark every fd >= 3 close-on-exec (close_range, or one by one); for a
 * child between fork and exec (async-signal-safe calls only). */
void wf_proc_cloexec_all(void);

/* Remove path and everything below it without following symbolic links or
 * crossing into other file systems; directories the caller cannot enter
 * are made accessible first. WF_OK, or WF_ERR with err naming the entry. */
int wf_proc_rmtree(const char *path, wf_err_t *err);

#endif
