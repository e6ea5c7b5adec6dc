/* proc.c — child processes on the loop (see proc.h for the contract).
 *
 * Spawning: everything the child needs (exec candidates from PATH, the
 * full argv, envp, rlimits) is prepared in the parent, so that between
 * fork and execve the children only make async-signal-safe system calls.
 * The forked child is a supervisor, not the command: it becomes a child
 * subreaper, forks the command and waits. Every descendant of the command
 * (setsid daemons, double forks) is either in the command's tree or was
 * reparented to the supervisor, so when the command exits, or weft asks
 * (timeout, kill, free), or weft dies (the control pipe reaches EOF,
 * whatever killed weft), the supervisor SIGKILLs its children over and
 * over (found through /proc) until it has none, then exits with the
 * command's status (re-raising its signal). It keeps no fd of weft but
 * the control pipe and is not dumpable: it is a copy of weft's memory.
 * A failure before or at the command's execve is reported as {stage,
 * errno} through a close-on-exec pipe that the parent reads right after
 * fork: EOF means the exec succeeded.
 *
 * Running: stdin is written through a non-blocking pipe by an ev_io (never
 * raising SIGPIPE in this process); stdout and stderr are read by ev_io
 * watchers into buffers capped at max_output, and past the cap spliced
 * into /dev/null (or read and dropped) so the child never blocks on a full
 * pipe: a command printing a gigabyte costs no memory. An ev_child
 * watcher (default loop only) reaps the supervisor; then the pipes are
 * drained (bounded) and closed, and the owner notified. The first spawn
 * also makes this process a child subreaper, so that whatever escapes a
 * supervisor killed from outside is reaped here by libev.
 *
 * Also wf_proc_rmtree, the no-symlink-following recursive removal used for
 * sandbox working directories. Depends on loop.h, common.h, libev, libc. */
#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROC_DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"
#define PROC_DEFAULT_MAX_OUTPUT (1024 * 1024)
#define PROC_CHUNK 65536
#define PROC_READS_PER_CB 16   /* fairness: reads per readiness callback */
#define PROC_DRAIN_READS 256   /* bound on the final drain after exit */
#define PROC_STDIN_CHUNK 65536
#define PROC_DISCARD (1024 * 1024) /* bytes per splice to /dev/null */

/* Where the child failed (reported through the exec-error pipe). */
enum { PROC_STAGE_EXEC = 1, PROC_STAGE_SETUP, PROC_STAGE_RLIMIT,
       PROC_STAGE_DROP, PROC_STAGE_CHDIR };

typedef struct proc_report {
  int stage;
  int err;
  int target; /* exec stage: 1 when the wrapped command was not found */
} proc_report_t;

typedef struct proc_buf {
  char *data;
  size_t len, cap;
  int truncated;
} proc_buf_t;

struct wf_proc {
  struct ev_loop *evl;
  wf_proc_notify_fn fn;
  void *ud;
  pid_t pid;
  int running;   /* not reaped yet */
  int done;      /* reaped, pipes closed */
  int killed, timed_out;
  int status;    /* wait status */
  int fd[3];     /* parent ends: stdin (write), stdout, stderr; -1: closed */
  int ctrl;      /* write end of the supervisor's control pipe; -1: closed
                    (closing it asks the supervisor to kill everything) */
  ev_io io[3];
  ev_child child;
  ev_timer timer;
  char *in_data; /* stdin bytes not yet written */
  size_t in_len, in_off;
  proc_buf_t buf[3]; /* [1] stdout, [2] stderr */
  size_t max_output;
  double t0, t1;
  char *exec_error;
};

/* What the child needs, prepared by the parent before fork. */
typedef struct proc_child {
  char **cands;        /* absolute or relative paths to try, NULL-ended */
  char **argv;         /* wrap ++ argv (argv[0] resolved when wrapped) */
  char **envp;
  const char *cwd;
  int target_missing;  /* wrapped: argv[0] not found in PATH */
  int fd_in, fd_out, fd_err, fd_report, fd_ctrl;
  long memory_mb, cpu_s, max_procs;
  uid_t uid;
  gid_t gid;
  int drop;
  pid_t parent;
} proc_child_t;

/* ---- child side (async-signal-safe calls only) ---- */

/* Report {stage, err} to the parent and exit (127: not found, else 126). */
static void child_fail(int fd, int stage, int err, int target) {
  proc_report_t r = {stage, err, target};
  ssize_t n = write(fd, &r, sizeof r);
  (void)n;
  _exit(stage == PROC_STAGE_EXEC && err == ENOENT ? 127 : 126);
}

