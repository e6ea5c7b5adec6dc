/* store_sqlite.c — the "sqlite:PATH" backend of store.h: one connection in
 * WAL mode with synchronous=NORMAL (durable across process crashes; a
 * power loss may lose the last commits, never corrupts — docs/store.md),
 * 1 KiB pages in new files and the WAL folded back every 4000 pages,
 * a busy timeout for other processes sharing the file, the schema
 * (meta, records, logs, log_heads) created on first use and its version
 * checked on open, the queue tables (queue, queue_heads) added to files
 * that lack them, and every statement prepared once. A batch is one
 * BEGIN IMMEDIATE ... COMMIT transaction, rolled back on any error; so is
 * each queue take, reclaim and touch (processes sharing the file take
 * turns: no item is given twice).
 * Operations run synchronously and complete through store.c's deferred
 * completions. Files are private: missing directories are made 0700, the
 * database file is created 0600 before SQLite opens it (SQLite gives its
 * -wal and -shm files the database file's mode); the umask still applies,
 * so a stricter one wins. Existing directories and files keep their modes:
 * when group or others can access them, the store records a warning
 * (wf_store_warning). Depends on store_int.h, sqlite3. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_int.h"

#define SCHEMA_VERSION 1
#define BUSY_TIMEOUT_MS 5000
/* Page size of new files. Every commit writes each page it changes whole
 * to the WAL: a small checkpoint changes three (the log's table and index,
 * its head), 12 KiB of WAL per commit with SQLite's default of 4096 and
 * 3 KiB with 1024 (less to copy and checksum, and 4x fewer dirty OS pages
 * for the WAL checkpoint to write back). Large values take overflow pages
 * either way. */
static const char page_size_sql[] = "PRAGMA page_size=1024";
/* Fold the WAL back into the database (which syncs both files: the only
 * fsyncs of a store) once it holds 4000 pages, 4 MiB with 1 KiB pages: the
 * WAL size of SQLite's default (1000 pages) at its default 4 KiB page
 * size. SQLite's 1000 would sync four times as often: on a machine whose
 * disk is busy, each sync waits milliseconds, spread over fewer
 * checkpoints. A power loss can lose at most the commits since the last
 * fold (docs/durability.md, "What survives what"). */
static const char wal_sql[] =
    "PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=4000";

enum {
  Q_BEGIN, Q_COMMIT, Q_ROLLBACK,
  Q_GET, Q_PUT,
  Q_DEL_REC, Q_DEL_LOG, Q_DEL_HEAD,
  Q_DELP_REC, Q_DELP_LOG, Q_DELP_HEAD,             /* key in [lo, hi) */
  Q_DELP_REC_ALL, Q_DELP_LOG_ALL, Q_DELP_HEAD_ALL, /* key >= lo */
  Q_SCAN, Q_SCAN_ALL,
  Q_RANGE, Q_HEAD_SET, Q_HEAD_INS, Q_APPEND, Q_TRIM,
  Q_SIZE_REC, Q_SIZE_LOG, Q_HEAD_LAST,
  Q_QHEAD_LAST, Q_QHEAD_SET, Q_QHEAD_INS, /* each *_INS right after *_SET */
  Q_QPUSH, Q_QACK, Q_QWAITING, Q_QIDLE, Q_QOWN, Q_QTOUCH,
  Q_QINFO,
  Q_COUNT
};

