/* test_store.c — the store.h contract, one suite run against each backend:
 * memory: and sqlite: always, redis:// when a redis-server binary exists
 * (this test starts its own server on a free port with persistence off,
 * and kills it at the end; it never uses a system Redis); the suite
 * includes the redaction of registered secrets and queues (push, take,
 * reclaim, touch, ack, info, in batches). Then the
 * backend-specific cases: sqlite reopen and its file errors (read-only
 * file and directory, garbage, wrong schema version, a foreign database),
 * sqlite file modes (0700 directories, 0600 files, warnings),
 * redis losing its server mid-way and getting it back, a server that stops
 * answering, databases, AUTH, urls. WEFT_STORE_BENCH=1 also prints the
 * median cost of a small commit (put + append of 200 bytes each) per
 * backend (WEFT_STORE_BENCH_SECRETS=N registers N secrets first: the cost
 * of the redaction hook; WEFT_STORE_BENCH_BYTES=B sets the value size);
 * WEFT_STORE_VERBOSE=1 prints the sqlite open errors.
 * Depends on store.h, loop.h, harness.h, hiredis (sync client, to check
 * readiness and flush the test server), sqlite3 (to make odd files),
 * proc.h (rmtree). */
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "harness.h"
#include "loop.h"
#include "proc.h"
#include "store.h"

static wf_loop_t *LP;
static int in_call; /* set while a store function runs: callbacks must not */
static char tmpdir[256];
static const char *URL; /* the backend under test */
static int redis_port;
static pid_t redis_pid;

/* ---- results ----------------------------------------------------------- */

typedef struct res {
  int done, status, found, conflict;
  char err[512];
  char *val;
  size_t len, n;
  char **keys, **vals;
  size_t *lens;
  long long *seqs;
  char **owners, **ids; /* queues: reclaim owners (n), commit ids (nids) */
  size_t nids;
  long long count, taken;
} res_t;

static void res_free(res_t *r) {
  free(r->val);
  for (size_t i = 0; i < r->n; i++) {
    if (r->keys) free(r->keys[i]);
    if (r->vals) free(r->vals[i]);
  }
  for (size_t i = 0; r->owners && i < r->n; i++) free(r->owners[i]);
  for (size_t i = 0; i < r->nids; i++) free(r->ids[i]);
  free(r->keys);
  free(r->vals);
  free(r->lens);
  free(r->seqs);
  free(r->owners);
  free(r->ids);
  memset(r, 0, sizeof *r);
}

static char *dupmem(const char *p, size_t n) {
  char *c = malloc(n + 1);
  if (n) memcpy(c, p, n);
  c[n] = 0;
  return c;
}

/* Completion callback: copy the result. */
static void res_cb(void *ud, const wf_store_result_t *r) {
  res_t *o = ud;
  CHECK(!in_call);
  CHECK(!o->done);
  o->done = 1;
  o->status = r->status;
  if (r->status != WF_OK) {
    snprintf(o->err, sizeof o->err, "%s", r->err ? r->err : "(null)");
    o->conflict = r->conflict;
    return;
  }
  o->found = r->found;
  o->len = r->len;
  o->count = r->count;
  o->taken = r->taken;
  o->nids = r->nids;
  if (r->nids) o->ids = calloc(r->nids, sizeof *o->ids);
  for (size_t i = 0; i < r->nids; i++)
    o->ids[i] = dupmem(r->ids[i], strlen(r->ids[i]));
  if (r->owners && r->n) o->owners = calloc(r->n, sizeof *o->owners);
  for (size_t i = 0; r->owners && i < r->n; i++)
    o->owners[i] = dupmem(r->owners[i], strlen(r->owners[i]));
  if (r->found) o->val = dupmem(r->value, r->len);
  o->n = r->n;
  if (r->n) {
    o->seqs = calloc(r->n, sizeof *o->seqs);
    o->lens = calloc(r->n, sizeof *o->lens);
    if (r->keys) o->keys = calloc(r->n, sizeof *o->keys);
    if (r->values) o->vals = calloc(r->n, sizeof *o->vals);
    for (size_t i = 0; i < r->n; i++) {
      if (r->seqs) o->seqs[i] = r->seqs[i];
      if (r->keys) o->keys[i] = dupmem(r->keys[i], strlen(r->keys[i]));
      if (r->values) {
        o->vals[i] = dupmem(r->values[i], r->lens[i]);
        o->lens[i] = r->lens[i];
      }
    }
  }
}

/* Run the loop until r completes (bounded: a hang fails the test). */
static void wait_res(res_t *r) {
  for (long i = 0; i < 2000000 && !r->done; i++) wf_loop_step(LP);
  CHECK(r->done);
}

static res_t do_get(wf_store_t *s, const char *ns, const char *key) {
  res_t r = {0};
  in_call = 1;
  wf_store_get(s, ns, key, res_cb, &r);
  in_call = 0;
  CHECK(!r.done);
  wait_res(&r);
  return r;
}

static res_t do_scan(wf_store_t *s, const char *ns, const char *p,
                     size_t limit) {
  res_t r = {0};
  in_call = 1;
  wf_store_scan(s, ns, p, limit, res_cb, &r);
  in_call = 0;
  wait_res(&r);
  return r;
}

static res_t do_range(wf_store_t *s, const char *ns, const char *key,
                      long long from, long long to) {
  res_t r = {0};
  in_call = 1;
  wf_store_range(s, ns, key, from, to, res_cb, &r);
  in_call = 0;
  wait_res(&r);
  return r;
}

static res_t do_commit(wf_store_batch_t *b) {
  res_t r = {0};
  in_call = 1;
  wf_store_commit(b, res_cb, &r);
  in_call = 0;
  CHECK(!r.done);
  wait_res(&r);
  return r;
}

/* Commit b, which must fail writing nothing: a conflict or not (conflict
 * 1 or 0), with the error err. Frees the result. */
static void commit_fails(wf_store_batch_t *b, int conflict, const char *err) {
  res_t r = do_commit(b);
  CHECK_INT(r.status, WF_ERR);
  CHECK_INT(r.conflict, conflict);
  CHECK_STR(r.err, err);
  res_free(&r);
}

static size_t do_size(wf_store_t *s, const char *ns) {
  res_t r = {0};
  wf_store_size(s, ns, res_cb, &r);
  wait_res(&r);
  CHECK_INT(r.status, WF_OK);
  size_t n = r.len;
  res_free(&r);
  return n;
}

/* Commit a single put; returns the status. */
static int put(wf_store_t *s, const char *ns, const char *key,
               const char *val) {
  wf_store_batch_t *b = wf_store_batch(s);
  wf_store_put(b, ns, key, val, strlen(val));
  res_t r = do_commit(b);
  int st = r.status;
  if (st != WF_OK) fprintf(stderr, "  put failed: %s\n", r.err);
  res_free(&r);
  return st;
}

/* Append one entry; returns its number (or -1). */
static long long append(wf_store_t *s, const char *ns, const char *key,
                        const char *val) {
  wf_store_batch_t *b = wf_store_batch(s);
  wf_store_append(b, ns, key, val, strlen(val));
  res_t r = do_commit(b);
  long long q = r.status == WF_OK && r.n == 1 ? r.seqs[0] : -1;
  if (r.status != WF_OK) fprintf(stderr, "  append failed: %s\n", r.err);
  res_free(&r);
  return q;
}

/* The value of (ns, key), "<absent>" or "<error: ...>" (static buffer). */
static const char *getv(wf_store_t *s, const char *ns, const char *key) {
  static char out[4096];
  res_t r = do_get(s, ns, key);
  if (r.status != WF_OK)
    snprintf(out, sizeof out, "<error: %s>", r.err);
  else if (!r.found)
    snprintf(out, sizeof out, "<absent>");
  else
    snprintf(out, sizeof out, "%s", r.val);
  res_free(&r);
  return out;
}

/* "k1=v1,k2=v2" of a scan (static buffer). */
static const char *scanv(wf_store_t *s, const char *ns, const char *p,
                         size_t limit) {
  static char out[8192];
  res_t r = do_scan(s, ns, p, limit);
  size_t o = 0;
  out[0] = 0;
  if (r.status != WF_OK) snprintf(out, sizeof out, "<error: %s>", r.err);
  for (size_t i = 0; i < r.n && o < sizeof out - 1; i++)
    o += (size_t)snprintf(out + o, sizeof out - o, "%s%s=%s", i ? "," : "",
                          r.keys[i], r.vals[i]);
  res_free(&r);
  return out;
}

/* "1:a,2:b" of a range (static buffer). */
static const char *rangev(wf_store_t *s, const char *ns, const char *key,
                          long long from, long long to) {
  static char out[8192];
  res_t r = do_range(s, ns, key, from, to);
  size_t o = 0;
  out[0] = 0;
  if (r.status != WF_OK) snprintf(out, sizeof out, "<error: %s>", r.err);
  for (size_t i = 0; i < r.n && o < sizeof out - 1; i++)
    o += (size_t)snprintf(out + o, sizeof out - o, "%s%lld:%s", i ? "," : "",
                          r.seqs[i], r.vals[i]);
  res_free(&r);
  return out;
}

/* ---- redis server (a child process of this test) ----------------------- */

static int have_redis(void) {
  return system("command -v redis-server >/dev/null 2>&1") == 0;
}

static int free_port(void) {
  struct sockaddr_in a;
  socklen_t al = sizeof a;
  int fd = socket(AF_INET, SOCK_STREAM, 0), port;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
    close(fd);
    return -1;
  }
  port = ntohs(a.sin_port);
  close(fd);
  return port;
}

/* A synchronous connection to the test server (NULL when not up). */
static redisContext *redis_sync(void) {
  struct timeval tv = {1, 0};
  redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
  if (c && c->err) {
    redisFree(c);
    return NULL;
  }
  return c;
}

