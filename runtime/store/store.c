/* store.c — the persistence interface of store.h: url parsing, dispatch to
 * the backend (store_mem.c, store_sqlite.c, store_redis.c), name checks,
 * batches (built here, applied by the backend) and deferred completions:
 * a backend fills a wf_store_done_t and posts it; its callback runs from
 * the loop's deferred queue, never inside the call that started the
 * operation. Completions and batches are pooled per store so that a
 * steady stream of small operations does not allocate. Every key and value
 * passes through here on its way to a backend, so this is where registered
 * secrets are redacted (scrub), for all three backends.
 * Depends on store_int.h, loop.h, common.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_int.h"

#define DONE_POOL_MAX 64
#define BATCH_POOL_MAX 8
#define POOL_KEEP_BYTES (256u << 10) /* larger buffers are not kept */
#define NS_MAX 128

/* ---- names ------------------------------------------------------------- */

/* 1 when ns is a valid namespace name. */
static int ns_ok(const char *ns) {
  size_t n = 0;
  if (!ns) return 0;
  for (const char *p = ns; *p; p++, n++) {
    char c = *p;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' ||
          c == '/' || c == '-'))
      return 0;
  }
  return n >= 1 && n <= NS_MAX;
}

/* Describe a bad name (noun: "ns" or "queue") into e. */
static void ns_complain(wf_err_t *e, const char *what, const char *noun,
                        const char *ns) {
  if (!ns)
    wf_err_set(e, "%s: %s is NULL", what, noun);
  else
    wf_err_set(e,
               "%s: bad %s '%.*s' (1..%d characters of A-Z a-z 0-9 _ . : / -)",
               what, noun, 200, ns, NS_MAX);
}

/* Length of the run of 1..19 digits at p, or 0. */
static size_t digits(const char *p) {
  size_t n = 0;
  while (p[n] >= '0' && p[n] <= '9') n++;
  return n <= 19 ? n : 0;
}

/* 1 when id is a well-formed queue item id: 1..19 digits, optionally '-'
 * and 1..19 digits (what every backend accepts; store.h). */
static int qid_ok(const char *id) {
  size_t n = id ? digits(id) : 0;
  if (!n) return 0;
  if (!id[n]) return 1;
  return id[n] == '-' && digits(id + n + 1) && !id[n + 1 + digits(id + n + 1)];
}

/* A sqlite or memory item id (decimal): see store_int.h. */
int wf_store_qid_num(const char *id, long long *out) {
  char *e;
  long long v;
  if (!digits(id) || id[digits(id)]) return 0;
  errno = 0;
  v = strtoll(id, &e, 10);
  if (errno || *e || v <= 0) return 0;
  *out = v;
  return 1;
}

/* This machine's clock in ms since the epoch. */
long long wf_store_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Prefix successor: see store_int.h. */
int wf_store_prefix_succ(const char *p, size_t n, char *out, size_t *outlen) {
  while (n > 0 && (unsigned char)p[n - 1] == 0xff) n--;
  if (n == 0) return 0;
  memcpy(out, p, n);
  out[n - 1] = (char)((unsigned char)out[n - 1] + 1);
  *outlen = n;
  return 1;
}

/* Consume a pending injected failure (1 and *after when there is one). */
int wf_store_take_injection(wf_store_t *s, size_t *after) {
  if (!s->inject) return 0;
  s->inject = 0;
  *after = s->inject_after;
  return 1;
}

/* Make the next commit fail after `after` writes (tests). */
void wf_store_inject_failure(wf_store_t *s, size_t after) {
  s->inject = 1;
  s->inject_after = after;
}

/* ---- secrets ----------------------------------------------------------- */

/* Register a secret with s (see store.h); kept longest first, so that a
 * secret containing another is replaced whole. */
void wf_store_add_secret(wf_store_t *s, const char *secret, size_t len) {
  size_t i;
  if (!secret || len < WF_STORE_SECRET_MIN) return;
  for (i = 0; i < s->nsecrets; i++)
    if (s->secrets[i].len == len && memcmp(s->secrets[i].p, secret, len) == 0)
      return;
  WF_GROW(s->secrets, s->secretcap, s->nsecrets + 1);
  for (i = s->nsecrets; i > 0 && s->secrets[i - 1].len < len; i--)
    s->secrets[i] = s->secrets[i - 1];
  s->secrets[i].p = wf_xmalloc(len);
  memcpy(s->secrets[i].p, secret, len);
  s->secrets[i].len = len;
  s->nsecrets++;
}

/* Number of secrets registered with s. */
size_t wf_store_secret_count(const wf_store_t *s) { return s->nsecrets; }

