/* store_int.h — private to runtime/store*.c: the backend vtable, the store
 * and batch structures, and what store.c shares with the backends:
 * deferred completions (wf_store_done_*), prefix bounds and failure
 * injection. Backends: store_mem.c, store_sqlite.c, store_redis.c.
 * Depends on store.h. */
#ifndef WF_STORE_INT_H
#define WF_STORE_INT_H

#include <stdarg.h>

#include "store.h"

/* ---- batches ----------------------------------------------------------- */

enum {
  WF_SOP_PUT = 1,
  WF_SOP_DEL,
  WF_SOP_DEL_PREFIX,
  WF_SOP_APPEND,
  WF_SOP_TRIM,
  WF_SOP_EXPECT,      /* n: 1 = the record must be absent */
  WF_SOP_EXPECT_LAST, /* n: the log's last number */
  WF_SOP_QPUSH,       /* ns: the queue, key "", val: the payload */
  WF_SOP_QACK         /* ns: the queue, key: the item id */
};

/* One write of a batch. Strings live in the batch buffer (NUL-terminated,
 * as offsets: the buffer may move while the batch grows). */
typedef struct wf_store_op {
  int type;
  size_t ns, key, val;  /* offsets into b->buf */
  size_t nslen, klen, vlen;
  long long n;          /* trim: keep_from; expect: see above */
} wf_store_op_t;

struct wf_store_batch {
  wf_store_t *s;
  wf_store_op_t *ops;
  size_t nops, opcap;
  char *buf;
  size_t blen, bcap;
  size_t nappend;       /* appends in the batch (seqs to report) */
  size_t nexpect;       /* expectations in the batch */
  size_t nqpush;        /* queue pushes in the batch (ids to report) */
  int bad;              /* a misuse recorded at build time: commit fails */
  wf_err_t err;
  wf_store_batch_t *next; /* store's free list */
};

/* The ns, key and value of op o of batch b. */
/* Whether op o is an expectation (checked before any write). */
static inline int wf_sop_is_expect(const wf_store_op_t *o) {
  return o->type == WF_SOP_EXPECT || o->type == WF_SOP_EXPECT_LAST;
}

static inline const char *wf_sop_ns(const wf_store_batch_t *b,
                                    const wf_store_op_t *o) {
  return b->buf + o->ns;
}
static inline const char *wf_sop_key(const wf_store_batch_t *b,
                                     const wf_store_op_t *o) {
  return b->buf + o->key;
}
static inline const char *wf_sop_val(const wf_store_batch_t *b,
                                     const wf_store_op_t *o) {
  return b->buf + o->val;
}

/* Give a batch back to its store (after a backend's commit is done). */
void wf_store_batch_release(wf_store_batch_t *b);

/* ---- deferred completions ---------------------------------------------- */

/* A result being built, delivered from the loop's deferred queue. Pooled
 * per store with its buffers. */
typedef struct wf_store_done wf_store_done_t;
struct wf_store_done {
  wf_defer_t defer;
  wf_store_t *s;
  wf_store_cb cb;
  void *ud;
  int status;
  int found;
  int conflict;          /* commit: an expectation failed */
  size_t len;            /* get: value length; size: the byte count */
  size_t val;            /* get: value offset in buf */
  size_t n, cap;         /* rows */
  size_t *koff, *klen, *voff, *vlen;
  long long *seqs;
  const char **kp, **vp; /* built at delivery */
  int has_keys, has_vals;
  long long count, taken; /* queue touch, info */
  size_t *aoff;          /* queue strings: push ids or reclaim owners */
  size_t naux, acap;
  const char **ap;       /* built at delivery */
  int aux_owners;        /* the queue strings are owners (reclaim) */
  char *buf;
  size_t blen, bcap;
  wf_err_t err;
  wf_store_done_t *prev, *next; /* pending list, then free list */
};

/* A completion for (cb, ud), to be filled and posted. */
wf_store_done_t *wf_store_done_new(wf_store_t *s, wf_store_cb cb, void *ud);
/* get: the record exists with this value. */
void wf_store_done_value(wf_store_done_t *d, const void *v, size_t len);
/* scan/range: one more row (k NULL for range; seq 0 for scan). */
void wf_store_done_row(wf_store_done_t *d, const char *k, size_t klen,
                       const void *v, size_t vlen, long long seq);
/* commit: the number given to the next appended entry. */
void wf_store_done_seq(wf_store_done_t *d, long long seq);
/* commit: the id given to the next queue push (len bytes, copied). */
void wf_store_done_id(wf_store_done_t *d, const char *id, size_t len);
/* take, reclaim: one more item (copied); owner: its previous owner
 * (reclaim) or NULL (take). */
void wf_store_done_item(wf_store_done_t *d, const char *id, size_t idlen,
                        const void *payload, size_t len, const char *owner);