static const char *const sql[Q_COUNT] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_GET] = "SELECT value FROM records WHERE ns=?1 AND key=?2",
    [Q_PUT] = "INSERT OR REPLACE INTO records(ns, key, value) "
              "VALUES(?1, ?2, ?3)",
    [Q_DEL_REC] = "DELETE FROM records WHERE ns=?1 AND key=?2",
    [Q_DEL_LOG] = "DELETE FROM logs WHERE ns=?1 AND key=?2",
    [Q_DEL_HEAD] = "DELETE FROM log_heads WHERE ns=?1 AND key=?2",
    [Q_DELP_REC] = "DELETE FROM records WHERE ns=?1 AND key>=?2 AND key<?3",
    [Q_DELP_LOG] = "DELETE FROM logs WHERE ns=?1 AND key>=?2 AND key<?3",
    [Q_DELP_HEAD] = "DELETE FROM log_heads WHERE ns=?1 AND key>=?2 "
                    "AND key<?3",
    [Q_DELP_REC_ALL] = "DELETE FROM records WHERE ns=?1 AND key>=?2",
    [Q_DELP_LOG_ALL] = "DELETE FROM logs WHERE ns=?1 AND key>=?2",
    [Q_DELP_HEAD_ALL] = "DELETE FROM log_heads WHERE ns=?1 AND key>=?2",
    [Q_SCAN] = "SELECT key, value FROM records WHERE ns=?1 AND key>=?2 "
               "AND key<?3 ORDER BY key LIMIT ?4",
    [Q_SCAN_ALL] = "SELECT key, value FROM records WHERE ns=?1 AND key>=?2 "
                   "ORDER BY key LIMIT ?4",
    [Q_RANGE] = "SELECT seq, value FROM logs WHERE ns=?1 AND key=?2 "
                "AND seq>=?3 AND seq<=?4 ORDER BY seq",
    [Q_HEAD_SET] = "UPDATE log_heads SET last=?3 WHERE ns=?1 AND key=?2",
    [Q_HEAD_INS] = "INSERT INTO log_heads(ns, key, last) VALUES(?1, ?2, ?3)",
    [Q_APPEND] = "INSERT INTO logs(ns, key, seq, value) VALUES(?1, ?2, ?3, ?4)",
    [Q_TRIM] = "DELETE FROM logs WHERE ns=?1 AND key=?2 AND seq<?3",
    [Q_SIZE_REC] = "SELECT coalesce(sum(length(CAST(key AS BLOB)) + "
                   "length(value)), 0) FROM records WHERE ns=?1",
    [Q_SIZE_LOG] = "SELECT coalesce(sum(length(CAST(key AS BLOB)) + "
                   "length(value)), 0) FROM logs WHERE ns=?1",
    [Q_HEAD_LAST] = "SELECT last FROM log_heads WHERE ns=?1 AND key=?2",
    [Q_QHEAD_LAST] = "SELECT last FROM queue_heads WHERE q=?1",
    [Q_QHEAD_SET] = "UPDATE queue_heads SET last=?2 WHERE q=?1",
    [Q_QHEAD_INS] = "INSERT INTO queue_heads(q, last) VALUES(?1, ?2)",
    [Q_QPUSH] = "INSERT INTO queue(q, id, payload, owner, touched) "
                "VALUES(?1, ?2, ?3, NULL, ?4)",
    [Q_QACK] = "DELETE FROM queue WHERE q=?1 AND id=?2",
    [Q_QWAITING] = "SELECT id, payload, NULL FROM queue WHERE q=?1 AND "
                   "owner IS NULL ORDER BY id LIMIT ?3",
    [Q_QIDLE] = "SELECT id, payload, owner FROM queue WHERE q=?1 AND "
                "owner IS NOT NULL AND touched<=?2 ORDER BY id LIMIT ?3",
    [Q_QOWN] = "UPDATE queue SET owner=?3, touched=?4 WHERE q=?1 AND id=?2",
    [Q_QTOUCH] = "UPDATE queue SET touched=?4 WHERE q=?1 AND id=?2 AND "
                 "owner=?3",
    [Q_QINFO] = "SELECT owner, count(*) FROM queue WHERE q=?1 "
                "GROUP BY owner ORDER BY owner",
};

/* Rowid tables for the two that hold values of any size (a WITHOUT ROWID
 * table copies whole rows into its interior pages). */
static const char schema_sql[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) "
    "WITHOUT ROWID;"
    "CREATE TABLE records(ns TEXT NOT NULL, key TEXT NOT NULL, "
    "value BLOB NOT NULL, PRIMARY KEY(ns, key));"
    "CREATE TABLE logs(ns TEXT NOT NULL, key TEXT NOT NULL, "
    "seq INTEGER NOT NULL, value BLOB NOT NULL, PRIMARY KEY(ns, key, seq));"
    "CREATE TABLE log_heads(ns TEXT NOT NULL, key TEXT NOT NULL, "
    "last INTEGER NOT NULL, PRIMARY KEY(ns, key)) WITHOUT ROWID;";

/* The queue tables, added to any file that lacks them (they came after
 * version 1 without changing it: an older weft ignores them). The partial
 * index finds the oldest waiting items without walking the owned ones. */
static const char queue_sql[] =
    "CREATE TABLE IF NOT EXISTS queue(q TEXT NOT NULL, id INTEGER NOT NULL, "
    "payload BLOB NOT NULL, owner TEXT, touched INTEGER NOT NULL, "
    "PRIMARY KEY(q, id));"
    "CREATE INDEX IF NOT EXISTS queue_waiting ON queue(q, id) "
    "WHERE owner IS NULL;"
    "CREATE TABLE IF NOT EXISTS queue_heads(q TEXT NOT NULL PRIMARY KEY, "
    "last INTEGER NOT NULL) WITHOUT ROWID;";

/* The head of one log as the running commit knows it: read by an
 * expect_last that held or given by an append, so that the next append to
 * that log numbers its entry without reading the head again. */
typedef struct sq_head {
  const char *ns, *key; /* in the batch's buffer; ns NULL: none known */
  size_t nslen, klen;
  long long last;
} sq_head_t;

typedef struct sq {
  sqlite3 *db;
  char *path;
  sqlite3_stmt *st[Q_COUNT];
  sq_head_t head; /* valid during sq_commit only */
} sq_t;

static const char empty[1] = "";

/* ---- helpers ----------------------------------------------------------- */

/* A hint for errors of access rights ("" for the others). */
static const char *hint(sq_t *q) {
  int rc = sqlite3_errcode(q->db) & 0xff;
  if (rc == SQLITE_READONLY || rc == SQLITE_CANTOPEN || rc == SQLITE_PERM)
    return " (a store needs write access to the file and its directory)";
  return "";
}

