/* store_mem.c — the "memory:" backend of store.h, for tests: per
 * namespace, records and logs in arrays sorted by key (binary search,
 * memmove on insert); per queue, its items in an array sorted by id
 * (a counter that never goes back), each with its owner (NULL: waiting)
 * and the time it was last touched. A batch applies its writes one by one
 * and keeps an undo record for each, so that a failure (only an injected
 * one can happen) restores the state exactly; replaced or removed data is freed
 * only once the batch has succeeded. Results complete through store.c's
 * deferred completions. Depends on store_int.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

typedef struct mrec {
  char *key; /* NUL-terminated, followed by the value in the same block */
  size_t klen;
  char *val;
  size_t vlen;
} mrec_t;

typedef struct mval {
  char *v;
  size_t len;
} mval_t;

/* A log: live entries e[off..n), numbered last-(n-off)+1 .. last. */
typedef struct mlog {
  char *key;
  size_t klen;
  long long last;
  mval_t *e;
  size_t off, n, cap;
  unsigned long trim_gen; /* batch that last trimmed it (no compaction) */
} mlog_t;

/* A queue item; the payload follows in the same block. */
typedef struct mitem {
  long long id;
  char *owner;        /* malloc'd; NULL while waiting */
  long long touched;  /* ms, this machine's clock */
  size_t len;
  char payload[];
} mitem_t;

typedef struct mqueue {
  char *name;
  mitem_t **items;    /* by id */
  size_t n, cap;
  long long last;     /* the last id given */
} mqueue_t;

typedef struct mns {
  char *name;
  mrec_t **recs;
  size_t nrec, crec;
  mlog_t **logs;
  size_t nlog, clog;
} mns_t;

enum { U_REC_INSERT, U_REC_REPLACE, U_REC_REMOVE, U_LOG_REMOVE,
       U_LOG_APPEND, U_LOG_TRIM, U_QPUSH, U_QACK };

typedef struct mundo {
  int type;
  mns_t *ns;
  mrec_t *rec, *old; /* inserted/new record; replaced/removed record */
  mlog_t *log;
  int created;       /* append: the log was created by it */
  size_t off0, off1; /* trim: entries [off0, off1) dropped */
  mqueue_t *q;       /* queue push, ack */
  mitem_t *item;     /* ack: the removed item */
} mundo_t;

typedef struct mstore {
  mns_t **ns;
  size_t nns, cns;
  mqueue_t **qs;
  size_t nqs, cqs;
  mundo_t *undo;
  size_t nundo, cundo;
  unsigned long gen; /* batch generation */
} mstore_t;

/* Bytewise order, shorter first (memcmp, like SQLite and Redis). */
static int keycmp(const char *a, size_t al, const char *b, size_t bl) {
  int c = memcmp(a, b, al < bl ? al : bl);
  if (c) return c;
  return al < bl ? -1 : al > bl;
}

/* The namespace called name (created when create is set), or NULL. */
static mns_t *ns_get(mstore_t *m, const char *name, int create) {
  for (size_t i = 0; i < m->nns; i++)
    if (strcmp(m->ns[i]->name, name) == 0) return m->ns[i];
  if (!create) return NULL;
  mns_t *n = wf_xcalloc(1, sizeof *n);
  n->name = wf_xstrdup(name);
  WF_GROW(m->ns, m->cns, m->nns + 1);
  m->ns[m->nns++] = n;
  return n;
}

/* The key of item i of a sorted array (records or logs). */
typedef const char *(*mkey_fn)(const void *items, size_t i, size_t *kl);

/* Index of the first of the n sorted items whose key is >= key; *eq when
 * equal. */