/* setrlimit with a soft and a hard limit. */
static int child_limit(int res, rlim_t soft, rlim_t hard) {
  struct rlimit rl = {soft, hard};
  return setrlimit(res, &rl);
}

void wf_proc_cloexec_all(void) {
  if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
  struct rlimit rl;
  long max = 65536;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
      (long)rl.rlim_cur < max)
    max = (long)rl.rlim_cur;
  for (long fd = 3; fd < max; fd++) fcntl((int)fd, F_SETFD, FD_CLOEXEC);
}

/* The child between fork and execve. Never returns. */
static void child_main(const proc_child_t *c) {
  int rep, tmp[3], src[3] = {c->fd_in, c->fd_out, c->fd_err};
  sigset_t none;
  struct sigaction sa;

  setpgid(0, 0);
  /* ignored signals and the mask survive execve: start the command clean */
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; s++) sigaction(s, &sa, NULL);
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);

  /* move every pipe end above 2 first, so that dup2 cannot clobber one */
  rep = fcntl(c->fd_report, F_DUPFD_CLOEXEC, 3);
  if (rep < 0) _exit(126);
  for (int i = 0; i < 3; i++)
    if ((tmp[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 3)) < 0)
      child_fail(rep, PROC_STAGE_SETUP, errno, 0);
  for (int i = 0; i < 3; i++)
    if (dup2(tmp[i], i) < 0) child_fail(rep, PROC_STAGE_SETUP, errno, 0);
  wf_proc_cloexec_all();

  if (c->memory_mb > 0) {
    rlim_t b = (rlim_t)c->memory_mb * 1024 * 1024;
    if (child_limit(RLIMIT_AS, b, b) < 0)
      child_fail(rep, PROC_STAGE_RLIMIT, errno, 0);
  }
  /* SIGXCPU at the soft limit, SIGKILL a second later if it is caught */
  if (c->cpu_s > 0 &&
      child_limit(RLIMIT_CPU, (rlim_t)c->cpu_s, (rlim_t)c->cpu_s + 1) < 0)
    child_fail(rep, PROC_STAGE_RLIMIT, errno, 0);
  if (c->max_procs > 0 && child_limit(RLIMIT_NPROC, (rlim_t)c->max_procs,
                                      (rlim_t)c->max_procs) < 0)
    child_fail(rep, PROC_STAGE_RLIMIT, errno, 0);
  child_limit(RLIMIT_CORE, 0, 0);

  if (c->drop) {
    if (setgroups(0, NULL) < 0 || setgid(c->gid) < 0 || setuid(c->uid) < 0)
      child_fail(rep, PROC_STAGE_DROP, errno, 0);
  }
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  /* set after the uid change, which clears it; then close the race with a
   * parent that died before the prctl */
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (getppid() != c->parent) _exit(126);

  if (c->cwd && chdir(c->cwd) < 0) child_fail(rep, PROC_STAGE_CHDIR, errno, 0);
  if (c->target_missing) child_fail(rep, PROC_STAGE_EXEC, ENOENT, 1);

  /* execvpe's search: remember EACCES, skip "not here", stop on the rest */
  int eacces = 0;
  for (char **p = c->cands; *p; p++) {
    execve(*p, c->argv, c->envp);
    int e = errno;
    if (e == EACCES)
      eacces = 1;
    else if (e != ENOENT && e != ENOTDIR && e != ESTALE && e != ENODEV &&
             e != ETIMEDOUT)
      child_fail(rep, PROC_STAGE_EXEC, e, 0);
  }
  child_fail(rep, PROC_STAGE_EXEC, eacces ? EACCES : ENOENT, 0);
}

/* ---- the supervisor (async-signal-safe calls only: weft may have
 * threads, and this process never execs) ---- */

/* The kernel's getdents64 record. */
typedef struct sup_dirent {
  unsigned long long ino;
  long long off;
  unsigned short reclen;
  unsigned char type;
  char name[];
} sup_dirent_t;

/* The parent pid in /proc/<pid>/stat (name the pid's digits), or -1. The
 * command name may hold ") ": the fields follow the last ')'. */
static long sup_ppid_of(const char *name) {
  char path[64] = "/proc/", buf[512];
  size_t n = 6, k = 0;
  ssize_t len;
  int fd;
  long ppid = 0;
  while (name[k] && n < sizeof path - 6) path[n++] = name[k++];
  memcpy(path + n, "/stat", 6);
  if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) return -1;
  len = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (len <= 0) return -1;
  buf[len] = '\0';
  char *e = strrchr(buf, ')');
  if (!e || e[1] != ' ' || !e[2] || e[3] != ' ') return -1;
  for (e += 4; *e >= '0' && *e <= '9'; e++) ppid = ppid * 10 + (*e - '0');
  return ppid;
}