/* "sqlite PATH: message" for the connection's last error. */
static int sq_fail(sq_t *q, wf_err_t *err, const char *what) {
  return wf_err_set(err, "sqlite %s: %s%s%s%s", q->path, what ? what : "",
                    what ? ": " : "", sqlite3_errmsg(q->db), hint(q));
}

/* Bind n bytes of s as TEXT (compared bytewise: BINARY collation). */
static void bind_text(sqlite3_stmt *st, int i, const char *s, size_t n) {
  sqlite3_bind_text(st, i, s, (int)n, SQLITE_STATIC);
}

/* Bind a value as a BLOB (never NULL, even when empty). */
static void bind_blob(sqlite3_stmt *st, int i, const char *v, size_t n) {
  /* a NULL pointer would bind SQL NULL: empty values need a real pointer */
  sqlite3_bind_blob64(st, i, n ? v : empty, n, SQLITE_STATIC);
}

/* Step a statement that returns no rows, then reset it; SQLITE_DONE or the
 * error code. */
static int run(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? SQLITE_DONE : rc;
}

/* Execute sql (no results) on db; SQLITE_OK or an error code. */
static int exec(sqlite3 *db, const char *s) {
  return sqlite3_exec(db, s, NULL, NULL, NULL);
}

/* mkdir -p of the directory part of path; the directories it makes are
 * private (0700, less what the umask removes). */
static int make_parent(const char *path, wf_err_t *err) {
  char *dir = wf_xstrdup(path);
  char *slash = strrchr(dir, '/');
  int rc = WF_OK;
  if (slash && slash != dir) {
    *slash = 0;
    for (char *p = dir + 1; ; p++) {
      if (*p == '/' || *p == 0) {
        char c = *p;
        *p = 0;
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
          rc = wf_err_set(err, "sqlite %s: cannot create directory %s: %s",
                          path, dir, strerror(errno));
          break;
        }
        *p = c;
        if (!c) break;
      }
    }
  }
  free(dir);
  return rc;
}

/* Create the database file 0600 (less the umask) when it does not exist,
 * so that SQLite, which would create it 0644, finds it; SQLite then gives
 * -wal and -shm the same mode. An existing file is left as it is; other
 * failures are left for SQLite to report. */
static void create_private(const char *path) {
  int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) close(fd);
}

/* Append "what has mode 0NNN" to the warning in w (of size n) when st
 * grants group or others any access. */
static void note_mode(char *w, size_t n, const char *what, const char *name,
                      const struct stat *st) {
  size_t l = strlen(w);
  if (!(st->st_mode & 077) || l + 1 >= n) return;
  /* a long path is cut to what fits: the warning stays a warning */
  int k = snprintf(w + l, n - l, "%s%s %.*s has mode %04o", l ? ", " : "", what,
                   (int)(n - l), name, (unsigned)(st->st_mode & 07777));
  (void)k; /* truncation is fine here; checking k also quiets -O3's warning */
}

/* Record in s->warning what group or others can access: the directory of
 * path and the database, -wal and -shm files. */
static void check_modes(wf_store_t *s, const char *path) {
  static const char *const sfx[] = {"", "-wal", "-shm"};
  char w[1024] = "", name[PATH_MAX + 8];
  const char *slash = strrchr(path, '/');
  struct stat st;
  if (!slash)
    snprintf(name, sizeof name, ".");
  else if (slash == path)
    snprintf(name, sizeof name, "/");
  else
    snprintf(name, sizeof name, "%.*s", (int)(slash - path), path);
  if (stat(name, &st) == 0) note_mode(w, sizeof w, "directory", name, &st);
  for (size_t i = 0; i < sizeof sfx / sizeof *sfx; i++) {
    snprintf(name, sizeof name, "%s%s", path, sfx[i]);
    if (stat(name, &st) == 0) note_mode(w, sizeof w, "file", name, &st);
  }
  if (!w[0]) return;
  size_t need = strlen(path) + strlen(w) + 200;
  free(s->warning);
  s->warning = wf_xmalloc(need);
  snprintf(s->warning, need,
           "sqlite %s: %s: group or others can access the store (weft makes "
           "new directories 0700 and files 0600 but does not change existing "
           "ones: chmod go-rwx them)", path, w);
}

/* ---- opening ----------------------------------------------------------- */

/* Read the schema version into *version (0 when the file has no weft
 * schema yet; -1 when it has tables but no meta). */
