/* store_redis.c — the "redis://host:port/db" backend of store.h: one
 * hiredis asynchronous connection driven by our libev loop (a small
 * adapter whose I/O watchers do not keep the loop alive on their own).
 * Layout (docs/store.md): records of ns in hash weft:{ns}:rec, their keys
 * in sorted set weft:{ns}:rkeys (score 0: ZRANGEBYLEX gives prefix scans
 * in byte order); log (ns, key) in list weft:{ns}:log:<key>, the last
 * number it gave in hash weft:{ns}:logseq, its key in weft:{ns}:lkeys;
 * queue q in stream weft:{q}:queue, read through consumer group "weft"
 * (created lazily, from id 0: items pushed before it are delivered; a
 * NOGROUP reply, e.g. after a restart without persistence, creates it and
 * sends the operation again, once). Push is XADD, take XREADGROUP, ack
 * XACK + XDEL; reclaim, touch and info are small scripts.
 * A batch is MULTI ... EXEC (one with expectations: one call of a script
 * that checks them, then runs the same commands); an append is RPUSH + HINCRBY (whose reply is
 * the entry's number); trim, del_prefix, scan, range and size are small
 * Lua scripts (EVAL), atomic on the server.
 * Connection: AUTH/SELECT handshake, then READY. Operations issued while
 * connecting wait (bounded queue, connect timeout); while disconnected they
 * fail at once with "redis HOST:PORT: <reason>", and the store reconnects
 * in the background with exponential backoff. No reply for `timeout`
 * seconds while operations wait drops the connection (they fail).
 * Replies complete through store.c's deferred completions (copied), so no
 * user callback ever runs inside hiredis. Depends on store_int.h, hiredis,
 * libev. */
#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_int.h"

#define QUEUE_MAX 100000
#define BACKOFF_MIN 0.05
#define BACKOFF_MAX 2.0

enum { R_DOWN, R_CONNECTING, R_READY };
enum { K_GET, K_SCAN, K_RANGE, K_SIZE, K_COMMIT, K_TIME,
       K_QTAKE, K_QRECLAIM, K_QTOUCH, K_QINFO }; /* K_Q*: queues, in order */

typedef struct rs rs_t;

/* One operation: queued (waiting for the connection) or sent. */
typedef struct rop {
  rs_t *rs;
  int kind;
  wf_store_cb cb;
  void *ud;
  wf_store_batch_t *b; /* commit */
  int injected;        /* commit: a failing command was queued */
  int eval_body;       /* commit: send the batch script's body (NOSCRIPT) */
  int regrouped;       /* queue: the group was created after NOGROUP */
  char *a;             /* ns NUL key NUL [more strings NUL] (reads) */
  size_t acap, alen;
  size_t nslen, klen;
  long long n1, n2;    /* scan: limit; range: from, to; queues: n, min
                          idle (ms) or the number of ids after the key */
  struct rop *next;
} rop_t;

typedef struct rbuf {
  char *p;
  size_t cap;
} rbuf_t;

/* The libev adapter of one hiredis context. Commands are written in the
 * prepare phase of the loop turn that queued them (just before it polls),
 * not one turn later when a write watcher says the socket is writable: a
 * round trip is one write, one poll, one read (the write watcher is for
 * connecting and for a socket buffer that filled up). */
typedef struct radapt {
  struct ev_loop *evl;
  redisAsyncContext *ac;
  ev_io rev, wev;
  ev_prepare flush;
  int reading, writing, flushing;
} radapt_t;

/* The adapter writing from its prepare watcher right now (in this thread):
 * hiredis asking it to write more then means the socket is full. */
static _Thread_local radapt_t *in_flush;

struct rs {
  wf_store_t *s;
  struct ev_loop *evl;
  char *host, *user, *pass;
  int port, db;
  double timeout;
  int state;
  redisAsyncContext *ac;
  char err[400];         /* "redis host:port: reason" of the last failure */
  double backoff;
  ev_timer retry;        /* reconnect (does not keep the loop alive) */
  int retry_on;
  ev_timer wd;           /* watchdog, active while operations wait */
  double t_conn, progress;
  rop_t *qhead, *qtail;  /* waiting for READY */
  size_t nqueued, nsent;
  rop_t *free_ops;
  int nfree_ops;
  rbuf_t nb[7];          /* key-name scratch: 0-4 names, 5-6 bounds */
  char sha[48];          /* SHA1 of the batch script once loaded, or "" */
  int collect;           /* cmd() adds to the batch script's arguments */
  rbuf_t cbuf;           /* their bytes (each NUL-terminated) */
  size_t cblen;
  size_t *coff, *clen;   /* their offsets and lengths */
  size_t cn, ccap;
};

/* ---- scripts ------------------------------------------------------------ */

/* KEYS rec, rkeys; ARGV min, max, limit -> {keys, values} */
static const char scan_lua[] =
    "local ks\n"
    "local lim = tonumber(ARGV[3])\n"
    "if lim > 0 then ks = redis.call('ZRANGEBYLEX', KEYS[2], ARGV[1], "
    "ARGV[2], 'LIMIT', 0, lim)\n"
    "else ks = redis.call('ZRANGEBYLEX', KEYS[2], ARGV[1], ARGV[2]) end\n"
    "local vs = {}\n"
    "for i = 1, #ks, 500 do\n"
    "  local part = redis.call('HMGET', KEYS[1], unpack(ks, i, "
    "math.min(i + 499, #ks)))\n"
    "  for j = 1, #part do vs[#vs + 1] = part[j] end\n"
    "end\n"
    "return {ks, vs}\n";

/* KEYS log, logseq; ARGV key, from, to -> {first seq, values} */
static const char range_lua[] =
    "local last = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')\n"
    "local len = redis.call('LLEN', KEYS[1])\n"
    "local first = last - len + 1\n"
    "local from, to = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "if from < first then from = first end\n"
    "if to == 0 or to > last then to = last end\n"
    "if from > to then return {from, {}} end\n"
    "return {from, redis.call('LRANGE', KEYS[1], from - first, "
    "to - first)}\n";

/* KEYS log, logseq; ARGV key, keep_from -> entries dropped */
#define TRIM_LUA \
    "local last = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')\n" \
    "local len = redis.call('LLEN', KEYS[1])\n" \
    "local drop = tonumber(ARGV[2]) - (last - len + 1)\n" \
    "if drop <= 0 or len == 0 then return 0 end\n" \
    "if drop >= len then redis.call('DEL', KEYS[1])\n" \
    "else redis.call('LTRIM', KEYS[1], drop, -1) end\n" \
    "return drop\n"
static const char trim_lua[] = TRIM_LUA;

/* KEYS rec, rkeys, logseq, lkeys; ARGV min, max, log key prefix */
#define DELP_LUA \
    "local ks = redis.call('ZRANGEBYLEX', KEYS[2], ARGV[1], ARGV[2])\n" \
    "for i = 1, #ks, 500 do redis.call('HDEL', KEYS[1], unpack(ks, i, " \
    "math.min(i + 499, #ks))) end\n" \
    "redis.call('ZREMRANGEBYLEX', KEYS[2], ARGV[1], ARGV[2])\n" \
    "ks = redis.call('ZRANGEBYLEX', KEYS[4], ARGV[1], ARGV[2])\n" \
    "for i = 1, #ks do redis.call('DEL', ARGV[3] .. ks[i]) end\n" \
    "for i = 1, #ks, 500 do redis.call('HDEL', KEYS[3], unpack(ks, i, " \
    "math.min(i + 499, #ks))) end\n" \
    "redis.call('ZREMRANGEBYLEX', KEYS[4], ARGV[1], ARGV[2])\n" \
    "return #ks\n"
static const char delp_lua[] = DELP_LUA;

