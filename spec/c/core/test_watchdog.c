/* test_watchdog.c — unit tests of watchdog.c without Lua: a child process
 * whose loop is blocked (a busy loop) is SIGKILLed after writing one report
 * naming the executor set as current (or saying the loop did not turn); a
 * loop that keeps turning (busy callbacks, or idle for longer than the
 * limit) is never killed; the watchdog's watchers do not keep a loop alive;
 * stop joins the thread; the report's format and escaping. Blocking and
 * non-blocking cases run in forked children so that a kill shows as a
 * failed check. Depends on harness.h, watchdog.h, loop.h. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "watchdog.h"

static char dir[] = "/tmp/wf-watchdog-XXXXXX";

/* The report file of test name. */
static const char *report_path(const char *name) {
  static char p[256];
  snprintf(p, sizeof p, "%s/%s.json", dir, name);
  return p;
}

/* The whole file at path (static buffer; "" when absent). */
static const char *slurp(const char *path) {
  static char buf[4096];
  size_t n = 0;
  FILE *f = fopen(path, "r");
  if (f) {
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
  }
  buf[n] = '\0';
  return buf;
}

/* Fork a child that starts a watchdog (limit s) on a fresh loop, sets what
 * runs (run, exec; NULL: nothing), turns the loop once and spins forever.
 * An alarm ends it (SIGALRM) if the watchdog does not. The wait status. */

/* A loop on a libev loop of its own (freed with free_loop). */
static wf_loop_t *own_loop(void) { return wf_loop_new(ev_loop_new(0)); }

/* Free l and its libev loop. */
static void free_loop(wf_loop_t *l) {
  struct ev_loop *evl = wf_loop_ev(l);
  wf_loop_free(l);
  ev_loop_destroy(evl);
}

/* Fork a child that runs body(l, w, ud) on a fresh loop l with a
 * watchdog w (limit, report at path), then exits 0 (3: no watchdog; an
 * alarm ends a hung child). The wait status. */
static int with_watchdog(double limit, const char *path,
                         void (*body)(wf_loop_t *, wf_watchdog_t *, const void *),
                         const void *ud) {
  pid_t pid = fork();
  int st = 0;
  if (pid == 0) {
    wf_err_t err;
    wf_loop_t *l = own_loop();
    wf_watchdog_t *w = wf_watchdog_start(l, limit, path, &err);
    if (!w) _exit(3);
    alarm(30);
    body(l, w, ud);
    _exit(0);
  }
  while (waitpid(pid, &st, 0) < 0) {
  }
  return st;
}

/* The run and executor a blocked child says it runs. */
typedef struct current {
  const char *run, *exec;
} current_t;

/* with_watchdog body: say what runs, turn once, then spin forever. */
static void spin_body(wf_loop_t *l, wf_watchdog_t *w, const void *ud) {
  const current_t *c = ud;
  volatile unsigned long spin = 0;
  wf_watchdog_set_current(w, c->run, c->exec);
  wf_loop_poll(l);
  for (;;) spin++;
}

/* A child whose loop blocks (in executor exec of run, or none). */
static int blocked_child(double limit, const char *path, const char *run,
                         const char *exec) {
  current_t c = {run, exec};
  return with_watchdog(limit, path, spin_body, &c);
}

/* with_watchdog body: run the loop function ud, then stop the watchdog. */
static void turning_body(wf_loop_t *l, wf_watchdog_t *w, const void *ud) {
  void (*fn)(wf_loop_t *);
  memcpy(&fn, ud, sizeof fn);
  fn(l);
  wf_watchdog_stop(w);
}

/* A child whose loop keeps turning in fn(l). */
static int turning_child(double limit, const char *path,
                         void (*fn)(wf_loop_t *)) {
  return with_watchdog(limit, path, turning_body, &fn);
}

static void test_blocked_executor_is_reported_and_killed(void) {
  const char *path = report_path("blocked");
  int st = blocked_child(0.3, path, "run-7", "sp\"in\\ner");
  char want[128];
  const char *rep;
  CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  rep = slurp(path);
  CHECK(strstr(rep, "{\"pid\":") == rep);
  CHECK(strstr(rep,
               ",\"run_id\":\"run-7\",\"executor_id\":\"sp\\\"in\\\\ner\","
               "\"what\":\"executor 'sp\\\"in\\\\ner' of run run-7 did not "
               "yield for ") != NULL);
  CHECK(strstr(rep, " s\"}\n") != NULL);
  CHECK(strchr(rep, '\n') == rep + strlen(rep) - 1); /* one line */
  /* the seconds are at least the limit */
  const char *s = strstr(rep, "\"seconds\":");
  CHECK(s && strtod(s + 10, NULL) >= 0.3);
  snprintf(want, sizeof want, "{\"pid\":");
  CHECK(strncmp(rep, want, strlen(want)) == 0);
}

static void test_blocked_loop_without_executor(void) {
  const char *path = report_path("idle");
  int st = blocked_child(0.3, path, NULL, NULL);
  const char *rep;
  CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  rep = slurp(path);
  CHECK(strstr(rep, "\"what\":\"the event loop did not turn for ") != NULL);
  CHECK(strstr(rep, "run_id") == NULL);
  CHECK(strstr(rep, "executor_id") == NULL);
}