static int read_version(sq_t *q, long *version, wf_err_t *err) {
  sqlite3_stmt *st;
  int rc;
  *version = 0;
  rc = sqlite3_prepare_v2(
      q->db, "SELECT count(*), sum(name='meta') FROM sqlite_master "
             "WHERE type='table'", -1, &st, NULL);
  if (rc != SQLITE_OK) return sq_fail(q, err, NULL);
  rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    sqlite3_finalize(st);
    return sq_fail(q, err, NULL);
  }
  long ntables = (long)sqlite3_column_int64(st, 0);
  long has_meta = (long)sqlite3_column_int64(st, 1);
  sqlite3_finalize(st);
  if (ntables == 0) return WF_OK;
  if (!has_meta) {
    *version = -1;
    return WF_OK;
  }
  rc = sqlite3_prepare_v2(
      q->db, "SELECT value FROM meta WHERE key='schema_version'", -1, &st,
      NULL);
  if (rc != SQLITE_OK) return sq_fail(q, err, NULL);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    const char *v = (const char *)sqlite3_column_text(st, 0);
    char *e;
    *version = v ? strtol(v, &e, 10) : -1;
    if (!v || *e || *version <= 0) *version = -2;
  } else if (rc == SQLITE_DONE) {
    *version = -1;
  } else {
    sqlite3_finalize(st);
    return sq_fail(q, err, NULL);
  }
  sqlite3_finalize(st);
  return WF_OK;
}

/* Explain an unusable schema version v (-1: no meta, -2: unreadable). */
static int schema_complaint(sq_t *q, long v, wf_err_t *err) {
  if (v == -1)
    return wf_err_set(err,
                      "sqlite %s: not a weft store (it has tables but no "
                      "weft meta table); nothing was changed", q->path);
  if (v == -2)
    return wf_err_set(err, "sqlite %s: unreadable schema_version in table "
                      "meta; nothing was changed", q->path);
  return wf_err_set(err,
                    "sqlite %s: schema version %ld, this weft uses version "
                    "%d; nothing was changed", q->path, v, SCHEMA_VERSION);
}

/* Check (or create) the schema inside one write transaction. */
static int ensure_schema(sq_t *q, wf_err_t *err) {
  long v;
  char ins[96];
  if (exec(q->db, "BEGIN IMMEDIATE") != SQLITE_OK)
    return sq_fail(q, err, NULL);
  if (read_version(q, &v, err) != WF_OK) goto fail;
  if (v != 0 && v != SCHEMA_VERSION) {
    schema_complaint(q, v, err);
    goto fail;
  }
  if (v == 0) {
    snprintf(ins, sizeof ins,
             "INSERT INTO meta VALUES('schema_version', '%d')",
             SCHEMA_VERSION);
    if (exec(q->db, schema_sql) != SQLITE_OK ||
        exec(q->db, ins) != SQLITE_OK) {
      sq_fail(q, err, "creating the schema");
      goto fail;
    }
  }
  if (exec(q->db, queue_sql) != SQLITE_OK) {
    sq_fail(q, err, "adding the queue tables");
    goto fail;
  }
  if (exec(q->db, "COMMIT") != SQLITE_OK) {
    sq_fail(q, err, NULL);
    goto fail;
  }
  return WF_OK;
fail:
  exec(q->db, "ROLLBACK");
  return WF_ERR;
}

/* Finalize the statements and close the connection. */
static void sq_free(sq_t *q) {
  if (!q) return;
  for (int i = 0; i < Q_COUNT; i++) sqlite3_finalize(q->st[i]);
  sqlite3_close_v2(q->db);
  free(q->path);
  free(q);
}