/* A batch with expectations, in one call: ARGV = the number of
 * expectations, then 4 slots each (kind 'v' value / 'a' absent / 'l' log
 * last, hash key, field, wanted), then the batch's commands, each as its
 * argc and its arguments, the trim and del_prefix scripts named "trim"
 * and "delp". A failed expectation writes nothing and replies
 * "WEFT-CONFLICT <index> <what the store holds>"; otherwise the replies of
 * the commands, as EXEC gives them. */
static const char batch_lua[] =
    "local F = {}\n"
    "F.trim = function(KEYS, ARGV)\n" TRIM_LUA "end\n"
    "F.delp = function(KEYS, ARGV)\n" DELP_LUA "end\n"
    "local a, i = ARGV, 2\n"
    "for g = 1, tonumber(a[1]) do\n"
    "  local kind, want = a[i], a[i + 3]\n"
    "  local cur = redis.call('HGET', a[i + 1], a[i + 2])\n"
    "  i = i + 4\n"
    "  local bad\n"
    "  if kind == 'l' then\n"
    "    cur = tonumber(cur or '0')\n"
    "    if cur ~= tonumber(want) then bad = tostring(cur) end\n"
    "  elseif kind == 'a' then\n"
    "    if cur then bad = 'present' end\n"
    "  elseif not cur then bad = 'absent'\n"
    "  elseif cur ~= want then bad = 'a different value' end\n"
    "  if bad then return redis.error_reply('WEFT-CONFLICT ' .. g .. ' ' "
    ".. bad) end\n"
    "end\n"
    "local out, k, call = {}, 0, redis.call\n"
    "while i <= #a do\n"
    "  local n, c = tonumber(a[i]), a[i + 1]\n"
    "  k = k + 1\n"
    "  if n == 3 and c ~= 'EVAL' then out[k] = call(c, a[i + 2], a[i + 3])\n"
    "  elseif n == 4 then out[k] = call(c, a[i + 2], a[i + 3], a[i + 4])\n"
    "  elseif c == 'EVAL' then\n"
    "    local nk, ks, as = tonumber(a[i + 3]), {}, {}\n"
    "    for j = 1, nk do ks[j] = a[i + 3 + j] end\n"
    "    for j = i + 4 + nk, i + n do as[#as + 1] = a[j] end\n"
    "    out[k] = F[a[i + 2]](ks, as)\n"
    "  else\n"
    "    local t = {}\n"
    "    for j = 1, n do t[j] = a[i + j] end\n"
    "    out[k] = call(unpack(t))\n"
    "  end\n"
    "  i = i + n + 1\n"
    "end\n"
    "return out\n";

/* KEYS stream; ARGV consumer, min idle (ms), n -> {entries, owners}: the
 * pending entries idle that long, oldest first (XPENDING IDLE tells their
 * owners, which XAUTOCLAIM does not), claimed by the consumer (XCLAIM:
 * one of them deleted meanwhile is dropped from the group, not given). */
static const char reclaim_lua[] =
    "local p = redis.call('XPENDING', KEYS[1], 'weft', 'IDLE', ARGV[2], "
    "'-', '+', ARGV[3])\n"
    "local was, got, ow = {}, {}, {}\n"
    "for i = 1, #p, 500 do\n"
    "  local ids = {}\n"
    "  for j = i, math.min(i + 499, #p) do\n"
    "    ids[#ids + 1] = p[j][1]\n"
    "    was[p[j][1]] = p[j][2]\n"
    "  end\n"
    "  local c = redis.call('XCLAIM', KEYS[1], 'weft', ARGV[1], ARGV[2], "
    "unpack(ids))\n"
    "  for j = 1, #c do\n"
    "    if c[j] then got[#got + 1] = c[j]; ow[#ow + 1] = was[c[j][1]] end\n"
    "  end\n"
    "end\n"
    "return {got, ow}\n";

/* KEYS stream; ARGV consumer, ids... -> how many of the ids the consumer
 * owns (their idle time restarts: XCLAIM 0 JUSTID); the others are left
 * to their owners. */
static const char touch_lua[] =
    "local n = 0\n"
    "for i = 2, #ARGV do\n"
    "  local p = redis.call('XPENDING', KEYS[1], 'weft', ARGV[i], ARGV[i], "
    "1)\n"
    "  if p[1] and p[1][2] == ARGV[1] then\n"
    "    redis.call('XCLAIM', KEYS[1], 'weft', ARGV[1], 0, ARGV[i], "
    "'JUSTID')\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n";

/* KEYS stream -> {waiting, taken, {{consumer, count}...}}: the stream
 * holds only items not acked (ack deletes), the group's pending list the
 * taken ones; without a group nothing was taken (nothing is created). */
static const char info_lua[] =
    "local len = redis.call('XLEN', KEYS[1])\n"
    "local p = redis.pcall('XPENDING', KEYS[1], 'weft')\n"
    "if p.err then\n"
    "  if string.sub(p.err, 1, 7) ~= 'NOGROUP' then return p end\n"
    "  return {len, 0, {}}\n"
    "end\n"
    "return {len - p[1], p[1], p[4] or {}}\n";

/* KEYS rec, rkeys, logseq, lkeys; ARGV log key prefix -> bytes */
static const char size_lua[] =
    "local n = 0\n"
    "local ks = redis.call('ZRANGE', KEYS[2], 0, -1)\n"
    "for i = 1, #ks do n = n + #ks[i] + redis.call('HSTRLEN', KEYS[1], "
    "ks[i]) end\n"
    "ks = redis.call('ZRANGE', KEYS[4], 0, -1)\n"
    "for i = 1, #ks do\n"
    "  local vs = redis.call('LRANGE', ARGV[1] .. ks[i], 0, -1)\n"
    "  for j = 1, #vs do n = n + #ks[i] + #vs[j] end\n"
    "end\n"
    "return n\n";

/* ---- key names ---------------------------------------------------------- */

/* "weft:{ns}:<suffix><key>" in scratch slot i; its length in *len. */
static const char *kname(rs_t *rs, int i, const char *ns, size_t nslen,
                         const char *suffix, const char *key, size_t klen,
                         size_t *len) {
  rbuf_t *b = &rs->nb[i];
  size_t sl = strlen(suffix), n = 6 + nslen + 2 + sl + klen;
  if (b->cap < n + 1) {
    b->cap = n + 64;
    b->p = wf_xrealloc(b->p, b->cap);
  }
  memcpy(b->p, "weft:{", 6);
  memcpy(b->p + 6, ns, nslen);
  memcpy(b->p + 6 + nslen, "}:", 2);
  memcpy(b->p + 8 + nslen, suffix, sl);
  if (klen) memcpy(b->p + 8 + nslen + sl, key, klen);
  b->p[n] = 0;
  *len = n;
  return b->p;
}

/* "[prefix" in slot 5 and "(succ" or "+" in slot 6. */
static void lex_bounds(rs_t *rs, const char *p, size_t pl, const char **min,
                       size_t *minl, const char **max, size_t *maxl) {
  rbuf_t *lo = &rs->nb[5], *hi = &rs->nb[6];
  size_t hl;
  if (lo->cap < pl + 2) {
    lo->cap = pl + 64;
    lo->p = wf_xrealloc(lo->p, lo->cap);
  }
  if (hi->cap < pl + 2) {
    hi->cap = pl + 64;
    hi->p = wf_xrealloc(hi->p, hi->cap);
  }
  lo->p[0] = '[';
  memcpy(lo->p + 1, p, pl);
  *min = lo->p;
  *minl = pl + 1;
  if (wf_store_prefix_succ(p, pl, hi->p + 1, &hl)) {
    hi->p[0] = '(';
    *maxl = hl + 1;
  } else {
    hi->p[0] = '+';
    *maxl = 1;
  }
  *max = hi->p;
}

/* ---- batch commands and script calls ------------------------------------- */

/* av/al[0..2]: EVAL of script (len bytes) with nkeys keys; the script's
 * keys and arguments follow from index 3. */