/* A copy of p (n bytes) with every occurrence of sec replaced by
 * WF_STORE_REDACTED (malloc'd, NUL-terminated); its length in *outn. */
static char *replace_all(const char *p, size_t n, const wf_store_secret_t *sec,
                         size_t *outn) {
  const size_t rl = sizeof WF_STORE_REDACTED - 1;
  size_t cap = n + 1, len = 0;
  char *out = wf_xmalloc(cap);
  const char *q = p, *end = p + n, *hit;
  while ((hit = memmem(q, (size_t)(end - q), sec->p, sec->len))) {
    size_t pre = (size_t)(hit - q);
    if (cap < len + pre + rl + 1) {
      while (cap < len + pre + rl + 1) cap *= 2;
      out = wf_xrealloc(out, cap);
    }
    memcpy(out + len, q, pre);
    memcpy(out + len + pre, WF_STORE_REDACTED, rl);
    len += pre + rl;
    q = hit + sec->len;
  }
  if (cap < len + (size_t)(end - q) + 1)
    out = wf_xrealloc(out, len + (size_t)(end - q) + 1);
  memcpy(out + len, q, (size_t)(end - q));
  len += (size_t)(end - q);
  out[len] = 0;
  *outn = len;
  return out;
}

/* p (n bytes) as it may be stored: p itself when it holds no registered
 * secret (one memmem per secret), else a redacted copy in s->scrub, valid
 * until the next call (NUL-terminated). Its length in *outn. */
static const char *scrub(wf_store_t *s, const char *p, size_t n,
                         size_t *outn) {
  size_t i;
  char *cur;
  *outn = n;
  if (n == 0) return p;
  for (i = 0; i < s->nsecrets; i++)
    if (s->secrets[i].len <= n &&
        memmem(p, n, s->secrets[i].p, s->secrets[i].len))
      break;
  if (i == s->nsecrets) return p;
  /* rare: rewrite, secret by secret (those before i are absent) */
  cur = replace_all(p, n, &s->secrets[i], &n);
  for (i++; i < s->nsecrets; i++) {
    if (s->secrets[i].len > n ||
        !memmem(cur, n, s->secrets[i].p, s->secrets[i].len))
      continue;
    char *next = replace_all(cur, n, &s->secrets[i], &n);
    free(cur);
    cur = next;
  }
  free(s->scrub);
  s->scrub = cur;
  *outn = n;
  return cur;
}

/* A NUL-terminated string (a key) as it may be stored: see scrub. */
static const char *scrub_str(wf_store_t *s, const char *str) {
  size_t n;
  if (!str || !s->nsecrets) return str;
  return scrub(s, str, strlen(str), &n);
}

/* ---- completions ------------------------------------------------------- */

static void done_deliver(wf_defer_t *dn);

/* A completion for (cb, ud), from the pool. */
wf_store_done_t *wf_store_done_new(wf_store_t *s, wf_store_cb cb, void *ud) {
  wf_store_done_t *d = s->free_dones;
  if (d) {
    s->free_dones = d->next;
    s->nfree_dones--;
  } else {
    d = wf_xcalloc(1, sizeof *d);
    d->defer.cb = done_deliver;
  }
  d->s = s;
  d->cb = cb;
  d->ud = ud;
  d->status = WF_OK;
  d->found = 0;
  d->conflict = 0;
  d->len = d->val = 0;
  d->n = 0;
  d->has_keys = d->has_vals = 0;
  d->count = d->taken = 0;
  d->naux = 0;
  d->aux_owners = 0;
  d->blen = 0;
  d->err.msg[0] = 0;
  d->prev = d->next = NULL;
  return d;
}

/* Copy n bytes to the end of d's buffer (plus a NUL); returns the offset. */
static size_t done_copy(wf_store_done_t *d, const void *p, size_t n) {
  size_t off = d->blen;
  if (d->bcap - d->blen < n + 1) {
    size_t c = d->bcap ? d->bcap : 256;
    while (c - d->blen < n + 1) c *= 2;
    d->buf = wf_xrealloc(d->buf, c);
    d->bcap = c;
  }
  if (n) memcpy(d->buf + off, p, n);
  d->buf[off + n] = 0;
  d->blen = off + n + 1;
  return off;
}

/* get: the record exists with value v (copied). */
void wf_store_done_value(wf_store_done_t *d, const void *v, size_t len) {
  d->found = 1;
  d->len = len;
  d->val = done_copy(d, v, len);
}

