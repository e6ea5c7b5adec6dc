/* child.c — long-lived child processes (see child.h for the contract).
 *
 * The environment is built in the parent; between fork and exec the child
 * makes only async-signal-safe calls (weft may have threads). Signals are
 * blocked around fork so that no handler of weft's (libev's) runs in the
 * child before it resets them. The exec's failure is reported as an errno
 * through a close-on-exec pipe that the parent reads right after fork: EOF
 * means the exec succeeded. The exit is learnt through an ev_child watcher
 * (default loop only: libev reaps on SIGCHLD there).
 * Depends on loop.h, common.h, proc.h (wf_proc_cloexec_all), libev, libc. */
#include "child.h"
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

struct wf_child {
  struct ev_loop *evl;
  ev_child watch;
  pid_t pid;
  int running;
  int status; /* wait status once reaped */
  wf_child_exit_fn fn;
  void *ud;
};

/* ---- the child, between fork and exec (async-signal-safe calls) ---- */

/* Set up and exec; on failure write errno to rep and exit 127. */
static void child_main(char *const *argv, char *const *envp, int nul, int rep,
                       pid_t parent) {
  struct sigaction sa;
  sigset_t none;
  int e;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; s++) sigaction(s, &sa, NULL);
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  /* dies with the parent; then close the race with a parent that died
   * before the prctl */
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (getppid() != parent) _exit(127);
  if (nul != 0 && dup2(nul, 0) < 0) goto fail;
  if (nul == 0) fcntl(0, F_SETFD, 0); /* stdin was closed: keep the new one */
  wf_proc_cloexec_all();
  execvpe(argv[0], argv, envp);
fail:
  e = errno;
  while (write(rep, &e, sizeof e) < 0 && errno == EINTR) {
  }
  _exit(127);
}

/* ---- the parent ---- */

/* ev_child: the child exited or was killed. */
static void exit_cb(struct ev_loop *evl, ev_child *w, int revents) {
  wf_child_t *c = w->data;
  (void)revents;
  ev_child_stop(evl, w);
  c->status = w->rstatus;
  c->running = 0;
  if (c->fn) c->fn(c->ud, c);
}

/* Length of the name of "K=V" (up to '=', or all). */
static size_t env_key_len(const char *kv) {
  const char *eq = strchr(kv, '=');
  return eq ? (size_t)(eq - kv) : strlen(kv);
}

/* environ without the variables env_add sets, then env_add (NULL-ended;
 * the strings are borrowed). */
static char **env_build(const char *const *env_add) {
  size_t n = 0, k = 0, nadd = 0;
  char **envp;
  while (environ && environ[n]) n++;
  while (env_add && env_add[nadd]) nadd++;
  envp = wf_xcalloc(n + nadd + 1, sizeof *envp);
  for (size_t i = 0; i < n; i++) {
    size_t len = env_key_len(environ[i]);
    int replaced = 0;
    for (size_t j = 0; j < nadd && !replaced; j++)
      replaced = env_key_len(env_add[j]) == len &&
                 !strncmp(env_add[j], environ[i], len);
    if (!replaced) envp[k++] = environ[i];
  }
  for (size_t j = 0; j < nadd; j++) envp[k++] = (char *)env_add[j];
  return envp;
}

wf_child_t *wf_child_spawn(wf_loop_t *l, const char *const *argv,
                           const char *const *env_add, wf_child_exit_fn fn,
                           void *ud, wf_err_t *err) {
  struct ev_loop *evl = wf_loop_ev(l);
  int rep[2] = {-1, -1}, nul = -1, e = 0;
  sigset_t all, old;
  char **envp;
  wf_child_t *c;
  pid_t pid, me;
  ssize_t n;

  if (!argv || !argv[0] || !*argv[0]) {
    wf_err_set(err, "argv must be a non-empty list (argv[0] non-empty)");
    return NULL;
  }
  if (!ev_is_default_loop(evl)) {
    wf_err_set(err, "child processes need the default libev loop (ev_child)");
    return NULL;
  }
  if (pipe2(rep, O_CLOEXEC) < 0 ||
      (nul = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
    wf_err_set(err, "cannot start %s: %s", argv[0], strerror(errno));
    goto err_fds;
  }
  envp = env_build(env_add);
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &old);
  me = getpid();
  pid = fork();
  if (pid == 0) child_main((char *const *)argv, envp, nul, rep[1], me);
  e = errno;
  sigprocmask(SIG_SETMASK, &old, NULL);
  free(envp);
  close(rep[1]);
  close(nul);
  rep[1] = nul = -1;
  if (pid < 0) {
    wf_err_set(err, "cannot start %s: %s", argv[0], strerror(e));
    goto err_fds;
  }
  /* EOF: the exec succeeded (the pipe was close-on-exec) */
  while ((n = read(rep[0], &e, sizeof e)) < 0 && errno == EINTR) {
  }
  close(rep[0]);
  if (n == (ssize_t)sizeof e) {
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    wf_err_set(err, "cannot start %s: %s", argv[0], strerror(e));
    return NULL;
  }

  c = wf_xcalloc(1, sizeof *c);
  c->evl = evl;
  c->pid = pid;
  c->running = 1;
  c->fn = fn;
  c->ud = ud;
  ev_child_init(&c->watch, exit_cb, pid, 0);
  c->watch.data = c;
  ev_child_start(evl, &c->watch);
  return c;

err_fds:
  if (rep[0] >= 0) close(rep[0]);
  if (rep[1] >= 0) close(rep[1]);
  if (nul >= 0) close(nul);
  return NULL;
}

pid_t wf_child_pid(const wf_child_t *c) { return c->pid; }

int wf_child_running(const wf_child_t *c) { return c->running; }

int wf_child_code(const wf_child_t *c) {
  return (!c->running && WIFEXITED(c->status)) ? WEXITSTATUS(c->status) : -1;
}

int wf_child_signal(const wf_child_t *c) {
  return (!c->running && WIFSIGNALED(c->status)) ? WTERMSIG(c->status) : 0;
}

int wf_child_kill(wf_child_t *c, int sig, wf_err_t *err) {
  if (!c->running)
    return wf_err_set(err, "process %d has exited already", (int)c->pid);
  if (kill(c->pid, sig) < 0)
    return wf_err_set(err, "cannot signal process %d: %s", (int)c->pid,
                      strerror(errno));
  return WF_OK;
}

void wf_child_free(wf_child_t *c) {
  if (!c) return;
  /* a pending event: libev has reaped the child already */
  int reaped = ev_is_pending(&c->watch);
  ev_child_stop(c->evl, &c->watch);
  if (c->running && !reaped) {
    int st;
    kill(c->pid, SIGKILL);
    while (waitpid(c->pid, &st, 0) < 0 && errno == EINTR) {
    }
  }
  free(c);
}