static void eval_head(const char **av, size_t *al, const char *script,
                      size_t len, const char *nkeys) {
  av[0] = "EVAL", al[0] = 4;
  av[1] = script, al[1] = len;
  av[2] = nkeys, al[2] = strlen(nkeys);
}

/* av/al[3..6]: the four index keys of ns (rec, rkeys, logseq, lkeys) in
 * kname slots 0..3, as the delp and size scripts take them. */
static void index_keys(rs_t *rs, const char *ns, size_t nslen,
                       const char **av, size_t *al) {
  static const char *const names[4] = {"rec", "rkeys", "logseq", "lkeys"};
  for (int i = 0; i < 4; i++)
    av[3 + i] = kname(rs, i, ns, nslen, names[i], NULL, 0, &al[3 + i]);
}

/* av/al[3..5]: the log of key in ns and the logseq hash (kname slots 0,
 * 1), then key, as the range and trim scripts take them. */
static void log_keys(rs_t *rs, const char *ns, size_t nslen, const char *key,
                     size_t klen, const char **av, size_t *al) {
  av[3] = kname(rs, 0, ns, nslen, "log:", key, klen, &al[3]);
  av[4] = kname(rs, 1, ns, nslen, "logseq", NULL, 0, &al[4]);
  av[5] = key, al[5] = klen;
}

/* *av and *al: v in decimal, written in buf (cap bytes). */
static void num_arg(const char **av, size_t *al, char *buf, size_t cap,
                    long long v) {
  *al = (size_t)snprintf(buf, cap, "%lld", v);
  *av = buf;
}

/* One command of a batch op: verb, the key it names (suffix, then the op's
 * key when keyed), then its arguments by letter: k the op's key, v its
 * value, g the queue's group ("weft"), others (0, 1, *, p) themselves. */
typedef struct kcmd {
  const char *verb, *suffix;
  int keyed;
  const char *args;
} kcmd_t;

static const kcmd_t put_cmds[] = {{"HSET", "rec", 0, "kv"},
                                  {"ZADD", "rkeys", 0, "0k"},
                                  {NULL, NULL, 0, NULL}};
static const kcmd_t append_cmds[] = {{"RPUSH", "log:", 1, "v"},
                                     {"HINCRBY", "logseq", 0, "k1"},
                                     {"ZADD", "lkeys", 0, "0k"},
                                     {NULL, NULL, 0, NULL}};
static const kcmd_t qpush_cmds[] = {{"XADD", "queue", 0, "*pv"},
                                    {NULL, NULL, 0, NULL}};
static const kcmd_t qack_cmds[] = {{"XACK", "queue", 0, "gk"},
                                   {"XDEL", "queue", 0, "k"},
                                   {NULL, NULL, 0, NULL}};
static const kcmd_t del_cmds[] = {{"HDEL", "rec", 0, "k"},
                                  {"ZREM", "rkeys", 0, "k"},
                                  {"DEL", "log:", 1, ""},
                                  {"HDEL", "logseq", 0, "k"},
                                  {"ZREM", "lkeys", 0, "k"},
                                  {NULL, NULL, 0, NULL}};

/* The commands of a batch op of type, or NULL for one that sends one
 * script call (trim, del_prefix) or nothing (an expectation). */
static const kcmd_t *op_cmds(int type) {
  return type == WF_SOP_PUT      ? put_cmds
         : type == WF_SOP_APPEND ? append_cmds
         : type == WF_SOP_DEL    ? del_cmds
         : type == WF_SOP_QPUSH  ? qpush_cmds
         : type == WF_SOP_QACK   ? qack_cmds
                                 : NULL;
}

/* How many replies batch op o has in the MULTI's reply. */
static size_t op_nreplies(const wf_store_op_t *o) {
  const kcmd_t *c = op_cmds(o->type);
  size_t n = 0;
  if (!c) return wf_sop_is_expect(o) ? 0 : 1;
  while (c[n].verb) n++;
  return n;
}

/* ---- the libev adapter -------------------------------------------------- */

static void ad_read_cb(struct ev_loop *evl, ev_io *w, int revents) {
  (void)evl;
  (void)revents;
  redisAsyncHandleRead(((radapt_t *)w->data)->ac);
}

/* Let hiredis write to a's socket, with SIGPIPE blocked (a server that
 * went away must give EPIPE, not kill the process) and one it raised
 * consumed; the host's own disposition of SIGPIPE is left alone. a may be
 * freed on return (hiredis frees a context whose write failed). */
static void ad_write(radapt_t *a) {
  sigset_t set, old, pending;
  int was_pending;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  sigpending(&pending);
  was_pending = sigismember(&pending, SIGPIPE);
  sigprocmask(SIG_BLOCK, &set, &old);
  redisAsyncHandleWrite(a->ac); /* may free a */
  if (!was_pending) {
    sigpending(&pending);
    if (sigismember(&pending, SIGPIPE)) {
      struct timespec zero = {0, 0};
      while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR) {
      }
    }
  }
  sigprocmask(SIG_SETMASK, &old, NULL);
}

/* Writable (connecting, or the socket buffer had filled up). */
static void ad_write_cb(struct ev_loop *evl, ev_io *w, int revents) {
  (void)evl;
  (void)revents;
  ad_write(w->data);
}

/* Prepare phase after commands were queued: write them now. */
static void ad_flush_cb(struct ev_loop *evl, ev_prepare *w, int revents) {
  radapt_t *a = w->data;
  (void)revents;
  a->flushing = 0;
  ev_ref(evl);
  ev_prepare_stop(evl, w);
  in_flush = a;
  ad_write(a); /* may free a */
  in_flush = NULL;
}

/* Start an I/O watcher that does not keep the loop alive by itself. */
static void ad_on(radapt_t *a, ev_io *w, int *flag) {
  if (*flag) return;
  *flag = 1;
  ev_io_start(a->evl, w);
  ev_unref(a->evl);
}

/* Stop an I/O watcher started by ad_on. */
static void ad_off(radapt_t *a, ev_io *w, int *flag) {
  if (!*flag) return;
  *flag = 0;
  ev_ref(a->evl);
  ev_io_stop(a->evl, w);
}

/* Start (on) or stop watching adapter p's socket for writing (write) or
 * reading. */
static void ad_set(void *p, int write, int on) {
  radapt_t *a = p;
  ev_io *w = write ? &a->wev : &a->rev;
  int *flag = write ? &a->writing : &a->reading;
  if (on)
    ad_on(a, w, flag);
  else
    ad_off(a, w, flag);
}

/* hiredis hook: watch for reading. */
static void ad_add_read(void *p) { ad_set(p, 0, 1); }
/* hiredis hook: stop watching for reading. */
static void ad_del_read(void *p) { ad_set(p, 0, 0); }
/* Stop adapter a's pending flush. */
static void ad_flush_off(radapt_t *a) {
  if (!a->flushing) return;
  a->flushing = 0;
  ev_ref(a->evl);
  ev_prepare_stop(a->evl, &a->flush);
}

/* hiredis hook: there is something to write. Connected, it is written in
 * this loop turn's prepare phase; connecting, or the buffer not all
 * written by a flush (a full socket), when the socket is writable. */
static void ad_add_write(void *p) {
  radapt_t *a = p;
  if (in_flush == a || !(a->ac->c.flags & REDIS_CONNECTED)) {
    ad_set(p, 1, 1);
    return;
  }
  if (a->flushing || a->writing) return;
  a->flushing = 1;
  ev_prepare_start(a->evl, &a->flush);
  ev_unref(a->evl);
}
/* hiredis hook: all is written. */
static void ad_del_write(void *p) {
  ad_flush_off(p);
  ad_set(p, 1, 0);
}
/* hiredis hook: the context is being freed. */
static void ad_cleanup(void *p) {
  ad_set(p, 0, 0);
  ad_del_write(p);
  free(p);
}

