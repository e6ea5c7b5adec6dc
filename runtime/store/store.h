/* store.h — the persistence interface: one API over three backends,
 * "sqlite:PATH" (embedded, WAL), "redis://host:port/db" (hiredis,
 * asynchronous on the loop) and "memory:" (tests). The data model is small
 * and enough for checkpoints, journals, threads and definitions:
 *   - records: (ns, key) -> bytes, with put / get / del / scan by key prefix;
 *   - logs: (ns, key) -> an append-only sequence of entries numbered from 1,
 *     read by range, trimmed from the front;
 *   - batches: several writes applied atomically (one SQLite transaction,
 *     one Redis MULTI/EXEC);
 *   - queues: work items pushed at the tail, taken by consumers that own
 *     them until they acknowledge them, reclaimed from owners that stopped
 *     touching them (Redis: a stream read through a consumer group).
 * Every operation completes through a callback (redis: when the reply
 * arrives; sqlite and memory: from a deferred callback, never inside the
 * call), which never runs Lua. Depends on loop.h, sqlite3, hiredis.
 *
 * Names: ns is 1..128 bytes of [A-Za-z0-9_.:/-] (it becomes part of Redis
 * key names); keys and prefixes are any NUL-free strings, values any bytes.
 * Keys sort bytewise (memcmp, shorter first) on every backend. A bad ns
 * fails the operation (a batch: its commit) with an error naming it.
 * docs/store.md describes the SQLite schema and the Redis key layout. */
#ifndef WF_STORE_H
#define WF_STORE_H

#include "loop.h"

typedef struct wf_store wf_store_t;
typedef struct wf_store_batch wf_store_batch_t;

/* Result of an operation, valid during the callback only. */
typedef struct wf_store_result {
  int status;          /* WF_OK, or WF_ERR with err set */
  const char *err;     /* "redis 127.0.0.1:6379: connection refused", ... */
  const char *value;   /* get: the bytes (NULL when absent) */
  size_t len;
  int found;           /* get: 1 when the record exists */
  /* scan: keys and values in key order; range: entries in order */
  size_t n;
  const char *const *keys;   /* scan: keys; range: NULL */
  const char *const *values;
  const size_t *lens;
  const long long *seqs;     /* range: entry numbers; append: first new;
                                time: seqs[0] = the store's clock in ms */
  int conflict;        /* commit: an expectation failed, nothing written */
  /* queues. take, reclaim: n items, keys = their ids, values and lens =
   * their payloads, oldest first; reclaim: owners[i] = who held item i
   * before (else NULL). commit: ids[0..nids) = the id given to each queue
   * push, in order (else NULL, 0). touch: count = the ids still owned.
   * info: count = items waiting (never taken), taken = items owned and
   * not acknowledged; n consumers in name order, keys = their names,
   * seqs = the items each owns. */
  const char *const *owners;
  const char *const *ids;
  size_t nids;
  long long count, taken;
} wf_store_result_t;

typedef void (*wf_store_cb)(void *ud, const wf_store_result_t *r);

/* Open url ("sqlite:PATH", "redis://[[user]:password@]host[:port][/db]
 * [?timeout=SECONDS]", "memory:"); for sqlite the file, its parent
 * directory and its schema are created if needed (a read-only or corrupt
 * file, or one with another schema version, is an error naming it; nothing
 * is overwritten); for redis the connection is made asynchronously
 * (errors surface on the first operation; while the server is unreachable
 * operations fail at once and the store reconnects in the background).
 * NULL with err on a bad url. */
wf_store_t *wf_store_open(wf_loop_t *l, const char *url, wf_err_t *err);
/* Close: stop the backend's I/O and deliver every pending callback before
 * returning (sqlite, memory: with its result, as the operation already ran;
 * redis: replies still awaited fail with "store closed" — a batch in
 * flight may or may not have been applied). Callbacks may call it; call it
 * once. NULL is a no-op. */
void wf_store_close(wf_store_t *s);
/* The backend: "sqlite", "redis" or "memory". */
const char *wf_store_kind(const wf_store_t *s);
/* The url it was opened with, any password replaced by "***". */
const char *wf_store_url(const wf_store_t *s);
/* What opening found worth a warning (sqlite: a directory or files that
 * group or others can access — see docs/store.md "File modes"), or NULL.
 * The store works; the caller decides how to report it. */
const char *wf_store_warning(const wf_store_t *s);

/* Secrets: every value and key written through s (put, append, and the
 * keys of del, del_prefix, trim) has each occurrence of a registered
 * secret replaced by WF_STORE_REDACTED before the backend sees it; keys
 * given to get, scan and range are rewritten the same way, so they find
 * what was written. Redaction is one memmem per secret per value (none
 * when no secret is registered); values that hold a secret are rewritten
 * (longest secret first). */
#define WF_STORE_REDACTED "[redacted]"
/* The shortest secret accepted, in bytes (shorter ones are ignored). */
#define WF_STORE_SECRET_MIN 8
/* Register secret (len bytes, copied) with s; ignores one shorter than
 * WF_STORE_SECRET_MIN or already registered. */
void wf_store_add_secret(wf_store_t *s, const char *secret, size_t len);
/* Number of secrets registered with s. */
size_t wf_store_secret_count(const wf_store_t *s);

void wf_store_get(wf_store_t *s, const char *ns, const char *key,
                  wf_store_cb cb, void *ud);
/* Records whose key starts with prefix, in key order, at most limit
 * (0: all). */
void wf_store_scan(wf_store_t *s, const char *ns, const char *prefix,
                   size_t limit, wf_store_cb cb, void *ud);