/* Start redis-server on redis_port; wait until it answers PING. */
static int redis_start(void) {
  char port[16];
  snprintf(port, sizeof port, "%d", redis_port);
  redis_pid = fork();
  if (redis_pid == 0) {
    int fd = open("/dev/null", O_WRONLY);
    dup2(fd, 1);
    dup2(fd, 2);
    execlp("redis-server", "redis-server", "--port", port, "--bind",
           "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmpdir,
           (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 1000; i++) { /* readiness poll, bounded (10 s) */
    redisContext *c = redis_sync();
    if (c) {
      redisReply *r = redisCommand(c, "PING");
      int ok = r && r->type == REDIS_REPLY_STATUS;
      if (r) freeReplyObject(r);
      redisFree(c);
      if (ok) return 1;
    }
    int st;
    if (waitpid(redis_pid, &st, WNOHANG) == redis_pid) return 0;
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return 0;
}

static void redis_stop(void) {
  if (redis_pid <= 0) return;
  kill(redis_pid, SIGKILL);
  waitpid(redis_pid, NULL, 0);
  redis_pid = 0;
}

static void redis_flush(void) {
  redisContext *c = redis_sync();
  if (!c) return;
  redisReply *r = redisCommand(c, "FLUSHALL");
  if (r) freeReplyObject(r);
  redisFree(c);
}

/* ---- fixtures ----------------------------------------------------------- */

static int nfile;

/* A fresh store of the backend under test (sqlite: a new file). */
static wf_store_t *fresh(void) {
  char url[512];
  wf_err_t err;
  wf_store_t *s;
  if (strncmp(URL, "sqlite:", 7) == 0) {
    snprintf(url, sizeof url, "sqlite:%s/t%d.db", tmpdir, ++nfile);
  } else {
    if (strncmp(URL, "redis:", 6) == 0) redis_flush();
    snprintf(url, sizeof url, "%s", URL);
  }
  s = wf_store_open(LP, url, &err);
  if (!s) fprintf(stderr, "  open %s: %s\n", url, err.msg);
  CHECK(s != NULL);
  return s;
}

/* ---- the common suite --------------------------------------------------- */

static void t_put_get(void) {
  wf_store_t *s = fresh();
  if (!s) return;
  CHECK_STR(getv(s, "ns", "a"), "<absent>");
  CHECK_INT(put(s, "ns", "a", "1"), WF_OK);
  CHECK_STR(getv(s, "ns", "a"), "1");
  CHECK_INT(put(s, "ns", "a", "two"), WF_OK);
  CHECK_STR(getv(s, "ns", "a"), "two");
  CHECK_STR(getv(s, "other", "a"), "<absent>");
  CHECK_INT(put(s, "ns", "", "empty key"), WF_OK);
  CHECK_STR(getv(s, "ns", ""), "empty key");
  /* an empty value exists */
  CHECK_INT(put(s, "ns", "e", ""), WF_OK);
  res_t r = do_get(s, "ns", "e");
  CHECK_INT(r.found, 1);
  CHECK_INT(r.len, 0);
  res_free(&r);
  wf_store_batch_t *b = wf_store_batch(s);
  wf_store_del(b, "ns", "a");
  wf_store_del(b, "ns", "never");
  r = do_commit(b);
  CHECK_INT(r.status, WF_OK);
  res_free(&r);
  CHECK_STR(getv(s, "ns", "a"), "<absent>");
  CHECK_STR(getv(s, "ns", "e"), "");
  CHECK_STR(wf_store_kind(s), strncmp(URL, "redis", 5) == 0    ? "redis"
                              : strncmp(URL, "sqlite", 6) == 0 ? "sqlite"
                                                               : "memory");
  wf_store_close(s);
}

static void t_scan(void) {
  static const char *keys[] = {"a",  "a%",   "a%b", "a_", "a_b", "a*",
                               "a*x", "a[",  "a[]", "a]", "a?",  "a\\",
                               "ab", "b",    "a\xff", "a\xff\xff", "\xff",
                               "\xff\xff", "0", "A"};
  wf_store_t *s = fresh();
  if (!s) return;
  wf_store_batch_t *b = wf_store_batch(s);
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
    wf_store_put(b, "sc", keys[i], keys[i], strlen(keys[i]));
  wf_store_put(b, "sc2", "a", "other ns", 8);
  res_t r = do_commit(b);
  CHECK_INT(r.status, WF_OK);
  res_free(&r);
  /* byte order, shorter first */
  CHECK_STR(scanv(s, "sc", "a%", 0), "a%=a%,a%b=a%b");
  CHECK_STR(scanv(s, "sc", "a_", 0), "a_=a_,a_b=a_b");
  CHECK_STR(scanv(s, "sc", "a*", 0), "a*=a*,a*x=a*x");
  CHECK_STR(scanv(s, "sc", "a[", 0), "a[=a[,a[]=a[]");
  CHECK_STR(scanv(s, "sc", "a]", 0), "a]=a]");
  CHECK_STR(scanv(s, "sc", "a?", 0), "a?=a?");
  CHECK_STR(scanv(s, "sc", "a\\", 0), "a\\=a\\");
  CHECK_STR(scanv(s, "sc", "a\xff", 0),
            "a\xff=a\xff,a\xff\xff=a\xff\xff");
  CHECK_STR(scanv(s, "sc", "\xff", 0), "\xff=\xff,\xff\xff=\xff\xff");
  CHECK_STR(scanv(s, "sc", "c", 0), "");
  CHECK_STR(scanv(s, "sc", "a", 3), "a=a,a%=a%,a%b=a%b");
  CHECK_STR(scanv(s, "sc", "a", 0),
            "a=a,a%=a%,a%b=a%b,a*=a*,a*x=a*x,a?=a?,a[=a[,a[]=a[],"
            "a\\=a\\,a]=a],a_=a_,a_b=a_b,ab=ab,a\xff=a\xff,"
            "a\xff\xff=a\xff\xff");
  r = do_scan(s, "sc", "", 0);
  CHECK_INT(r.n, sizeof keys / sizeof *keys);
  for (size_t i = 1; i < r.n; i++) CHECK(strcmp(r.keys[i - 1], r.keys[i]) < 0);
  res_free(&r);
  CHECK_STR(scanv(s, "sc", "", 2), "0=0,A=A");
  CHECK_STR(scanv(s, "nothing", "", 0), "");
  wf_store_close(s);
}

static void t_logs(void) {
  wf_store_t *s = fresh();
  if (!s) return;
  CHECK_STR(rangev(s, "lg", "l", 0, 0), "");
  CHECK_INT(append(s, "lg", "l", "a"), 1);
  CHECK_INT(append(s, "lg", "l", "b"), 2);
  CHECK_INT(append(s, "lg", "l", "c"), 3);
  CHECK_INT(append(s, "lg", "m", "x"), 1);
  CHECK_STR(rangev(s, "lg", "l", 0, 0), "1:a,2:b,3:c");
  CHECK_STR(rangev(s, "lg", "l", 2, 0), "2:b,3:c");
  CHECK_STR(rangev(s, "lg", "l", 1, 2), "1:a,2:b");
  CHECK_STR(rangev(s, "lg", "l", 3, 9), "3:c");
  CHECK_STR(rangev(s, "lg", "l", 3, 2), "");
  CHECK_STR(rangev(s, "lg", "l", 4, 0), "");
  CHECK_STR(rangev(s, "lg", "l", -5, 1), "1:a");
  /* a record and a log share a key without touching each other */
  CHECK_INT(put(s, "lg", "l", "record"), WF_OK);
  CHECK_STR(rangev(s, "lg", "l", 0, 0), "1:a,2:b,3:c");
  /* several appends in one batch: consecutive numbers */
  wf_store_batch_t *b = wf_store_batch(s);
  wf_store_append(b, "lg", "l", "d", 1);
  wf_store_append(b, "lg", "m", "y", 1);
  wf_store_append(b, "lg", "l", "e", 1);
  res_t r = do_commit(b);
  CHECK_INT(r.status, WF_OK);
  CHECK_INT(r.n, 3);
  if (r.n == 3) {
    CHECK_INT(r.seqs[0], 4);
    CHECK_INT(r.seqs[1], 2);
    CHECK_INT(r.seqs[2], 5);
  }
  res_free(&r);
  /* trim keeps numbering */
  b = wf_store_batch(s);
  wf_store_trim(b, "lg", "l", 3);
  wf_store_trim(b, "lg", "nolog", 3);
  r = do_commit(b);
  CHECK_INT(r.status, WF_OK);
  res_free(&r);
  CHECK_STR(rangev(s, "lg", "l", 0, 0), "3:c,4:d,5:e");
  CHECK_STR(rangev(s, "lg", "l", 1, 3), "3:c");
  CHECK_STR(rangev(s, "lg", "nolog", 0, 0), "");
  CHECK_INT(append(s, "lg", "l", "f"), 6);
  /* trimming below the first entry does nothing */
  b = wf_store_batch(s);
  wf_store_trim(b, "lg", "l", 2);
  r = do_commit(b);
  res_free(&r);
  CHECK_STR(rangev(s, "lg", "l", 0, 0), "3:c,4:d,5:e,6:f");
  /* trimming everything: numbering continues */
  b = wf_store_batch(s);
  wf_store_trim(b, "lg", "l", 100);
  r = do_commit(b);
  res_free(&r);
  CHECK_STR(rangev(s, "lg", "l", 0, 0), "");
  CHECK_INT(append(s, "lg", "l", "g"), 7);
  CHECK_STR(rangev(s, "lg", "l", 0, 0), "7:g");
  /* append then trim in one batch, in order */
  b = wf_store_batch(s);
  wf_store_append(b, "lg", "l", "h", 1);
  wf_store_trim(b, "lg", "l", 8);
  wf_store_append(b, "lg", "l", "i", 1);
  r = do_commit(b);
  CHECK_INT(r.n, 2);
  if (r.n == 2) CHECK_INT(r.seqs[1], 9);
  res_free(&r);
  CHECK_STR(rangev(s, "lg", "l", 0, 0), "8:h,9:i");
  /* del removes the log (and the record): numbering restarts */
  b = wf_store_batch(s);
  wf_store_del(b, "lg", "l");
  r = do_commit(b);
  res_free(&r);
  CHECK_STR(rangev(s, "lg", "l", 0, 0), "");
  CHECK_STR(getv(s, "lg", "l"), "<absent>");
  CHECK_INT(append(s, "lg", "l", "new"), 1);
  CHECK_STR(rangev(s, "lg", "m", 0, 0), "1:x,2:y");
  wf_store_close(s);
}

/* A snapshot of everything the atomicity test touches. */
static char *snapshot(wf_store_t *s) {
  char *out = malloc(16384);
  size_t o = 0;
  o += (size_t)snprintf(out + o, 16384 - o, "%s|", scanv(s, "at", "", 0));
  o += (size_t)snprintf(out + o, 16384 - o, "%s|",
                        rangev(s, "at", "log", 0, 0));
  o += (size_t)snprintf(out + o, 16384 - o, "%s|",
                        rangev(s, "at", "log2", 0, 0));
  o += (size_t)snprintf(out + o, 16384 - o, "%s|", scanv(s, "at2", "", 0));
  snprintf(out + o, 16384 - o, "%s", rangev(s, "at2", "p/l", 0, 0));
  return out;
}

/* The batch of the atomicity test. */
static wf_store_batch_t *big_batch(wf_store_t *s) {
  wf_store_batch_t *b = wf_store_batch(s);
  wf_store_put(b, "at", "k1", "new1", 4);
  wf_store_put(b, "at", "k9", "new9", 4);
  wf_store_append(b, "at", "log", "L3", 2);
  wf_store_del(b, "at", "k2");
  wf_store_trim(b, "at", "log", 2);
  wf_store_append(b, "at", "log2", "M1", 2);
  wf_store_del_prefix(b, "at2", "p/");
  wf_store_put(b, "at2", "p/again", "x", 1);
  wf_store_append(b, "at2", "p/l", "again", 5);
  wf_store_del(b, "at", "log");
  wf_store_append(b, "at", "log", "fresh", 5);
  return b;
}

static void t_batch_atomic(void) {
  wf_store_t *s = fresh();
  if (!s) return;
  CHECK_INT(put(s, "at", "k1", "v1"), WF_OK);
  CHECK_INT(put(s, "at", "k2", "v2"), WF_OK);
  CHECK_INT(append(s, "at", "log", "L1"), 1);
  CHECK_INT(append(s, "at", "log", "L2"), 2);
  CHECK_INT(put(s, "at2", "p/1", "P1"), WF_OK);
  CHECK_INT(put(s, "at2", "q", "Q"), WF_OK);
  CHECK_INT(append(s, "at2", "p/l", "PL"), 1);
  char *before = snapshot(s);
  for (size_t after = 0; after <= 11; after++) {
    wf_store_inject_failure(s, after);
    res_t r = do_commit(big_batch(s));
    CHECK_INT(r.status, WF_ERR);
    CHECK_STR(r.err, "injected failure");
    res_free(&r);
    char *now = snapshot(s);
    CHECK_STR(now, before);
    free(now);
  }
  res_t r = do_commit(big_batch(s));
  CHECK_INT(r.status, WF_OK);
  CHECK_INT(r.n, 4);
  if (r.n == 4) {
    CHECK_INT(r.seqs[0], 3);
    CHECK_INT(r.seqs[1], 1);
    CHECK_INT(r.seqs[2], 1); /* p/l was deleted by del_prefix: restarts */
    CHECK_INT(r.seqs[3], 1); /* log was deleted by del */
  }
  res_free(&r);
  char *after = snapshot(s);
  CHECK_STR(after, "k1=new1,k9=new9|1:fresh|1:M1|p/again=x,q=Q|1:again");
  free(after);
  free(before);
  /* a batch with a bad ns fails as a whole */
  wf_store_batch_t *b = wf_store_batch(s);
  wf_store_put(b, "at", "k1", "changed", 7);
  wf_store_put(b, "bad ns!", "k", "v", 1);
  r = do_commit(b);
  CHECK_INT(r.status, WF_ERR);
  CHECK(strstr(r.err, "bad ns 'bad ns!'") != NULL);
  res_free(&r);
  CHECK_STR(getv(s, "at", "k1"), "new1");
  /* an empty batch commits */
  r = do_commit(wf_store_batch(s));
  CHECK_INT(r.status, WF_OK);
  CHECK_INT(r.n, 0);
  res_free(&r);
  /* discarding writes nothing */
  b = wf_store_batch(s);
  wf_store_put(b, "at", "k1", "discarded", 9);
  wf_store_discard(b);
  CHECK_STR(getv(s, "at", "k1"), "new1");
  wf_store_close(s);
}

/* Commit b, which must succeed giving its appends the numbers want
 * ("2,3"). */
static void commit_seqs(wf_store_batch_t *b, const char *want) {
  char got[256] = "";
  res_t r = do_commit(b);
  CHECK_INT(r.status, WF_OK);
  for (size_t i = 0; i < r.n; i++)
    snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld",
             i ? "," : "", r.seqs[i]);
  CHECK_STR(got, want);
  res_free(&r);
}

/* A batch that checked a log's position (expect_last) numbers its appends
 * to that log on from it: two appends, a log without entries (expected at
 * 0), appends to two logs in turn, a log deleted (del, del_prefix) or
 * trimmed after the check; the commits after go on from the right
 * number (the head was written). */
static void t_expect_appends(void) {
  wf_store_t *s = fresh();
  if (!s) return;
  CHECK_INT(append(s, "xa", "a", "A1"), 1);
  CHECK_INT(append(s, "xa", "b", "B1"), 1);
  CHECK_INT(append(s, "xa", "p/c", "C1"), 1);
  wf_store_batch_t *b = wf_store_batch(s);
  wf_store_expect_last(b, "xa", "a", 1);
  wf_store_append(b, "xa", "a", "A2", 2);
  wf_store_append(b, "xa", "a", "A3", 2);
  commit_seqs(b, "2,3");
  b = wf_store_batch(s);
  wf_store_expect_last(b, "xa", "new", 0);
  wf_store_append(b, "xa", "new", "N1", 2);
  wf_store_append(b, "xa", "new", "N2", 2);
  commit_seqs(b, "1,2");
  b = wf_store_batch(s);
  wf_store_expect_last(b, "xa", "a", 3);
  wf_store_append(b, "xa", "b", "B2", 2);
  wf_store_append(b, "xa", "a", "A4", 2);
  wf_store_append(b, "xa", "b", "B3", 2);
  commit_seqs(b, "2,4,3");
  CHECK_INT(append(s, "xa", "a", "A5"), 5);
  CHECK_INT(append(s, "xa", "new", "N3"), 3);
  CHECK_INT(append(s, "xa", "b", "B4"), 4);
  CHECK_STR(rangev(s, "xa", "a", 1, 0), "1:A1,2:A2,3:A3,4:A4,5:A5");
  CHECK_STR(rangev(s, "xa", "new", 1, 0), "1:N1,2:N2,3:N3");
  /* deleted after the check: the log starts again at 1 */
  b = wf_store_batch(s);
  wf_store_expect_last(b, "xa", "a", 5);
  wf_store_del(b, "xa", "a");
  wf_store_append(b, "xa", "a", "A1'", 3);
  commit_seqs(b, "1");
  b = wf_store_batch(s);
  wf_store_expect_last(b, "xa", "p/c", 1);
  wf_store_del_prefix(b, "xa", "p/");
  wf_store_append(b, "xa", "p/c", "C1'", 3);
  commit_seqs(b, "1");
  CHECK_INT(append(s, "xa", "a", "A2'"), 2);
  CHECK_INT(append(s, "xa", "p/c", "C2'"), 2);
  CHECK_STR(rangev(s, "xa", "a", 1, 0), "1:A1',2:A2'");
  /* trimmed after the check: the numbers go on */
  b = wf_store_batch(s);
  wf_store_expect_last(b, "xa", "a", 2);
  wf_store_trim(b, "xa", "a", 3);
  wf_store_append(b, "xa", "a", "A3'", 3);
  commit_seqs(b, "3");
  CHECK_STR(rangev(s, "xa", "a", 1, 0), "3:A3'");
  wf_store_close(s);
}

/* Conditional batches: expectations are checked before any write, and a
 * failed one writes nothing and says which record or log. */
static void t_expect(void) {
  wf_store_t *s = fresh();
  if (!s) return;
  CHECK_INT(put(s, "ex", "k", "v"), WF_OK);
  CHECK_INT(append(s, "ex", "log", "L1"), 1);
  CHECK_INT(append(s, "ex", "log", "L2"), 2);
  CHECK_INT(put(s, "ex", "pw/1", "P"), WF_OK);
  /* everything holds: the writes apply (del_prefix and trim included) */
  wf_store_batch_t *b = wf_store_batch(s);
  wf_store_expect(b, "ex", "k", "v", 1);
  wf_store_expect(b, "ex", "none", NULL, 0);
  wf_store_expect_last(b, "ex", "log", 2);
  wf_store_expect_last(b, "ex", "never", 0);
  wf_store_put(b, "ex", "k", "w", 1);
  wf_store_append(b, "ex", "log", "L3", 2);
  wf_store_del_prefix(b, "ex", "pw/");
  wf_store_trim(b, "ex", "log", 2);
  res_t r = do_commit(b);
  CHECK_INT(r.status, WF_OK);
  CHECK_INT(r.n, 1);
  if (r.n == 1) CHECK_INT(r.seqs[0], 3);
  res_free(&r);
  CHECK_STR(getv(s, "ex", "k"), "w");
  CHECK_STR(getv(s, "ex", "pw/1"), "<absent>");
  CHECK_STR(rangev(s, "ex", "log", 1, 0), "2:L2,3:L3");
  /* a record that changed: nothing is written */
  b = wf_store_batch(s);
  wf_store_put(b, "ex", "other", "x", 1);
  wf_store_expect(b, "ex", "k", "v", 1); /* after a write: still first */
  wf_store_append(b, "ex", "log", "L4", 2);
  commit_fails(b, 1, "conflict: record ex/k is a different value, expected "
                     "the value read before");
  CHECK_STR(getv(s, "ex", "other"), "<absent>");
  CHECK_STR(rangev(s, "ex", "log", 1, 0), "2:L2,3:L3");
  /* must be absent, but exists */
  b = wf_store_batch(s);
  wf_store_expect(b, "ex", "k", NULL, 0);
  wf_store_put(b, "ex", "k", "y", 1);
  commit_fails(b, 1, "conflict: record ex/k is present, expected none");
  /* must exist, but is absent */
  b = wf_store_batch(s);
  wf_store_expect(b, "ex", "gone", "v", 1);
  commit_fails(b, 1, "conflict: record ex/gone is absent, expected the value "
                     "read before");
  /* a log at another position (a stale writer) */
  b = wf_store_batch(s);
  wf_store_expect_last(b, "ex", "log", 2);
  wf_store_append(b, "ex", "log", "dup", 3);
  wf_store_put(b, "ex", "k", "z", 1);
  commit_fails(b, 1, "conflict: log ex/log has 3 entries, expected 2");
  CHECK_STR(getv(s, "ex", "k"), "w");
  CHECK_STR(rangev(s, "ex", "log", 1, 0), "2:L2,3:L3");
  /* an injected failure of a conditional batch writes nothing either */
  wf_store_inject_failure(s, 1);
  b = wf_store_batch(s);
  wf_store_expect_last(b, "ex", "log", 3);
  wf_store_put(b, "ex", "k", "z", 1);
  wf_store_append(b, "ex", "log", "L4", 2);
  commit_fails(b, 0, "injected failure");
  CHECK_STR(getv(s, "ex", "k"), "w");
  CHECK_STR(rangev(s, "ex", "log", 1, 0), "2:L2,3:L3");
  /* values compare as the bytes written (binary, redacted like a put) */
  b = wf_store_batch(s);
  wf_store_put(b, "ex", "bin", "a\0b", 3);
  r = do_commit(b);
  CHECK_INT(r.status, WF_OK);
  res_free(&r);
  b = wf_store_batch(s);
  wf_store_expect(b, "ex", "bin", "a", 1); /* a prefix is not the value */
  commit_fails(b, 1, "conflict: record ex/bin is a different value, expected "
                     "the value read before");
  b = wf_store_batch(s);
  wf_store_expect(b, "ex", "bin", "a\0b", 3);
  wf_store_put(b, "ex", "bin", "sk-expect-secret!", 17);
  r = do_commit(b);
  CHECK_INT(r.status, WF_OK);
  res_free(&r);
  wf_store_add_secret(s, "sk-expect-secret", 16);
  CHECK_INT(put(s, "ex", "sec", "sk-expect-secret!"), WF_OK);
  b = wf_store_batch(s);
  wf_store_expect(b, "ex", "sec", "sk-expect-secret!", 17);
  r = do_commit(b);
  CHECK_INT(r.status, WF_OK); /* the expected value is redacted too */
  res_free(&r);
  /* the store's clock: milliseconds since the epoch */
  r = (res_t){0};
  in_call = 1;
  wf_store_time(s, res_cb, &r);
  in_call = 0;
  CHECK(!r.done);
  wait_res(&r);
  CHECK_INT(r.status, WF_OK);
  CHECK_INT(r.n, 1);
  if (r.n == 1) {
    long long now = (long long)time(NULL) * 1000;
    CHECK(r.seqs[0] > now - 86400000LL && r.seqs[0] < now + 86400000LL);
  }
  res_free(&r);
  wf_store_close(s);
}

static void t_del_prefix(void) {
  wf_store_t *s = fresh();
  if (!s) return;
  const char *keys[] = {"run1/a", "run1/b", "run1", "run10/a", "run2/a",
                        "run1/\xff", "x"};
  wf_store_batch_t *b = wf_store_batch(s);
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
    wf_store_put(b, "dp", keys[i], "v", 1);
    wf_store_append(b, "dp", keys[i], "e", 1);
  }
  wf_store_put(b, "dp2", "run1/a", "other ns", 8);
  res_t r = do_commit(b);
  CHECK_INT(r.status, WF_OK);
  res_free(&r);
  b = wf_store_batch(s);
  wf_store_del_prefix(b, "dp", "run1/");
  r = do_commit(b);
  CHECK_INT(r.status, WF_OK);
  res_free(&r);
  CHECK_STR(scanv(s, "dp", "", 0), "run1=v,run10/a=v,run2/a=v,x=v");
  CHECK_STR(rangev(s, "dp", "run1/a", 0, 0), "");
  CHECK_STR(rangev(s, "dp", "run1/\xff", 0, 0), "");
  CHECK_STR(rangev(s, "dp", "run1", 0, 0), "1:e");
  CHECK_STR(rangev(s, "dp", "run10/a", 0, 0), "1:e");
  CHECK_STR(getv(s, "dp2", "run1/a"), "other ns");
  CHECK_INT(append(s, "dp", "run1/a", "again"), 1);
  /* all-0xff prefix: unbounded above */
  b = wf_store_batch(s);
  wf_store_put(b, "dp", "\xff", "v", 1);
  wf_store_put(b, "dp", "\xff\xff", "v", 1);
  wf_store_del_prefix(b, "dp", "\xff");
  r = do_commit(b);
  res_free(&r);
  CHECK_STR(scanv(s, "dp", "\xff", 0), "");
  /* empty prefix: everything of the ns */
  b = wf_store_batch(s);
  wf_store_del_prefix(b, "dp", "");
  r = do_commit(b);
  res_free(&r);
  CHECK_STR(scanv(s, "dp", "", 0), "");
  CHECK_STR(rangev(s, "dp", "x", 0, 0), "");
  CHECK_INT(do_size(s, "dp"), 0);
  CHECK_STR(getv(s, "dp2", "run1/a"), "other ns");
  wf_store_close(s);
}

static void t_size(void) {
  wf_store_t *s = fresh();
  if (!s) return;
  CHECK_INT(do_size(s, "sz"), 0);
  CHECK_INT(put(s, "sz", "ab", "12345"), WF_OK);      /* 7 */
  CHECK_INT(append(s, "sz", "log", "xyz"), 1);        /* 6 */
  CHECK_INT(append(s, "sz", "log", "0123456789"), 2); /* 13 */
  CHECK_INT(put(s, "other", "k", "vvvvvvv"), WF_OK);
  CHECK_INT(do_size(s, "sz"), 26);
  CHECK_INT(put(s, "sz", "ab", "1"), WF_OK);
  CHECK_INT(do_size(s, "sz"), 22);
  wf_store_batch_t *b = wf_store_batch(s);
  wf_store_trim(b, "sz", "log", 2);
  res_t r = do_commit(b);
  res_free(&r);
  CHECK_INT(do_size(s, "sz"), 16);
  wf_store_close(s);
}

static void t_binary(void) {
  wf_store_t *s = fresh();
  if (!s) return;
  char v[256];
  for (int i = 0; i < 256; i++) v[i] = (char)i;
  size_t big = 1 << 20;
  char *bigv = malloc(big);
  for (size_t i = 0; i < big; i++) bigv[i] = (char)(i * 7);
  wf_store_batch_t *b = wf_store_batch(s);
  wf_store_put(b, "bin", "k", v, sizeof v);
  wf_store_put(b, "bin", "nul", "\0\0", 2);
  wf_store_append(b, "bin", "l", v, sizeof v);
  wf_store_put(b, "bin", "big", bigv, big);
  res_t r = do_commit(b);
  CHECK_INT(r.status, WF_OK);
  res_free(&r);
  r = do_get(s, "bin", "k");
  CHECK_INT(r.len, 256);
  CHECK(r.val && memcmp(r.val, v, 256) == 0);
  res_free(&r);
  r = do_get(s, "bin", "nul");
  CHECK_INT(r.len, 2);
  CHECK(r.val && r.val[0] == 0 && r.val[1] == 0);
  res_free(&r);
  r = do_get(s, "bin", "big");
  CHECK_INT(r.len, big);
  CHECK(r.val && memcmp(r.val, bigv, big) == 0);
  res_free(&r);
  r = do_range(s, "bin", "l", 0, 0);
  CHECK_INT(r.n, 1);
  if (r.n == 1) {
    CHECK_INT(r.lens[0], 256);
    CHECK(memcmp(r.vals[0], v, 256) == 0);
  }
  res_free(&r);
  r = do_scan(s, "bin", "n", 0);
  CHECK_INT(r.n, 1);
  if (r.n == 1) CHECK_INT(r.lens[0], 2);
  res_free(&r);
  free(bigv);
  wf_store_close(s);
}

static void t_bad_names(void) {
  wf_store_t *s = fresh();
  if (!s) return;
  res_t r = do_get(s, "", "k");
  CHECK_INT(r.status, WF_ERR);
  CHECK(strstr(r.err, "get: bad ns ''") != NULL);
  res_free(&r);
  r = do_get(s, "a{b}", "k");
  CHECK_INT(r.status, WF_ERR);
  res_free(&r);
  r = do_scan(s, NULL, "", 0);
  CHECK_INT(r.status, WF_ERR);
  CHECK(strstr(r.err, "ns is NULL") != NULL);
  res_free(&r);
  r = do_range(s, "ok", NULL, 0, 0);
  CHECK_INT(r.status, WF_ERR);
  res_free(&r);
  char longns[200];
  memset(longns, 'n', sizeof longns - 1);
  longns[sizeof longns - 1] = 0;
  r = do_get(s, longns, "k");
  CHECK_INT(r.status, WF_ERR);
  res_free(&r);
  wf_store_close(s);
}

/* Callbacks run in the order the operations were issued. */
static int order_log[16], norder;
static void order_cb(void *ud, const wf_store_result_t *r) {
  CHECK(!in_call);
  CHECK_INT(r->status, WF_OK);
  order_log[norder++] = (int)(long)ud;
}

static void t_order(void) {
  wf_store_t *s = fresh();
  if (!s) return;
  norder = 0;
  in_call = 1;
  for (long i = 0; i < 8; i++) {
    if (i % 2) {
      wf_store_batch_t *b = wf_store_batch(s);
      wf_store_put(b, "o", "k", "v", 1);
      wf_store_commit(b, order_cb, (void *)i);
    } else {
      wf_store_get(s, "o", "k", order_cb, (void *)i);
    }
  }
  in_call = 0;
  CHECK_INT(norder, 0);
  for (int i = 0; i < 100000 && norder < 8; i++) wf_loop_step(LP);
  CHECK_INT(norder, 8);
  for (int i = 0; i < norder; i++) CHECK_INT(order_log[i], i);
  wf_store_close(s);
}

/* Closing delivers what is pending; a callback may close the store. */
static int closed_cbs;
static void close_cb(void *ud, const wf_store_result_t *r) {
  (void)r;
  closed_cbs++;
  if (ud) wf_store_close(ud);
}

static void t_close(void) {
  wf_store_t *s = fresh();
  if (!s) return;
  closed_cbs = 0;
  wf_store_get(s, "c", "k", close_cb, NULL);
  wf_store_batch_t *b = wf_store_batch(s);
  wf_store_put(b, "c", "k", "v", 1);
  wf_store_commit(b, close_cb, NULL);
  wf_store_close(s);
  CHECK_INT(closed_cbs, 2);
  s = fresh();
  if (!s) return;
  closed_cbs = 0;
  wf_store_get(s, "c", "k", close_cb, s); /* closes from its callback */
  wf_store_get(s, "c", "k", close_cb, NULL);
  for (int i = 0; i < 100000 && closed_cbs < 2; i++) wf_loop_step(LP);
  CHECK_INT(closed_cbs, 2);
  wf_store_close(NULL);
}

/* Registered secrets are redacted from every key and value written, and
 * keys read are rewritten the same way. */
static void t_secrets(void) {
  static const char sec[] = "SECRET-ab12cd34", lng[] = "SECRET-ab12cd34-long";
  wf_store_t *s = fresh();
  if (!s) return;
  /* nothing registered: values go through unchanged */
  CHECK_INT(wf_store_secret_count(s), 0);
  CHECK_INT(put(s, "sec", "before", "x SECRET-ab12cd34 y"), WF_OK);
  CHECK_STR(getv(s, "sec", "before"), "x SECRET-ab12cd34 y");
  wf_store_add_secret(s, "short12", 7); /* below WF_STORE_SECRET_MIN */
  wf_store_add_secret(s, NULL, 0);
  wf_store_add_secret(s, sec, strlen(sec));
  wf_store_add_secret(s, lng, strlen(lng));
  wf_store_add_secret(s, sec, strlen(sec)); /* once */
  CHECK_INT(wf_store_secret_count(s), 2);
  CHECK_INT(put(s, "sec", "a", "x SECRET-ab12cd34 y SECRET-ab12cd34-long z"),
            WF_OK);
  CHECK_STR(getv(s, "sec", "a"), "x [redacted] y [redacted] z");
  CHECK_INT(put(s, "sec", "whole", sec), WF_OK);
  CHECK_STR(getv(s, "sec", "whole"), "[redacted]");
  CHECK_INT(put(s, "sec", "ends", "SECRET-ab12cd34SECRET-ab12cd34"), WF_OK);
  CHECK_STR(getv(s, "sec", "ends"), "[redacted][redacted]");
  CHECK_INT(put(s, "sec", "near", "SECRET-ab12cd3 short12"), WF_OK);
  CHECK_STR(getv(s, "sec", "near"), "SECRET-ab12cd3 short12");
  CHECK_INT(put(s, "sec", "empty", ""), WF_OK);
  CHECK_STR(getv(s, "sec", "empty"), "");
  /* binary values */
  {
    static const char bin[] = "\0SECRET-ab12cd34\0";
    wf_store_batch_t *b = wf_store_batch(s);
    wf_store_put(b, "sec", "bin", bin, sizeof bin - 1);
    res_t r = do_commit(b);
    CHECK_INT(r.status, WF_OK);
    res_free(&r);
    r = do_get(s, "sec", "bin");
    CHECK_INT(r.len, 12);
    CHECK(r.val && memcmp(r.val, "\0[redacted]\0", 12) == 0);
    res_free(&r);
  }
  /* logs and keys, in one batch */
  {
    wf_store_batch_t *b = wf_store_batch(s);
    wf_store_append(b, "sec", "log", "Bearer SECRET-ab12cd34", 22);
    wf_store_put(b, "keys", "k-SECRET-ab12cd34", "v", 1);
    wf_store_append(b, "keys", "l-SECRET-ab12cd34", "e1", 2);
    res_t r = do_commit(b);
    CHECK_INT(r.status, WF_OK);
    res_free(&r);
  }
  CHECK_STR(rangev(s, "sec", "log", 0, 0), "1:Bearer [redacted]");
  CHECK_STR(scanv(s, "keys", "", 0), "k-[redacted]=v");
  CHECK_STR(getv(s, "keys", "k-SECRET-ab12cd34"), "v");
  CHECK_STR(getv(s, "keys", "k-[redacted]"), "v");
  CHECK_STR(rangev(s, "keys", "l-SECRET-ab12cd34", 0, 0), "1:e1");
  CHECK_STR(scanv(s, "keys", "k-SECRET-ab12cd34", 0), "k-[redacted]=v");
  {
    wf_store_batch_t *b = wf_store_batch(s);
    wf_store_del(b, "keys", "k-SECRET-ab12cd34");
    wf_store_trim(b, "keys", "l-SECRET-ab12cd34", 2);
    res_t r = do_commit(b);
    CHECK_INT(r.status, WF_OK);
    res_free(&r);
  }
  CHECK_STR(getv(s, "keys", "k-[redacted]"), "<absent>");
  CHECK_STR(rangev(s, "keys", "l-[redacted]", 0, 0), "");
  /* a large value: every occurrence, nothing else changed */
  {
    size_t n = 200000, o = 0;
    char *big = malloc(n + 1), *want = malloc(n + 1);
    size_t wo = 0;
    while (o + 40 < n) {
      memcpy(big + o, "....", 4), memcpy(want + wo, "....", 4);
      o += 4, wo += 4;
      memcpy(big + o, sec, strlen(sec)), o += strlen(sec);
      memcpy(want + wo, "[redacted]", 10), wo += 10;
    }
    big[o] = 0, want[wo] = 0;
    CHECK_INT(put(s, "sec", "big", big), WF_OK);
    res_t r = do_get(s, "sec", "big");
    CHECK_INT(r.len, wo);
    CHECK(r.val && strcmp(r.val, want) == 0);
    res_free(&r);
    free(big);
    free(want);
  }
  wf_store_close(s);
}

/* ---- queues ------------------------------------------------------------ */

/* A queue operation's result: take (kind 't'), reclaim ('r', min idle
 * 0), touch ('o', of ids), info ('i'). */
static res_t qop(wf_store_t *s, int kind, const char *q, const char *c,
                 size_t n, const char *const *ids, size_t nids) {
  res_t r = {0};
  in_call = 1;
  if (kind == 't') wf_store_queue_take(s, q, c, n, res_cb, &r);
  if (kind == 'r') wf_store_queue_reclaim(s, q, c, 0, n, res_cb, &r);
  if (kind == 'o') wf_store_queue_touch(s, q, c, ids, nids, res_cb, &r);
  if (kind == 'i') wf_store_queue_info(s, q, res_cb, &r);
  in_call = 0;
  CHECK(!r.done);
  wait_res(&r);
  return r;
}

/* The operation fails with an error containing want. */
static void qop_fails(wf_store_t *s, int kind, const char *q, const char *c,
                      size_t n, const char *const *ids, size_t nids,
                      const char *want) {
  res_t r = qop(s, kind, q, c, n, ids, nids);
  CHECK_INT(r.status, WF_ERR);
  if (!strstr(r.err, want)) fprintf(stderr, "  got: %s\n", r.err);
  CHECK(strstr(r.err, want) != NULL);
  res_free(&r);
}

static void t_queue(void) {
  wf_store_t *s = fresh();
  if (!s) return;
  char ids[3][64];
  /* pushes in a batch with a put and an append: ids and seqs */
  wf_store_batch_t *b = wf_store_batch(s);
  wf_store_queue_push(b, "jobs", "one", 3);
  wf_store_put(b, "qn", "k", "v", 1);
  wf_store_queue_push(b, "jobs", "t\0o", 3);
  wf_store_append(b, "qn", "log", "e", 1);
  wf_store_queue_push(b, "jobs", "three", 5);
  res_t r = do_commit(b);
  CHECK_INT(r.status, WF_OK);
  CHECK_INT(r.n, 1);
  CHECK_INT(r.nids, 3);
  for (size_t i = 0; i < 3 && i < r.nids; i++)
    snprintf(ids[i], sizeof ids[i], "%s", r.ids[i]);
  res_free(&r);
  CHECK(strcmp(ids[0], ids[1]) != 0 && strcmp(ids[1], ids[2]) != 0);
  /* take: oldest first, payloads as bytes */
  r = qop(s, 't', "jobs", "c1", 2, NULL, 0);
  CHECK_INT(r.status, WF_OK);
  CHECK_INT(r.n, 2);
  if (r.n == 2) {
    CHECK_STR(r.keys[0], ids[0]);
    CHECK_STR(r.keys[1], ids[1]);
    CHECK(r.lens[1] == 3 && memcmp(r.vals[1], "t\0o", 3) == 0);
    CHECK(r.owners == NULL);
  }
  res_free(&r);
  r = qop(s, 'i', "jobs", NULL, 0, NULL, 0);
  CHECK_INT(r.count, 1);
  CHECK_INT(r.taken, 2);
  CHECK_INT(r.n, 1);
  if (r.n == 1) {
    CHECK_STR(r.keys[0], "c1");
    CHECK_INT(r.seqs[0], 2);
  }
  res_free(&r);
  /* touch counts only the consumer's own items */
  const char *touch[] = {ids[0], ids[2], "999"};
  r = qop(s, 'o', "jobs", "c1", 0, touch, 3);
  CHECK_INT(r.status, WF_OK);
  CHECK_INT(r.count, 1);
  res_free(&r);
  /* reclaim (min idle 0): both taken items, their owner named */
  r = qop(s, 'r', "jobs", "c2", 10, NULL, 0);
  CHECK_INT(r.n, 2);
  if (r.n == 2 && r.owners) {
    CHECK_STR(r.keys[0], ids[0]);
    CHECK_STR(r.owners[0], "c1");
    CHECK_STR(r.owners[1], "c1");
  }
  CHECK(r.owners != NULL);
  res_free(&r);
  r = qop(s, 'o', "jobs", "c1", 0, touch, 3);
  CHECK_INT(r.count, 0);
  res_free(&r);
  /* ack: gone; an unknown id is no error; a failed batch acks nothing */
  b = wf_store_batch(s);
  wf_store_queue_ack(b, "jobs", ids[0]);
  wf_store_queue_ack(b, "jobs", "424242");
  r = do_commit(b);
  CHECK_INT(r.status, WF_OK);
  CHECK_INT(r.nids, 0);
  res_free(&r);
  b = wf_store_batch(s);
  wf_store_expect(b, "qn", "k", NULL, 0);
  wf_store_queue_ack(b, "jobs", ids[1]);
  wf_store_queue_push(b, "jobs", "no", 2);
  commit_fails(b, 1, "conflict: record qn/k is present, expected none");
  wf_store_inject_failure(s, 1);
  b = wf_store_batch(s);
  wf_store_queue_ack(b, "jobs", ids[1]);
  wf_store_queue_push(b, "jobs", "no", 2);
  commit_fails(b, 0, "injected failure");
  r = qop(s, 'i', "jobs", NULL, 0, NULL, 0);
  CHECK_INT(r.count, 1);
  CHECK_INT(r.taken, 1);
  res_free(&r);
  /* misuse */
  qop_fails(s, 't', "bad queue", "c", 1, NULL, 0, "queue_take: bad queue 'bad queue'");
  qop_fails(s, 't', "jobs", "", 1, NULL, 0, "consumer is empty");
  qop_fails(s, 'r', "jobs", NULL, 1, NULL, 0, "consumer is NULL");
  qop_fails(s, 't', "jobs", "c", 0, NULL, 0, "n must be >= 1");
  const char *bad[] = {"1-2-3"};
  qop_fails(s, 'o', "jobs", "c", 0, bad, 1, "queue_touch: bad id '1-2-3'");
  b = wf_store_batch(s);
  wf_store_queue_ack(b, "jobs", "x1");
  commit_fails(b, 0, "queue_ack: bad id 'x1' (digits, or digits-digits)");
  b = wf_store_batch(s);
  wf_store_queue_push(b, "", "p", 1);
  commit_fails(b, 0, "queue_push: bad queue '' (1..128 characters of A-Z a-z "
                     "0-9 _ . : / -)");
  wf_store_close(s);
}

static void run_suite(const char *url) {
  URL = url;
  printf("-- %s\n", url);
  RUN(t_put_get);
  RUN(t_scan);
  RUN(t_logs);
  RUN(t_batch_atomic);
  RUN(t_expect);
  RUN(t_expect_appends);
  RUN(t_del_prefix);
  RUN(t_size);
  RUN(t_binary);
  RUN(t_bad_names);
  RUN(t_order);
  RUN(t_close);
  RUN(t_secrets);
  RUN(t_queue);
}

/* ---- urls --------------------------------------------------------------- */

static void t_urls(void) {
  static const char *bad[] = {"", "mysql://x", "sqlite:", "redis://",
                              "redis://:6379", "redis://h:0",
                              "redis://h:99999", "redis://h:12x",
                              "redis://h/x", "redis://h?bogus=1",
                              "redis://h?timeout=-1", "memory:x",
                              "redis://[::1"};
  wf_err_t err;
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    err.msg[0] = 0;
    wf_store_t *s = wf_store_open(LP, bad[i], &err);
    CHECK(s == NULL);
    if (s) wf_store_close(s);
    CHECK(err.msg[0] != 0);
  }
  CHECK(wf_store_open(LP, NULL, &err) == NULL);
  wf_store_t *s = wf_store_open(LP, "mysql://x", &err);
  CHECK(s == NULL);
  CHECK(strstr(err.msg, "unknown store url 'mysql://x'") != NULL);
  /* the password never shows */
  s = wf_store_open(LP, "redis://:s3cret@127.0.0.1:1/2", &err);
  CHECK(s != NULL);
  if (s) {
    CHECK_STR(wf_store_url(s), "redis://:***@127.0.0.1:1/2");
    res_t r = do_get(s, "ns", "k");
    CHECK_INT(r.status, WF_ERR);
    CHECK(strstr(r.err, "s3cret") == NULL);
    CHECK(strstr(r.err, "redis 127.0.0.1:1: ") == r.err);
    res_free(&r);
    wf_store_close(s);
  }
  s = wf_store_open(LP, "redis://u:pw@[::1]:1", &err);
  CHECK(s != NULL);
  if (s) {
    CHECK_STR(wf_store_url(s), "redis://u:***@[::1]:1");
    wf_store_close(s);
  }
}

