/* test_child.c — unit tests of child.c without Lua, with real processes:
 * the exit code and the killing signal reach the exit callback; kill from
 * the parent; the environment is weft's plus the added variables (which
 * replace same-named ones); stdin is /dev/null and weft's fds are closed;
 * a command that cannot be executed fails the spawn naming it; free kills
 * and reaps a running child; a child dies (SIGKILL) with the process that
 * spawned it (a middle process SIGKILLed in a grandchild setup).
 * Depends on harness.h, child.h, loop.h. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "harness.h"

static wf_loop_t *L;

typedef struct note {
  int calls;
  wf_child_t *who;
} note_t;

/* wf_child_exit_fn: count the call. */
static void on_exit_cb(void *ud, wf_child_t *c) {
  note_t *n = ud;
  n->calls++;
  n->who = c;
}

/* Spawn argv (env_add may be NULL), run the loop until it exits; the
 * child (not freed) or NULL. */
static wf_child_t *run(const char *const *argv, const char *const *env,
                       note_t *n) {
  wf_err_t err;
  wf_child_t *c = wf_child_spawn(L, argv, env, on_exit_cb, n, &err);
  if (!c) {
    fprintf(stderr, "spawn: %s\n", err.msg);
    return NULL;
  }
  while (!n->calls && wf_loop_step(L)) {
  }
  return c;
}

static void test_exit_code(void) {
  const char *argv[] = {"/bin/sh", "-c", "exit 3", NULL};
  note_t n = {0, NULL};
  wf_child_t *c = run(argv, NULL, &n);
  CHECK(c != NULL);
  CHECK_INT(n.calls, 1);
  CHECK(n.who == c);
  CHECK_INT(wf_child_running(c), 0);
  CHECK_INT(wf_child_code(c), 3);
  CHECK_INT(wf_child_signal(c), 0);
  wf_child_free(c);
}

static void test_killed_by_a_signal(void) {
  const char *argv[] = {"/bin/sh", "-c", "kill -9 $$", NULL};
  note_t n = {0, NULL};
  wf_child_t *c = run(argv, NULL, &n);
  CHECK(c != NULL);
  CHECK_INT(wf_child_signal(c), SIGKILL);
  CHECK_INT(wf_child_code(c), -1);
  wf_child_free(c);
}

static void test_kill_from_the_parent(void) {
  const char *argv[] = {"sleep", "60", NULL}; /* found in PATH */
  note_t n = {0, NULL};
  wf_err_t err;
  wf_child_t *c = wf_child_spawn(L, argv, NULL, on_exit_cb, &n, &err);
  CHECK(c != NULL);
  CHECK(wf_child_pid(c) > 0);
  CHECK_INT(wf_child_running(c), 1);
  CHECK_INT(wf_child_code(c), -1);
  CHECK_INT(wf_child_kill(c, SIGTERM, &err), WF_OK);
  while (!n.calls && wf_loop_step(L)) {
  }
  CHECK_INT(n.calls, 1);
  CHECK_INT(wf_child_signal(c), SIGTERM);
  CHECK_INT(wf_child_kill(c, SIGTERM, &err), WF_ERR);
  CHECK(strstr(err.msg, "exited already") != NULL);
  wf_child_free(c);
}

static void test_environment_and_fds(void) {
  char script[256];
  int fd = fcntl(2, F_DUPFD, 50); /* not close-on-exec */
  const char *env[] = {"WF_CHILD_A=hello", "WF_CHILD_B=new", NULL};
  const char *argv[] = {"/bin/sh", "-c", script, NULL};
  note_t n = {0, NULL};
  wf_child_t *c;
  CHECK(fd >= 50);
  setenv("WF_CHILD_B", "old", 1);
  setenv("WF_CHILD_C", "kept", 1);
  snprintf(script, sizeof script,
           "test \"$WF_CHILD_A\" = hello || exit 10; "
           "test \"$WF_CHILD_B\" = new || exit 11; "
           "test \"$WF_CHILD_C\" = kept || exit 12; "
           "test \"$(env | grep -c '^WF_CHILD_B=')\" = 1 || exit 13; "
           "test ! -e /proc/$$/fd/%d || exit 14; "
           "if read x; then exit 15; fi; exit 0",
           fd);
  c = run(argv, env, &n);
  CHECK(c != NULL);
  CHECK_INT(wf_child_code(c), 0);
  wf_child_free(c);
  close(fd);
  unsetenv("WF_CHILD_B");
  unsetenv("WF_CHILD_C");
}