/* SIGKILL every child of this process (found by scanning /proc). The
 * number signalled, or -1 when /proc cannot be read. */
static int sup_kill_children(void) {
  char buf[4096];
  long me = (long)getpid(), n;
  int fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC), count = 0;
  if (fd < 0) return -1;
  while ((n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
    for (long off = 0; off < n;) {
      sup_dirent_t *d = (sup_dirent_t *)(buf + off);
      long pid = 0;
      const char *c = d->name;
      off += d->reclen;
      for (; *c >= '0' && *c <= '9'; c++) pid = pid * 10 + (*c - '0');
      if (*c || pid <= 0 || pid == me) continue;
      if (sup_ppid_of(d->name) == me && kill((pid_t)pid, SIGKILL) == 0)
        count++;
    }
  }
  close(fd);
  return n < 0 ? -1 : count;
}

/* Reap children without blocking; records the status of cmd. */
static void sup_reap(pid_t cmd, int *status, int *have) {
  pid_t r;
  int st;
  while ((r = waitpid(-1, &st, WNOHANG)) > 0 || (r < 0 && errno == EINTR))
    if (r == cmd) {
      *status = st;
      *have = 1;
    }
}

/* Kill every descendant: SIGKILL all children, wait for one to die (its
 * orphans are ours before it is waitable), repeat until none is left. */
static void sup_kill_all(pid_t cmd, int *status, int *have) {
  for (;;) {
    int st;
    pid_t r;
    if (sup_kill_children() < 0) {
      /* no /proc: the command's process group is all we can find */
      kill(-cmd, SIGKILL);
      sup_reap(cmd, status, have);
      return;
    }
    while ((r = waitpid(-1, &st, 0)) < 0 && errno == EINTR) {
    }
    if (r < 0) return; /* ECHILD: nothing left */
    if (r == cmd) {
      *status = st;
      *have = 1;
    }
    sup_reap(cmd, status, have);
  }
}

/* End the supervisor as the command ended: its exit code, or its signal
 * (SIGKILL when weft asked, or when the status is unknown). */
static void sup_exit(int status, int have) {
  struct sigaction sa;
  sigset_t set;
  int sig;
  if (have && WIFEXITED(status)) _exit(WEXITSTATUS(status));
  sig = have && WIFSIGNALED(status) ? WTERMSIG(status) : SIGKILL;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigaction(sig, &sa, NULL);
  sigemptyset(&set);
  sigaddset(&set, sig);
  sigprocmask(SIG_UNBLOCK, &set, NULL);
  kill(getpid(), sig);
  _exit(128 + sig); /* a signal whose default is not to terminate */
}

/* The forked child: supervise the command (see the file comment). Never
 * returns. */