/* Make room for one more row. */
static void done_grow(wf_store_done_t *d) {
  if (d->n < d->cap) return;
  size_t c = d->cap ? d->cap * 2 : 16;
  d->koff = wf_xrealloc(d->koff, c * sizeof *d->koff);
  d->klen = wf_xrealloc(d->klen, c * sizeof *d->klen);
  d->voff = wf_xrealloc(d->voff, c * sizeof *d->voff);
  d->vlen = wf_xrealloc(d->vlen, c * sizeof *d->vlen);
  d->seqs = wf_xrealloc(d->seqs, c * sizeof *d->seqs);
  d->kp = wf_xrealloc(d->kp, c * sizeof *d->kp);
  d->vp = wf_xrealloc(d->vp, c * sizeof *d->vp);
  d->cap = c;
}

/* scan/range: append one row (copied). */
void wf_store_done_row(wf_store_done_t *d, const char *k, size_t klen,
                       const void *v, size_t vlen, long long seq) {
  done_grow(d);
  if (k) {
    d->has_keys = 1;
    d->koff[d->n] = done_copy(d, k, klen);
    d->klen[d->n] = klen;
  }
  d->has_vals = 1;
  d->voff[d->n] = done_copy(d, v, vlen);
  d->vlen[d->n] = vlen;
  d->seqs[d->n] = seq;
  d->n++;
}

/* commit: the number given to the next appended entry. */
void wf_store_done_seq(wf_store_done_t *d, long long seq) {
  done_grow(d);
  d->seqs[d->n++] = seq;
}

/* Add one queue string (a push id or a reclaimed item's owner). */
static void done_aux(wf_store_done_t *d, const char *p, size_t n) {
  if (d->naux == d->acap) {
    d->acap = d->acap ? d->acap * 2 : 16;
    d->aoff = wf_xrealloc(d->aoff, d->acap * sizeof *d->aoff);
    d->ap = wf_xrealloc(d->ap, d->acap * sizeof *d->ap);
  }
  d->aoff[d->naux++] = done_copy(d, p, n);
}

/* commit: the id given to the next queue push. */
void wf_store_done_id(wf_store_done_t *d, const char *id, size_t len) {
  done_aux(d, id, len);
}

/* take, reclaim: one more item (owner NULL for take). */
void wf_store_done_item(wf_store_done_t *d, const char *id, size_t idlen,
                        const void *payload, size_t len, const char *owner) {
  wf_store_done_row(d, id, idlen, payload, len, 0);
  if (!owner) return;
  d->aux_owners = 1;
  done_aux(d, owner, strlen(owner));
}

/* Fail d with a formatted message (va_list form). */
void wf_store_done_vfail(wf_store_done_t *d, const char *fmt, va_list ap) {
  d->status = WF_ERR;
  vsnprintf(d->err.msg, sizeof d->err.msg, fmt, ap);
  d->n = 0;
  d->naux = 0;
  d->found = 0;
  d->len = 0;
  d->count = d->taken = 0;
}

/* Fail d with a formatted message. */
void wf_store_done_fail(wf_store_done_t *d, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  wf_store_done_vfail(d, fmt, ap);
  va_end(ap);
}

/* Fail a commit on expectation o of b. */
void wf_store_done_conflict(wf_store_done_t *d, const wf_store_batch_t *b,
                            const wf_store_op_t *o, const char *got) {
  if (o->type == WF_SOP_EXPECT_LAST)
    wf_store_done_fail(d, "conflict: log %s/%s has %s entries, expected %lld",
                       wf_sop_ns(b, o), wf_sop_key(b, o), got, o->n);
  else
    wf_store_done_fail(d, "conflict: record %s/%s is %s, expected %s",
                       wf_sop_ns(b, o), wf_sop_key(b, o), got,
                       o->n ? "none" : "the value read before");
  d->conflict = 1;
}

/* Check expectation o of b against what the backend holds. */
int wf_store_expect_holds(wf_store_done_t *d, const wf_store_batch_t *b,
                          const wf_store_op_t *o, long long last, int present,
                          const void *val, size_t vlen) {
  char got[32];
  int ok;
  if (o->type == WF_SOP_EXPECT_LAST) {
    ok = last == o->n;
    snprintf(got, sizeof got, "%lld", last);
  } else if (!present) {
    ok = o->n == 1;
    snprintf(got, sizeof got, "absent");
  } else {
    ok = !o->n && vlen == o->vlen &&
         (!vlen || !memcmp(val, wf_sop_val(b, o), vlen));
    snprintf(got, sizeof got, "%s", o->n ? "present" : "a different value");
  }
  if (!ok) wf_store_done_conflict(d, b, o, got);
  return ok;
}

/* Judge b's expectations in order with the backend's check. */
int wf_store_check_expects(void *be, wf_store_batch_t *b,
                           wf_store_check_fn check, wf_store_done_t *d) {
  int rc = 1;
  for (size_t k = 0; k < b->nops && b->nexpect && rc == 1; k++)
    if (wf_sop_is_expect(&b->ops[k])) rc = check(be, b, &b->ops[k], d);
  return rc;
}