/* Open (or create) the store file at path: see the header comment. */
int wf_store_sqlite_open(wf_store_t *s, const char *path, wf_err_t *err) {
  sq_t *q = wf_xcalloc(1, sizeof *q);
  sqlite3_stmt *st = NULL;
  const char *mode;
  int rc;
  q->path = wf_xstrdup(path);
  if (make_parent(path, err) != WF_OK) goto err;
  create_private(path);
  rc = sqlite3_open_v2(path, &q->db,
                       SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                           SQLITE_OPEN_NOMUTEX,
                       NULL);
  if (rc != SQLITE_OK) {
    if (q->db)
      sq_fail(q, err, "cannot open");
    else
      wf_err_set(err, "sqlite %s: cannot open: out of memory", path);
    goto err;
  }
  sqlite3_extended_result_codes(q->db, 1);
  sqlite3_busy_timeout(q->db, BUSY_TIMEOUT_MS);
  if (sqlite3_db_readonly(q->db, "main") == 1) {
    wf_err_set(err, "sqlite %s: the file is read-only (a store needs write "
               "access to it and to its directory)", path);
    goto err;
  }
  /* check the schema before anything writes (WAL mode changes the
   * header); ensure_schema checks again under the write lock */
  {
    long v;
    if (read_version(q, &v, err) != WF_OK) goto err;
    if (v != 0 && v != SCHEMA_VERSION) {
      schema_complaint(q, v, err);
      goto err;
    }
  }
  /* a new file gets small pages; an existing one keeps its size */
  if (exec(q->db, page_size_sql) != SQLITE_OK) {
    sq_fail(q, err, NULL);
    goto err;
  }
  rc = sqlite3_prepare_v2(q->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
  if (rc != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
    sq_fail(q, err, "enabling WAL");
    goto err;
  }
  mode = (const char *)sqlite3_column_text(st, 0);
  if (!mode || strcmp(mode, "wal") != 0) {
    wf_err_set(err, "sqlite %s: cannot enable WAL mode (journal mode stays "
               "'%s'; is the directory writable?)", path, mode ? mode : "?");
    goto err;
  }
  sqlite3_finalize(st);
  st = NULL;
  if (exec(q->db, wal_sql) != SQLITE_OK) {
    sq_fail(q, err, NULL);
    goto err;
  }
  if (ensure_schema(q, err) != WF_OK) goto err;
  for (int i = 0; i < Q_COUNT; i++) {
    rc = sqlite3_prepare_v3(q->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                            &q->st[i], NULL);
    if (rc != SQLITE_OK) {
      sq_fail(q, err, "preparing statements");
      goto err;
    }
  }
  check_modes(s, path);
  s->be = q;
  return WF_OK;
err:
  sqlite3_finalize(st);
  sq_free(q);
  return WF_ERR;
}

/* ---- reads ------------------------------------------------------------- */

/* Fail d with the connection's last error. */
static void done_sqerr(sq_t *q, wf_store_done_t *d) {
  wf_store_done_fail(d, "sqlite %s: %s%s", q->path, sqlite3_errmsg(q->db),
                     hint(q));
}

/* Read one record. */
static void sq_get(wf_store_t *s, const char *ns, const char *key,
                   wf_store_cb cb, void *ud) {
  sq_t *q = s->be;
  sqlite3_stmt *st = q->st[Q_GET];
  wf_store_done_t *d = wf_store_done_new(s, cb, ud);
  bind_text(st, 1, ns, strlen(ns));
  bind_text(st, 2, key, strlen(key));
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    wf_store_done_value(d, sqlite3_column_blob(st, 0),
                        (size_t)sqlite3_column_bytes(st, 0));
  else if (rc != SQLITE_DONE)
    done_sqerr(q, d);
  sqlite3_reset(st);
  wf_store_done_post(d);
}

/* Records of ns under prefix (key >= prefix AND key < successor). */
static void sq_scan(wf_store_t *s, const char *ns, const char *prefix,
                    size_t limit, wf_store_cb cb, void *ud) {
  sq_t *q = s->be;
  size_t pl = strlen(prefix), hl;
  char *hi = wf_xmalloc(pl + 1);
  int bounded = wf_store_prefix_succ(prefix, pl, hi, &hl);
  sqlite3_stmt *st = q->st[bounded ? Q_SCAN : Q_SCAN_ALL];
  wf_store_done_t *d = wf_store_done_new(s, cb, ud);
  int rc;
  bind_text(st, 1, ns, strlen(ns));
  bind_text(st, 2, prefix, pl);
  if (bounded) bind_text(st, 3, hi, hl);
  sqlite3_bind_int64(st, 4, limit ? (sqlite3_int64)limit : -1);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    wf_store_done_row(d, (const char *)sqlite3_column_text(st, 0),
                      (size_t)sqlite3_column_bytes(st, 0),
                      sqlite3_column_blob(st, 1),
                      (size_t)sqlite3_column_bytes(st, 1), 0);
  if (rc != SQLITE_DONE) done_sqerr(q, d);
  sqlite3_reset(st);
  free(hi);
  wf_store_done_post(d);
}

/* Entries from..to of a log. */
static void sq_range(wf_store_t *s, const char *ns, const char *key,
                     long long from, long long to, wf_store_cb cb,
                     void *ud) {
  sq_t *q = s->be;
  sqlite3_stmt *st = q->st[Q_RANGE];
  wf_store_done_t *d = wf_store_done_new(s, cb, ud);
  int rc;
  bind_text(st, 1, ns, strlen(ns));
  bind_text(st, 2, key, strlen(key));
  sqlite3_bind_int64(st, 3, from);
  sqlite3_bind_int64(st, 4, to ? to : INT64_MAX);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    wf_store_done_row(d, NULL, 0, sqlite3_column_blob(st, 1),
                      (size_t)sqlite3_column_bytes(st, 1),
                      sqlite3_column_int64(st, 0));
  if (rc != SQLITE_DONE) done_sqerr(q, d);
  sqlite3_reset(st);
  wf_store_done_post(d);
}

/* Sum of key and value lengths of ns (records and log entries). */
static void sq_size(wf_store_t *s, const char *ns, wf_store_cb cb, void *ud) {
  sq_t *q = s->be;
  wf_store_done_t *d = wf_store_done_new(s, cb, ud);
  size_t total = 0;
  for (int i = Q_SIZE_REC; i <= Q_SIZE_LOG; i++) {
    sqlite3_stmt *st = q->st[i];
    bind_text(st, 1, ns, strlen(ns));
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) total += (size_t)sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW) {
      done_sqerr(q, d);
      break;
    }
  }
  if (d->status == WF_OK) d->len = total;
  wf_store_done_post(d);
}

/* ---- writes ------------------------------------------------------------ */