static void supervise(const proc_child_t *c) {
  proc_child_t gc = *c;
  struct sigaction sa;
  sigset_t all, chld;
  int sfd, status = 0, have = 0;
  pid_t cmd;

  /* its own group, apart from the command's: a `kill 0` in the command
   * does not reach it; every signal blocked: none can stop the cleanup */
  setpgid(0, 0);
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, NULL);
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; s++) sigaction(s, &sa, NULL);
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  child_limit(RLIMIT_CORE, 0, 0);
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  if ((sfd = signalfd(-1, &chld, SFD_CLOEXEC)) < 0)
    child_fail(c->fd_report, PROC_STAGE_SETUP, errno, 0);

  gc.parent = getpid();
  if ((cmd = fork()) < 0) child_fail(c->fd_report, PROC_STAGE_SETUP, errno, 0);
  if (cmd == 0) child_main(&gc); /* never returns */

  /* keep nothing of weft's but the control pipe and the signalfd */
  for (int fd = 0; fd < 3; fd++)
    if (fd != c->fd_ctrl && fd != sfd) close(fd);
  {
    int lo = c->fd_ctrl < sfd ? c->fd_ctrl : sfd;
    int hi = c->fd_ctrl < sfd ? sfd : c->fd_ctrl;
    if (lo > 3) close_range(3, (unsigned)lo - 1, 0);
    if (hi > lo + 1) close_range((unsigned)lo + 1, (unsigned)hi - 1, 0);
    close_range((unsigned)hi + 1, ~0U, 0);
  }

  for (;;) {
    struct pollfd pf[2] = {{c->fd_ctrl, POLLIN, 0}, {sfd, POLLIN, 0}};
    if (poll(pf, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (pf[1].revents) {
      struct signalfd_siginfo si;
      ssize_t n = read(sfd, &si, sizeof si);
      (void)n;
      sup_reap(cmd, &status, &have);
      if (have) break;
    }
    if (pf[0].revents) break; /* EOF: weft asks, or weft is gone */
  }
  sup_kill_all(cmd, &status, &have);
  sup_exit(status, have);
}

/* ---- parent side: preparing the child ---- */

/* The value of PATH in env, or the default. */
static const char *env_path(const char *const *env) {
  for (const char *const *e = env; e && *e; e++)
    if (strncmp(*e, "PATH=", 5) == 0) return *e + 5;
  return PROC_DEFAULT_PATH;
}

/* Free a NULL-terminated list of malloc'ed strings and the list. */
static void strv_free(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

/* Paths to try for file: itself when it has a '/', else dir/file for every
 * entry of path (an empty entry is the current directory). */
static char **exec_candidates(const char *file, const char *path) {
  size_t n = 1, k = 0, flen = strlen(file);
  char **v;
  if (strchr(file, '/')) {
    v = wf_xcalloc(2, sizeof *v);
    v[0] = wf_xstrdup(file);
    return v;
  }
  for (const char *s = path; *s; s++) n += *s == ':';
  v = wf_xcalloc(n + 1, sizeof *v);
  for (const char *s = path;; s++) {
    const char *e = strchr(s, ':');
    size_t dlen = e ? (size_t)(e - s) : strlen(s);
    const char *dir = dlen ? s : ".";
    if (!dlen) dlen = 1;
    v[k] = wf_xmalloc(dlen + 1 + flen + 1);
    memcpy(v[k], dir, dlen);
    v[k][dlen] = '/';
    memcpy(v[k] + dlen + 1, file, flen + 1);
    k++;
    if (!e) break;
    s = e;
  }
  return v;
}

/* The first candidate of file that is an executable regular file, copied;
 * NULL if none. Relative candidates are taken from cwd (the directory the
 * child will be in; NULL: ours) and returned absolute. The file's own name
 * is kept (no symlink resolution: multi-call binaries read argv[0]). */
static char *resolve_exec(const char *file, const char *path,
                          const char *cwd) {
  char **v = exec_candidates(file, path), *found = NULL;
  char base[PATH_MAX], full[PATH_MAX * 2];
  if (cwd && !realpath(cwd, base)) snprintf(base, sizeof base, "%s", cwd);
  for (char **p = v; *p && !found; p++) {
    struct stat st;
    if (cwd && **p != '/')
      snprintf(full, sizeof full, "%s/%s", base,
               strncmp(*p, "./", 2) == 0 ? *p + 2 : *p);
    else
      snprintf(full, sizeof full, "%s", *p);
    if (stat(full, &st) == 0 && S_ISREG(st.st_mode) &&
        access(full, X_OK) == 0)
      found = wf_xstrdup(full);
  }
  strv_free(v);
  return found;
}

/* Number of entries of a NULL-terminated list (NULL: 0). */
static size_t strv_len(const char *const *v) {
  size_t n = 0;
  while (v && v[n]) n++;
  return n;
}

/* ---- parent side: running ---- */

/* write() that never raises SIGPIPE in this process: block it around the
 * write and consume one it generated (the host's disposition is kept).
 * sigprocmask, not pthread_sigmask: <pthread.h> would pull in <sched.h>,
 * which runtime/core/sched.h shadows; on Linux both act on the calling thread. */
static ssize_t write_nosigpipe(int fd, const void *b, size_t n) {
  sigset_t set, old, pending;
  ssize_t r;
  int e, was_pending;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  sigpending(&pending);
  was_pending = sigismember(&pending, SIGPIPE);
  sigprocmask(SIG_BLOCK, &set, &old);
  r = write(fd, b, n);
  e = errno;
  if (r < 0 && e == EPIPE && !was_pending) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR) {
    }
  }
  sigprocmask(SIG_SETMASK, &old, NULL);
  errno = e;
  return r;
}

/* Stop the watcher of stream k and close its fd. */
static void proc_close(wf_proc_t *p, int k) {
  if (p->fd[k] < 0) return;
  ev_io_stop(p->evl, &p->io[k]);
  close(p->fd[k]);
  p->fd[k] = -1;
  if (k == 0) {
    free(p->in_data);
    p->in_data = NULL;
  }
}