/* Queue d: its callback runs from the loop, in posting order. */
void wf_store_done_post(wf_store_done_t *d) {
  wf_store_t *s = d->s;
  d->next = NULL;
  d->prev = s->pend_tail;
  if (s->pend_tail)
    s->pend_tail->next = d;
  else
    s->pend_head = d;
  s->pend_tail = d;
  wf_loop_defer(s->loop, &d->defer);
}

/* Post a failure for (cb, ud). */
void wf_store_fail(wf_store_t *s, wf_store_cb cb, void *ud, const char *fmt,
                   ...) {
  wf_store_done_t *d = wf_store_done_new(s, cb, ud);
  va_list ap;
  va_start(ap, fmt);
  wf_store_done_vfail(d, fmt, ap);
  va_end(ap);
  wf_store_done_post(d);
}

/* Put d back into its store's pool (or free it). */
static void done_recycle(wf_store_t *s, wf_store_done_t *d) {
  if (s->nfree_dones >= DONE_POOL_MAX || d->bcap > POOL_KEEP_BYTES ||
      d->cap > POOL_KEEP_BYTES / 64) {
    free(d->buf);
    free(d->koff);
    free(d->klen);
    free(d->voff);
    free(d->vlen);
    free(d->seqs);
    free(d->kp);
    free(d->vp);
    free(d->aoff);
    free(d->ap);
    free(d);
    return;
  }
  d->next = s->free_dones;
  s->free_dones = d;
  s->nfree_dones++;
}

static void store_free(wf_store_t *s);

/* Unlink d from the pending list, run its callback, recycle it. */
static void done_run(wf_store_done_t *d) {
  wf_store_t *s = d->s;
  wf_store_result_t r;
  if (d->prev)
    d->prev->next = d->next;
  else
    s->pend_head = d->next;
  if (d->next)
    d->next->prev = d->prev;
  else
    s->pend_tail = d->prev;
  memset(&r, 0, sizeof r);
  r.status = d->status;
  if (d->status != WF_OK) {
    r.err = d->err.msg;
    r.conflict = d->conflict;
  } else {
    r.found = d->found;
    r.len = d->len;
    if (d->found) r.value = d->buf + d->val;
    r.n = d->n;
    if (d->n) {
      for (size_t i = 0; i < d->n; i++) {
        if (d->has_keys) d->kp[i] = d->buf + d->koff[i];
        if (d->has_vals) d->vp[i] = d->buf + d->voff[i];
      }
      r.keys = d->has_keys ? d->kp : NULL;
      r.values = d->has_vals ? d->vp : NULL;
      r.lens = d->has_vals ? d->vlen : NULL;
      r.seqs = d->seqs;
    }
    r.count = d->count;
    r.taken = d->taken;
    for (size_t i = 0; i < d->naux; i++) d->ap[i] = d->buf + d->aoff[i];
    if (d->aux_owners && d->naux) {
      r.owners = d->ap;
    } else if (d->naux) {
      r.ids = d->ap;
      r.nids = d->naux;
    }
  }
  s->delivering++;
  d->cb(d->ud, &r);
  s->delivering--;
  done_recycle(s, d);
  if (s->closing == 2 && !s->delivering) store_free(s);
}

/* Deferred-queue callback of a completion. */
static void done_deliver(wf_defer_t *dn) {
  done_run((wf_store_done_t *)((char *)dn - offsetof(wf_store_done_t, defer)));
}

/* ---- opening ----------------------------------------------------------- */

/* Parse "redis://[[user]:password@]host[:port][/db][?timeout=S]" and open
 * the backend. */