/* Attach context ac to libev loop evl. */
static void ad_attach(struct ev_loop *evl, redisAsyncContext *ac) {
  radapt_t *a = wf_xcalloc(1, sizeof *a);
  a->evl = evl;
  a->ac = ac;
  ev_io_init(&a->rev, ad_read_cb, ac->c.fd, EV_READ);
  ev_io_init(&a->wev, ad_write_cb, ac->c.fd, EV_WRITE);
  ev_prepare_init(&a->flush, ad_flush_cb);
  a->rev.data = a->wev.data = a->flush.data = a;
  ac->ev.data = a;
  ac->ev.addRead = ad_add_read;
  ac->ev.delRead = ad_del_read;
  ac->ev.addWrite = ad_add_write;
  ac->ev.delWrite = ad_del_write;
  ac->ev.cleanup = ad_cleanup;
}

/* ---- operations --------------------------------------------------------- */

static rop_t *rop_new(rs_t *rs, int kind, wf_store_cb cb, void *ud) {
  rop_t *o = rs->free_ops;
  if (o) {
    rs->free_ops = o->next;
    rs->nfree_ops--;
  } else {
    o = wf_xcalloc(1, sizeof *o);
  }
  o->rs = rs;
  o->kind = kind;
  o->cb = cb;
  o->ud = ud;
  o->b = NULL;
  o->injected = 0;
  o->eval_body = 0;
  o->regrouped = 0;
  o->next = NULL;
  return o;
}

/* Copy ns and key into o (kept while it waits for the connection). */
static void rop_args(rop_t *o, const char *ns, const char *key) {
  size_t nl = strlen(ns), kl = strlen(key);
  if (o->acap < nl + kl + 2) {
    o->acap = nl + kl + 64;
    o->a = wf_xrealloc(o->a, o->acap);
  }
  memcpy(o->a, ns, nl + 1);
  memcpy(o->a + nl + 1, key, kl + 1);
  o->nslen = nl;
  o->klen = kl;
  o->alen = nl + kl + 2;
}

/* Copy one more string into o after its ns and key (queue touch: ids). */
static void rop_more(rop_t *o, const char *str) {
  size_t n = strlen(str) + 1;
  if (o->acap < o->alen + n) {
    o->acap = (o->alen + n) * 2;
    o->a = wf_xrealloc(o->a, o->acap);
  }
  memcpy(o->a + o->alen, str, n);
  o->alen += n;
}

/* Release o (and its batch) into the pool. */
static void rop_free(rs_t *rs, rop_t *o) {
  if (o->b) wf_store_batch_release(o->b);
  o->b = NULL;
  if (rs->nfree_ops >= 64 || o->acap > 4096) {
    free(o->a);
    free(o);
    return;
  }
  o->next = rs->free_ops;
  rs->free_ops = o;
  rs->nfree_ops++;
}

/* Complete o with a failure message and free it. */
static void rop_fail(rs_t *rs, rop_t *o, const char *msg) {
  wf_store_fail(rs->s, o->cb, o->ud, "%s", msg);
  rop_free(rs, o);
}

static void wd_kick(rs_t *rs);
static void rop_send(rs_t *rs, rop_t *o);
static void conn_drop(rs_t *rs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Add the stream entries es ({{id, {field, value...}}...}: the payload is
 * the value of the first field) to d as queue items; owners (reclaim:
 * one name per entry) or NULL. 0 when the reply has another shape. */
static int q_entries(wf_store_done_t *d, const redisReply *es,
                     const redisReply *owners) {
  if (es->type != REDIS_REPLY_ARRAY ||
      (owners && (owners->type != REDIS_REPLY_ARRAY ||
                  owners->elements != es->elements)))
    return 0;
  for (size_t i = 0; i < es->elements; i++) {
    const redisReply *e = es->element[i], *f, *o;
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING)
      return 0;
    f = e->element[1];
    o = owners ? owners->element[i] : NULL;
    if (f->type != REDIS_REPLY_ARRAY || f->elements < 2 ||
        f->element[1]->type != REDIS_REPLY_STRING ||
        (o && o->type != REDIS_REPLY_STRING))
      return 0;
    wf_store_done_item(d, e->element[0]->str, e->element[0]->len,
                       f->element[1]->str, f->element[1]->len,
                       o ? o->str : NULL);
  }
  return 1;
}