/* Whether q->head is the head of log (ns, key). */
static int head_known(const sq_t *q, const char *ns, size_t nslen,
                      const char *key, size_t klen) {
  const sq_head_t *h = &q->head;
  return h->ns && h->nslen == nslen && h->klen == klen &&
         memcmp(h->ns, ns, nslen) == 0 && memcmp(h->key, key, klen) == 0;
}

/* Remember last as the head of log (ns, key) for the running commit. */
static void head_keep(sq_t *q, const char *ns, size_t nslen, const char *key,
                      size_t klen, long long last) {
  q->head = (sq_head_t){ns, key, nslen, klen, last};
}

/* Bind the name of a head row to st: (ns, key) of a log, or a queue's
 * name alone (key NULL); returns the index of the number's parameter. */
static int bind_head(sqlite3_stmt *st, const char *ns, size_t nslen,
                     const char *key, size_t klen) {
  bind_text(st, 1, ns, nslen);
  if (!key) return 2;
  bind_text(st, 2, key, klen);
  return 3;
}

/* The last number of a head row (0 when there is none) by statement
 * read: SQLITE_DONE or an error code. */
static int head_read(sq_t *q, int read, const char *ns, size_t nslen,
                     const char *key, size_t klen, long long *last) {
  sqlite3_stmt *st = q->st[read];
  bind_head(st, ns, nslen, key, klen);
  int rc = sqlite3_step(st);
  *last = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? SQLITE_DONE : rc;
}

/* Set a head row to n by statement set (an UPDATE), or set + 1 (its
 * INSERT) when there is no row. An upsert with RETURNING would number in
 * one statement, but opens a statement journal each time, which costs
 * more. SQLITE_DONE or an error code. */
static int head_write(sq_t *q, int set, const char *ns, size_t nslen,
                      const char *key, size_t klen, long long n) {
  for (int i = set; i <= set + 1; i++) {
    sqlite3_stmt *st = q->st[i];
    sqlite3_bind_int64(st, bind_head(st, ns, nslen, key, klen), n);
    int rc = run(st);
    if (rc != SQLITE_DONE) return rc;
    if (sqlite3_changes(q->db) > 0) break; /* updated: no insert */
  }
  return SQLITE_DONE;
}

/* Give log (ns, key) its next number (*seq), inside the transaction: one
 * past the head the commit knows (read by expect_last or given by an
 * earlier append), else read first. SQLITE_DONE or an error code. */
static int head_next(sq_t *q, const char *ns, size_t nslen, const char *key,
                     size_t klen, long long *seq) {
  int rc;
  if (!head_known(q, ns, nslen, key, klen)) {
    if ((rc = head_read(q, Q_HEAD_LAST, ns, nslen, key, klen, seq)) !=
        SQLITE_DONE)
      return rc;
    head_keep(q, ns, nslen, key, klen, *seq);
  }
  *seq = q->head.last + 1;
  if ((rc = head_write(q, Q_HEAD_SET, ns, nslen, key, klen, *seq)) !=
      SQLITE_DONE)
    return rc;
  q->head.last = *seq;
  return SQLITE_DONE;
}