static int open_redis(wf_store_t *s, const char *url, wf_err_t *err) {
  const char *p = url + 8, *at, *end;
  char host[256], user[128], pass[256], red[600];
  int port = 6379, db = 0, have_user = 0, have_pass = 0;
  double timeout = 5;
  size_t hl;

  end = p + strcspn(p, "/?");
  at = memchr(p, '@', (size_t)(end - p));
  if (at) {
    const char *colon = memchr(p, ':', (size_t)(at - p));
    size_t ul = colon ? (size_t)(colon - p) : 0;
    size_t pl = colon ? (size_t)(at - colon - 1) : (size_t)(at - p);
    const char *pp = colon ? colon + 1 : p;
    if (ul >= sizeof user || pl >= sizeof pass)
      return wf_err_set(err, "store url: redis user or password too long");
    memcpy(user, p, ul);
    user[ul] = 0;
    memcpy(pass, pp, pl);
    pass[pl] = 0;
    have_user = ul > 0;
    have_pass = 1;
    p = at + 1;
  }
  if (*p == '[') { /* [v6]:port */
    const char *rb = memchr(p, ']', (size_t)(end - p));
    if (!rb) return wf_err_set(err, "store url '%s': unclosed '['", url);
    hl = (size_t)(rb - p - 1);
    if (hl == 0 || hl >= sizeof host)
      return wf_err_set(err, "store url '%s': bad host", url);
    memcpy(host, p + 1, hl);
    host[hl] = 0;
    p = rb + 1;
  } else {
    const char *colon = memchr(p, ':', (size_t)(end - p));
    const char *he = colon ? colon : end;
    hl = (size_t)(he - p);
    if (hl == 0 || hl >= sizeof host)
      return wf_err_set(err, "store url '%s': missing or bad host", url);
    memcpy(host, p, hl);
    host[hl] = 0;
    p = he;
  }
  if (*p == ':') {
    char *e;
    long v;
    errno = 0;
    v = strtol(p + 1, &e, 10);
    if (e == p + 1 || e != end || errno || v < 1 || v > 65535)
      return wf_err_set(err, "store url '%s': bad port", url);
    port = (int)v;
    p = e;
  } else if (p != end) {
    return wf_err_set(err, "store url '%s': bad host", url);
  }
  if (*p == '/') {
    char *e;
    long v;
    p++;
    if (*p && *p != '?') {
      errno = 0;
      v = strtol(p, &e, 10);
      if (e == p || (*e && *e != '?') || errno || v < 0 || v > 1000000)
        return wf_err_set(err, "store url '%s': bad database number", url);
      db = (int)v;
      p = e;
    }
  }
  if (*p == '?') {
    char *e;
    p++;
    if (strncmp(p, "timeout=", 8) != 0)
      return wf_err_set(err, "store url '%s': unknown option (expected "
                        "timeout=SECONDS)", url);
    timeout = strtod(p + 8, &e);
    if (e == p + 8 || *e || !(timeout > 0) || timeout > 86400)
      return wf_err_set(err, "store url '%s': bad timeout", url);
  } else if (*p) {
    return wf_err_set(err, "store url '%s': unexpected '%s'", url, p);
  }
  if (have_pass) {
    /* the url as given, with the password replaced */
    size_t pre = (size_t)(strchr(url + 8, '@') - url);
    snprintf(red, sizeof red, "redis://%s%s***%s", have_user ? user : "",
             ":", url + pre);
    s->url = wf_xstrdup(red);
  } else {
    s->url = wf_xstrdup(url);
  }
  s->vt = &wf_store_redis_vt;
  return wf_store_redis_open(s, host, port, db, have_user ? user : NULL,
                             have_pass ? pass : NULL, timeout, err);
}

/* Open the store named by url (see store.h). */
wf_store_t *wf_store_open(wf_loop_t *l, const char *url, wf_err_t *err) {
  wf_store_t *s;
  int rc;
  if (!url) {
    wf_err_set(err, "store url is NULL");
    return NULL;
  }
  s = wf_xcalloc(1, sizeof *s);
  s->loop = l;
  if (strcmp(url, "memory:") == 0) {
    s->vt = &wf_store_mem_vt;
    s->url = wf_xstrdup(url);
    rc = wf_store_mem_open(s, err);
  } else if (strncmp(url, "sqlite:", 7) == 0) {
    const char *path = url + 7;
    if (strncmp(path, "//", 2) == 0) path += 2; /* sqlite://PATH too */
    s->vt = &wf_store_sqlite_vt;
    s->url = wf_xstrdup(url);
    if (!*path)
      rc = wf_err_set(err, "store url '%s': missing path (sqlite:PATH)", url);
    else
      rc = wf_store_sqlite_open(s, path, err);
  } else if (strncmp(url, "redis://", 8) == 0) {
    rc = open_redis(s, url, err);
  } else {
    rc = wf_err_set(err,
                    "unknown store url '%.200s' (expected sqlite:PATH, "
                    "redis://host:port/db or memory:)",
                    url);
  }
  if (rc != WF_OK) {
    free(s->warning);
    free(s->url);
    free(s);
    return NULL;
  }
  return s;
}

const char *wf_store_kind(const wf_store_t *s) { return s->vt->kind; }

const char *wf_store_url(const wf_store_t *s) { return s->url; }

const char *wf_store_warning(const wf_store_t *s) { return s->warning; }