/* Reply of an operation's last command (NULL: the connection is gone). */
static void reply_cb(redisAsyncContext *ac, void *rv, void *priv) {
  rop_t *o = priv;
  rs_t *rs = o->rs;
  redisReply *r = rv;
  wf_store_done_t *d;
  rs->nsent--;
  rs->progress = ev_now(rs->evl);
  if (!r) {
    if (ac == rs->ac && !rs->s->closing) {
      char *e = ac->err ? ac->errstr : "connection lost";
      wf_store_fail(rs->s, o->cb, o->ud, "redis %s:%d: %c%s", rs->host,
                    rs->port, e[0] >= 'A' && e[0] <= 'Z' ? e[0] + 32 : e[0],
                    e + 1);
      rop_free(rs, o);
    } else {
      rop_fail(rs, o, rs->err);
    }
    wd_kick(rs);
    return;
  }
  if (r->type == REDIS_REPLY_ERROR && o->kind == K_COMMIT &&
      !strncmp(r->str, "NOSCRIPT", 8) && !o->eval_body) {
    /* the server forgot the batch script (SCRIPT FLUSH): nothing ran;
     * send it again with its body */
    rs->sha[0] = 0;
    o->eval_body = 1;
    rop_send(rs, o);
    return;
  }
  if (r->type == REDIS_REPLY_ERROR && o->kind >= K_QTAKE && !o->regrouped &&
      !strncmp(r->str, "NOGROUP", 7)) {
    /* no group yet, or the server lost it (restart without persistence):
     * create it, then the operation again (once; nothing ran) */
    o->regrouped = 1;
    rop_send(rs, o);
    return;
  }
  d = wf_store_done_new(rs->s, o->cb, o->ud);
  if (r->type == REDIS_REPLY_ERROR && o->kind == K_COMMIT &&
      !strncmp(r->str, "WEFT-CONFLICT ", 14)) {
    /* "WEFT-CONFLICT <index of the expectation> <what the store holds>" */
    char *end;
    long g = strtol(r->str + 14, &end, 10);
    const wf_store_batch_t *b = o->b;
    for (size_t k = 0; k < b->nops; k++) {
      const wf_store_op_t *op = &b->ops[k];
      if (wf_sop_is_expect(op) && --g == 0) {
        wf_store_done_conflict(d, b, op, *end ? end + 1 : "?");
        goto out;
      }
    }
    goto bad;
  }
  if (r->type == REDIS_REPLY_ERROR && !(o->kind == K_COMMIT && o->injected)) {
    wf_store_done_fail(d, "redis %s:%d: %s", rs->host, rs->port, r->str);
    goto out;
  }
  switch (o->kind) {
    case K_GET:
      if (r->type == REDIS_REPLY_STRING)
        wf_store_done_value(d, r->str, r->len);
      else if (r->type != REDIS_REPLY_NIL)
        goto bad;
      break;
    case K_SCAN: {
      if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
          r->element[0]->type != REDIS_REPLY_ARRAY ||
          r->element[1]->type != REDIS_REPLY_ARRAY ||
          r->element[0]->elements != r->element[1]->elements)
        goto bad;
      redisReply *ks = r->element[0], *vs = r->element[1];
      for (size_t i = 0; i < ks->elements; i++)
        if (vs->element[i]->type == REDIS_REPLY_STRING)
          wf_store_done_row(d, ks->element[i]->str, ks->element[i]->len,
                            vs->element[i]->str, vs->element[i]->len, 0);
      break;
    }
    case K_RANGE: {
      if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
          r->element[0]->type != REDIS_REPLY_INTEGER ||
          r->element[1]->type != REDIS_REPLY_ARRAY)
        goto bad;
      long long first = r->element[0]->integer;
      redisReply *vs = r->element[1];
      for (size_t i = 0; i < vs->elements; i++)
        wf_store_done_row(d, NULL, 0, vs->element[i]->str,
                          vs->element[i]->len, first + (long long)i);
      break;
    }
    case K_SIZE:
      if (r->type != REDIS_REPLY_INTEGER) goto bad;
      d->len = (size_t)r->integer;
      break;
    case K_TIME:
      if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
          r->element[0]->type != REDIS_REPLY_STRING ||
          r->element[1]->type != REDIS_REPLY_STRING)
        goto bad;
      wf_store_done_seq(d, strtoll(r->element[0]->str, NULL, 10) * 1000 +
                               strtoll(r->element[1]->str, NULL, 10) / 1000);
      break;
    case K_COMMIT: {
      wf_store_batch_t *b = o->b;
      size_t k = 0;
      if (o->injected) {
        wf_store_done_fail(d, "injected failure");
        break;
      }
      if (r->type != REDIS_REPLY_ARRAY) goto bad;
      for (size_t i = 0; i < b->nops; i++) {
        int type = b->ops[i].type;
        size_t cnt = op_nreplies(&b->ops[i]);
        if (k + cnt > r->elements) goto bad;
        for (size_t j = 0; j < cnt; j++)
          if (r->element[k + j]->type == REDIS_REPLY_ERROR) {
            wf_store_done_fail(d,
                               "redis %s:%d: %s (the batch may be partly "
                               "applied: Redis has no rollback)",
                               rs->host, rs->port, r->element[k + j]->str);
            goto out;
          }
        if (type == WF_SOP_APPEND) {
          if (r->element[k + 1]->type != REDIS_REPLY_INTEGER) goto bad;
          wf_store_done_seq(d, r->element[k + 1]->integer);
        } else if (type == WF_SOP_QPUSH) {
          if (r->element[k]->type != REDIS_REPLY_STRING) goto bad;
          wf_store_done_id(d, r->element[k]->str, r->element[k]->len);
        }
        k += cnt;
      }
      if (k != r->elements) goto bad;
      break;
    }
    case K_QTAKE:
      /* nil (nothing waiting) or {{stream, entries}} */
      if (r->type == REDIS_REPLY_NIL) break;
      if (r->type != REDIS_REPLY_ARRAY || r->elements != 1 ||
          r->element[0]->type != REDIS_REPLY_ARRAY ||
          r->element[0]->elements != 2 ||
          !q_entries(d, r->element[0]->element[1], NULL))
        goto bad;
      break;
    case K_QRECLAIM:
      if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
          !q_entries(d, r->element[0], r->element[1]))
        goto bad;
      break;
    case K_QTOUCH:
      if (r->type != REDIS_REPLY_INTEGER) goto bad;
      d->count = r->integer;
      break;
    case K_QINFO:
      if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
          r->element[0]->type != REDIS_REPLY_INTEGER ||
          r->element[1]->type != REDIS_REPLY_INTEGER ||
          r->element[2]->type != REDIS_REPLY_ARRAY)
        goto bad;
      d->count = r->element[0]->integer;
      d->taken = r->element[1]->integer;
      for (size_t i = 0; i < r->element[2]->elements; i++) {
        redisReply *c = r->element[2]->element[i];
        if (c->type != REDIS_REPLY_ARRAY || c->elements != 2 ||
            c->element[0]->type != REDIS_REPLY_STRING ||
            c->element[1]->type != REDIS_REPLY_STRING)
          goto bad;
        wf_store_done_row(d, c->element[0]->str, c->element[0]->len, "", 0,
                          strtoll(c->element[1]->str, NULL, 10));
      }
      break;
  }
  goto out;
bad:
  wf_store_done_fail(d, "redis %s:%d: unexpected reply (type %d)", rs->host,
                     rs->port, r->type);
out:
  wf_store_done_post(d);
  rop_free(rs, o);
  wd_kick(rs);
}

/* Add one argument of the batch script (copied). */
static void collect_arg(rs_t *rs, const char *p, size_t n) {
  rbuf_t *b = &rs->cbuf;
  if (rs->cn == rs->ccap) {
    rs->ccap = rs->ccap ? rs->ccap * 2 : 64;
    rs->coff = wf_xrealloc(rs->coff, rs->ccap * sizeof *rs->coff);
    rs->clen = wf_xrealloc(rs->clen, rs->ccap * sizeof *rs->clen);
  }
  if (b->cap - rs->cblen < n + 1) {
    size_t c = b->cap ? b->cap : 1024;
    while (c - rs->cblen < n + 1) c *= 2;
    b->p = wf_xrealloc(b->p, c);
    b->cap = c;
  }
  if (n) memcpy(b->p + rs->cblen, p, n);
  b->p[rs->cblen + n] = 0;
  rs->coff[rs->cn] = rs->cblen;
  rs->clen[rs->cn++] = n;
  rs->cblen += n + 1;
}

/* Add a number argument of the batch script. */
static void collect_num(rs_t *rs, long long v) {
  char num[32];
  collect_arg(rs, num, (size_t)snprintf(num, sizeof num, "%lld", v));
}

/* Send one command (collecting it instead while a batch script is being
 * built); 0 on success. */
static int cmd(rs_t *rs, rop_t *o, int argc, const char **argv,
               const size_t *lens) {
  if (rs->collect && !o) {
    collect_num(rs, argc);
    for (int i = 0; i < argc; i++) {
      if (i == 1 && argv[i] == trim_lua)
        collect_arg(rs, "trim", 4);
      else if (i == 1 && argv[i] == delp_lua)
        collect_arg(rs, "delp", 4);
      else
        collect_arg(rs, argv[i], lens[i]);
    }
    return 0;
  }
  return redisAsyncCommandArgv(rs->ac, o ? reply_cb : NULL, o, argc, argv,
                               lens) == REDIS_OK
             ? 0
             : -1;
}

/* Send the commands c (up to the one without verb) of batch op op; 0 on
 * success. */
static int send_cmds(rs_t *rs, wf_store_batch_t *b, const wf_store_op_t *op,
                     const kcmd_t *c) {
  const char *ns = wf_sop_ns(b, op), *key = wf_sop_key(b, op);
  const char *av[5]; /* verb, key, at most 3 arguments (XADD) */
  size_t al[5];
  int rc = 0;
  for (; c->verb; c++) {
    int n = 2;
    av[0] = c->verb, al[0] = strlen(c->verb);
    av[1] = kname(rs, 0, ns, op->nslen, c->suffix, c->keyed ? key : NULL,
                  c->keyed ? op->klen : 0, &al[1]);
    for (const char *a = c->args; *a; a++, n++) {
      if (*a == 'k')
        av[n] = key, al[n] = op->klen;
      else if (*a == 'v')
        av[n] = wf_sop_val(b, op), al[n] = op->vlen;
      else if (*a == 'g')
        av[n] = "weft", al[n] = 4;
      else
        av[n] = a, al[n] = 1; /* '0', '1', '*', 'p' itself */
    }
    rc |= cmd(rs, NULL, n, av, al);
  }
  return rc;
}

/* Send the commands of one batch op; 0 on success. */
static int send_op(rs_t *rs, wf_store_batch_t *b, const wf_store_op_t *op) {
  const char *ns = wf_sop_ns(b, op), *key = wf_sop_key(b, op);
  const char *av[10];
  size_t al[10];
  char num[32];
  switch (op->type) {
    case WF_SOP_PUT:
    case WF_SOP_APPEND:
    case WF_SOP_DEL:
    case WF_SOP_QPUSH:
    case WF_SOP_QACK:
      return send_cmds(rs, b, op, op_cmds(op->type));
    case WF_SOP_DEL_PREFIX:
      eval_head(av, al, delp_lua, sizeof delp_lua - 1, "4");
      index_keys(rs, ns, op->nslen, av, al);
      lex_bounds(rs, key, op->klen, &av[7], &al[7], &av[8], &al[8]);
      av[9] = kname(rs, 4, ns, op->nslen, "log:", NULL, 0, &al[9]);
      return cmd(rs, NULL, 10, av, al);
    case WF_SOP_TRIM:
      eval_head(av, al, trim_lua, sizeof trim_lua - 1, "2");
      log_keys(rs, ns, op->nslen, key, op->klen, av, al);
      num_arg(&av[6], &al[6], num, sizeof num, op->n);
      return cmd(rs, NULL, 7, av, al);
    case WF_SOP_EXPECT:
    case WF_SOP_EXPECT_LAST:
      return 0; /* checked by the batch script */
  }
  return -1;
}

