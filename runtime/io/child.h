/* child.h — long-lived child processes for supervisors (worker processes):
 * spawn an argv with the current environment plus some variables, stdout
 * and stderr inherited, stdin /dev/null; learn from the loop when it exits
 * (code or signal); signal it. Unlike proc.h (commands run to completion
 * under a supervisor, output captured) the child is the command itself, in
 * weft's process group, and it dies with weft: PR_SET_PDEATHSIG(SIGKILL),
 * so a supervisor killed by SIGKILL leaves no orphan behind.
 * Depends on loop.h (the default libev loop: ev_child needs it). */
#ifndef WF_CHILD_H
#define WF_CHILD_H

#include <sys/types.h>

#include "loop.h"

typedef struct wf_child wf_child_t;

/* The child exited (wf_child_code / wf_child_signal say how). Called once,
 * from a libev callback: no Lua here. fn may free c. */
typedef void (*wf_child_exit_fn)(void *ud, wf_child_t *c);

/* Fork and exec argv (argv[0] looked up in this process's PATH when it has
 * no '/') with this process's environment plus env_add ("K=V" strings,
 * NULL-terminated, NULL: none; they replace variables of the same name).
 * The child starts with every signal at its default and an empty mask, no
 * fd of weft's but 0-2 (stdin on /dev/null), and gets SIGKILL when the
 * thread that spawned it dies (call from the loop's thread). NULL with err
 * ("cannot start X: No such file or directory") when argv is empty, the
 * loop is not the default libev loop, fork fails or the exec fails (the
 * failed child is reaped here). */
wf_child_t *wf_child_spawn(wf_loop_t *l, const char *const *argv,
                           const char *const *env_add, wf_child_exit_fn fn,
                           void *ud, wf_err_t *err);
/* The child's pid. */
pid_t wf_child_pid(const wf_child_t *c);
/* 1 until the child has exited and been reaped. */
int wf_child_running(const wf_child_t *c);
/* Exit code, or -1 while running or when killed by a signal. */
int wf_child_code(const wf_child_t *c);
/* The signal that killed the child, or 0. */
int wf_child_signal(const wf_child_t *c);
/* Send signal sig to a running child. WF_OK, or WF_ERR with err when it
 * has exited already or kill() fails (a bad signal number). */
int wf_child_kill(wf_child_t *c, int sig, wf_err_t *err);
/* Stop watching and free; a child still running is SIGKILLed and reaped
 * first (no zombie, no untracked process), and no notification follows.
 * NULL is a no-op. */
void wf_child_free(wf_child_t *c);

#endif
