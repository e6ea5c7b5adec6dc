/* test_proc.c — child processes (proc.c): output and exit codes, signals,
 * the empty default environment and PATH lookup, cwd, a 1 MB stdin round
 * trip, stdin the child never reads (no SIGPIPE here), output caps with
 * truncation, timeouts that kill the whole process group, kill and free,
 * setsid and double-forked daemons killed when the command exits, on kill
 * and on free, a supervisor that shows nothing of weft's,
 * exec failures (not found, not executable, bad cwd), argv wrapping, the
 * uid drop, rlimits, fd hygiene in parent and child, and wf_proc_rmtree.
 * Depends on proc.c, loop.c and the harness. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "proc.h"

static wf_loop_t *L;

typedef struct waiter {
  int notified;
  wf_proc_t *p;
} waiter_t;

/* Notification: count it (the test frees the process). */
static void on_done(void *ud, wf_proc_t *p) {
  waiter_t *w = ud;
  w->notified++;
  w->p = p;
}

/* Spawn with o and run the loop until notified; NULL if spawn failed. */
static wf_proc_t *run(const wf_proc_opts_t *o, waiter_t *w) {
  wf_err_t err;
  memset(w, 0, sizeof *w);
  wf_proc_t *p = wf_proc_spawn(L, o, on_done, w, &err);
  if (!p) {
    fprintf(stderr, "spawn failed: %s\n", err.msg);
    return NULL;
  }
  while (!w->notified) wf_loop_step(L);
  CHECK(wf_proc_done(p));
  return p;
}

/* Number of open fds of this process. */
static int fd_count(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  struct dirent *e;
  if (!d) return -1;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1; /* the directory's own fd */
}

/* 1 when pid has exited (gone or a zombie): waits on a pidfd for up to 10
 * seconds, so a dying process is not mistaken for a survivor. */
static int pid_ended(pid_t pid) {
  int fd = (int)syscall(SYS_pidfd_open, pid, 0);
  struct pollfd pfd;
  int r;
  if (fd < 0) return errno == ESRCH;
  pfd.fd = fd;
  pfd.events = POLLIN;
  /* SIGCHLD (libev's handler) interrupts the wait */
  while ((r = poll(&pfd, 1, 10000)) < 0 && errno == EINTR) {
  }
  close(fd);
  return r == 1;
}

static void test_echo(void) {
  const char *argv[] = {"echo", "hello", "world", NULL};
  wf_proc_opts_t o = {.argv = argv};
  waiter_t w;
  size_t len;
  int trunc = -1;
  wf_proc_t *p = run(&o, &w);
  CHECK(p != NULL);
  if (!p) return;
  CHECK_INT(w.notified, 1);
  CHECK_INT(wf_proc_exit_code(p), 0);
  CHECK_INT(wf_proc_signal(p), 0);
  CHECK_INT(wf_proc_timed_out(p), 0);
  CHECK_STR(wf_proc_stdout(p, &len, &trunc), "hello world\n");
  CHECK_INT(len, 12);
  CHECK_INT(trunc, 0);
  CHECK_STR(wf_proc_stderr(p, &len, NULL), "");
  CHECK_INT(len, 0);
  CHECK(wf_proc_exec_error(p) == NULL);
  CHECK(wf_proc_duration_ms(p) >= 0);
  CHECK(wf_proc_pid(p) > 0);
  wf_proc_free(p);
}