/* Send batch b of o, which has expectations, as one call of the batch
 * script: the expectations, then the commands send_op would queue in a
 * MULTI (an injected failure first, so that nothing is written). */
static int send_script(rs_t *rs, rop_t *o, wf_store_batch_t *b, int inject) {
  const char **av;
  size_t *al, n, len;
  int rc = 0;
  rs->cn = rs->cblen = 0;
  collect_num(rs, (long long)b->nexpect);
  for (size_t k = 0; k < b->nops; k++) {
    const wf_store_op_t *op = &b->ops[k];
    const char *ns = wf_sop_ns(b, op), *name;
    if (!wf_sop_is_expect(op)) continue;
    int last = op->type == WF_SOP_EXPECT_LAST;
    collect_arg(rs, last ? "l" : op->n ? "a" : "v", 1);
    name = kname(rs, 0, ns, op->nslen, last ? "logseq" : "rec", NULL, 0, &len);
    collect_arg(rs, name, len);
    collect_arg(rs, wf_sop_key(b, op), op->klen);
    if (last)
      collect_num(rs, op->n);
    else
      collect_arg(rs, wf_sop_val(b, op), op->n ? 0 : op->vlen);
  }
  rs->collect = 1;
  if (inject) {
    const char *f = "WEFT-INJECTED-FAILURE";
    size_t fl = strlen(f);
    cmd(rs, NULL, 1, &f, &fl);
    o->injected = 1;
  }
  for (size_t k = 0; k < b->nops && !rc; k++) rc |= send_op(rs, b, &b->ops[k]);
  rs->collect = 0;
  if (rc) return rc;
  n = rs->cn + 3;
  av = wf_xmalloc(n * sizeof *av);
  al = wf_xmalloc(n * sizeof *al);
  if (rs->sha[0] && !o->eval_body) { /* loaded at connect: no body to send */
    av[0] = "EVALSHA", al[0] = 7;
    av[1] = rs->sha, al[1] = strlen(rs->sha);
  } else {
    av[0] = "EVAL", al[0] = 4;
    av[1] = batch_lua, al[1] = sizeof batch_lua - 1;
  }
  av[2] = "0", al[2] = 1;
  for (size_t i = 0; i < rs->cn; i++) {
    av[3 + i] = rs->cbuf.p + rs->coff[i];
    al[3 + i] = rs->clen[i];
  }
  rc = cmd(rs, o, (int)n, av, al);
  free(av);
  free(al);
  return rc;
}

/* Send queue operation o (stream of queue ns, consumer key); 0 on
 * success. After NOGROUP, XGROUP CREATE goes first (BUSYGROUP, from a
 * concurrent creation, is fine: its reply is not read). */
static int send_queue(rs_t *rs, rop_t *o, const char *ns, const char *key) {
  const char *av[10], **tv;
  size_t al[10], *tl;
  char n1[32], n2[32];
  int rc;
  if (o->regrouped) {
    av[0] = "XGROUP", al[0] = 6;
    av[1] = "CREATE", al[1] = 6;
    av[2] = kname(rs, 0, ns, o->nslen, "queue", NULL, 0, &al[2]);
    av[3] = "weft", al[3] = 4;
    av[4] = "0", al[4] = 1;
    av[5] = "MKSTREAM", al[5] = 8;
    if (cmd(rs, NULL, 6, av, al)) return -1;
  }
  switch (o->kind) {
    case K_QTAKE:
      av[0] = "XREADGROUP", al[0] = 10;
      av[1] = "GROUP", al[1] = 5;
      av[2] = "weft", al[2] = 4;
      av[3] = key, al[3] = o->klen;
      av[4] = "COUNT", al[4] = 5;
      num_arg(&av[5], &al[5], n1, sizeof n1, o->n1);
      av[6] = "STREAMS", al[6] = 7;
      av[7] = kname(rs, 0, ns, o->nslen, "queue", NULL, 0, &al[7]);
      av[8] = ">", al[8] = 1;
      return cmd(rs, o, 9, av, al);
    case K_QRECLAIM:
      eval_head(av, al, reclaim_lua, sizeof reclaim_lua - 1, "1");
      av[3] = kname(rs, 0, ns, o->nslen, "queue", NULL, 0, &al[3]);
      av[4] = key, al[4] = o->klen;
      num_arg(&av[5], &al[5], n2, sizeof n2, o->n2);
      num_arg(&av[6], &al[6], n1, sizeof n1, o->n1);
      return cmd(rs, o, 7, av, al);
    case K_QINFO:
      eval_head(av, al, info_lua, sizeof info_lua - 1, "1");
      av[3] = kname(rs, 0, ns, o->nslen, "queue", NULL, 0, &al[3]);
      return cmd(rs, o, 4, av, al);
  }
  /* touch: the consumer and the ids as arguments */
  tv = wf_xmalloc(((size_t)o->n1 + 5) * sizeof *tv);
  tl = wf_xmalloc(((size_t)o->n1 + 5) * sizeof *tl);
  eval_head(tv, tl, touch_lua, sizeof touch_lua - 1, "1");
  tv[3] = kname(rs, 0, ns, o->nslen, "queue", NULL, 0, &tl[3]);
  tv[4] = key, tl[4] = o->klen;
  const char *p = key + o->klen + 1;
  for (long long i = 0; i < o->n1; i++) {
    tv[5 + i] = p;
    tl[5 + i] = strlen(p);
    p += tl[5 + i] + 1;
  }
  rc = cmd(rs, o, (int)o->n1 + 5, tv, tl);
  free(tv);
  free(tl);
  return rc;
}