/* Free the store and its pools (nothing is pending any more). */
static void store_free(wf_store_t *s) {
  wf_store_done_t *d;
  wf_store_batch_t *b;
  s->closing = 3;
  while ((d = s->free_dones)) {
    s->free_dones = d->next;
    s->nfree_dones = DONE_POOL_MAX; /* force a real free */
    d->bcap = POOL_KEEP_BYTES + 1;
    done_recycle(s, d);
  }
  while ((b = s->free_batches)) {
    s->free_batches = b->next;
    free(b->ops);
    free(b->buf);
    free(b);
  }
  for (size_t i = 0; i < s->nsecrets; i++) free(s->secrets[i].p);
  free(s->secrets);
  free(s->scrub);
  free(s->warning);
  free(s->url);
  free(s);
}

/* Close s: backend first, then every pending callback (see store.h). */
void wf_store_close(wf_store_t *s) {
  if (!s || s->closing) return;
  s->closing = 1;
  s->vt->close(s); /* in-flight operations post their failures */
  s->be = NULL;
  /* deliver everything pending (callbacks may post more: they fail) */
  while (s->pend_head) {
    wf_store_done_t *d = s->pend_head;
    wf_loop_undefer(s->loop, &d->defer);
    done_run(d);
  }
  if (s->delivering)
    s->closing = 2; /* called from a callback: freed when it returns */
  else
    store_free(s);
}

/* ---- reads ------------------------------------------------------------- */

/* Fail (cb, ud) when s is closed, the name ns (noun: "ns" or "queue") is
 * bad or key (keyname: what it is) is NULL; 1 when it did. */
static int refuse_named(wf_store_t *s, const char *what, const char *noun,
                        const char *ns, const char *keyname, const char *key,
                        wf_store_cb cb, void *ud) {
  wf_err_t e;
  if (s->closing) {
    wf_store_fail(s, cb, ud, "store closed");
    return 1;
  }
  if (!ns_ok(ns)) {
    ns_complain(&e, what, noun, ns);
    wf_store_fail(s, cb, ud, "%s", e.msg);
    return 1;
  }
  if (!key) {
    wf_store_fail(s, cb, ud, "%s: %s is NULL", what, keyname);
    return 1;
  }
  return 0;
}

/* refuse_named for an ns and a key. */
static int refuse(wf_store_t *s, const char *what, const char *ns,
                  const char *key, wf_store_cb cb, void *ud) {
  return refuse_named(s, what, "ns", ns, "key", key, cb, ud);
}

/* Read record (ns, key). */
void wf_store_get(wf_store_t *s, const char *ns, const char *key,
                  wf_store_cb cb, void *ud) {
  if (refuse(s, "get", ns, key, cb, ud)) return;
  s->vt->get(s, ns, scrub_str(s, key), cb, ud);
}

/* Records of ns whose key starts with prefix, in key order. */
void wf_store_scan(wf_store_t *s, const char *ns, const char *prefix,
                   size_t limit, wf_store_cb cb, void *ud) {
  if (refuse(s, "scan", ns, prefix, cb, ud)) return;
  s->vt->scan(s, ns, scrub_str(s, prefix), limit, cb, ud);
}

/* Entries from..to of log (ns, key). */
void wf_store_range(wf_store_t *s, const char *ns, const char *key,
                    long long from, long long to, wf_store_cb cb, void *ud) {
  if (refuse(s, "range", ns, key, cb, ud)) return;
  if (from < 1) from = 1;
  if (to < 0) to = 0;
  s->vt->range(s, ns, scrub_str(s, key), from, to, cb, ud);
}

/* The store's clock in ms (r->seqs[0]). */
void wf_store_time(wf_store_t *s, wf_store_cb cb, void *ud) {
  wf_store_done_t *d;
  if (refuse(s, "time", "time", "", cb, ud)) return;
  if (s->vt->time) {
    s->vt->time(s, cb, ud);
    return;
  }
  d = wf_store_done_new(s, cb, ud);
  wf_store_done_seq(d, wf_store_now_ms());
  wf_store_done_post(d);
}

/* Bytes held for ns. */
void wf_store_size(wf_store_t *s, const char *ns, wf_store_cb cb, void *ud) {
  if (refuse(s, "size", ns, "", cb, ud)) return;
  s->vt->size(s, ns, cb, ud);
}

/* ---- batches ----------------------------------------------------------- */

wf_store_batch_t *wf_store_batch(wf_store_t *s) {
  wf_store_batch_t *b = s->free_batches;
  if (b) {
    s->free_batches = b->next;
    s->nfree_batches--;
  } else {
    b = wf_xcalloc(1, sizeof *b);
  }
  b->s = s;
  b->nops = b->blen = b->nappend = b->nexpect = b->nqpush = 0;
  b->bad = 0;
  b->next = NULL;
  return b;
}