static void test_spawn_failures(void) {
  const char *missing[] = {"/nonexistent/weft-worker", NULL};
  const char *unknown[] = {"weft-no-such-command-x", NULL};
  const char *empty[] = {NULL};
  note_t n = {0, NULL};
  wf_err_t err;
  CHECK(wf_child_spawn(L, missing, NULL, on_exit_cb, &n, &err) == NULL);
  CHECK_STR(err.msg,
            "cannot start /nonexistent/weft-worker: No such file or directory");
  CHECK(wf_child_spawn(L, unknown, NULL, on_exit_cb, &n, &err) == NULL);
  CHECK(strstr(err.msg, "cannot start weft-no-such-command-x") != NULL);
  CHECK(wf_child_spawn(L, empty, NULL, on_exit_cb, &n, &err) == NULL);
  CHECK(strstr(err.msg, "argv") != NULL);
  CHECK_INT(n.calls, 0);
  /* the failed children were reaped: none is left */
  CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
}

static void test_free_kills_a_running_child(void) {
  const char *argv[] = {"sleep", "60", NULL};
  note_t n = {0, NULL};
  wf_err_t err;
  wf_child_t *c = wf_child_spawn(L, argv, NULL, on_exit_cb, &n, &err);
  pid_t pid;
  CHECK(c != NULL);
  pid = wf_child_pid(c);
  wf_child_free(c);
  CHECK_INT(n.calls, 0);
  /* killed and reaped: no such process any more */
  CHECK(kill(pid, 0) < 0 && errno == ESRCH);
}

/* The middle process: spawn `sleep 60` through child.c, tell its pid on
 * fd, wait to be killed. */
static void middle(int fd) {
  const char *argv[] = {"sleep", "60", NULL};
  wf_err_t err;
  wf_child_t *c;
  pid_t pid;
  ev_loop_fork(EV_DEFAULT);
  c = wf_child_spawn(L, argv, NULL, NULL, NULL, &err);
  pid = c ? wf_child_pid(c) : -1;
  if (write(fd, &pid, sizeof pid) != (ssize_t)sizeof pid) _exit(2);
  for (;;) pause();
}

static void test_child_dies_with_its_parent(void) {
  int fds[2], st = 0;
  pid_t mid, kid = -1;
  /* orphans are reparented here, so the grandchild can be waited for */
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  CHECK(pipe(fds) == 0);
  mid = fork();
  if (mid == 0) middle(fds[1]);
  close(fds[1]);
  CHECK(read(fds[0], &kid, sizeof kid) == (ssize_t)sizeof kid);
  close(fds[0]);
  CHECK(kid > 0);
  kill(mid, SIGKILL);
  CHECK(waitpid(mid, &st, 0) == mid);
  CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  /* without the death signal the grandchild would sleep its 60 s and exit
   * 0; with it, it is killed at once */
  if (kid > 0) {
    CHECK(waitpid(kid, &st, 0) == kid);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  }
}

static void test_default_loop_only(void) {
  const char *argv[] = {"/bin/true", NULL};
  struct ev_loop *evl = ev_loop_new(0);
  wf_loop_t *other = wf_loop_new(evl);
  wf_err_t err;
  CHECK(wf_child_spawn(other, argv, NULL, NULL, NULL, &err) == NULL);
  CHECK(strstr(err.msg, "default libev loop") != NULL);
  wf_loop_free(other);
  ev_loop_destroy(evl);
}

int main(void) {
  L = wf_loop_new(NULL);
  RUN(test_exit_code);
  RUN(test_killed_by_a_signal);
  RUN(test_kill_from_the_parent);
  RUN(test_environment_and_fds);
  RUN(test_spawn_failures);
  RUN(test_free_kills_a_running_child);
  RUN(test_default_loop_only);
  RUN(test_child_dies_with_its_parent);
  wf_loop_free(L);
  return harness_end(__FILE__);
}