/* Send operation o on the ready connection (it is then in flight). */
static void rop_send(rs_t *rs, rop_t *o) {
  const char *av[8];
  size_t al[8];
  char n1[32], n2[32];
  const char *ns = o->a, *key = o->a + o->nslen + 1;
  int rc = 0;
  if (o->kind >= K_QTAKE) {
    rc = send_queue(rs, o, ns, key);
    goto sent;
  }
  switch (o->kind) {
    case K_GET:
      av[0] = "HGET", al[0] = 4;
      av[1] = kname(rs, 0, ns, o->nslen, "rec", NULL, 0, &al[1]);
      av[2] = key, al[2] = o->klen;
      rc = cmd(rs, o, 3, av, al);
      break;
    case K_SCAN:
      eval_head(av, al, scan_lua, sizeof scan_lua - 1, "2");
      av[3] = kname(rs, 0, ns, o->nslen, "rec", NULL, 0, &al[3]);
      av[4] = kname(rs, 1, ns, o->nslen, "rkeys", NULL, 0, &al[4]);
      lex_bounds(rs, key, o->klen, &av[5], &al[5], &av[6], &al[6]);
      num_arg(&av[7], &al[7], n1, sizeof n1, o->n1);
      rc = cmd(rs, o, 8, av, al);
      break;
    case K_RANGE:
      eval_head(av, al, range_lua, sizeof range_lua - 1, "2");
      log_keys(rs, ns, o->nslen, key, o->klen, av, al);
      num_arg(&av[6], &al[6], n1, sizeof n1, o->n1);
      num_arg(&av[7], &al[7], n2, sizeof n2, o->n2);
      rc = cmd(rs, o, 8, av, al);
      break;
    case K_SIZE:
      eval_head(av, al, size_lua, sizeof size_lua - 1, "4");
      index_keys(rs, ns, o->nslen, av, al);
      av[7] = kname(rs, 4, ns, o->nslen, "log:", NULL, 0, &al[7]);
      rc = cmd(rs, o, 8, av, al);
      break;
    case K_TIME:
      av[0] = "TIME", al[0] = 4;
      rc = cmd(rs, o, 1, av, al);
      break;
    case K_COMMIT: {
      wf_store_batch_t *b = o->b;
      size_t after = 0;
      int inject = wf_store_take_injection(rs->s, &after);
      if (b->nexpect) {
        rc = send_script(rs, o, b, inject);
        break;
      }
      av[0] = "MULTI";
      al[0] = 5;
      rc |= cmd(rs, NULL, 1, av, al);
      for (size_t k = 0; k < b->nops && !rc; k++) {
        if (inject && k == after) {
          av[0] = "WEFT-INJECTED-FAILURE";
          al[0] = strlen(av[0]);
          rc |= cmd(rs, NULL, 1, av, al);
          o->injected = 1;
        }
        rc |= send_op(rs, b, &b->ops[k]);
      }
      if (inject && !o->injected) {
        av[0] = "WEFT-INJECTED-FAILURE";
        al[0] = strlen(av[0]);
        rc |= cmd(rs, NULL, 1, av, al);
        o->injected = 1;
      }
      av[0] = "EXEC";
      al[0] = 4;
      if (!rc) rc = cmd(rs, o, 1, av, al);
      break;
    }
  }
sent:
  if (rc) {
    /* only when hiredis refuses commands (context going away) */
    rop_fail(rs, o, "redis: cannot send the command");
    conn_drop(rs, "cannot send a command");
    return;
  }
  if (rs->nsent++ == 0) rs->progress = ev_now(rs->evl);
  wd_kick(rs);
}

/* Start o now, queue it, or fail it at once, depending on the connection. */
static void rop_start(rs_t *rs, rop_t *o) {
  if (rs->state == R_READY) {
    rop_send(rs, o);
  } else if (rs->state == R_CONNECTING) {
    if (rs->nqueued >= QUEUE_MAX) {
      char msg[480];
      snprintf(msg, sizeof msg,
               "redis %s:%d: too many operations waiting for the connection",
               rs->host, rs->port);
      rop_fail(rs, o, msg);
      return;
    }
    if (rs->qtail)
      rs->qtail->next = o;
    else
      rs->qhead = o;
    rs->qtail = o;
    rs->nqueued++;
    wd_kick(rs);
  } else {
    rop_fail(rs, o, rs->err);
  }
}

/* ---- connection --------------------------------------------------------- */

static void rs_connect(rs_t *rs);

/* Backoff timer: try to connect again. */
static void retry_cb(struct ev_loop *evl, ev_timer *w, int revents) {
  rs_t *rs = w->data;
  (void)revents;
  ev_ref(evl); /* the timer stopped: give back the unref of its start */
  rs->retry_on = 0;
  rs_connect(rs);
}

/* Schedule a reconnection attempt after the backoff delay. */
static void retry_later(rs_t *rs) {
  if (rs->retry_on || rs->s->closing) return;
  ev_timer_set(&rs->retry, rs->backoff, 0);
  ev_timer_start(rs->evl, &rs->retry);
  ev_unref(rs->evl);
  rs->retry_on = 1;
  rs->backoff *= 2;
  if (rs->backoff > BACKOFF_MAX) rs->backoff = BACKOFF_MAX;
}

/* The connection is gone (rs->err says why): fail what waits for it, then
 * reconnect later. */
static void conn_down(rs_t *rs) {
  rop_t *o;
  rs->ac = NULL;
  rs->state = R_DOWN;
  while ((o = rs->qhead)) {
    rs->qhead = o->next;
    rs->nqueued--;
    rop_fail(rs, o, rs->err);
  }
  rs->qtail = NULL;
  retry_later(rs);
  wd_kick(rs);
}

/* Set rs->err to "redis host:port: <reason>" (first letter lowered). */
static void set_err(rs_t *rs, const char *fmt, va_list ap) {
  char why[300];
  vsnprintf(why, sizeof why, fmt, ap);
  if (why[0] >= 'A' && why[0] <= 'Z' && why[1] >= 'a' && why[1] <= 'z')
    why[0] = (char)(why[0] + 32);
  snprintf(rs->err, sizeof rs->err, "redis %s:%d: %s", rs->host, rs->port,
           why);
}