static void test_exit_codes_and_stderr(void) {
  const char *argv[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
  wf_proc_opts_t o = {.argv = argv};
  waiter_t w;
  wf_proc_t *p = run(&o, &w);
  if (!p) return;
  CHECK_INT(wf_proc_exit_code(p), 3);
  CHECK_INT(wf_proc_signal(p), 0);
  CHECK_STR(wf_proc_stdout(p, NULL, NULL), "out\n");
  CHECK_STR(wf_proc_stderr(p, NULL, NULL), "err\n");
  wf_proc_free(p);
}

static void test_killed_by_signal(void) {
  const char *argv[] = {"sh", "-c", "kill -TERM $$", NULL};
  wf_proc_opts_t o = {.argv = argv};
  waiter_t w;
  wf_proc_t *p = run(&o, &w);
  if (!p) return;
  CHECK_INT(wf_proc_exit_code(p), -1);
  CHECK_INT(wf_proc_signal(p), SIGTERM);
  CHECK_INT(wf_proc_timed_out(p), 0);
  wf_proc_free(p);
}

static void test_env_empty_by_default(void) {
  const char *argv[] = {"env", NULL};
  const char *env[] = {"A=1", "B=two words", NULL};
  wf_proc_opts_t o = {.argv = argv};
  waiter_t w;
  wf_proc_t *p;
  setenv("WEFT_TEST_SECRET", "leak", 1);
  p = run(&o, &w);
  if (!p) return;
  CHECK_INT(wf_proc_exit_code(p), 0);
  CHECK_STR(wf_proc_stdout(p, NULL, NULL), "");
  wf_proc_free(p);
  o.env = env;
  p = run(&o, &w);
  if (!p) return;
  CHECK_STR(wf_proc_stdout(p, NULL, NULL), "A=1\nB=two words\n");
  wf_proc_free(p);
  unsetenv("WEFT_TEST_SECRET");
}

static void test_path_of_env(void) {
  const char *argv[] = {"echo", "x", NULL};
  const char *env[] = {"PATH=/nonexistent:/also-not-here", NULL};
  const char *abs[] = {"/bin/echo", "y", NULL};
  wf_proc_opts_t o = {.argv = argv, .env = env};
  waiter_t w;
  wf_proc_t *p = run(&o, &w);
  if (!p) return;
  CHECK_INT(wf_proc_exit_code(p), 127);
  CHECK_STR(wf_proc_exec_error(p), "command not found: echo");
  wf_proc_free(p);
  o.argv = abs;
  p = run(&o, &w);
  if (!p) return;
  CHECK_INT(wf_proc_exit_code(p), 0);
  CHECK_STR(wf_proc_stdout(p, NULL, NULL), "y\n");
  wf_proc_free(p);
}

static void test_cwd(void) {
  const char *argv[] = {"pwd", NULL};
  wf_proc_opts_t o = {.argv = argv, .cwd = "/usr/bin"};
  waiter_t w;
  wf_proc_t *p = run(&o, &w);
  if (!p) return;
  CHECK_STR(wf_proc_stdout(p, NULL, NULL), "/usr/bin\n");
  wf_proc_free(p);
  o.cwd = "/no/such/dir";
  p = run(&o, &w);
  if (!p) return;
  CHECK_INT(wf_proc_exit_code(p), 126);
  CHECK_STR(wf_proc_exec_error(p),
            "cannot change directory to /no/such/dir: No such file or "
            "directory");
  wf_proc_free(p);
}

static void test_stdin_round_trip(void) {
  const char *argv[] = {"cat", NULL};
  size_t n = 1024 * 1024, len;
  char *data = malloc(n);
  int trunc;
  for (size_t i = 0; i < n; i++) data[i] = (char)('a' + (i * 7 + i / 4096) % 26);
  wf_proc_opts_t o = {.argv = argv, .stdin_data = data, .stdin_len = n,
                      .max_output = 2 * n};
  waiter_t w;
  wf_proc_t *p = run(&o, &w);
  if (p) {
    const char *out = wf_proc_stdout(p, &len, &trunc);
    CHECK_INT(wf_proc_exit_code(p), 0);
    CHECK_INT(len, n);
    CHECK_INT(trunc, 0);
    CHECK(len == n && memcmp(out, data, n) == 0);
    wf_proc_free(p);
  }
  free(data);
}

static void test_stdin_not_read(void) {
  /* the child closes its stdin and stays a while: our next write fails
   * with EPIPE, which must not raise SIGPIPE here */
  const char *argv[] = {"sh", "-c", "exec 0<&-; echo closed; sleep 1", NULL};
  size_t n = 4 * 1024 * 1024;
  char *data = calloc(1, n);
  wf_proc_opts_t o = {.argv = argv, .stdin_data = data, .stdin_len = n};
  waiter_t w;
  wf_proc_t *p = run(&o, &w);
  if (p) {
    CHECK_INT(wf_proc_exit_code(p), 0);
    CHECK_STR(wf_proc_stdout(p, NULL, NULL), "closed\n");
    wf_proc_free(p);
  }
  free(data);
}

static void test_output_cap(void) {
  const char *argv[] = {"sh", "-c",
                        "yes | head -c 100000000; yes e | head -c 5000 >&2",
                        NULL};
  wf_proc_opts_t o = {.argv = argv, .max_output = 1000};
  waiter_t w;
  size_t len;
  int trunc;
  wf_proc_t *p = run(&o, &w);
  if (!p) return;
  CHECK_INT(wf_proc_exit_code(p), 0);
  const char *out = wf_proc_stdout(p, &len, &trunc);
  CHECK_INT(len, 1000);
  CHECK_INT(trunc, 1);
  CHECK(strncmp(out, "y\ny\n", 4) == 0);
  CHECK_INT(strlen(out), 1000);
  wf_proc_stderr(p, &len, &trunc);
  CHECK_INT(len, 1000);
  CHECK_INT(trunc, 1);
  wf_proc_free(p);

  /* exactly at the cap is not truncated */
  const char *exact[] = {"head", "-c", "1000", "/dev/zero", NULL};
  o.argv = exact;
  p = run(&o, &w);
  if (!p) return;
  wf_proc_stdout(p, &len, &trunc);
  CHECK_INT(len, 1000);
  CHECK_INT(trunc, 0);
  wf_proc_free(p);
}

static void test_timeout_kills_group(void) {
  const char *argv[] = {"sh", "-c", "sleep 100 & echo $!; sleep 100", NULL};
  wf_proc_opts_t o = {.argv = argv, .timeout = 0.3};
  waiter_t w;
  wf_proc_t *p = run(&o, &w);
  if (!p) return;
  CHECK_INT(wf_proc_timed_out(p), 1);
  CHECK_INT(wf_proc_signal(p), SIGKILL);
  CHECK_INT(wf_proc_exit_code(p), -1);
  pid_t bg = (pid_t)atoi(wf_proc_stdout(p, NULL, NULL));
  CHECK(bg > 0);
  if (bg > 0) CHECK(pid_ended(bg));
  CHECK(pid_ended(wf_proc_pid(p)));
  wf_proc_free(p);
}

static void test_exit_kills_leftovers(void) {
  /* the main process exits at once; its background child must not keep
   * the call waiting for EOF, and must not survive */
  const char *argv[] = {"sh", "-c", "sleep 100 & echo $!", NULL};
  wf_proc_opts_t o = {.argv = argv};
  waiter_t w;
  wf_proc_t *p = run(&o, &w);
  if (!p) return;
  CHECK_INT(wf_proc_exit_code(p), 0);
  CHECK_INT(wf_proc_timed_out(p), 0);
  pid_t bg = (pid_t)atoi(wf_proc_stdout(p, NULL, NULL));
  CHECK(bg > 0);
  if (bg > 0) CHECK(pid_ended(bg));
  wf_proc_free(p);
}

/* The command of the daemon tests: a setsid daemon and a double-forked
 * setsid daemon, each writing its pid to dir/d1 and dir/d2 (renamed into
 * place, so a reader never sees half a pid), then `tail` (wait for both
 * pid files, then exit or sleep). */
static void daemon_script(char *buf, size_t n, const char *dir,
                          const char *tail) {
  snprintf(buf, n,
           "cd %s; setsid sh -c 'echo $$ > t1; mv t1 d1; exec sleep 300' "
           "</dev/null >/dev/null 2>&1 & "
           "(setsid sh -c 'echo $$ > t2; mv t2 d2; exec sleep 300' "
           "</dev/null >/dev/null 2>&1 &); "
           "while [ ! -e d1 ] || [ ! -e d2 ]; do sleep 0.01; done; %s",
           dir, tail);
}

/* The pid in file dir/name (0 when absent). */
static pid_t pid_in(const char *dir, const char *name) {
  char path[256];
  FILE *f;
  int pid = 0;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (!(f = fopen(path, "r"))) return 0;
  if (fscanf(f, "%d", &pid) != 1) pid = 0;
  fclose(f);
  return (pid_t)pid;
}

/* Both daemons of daemon_script in dir have ended (each killed here if it
 * survived, so that a failure leaves nothing behind). */
static void check_daemons_ended(const char *dir) {
  for (int i = 1; i <= 2; i++) {
    pid_t d = pid_in(dir, i == 1 ? "d1" : "d2");
    CHECK(d > 0);
    if (d <= 0) continue;
    int ended = pid_ended(d);
    CHECK(ended);
    if (!ended) kill(d, SIGKILL);
  }
}

static void test_daemons_die_with_the_command(void) {
  char dir[] = "/tmp/weft-proc-daemons-XXXXXX", script[1024];
  const char *argv[] = {"sh", "-c", script, NULL};
  wf_proc_opts_t o = {.argv = argv};
  waiter_t w;
  wf_err_t err;
  wf_proc_t *p;
  CHECK(mkdtemp(dir) != NULL);
  daemon_script(script, sizeof script, dir, "echo started");
  p = run(&o, &w);
  if (p) {
    CHECK_INT(wf_proc_exit_code(p), 0);
    CHECK_STR(wf_proc_stdout(p, NULL, NULL), "started\n");
    wf_proc_free(p);
  }
  check_daemons_ended(dir);
  CHECK_INT(wf_proc_rmtree(dir, &err), WF_OK);
}

static void test_daemons_die_on_kill_and_free(void) {
  char dir[] = "/tmp/weft-proc-daemons-XXXXXX", script[1024];
  const char *argv[] = {"sh", "-c", script, NULL};
  wf_proc_opts_t o = {.argv = argv};
  waiter_t w;
  wf_err_t err;
  CHECK(mkdtemp(dir) != NULL);
  /* "ready" on stdout wakes the loop once both daemons run */
  daemon_script(script, sizeof script, dir, "echo ready; exec sleep 300");
  for (int free_it = 0; free_it <= 1; free_it++) {
    char d[256];
    memset(&w, 0, sizeof w);
    wf_proc_t *p = wf_proc_spawn(L, &o, on_done, &w, &err);
    CHECK(p != NULL);
    if (!p) break;
    while (!strstr(wf_proc_stdout(p, NULL, NULL), "ready") && !w.notified)
      wf_loop_step(L);
    CHECK(!w.notified);
    if (free_it) {
      wf_proc_free(p); /* no notification */
    } else {
      wf_proc_kill(p);
      while (!w.notified) wf_loop_step(L);
      CHECK_INT(wf_proc_signal(p), SIGKILL);
      wf_proc_free(p);
    }
    check_daemons_ended(dir);
    for (int i = 1; i <= 2; i++) {
      snprintf(d, sizeof d, "%s/d%d", dir, i);
      unlink(d);
    }
  }
  CHECK_INT(wf_proc_rmtree(dir, &err), WF_OK);
}

static void test_supervisor_hides_weft(void) {
  /* the command's parent is the supervisor: no environment, memory or fd
   * of weft's to read there, whatever the uid */
  const char *argv[] = {"sh", "-c",
                        "ls /proc/$PPID/fd 2>/dev/null | wc -l; "
                        "cat /proc/$PPID/environ 2>/dev/null | wc -c", NULL};
  wf_proc_opts_t o = {.argv = argv, .drop_to_uid = 65534};
  waiter_t w;
  setenv("WEFT_TEST_SECRET", "sk-not-for-children", 1);
  wf_proc_t *p = run(&o, &w);
  unsetenv("WEFT_TEST_SECRET");
  if (!p) return;
  CHECK_STR(wf_proc_stdout(p, NULL, NULL), "0\n0\n");
  wf_proc_free(p);
}

static void test_kill_and_free(void) {
  const char *argv[] = {"sleep", "100", NULL};
  wf_proc_opts_t o = {.argv = argv};
  waiter_t w;
  wf_err_t err;
  memset(&w, 0, sizeof w);
  wf_proc_t *p = wf_proc_spawn(L, &o, on_done, &w, &err);
  CHECK(p != NULL);
  if (!p) return;
  CHECK(!wf_proc_done(p));
  wf_proc_kill(p);
  while (!w.notified) wf_loop_step(L);
  CHECK_INT(w.notified, 1);
  CHECK_INT(wf_proc_signal(p), SIGKILL);
  CHECK_INT(wf_proc_timed_out(p), 0);
  wf_proc_free(p);

  /* free while running: killed and reaped at once, no notification */
  memset(&w, 0, sizeof w);
  p = wf_proc_spawn(L, &o, on_done, &w, &err);
  CHECK(p != NULL);
  if (!p) return;
  pid_t pid = wf_proc_pid(p);
  wf_proc_free(p);
  errno = 0;
  CHECK_INT(waitpid(pid, NULL, WNOHANG), -1);
  CHECK_INT(errno, ECHILD);
  wf_loop_poll(L);
  CHECK_INT(w.notified, 0);
  wf_proc_free(NULL);
}

static void test_exec_failures(void) {
  const char *nf[] = {"no-such-cmd", "arg", NULL};
  const char *dir[] = {"/tmp", NULL};
  const char *stdin_data = "ignored";
  wf_proc_opts_t o = {.argv = nf, .stdin_data = stdin_data,
                      .stdin_len = strlen(stdin_data)};
  waiter_t w;
  wf_proc_t *p = run(&o, &w);
  if (!p) return;
  CHECK_INT(wf_proc_exit_code(p), 127);
  CHECK_STR(wf_proc_exec_error(p), "command not found: no-such-cmd");
  wf_proc_free(p);

  o.argv = dir;
  p = run(&o, &w);
  if (!p) return;
  CHECK_INT(wf_proc_exit_code(p), 126);
  CHECK_STR(wf_proc_exec_error(p), "cannot execute /tmp: Permission denied");
  wf_proc_free(p);

  char path[] = "/tmp/weft-proc-test-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd < 0) return;
  CHECK(write(fd, "#!/bin/sh\necho hi\n", 18) == 18);
  close(fd);
  const char *noexec[] = {path, NULL};
  o.argv = noexec;
  p = run(&o, &w);
  if (p) {
    CHECK_INT(wf_proc_exit_code(p), 126);
    CHECK(strstr(wf_proc_exec_error(p), "Permission denied") != NULL);
    wf_proc_free(p);
  }
  chmod(path, 0755);
  p = run(&o, &w);
  if (p) {
    CHECK_INT(wf_proc_exit_code(p), 0);
    CHECK_STR(wf_proc_stdout(p, NULL, NULL), "hi\n");
    CHECK(wf_proc_exec_error(p) == NULL);
    wf_proc_free(p);
  }
  unlink(path);
}

static void test_bad_arguments(void) {
  const char *empty[] = {NULL};
  const char *blank[] = {"", NULL};
  const char *argv[] = {"true", NULL};
  const char *nowrap[] = {NULL};
  wf_proc_opts_t o = {.argv = empty};
  wf_err_t err;
  CHECK(wf_proc_spawn(L, &o, on_done, NULL, &err) == NULL);
  CHECK(strstr(err.msg, "argv") != NULL);
  o.argv = blank;
  CHECK(wf_proc_spawn(L, &o, on_done, NULL, &err) == NULL);
  o.argv = NULL;
  CHECK(wf_proc_spawn(L, &o, on_done, NULL, &err) == NULL);
  o.argv = argv;
  o.wrap = nowrap;
  CHECK(wf_proc_spawn(L, &o, on_done, NULL, &err) == NULL);
  CHECK(strstr(err.msg, "wrap") != NULL);
  /* another libev loop cannot watch children */
  struct ev_loop *evl = ev_loop_new(0);
  wf_loop_t *other = wf_loop_new(evl);
  o.wrap = NULL;
  CHECK(wf_proc_spawn(other, &o, on_done, NULL, &err) == NULL);
  CHECK(strstr(err.msg, "default libev loop") != NULL);
  wf_loop_free(other);
  ev_loop_destroy(evl);
}

static void test_wrap(void) {
  const char *wrap[] = {"env", "WRAPPED=yes", NULL};
  const char *argv[] = {"printenv", "WRAPPED", NULL};
  const char *missing[] = {"no-such-cmd", NULL};
  wf_proc_opts_t o = {.argv = argv, .wrap = wrap};
  waiter_t w;
  wf_proc_t *p = run(&o, &w);
  if (!p) return;
  CHECK_INT(wf_proc_exit_code(p), 0);
  CHECK_STR(wf_proc_stdout(p, NULL, NULL), "yes\n");
  wf_proc_free(p);
  o.argv = missing;
  p = run(&o, &w);
  if (!p) return;
  CHECK_INT(wf_proc_exit_code(p), 127);
  CHECK_STR(wf_proc_exec_error(p), "command not found: no-such-cmd");
  wf_proc_free(p);

  /* a relative command is looked up from cwd, as it is when not wrapped */
  char dir[] = "/tmp/weft-proc-wrap-XXXXXX", prog[64];
  const char *rel[] = {"./prog", NULL};
  wf_err_t err;
  CHECK(mkdtemp(dir) != NULL);
  snprintf(prog, sizeof prog, "%s/prog", dir);
  FILE *f = fopen(prog, "w");
  CHECK(f != NULL);
  if (!f) return;
  fputs("#!/bin/sh\necho \"prog $0\"\n", f);
  fclose(f);
  chmod(prog, 0755);
  chmod(dir, 0755);
  o.argv = rel;
  o.cwd = dir;
  p = run(&o, &w);
  if (p) {
    char want[128];
    snprintf(want, sizeof want, "prog %s\n", prog);
    CHECK_INT(wf_proc_exit_code(p), 0);
    CHECK_STR(wf_proc_stdout(p, NULL, NULL), want);
    wf_proc_free(p);
  }
  CHECK_INT(wf_proc_rmtree(dir, &err), WF_OK);
}

static void test_uid_drop(void) {
  const char *argv[] = {"id", "-u", NULL};
  const char *gargv[] = {"id", "-G", NULL};
  wf_proc_opts_t o = {.argv = argv, .drop_to_uid = 65534, .drop_to_gid = 65534};
  waiter_t w;
  char want[32];
  wf_proc_t *p = run(&o, &w);
  if (!p) return;
  /* as root the child runs as nobody; otherwise the request is ignored */
  snprintf(want, sizeof want, "%d\n", geteuid() == 0 ? 65534 : (int)geteuid());
  CHECK_STR(wf_proc_stdout(p, NULL, NULL), want);
  wf_proc_free(p);
  if (geteuid() != 0) return;
  o.argv = gargv;
  p = run(&o, &w);
  if (!p) return;
  CHECK_STR(wf_proc_stdout(p, NULL, NULL), "65534\n"); /* no root groups */
  wf_proc_free(p);
}

static void test_rlimits(void) {
  const char *dd[] = {"dd", "if=/dev/zero", "of=/dev/null", "bs=200M",
                      "count=1", NULL};
  const char *spin[] = {"sh", "-c", "while :; do :; done", NULL};
  const char *lim[] = {"sh", "-c", "ulimit -c; ulimit -v", NULL};
  wf_proc_opts_t o = {.argv = dd, .memory_mb = 50};
  waiter_t w;
  wf_proc_t *p = run(&o, &w);
  if (!p) return;
  CHECK(wf_proc_exit_code(p) != 0);
  CHECK(strstr(wf_proc_stderr(p, NULL, NULL), "memory exhausted") != NULL);
  wf_proc_free(p);

  o.memory_mb = 1024;
  p = run(&o, &w);
  if (!p) return;
  CHECK_INT(wf_proc_exit_code(p), 0);
  wf_proc_free(p);

  o.argv = lim;
  o.memory_mb = 64;
  p = run(&o, &w);
  if (!p) return;
  CHECK_STR(wf_proc_stdout(p, NULL, NULL), "0\n65536\n");
  wf_proc_free(p);

  o.argv = spin;
  o.memory_mb = 0;
  o.cpu_s = 1;
  p = run(&o, &w);
  if (!p) return;
  CHECK_INT(wf_proc_signal(p), SIGXCPU);
  CHECK_INT(wf_proc_timed_out(p), 0);
  wf_proc_free(p);
}

static void test_max_procs(void) {
  /* a bounded fork bomb: forks sleepers until fork fails; as root the
   * child drops to nobody so that RLIMIT_NPROC is enforced */
  const char *argv[] = {"sh", "-c",
                        "i=0; while [ $i -lt 100 ]; do sleep 100 & "
                        "echo $!; i=$((i+1)); done; wait",
                        NULL};
  wf_proc_opts_t o = {.argv = argv, .max_procs = 10, .drop_to_uid = 65534,
                      .timeout = 60};
  waiter_t w;
  wf_proc_t *p = run(&o, &w);
  if (!p) return;
  CHECK_INT(wf_proc_timed_out(p), 0);
  CHECK(wf_proc_exit_code(p) != 0);
  CHECK(strstr(wf_proc_stderr(p, NULL, NULL), "fork") != NULL);
  int n = 0;
  const char *s = wf_proc_stdout(p, NULL, NULL);
  while (*s) {
    pid_t pid = (pid_t)strtol(s, (char **)&s, 10);
    if (pid > 0) {
      n++;
      CHECK(pid_ended(pid));
    }
    while (*s == '\n') s++;
  }
  CHECK(n < 10);
  wf_proc_free(p);
  /* reap what the group kill left to us (we are the subreaper) */
  wf_loop_poll(L);
}

static void test_fd_hygiene(void) {
  const char *ls[] = {"ls", "/proc/self/fd", NULL};
  const char *argv[] = {"sh", "-c", "cat; echo done >&2", NULL};
  const char *slow[] = {"sleep", "100", NULL};
  const char *nf[] = {"no-such-cmd", NULL};
  int before = fd_count(), extra = open("/dev/null", O_RDONLY);
  wf_proc_opts_t o = {.argv = ls};
  waiter_t w;
  wf_err_t err;
  /* an fd of ours without close-on-exec must not reach the child */
  wf_proc_t *p = run(&o, &w);
  if (p) {
    CHECK_STR(wf_proc_stdout(p, NULL, NULL), "0\n1\n2\n3\n");
    wf_proc_free(p);
  }
  close(extra);
  o.argv = argv;
  o.stdin_data = "abc";
  o.stdin_len = 3;
  p = run(&o, &w);
  if (p) wf_proc_free(p);
  o.argv = nf;
  p = run(&o, &w);
  if (p) wf_proc_free(p);
  o.argv = slow;
  o.timeout = 0.05;
  p = run(&o, &w);
  if (p) wf_proc_free(p);
  o.timeout = 0;
  p = wf_proc_spawn(L, &o, on_done, &w, &err);
  wf_proc_free(p);
  CHECK_INT(fd_count(), before);
}

static void test_concurrent(void) {
  /* each waits for the other's marker: both must run at once */
  char dir[] = "/tmp/weft-proc-conc-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  const char *a[] = {"sh", "-c",
                     "touch a; while [ ! -e b ]; do sleep 0.01; done; echo A",
                     NULL};
  const char *b[] = {"sh", "-c",
                     "touch b; while [ ! -e a ]; do sleep 0.01; done; echo B",
                     NULL};
  wf_proc_opts_t oa = {.argv = a, .cwd = dir, .timeout = 30};
  wf_proc_opts_t ob = {.argv = b, .cwd = dir, .timeout = 30};
  waiter_t wa, wb;
  wf_err_t err;
  memset(&wa, 0, sizeof wa);
  memset(&wb, 0, sizeof wb);
  wf_proc_t *pa = wf_proc_spawn(L, &oa, on_done, &wa, &err);
  wf_proc_t *pb = wf_proc_spawn(L, &ob, on_done, &wb, &err);
  CHECK(pa && pb);
  while (!wa.notified || !wb.notified) wf_loop_step(L);
  CHECK_STR(wf_proc_stdout(pa, NULL, NULL), "A\n");
  CHECK_STR(wf_proc_stdout(pb, NULL, NULL), "B\n");
  CHECK_INT(wf_proc_timed_out(pa) + wf_proc_timed_out(pb), 0);
  wf_proc_free(pa);
  wf_proc_free(pb);
  CHECK_INT(wf_proc_rmtree(dir, &err), WF_OK);
}