/* Give b back to its store's pool (freed when the pool is full). */
void wf_store_batch_release(wf_store_batch_t *b) {
  wf_store_t *s = b->s;
  if (s->nfree_batches >= BATCH_POOL_MAX || b->bcap > POOL_KEEP_BYTES ||
      s->closing) {
    free(b->ops);
    free(b->buf);
    free(b);
    return;
  }
  b->next = s->free_batches;
  s->free_batches = b;
  s->nfree_batches++;
}

/* Drop an uncommitted batch. */
void wf_store_discard(wf_store_batch_t *b) {
  if (b) wf_store_batch_release(b);
}

/* Copy n bytes (plus a NUL) into b's buffer; returns the offset. */
static size_t batch_copy(wf_store_batch_t *b, const void *p, size_t n) {
  size_t off = b->blen;
  if (b->bcap - b->blen < n + 1) {
    size_t c = b->bcap ? b->bcap : 512;
    while (c - b->blen < n + 1) c *= 2;
    b->buf = wf_xrealloc(b->buf, c);
    b->bcap = c;
  }
  if (n) memcpy(b->buf + off, p, n);
  b->buf[off + n] = 0;
  b->blen = off + n + 1;
  return off;
}

/* Add an op; NULL (and b->bad set) on a bad ns or key. */
static wf_store_op_t *batch_add(wf_store_batch_t *b, int type,
                                const char *what, const char *ns,
                                const char *key) {
  wf_store_op_t *o;
  if (b->bad) return NULL;
  if (!ns_ok(ns)) {
    ns_complain(&b->err, what, type >= WF_SOP_QPUSH ? "queue" : "ns", ns);
    b->bad = 1;
    return NULL;
  }
  if (!key) {
    wf_err_set(&b->err, "%s: key is NULL", what);
    b->bad = 1;
    return NULL;
  }
  WF_GROW(b->ops, b->opcap, b->nops + 1);
  o = &b->ops[b->nops++];
  memset(o, 0, sizeof *o);
  o->type = type;
  o->nslen = strlen(ns);
  o->ns = batch_copy(b, ns, o->nslen);
  if (type == WF_SOP_QACK) /* an id: digits, nothing to redact */
    o->klen = strlen(key);
  else
    key = scrub(b->s, key, strlen(key), &o->klen);
  o->key = batch_copy(b, key, o->klen);
  o->val = b->blen - 1; /* the key's NUL: an empty value */
  return o;
}

/* Give op o (of method what) the value val (len bytes, redacted, copied);
 * 0 (and b->bad set) when val is NULL but len is not 0. */
static int batch_value(wf_store_batch_t *b, wf_store_op_t *o,
                       const char *what, const char *val, size_t len) {
  if (!val && len) {
    wf_err_set(&b->err, "%s: value is NULL", what);
    b->bad = 1;
    return 0;
  }
  val = scrub(b->s, val, len, &o->vlen);
  o->val = batch_copy(b, val, o->vlen);
  return 1;
}

/* Add a put of (ns, key) = val to b (copied). */
void wf_store_put(wf_store_batch_t *b, const char *ns, const char *key,
                  const char *val, size_t len) {
  wf_store_op_t *o = batch_add(b, WF_SOP_PUT, "put", ns, key);
  if (o) batch_value(b, o, "put", val, len);
}

/* Add a delete of record and log (ns, key) to b. */
void wf_store_del(wf_store_batch_t *b, const char *ns, const char *key) {
  batch_add(b, WF_SOP_DEL, "del", ns, key);
}

/* Add a delete of the records and logs of ns under prefix to b. */
void wf_store_del_prefix(wf_store_batch_t *b, const char *ns,
                         const char *prefix) {
  batch_add(b, WF_SOP_DEL_PREFIX, "del_prefix", ns, prefix);
}

/* Add an append to log (ns, key) to b (copied). */
void wf_store_append(wf_store_batch_t *b, const char *ns, const char *key,
                     const char *val, size_t len) {
  wf_store_op_t *o = batch_add(b, WF_SOP_APPEND, "append", ns, key);
  if (o && batch_value(b, o, "append", val, len)) b->nappend++;
}

/* Add a trim of log (ns, key) below keep_from to b. */
void wf_store_trim(wf_store_batch_t *b, const char *ns, const char *key,
                   long long keep_from) {
  wf_store_op_t *o = batch_add(b, WF_SOP_TRIM, "trim", ns, key);
  if (o) o->n = keep_from;
}

/* Add the condition "record (ns, key) holds val (NULL: is absent)". */
void wf_store_expect(wf_store_batch_t *b, const char *ns, const char *key,
                     const char *val, size_t len) {
  wf_store_op_t *o = batch_add(b, WF_SOP_EXPECT, "expect", ns, key);
  if (!o) return;
  b->nexpect++;
  if (!val) {
    o->n = 1;
    return;
  }
  batch_value(b, o, "expect", val, len);
}