/* Entries of log (ns, key) numbered from..to inclusive (from <= 1: the
 * first; to 0: the last); none for a log that does not exist. */
void wf_store_range(wf_store_t *s, const char *ns, const char *key,
                    long long from, long long to, wf_store_cb cb, void *ud);

/* A batch of writes; nothing happens until wf_store_commit. */
wf_store_batch_t *wf_store_batch(wf_store_t *s);
void wf_store_put(wf_store_batch_t *b, const char *ns, const char *key,
                  const char *val, size_t len);
/* Delete the record (ns, key) and the log (ns, key) (its numbering starts
 * again from 1). */
void wf_store_del(wf_store_batch_t *b, const char *ns, const char *key);
/* Delete every record of ns whose key starts with prefix, and the logs
 * with that key prefix. */
void wf_store_del_prefix(wf_store_batch_t *b, const char *ns,
                         const char *prefix);
/* Append an entry to log (ns, key); it is numbered one past the last
 * number the log gave (trimming never renumbers; del restarts at 1). */
void wf_store_append(wf_store_batch_t *b, const char *ns, const char *key,
                     const char *val, size_t len);
/* Drop the entries of a log numbered below keep_from. */
void wf_store_trim(wf_store_batch_t *b, const char *ns, const char *key,
                   long long keep_from);
/* Conditions of a batch: checked when it commits, before any of its
 * writes and atomically with them (inside the SQLite transaction; on
 * Redis one server-side script runs the checks and the writes). If one
 * does not hold, nothing is written and the commit fails with
 * r->conflict set and an error naming the record or log. */
/* Record (ns, key) must hold exactly val (len bytes, redacted like a put),
 * or, with val NULL, must not exist. */
void wf_store_expect(wf_store_batch_t *b, const char *ns, const char *key,
                     const char *val, size_t len);
/* Log (ns, key) must have given exactly `last` numbers (0: never appended
 * to, or deleted). */
void wf_store_expect_last(wf_store_batch_t *b, const char *ns,
                          const char *key, long long last);
/* Append an item holding payload (len bytes, copied, redacted like a
 * value) to queue q (named like an ns); commit reports its id in r->ids. */
void wf_store_queue_push(wf_store_batch_t *b, const char *q,
                         const char *payload, size_t len);
/* Acknowledge item id of queue q: it is gone for good (an unknown or
 * already acknowledged id is no error). A malformed id (see the queues
 * below) fails the commit. */
void wf_store_queue_ack(wf_store_batch_t *b, const char *q, const char *id);
/* Apply every write atomically, then cb (status; for appends, seqs holds
 * the number given to each appended entry in order; for queue pushes,
 * ids holds the id of each pushed item in order). Takes ownership of
 * b. */
void wf_store_commit(wf_store_batch_t *b, wf_store_cb cb, void *ud);
/* Discard an uncommitted batch. */
void wf_store_discard(wf_store_batch_t *b);
/* For tests: the next commit fails ("injected failure") after `after` of
 * its writes were applied (memory: then undone; sqlite: inside the
 * transaction, then rolled back; redis: a command that fails is queued in
 * the MULTI, so EXEC discards the transaction). */
void wf_store_inject_failure(wf_store_t *s, size_t after);

/* The store's clock: milliseconds since the epoch in r->seqs[0] (redis:
 * the server's TIME, so that processes on several machines agree;
 * sqlite and memory: this machine's clock). */
void wf_store_time(wf_store_t *s, wf_store_cb cb, void *ud);

/* Queues. q is named like an ns (1..128 of [A-Za-z0-9_.:/-]); an item
 * id is a string, unique per queue and ordered as pushed (redis: the
 * stream id "MS-SEQ"; sqlite, memory: a decimal counter that never gives
 * a number twice); ids given to touch and ack are 1..19 digits, optionally
 * '-' and 1..19 digits. A consumer is a non-empty NUL-free string. An item
 * is waiting until taken, then owned by its consumer until acknowledged
 * (wf_store_queue_ack in a batch) or reclaimed. Idle times are measured by
 * the store's clock (redis: the server's; sqlite, memory: this machine's).
 * Results: see wf_store_result_t. docs/store.md "Queues". */
/* Take up to n (>= 1) waiting items of q, oldest first; they are owned by
 * consumer. Never waits for items: none when there are none. */
void wf_store_queue_take(wf_store_t *s, const char *q, const char *consumer,
                         size_t n, wf_store_cb cb, void *ud);
/* Take over up to n (>= 1) owned items of q, whoever owns them, that
 * nobody touched for at least min_idle ms, oldest first; their idle time
 * restarts and r->owners says who had them. */
void wf_store_queue_reclaim(wf_store_t *s, const char *q,
                            const char *consumer, long long min_idle,
                            size_t n, wf_store_cb cb, void *ud);
/* Restart the idle time of those of ids[0..nids) that consumer still
 * owns (r->count of them); items owned by others are left alone. */
void wf_store_queue_touch(wf_store_t *s, const char *q, const char *consumer,
                          const char *const *ids, size_t nids,
                          wf_store_cb cb, void *ud);
/* Counts of q: r->count waiting, r->taken owned, per consumer in rows. */
void wf_store_queue_info(wf_store_t *s, const char *q, wf_store_cb cb,
                         void *ud);

/* Bytes the backend holds for ns (the sum of key and value lengths of its
 * records and log entries), in r->len, for the storage-growth spec. */
void wf_store_size(wf_store_t *s, const char *ns, wf_store_cb cb, void *ud);

#endif