static void test_rmtree(void) {
  char dir[] = "/tmp/weft-proc-rm-XXXXXX", path[512], outside[] =
      "/tmp/weft-proc-keep-XXXXXX";
  wf_err_t err;
  struct stat st;
  int fd;
  CHECK(mkdtemp(dir) != NULL);
  fd = mkstemp(outside);
  CHECK(fd >= 0);
  close(fd);
  snprintf(path, sizeof path, "%s/a/b/c", dir);
  CHECK(mkdir(path, 0) < 0); /* parents first */
  snprintf(path, sizeof path, "%s/a", dir);
  CHECK_INT(mkdir(path, 0755), 0);
  snprintf(path, sizeof path, "%s/a/b", dir);
  CHECK_INT(mkdir(path, 0755), 0);
  for (int i = 0; i < 50; i++) {
    snprintf(path, sizeof path, "%s/a/b/f%d", dir, i);
    fd = open(path, O_CREAT | O_WRONLY, 0600);
    CHECK(fd >= 0);
    close(fd);
  }
  snprintf(path, sizeof path, "%s/a/link", dir);
  CHECK_INT(symlink(outside, path), 0);
  snprintf(path, sizeof path, "%s/a/dirlink", dir);
  CHECK_INT(symlink("/tmp", path), 0);
  snprintf(path, sizeof path, "%s/a/b", dir);
  CHECK_INT(chmod(path, 0), 0); /* locked: must still go */
  CHECK_INT(wf_proc_rmtree(dir, &err), WF_OK);
  CHECK(lstat(dir, &st) < 0 && errno == ENOENT);
  CHECK_INT(stat(outside, &st), 0); /* symlink targets are not followed */
  CHECK_INT(stat("/tmp", &st), 0);
  CHECK_INT(wf_proc_rmtree(dir, &err), WF_ERR);
  CHECK(strstr(err.msg, "No such file") != NULL);
  CHECK_INT(wf_proc_rmtree(outside, &err), WF_OK); /* a plain file */
  CHECK(stat(outside, &st) < 0);
}

int main(void) {
  L = wf_loop_new(NULL);
  RUN(test_echo);
  RUN(test_exit_codes_and_stderr);
  RUN(test_killed_by_signal);
  RUN(test_env_empty_by_default);
  RUN(test_path_of_env);
  RUN(test_cwd);
  RUN(test_stdin_round_trip);
  RUN(test_stdin_not_read);
  RUN(test_output_cap);
  RUN(test_timeout_kills_group);
  RUN(test_exit_kills_leftovers);
  RUN(test_kill_and_free);
  RUN(test_daemons_die_with_the_command);
  RUN(test_daemons_die_on_kill_and_free);
  RUN(test_supervisor_hides_weft);
  RUN(test_exec_failures);
  RUN(test_bad_arguments);
  RUN(test_wrap);
  RUN(test_uid_drop);
  RUN(test_rlimits);
  RUN(test_max_procs);
  RUN(test_fd_hygiene);
  RUN(test_concurrent);
  RUN(test_rmtree);
  wf_loop_free(L);
  return harness_end(__FILE__);
}
