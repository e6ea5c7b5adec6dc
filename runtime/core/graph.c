/* graph.c — building, validating and querying a workflow topology:
 * executors (with an id hash index), edges, reducer keys, and the
 * per-source out-edge lists built by wf_graph_finalize for routing.
 * Depends on common.h (graph.h). */
#include "graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* FNV-1a hash of a NUL-terminated string. */
static uint32_t hash_str(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

/* Insert executor i into the id index (which has room). */
static void idx_put(wf_graph_t *g, int i) {
  size_t mask = g->cidx - 1;
  size_t p = hash_str(g->execs[i].id) & mask;
  while (g->idx[p]) p = (p + 1) & mask;
  g->idx[p] = i + 1;
}

/* Keep the id index at most half full for n ids; when it has to grow it is
 * rebuilt from every executor and 1 is returned. */
static int idx_reserve(wf_graph_t *g, size_t n) {
  if (n * 2 <= g->cidx) return 0;
  size_t c = g->cidx ? g->cidx : 16;
  while (n * 2 > c) c *= 2;
  free(g->idx);
  g->idx = wf_xcalloc(c, sizeof *g->idx);
  g->cidx = c;
  for (int i = 0; i < g->nexec; i++) idx_put(g, i);
  return 1;
}

/* Default executor options: worker, one attempt, no timeout. */
void wf_exec_opts_default(wf_exec_opts_t *o) {
  memset(o, 0, sizeof *o);
  o->kind = WF_KIND_WORKER;
  o->max_attempts = 1;
  o->backoff = 0;
  o->backoff_factor = 2;
  o->backoff_max = 30;
  o->timeout = 0;
  o->on_error_continue = 0;
}

/* New empty graph (name copied; NULL becomes ""). */
wf_graph_t *wf_graph_new(const char *name) {
  wf_graph_t *g = wf_xcalloc(1, sizeof *g);
  g->name = wf_xstrdup(name ? name : "");
  g->start = -1;
  return g;
}

/* Free everything the graph owns. */
void wf_graph_free(wf_graph_t *g) {
  if (!g) return;
  for (int i = 0; i < g->nexec; i++) {
    free(g->execs[i].id);
    free(g->execs[i].out);
    free(g->execs[i].outpos);
  }
  free(g->execs);
  for (int i = 0; i < g->nedge; i++) {
    wf_edge_t *e = &g->edges[i];
    free(e->name);
    free(e->srcs);
    free(e->tgts);
    free(e->has_cond);
  }
  free(g->edges);
  for (int i = 0; i < g->nkeys; i++) {
    free(g->keys[i]);
    free(g->reducers[i].sig);
    free(g->reducers[i].label);
  }
  free(g->keys);
  free(g->reducers);
  free(g->idx);
  free(g->name);
  free(g);
}

/* Index of executor id or -1 (hash lookup). */
int wf_graph_find(const wf_graph_t *g, const char *id) {
  if (!id || !g->cidx) return -1;
  size_t mask = g->cidx - 1;
  for (size_t p = hash_str(id) & mask; g->idx[p]; p = (p + 1) & mask)
    if (strcmp(g->execs[g->idx[p] - 1].id, id) == 0) return g->idx[p] - 1;
  return -1;
}

/* Reject changes to a finalized graph. */
static int check_open(wf_graph_t *g, wf_err_t *err) {
  if (g->finalized)
    return wf_err_set(err, "workflow '%s': already built", g->name);
  return WF_OK;
}

/* Validate o for executor id; WF_ERR naming the field. */
static int check_opts(const wf_graph_t *g, const char *id,
                      const wf_exec_opts_t *o, wf_err_t *err) {
  const char *bad = NULL;
  if (o->kind < WF_KIND_WORKER || o->kind > WF_KIND_ORCHESTRATOR)
    bad = "kind is invalid";
  else if (o->max_attempts < 1)
    bad = "max_attempts must be >= 1";
  else if (!(o->backoff >= 0))
    bad = "backoff must be >= 0";
  else if (!(o->backoff_factor >= 1))
    bad = "backoff_factor must be >= 1";
  else if (!(o->backoff_max >= 0))
    bad = "backoff_max must be >= 0";
  else if (!(o->timeout >= 0))
    bad = "timeout must be >= 0";
  if (bad)
    return wf_err_set(err, "workflow '%s': executor '%s': %s", g->name, id,
                      bad);
  return WF_OK;
}

/* Add executor id with options o (NULL: defaults); returns its index. */
int wf_graph_add_exec(wf_graph_t *g, const char *id, const wf_exec_opts_t *o,
                      wf_err_t *err) {
  wf_exec_opts_t def;
  if (check_open(g, err)) return WF_ERR;
  if (!id || !*id)
    return wf_err_set(err, "workflow '%s': executor id must be a non-empty "
                      "string", g->name);
  if (wf_graph_find(g, id) >= 0)
    return wf_err_set(err, "workflow '%s': duplicate executor id '%s'",
                      g->name, id);
  if (!o) {
    wf_exec_opts_default(&def);
    o = &def;
  }
  if (check_opts(g, id, o, err)) return WF_ERR;
  WF_GROW(g->execs, g->cexec, (size_t)g->nexec + 1);
  wf_gexec_t *x = &g->execs[g->nexec];
  memset(x, 0, sizeof *x);
  x->id = wf_xstrdup(id);
  x->o = *o;
  g->nexec++;
  if (!idx_reserve(g, (size_t)g->nexec)) idx_put(g, g->nexec - 1);
  return g->nexec - 1;
}

/* Set the start executor by index. */
int wf_graph_set_start(wf_graph_t *g, int exec, wf_err_t *err) {
  if (check_open(g, err)) return WF_ERR;
  if (exec < 0 || exec >= g->nexec)
    return wf_err_set(err, "workflow '%s': start executor index %d out of "
                      "range", g->name, exec);
  g->start = exec;
  return WF_OK;
}

/* Append "id" of executor i to buf at *len (or "#i" when out of range). */
static void put_exec(const wf_graph_t *g, int i, char *buf, size_t n,
                     size_t *len) {
  if (*len >= n) return;
  int w = (i >= 0 && i < g->nexec)
              ? snprintf(buf + *len, n - *len, "%s", g->execs[i].id)
              : snprintf(buf + *len, n - *len, "#%d", i);
  if (w > 0) *len += (size_t)w;
}

/* Append a literal to buf at *len. */
static void put_str(const char *s, char *buf, size_t n, size_t *len) {
  if (*len >= n) return;
  int w = snprintf(buf + *len, n - *len, "%s", s);
  if (w > 0) *len += (size_t)w;
}

/* Append one side of a label: "a" alone, else "[a, b, ...]" (capped). */
static void put_side(const wf_graph_t *g, const int *v, int nv, int extra,
                     int list, char *buf, size_t n, size_t *len) {
  int total = nv + (extra >= 0);
  if (!list && total == 1) {
    put_exec(g, nv ? v[0] : extra, buf, n, len);
    return;
  }
  put_str("[", buf, n, len);
  for (int i = 0; i < total; i++) {
    if (i) put_str(", ", buf, n, len);
    if (i == 10 && total > 11) {
      put_str("...", buf, n, len);
      break;
    }
    put_exec(g, i < nv ? v[i] : extra, buf, n, len);
  }
  put_str("]", buf, n, len);
}

/* Label of an edge given its parts (shared by add_edge and edge_label). */
static const char *label_parts(const wf_graph_t *g, wf_edge_kind_t kind,
                               const char *name, int nsrc, const int *srcs,
                               int ntgt, const int *tgts, int dflt, char *buf,
                               size_t n) {
  size_t len = 0;
  if (!n) return buf;
  buf[0] = 0;
  put_side(g, srcs, nsrc, -1, kind == WF_EDGE_FANIN, buf, n, &len);
  put_str(" -> ", buf, n, &len);
  put_side(g, tgts, ntgt, kind == WF_EDGE_SWITCH ? dflt : -1,
           kind == WF_EDGE_SWITCH || kind == WF_EDGE_FANOUT, buf, n, &len);
  if (name && *name) {
    put_str(" (", buf, n, &len);
    put_str(name, buf, n, &len);
    put_str(")", buf, n, &len);
  }
  return buf;
}

/* Human label of edge e: "a -> b", "a -> [b, c]", "[a, b] -> c" (+ name). */
const char *wf_graph_edge_label(const wf_graph_t *g, int edge, char *buf,
                                size_t n) {
  if (edge < 0 || edge >= g->nedge) {
    if (n) snprintf(buf, n, "#%d", edge);
    return buf;
  }
  const wf_edge_t *e = &g->edges[edge];
  return label_parts(g, e->kind, e->name, e->nsrc, e->srcs, e->ntgt, e->tgts,
                     e->dflt, buf, n);
}

/* Check one endpoint index; WF_ERR naming the edge. */
static int check_end(const wf_graph_t *g, const char *label, int i,
                     wf_err_t *err) {
  if (i < 0 || i >= g->nexec)
    return wf_err_set(err, "workflow '%s': edge '%s': executor index %d out "
                      "of range", g->name, label, i);
  return WF_OK;
}

/* Copy n ints (NULL when n == 0). */
static int *dup_ints(const int *v, int n) {
  if (n <= 0) return NULL;
  int *d = wf_xmalloc((size_t)n * sizeof *d);
  memcpy(d, v, (size_t)n * sizeof *d);
  return d;
}

/* Validate and append an edge; returns its index. */
int wf_graph_add_edge(wf_graph_t *g, const wf_edge_spec_t *s, wf_err_t *err) {
  char label[256];
  if (check_open(g, err)) return WF_ERR;
  if (s->kind < WF_EDGE_DIRECT || s->kind > WF_EDGE_FANIN)
    return wf_err_set(err, "workflow '%s': edge kind %d is invalid", g->name,
                      (int)s->kind);
  int ntgt = s->ntgt < 0 ? 0 : s->ntgt, nsrc = s->nsrc < 0 ? 0 : s->nsrc;
  int dflt = s->kind == WF_EDGE_SWITCH ? s->dflt : -1;
  label_parts(g, s->kind, s->name, nsrc, s->srcs, ntgt, s->tgts, dflt, label,
              sizeof label);
  if (nsrc < 1 || !s->srcs)
    return wf_err_set(err, "workflow '%s': edge '%s': no source executor",
                      g->name, label);
  if (nsrc > 1 && s->kind != WF_EDGE_FANIN)
    return wf_err_set(err, "workflow '%s': edge '%s': only fan-in edges have "
                      "several sources", g->name, label);
  if ((ntgt < 1 || !s->tgts) && !(s->kind == WF_EDGE_SWITCH && dflt >= 0))
    return wf_err_set(err, "workflow '%s': edge '%s': no target executor",
                      g->name, label);
  if (ntgt > 1 && (s->kind == WF_EDGE_DIRECT || s->kind == WF_EDGE_FANIN))
    return wf_err_set(err, "workflow '%s': edge '%s': exactly one target "
                      "expected", g->name, label);
  if (s->has_select && s->kind != WF_EDGE_FANOUT)
    return wf_err_set(err, "workflow '%s': edge '%s': only fan-out edges "
                      "have a selector", g->name, label);
  for (int i = 0; i < nsrc; i++) {
    if (check_end(g, label, s->srcs[i], err)) return WF_ERR;
    for (int j = 0; j < i; j++)
      if (s->srcs[j] == s->srcs[i])
        return wf_err_set(err, "workflow '%s': edge '%s': duplicate source "
                          "'%s'", g->name, label, g->execs[s->srcs[i]].id);
  }
  for (int i = 0; i < ntgt; i++)
    if (check_end(g, label, s->tgts[i], err)) return WF_ERR;
  if (dflt >= 0 && check_end(g, label, dflt, err)) return WF_ERR;
  if (s->kind == WF_EDGE_SWITCH && s->dflt < -1)
    return check_end(g, label, s->dflt, err);

  WF_GROW(g->edges, g->cedge, (size_t)g->nedge + 1);
  wf_edge_t *e = &g->edges[g->nedge];
  memset(e, 0, sizeof *e);
  e->kind = s->kind;
  e->name = (s->name && *s->name) ? wf_xstrdup(s->name) : NULL;
  e->nsrc = nsrc;
  e->srcs = dup_ints(s->srcs, nsrc);
  e->ntgt = ntgt;
  e->tgts = dup_ints(s->tgts, ntgt);
  e->has_cond = wf_xcalloc(ntgt ? (size_t)ntgt : 1, 1);
  for (int i = 0; i < ntgt; i++)
    e->has_cond[i] = s->kind == WF_EDGE_SWITCH ||
                     (s->kind == WF_EDGE_DIRECT && s->has_cond &&
                      s->has_cond[i]);
  e->dflt = dflt;
  e->has_select = s->kind == WF_EDGE_FANOUT && s->has_select;
  e->fanin = -1;
  return g->nedge++;
}

/* Declare a reducer for key; returns its id (the existing one if any). */
int wf_graph_add_reducer(wf_graph_t *g, const char *key) {
  int r = wf_graph_reducer(g, key);
  if (r >= 0) return r;
  WF_GROW(g->keys, g->ckeys, (size_t)g->nkeys + 1);
  WF_GROW(g->reducers, g->creducers, (size_t)g->nkeys + 1);
  g->keys[g->nkeys] = wf_xstrdup(key);
  memset(&g->reducers[g->nkeys], 0, sizeof g->reducers[g->nkeys]);
  return g->nkeys++;
}

/* Set reducer id's signature and label (copies; replaces earlier ones). */
int wf_graph_set_reducer_sig(wf_graph_t *g, int id, const char *sig, size_t len,
                             const char *label, wf_err_t *err) {
  if (check_open(g, err) != WF_OK) return WF_ERR;
  if (id < 0 || id >= g->nkeys)
    return wf_err_set(err, "workflow '%s': no reducer %d", g->name, id + 1);
  wf_greducer_t *r = &g->reducers[id];
  free(r->sig);
  free(r->label);
  r->sig = NULL;
  if (sig) {
    r->sig = wf_xmalloc(len ? len : 1);
    memcpy(r->sig, sig, len);
  }
  r->siglen = len;
  r->label = label ? wf_xstrdup(label) : NULL;
  return WF_OK;
}

/* The label of reducer id of g for messages. */
static const char *reducer_label(const wf_graph_t *g, int id) {
  const char *l = g->reducers[id].label;
  return l ? l : "an unlabelled reducer";
}

/* 1 when reducer ia of a and ib of b have the same signature (none given
 * on both sides counts as the same). */
static int reducer_same(const wf_graph_t *a, int ia, const wf_graph_t *b,
                        int ib) {
  const wf_greducer_t *x = &a->reducers[ia], *y = &b->reducers[ib];
  if (!x->sig || !y->sig) return !x->sig && !y->sig;
  return x->siglen == y->siglen && memcmp(x->sig, y->sig, x->siglen) == 0;
}

/* Same state keys and reducer signatures; the reason names the first
 * differing key in name order (the keys are few: scans). */
int wf_graph_same_reducers(const wf_graph_t *a, const wf_graph_t *b,
                           wf_err_t *err) {
  const char *first = NULL;
  int fa = -1, fb = -1;
  for (int i = 0; i < a->nkeys; i++) {
    int j = wf_graph_reducer(b, a->keys[i]);
    if (j >= 0 && reducer_same(a, i, b, j)) continue;
    if (!first || strcmp(a->keys[i], first) < 0) first = a->keys[i], fa = i, fb = j;
  }
  for (int j = 0; j < b->nkeys; j++) {
    if (wf_graph_reducer(a, b->keys[j]) >= 0) continue;
    if (!first || strcmp(b->keys[j], first) < 0) first = b->keys[j], fa = -1, fb = j;
  }
  if (!first) return WF_OK;
  if (fa < 0)
    return wf_err_set(err, "state key '%s' gained a reducer (%s)", first,
                      reducer_label(b, fb));
  if (fb < 0)
    return wf_err_set(err, "state key '%s' lost its reducer (%s)", first,
                      reducer_label(a, fa));
  return wf_err_set(err, "the reducer of state key '%s' changed (%s -> %s)",
                    first, reducer_label(a, fa), reducer_label(b, fb));
}

/* Reducer id of key or -1 (few keys: a scan). */
int wf_graph_reducer(const wf_graph_t *g, const char *key) {
  if (!key) return -1;
  for (int i = 0; i < g->nkeys; i++)
    if (strcmp(g->keys[i], key) == 0) return i;
  return -1;
}

/* Build out-edge lists, fan-in slots, and check reachability from start. */
int wf_graph_finalize(wf_graph_t *g, wf_err_t *err) {
  if (g->finalized) return WF_OK;
  if (g->start < 0 || g->start >= g->nexec)
    return wf_err_set(err, "workflow '%s': no start executor", g->name);

  /* out-edge lists: count, allocate, fill in edge order */
  int *cnt = wf_xcalloc((size_t)g->nexec, sizeof *cnt);
  for (int e = 0; e < g->nedge; e++)
    for (int i = 0; i < g->edges[e].nsrc; i++) cnt[g->edges[e].srcs[i]]++;
  for (int x = 0; x < g->nexec; x++) {
    wf_gexec_t *ge = &g->execs[x];
    free(ge->out);
    free(ge->outpos);
    ge->out = cnt[x] ? wf_xmalloc((size_t)cnt[x] * sizeof(int)) : NULL;
    ge->outpos = cnt[x] ? wf_xmalloc((size_t)cnt[x] * sizeof(int)) : NULL;
    ge->nout = 0;
  }
  g->nfanin = 0;
  for (int e = 0; e < g->nedge; e++) {
    wf_edge_t *ed = &g->edges[e];
    ed->fanin = ed->kind == WF_EDGE_FANIN ? g->nfanin++ : -1;
    for (int i = 0; i < ed->nsrc; i++) {
      wf_gexec_t *ge = &g->execs[ed->srcs[i]];
      ge->out[ge->nout] = e;
      ge->outpos[ge->nout++] = i;
    }
  }

  /* reachability: breadth-first from start over every edge target */
  unsigned char *seen = (unsigned char *)cnt; /* reuse: nexec ints >= bytes */
  memset(seen, 0, (size_t)g->nexec);
  int *queue = wf_xmalloc((size_t)g->nexec * sizeof *queue);
  int qh = 0, qt = 0;
  seen[g->start] = 1;
  queue[qt++] = g->start;
  while (qh < qt) {
    wf_gexec_t *ge = &g->execs[queue[qh++]];
    for (int k = 0; k < ge->nout; k++) {
      wf_edge_t *ed = &g->edges[ge->out[k]];
      for (int t = -1; t < ed->ntgt; t++) {
        int x = t < 0 ? ed->dflt : ed->tgts[t];
        if (x >= 0 && !seen[x]) {
          seen[x] = 1;
          queue[qt++] = x;
        }
      }
    }
  }
  free(queue);
  if (qt < g->nexec) {
    char list[400];
    size_t len = 0;
    int shown = 0;
    list[0] = 0;
    for (int x = 0; x < g->nexec; x++) {
      if (seen[x]) continue;
      if (shown == 10) {
        put_str(", ...", list, sizeof list, &len);
        break;
      }
      put_str(shown++ ? ", '" : "'", list, sizeof list, &len);
      put_exec(g, x, list, sizeof list, &len);
      put_str("'", list, sizeof list, &len);
    }
    free(cnt);
    return wf_err_set(err, "workflow '%s': executors unreachable from start "
                      "'%s': %s", g->name, g->execs[g->start].id, list);
  }
  free(cnt);
  g->finalized = 1;
  return WF_OK;
}

/* 1 if an out-edge of src lists tgt as a target, case or default. */
int wf_graph_reaches(const wf_graph_t *g, int src, int tgt) {
  if (src < 0 || src >= g->nexec || tgt < 0) return 0;
  const wf_gexec_t *ge = &g->execs[src];
  for (int k = 0; k < ge->nout; k++) {
    const wf_edge_t *ed = &g->edges[ge->out[k]];
    if (ed->dflt == tgt) return 1;
    for (int t = 0; t < ed->ntgt; t++)
      if (ed->tgts[t] == tgt) return 1;
  }
  return 0;
}