/* set_err with variable arguments. */
static void set_errf(rs_t *rs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* set_err with variable arguments. */
static void set_errf(rs_t *rs, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_err(rs, fmt, ap);
  va_end(ap);
}

/* Drop the connection ourselves (timeout, handshake error): operations in
 * flight fail with the reason. */
static void conn_drop(rs_t *rs, const char *fmt, ...) {
  redisAsyncContext *ac = rs->ac;
  va_list ap;
  if (!ac) return;
  va_start(ap, fmt);
  set_err(rs, fmt, ap);
  va_end(ap);
  conn_down(rs); /* rs->ac = NULL first: the NULL replies use rs->err */
  redisAsyncFree(ac);
}

/* hiredis: the TCP connection succeeded or failed. */
static void on_connect(const redisAsyncContext *ac, int status) {
  rs_t *rs = ac->data;
  if (status == REDIS_OK || ac != rs->ac) return;
  set_errf(rs, "%s", ac->errstr[0] ? ac->errstr : "cannot connect");
  conn_down(rs); /* hiredis frees ac after this */
}

/* hiredis: a connected context is going away. */
static void on_disconnect(const redisAsyncContext *ac, int status) {
  rs_t *rs = ac->data;
  (void)status;
  if (ac != rs->ac) return; /* dropped by us: handled */
  set_errf(rs, "%s", ac->err && ac->errstr[0] ? ac->errstr
                                              : "connection closed");
  conn_down(rs);
}

/* Reply of a handshake command (AUTH, SELECT); priv non-NULL on the last. */
static void hs_cb(redisAsyncContext *ac, void *rv, void *priv) {
  rs_t *rs = ac->data;
  redisReply *r = rv;
  rop_t *o;
  if (!r || ac != rs->ac) return;
  if (r->type == REDIS_REPLY_ERROR) {
    conn_drop(rs, "%s", r->str);
    return;
  }
  if (!priv) return;
  rs->state = R_READY;
  rs->backoff = BACKOFF_MIN;
  while ((o = rs->qhead) && rs->state == R_READY) {
    rs->qhead = o->next;
    if (!rs->qhead) rs->qtail = NULL;
    rs->nqueued--;
    o->next = NULL;
    rop_send(rs, o);
  }
}

/* Reply of SCRIPT LOAD of the batch script: remember its SHA1 (on an
 * error, batches with expectations send the body with EVAL). */
static void sha_cb(redisAsyncContext *ac, void *rv, void *priv) {
  rs_t *rs = ac->data;
  redisReply *r = rv;
  (void)priv;
  if (!r || ac != rs->ac) return;
  if (r->type == REDIS_REPLY_STRING && r->len < sizeof rs->sha)
    memcpy(rs->sha, r->str, r->len + 1);
}

/* Start connecting (state CONNECTING), or fail at once (DOWN). */
static void rs_connect(rs_t *rs) {
  redisAsyncContext *ac = redisAsyncConnect(rs->host, rs->port);
  const char *av[3];
  size_t al[3];
  char db[16];
  if (!ac || ac->err) {
    set_errf(rs, "%s", ac ? ac->errstr : "out of memory");
    if (ac) redisAsyncFree(ac);
    conn_down(rs);
    return;
  }
  ac->data = rs;
  ad_attach(rs->evl, ac);
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  rs->ac = ac;
  rs->state = R_CONNECTING;
  rs->t_conn = ev_now(rs->evl);
  if (rs->pass) {
    int n = 0;
    av[n] = "AUTH", al[n++] = 4;
    if (rs->user) av[n] = rs->user, al[n] = strlen(rs->user), n++;
    av[n] = rs->pass, al[n] = strlen(rs->pass), n++;
    redisAsyncCommandArgv(ac, hs_cb, NULL, n, av, al);
  }
  rs->sha[0] = 0;
  av[0] = "SCRIPT", al[0] = 6;
  av[1] = "LOAD", al[1] = 4;
  av[2] = batch_lua, al[2] = sizeof batch_lua - 1;
  redisAsyncCommandArgv(ac, sha_cb, NULL, 3, av, al);
  av[0] = "SELECT", al[0] = 6;
  al[1] = (size_t)snprintf(db, sizeof db, "%d", rs->db);
  av[1] = db;
  redisAsyncCommandArgv(ac, hs_cb, rs, 2, av, al);
  wd_kick(rs);
}

/* Watchdog: operations waited `timeout` seconds for the connection or for
 * a reply. */
static void wd_cb(struct ev_loop *evl, ev_timer *w, int revents) {
  rs_t *rs = w->data;
  double now = ev_now(evl), due;
  (void)revents;
  if (rs->state == R_CONNECTING && rs->nqueued) {
    due = rs->t_conn + rs->timeout;
    if (now >= due) {
      conn_drop(rs, "connect timeout (%gs)", rs->timeout);
      return;
    }
  } else if (rs->state == R_READY && rs->nsent) {
    due = rs->progress + rs->timeout;
    if (now >= due) {
      conn_drop(rs, "timeout (no reply in %gs)", rs->timeout);
      return;
    }
  } else {
    return;
  }
  ev_timer_set(w, due - now, 0);
  ev_timer_start(evl, w);
}

/* Keep the watchdog running exactly while operations wait. */
static void wd_kick(rs_t *rs) {
  int waiting = (rs->state == R_CONNECTING && rs->nqueued) ||
                (rs->state == R_READY && rs->nsent);
  if (waiting && !ev_is_active(&rs->wd)) {
    ev_timer_set(&rs->wd, rs->timeout, 0);
    ev_timer_start(rs->evl, &rs->wd);
  } else if (!waiting && ev_is_active(&rs->wd)) {
    ev_timer_stop(rs->evl, &rs->wd);
  }
}

/* ---- the store interface ----------------------------------------------- */

/* A new operation of kind on s about key in ns (started by the caller once
 * its numbers are set). */
static rop_t *rop_keyed(wf_store_t *s, int kind, const char *ns,
                        const char *key, wf_store_cb cb, void *ud) {
  rop_t *o = rop_new(s->be, kind, cb, ud);
  rop_args(o, ns, key);
  return o;
}

/* Get one key (GET). */
static void r_get(wf_store_t *s, const char *ns, const char *key,
                  wf_store_cb cb, void *ud) {
  rop_start(s->be, rop_keyed(s, K_GET, ns, key, cb, ud));
}

/* Scan through the scan script. */
static void r_scan(wf_store_t *s, const char *ns, const char *prefix,
                   size_t limit, wf_store_cb cb, void *ud) {
  rop_t *o = rop_keyed(s, K_SCAN, ns, prefix, cb, ud);
  o->n1 = (long long)limit;
  rop_start(s->be, o);
}

/* Range through the range script. */
static void r_range(wf_store_t *s, const char *ns, const char *key,
                    long long from, long long to, wf_store_cb cb, void *ud) {
  rop_t *o = rop_keyed(s, K_RANGE, ns, key, cb, ud);
  o->n1 = from;
  o->n2 = to;
  rop_start(s->be, o);
}

/* Size through the size script. */
static void r_size(wf_store_t *s, const char *ns, wf_store_cb cb, void *ud) {
  rop_start(s->be, rop_keyed(s, K_SIZE, ns, "", cb, ud));
}

/* The server's clock (TIME). */
static void r_time(wf_store_t *s, wf_store_cb cb, void *ud) {
  rs_t *rs = s->be;
  rop_start(rs, rop_new(rs, K_TIME, cb, ud));
}

/* A queue operation (take, reclaim, touch, info): see send_queue. */
static void r_queue(wf_store_t *s, const wf_store_qop_t *op, wf_store_cb cb,
                    void *ud) {
  static const int kinds[] = {[WF_SQ_TAKE] = K_QTAKE,
                              [WF_SQ_RECLAIM] = K_QRECLAIM,
                              [WF_SQ_TOUCH] = K_QTOUCH,
                              [WF_SQ_INFO] = K_QINFO};
  rop_t *o = rop_keyed(s, kinds[op->kind], op->q,
                       op->consumer ? op->consumer : "", cb, ud);
  o->n1 = (long long)op->n;
  o->n2 = op->min_idle;
  if (op->kind == WF_SQ_TOUCH) {
    o->n1 = (long long)op->nids;
    for (size_t i = 0; i < op->nids; i++) rop_more(o, op->ids[i]);
  }
  rop_start(s->be, o);
}

/* Commit as MULTI ... EXEC (with expectations: one call of the batch
 * script). */
static void r_commit(wf_store_batch_t *b, wf_store_cb cb, void *ud) {
  rs_t *rs = b->s->be;
  rop_t *o = rop_new(rs, K_COMMIT, cb, ud);
  o->b = b;
  rop_start(rs, o);
}

/* Close: in-flight and queued operations fail with "store closed". */
static void r_close(wf_store_t *s) {
  rs_t *rs = s->be;
  rop_t *o;
  if (!rs) return;
  snprintf(rs->err, sizeof rs->err, "store closed");
  if (rs->retry_on) {
    ev_ref(rs->evl);
    ev_timer_stop(rs->evl, &rs->retry);
    rs->retry_on = 0;
  }
  if (rs->ac) {
    redisAsyncContext *ac = rs->ac;
    rs->ac = NULL;
    redisAsyncFree(ac); /* in-flight operations fail: "store closed" */
  }
  while ((o = rs->qhead)) {
    rs->qhead = o->next;
    rop_fail(rs, o, rs->err);
  }
  ev_timer_stop(rs->evl, &rs->wd);
  while ((o = rs->free_ops)) {
    rs->free_ops = o->next;
    free(o->a);
    free(o);
  }
  for (int i = 0; i < 7; i++) free(rs->nb[i].p);
  free(rs->cbuf.p);
  free(rs->coff);
  free(rs->clen);
  free(rs->host);
  free(rs->user);
  free(rs->pass);
  free(rs);
}

/* Create the backend and start connecting (errors surface later). */
int wf_store_redis_open(wf_store_t *s, const char *host, int port, int db,
                        const char *user, const char *pass, double timeout,
                        wf_err_t *err) {
  rs_t *rs = wf_xcalloc(1, sizeof *rs);
  (void)err;
  rs->s = s;
  rs->evl = wf_loop_ev(s->loop);
  rs->host = wf_xstrdup(host);
  rs->user = user ? wf_xstrdup(user) : NULL;
  rs->pass = pass ? wf_xstrdup(pass) : NULL;
  rs->port = port;
  rs->db = db;
  rs->timeout = timeout;
  rs->backoff = BACKOFF_MIN;
  ev_timer_init(&rs->retry, retry_cb, 0, 0);
  rs->retry.data = rs;
  ev_timer_init(&rs->wd, wd_cb, 0, 0);
  rs->wd.data = rs;
  snprintf(rs->err, sizeof rs->err, "redis %s:%d: not connected", host,
           port);
  s->be = rs;
  rs_connect(rs);
  return WF_OK;
}

const wf_store_vt_t wf_store_redis_vt = {"redis",  r_get,  r_scan,  r_range,
                                         r_commit, r_size, r_close, r_time,
                                         r_queue};