/* ---- sqlite ------------------------------------------------------------- */

static void write_file(const char *path, const char *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return;
  fwrite(data, 1, n, f);
  fclose(f);
}

static char *read_file(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  char *b;
  long len;
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  len = ftell(f);
  fseek(f, 0, SEEK_SET);
  b = malloc((size_t)len + 1);
  *n = fread(b, 1, (size_t)len, f);
  fclose(f);
  return b;
}

static void t_sqlite_reopen(void) {
  char url[512];
  wf_err_t err;
  snprintf(url, sizeof url, "sqlite:%s/new/dir/re.db", tmpdir);
  wf_store_t *s = wf_store_open(LP, url, &err);
  CHECK(s != NULL);
  if (!s) return;
  CHECK_INT(put(s, "r", "k", "kept"), WF_OK);
  CHECK_INT(append(s, "r", "l", "e1"), 1);
  wf_store_close(s);
  s = wf_store_open(LP, url, &err);
  CHECK(s != NULL);
  if (!s) return;
  CHECK_STR(getv(s, "r", "k"), "kept");
  CHECK_INT(append(s, "r", "l", "e2"), 2);
  /* two stores on one file (two processes would do the same) */
  wf_store_t *s2 = wf_store_open(LP, url, &err);
  CHECK(s2 != NULL);
  if (s2) {
    CHECK_STR(rangev(s2, "r", "l", 0, 0), "1:e1,2:e2");
    CHECK_INT(put(s2, "r", "k2", "from s2"), WF_OK);
    CHECK_STR(getv(s, "r", "k2"), "from s2");
    wf_store_close(s2);
  }
  wf_store_close(s);
}