/* Fail with a message (rows added so far are dropped). */
void wf_store_done_fail(wf_store_done_t *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void wf_store_done_vfail(wf_store_done_t *d, const char *fmt, va_list ap);
/* Fail a commit because expectation o of b does not hold; got: what the
 * store holds ("absent", "a different value", or the log's last number). */
void wf_store_done_conflict(wf_store_done_t *d, const wf_store_batch_t *b,
                            const wf_store_op_t *o, const char *got);
/* Judge expectation o of b against what a backend holds: the log's last
 * number (0 when none) for WF_SOP_EXPECT_LAST, else whether the record is
 * present and its value. 1 when it holds, else 0 with d failed as a
 * conflict (wf_store_done_conflict). */
int wf_store_expect_holds(wf_store_done_t *d, const wf_store_batch_t *b,
                          const wf_store_op_t *o, long long last, int present,
                          const void *val, size_t vlen);
/* A backend's judgement of expectation o of b: 1 when it holds, 0 when
 * not (d failed as a conflict), -1 on a backend error. */
typedef int (*wf_store_check_fn)(void *be, wf_store_batch_t *b,
                                 const wf_store_op_t *o, wf_store_done_t *d);
/* Judge the expectations of b in order with check on backend be: the first
 * result that is not 1, or 1 when all hold (or b has none). */
int wf_store_check_expects(void *be, wf_store_batch_t *b,
                           wf_store_check_fn check, wf_store_done_t *d);
/* Queue the completion: its callback runs from the loop. */
void wf_store_done_post(wf_store_done_t *d);
/* Post a failure for (cb, ud) at once. */
void wf_store_fail(wf_store_t *s, wf_store_cb cb, void *ud, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));

/* ---- queues ------------------------------------------------------------ */

enum { WF_SQ_TAKE = 1, WF_SQ_RECLAIM, WF_SQ_TOUCH, WF_SQ_INFO };

/* A queue operation (not a batch op), checked by store.c: q is a valid
 * name, consumer non-empty (take, reclaim, touch), n >= 1 (take,
 * reclaim), ids well-formed (touch). Valid during the backend call only. */
typedef struct wf_store_qop {
  int kind;              /* WF_SQ_* */
  const char *q, *consumer;
  size_t n;
  long long min_idle;    /* reclaim: ms */
  const char *const *ids;
  size_t nids;
} wf_store_qop_t;

/* ---- backends ---------------------------------------------------------- */

typedef struct wf_store_vt {
  const char *kind;
  void (*get)(wf_store_t *s, const char *ns, const char *key, wf_store_cb cb,
              void *ud);
  void (*scan)(wf_store_t *s, const char *ns, const char *prefix,
               size_t limit, wf_store_cb cb, void *ud);
  void (*range)(wf_store_t *s, const char *ns, const char *key,
                long long from, long long to, wf_store_cb cb, void *ud);
  /* Owns b: wf_store_batch_release it when done. b->bad is never set. */
  void (*commit)(wf_store_batch_t *b, wf_store_cb cb, void *ud);
  void (*size)(wf_store_t *s, const char *ns, wf_store_cb cb, void *ud);
  /* Stop I/O, fail what is in flight (through completions), free the
   * backend state. */
  void (*close)(wf_store_t *s);
  /* The store's clock (NULL: this machine's, see wf_store_time). */
  void (*time)(wf_store_t *s, wf_store_cb cb, void *ud);
  /* A queue operation (take, reclaim, touch, info); batch ops of queues
   * (WF_SOP_QPUSH, WF_SOP_QACK) go through commit. */
  void (*queue)(wf_store_t *s, const wf_store_qop_t *op, wf_store_cb cb,
                void *ud);
} wf_store_vt_t;

/* One registered secret (see wf_store_add_secret). */
typedef struct wf_store_secret {
  char *p;
  size_t len;
} wf_store_secret_t;

struct wf_store {
  const wf_store_vt_t *vt;
  void *be;              /* the backend's state */
  wf_loop_t *loop;
  char *url;             /* password redacted */
  int closing;
  int delivering;        /* >0 while a callback runs */
  int inject;            /* wf_store_inject_failure pending */
  size_t inject_after;
  wf_store_done_t *pend_head, *pend_tail; /* posted, not yet delivered */
  wf_store_done_t *free_dones;
  int nfree_dones;
  wf_store_batch_t *free_batches;
  int nfree_batches;
  wf_store_secret_t *secrets; /* longest first */
  size_t nsecrets, secretcap;
  char *scrub;           /* the last redacted key or value (malloc'd) */
  char *warning;         /* see wf_store_warning; NULL: none */
};

/* Backend openers: fill s->be (and s->warning, if any) or fail with
 * err. */
int wf_store_mem_open(wf_store_t *s, wf_err_t *err);
int wf_store_sqlite_open(wf_store_t *s, const char *path, wf_err_t *err);
/* user/pass may be NULL; timeout in seconds (connect and reply). */
int wf_store_redis_open(wf_store_t *s, const char *host, int port, int db,
                        const char *user, const char *pass, double timeout,
                        wf_err_t *err);
extern const wf_store_vt_t wf_store_mem_vt, wf_store_sqlite_vt,
    wf_store_redis_vt;

/* ---- helpers ----------------------------------------------------------- */

/* The least string above every string that starts with p (len n): written
 * to out (n bytes of room), its length in *outlen. 0 when there is none
 * (p empty or all 0xff bytes: the range is unbounded above), else 1. */
int wf_store_prefix_succ(const char *p, size_t n, char *out, size_t *outlen);
/* Consume a pending injected failure: 1 and *after when there is one. */
int wf_store_take_injection(wf_store_t *s, size_t *after);
/* This machine's clock in ms since the epoch (the store's clock of sqlite
 * and memory). */
long long wf_store_now_ms(void);
/* A queue item id of the sqlite and memory backends (decimal, > 0): 1 and
 * *out, or 0 for any other id (which no item has). */
int wf_store_qid_num(const char *id, long long *out);

#endif