/* Add the condition "log (ns, key) has given `last` numbers". */
void wf_store_expect_last(wf_store_batch_t *b, const char *ns,
                          const char *key, long long last) {
  wf_store_op_t *o = batch_add(b, WF_SOP_EXPECT_LAST, "expect_last", ns, key);
  if (!o) return;
  b->nexpect++;
  o->n = last;
}

/* Add a push of payload to queue q to b (copied, redacted). */
void wf_store_queue_push(wf_store_batch_t *b, const char *q,
                         const char *payload, size_t len) {
  wf_store_op_t *o = batch_add(b, WF_SOP_QPUSH, "queue_push", q, "");
  if (o && batch_value(b, o, "queue_push", payload, len)) b->nqpush++;
}

/* Add the acknowledgement of item id of queue q to b. */
void wf_store_queue_ack(wf_store_batch_t *b, const char *q, const char *id) {
  if (!b->bad && id && !qid_ok(id)) {
    wf_err_set(&b->err, "queue_ack: bad id '%.100s' (digits, or digits-digits)",
               id);
    b->bad = 1;
    return;
  }
  batch_add(b, WF_SOP_QACK, "queue_ack", q, id);
}

/* Apply b atomically (takes ownership of b). */
void wf_store_commit(wf_store_batch_t *b, wf_store_cb cb, void *ud) {
  wf_store_t *s = b->s;
  if (s->closing) {
    wf_store_fail(s, cb, ud, "store closed");
    wf_store_batch_release(b);
    return;
  }
  if (b->bad) {
    wf_store_fail(s, cb, ud, "%s", b->err.msg);
    wf_store_batch_release(b);
    return;
  }
  s->vt->commit(b, cb, ud);
}

/* ---- queues ------------------------------------------------------------ */

/* Check queue operation op (method what) and hand it to the backend, or
 * fail (cb, ud) naming what is wrong. */
static void queue_op(wf_store_t *s, const char *what, wf_store_qop_t *op,
                     wf_store_cb cb, void *ud) {
  const char *c = op->kind == WF_SQ_INFO ? "" : op->consumer;
  if (refuse_named(s, what, "queue", op->q, "consumer", c, cb, ud)) return;
  if (op->kind != WF_SQ_INFO && !*c) {
    wf_store_fail(s, cb, ud, "%s: consumer is empty", what);
    return;
  }
  if ((op->kind == WF_SQ_TAKE || op->kind == WF_SQ_RECLAIM) && op->n < 1) {
    wf_store_fail(s, cb, ud, "%s: n must be >= 1", what);
    return;
  }
  if (op->min_idle < 0) op->min_idle = 0;
  for (size_t i = 0; i < op->nids; i++)
    if (!qid_ok(op->ids[i])) {
      wf_store_fail(s, cb, ud, "%s: bad id '%.100s' (digits, or "
                    "digits-digits)", what, op->ids[i] ? op->ids[i] : "NULL");
      return;
    }
  s->vt->queue(s, op, cb, ud);
}

/* Take up to n waiting items of q for consumer. */
void wf_store_queue_take(wf_store_t *s, const char *q, const char *consumer,
                         size_t n, wf_store_cb cb, void *ud) {
  wf_store_qop_t op = {WF_SQ_TAKE, q, consumer, n, 0, NULL, 0};
  queue_op(s, "queue_take", &op, cb, ud);
}

/* Take over up to n items of q idle for min_idle ms. */
void wf_store_queue_reclaim(wf_store_t *s, const char *q,
                            const char *consumer, long long min_idle,
                            size_t n, wf_store_cb cb, void *ud) {
  wf_store_qop_t op = {WF_SQ_RECLAIM, q, consumer, n, min_idle, NULL, 0};
  queue_op(s, "queue_reclaim", &op, cb, ud);
}

/* Restart the idle time of the ids consumer still owns. */
void wf_store_queue_touch(wf_store_t *s, const char *q, const char *consumer,
                          const char *const *ids, size_t nids,
                          wf_store_cb cb, void *ud) {
  wf_store_qop_t op = {WF_SQ_TOUCH, q, consumer, 0, 0, ids, nids};
  queue_op(s, "queue_touch", &op, cb, ud);
}

/* Counts of queue q. */
void wf_store_queue_info(wf_store_t *s, const char *q, wf_store_cb cb,
                         void *ud) {
  wf_store_qop_t op = {WF_SQ_INFO, q, NULL, 0, 0, NULL, 0};
  queue_op(s, "queue_info", &op, cb, ud);
}