/* Apply op o of b inside the transaction; SQLITE_DONE or an error code. */
static int apply(sq_t *q, wf_store_batch_t *b, const wf_store_op_t *o,
                 wf_store_done_t *d) {
  const char *ns = wf_sop_ns(b, o), *key = wf_sop_key(b, o);
  sqlite3_stmt *st;
  int rc;
  switch (o->type) {
    case WF_SOP_PUT:
      st = q->st[Q_PUT];
      bind_text(st, 1, ns, o->nslen);
      bind_text(st, 2, key, o->klen);
      bind_blob(st, 3, wf_sop_val(b, o), o->vlen);
      return run(st);
    case WF_SOP_DEL:
      q->head.ns = NULL;
      for (int i = Q_DEL_REC; i <= Q_DEL_HEAD; i++) {
        st = q->st[i];
        bind_text(st, 1, ns, o->nslen);
        bind_text(st, 2, key, o->klen);
        if ((rc = run(st)) != SQLITE_DONE) return rc;
      }
      return SQLITE_DONE;
    case WF_SOP_DEL_PREFIX: {
      q->head.ns = NULL;
      char *hi = wf_xmalloc(o->klen + 1);
      size_t hl = 0;
      int bounded = wf_store_prefix_succ(key, o->klen, hi, &hl);
      rc = SQLITE_DONE;
      for (int i = 0; i < 3 && rc == SQLITE_DONE; i++) {
        st = q->st[(bounded ? Q_DELP_REC : Q_DELP_REC_ALL) + i];
        bind_text(st, 1, ns, o->nslen);
        bind_text(st, 2, key, o->klen);
        if (bounded) bind_text(st, 3, hi, hl);
        rc = run(st);
      }
      free(hi);
      return rc;
    }
    case WF_SOP_APPEND: {
      long long seq;
      if ((rc = head_next(q, ns, o->nslen, key, o->klen, &seq)) != SQLITE_DONE)
        return rc;
      st = q->st[Q_APPEND];
      bind_text(st, 1, ns, o->nslen);
      bind_text(st, 2, key, o->klen);
      sqlite3_bind_int64(st, 3, seq);
      bind_blob(st, 4, wf_sop_val(b, o), o->vlen);
      if ((rc = run(st)) == SQLITE_DONE) wf_store_done_seq(d, seq);
      return rc;
    }
    case WF_SOP_TRIM:
      st = q->st[Q_TRIM];
      bind_text(st, 1, ns, o->nslen);
      bind_text(st, 2, key, o->klen);
      sqlite3_bind_int64(st, 3, o->n);
      return run(st);
    case WF_SOP_QPUSH: {
      long long id;
      char num[24];
      if ((rc = head_read(q, Q_QHEAD_LAST, ns, o->nslen, NULL, 0, &id)) !=
              SQLITE_DONE ||
          (rc = head_write(q, Q_QHEAD_SET, ns, o->nslen, NULL, 0, ++id)) !=
              SQLITE_DONE)
        return rc;
      st = q->st[Q_QPUSH];
      bind_text(st, 1, ns, o->nslen);
      sqlite3_bind_int64(st, 2, id);
      bind_blob(st, 3, wf_sop_val(b, o), o->vlen);
      sqlite3_bind_int64(st, 4, wf_store_now_ms());
      if ((rc = run(st)) == SQLITE_DONE)
        wf_store_done_id(d, num, (size_t)snprintf(num, sizeof num, "%lld", id));
      return rc;
    }
    case WF_SOP_QACK: {
      long long id;
      if (!wf_store_qid_num(key, &id)) return SQLITE_DONE; /* no such item */
      st = q->st[Q_QACK];
      bind_text(st, 1, ns, o->nslen);
      sqlite3_bind_int64(st, 2, id);
      return run(st);
    }
    case WF_SOP_EXPECT:
    case WF_SOP_EXPECT_LAST:
      return SQLITE_DONE; /* checked before the writes */
  }
  return SQLITE_MISUSE;
}

/* Check expectation o of b inside the transaction: 1 when it holds, 0
 * (d failed as a conflict) when not, -1 on an SQLite error. */
static int check(void *be, wf_store_batch_t *b, const wf_store_op_t *o,
                 wf_store_done_t *d) {
  sq_t *q = be;
  int last = o->type == WF_SOP_EXPECT_LAST;
  sqlite3_stmt *st = q->st[last ? Q_HEAD_LAST : Q_GET];
  const void *val = NULL;
  size_t vlen = 0;
  long long n = 0;
  int rc, ok;
  bind_text(st, 1, wf_sop_ns(b, o), o->nslen);
  bind_text(st, 2, wf_sop_key(b, o), o->klen);
  rc = sqlite3_step(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    sqlite3_reset(st);
    return -1;
  }
  if (rc == SQLITE_ROW && last) {
    n = sqlite3_column_int64(st, 0);
  } else if (rc == SQLITE_ROW) {
    val = sqlite3_column_blob(st, 0);
    vlen = (size_t)sqlite3_column_bytes(st, 0);
  }
  ok = wf_store_expect_holds(d, b, o, n, rc == SQLITE_ROW, val, vlen);
  sqlite3_reset(st);
  if (ok == 1 && last)
    head_keep(q, wf_sop_ns(b, o), o->nslen, wf_sop_key(b, o), o->klen, n);
  return ok;
}

/* Apply a batch in one BEGIN IMMEDIATE transaction (its expectations
 * checked first); roll back on error. */
static void sq_commit(wf_store_batch_t *b, wf_store_cb cb, void *ud) {
  wf_store_t *s = b->s;
  sq_t *q = s->be;
  wf_store_done_t *d = wf_store_done_new(s, cb, ud);
  size_t after = 0;
  int inject = wf_store_take_injection(s, &after);
  int rc = run(q->st[Q_BEGIN]);
  q->head.ns = NULL;
  if (rc != SQLITE_DONE) {
    done_sqerr(q, d);
    goto out;
  }
  if ((rc = wf_store_check_expects(q, b, check, d)) < 0) done_sqerr(q, d);
  if (rc <= 0) goto rollback;
  for (size_t k = 0; k < b->nops; k++) {
    if (inject && k == after) {
      wf_store_done_fail(d, "injected failure");
      goto rollback;
    }
    if ((rc = apply(q, b, &b->ops[k], d)) != SQLITE_DONE) {
      done_sqerr(q, d);
      goto rollback;
    }
  }
  if (inject && after >= b->nops) {
    wf_store_done_fail(d, "injected failure");
    goto rollback;
  }
  if ((rc = run(q->st[Q_COMMIT])) != SQLITE_DONE) {
    done_sqerr(q, d);
    goto rollback;
  }
  goto out;
rollback:
  if (!sqlite3_get_autocommit(q->db)) run(q->st[Q_ROLLBACK]);
out:
  wf_store_batch_release(b);
  wf_store_done_post(d);
}