static size_t key_find(const void *items, size_t n, mkey_fn keyof,
                       const char *key, size_t kl, int *eq) {
  size_t lo = 0, hi = n, il;
  const char *ik;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    ik = keyof(items, mid, &il);
    if (keycmp(ik, il, key, kl) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *eq = 0;
  if (lo < n) {
    ik = keyof(items, lo, &il);
    *eq = keycmp(ik, il, key, kl) == 0;
  }
  return lo;
}

/* mkey_fn for records. */
static const char *rec_key(const void *items, size_t i, size_t *kl) {
  const mrec_t *r = ((mrec_t *const *)items)[i];
  *kl = r->klen;
  return r->key;
}

/* mkey_fn for logs. */
static const char *log_key(const void *items, size_t i, size_t *kl) {
  const mlog_t *lg = ((mlog_t *const *)items)[i];
  *kl = lg->klen;
  return lg->key;
}

/* Index of the first record whose key is >= key; *eq when equal. */
static size_t rec_find(mns_t *n, const char *key, size_t kl, int *eq) {
  return key_find(n->recs, n->nrec, rec_key, key, kl, eq);
}

/* Same for logs. */
static size_t log_find(mns_t *n, const char *key, size_t kl, int *eq) {
  return key_find(n->logs, n->nlog, log_key, key, kl, eq);
}

/* A record holding copies of key and value in one block. */
static mrec_t *rec_new(const char *key, size_t kl, const char *v, size_t vl) {
  mrec_t *r = wf_xmalloc(sizeof *r + kl + 1 + vl + 1);
  r->key = (char *)(r + 1);
  memcpy(r->key, key, kl);
  r->key[kl] = 0;
  r->klen = kl;
  r->val = r->key + kl + 1;
  if (vl) memcpy(r->val, v, vl);
  r->val[vl] = 0;
  r->vlen = vl;
  return r;
}

/* Free a log and its live entries. */
static void log_free(mlog_t *lg) {
  for (size_t i = lg->off; i < lg->n; i++) free(lg->e[i].v);
  free(lg->e);
  free(lg->key);
  free(lg);
}

/* Insert p at index i of a pointer array. */
static void arr_insert(void ***arr, size_t *n, size_t *cap, size_t i,
                       void *p) {
  wf_grow((void **)arr, cap, *n + 1, sizeof(void *));
  memmove(*arr + i + 1, *arr + i, (*n - i) * sizeof(void *));
  (*arr)[i] = p;
  (*n)++;
}

/* Remove index i of a pointer array. */
static void arr_remove(void **arr, size_t *n, size_t i) {
  memmove(arr + i, arr + i + 1, (*n - i - 1) * sizeof(void *));
  (*n)--;
}

/* Record one more undo step of the current batch. */
static mundo_t *undo_push(mstore_t *m, int type, mns_t *ns) {
  WF_GROW(m->undo, m->cundo, m->nundo + 1);
  mundo_t *u = &m->undo[m->nundo++];
  memset(u, 0, sizeof *u);
  u->type = type;
  u->ns = ns;
  return u;
}

/* Put rec r (not yet in n) back at its place. */
static void rec_insert(mns_t *n, mrec_t *r) {
  int eq;
  size_t i = rec_find(n, r->key, r->klen, &eq);
  arr_insert((void ***)&n->recs, &n->nrec, &n->crec, i, r);
}

/* Put log lg (not yet in n) back at its place. */
static void log_insert(mns_t *n, mlog_t *lg) {
  int eq;
  size_t i = log_find(n, lg->key, lg->klen, &eq);
  arr_insert((void ***)&n->logs, &n->nlog, &n->clog, i, lg);
}

/* ---- writes ------------------------------------------------------------ */

static void do_put(mstore_t *m, mns_t *n, const char *key, size_t kl,
                   const char *v, size_t vl) {
  int eq;
  size_t i = rec_find(n, key, kl, &eq);
  mrec_t *r = rec_new(key, kl, v, vl);
  if (eq) {
    mundo_t *u = undo_push(m, U_REC_REPLACE, n);
    u->old = n->recs[i];
    u->rec = r;
    n->recs[i] = r;
  } else {
    mundo_t *u = undo_push(m, U_REC_INSERT, n);
    u->rec = r;
    arr_insert((void ***)&n->recs, &n->nrec, &n->crec, i, r);
  }
}

/* Remove records and logs whose key is in [lo, hi) (hi NULL: no bound). */
static void do_remove(mstore_t *m, mns_t *n, const char *lo, size_t lol,
                      const char *hi, size_t hil) {
  int eq;
  size_t i = rec_find(n, lo, lol, &eq);
  while (i < n->nrec &&
         (!hi || keycmp(n->recs[i]->key, n->recs[i]->klen, hi, hil) < 0)) {
    mundo_t *u = undo_push(m, U_REC_REMOVE, n);
    u->old = n->recs[i];
    arr_remove((void **)n->recs, &n->nrec, i);
  }
  i = log_find(n, lo, lol, &eq);
  while (i < n->nlog &&
         (!hi || keycmp(n->logs[i]->key, n->logs[i]->klen, hi, hil) < 0)) {
    mundo_t *u = undo_push(m, U_LOG_REMOVE, n);
    u->log = n->logs[i];
    arr_remove((void **)n->logs, &n->nlog, i);
  }
}

/* Move the live entries of lg to the front when that frees enough. */
static void log_compact(mstore_t *m, mlog_t *lg) {
  if (lg->trim_gen == m->gen || lg->off < 16 || lg->off * 2 < lg->n) return;
  memmove(lg->e, lg->e + lg->off, (lg->n - lg->off) * sizeof *lg->e);
  lg->n -= lg->off;
  lg->off = 0;
}

/* Append an entry (creating the log); returns its number. */
static long long do_append(mstore_t *m, mns_t *n, const char *key, size_t kl,
                           const char *v, size_t vl) {
  int eq;
  size_t i = log_find(n, key, kl, &eq);
  mlog_t *lg;
  mundo_t *u = undo_push(m, U_LOG_APPEND, n);
  if (eq) {
    lg = n->logs[i];
    log_compact(m, lg);
  } else {
    lg = wf_xcalloc(1, sizeof *lg);
    lg->key = wf_xmalloc(kl + 1);
    memcpy(lg->key, key, kl + 1);
    lg->klen = kl;
    arr_insert((void ***)&n->logs, &n->nlog, &n->clog, i, lg);
    u->created = 1;
  }
  u->log = lg;
  WF_GROW(lg->e, lg->cap, lg->n + 1);
  lg->e[lg->n].v = wf_xmalloc(vl + 1);
  if (vl) memcpy(lg->e[lg->n].v, v, vl);
  lg->e[lg->n].v[vl] = 0;
  lg->e[lg->n].len = vl;
  lg->n++;
  return ++lg->last;
}

/* Drop the entries of a log numbered below keep_from. */
static void do_trim(mstore_t *m, mns_t *n, const char *key, size_t kl,
                    long long keep_from) {
  int eq;
  size_t i = log_find(n, key, kl, &eq);
  if (!eq) return;
  mlog_t *lg = n->logs[i];
  log_compact(m, lg);
  long long first = lg->last - (long long)(lg->n - lg->off) + 1;
  if (keep_from <= first) return;
  long long drop = keep_from - first;
  if (drop > (long long)(lg->n - lg->off)) drop = (long long)(lg->n - lg->off);
  mundo_t *u = undo_push(m, U_LOG_TRIM, n);
  u->log = lg;
  u->off0 = lg->off;
  lg->off += (size_t)drop;
  u->off1 = lg->off;
  lg->trim_gen = m->gen;
}

/* ---- queues ------------------------------------------------------------ */

/* The queue called name (created when create is set), or NULL. */
static mqueue_t *mq_get(mstore_t *m, const char *name, int create) {
  for (size_t i = 0; i < m->nqs; i++)
    if (strcmp(m->qs[i]->name, name) == 0) return m->qs[i];
  if (!create) return NULL;
  mqueue_t *q = wf_xcalloc(1, sizeof *q);
  q->name = wf_xstrdup(name);
  WF_GROW(m->qs, m->cqs, m->nqs + 1);
  m->qs[m->nqs++] = q;
  return q;
}

/* Index of the first item of q whose id is >= id; *eq when equal. */
static size_t item_find(const mqueue_t *q, long long id, int *eq) {
  size_t lo = 0, hi = q->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (q->items[mid]->id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  *eq = lo < q->n && q->items[lo]->id == id;
  return lo;
}

/* Push an item at the tail of q; returns its id. */
static long long do_qpush(mstore_t *m, mqueue_t *q, const char *v,
                          size_t vl) {
  mitem_t *it = wf_xmalloc(sizeof *it + vl + 1);
  it->id = ++q->last;
  it->owner = NULL;
  it->touched = wf_store_now_ms();
  it->len = vl;
  if (vl) memcpy(it->payload, v, vl);
  it->payload[vl] = 0;
  arr_insert((void ***)&q->items, &q->n, &q->cap, q->n, it);
  undo_push(m, U_QPUSH, NULL)->q = q;
  return it->id;
}

/* Remove item id from q (kept for the undo until the batch succeeds). */
static void do_qack(mstore_t *m, mqueue_t *q, const char *id) {
  long long num;
  int eq;
  size_t i;
  if (!q || !wf_store_qid_num(id, &num)) return;
  i = item_find(q, num, &eq);
  if (!eq) return;
  mundo_t *u = undo_push(m, U_QACK, NULL);
  u->q = q;
  u->item = q->items[i];
  arr_remove((void **)q->items, &q->n, i);
}

/* Free an item. */
static void item_free(mitem_t *it) {
  if (!it) return;
  free(it->owner);
  free(it);
}

/* Undo the batch's writes, newest first. */
static void undo_all(mstore_t *m) {
  while (m->nundo) {
    mundo_t *u = &m->undo[--m->nundo];
    int eq;
    size_t i;
    switch (u->type) {
      case U_REC_INSERT:
        i = rec_find(u->ns, u->rec->key, u->rec->klen, &eq);
        arr_remove((void **)u->ns->recs, &u->ns->nrec, i);
        free(u->rec);
        break;
      case U_REC_REPLACE:
        i = rec_find(u->ns, u->rec->key, u->rec->klen, &eq);
        u->ns->recs[i] = u->old;
        free(u->rec);
        break;
      case U_REC_REMOVE:
        rec_insert(u->ns, u->old);
        break;
      case U_LOG_REMOVE:
        log_insert(u->ns, u->log);
        break;
      case U_LOG_APPEND:
        u->log->n--;
        free(u->log->e[u->log->n].v);
        u->log->last--;
        if (u->created) {
          i = log_find(u->ns, u->log->key, u->log->klen, &eq);
          arr_remove((void **)u->ns->logs, &u->ns->nlog, i);
          log_free(u->log);
        }
        break;
      case U_LOG_TRIM:
        u->log->off = u->off0;
        break;
      case U_QPUSH: /* the newest item of its queue */
        item_free(u->q->items[--u->q->n]);
        u->q->last--;
        break;
      case U_QACK:
        i = item_find(u->q, u->item->id, &eq);
        arr_insert((void ***)&u->q->items, &u->q->n, &u->q->cap, i, u->item);
        break;
    }
  }
}

/* The batch succeeded: free what it replaced or removed, oldest first. */
static void undo_commit(mstore_t *m) {
  for (size_t k = 0; k < m->nundo; k++) {
    mundo_t *u = &m->undo[k];
    switch (u->type) {
      case U_REC_REPLACE:
      case U_REC_REMOVE:
        free(u->old);
        break;
      case U_LOG_TRIM:
        for (size_t i = u->off0; i < u->off1; i++) {
          free(u->log->e[i].v);
          u->log->e[i].v = NULL;
        }
        if (u->log->off == u->log->n) u->log->off = u->log->n = 0;
        break;
      case U_LOG_REMOVE:
        log_free(u->log);
        break;
      case U_QACK:
        item_free(u->item);
        break;
    }
  }
  m->nundo = 0;
}

/* Check expectation o of b: 1 when it holds, else 0 (d failed). */
static int mem_check(void *be, wf_store_batch_t *b, const wf_store_op_t *o,
                     wf_store_done_t *d) {
  mstore_t *m = be;
  mns_t *n = ns_get(m, wf_sop_ns(b, o), 0);
  const char *key = wf_sop_key(b, o);
  int eq = 0;
  size_t i = 0;
  const mrec_t *r;
  if (o->type == WF_SOP_EXPECT_LAST) {
    if (n) i = log_find(n, key, o->klen, &eq);
    return wf_store_expect_holds(d, b, o, eq ? n->logs[i]->last : 0, 0, NULL,
                                 0);
  }
  if (n) i = rec_find(n, key, o->klen, &eq);
  r = eq ? n->recs[i] : NULL;
  return wf_store_expect_holds(d, b, o, 0, eq, r ? r->val : NULL,
                               r ? r->vlen : 0);
}

/* Apply a batch: its expectations checked first, then each write with an
 * undo step; undone on failure. */
static void mem_commit(wf_store_batch_t *b, wf_store_cb cb, void *ud) {
  wf_store_t *s = b->s;
  mstore_t *m = s->be;
  wf_store_done_t *d = wf_store_done_new(s, cb, ud);
  size_t after = 0;
  int inject = wf_store_take_injection(s, &after);
  if (!wf_store_check_expects(m, b, mem_check, d)) {
    wf_store_batch_release(b);
    wf_store_done_post(d);
    return;
  }
  m->gen++;
  m->nundo = 0;
  for (size_t k = 0; k < b->nops; k++) {
    const wf_store_op_t *o = &b->ops[k];
    if (inject && k == after) break;
    if (wf_sop_is_expect(o)) continue;
    const char *key = wf_sop_key(b, o);
    if (o->type == WF_SOP_QPUSH) {
      char id[24];
      long long v = do_qpush(m, mq_get(m, wf_sop_ns(b, o), 1),
                             wf_sop_val(b, o), o->vlen);
      wf_store_done_id(d, id, (size_t)snprintf(id, sizeof id, "%lld", v));
      continue;
    }
    if (o->type == WF_SOP_QACK) {
      do_qack(m, mq_get(m, wf_sop_ns(b, o), 0), key);
      continue;
    }
    mns_t *n = ns_get(m, wf_sop_ns(b, o), 1);
    switch (o->type) {
      case WF_SOP_PUT:
        do_put(m, n, key, o->klen, wf_sop_val(b, o), o->vlen);
        break;
      case WF_SOP_DEL:
        do_remove(m, n, key, o->klen, key, o->klen + 1); /* [key, key\0) */
        break;
      case WF_SOP_DEL_PREFIX: {
        char *hi = wf_xmalloc(o->klen + 1);
        size_t hl;
        int bounded = wf_store_prefix_succ(key, o->klen, hi, &hl);
        do_remove(m, n, key, o->klen, bounded ? hi : NULL, hl);
        free(hi);
        break;
      }
      case WF_SOP_APPEND:
        wf_store_done_seq(
            d, do_append(m, n, key, o->klen, wf_sop_val(b, o), o->vlen));
        break;
      case WF_SOP_TRIM:
        do_trim(m, n, key, o->klen, o->n);
        break;
    }
  }
  if (inject) {
    undo_all(m);
    wf_store_done_fail(d, "injected failure");
  } else {
    undo_commit(m);
  }
  wf_store_batch_release(b);
  wf_store_done_post(d);
}

/* ---- reads ------------------------------------------------------------- */

static void mem_get(wf_store_t *s, const char *ns, const char *key,
                    wf_store_cb cb, void *ud) {
  wf_store_done_t *d = wf_store_done_new(s, cb, ud);
  mns_t *n = ns_get(s->be, ns, 0);
  if (n) {
    int eq;
    size_t i = rec_find(n, key, strlen(key), &eq);
    if (eq) wf_store_done_value(d, n->recs[i]->val, n->recs[i]->vlen);
  }
  wf_store_done_post(d);
}

/* Records of ns under prefix, in key order. */
static void mem_scan(wf_store_t *s, const char *ns, const char *prefix,
                     size_t limit, wf_store_cb cb, void *ud) {
  wf_store_done_t *d = wf_store_done_new(s, cb, ud);
  mns_t *n = ns_get(s->be, ns, 0);
  size_t pl = strlen(prefix);
  if (n) {
    int eq;
    for (size_t i = rec_find(n, prefix, pl, &eq); i < n->nrec; i++) {
      mrec_t *r = n->recs[i];
      if (r->klen < pl || memcmp(r->key, prefix, pl) != 0) break;
      if (limit && d->n >= limit) break;
      wf_store_done_row(d, r->key, r->klen, r->val, r->vlen, 0);
    }
  }
  wf_store_done_post(d);
}

/* Entries from..to of a log. */
static void mem_range(wf_store_t *s, const char *ns, const char *key,
                      long long from, long long to, wf_store_cb cb,
                      void *ud) {
  wf_store_done_t *d = wf_store_done_new(s, cb, ud);
  mns_t *n = ns_get(s->be, ns, 0);
  if (n) {
    int eq;
    size_t i = log_find(n, key, strlen(key), &eq);
    if (eq) {
      mlog_t *lg = n->logs[i];
      long long first = lg->last - (long long)(lg->n - lg->off) + 1;
      if (from < first) from = first;
      if (to == 0 || to > lg->last) to = lg->last;
      for (long long q = from; q <= to; q++) {
        mval_t *e = &lg->e[lg->off + (size_t)(q - first)];
        wf_store_done_row(d, NULL, 0, e->v, e->len, q);
      }
    }
  }
  wf_store_done_post(d);
}

/* Sum of key and value lengths of ns. */
static void mem_size(wf_store_t *s, const char *ns, wf_store_cb cb,
                     void *ud) {
  wf_store_done_t *d = wf_store_done_new(s, cb, ud);
  mns_t *n = ns_get(s->be, ns, 0);
  size_t total = 0;
  if (n) {
    for (size_t i = 0; i < n->nrec; i++)
      total += n->recs[i]->klen + n->recs[i]->vlen;
    for (size_t i = 0; i < n->nlog; i++) {
      mlog_t *lg = n->logs[i];
      for (size_t k = lg->off; k < lg->n; k++)
        total += lg->klen + lg->e[k].len;
    }
  }
  d->len = total;
  wf_store_done_post(d);
}

/* Deliver item it (of a take or reclaim; owner: the previous one) to d,
 * now owned by consumer and touched at now. */
static void item_give(wf_store_done_t *d, mitem_t *it, const char *consumer,
                      long long now, const char *owner) {
  char id[24];
  wf_store_done_item(d, id, (size_t)snprintf(id, sizeof id, "%lld", it->id),
                     it->payload, it->len, owner);
  free(it->owner);
  it->owner = wf_xstrdup(consumer);
  it->touched = now;
}

/* A queue operation: take, reclaim, touch or info. */
static void mem_queue(wf_store_t *s, const wf_store_qop_t *op,
                      wf_store_cb cb, void *ud) {
  wf_store_done_t *d = wf_store_done_new(s, cb, ud);
  mqueue_t *q = mq_get(s->be, op->q, 0);
  long long now = wf_store_now_ms(), num;
  size_t i, k;
  int eq;
  for (i = 0; q && i < q->n; i++) {
    mitem_t *it = q->items[i];
    if (op->kind == WF_SQ_TAKE && !it->owner && d->n < op->n) {
      item_give(d, it, op->consumer, now, NULL);
    } else if (op->kind == WF_SQ_RECLAIM && it->owner && d->n < op->n &&
               now - it->touched >= op->min_idle) {
      char *was = it->owner;
      it->owner = NULL; /* item_give frees it: keep it for the row */
      item_give(d, it, op->consumer, now, was);
      free(was);
    } else if (op->kind == WF_SQ_INFO && !it->owner) {
      d->count++;
    } else if (op->kind == WF_SQ_INFO) {
      d->taken++;
    }
  }
  for (k = 0; q && op->kind == WF_SQ_TOUCH && k < op->nids; k++) {
    if (!wf_store_qid_num(op->ids[k], &num)) continue;
    i = item_find(q, num, &eq);
    if (!eq || !q->items[i]->owner ||
        strcmp(q->items[i]->owner, op->consumer) != 0)
      continue;
    q->items[i]->touched = now;
    d->count++;
  }
  if (q && op->kind == WF_SQ_INFO && d->taken) {
    /* per consumer, in name order: each owner once, counted */
    const char *prev = NULL;
    for (;;) {
      const char *next = NULL;
      long long c = 0;
      for (i = 0; i < q->n; i++) {
        const char *o = q->items[i]->owner;
        if (!o || (prev && strcmp(o, prev) <= 0)) continue;
        if (!next || strcmp(o, next) < 0) {
          next = o;
          c = 1;
        } else if (strcmp(o, next) == 0) {
          c++;
        }
      }
      if (!next) break;
      wf_store_done_row(d, next, strlen(next), "", 0, c);
      prev = next;
    }
  }
  wf_store_done_post(d);
}

/* Free every namespace and queue. */
static void mem_close(wf_store_t *s) {
  mstore_t *m = s->be;
  if (!m) return;
  for (size_t i = 0; i < m->nns; i++) {
    mns_t *n = m->ns[i];
    for (size_t k = 0; k < n->nrec; k++) free(n->recs[k]);
    for (size_t k = 0; k < n->nlog; k++) log_free(n->logs[k]);
    free(n->recs);
    free(n->logs);
    free(n->name);
    free(n);
  }
  for (size_t i = 0; i < m->nqs; i++) {
    mqueue_t *q = m->qs[i];
    for (size_t k = 0; k < q->n; k++) item_free(q->items[k]);
    free(q->items);
    free(q->name);
    free(q);
  }
  free(m->ns);
  free(m->qs);
  free(m->undo);
  free(m);
}

/* Open an empty memory store. */
int wf_store_mem_open(wf_store_t *s, wf_err_t *err) {
  (void)err;
  s->be = wf_xcalloc(1, sizeof(mstore_t));
  return WF_OK;
}

const wf_store_vt_t wf_store_mem_vt = {"memory",  mem_get,    mem_scan,
                                       mem_range, mem_commit, mem_size,
                                       mem_close, NULL,       mem_queue};
