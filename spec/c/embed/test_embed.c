/* test_embed.c — the C embedding API (weft.h) as a host uses it: load a
 * script, subscribe, start runs, step until done, read results; errors for
 * bad scripts and input; attaching to a host's own libev loop. Needs the
 * Lua tree: WEFT_SOURCE_DIR (compile definition). Depends on weft.h,
 * libev (for the attach test) and harness.h. */
#include <ev.h>
#include <unistd.h>

#include "harness.h"
#include "weft.h"

#ifndef WEFT_SOURCE_DIR
#error "WEFT_SOURCE_DIR must be defined"
#endif

typedef struct events {
  int n;
  char log[16384]; /* event JSON lines */
} events_t;

/* Subscriber: append each event to the log. */
static void on_event(void *ud, const char *json) {
  events_t *e = ud;
  size_t len = strlen(e->log);
  e->n++;
  snprintf(e->log + len, sizeof e->log - len, "%s\n", json);
}

/* A weft rooted at the source tree, on loop evl (NULL: default). */
static weft_t *new_weft(struct ev_loop *evl) {
  weft_opts_t o = {WEFT_SOURCE_DIR, evl};
  return weft_new(&o);
}

/* Write text to a fresh temp .lua file; path (size 64) gets its name. */
static void write_script(char *path, const char *text) {
  snprintf(path, 64, "/tmp/weft_embed_XXXXXX.lua");
  int fd = mkstemps(path, 4);
  CHECK(fd >= 0);
  if (fd < 0) return;
  CHECK_INT(write(fd, text, strlen(text)), (long long)strlen(text));
  close(fd);
}

/* Count occurrences of needle in hay. */
static int count(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
  return n;
}

static void test_two_runs(void) {
  char err[512], id1[64], id2[64];
  events_t ev = {0};
  weft_t *w = new_weft(NULL);
  CHECK(w != NULL);
  if (!w) return;
  CHECK_INT(weft_load(w, WEFT_SOURCE_DIR "/examples/hello.lua", err, sizeof err), 0);
  weft_subscribe(w, on_event, &ev);
  CHECK_INT(weft_start(w, "\"hi\"", id1, sizeof id1, err, sizeof err), 0);
  CHECK_INT(weft_start(w, "\"there\"", id2, sizeof id2, err, sizeof err), 0);
  CHECK(strcmp(id1, id2) != 0);
  CHECK(weft_result_json(w, id1) == NULL); /* not finished yet */
  int r, steps = 0;
  while ((r = weft_step(w, 1)) > 0) steps++;
  CHECK_INT(r, 0);
  const char *res = weft_result_json(w, id1);
  CHECK(res && strstr(res, "\"outputs\":[\"HI!\"]"));
  CHECK(res && strstr(res, "\"status\":\"completed\""));
  res = weft_result_json(w, id2);
  CHECK(res && strstr(res, "\"outputs\":[\"THERE!\"]"));
  CHECK(weft_result_json(w, "no-such-run") == NULL);
  /* each run: started, 2 invocations, output, completed */
  CHECK_INT(count(ev.log, "\"type\":\"workflow_started\""), 2);
  CHECK_INT(count(ev.log, "\"type\":\"executor_invoked\""), 4);
  CHECK_INT(count(ev.log, "\"type\":\"output\""), 2);
  CHECK_INT(count(ev.log, "\"type\":\"workflow_completed\""), 2);
  CHECK(strstr(ev.log, "\"data\":\"HI!\"") != NULL);
  CHECK(strstr(ev.log, id1) && strstr(ev.log, id2));
  /* unsubscribed: no more events */
  int before = ev.n;
  weft_subscribe(w, NULL, NULL);
  CHECK_INT(weft_start(w, "\"x\"", id1, sizeof id1, err, sizeof err), 0);
  CHECK_INT(weft_run(w), 0);
  CHECK_INT(ev.n, before);
  res = weft_result_json(w, id1);
  CHECK(res && strstr(res, "\"outputs\":[\"X!\"]"));
  weft_free(w);
}