/* ---- queues ------------------------------------------------------------ */

/* Take (op take) or take over (op reclaim) items of op->q for
 * op->consumer, inside the caller's transaction: select them, then own
 * them (rows copied into d first: a table is not updated under a running
 * SELECT of it). SQLITE_DONE or an error code. */
static int sq_own(sq_t *q, const wf_store_qop_t *op, long long now,
                  wf_store_done_t *d) {
  int idle = op->kind == WF_SQ_RECLAIM, rc;
  sqlite3_stmt *st = q->st[idle ? Q_QIDLE : Q_QWAITING];
  long long *ids = wf_xmalloc(op->n * sizeof *ids);
  size_t n = 0, qlen = strlen(op->q), clen = strlen(op->consumer);
  bind_text(st, 1, op->q, qlen);
  sqlite3_bind_int64(st, 2, now - op->min_idle);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)op->n);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < op->n) {
    char num[24];
    ids[n++] = sqlite3_column_int64(st, 0);
    wf_store_done_item(d, num,
                       (size_t)snprintf(num, sizeof num, "%lld", ids[n - 1]),
                       sqlite3_column_blob(st, 1),
                       (size_t)sqlite3_column_bytes(st, 1),
                       (const char *)sqlite3_column_text(st, 2));
  }
  sqlite3_reset(st);
  if (rc == SQLITE_ROW) rc = SQLITE_DONE;
  st = q->st[Q_QOWN];
  for (size_t i = 0; i < n && rc == SQLITE_DONE; i++) {
    bind_text(st, 1, op->q, qlen);
    sqlite3_bind_int64(st, 2, ids[i]);
    bind_text(st, 3, op->consumer, clen);
    sqlite3_bind_int64(st, 4, now);
    rc = run(st);
  }
  free(ids);
  return rc;
}

/* Restart the idle time of the ids op->consumer owns (d->count of them),
 * inside the caller's transaction. SQLITE_DONE or an error code. */
static int sq_touch(sq_t *q, const wf_store_qop_t *op, long long now,
                    wf_store_done_t *d) {
  sqlite3_stmt *st = q->st[Q_QTOUCH];
  int rc = SQLITE_DONE;
  long long id;
  for (size_t i = 0; i < op->nids && rc == SQLITE_DONE; i++) {
    if (!wf_store_qid_num(op->ids[i], &id)) continue;
    bind_text(st, 1, op->q, strlen(op->q));
    sqlite3_bind_int64(st, 2, id);
    bind_text(st, 3, op->consumer, strlen(op->consumer));
    sqlite3_bind_int64(st, 4, now);
    if ((rc = run(st)) == SQLITE_DONE) d->count += sqlite3_changes(q->db);
  }
  return rc;
}

/* Counts of op->q: one GROUP BY owner (NULL: waiting), one snapshot. */
static int sq_info(sq_t *q, const wf_store_qop_t *op, wf_store_done_t *d) {
  sqlite3_stmt *st = q->st[Q_QINFO];
  int rc;
  bind_text(st, 1, op->q, strlen(op->q));
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    long long c = sqlite3_column_int64(st, 1);
    if (sqlite3_column_type(st, 0) == SQLITE_NULL) {
      d->count = c;
      continue;
    }
    d->taken += c;
    wf_store_done_row(d, (const char *)sqlite3_column_text(st, 0),
                      (size_t)sqlite3_column_bytes(st, 0), "", 0, c);
  }
  sqlite3_reset(st);
  return rc;
}

/* A queue operation: info is one statement; take, reclaim and touch are
 * each one BEGIN IMMEDIATE transaction, rolled back on error. */
static void sq_queue(wf_store_t *s, const wf_store_qop_t *op, wf_store_cb cb,
                     void *ud) {
  sq_t *q = s->be;
  wf_store_done_t *d = wf_store_done_new(s, cb, ud);
  long long now = wf_store_now_ms();
  int rc;
  if (op->kind == WF_SQ_INFO) {
    if (sq_info(q, op, d) != SQLITE_DONE) done_sqerr(q, d);
    wf_store_done_post(d);
    return;
  }
  if ((rc = run(q->st[Q_BEGIN])) == SQLITE_DONE) {
    rc = op->kind == WF_SQ_TOUCH ? sq_touch(q, op, now, d)
                                 : sq_own(q, op, now, d);
    if (rc == SQLITE_DONE) rc = run(q->st[Q_COMMIT]);
  }
  if (rc != SQLITE_DONE) {
    done_sqerr(q, d);
    if (!sqlite3_get_autocommit(q->db)) run(q->st[Q_ROLLBACK]);
  }
  wf_store_done_post(d);
}

/* Close the connection. */
static void sq_close(wf_store_t *s) { sq_free(s->be); }

const wf_store_vt_t wf_store_sqlite_vt = {"sqlite",  sq_get,    sq_scan,
                                          sq_range,  sq_commit, sq_size,
                                          sq_close, NULL,      sq_queue};