/* An fd open on /dev/null for discarding output (opened once), or -1. */
static int proc_devnull(void) {
  static int fd = -2;
  if (fd == -2) fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  return fd;
}

/* Read stream k (1 stdout, 2 stderr) at most nreads times: into its buffer
 * up to max_output, then into a scratch buffer that is thrown away. Closes
 * the stream at EOF or on a read error. */
static void proc_read(wf_proc_t *p, int k, int nreads) {
  proc_buf_t *b = &p->buf[k];
  char scratch[PROC_CHUNK];
  for (int i = 0; i < nreads && p->fd[k] >= 0; i++) {
    ssize_t n;
    if (b->len < p->max_output) {
      size_t want = p->max_output - b->len;
      if (want > PROC_CHUNK) want = PROC_CHUNK;
      if (b->cap < b->len + want + 1) {
        size_t c = b->cap ? b->cap * 2 : 4096;
        if (c < b->len + want + 1) c = b->len + want + 1;
        if (c > p->max_output + 1) c = p->max_output + 1;
        b->data = wf_xrealloc(b->data, c);
        b->cap = c;
        b->data[b->len] = '\0';
      }
      n = read(p->fd[k], b->data + b->len, want);
      if (n > 0) {
        b->len += (size_t)n;
        b->data[b->len] = '\0';
      }
    } else {
      /* past the cap: splice into /dev/null (no copy), else read and drop */
      n = -1;
      errno = EINVAL;
      if (proc_devnull() >= 0)
        n = splice(p->fd[k], NULL, proc_devnull(), NULL, PROC_DISCARD,
                   SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
      if (n < 0 && errno == EINVAL)
        n = read(p->fd[k], scratch, sizeof scratch);
      if (n > 0) b->truncated = 1;
    }
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    proc_close(p, k); /* EOF or error */
  }
}

/* stdout/stderr readable. */
static void out_cb(struct ev_loop *evl, ev_io *w, int revents) {
  wf_proc_t *p = w->data;
  (void)evl;
  (void)revents;
  proc_read(p, w == &p->io[1] ? 1 : 2, PROC_READS_PER_CB);
}

/* stdin writable: write the next chunk; close when all is written or the
 * child stopped reading. */
static void in_cb(struct ev_loop *evl, ev_io *w, int revents) {
  wf_proc_t *p = w->data;
  (void)evl;
  (void)revents;
  while (p->in_off < p->in_len) {
    size_t n = p->in_len - p->in_off;
    if (n > PROC_STDIN_CHUNK) n = PROC_STDIN_CHUNK;
    ssize_t r = write_nosigpipe(p->fd[0], p->in_data + p->in_off, n);
    if (r > 0) {
      p->in_off += (size_t)r;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    break; /* EPIPE: the child closed its stdin */
  }
  proc_close(p, 0);
}

/* Close the control pipe: the supervisor kills everything and exits. It
 * may have been stopped (SIGSTOP from a command running as our uid). */
static void proc_stop_supervisor(wf_proc_t *p) {
  if (p->ctrl < 0) return;
  close(p->ctrl);
  p->ctrl = -1;
  if (p->running) kill(p->pid, SIGCONT);
}

/* The supervisor is gone (reaped), and with it the command and everything
 * it started. Drain and close the pipes, notify. The notification is the
 * last thing done. */
static void proc_finish(wf_proc_t *p) {
  proc_stop_supervisor(p);
  ev_timer_stop(p->evl, &p->timer);
  proc_close(p, 0);
  for (int k = 1; k <= 2; k++) {
    proc_read(p, k, PROC_DRAIN_READS);
    proc_close(p, k);
  }
  p->done = 1;
  if (p->fn) p->fn(p->ud, p);
}

/* ev_child: the main process exited or was killed. */
static void child_cb(struct ev_loop *evl, ev_child *w, int revents) {
  wf_proc_t *p = w->data;
  (void)revents;
  ev_child_stop(evl, w);
  p->status = w->rstatus;
  p->running = 0;
  p->t1 = wf_time_mono();
  proc_finish(p);
}

/* The timeout expired: kill the group; the reaping notifies. */
static void timer_cb(struct ev_loop *evl, ev_timer *w, int revents) {
  wf_proc_t *p = w->data;
  (void)evl;
  (void)revents;
  p->timed_out = 1;
  wf_proc_kill(p);
}

/* Set O_NONBLOCK on fd. */
static void set_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* A readable sentence for a child's report. */
static char *report_message(const proc_report_t *r, const char *name,
                            const char *cwd) {
  char msg[1024];
  switch (r->stage) {
    case PROC_STAGE_EXEC:
      if (r->err == ENOENT)
        snprintf(msg, sizeof msg, "command not found: %s", name);
      else
        snprintf(msg, sizeof msg, "cannot execute %s: %s", name,
                 strerror(r->err));
      break;
    case PROC_STAGE_CHDIR:
      snprintf(msg, sizeof msg, "cannot change directory to %s: %s",
               cwd ? cwd : "?", strerror(r->err));
      break;
    case PROC_STAGE_RLIMIT:
      snprintf(msg, sizeof msg, "cannot set resource limits: %s",
               strerror(r->err));
      break;
    case PROC_STAGE_DROP:
      snprintf(msg, sizeof msg, "cannot drop privileges: %s",
               strerror(r->err));
      break;
    default:
      snprintf(msg, sizeof msg, "cannot set up the child: %s",
               strerror(r->err));
      break;
  }
  return wf_xstrdup(msg);
}

/* Close every fd in the list that is >= 0. */
static void close_fds(int *fds, int n) {
  for (int i = 0; i < n; i++)
    if (fds[i] >= 0) close(fds[i]);
}

wf_proc_t *wf_proc_spawn(wf_loop_t *l, const wf_proc_opts_t *o,
                         wf_proc_notify_fn fn, void *ud, wf_err_t *err) {
  static int subreaper;
  /* pipe ends: [0,1] stdin r/w, [2,3] stdout, [4,5] stderr, [6,7] report,
   * [8,9] control (the supervisor reads) */
  int fds[10] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
  struct ev_loop *evl = wf_loop_ev(l);
  size_t nwrap = strv_len(o->wrap), nargv = strv_len(o->argv);
  size_t nenv = strv_len(o->env);
  proc_child_t c;
  wf_proc_t *p = NULL;
  char *resolved = NULL;
  const char *path;
  pid_t pid;

  if (!nargv || !*o->argv[0]) {
    wf_err_set(err, "argv must be a non-empty list (argv[0] non-empty)");
    return NULL;
  }
  if (o->wrap && (!nwrap || !*o->wrap[0])) {
    wf_err_set(err, "wrap must be NULL or a non-empty list");
    return NULL;
  }
  if (!ev_is_default_loop(evl)) {
    wf_err_set(err, "child processes need the default libev loop (ev_child)");
    return NULL;
  }
  if (!subreaper) {
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    subreaper = 1;
  }

  memset(&c, 0, sizeof c);
  path = env_path(o->env);
  c.argv = wf_xcalloc(nwrap + nargv + 1, sizeof *c.argv);
  for (size_t i = 0; i < nwrap; i++) c.argv[i] = (char *)o->wrap[i];
  for (size_t i = 0; i < nargv; i++) c.argv[nwrap + i] = (char *)o->argv[i];
  if (nwrap) {
    resolved = resolve_exec(o->argv[0], path, o->cwd);
    if (resolved)
      c.argv[nwrap] = resolved;
    else
      c.target_missing = 1;
  }
  c.cands = exec_candidates(c.argv[0], path);
  c.envp = wf_xcalloc(nenv + 1, sizeof *c.envp);
  for (size_t i = 0; i < nenv; i++) c.envp[i] = (char *)o->env[i];
  c.cwd = o->cwd;
  c.memory_mb = o->memory_mb;
  c.cpu_s = o->cpu_s;
  c.max_procs = o->max_procs;
  c.drop = o->drop_to_uid > 0 && geteuid() == 0;
  c.uid = (uid_t)o->drop_to_uid;
  c.gid = (gid_t)(o->drop_to_gid > 0 ? o->drop_to_gid : o->drop_to_uid);
  c.parent = getpid();

  if (o->stdin_data && o->stdin_len) {
    if (pipe2(fds, O_CLOEXEC) < 0) goto err_sys;
  } else if ((fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
    goto err_sys;
  }
  if (pipe2(fds + 2, O_CLOEXEC) < 0 || pipe2(fds + 4, O_CLOEXEC) < 0 ||
      pipe2(fds + 6, O_CLOEXEC) < 0 || pipe2(fds + 8, O_CLOEXEC) < 0)
    goto err_sys;
  c.fd_in = fds[0];
  c.fd_out = fds[3];
  c.fd_err = fds[5];
  c.fd_report = fds[7];
  c.fd_ctrl = fds[8];

  p = wf_xcalloc(1, sizeof *p);
  p->evl = evl;
  p->fn = fn;
  p->ud = ud;
  p->max_output = o->max_output ? o->max_output : PROC_DEFAULT_MAX_OUTPUT;
  p->fd[0] = p->fd[1] = p->fd[2] = p->ctrl = -1;
  p->t0 = wf_time_mono();

  pid = fork();
  if (pid == 0) supervise(&c); /* never returns */
  if (pid < 0) goto err_sys;

  setpgid(pid, pid); /* also done by the child: whichever runs first */
  p->pid = pid;
  p->running = 1;
  p->ctrl = fds[9];
  close(fds[0]);
  close(fds[3]);
  close(fds[5]);
  close(fds[7]);
  close(fds[8]);
  fds[0] = fds[3] = fds[5] = fds[7] = fds[8] = fds[9] = -1;

  /* EOF: execve succeeded (the pipe was close-on-exec) */
  proc_report_t r;
  ssize_t n;
  while ((n = read(fds[6], &r, sizeof r)) < 0 && errno == EINTR) {
  }
  close(fds[6]);
  fds[6] = -1;
  if (n == (ssize_t)sizeof r)
    p->exec_error = report_message(
        &r, r.target ? o->argv[0] : c.argv[0], o->cwd);

  p->fd[0] = fds[1];
  p->fd[1] = fds[2];
  p->fd[2] = fds[4];
  for (int k = 0; k < 3; k++) {
    if (p->fd[k] < 0) continue;
    set_nonblock(p->fd[k]);
    ev_io_init(&p->io[k], k ? out_cb : in_cb, p->fd[k], k ? EV_READ : EV_WRITE);
    p->io[k].data = p;
  }
  if (p->fd[0] >= 0) {
    if (p->exec_error) {
      proc_close(p, 0);
    } else {
      p->in_data = wf_xmalloc(o->stdin_len);
      memcpy(p->in_data, o->stdin_data, o->stdin_len);
      p->in_len = o->stdin_len;
      ev_io_start(evl, &p->io[0]);
    }
  }
  ev_io_start(evl, &p->io[1]);
  ev_io_start(evl, &p->io[2]);
  ev_child_init(&p->child, child_cb, pid, 0);
  p->child.data = p;
  ev_child_start(evl, &p->child);
  ev_timer_init(&p->timer, timer_cb, o->timeout, 0);
  p->timer.data = p;
  if (o->timeout > 0) {
    ev_now_update(evl); /* the loop's time may be stale after long Lua work */
    ev_timer_start(evl, &p->timer);
  }

  strv_free(c.cands);
  free(c.argv);
  free(c.envp);
  free(resolved);
  return p;

err_sys:
  wf_err_set(err, "cannot start %s: %s", o->argv[0], strerror(errno));
  close_fds(fds, 10);
  free(p);
  strv_free(c.cands);
  free(c.argv);
  free(c.envp);
  free(resolved);
  return NULL;
}

void wf_proc_kill(wf_proc_t *p) {
  if (!p || !p->running || p->killed) return;
  /* not SIGKILL to the supervisor: what it reaped would escape it */
  proc_stop_supervisor(p);
  p->killed = 1;
}

void wf_proc_free(wf_proc_t *p) {
  if (!p) return;
  ev_child_stop(p->evl, &p->child);
  ev_timer_stop(p->evl, &p->timer);
  for (int k = 0; k < 3; k++) proc_close(p, k);
  if (p->running) {
    int st;
    proc_stop_supervisor(p);
    /* the supervisor exits as soon as everything it watches is dead; no
     * zombie is left behind */
    while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR) {
    }
  }
  proc_stop_supervisor(p);
  free(p->buf[1].data);
  free(p->buf[2].data);
  free(p->exec_error);
  free(p);
}

int wf_proc_nondumpable(wf_err_t *err) {
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
    return wf_err_set(err, "cannot make weft non-dumpable: %s",
                      strerror(errno));
  return WF_OK;
}

int wf_proc_done(const wf_proc_t *p) { return p->done; }

pid_t wf_proc_pid(const wf_proc_t *p) { return p->pid; }

int wf_proc_exit_code(const wf_proc_t *p) {
  return (!p->running && WIFEXITED(p->status)) ? WEXITSTATUS(p->status) : -1;
}

int wf_proc_signal(const wf_proc_t *p) {
  return (!p->running && WIFSIGNALED(p->status)) ? WTERMSIG(p->status) : 0;
}

int wf_proc_timed_out(const wf_proc_t *p) { return p->timed_out; }

/* Output of stream k with its length and truncation flag. */
static const char *proc_output(const wf_proc_t *p, int k, size_t *len,
                               int *truncated) {
  if (len) *len = p->buf[k].len;
  if (truncated) *truncated = p->buf[k].truncated;
  return p->buf[k].data ? p->buf[k].data : "";
}

const char *wf_proc_stdout(const wf_proc_t *p, size_t *len, int *truncated) {
  return proc_output(p, 1, len, truncated);
}

const char *wf_proc_stderr(const wf_proc_t *p, size_t *len, int *truncated) {
  return proc_output(p, 2, len, truncated);
}

double wf_proc_duration_ms(const wf_proc_t *p) {
  return ((p->running ? wf_time_mono() : p->t1) - p->t0) * 1000.0;
}

const char *wf_proc_exec_error(const wf_proc_t *p) { return p->exec_error; }

/* ---- recursive removal ---- */

/* Remove everything inside the directory open as fd (whose path, for
 * messages, is path, a PATH_MAX buffer extended and restored in place);
 * never leaves file system dev. */
static int rm_contents(int fd, char *path, dev_t dev, int depth,
                       wf_err_t *err) {
  size_t plen = strlen(path);
  int rc = WF_OK, removed, dfd;
  DIR *d;
  if (depth > 512) return wf_err_set(err, "%s: directory tree too deep", path);
  if ((dfd = dup(fd)) < 0 || !(d = fdopendir(dfd))) {
    if (dfd >= 0) close(dfd);
    return wf_err_set(err, "cannot read %s: %s", path, strerror(errno));
  }
  /* entries removed while reading may hide others: repeat until a pass
   * removes nothing */
  do {
    struct dirent *e;
    removed = 0;
    rewinddir(d);
    while (rc == WF_OK && (e = readdir(d))) {
      const char *n = e->d_name;
      struct stat st;
      int isdir;
      if (!strcmp(n, ".") || !strcmp(n, "..")) continue;
      snprintf(path + plen, PATH_MAX - plen, "/%s", n);
      if (fstatat(fd, n, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT) continue;
        rc = wf_err_set(err, "cannot stat %s: %s", path, strerror(errno));
        break;
      }
      isdir = S_ISDIR(st.st_mode);
      if (isdir) {
        int sub;
        if (st.st_dev != dev) {
          rc = wf_err_set(err, "%s is a mount point: not removed", path);
          break;
        }
        sub = openat(fd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0 && errno == EACCES && fchmodat(fd, n, S_IRWXU, 0) == 0)
          sub = openat(fd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
          rc = wf_err_set(err, "cannot open %s: %s", path, strerror(errno));
          break;
        }
        rc = rm_contents(sub, path, dev, depth + 1, err);
        close(sub);
        if (rc != WF_OK) break;
      }
      if (unlinkat(fd, n, isdir ? AT_REMOVEDIR : 0) < 0 &&
          (errno != EACCES || fchmod(fd, S_IRWXU) < 0 ||
           unlinkat(fd, n, isdir ? AT_REMOVEDIR : 0) < 0) &&
          errno != ENOENT) {
        rc = wf_err_set(err, "cannot remove %s: %s", path, strerror(errno));
        break;
      }
      removed = 1;
    }
    path[plen] = '\0';
  } while (rc == WF_OK && removed);
  closedir(d);
  return rc;
}

int wf_proc_rmtree(const char *path, wf_err_t *err) {
  struct stat st;
  char buf[PATH_MAX];
  int fd, rc;
  if (!path || !*path) return wf_err_set(err, "cannot remove an empty path");
  if (lstat(path, &st) < 0)
    return wf_err_set(err, "cannot remove %s: %s", path, strerror(errno));
  if (!S_ISDIR(st.st_mode)) {
    if (unlink(path) < 0)
      return wf_err_set(err, "cannot remove %s: %s", path, strerror(errno));
    return WF_OK;
  }
  if (strlen(path) >= sizeof buf)
    return wf_err_set(err, "cannot remove %s: path too long", path);
  fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno == EACCES && chmod(path, S_IRWXU) == 0)
    fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return wf_err_set(err, "cannot open %s: %s", path, strerror(errno));
  strcpy(buf, path);
  rc = rm_contents(fd, buf, st.st_dev, 0, err);
  close(fd);
  if (rc == WF_OK && rmdir(path) < 0)
    rc = wf_err_set(err, "cannot remove %s: %s", path, strerror(errno));
  return rc;
}