static void test_errors(void) {
  char err[512], id[64], path[64];
  weft_t *w = new_weft(NULL);
  CHECK(w != NULL);
  if (!w) return;
  /* start before load */
  CHECK_INT(weft_start(w, NULL, id, sizeof id, err, sizeof err), -1);
  CHECK(strstr(err, "no workflow loaded") != NULL);
  /* runtime error in the script: file:line */
  write_script(path, "local weft = require 'weft'\nlocal x = nil\nreturn x.y\n");
  CHECK_INT(weft_load(w, path, err, sizeof err), -1);
  char want[96];
  snprintf(want, sizeof want, "%s:3:", path);
  CHECK(strstr(err, want) != NULL);
  CHECK_STR(weft_error(w), err);
  unlink(path);
  /* syntax error: file:line */
  write_script(path, "return {\n\n  = 1\n");
  CHECK_INT(weft_load(w, path, err, sizeof err), -1);
  snprintf(want, sizeof want, "%s:3:", path);
  CHECK(strstr(err, want) != NULL);
  unlink(path);
  /* not a workflow */
  write_script(path, "return 42\n");
  CHECK_INT(weft_load(w, path, err, sizeof err), -1);
  CHECK(strstr(err, "expected the script to return a workflow") && strstr(err, path));
  unlink(path);
  /* missing file */
  CHECK_INT(weft_load(w, "/nonexistent/x.lua", err, sizeof err), -1);
  CHECK(strstr(err, "/nonexistent/x.lua") != NULL);
  /* bad JSON input */
  CHECK_INT(weft_load(w, WEFT_SOURCE_DIR "/examples/hello.lua", err, sizeof err), 0);
  CHECK_INT(weft_start(w, "{bad", id, sizeof id, err, sizeof err), -1);
  CHECK(strstr(err, "input:") != NULL);
  /* a failing executor: the run fails, its error is in the result */
  write_script(path, "local weft = require 'weft'\n"
                     "local e = weft.executor('boom', function() error('kaboom') end)\n"
                     "return weft.workflow('f'):start(e)\n");
  CHECK_INT(weft_load(w, path, err, sizeof err), 0);
  CHECK_INT(weft_start(w, "1", id, sizeof id, err, sizeof err), 0);
  CHECK_INT(weft_run(w), 0);
  const char *res = weft_result_json(w, id);
  CHECK(res && strstr(res, "\"status\":\"failed\"") && strstr(res, "kaboom"));
  unlink(path);
  weft_free(w);
  weft_free(NULL);
}

static int host_ticks;

/* The host's own timer on the shared loop. */
static void host_timer_cb(struct ev_loop *evl, ev_timer *t, int revents) {
  (void)evl;
  (void)t;
  (void)revents;
  host_ticks++;
}

static void test_attach_loop(void) {
  char err[512], id[64], path[64];
  struct ev_loop *evl = ev_loop_new(EVFLAG_AUTO);
  CHECK(evl != NULL);
  if (!evl) return;
  weft_t *w = new_weft(evl);
  CHECK(w != NULL);
  if (!w) {
    ev_loop_destroy(evl);
    return;
  }
  CHECK(weft_loop(w) == evl);
  /* the executor sleeps far longer than the host timer's delay, so the
   * host timer fires (libev runs timers in due order) before the run ends */
  write_script(path, "local weft = require 'weft'\n"
                     "local e = weft.executor('nap', function(m, ctx)\n"
                     "  weft.sleep(0.05); ctx:yield_output(m * 2) end)\n"
                     "return weft.workflow('nap'):start(e):build()\n");
  CHECK_INT(weft_load(w, path, err, sizeof err), 0);
  ev_timer tm;
  ev_timer_init(&tm, host_timer_cb, 0.001, 0);
  ev_timer_start(evl, &tm);
  CHECK_INT(weft_start(w, "21", id, sizeof id, err, sizeof err), 0);
  CHECK_INT(weft_run(w), 0);
  CHECK_INT(host_ticks, 1);
  const char *res = weft_result_json(w, id);
  CHECK(res && strstr(res, "\"outputs\":[42]"));
  unlink(path);
  weft_free(w);
  ev_timer_stop(evl, &tm);
  ev_loop_destroy(evl);
}

int main(void) {
  RUN(test_two_runs);
  RUN(test_errors);
  RUN(test_attach_loop);
  return harness_end(__FILE__);
}