/* The mode bits of path (-1 when it does not exist). */
static int mode_of(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

/* New directories 0700 and files (db, -wal, -shm) 0600 under umask u, no
 * warning. */
static void sqlite_modes_under(mode_t u) {
  char url[512], p[600];
  wf_err_t err;
  mode_t old = umask(u);
  snprintf(url, sizeof url, "sqlite:%s/m%03o/sub/x.db", tmpdir, (unsigned)u);
  wf_store_t *s = wf_store_open(LP, url, &err);
  umask(old);
  CHECK(s != NULL);
  if (!s) return;
  CHECK_INT(put(s, "m", "k", "v"), WF_OK);
  snprintf(p, sizeof p, "%s/m%03o", tmpdir, (unsigned)u);
  CHECK_INT(mode_of(p), 0700);
  snprintf(p, sizeof p, "%s/m%03o/sub", tmpdir, (unsigned)u);
  CHECK_INT(mode_of(p), 0700);
  snprintf(p, sizeof p, "%s/m%03o/sub/x.db", tmpdir, (unsigned)u);
  CHECK_INT(mode_of(p), 0600);
  snprintf(p, sizeof p, "%s/m%03o/sub/x.db-wal", tmpdir, (unsigned)u);
  CHECK_INT(mode_of(p), 0600);
  snprintf(p, sizeof p, "%s/m%03o/sub/x.db-shm", tmpdir, (unsigned)u);
  CHECK_INT(mode_of(p), 0600);
  CHECK(wf_store_warning(s) == NULL);
  wf_store_close(s);
}

/* sqlite files are private; existing looser ones are kept, with a
 * warning. */
static void t_sqlite_modes(void) {
  char url[512], dir[400], file[500];
  wf_err_t err;
  wf_store_t *s;
  sqlite_modes_under(022);
  sqlite_modes_under(077);
  /* an existing directory open to others: kept, warned about */
  snprintf(dir, sizeof dir, "%s/open", tmpdir);
  CHECK(mkdir(dir, 0755) == 0 && chmod(dir, 0755) == 0);
  snprintf(url, sizeof url, "sqlite:%s/o.db", dir);
  s = wf_store_open(LP, url, &err);
  CHECK(s != NULL);
  if (!s) return;
  CHECK_INT(mode_of(dir), 0755);
  snprintf(file, sizeof file, "%s/o.db", dir);
  CHECK_INT(mode_of(file), 0600);
  CHECK(wf_store_warning(s) != NULL &&
        strstr(wf_store_warning(s), "has mode 0755") != NULL &&
        strstr(wf_store_warning(s), dir) != NULL);
  wf_store_close(s);
  /* an existing file open to others: kept, warned about */
  CHECK(chmod(dir, 0700) == 0 && chmod(file, 0644) == 0);
  s = wf_store_open(LP, url, &err);
  CHECK(s != NULL);
  if (!s) return;
  CHECK_INT(mode_of(file), 0644);
  CHECK(wf_store_warning(s) != NULL &&
        strstr(wf_store_warning(s), "o.db has mode 0644") != NULL &&
        strstr(wf_store_warning(s), "directory") == NULL);
  wf_store_close(s);
}

/* Open must fail with a message containing path and want; the file must
 * be unchanged. */
static void open_fails(const char *path, const char *want) {
  char url[600];
  wf_err_t err;
  size_t n0 = 0, n1 = 0;
  char *b0 = read_file(path, &n0), *b1;
  snprintf(url, sizeof url, "sqlite:%s", path);
  err.msg[0] = 0;
  wf_store_t *s = wf_store_open(LP, url, &err);
  CHECK(s == NULL);
  if (s) wf_store_close(s);
  if (getenv("WEFT_STORE_VERBOSE")) printf("  open error: %s\n", err.msg);
  if (!strstr(err.msg, path) || !strstr(err.msg, want))
    fprintf(stderr, "  error was: %s\n  wanted: %s\n", err.msg, want);
  CHECK(strstr(err.msg, path) != NULL);
  CHECK(strstr(err.msg, want) != NULL);
  b1 = read_file(path, &n1);
  CHECK_INT(n1, n0);
  CHECK((!b0 && !b1) || (b0 && b1 && memcmp(b0, b1, n0) == 0));
  free(b0);
  free(b1);
}

/* Run sql on the database file at path (made if missing); 1 on success. */
static int sql_exec(const char *path, const char *sql) {
  sqlite3 *db = NULL;
  int ok = sqlite3_open(path, &db) == SQLITE_OK &&
           sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
  sqlite3_close(db);
  return ok;
}

/* The integer result of PRAGMA name on the database file at path (-1 on
 * failure); mode: the text result (journal_mode), copied. */
static long pragma_of(const char *path, const char *name, char *mode,
                      size_t n) {
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  char sql[64];
  long v = -1;
  snprintf(sql, sizeof sql, "PRAGMA %s", name);
  if (sqlite3_open(path, &db) == SQLITE_OK &&
      sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    v = (long)sqlite3_column_int64(st, 0);
    if (mode)
      snprintf(mode, n, "%s", (const char *)sqlite3_column_text(st, 0));
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

/* A new file gets 1 KiB pages in WAL mode (what a checkpoint writes to the
 * WAL per changed page); a store made with SQLite's default 4 KiB pages
 * keeps them and works as before. */
static void t_sqlite_pages(void) {
  char path[512], url[600], mode[16] = "";
  wf_err_t err;
  snprintf(path, sizeof path, "%s/pages-new.db", tmpdir);
  snprintf(url, sizeof url, "sqlite:%s", path);
  wf_store_t *s = wf_store_open(LP, url, &err);
  CHECK(s != NULL);
  if (!s) return;
  CHECK_INT(append(s, "pg", "l", "e1"), 1);
  wf_store_close(s);
  CHECK_INT(pragma_of(path, "page_size", NULL, 0), 1024);
  pragma_of(path, "journal_mode", mode, sizeof mode);
  CHECK_STR(mode, "wal");
  /* an older file with 4 KiB pages (weft's schema, SQLite's default) */
  snprintf(path, sizeof path, "%s/pages-old.db", tmpdir);
  snprintf(url, sizeof url, "sqlite:%s", path);
  CHECK(sql_exec(path,
                 "PRAGMA page_size=4096; PRAGMA journal_mode=WAL;"
                 "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT "
                 "NULL) WITHOUT ROWID;"
                 "INSERT INTO meta VALUES('schema_version', '1');"
                 "CREATE TABLE records(ns TEXT NOT NULL, key TEXT NOT NULL, "
                 "value BLOB NOT NULL, PRIMARY KEY(ns, key));"
                 "CREATE TABLE logs(ns TEXT NOT NULL, key TEXT NOT NULL, "
                 "seq INTEGER NOT NULL, value BLOB NOT NULL, "
                 "PRIMARY KEY(ns, key, seq));"
                 "CREATE TABLE log_heads(ns TEXT NOT NULL, key TEXT NOT "
                 "NULL, last INTEGER NOT NULL, PRIMARY KEY(ns, key)) "
                 "WITHOUT ROWID;"
                 "INSERT INTO logs VALUES('pg', 'l', 1, 'old');"
                 "INSERT INTO log_heads VALUES('pg', 'l', 1);"));
  s = wf_store_open(LP, url, &err);
  CHECK(s != NULL);
  if (!s) return;
  CHECK_INT(append(s, "pg", "l", "e2"), 2);
  CHECK_INT(put(s, "pg", "k", "v"), WF_OK);
  CHECK_STR(rangev(s, "pg", "l", 1, 0), "1:old,2:e2");
  wf_store_close(s);
  CHECK_INT(pragma_of(path, "page_size", NULL, 0), 4096);
}

/* The WAL is folded back into the database every 4000 pages, not at
 * SQLite's default 1000: 600 small commits (3-5 pages each) grow the -wal
 * file past 1000 pages of 1 KiB (with 1000, it is reused from its start
 * and stays at about 1000 pages); closing folds it back and removes it. */
static void t_sqlite_wal_size(void) {
  char path[512], wal[520], url[600];
  wf_err_t err;
  struct stat st;
  snprintf(path, sizeof path, "%s/walsize.db", tmpdir);
  snprintf(wal, sizeof wal, "%s-wal", path);
  snprintf(url, sizeof url, "sqlite:%s", path);
  wf_store_t *s = wf_store_open(LP, url, &err);
  CHECK(s != NULL);
  if (!s) return;
  char val[200];
  memset(val, 'v', sizeof val);
  for (int i = 0; i < 600; i++) {
    wf_store_batch_t *b = wf_store_batch(s);
    wf_store_put(b, "ws", "rec", val, sizeof val);
    wf_store_append(b, "ws", "log", val, sizeof val);
    res_t r = do_commit(b);
    CHECK_INT(r.status, WF_OK);
    res_free(&r);
  }
  CHECK_INT(stat(wal, &st), 0);
  if (st.st_size <= 1100L * (1024 + 24))
    fprintf(stderr, "  -wal has %ld bytes\n", (long)st.st_size);
  CHECK(st.st_size > 1100L * (1024 + 24));
  CHECK(st.st_size < 4100L * (1024 + 24));
  wf_store_close(s);
  CHECK(stat(wal, &st) != 0);
  CHECK_INT(pragma_of(path, "page_size", NULL, 0), 1024);
}

static void t_sqlite_bad_files(void) {
  char path[512];
  size_t n;
  /* not a database */
  snprintf(path, sizeof path, "%s/garbage.db", tmpdir);
  char junk[8192];
  for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)(i * 31 + 7);
  write_file(path, junk, sizeof junk);
  open_fails(path, "file is not a database");
  /* another schema version */
  snprintf(path, sizeof path, "%s/v7.db", tmpdir);
  CHECK(sql_exec(path, "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT "
                       "NOT NULL); INSERT INTO meta VALUES('schema_version',"
                       "'7');"));
  open_fails(path, "schema version 7, this weft uses version 1");
  /* somebody else's database */
  snprintf(path, sizeof path, "%s/foreign.db", tmpdir);
  CHECK(sql_exec(path, "CREATE TABLE users(id INTEGER PRIMARY KEY);"));
  open_fails(path, "not a weft store");
  /* a corrupt store: its first page damaged after the header */
  char url[600];
  wf_err_t err;
  snprintf(path, sizeof path, "%s/corrupt.db", tmpdir);
  snprintf(url, sizeof url, "sqlite:%s", path);
  wf_store_t *s = wf_store_open(LP, url, &err);
  CHECK(s != NULL);
  if (s) {
    CHECK_INT(put(s, "c", "k", "v"), WF_OK);
    wf_store_close(s);
  }
  char *b = read_file(path, &n);
  if (b && n > 200) {
    memset(b + 100, 0xA5, 100);
    write_file(path, b, n);
    err.msg[0] = 0;
    s = wf_store_open(LP, url, &err);
    if (s) { /* damage noticed on first use */
      res_t r = do_get(s, "c", "k");
      CHECK_INT(r.status, WF_ERR);
      CHECK(strstr(r.err, path) != NULL);
      res_free(&r);
      wf_store_close(s);
    } else {
      CHECK(strstr(err.msg, path) != NULL);
    }
  }
  free(b);
}

/* The read-only cases (run as an unprivileged user: root ignores modes). */
static void readonly_checks(void) {
  char path[512], dir[512], url[600];
  wf_err_t err;
  snprintf(path, sizeof path, "%s/ro/ro.db", tmpdir);
  open_fails(path, "read-only");
  snprintf(dir, sizeof dir, "%s/rodir", tmpdir);
  snprintf(path, sizeof path, "%s/rodir/new.db", tmpdir);
  snprintf(url, sizeof url, "sqlite:%s", path);
  wf_store_t *s = wf_store_open(LP, url, &err);
  CHECK(s == NULL);
  if (s) wf_store_close(s);
  if (getenv("WEFT_STORE_VERBOSE")) printf("  open error: %s\n", err.msg);
  CHECK(strstr(err.msg, path) != NULL);
  CHECK(strstr(err.msg, "write access") != NULL);
  snprintf(path, sizeof path, "%s/rodir/old.db", tmpdir);
  open_fails(path, "write access");
}

static void t_sqlite_readonly(void) {
  char path[600], dir[512], url[700];
  wf_err_t err;
  /* a store file made read-only, in a writable directory */
  snprintf(dir, sizeof dir, "%s/ro", tmpdir);
  mkdir(dir, 0777);
  chmod(dir, 0777);
  snprintf(path, sizeof path, "%s/ro.db", dir);
  snprintf(url, sizeof url, "sqlite:%s", path);
  wf_store_t *s = wf_store_open(LP, url, &err);
  CHECK(s != NULL);
  if (s) {
    CHECK_INT(put(s, "ro", "k", "v"), WF_OK);
    wf_store_close(s);
  }
  chmod(path, 0444);
  /* a read-only directory holding a store */
  snprintf(dir, sizeof dir, "%s/rodir", tmpdir);
  mkdir(dir, 0777);
  snprintf(path, sizeof path, "%s/old.db", dir);
  snprintf(url, sizeof url, "sqlite:%s", path);
  s = wf_store_open(LP, url, &err);
  CHECK(s != NULL);
  if (s) {
    CHECK_INT(put(s, "ro", "k", "v"), WF_OK);
    wf_store_close(s);
  }
  chmod(path, 0666);
  chmod(dir, 0555);
  chmod(tmpdir, 0755);
  if (geteuid() != 0) {
    readonly_checks();
    return;
  }
  /* root: run the checks in a child that drops to nobody */
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(99);
    LP = wf_loop_new(ev_loop_new(0));
    h_failed = 0;
    readonly_checks();
    fflush(NULL);
    _exit(h_failed ? 1 : 0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  CHECK(WIFEXITED(st));
  CHECK_INT(WEXITSTATUS(st), 0);
  chmod(dir, 0777);
}

/* ---- redis -------------------------------------------------------------- */

static void step_until_ok(wf_store_t *s, int *ok) {
  /* reconnection happens in the background: poll with a ticking timer */
  *ok = 0;
  for (int i = 0; i < 1000 && !*ok; i++) {
    res_t r = do_get(s, "rr", "k");
    *ok = r.status == WF_OK;
    res_free(&r);
    if (!*ok) {
      struct timespec ts = {0, 10 * 1000 * 1000};
      nanosleep(&ts, NULL);
      wf_loop_poll(LP);
    }
  }
}

static void t_redis_restart(void) {
  char url[128];
  wf_err_t err;
  snprintf(url, sizeof url, "redis://127.0.0.1:%d/0?timeout=2", redis_port);
  redis_flush();
  wf_store_t *s = wf_store_open(LP, url, &err);
  CHECK(s != NULL);
  if (!s) return;
  CHECK_INT(put(s, "rr", "k", "before"), WF_OK);
  /* an operation in flight when the server dies fails */
  res_t r = {0};
  wf_store_get(s, "rr", "k", res_cb, &r);
  redis_stop();
  wait_res(&r);
  CHECK_INT(r.status, WF_ERR);
  char want[64];
  snprintf(want, sizeof want, "redis 127.0.0.1:%d: ", redis_port);
  CHECK(strstr(r.err, want) == r.err);
  res_free(&r);
  /* while it is down, operations fail at once with the reason */
  for (int i = 0; i < 3; i++) {
    r = do_get(s, "rr", "k");
    CHECK_INT(r.status, WF_ERR);
    CHECK(strstr(r.err, want) == r.err);
    res_free(&r);
    wf_store_batch_t *b = wf_store_batch(s);
    wf_store_put(b, "rr", "k", "lost", 4);
    r = do_commit(b);
    CHECK_INT(r.status, WF_ERR);
    res_free(&r);
  }
  /* back on the same port: operations succeed again */
  CHECK(redis_start());
  int ok;
  step_until_ok(s, &ok);
  CHECK(ok);
  CHECK_STR(getv(s, "rr", "k"), "<absent>"); /* no persistence */
  CHECK_INT(put(s, "rr", "k", "after"), WF_OK);
  CHECK_STR(getv(s, "rr", "k"), "after");
  wf_store_close(s);
}

static void t_redis_silent(void) {
  char url[128];
  wf_err_t err;
  snprintf(url, sizeof url, "redis://127.0.0.1:%d?timeout=0.2", redis_port);
  wf_store_t *s = wf_store_open(LP, url, &err);
  CHECK(s != NULL);
  if (!s) return;
  CHECK_INT(put(s, "rs", "k", "v"), WF_OK);
  kill(redis_pid, SIGSTOP);
  res_t r = do_get(s, "rs", "k");
  kill(redis_pid, SIGCONT);
  CHECK_INT(r.status, WF_ERR);
  CHECK(strstr(r.err, "timeout") != NULL);
  res_free(&r);
  int ok;
  step_until_ok(s, &ok);
  CHECK(ok);
  CHECK_STR(getv(s, "rs", "k"), "v");
  wf_store_close(s);
}

static void t_redis_db(void) {
  char u1[128], u2[128];
  wf_err_t err;
  redis_flush();
  snprintf(u1, sizeof u1, "redis://127.0.0.1:%d/1", redis_port);
  snprintf(u2, sizeof u2, "redis://127.0.0.1:%d/2", redis_port);
  wf_store_t *a = wf_store_open(LP, u1, &err), *b = wf_store_open(LP, u2, &err);
  CHECK(a && b);
  if (a && b) {
    CHECK_INT(put(a, "db", "k", "one"), WF_OK);
    CHECK_STR(getv(b, "db", "k"), "<absent>");
    CHECK_STR(getv(a, "db", "k"), "one");
  }
  wf_store_close(a);
  wf_store_close(b);
  /* a database the server does not have: the handshake error */
  snprintf(u1, sizeof u1, "redis://127.0.0.1:%d/99999", redis_port);
  a = wf_store_open(LP, u1, &err);
  CHECK(a != NULL);
  if (a) {
    res_t r = do_get(a, "db", "k");
    CHECK_INT(r.status, WF_ERR);
    CHECK(strstr(r.err, "out of range") != NULL);
    res_free(&r);
    wf_store_close(a);
  }
  /* nothing listening */
  snprintf(u1, sizeof u1, "redis://127.0.0.1:%d", free_port());
  a = wf_store_open(LP, u1, &err);
  CHECK(a != NULL);
  if (a) {
    res_t r = do_get(a, "db", "k");
    CHECK_INT(r.status, WF_ERR);
    CHECK(strstr(r.err, "connection refused") != NULL);
    res_free(&r);
    wf_store_close(a);
  }
}

/* Run one command on the test server through a sync connection. */
static void redis_cmd(const char *auth, const char *cmd, const char *arg) {
  redisContext *c = redis_sync();
  if (!c) return;
  if (auth) {
    redisReply *r = redisCommand(c, "AUTH %s", auth);
    if (r) freeReplyObject(r);
  }
  redisReply *r = redisCommand(c, cmd, arg);
  if (r) freeReplyObject(r);
  redisFree(c);
}

static void t_redis_auth(void) {
  char url[128];
  wf_err_t err;
  redis_cmd(NULL, "CONFIG SET requirepass %s", "pw0rd");
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", redis_port);
  wf_store_t *s = wf_store_open(LP, url, &err);
  CHECK(s != NULL);
  if (s) {
    res_t r = do_get(s, "au", "k");
    CHECK_INT(r.status, WF_ERR);
    if (!strstr(r.err, "NOAUTH")) fprintf(stderr, "  got: %s\n", r.err);
    CHECK(strstr(r.err, "NOAUTH") != NULL);
    res_free(&r);
    wf_store_close(s);
  }
  snprintf(url, sizeof url, "redis://:wrong@127.0.0.1:%d", redis_port);
  s = wf_store_open(LP, url, &err);
  CHECK(s != NULL);
  if (s) {
    res_t r = do_get(s, "au", "k");
    CHECK_INT(r.status, WF_ERR);
    CHECK(strstr(r.err, "wrong") == NULL); /* the password is not shown */
    CHECK(strstr(r.err, "redis 127.0.0.1:") == r.err);
    res_free(&r);
    wf_store_close(s);
  }
  snprintf(url, sizeof url, "redis://:pw0rd@127.0.0.1:%d/1", redis_port);
  s = wf_store_open(LP, url, &err);
  CHECK(s != NULL);
  if (s) {
    CHECK_INT(put(s, "au", "k", "with auth"), WF_OK);
    CHECK_STR(getv(s, "au", "k"), "with auth");
    wf_store_close(s);
  }
  snprintf(url, sizeof url, "redis://default:pw0rd@127.0.0.1:%d/1", redis_port);
  s = wf_store_open(LP, url, &err);
  CHECK(s != NULL);
  if (s) {
    CHECK_STR(getv(s, "au", "k"), "with auth");
    wf_store_close(s);
  }
  redis_cmd("pw0rd", "CONFIG SET requirepass %s", "");
}

/* Closing with replies still awaited fails them: "store closed". */
static void t_redis_close_inflight(void) {
  char url[128];
  wf_err_t err;
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", redis_port);
  wf_store_t *s = wf_store_open(LP, url, &err);
  CHECK(s != NULL);
  if (!s) return;
  CHECK_INT(put(s, "ci", "k", "v"), WF_OK);
  res_t r1 = {0}, r2 = {0};
  wf_store_get(s, "ci", "k", res_cb, &r1);
  wf_store_get(s, "ci", "k", res_cb, &r2);
  wf_store_close(s);
  CHECK(r1.done && r2.done);
  CHECK_INT(r1.status, WF_ERR);
  CHECK_STR(r1.err, "store closed");
  res_free(&r1);
  res_free(&r2);
}

/* ---- bench -------------------------------------------------------------- */

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void bench(const char *url, int n) {
  wf_err_t err;
  wf_store_t *s = wf_store_open(LP, url, &err);
  const char *e = getenv("WEFT_STORE_BENCH_SECRETS");
  int nsec = e ? atoi(e) : 0;
  e = getenv("WEFT_STORE_BENCH_BYTES");
  size_t vlen = e && atol(e) > 0 ? (size_t)atol(e) : 200;
  char *val = malloc(vlen);
  double *t = malloc(sizeof(double) * (size_t)n);
  if (!s) {
    fprintf(stderr, "bench %s: %s\n", url, err.msg);
    free(t);
    free(val);
    return;
  }
  for (int i = 0; i < nsec; i++) { /* the redaction hook's cost */
    char sec[64];
    snprintf(sec, sizeof sec, "sk-bench-%031d", i);
    wf_store_add_secret(s, sec, strlen(sec));
  }
  memset(val, 'x', vlen);
  for (int i = 0; i < n + 100; i++) {
    char key[32];
    snprintf(key, sizeof key, "run%d", i % 50);
    double t0 = wf_time_mono();
    wf_store_batch_t *b = wf_store_batch(s);
    wf_store_put(b, "bench", key, val, vlen);
    wf_store_append(b, "bench", "journal", val, vlen);
    res_t r = {0};
    wf_store_commit(b, res_cb, &r);
    while (!r.done) wf_loop_step(LP);
    if (i >= 100) t[i - 100] = (wf_time_mono() - t0) * 1e6;
    CHECK_INT(r.status, WF_OK);
    res_free(&r);
  }
  qsort(t, (size_t)n, sizeof *t, cmp_d);
  printf("bench %-40s commit put+append (%zu B each, %d secrets): median "
         "%.1f us, p90 %.1f us, p99 %.1f us (n=%d)\n",
         url, vlen, nsec, t[n / 2], t[n * 9 / 10], t[n * 99 / 100], n);
  free(t);
  free(val);
  wf_store_close(s);
}

int main(void) {
  char url[600];
  signal(SIGPIPE, SIG_DFL); /* hiredis writes must not raise it */
  snprintf(tmpdir, sizeof tmpdir, "/tmp/weft-store-XXXXXX");
  if (!mkdtemp(tmpdir)) return 2;
  LP = wf_loop_new(NULL);

  run_suite("memory:");
  run_suite("sqlite:");
  RUN(t_urls);
  RUN(t_sqlite_reopen);
  RUN(t_sqlite_bad_files);
  RUN(t_sqlite_pages);
  RUN(t_sqlite_wal_size);
  RUN(t_sqlite_readonly);
  RUN(t_sqlite_modes);
  if (have_redis() && (redis_port = free_port()) > 0 && redis_start()) {
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", redis_port);
    run_suite(url);
    RUN(t_redis_db);
    RUN(t_redis_auth);
    RUN(t_redis_close_inflight);
    RUN(t_redis_silent);
    RUN(t_redis_restart);
  } else {
    printf("SKIP redis: no redis-server binary (install redis-server)\n");
  }
  if (getenv("WEFT_STORE_BENCH")) {
    snprintf(url, sizeof url, "sqlite:%s/bench.db", tmpdir);
    bench(url, 5000);
    bench("memory:", 5000);
    if (redis_pid > 0) {
      snprintf(url, sizeof url, "redis://127.0.0.1:%d/3", redis_port);
      bench(url, 5000);
    }
  }
  redis_stop();
  wf_loop_free(LP);
  wf_err_t err;
  if (wf_proc_rmtree(tmpdir, &err) != WF_OK)
    fprintf(stderr, "cannot remove %s: %s\n", tmpdir, err.msg);
  return harness_end(__FILE__);
}