/* Repeating timer: spin 1/8 s of busy work per call, 12 calls. */
static void busy_cb(struct ev_loop *evl, ev_timer *t, int revents) {
  int *n = t->data;
  double t0 = wf_time_mono();
  (void)revents;
  while (wf_time_mono() - t0 < 0.125) {
  }
  if (++*n >= 12) ev_timer_stop(evl, t);
}

/* Run l until nothing is left, with one timer (cb, after, repeat) whose
 * callback counts into its data; exit 4 unless it counted want. */
static void timer_loop(wf_loop_t *l, void (*cb)(struct ev_loop *, ev_timer *, int),
                       ev_tstamp after, ev_tstamp repeat, int want) {
  int n = 0;
  ev_timer t;
  ev_timer_init(&t, cb, after, repeat);
  t.data = &n;
  ev_timer_start(wf_loop_ev(l), &t);
  while (wf_loop_step(l)) {
  }
  if (n != want) _exit(4);
}

/* A loop busy in short callbacks (1.5 s in all, limit 0.5 s). */
static void busy_loop(wf_loop_t *l) { timer_loop(l, busy_cb, 0, 0.001, 12); }

/* One-shot timer: count that it fired. */
static void once_cb(struct ev_loop *evl, ev_timer *t, int revents) {
  (void)evl;
  (void)revents;
  ++*(int *)t->data;
}

/* A loop idle in its poll for 1.5 s (limit 0.5 s). */
static void idle_loop(wf_loop_t *l) { timer_loop(l, once_cb, 1.5, 0, 1); }

static void test_turning_loops_are_not_killed(void) {
  const char *path = report_path("turning");
  int st = turning_child(0.5, path, busy_loop);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  st = turning_child(0.5, path, idle_loop);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  CHECK(access(path, F_OK) != 0); /* no report */
}

static void test_watchers_do_not_keep_the_loop_alive(void) {
  wf_err_t err;
  wf_loop_t *l = own_loop();
  wf_watchdog_t *w = wf_watchdog_start(l, 10, NULL, &err);
  CHECK(w != NULL);
  /* nothing else is active: a step has nothing to wait on */
  CHECK_INT(wf_loop_step(l), 0);
  wf_watchdog_stop(w);
  CHECK_INT(wf_loop_step(l), 0);
  free_loop(l);
}

static void test_stop_joins(void) {
  wf_err_t err;
  wf_loop_t *l = own_loop();
  /* at once, and after the thread has sampled a few times */
  wf_watchdog_stop(wf_watchdog_start(l, 60, NULL, &err));
  wf_watchdog_t *w = wf_watchdog_start(l, 0.2, NULL, &err);
  CHECK(w != NULL);
  for (int i = 0; i < 50; i++) wf_loop_poll(l);
  wf_watchdog_stop(w);
  wf_watchdog_stop(NULL);
  /* a bad limit */
  CHECK(wf_watchdog_start(l, 0, NULL, &err) == NULL);
  CHECK(strstr(err.msg, "limit") != NULL);
  free_loop(l);
}

static void test_report_format(void) {
  wf_err_t err;
  wf_loop_t *l = own_loop();
  wf_watchdog_t *w = wf_watchdog_start(l, 60, NULL, &err);
  char buf[512], want[512];
  size_t n = wf_watchdog_report(w, 61.26, buf, sizeof buf);
  snprintf(want, sizeof want,
           "{\"pid\":%d,\"seconds\":61.3,\"what\":\"the event loop did not "
           "turn for 61.3 s\"}",
           (int)getpid());
  CHECK_STR(buf, want);
  CHECK_INT(n, strlen(want));
  wf_watchdog_set_current(w, "r\n1", "a\"b");
  wf_watchdog_report(w, 2, buf, sizeof buf);
  snprintf(want, sizeof want,
           "{\"pid\":%d,\"seconds\":2.0,\"run_id\":\"r\\u000a1\","
           "\"executor_id\":\"a\\\"b\",\"what\":\"executor 'a\\\"b' of run "
           "r\\u000a1 did not yield for 2.0 s\"}",
           (int)getpid());
  CHECK_STR(buf, want);
  /* back to the loop: no executor */
  wf_watchdog_set_current(w, NULL, NULL);
  wf_watchdog_report(w, 0.04, buf, sizeof buf);
  CHECK(strstr(buf, "\"seconds\":0.0,\"what\":\"the event loop") != NULL);
  /* truncated to fit, NUL-terminated */
  n = wf_watchdog_report(w, 1, buf, 10);
  CHECK_INT(n, 9);
  CHECK_INT(strlen(buf), 9);
  wf_watchdog_stop(w);
  free_loop(l);
}

int main(void) {
  if (!mkdtemp(dir)) return 2;
  RUN(test_report_format);
  RUN(test_stop_joins);
  RUN(test_watchers_do_not_keep_the_loop_alive);
  RUN(test_blocked_executor_is_reported_and_killed);
  RUN(test_blocked_loop_without_executor);
  RUN(test_turning_loops_are_not_killed);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) return 2;
  return harness_end(__FILE__);
}
