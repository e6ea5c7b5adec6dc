/* route.c — edge routing of one run: direct, conditional, switch, fan-out
 * (all or selected) and fan-in edges. Fan-in buffers are per edge and per
 * source, allocated on first use; a count of non-empty sources makes the
 * "has every source sent?" check O(1) per message. A message that every
 * edge able to take it refused is undelivered: the refusing edges are kept
 * for the caller (an event), or routing fails in strict mode. Conditions,
 * selectors and list building are host callbacks. Depends on graph.h and
 * val.h (route.h). */
#include "route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Messages buffered from one source of a fan-in edge. */
typedef struct wf_fbuf {
  wf_val_t *v;
  int n, cap;
} wf_fbuf_t;

/* Buffers of one fan-in edge: q[i] for its i-th source. */
typedef struct wf_fanin {
  int edge;
  int queued;   /* complete, waiting in the ready list for wf_route_flush */
  int nsrc;
  int nonempty; /* sources with at least one buffered message */
  int total;    /* messages buffered on this edge */
  wf_fbuf_t q[];
} wf_fanin_t;

struct wf_route {
  const wf_graph_t *g;
  wf_vals_t *vals;
  wf_fanin_t **fi; /* g->nfanin slots, NULL until used */
  int total;       /* messages buffered on every fan-in edge */
  int *sel;        /* selector output scratch */
  size_t csel;
  unsigned char *mark; /* selected targets scratch */
  size_t cmark;
  wf_val_t *tmp; /* fan-in flattening scratch */
  size_t ctmp;
  int *ready; /* fan-in slots complete since the last flush, in order */
  size_t nready, cready;
  int *refused; /* edges that refused the last message (undelivered) */
  size_t nrefused, crefused;
  int strict; /* an undelivered message is an error */
};

/* Routing state for a run of finalized graph g. */
wf_route_t *wf_route_new(const wf_graph_t *g, wf_vals_t *vals) {
  wf_route_t *r = wf_xcalloc(1, sizeof *r);
  r->g = g;
  r->vals = vals;
  if (g->nfanin > 0) r->fi = wf_xcalloc((size_t)g->nfanin, sizeof *r->fi);
  return r;
}

/* Release every buffered message and free the routing state. */
void wf_route_free(wf_route_t *r) {
  if (!r) return;
  for (int s = 0; r->fi && s < r->g->nfanin; s++) {
    wf_fanin_t *f = r->fi[s];
    if (!f) continue;
    for (int i = 0; i < f->nsrc; i++) {
      for (int k = 0; k < f->q[i].n; k++)
        wf_vals_release(r->vals, f->q[i].v[k]);
      free(f->q[i].v);
    }
    free(f);
  }
  free(r->fi);
  free(r->sel);
  free(r->mark);
  free(r->tmp);
  free(r->ready);
  free(r->refused);
  free(r);
}

/* Append a delivery (retaining msg when retain is set). */
static void deliver(wf_route_t *r, wf_dvec_t *out, int exec, int edge,
                    wf_val_t msg, int retain) {
  if (retain) wf_vals_retain(r->vals, msg);
  wf_dvec_push(out, (wf_delivery_t){exec, edge, msg});
}

/* Fill err with "<what> of edge '<label>' failed: <detail>". */
static int edge_err(wf_route_t *r, const char *what, int e, wf_err_t *err,
                    const char *detail) {
  char label[256];
  wf_graph_edge_label(r->g, e, label, sizeof label);
  return wf_err_set(err, "%s of edge '%s' failed: %s", what, label,
                    detail && *detail ? detail : "unknown error");
}

/* Evaluate the condition of (e, i) on msg into *ok. */
static int eval_cond(wf_route_t *r, const wf_route_hooks_t *h, int e, int i,
                     wf_val_t msg, int *ok, wf_err_t *err) {
  wf_err_t sub;
  sub.msg[0] = 0;
  *ok = 0;
  if (!h->cond) return edge_err(r, "condition", e, err, "no condition hook");
  if (h->cond(h->ud, r->g, e, i, msg, ok, &sub) != WF_OK)
    return edge_err(r, "condition", e, err, sub.msg);
  return WF_OK;
}

/* 1 if edge ed can deliver to only (cheap pre-filter for targeted sends). */
static int edge_has_target(const wf_edge_t *ed, int only) {
  if (ed->dflt == only) return 1;
  for (int t = 0; t < ed->ntgt; t++)
    if (ed->tgts[t] == only) return 1;
  return 0;
}

/* Fan-out: every target or the selected ones, in target order. */
static int route_fanout(wf_route_t *r, const wf_route_hooks_t *h, int e,
                        wf_val_t msg, int only, wf_dvec_t *out,
                        wf_err_t *err) {
  const wf_edge_t *ed = &r->g->edges[e];
  if (!ed->has_select) {
    for (int t = 0; t < ed->ntgt; t++)
      if (only < 0 || ed->tgts[t] == only)
        deliver(r, out, ed->tgts[t], e, msg, 1);
    return WF_OK;
  }
  WF_GROW(r->sel, r->csel, (size_t)ed->ntgt);
  WF_GROW(r->mark, r->cmark, (size_t)ed->ntgt);
  int nsel = 0;
  wf_err_t sub;
  sub.msg[0] = 0;
  if (!h->select) return edge_err(r, "selector", e, err, "no selector hook");
  if (h->select(h->ud, r->g, e, msg, r->sel, &nsel, &sub) != WF_OK)
    return edge_err(r, "selector", e, err, sub.msg);
  if (nsel < 0 || nsel > ed->ntgt)
    return edge_err(r, "selector", e, err, "too many indices returned");
  memset(r->mark, 0, (size_t)ed->ntgt);
  for (int k = 0; k < nsel; k++) {
    if (r->sel[k] < 0 || r->sel[k] >= ed->ntgt) {
      char d[96];
      snprintf(d, sizeof d, "index %d out of range 1..%d", r->sel[k] + 1,
               ed->ntgt);
      return edge_err(r, "selector", e, err, d);
    }
    r->mark[r->sel[k]] = 1;
  }
  for (int t = 0; t < ed->ntgt; t++)
    if (r->mark[t] && (only < 0 || ed->tgts[t] == only))
      deliver(r, out, ed->tgts[t], e, msg, 1);
  return WF_OK;
}

/* Fan-in: buffer msg from source position pos; once every source has a
 * message buffered, queue the edge for wf_route_flush. */
static void route_fanin(wf_route_t *r, int e, int pos, wf_val_t msg) {
  const wf_edge_t *ed = &r->g->edges[e];
  wf_fanin_t *f = r->fi[ed->fanin];
  if (!f) {
    f = wf_xcalloc(1, sizeof *f + (size_t)ed->nsrc * sizeof(wf_fbuf_t));
    f->nsrc = ed->nsrc;
    f->edge = e;
    r->fi[ed->fanin] = f;
  }
  wf_fbuf_t *q = &f->q[pos];
  if (q->n == q->cap) {
    q->cap = q->cap ? q->cap * 2 : 2;
    q->v = wf_xrealloc(q->v, (size_t)q->cap * sizeof *q->v);
  }
  wf_vals_retain(r->vals, msg);
  q->v[q->n++] = msg;
  if (q->n == 1) f->nonempty++;
  f->total++;
  r->total++;
  if (f->nonempty < ed->nsrc || f->queued) return;
  f->queued = 1;
  WF_GROW(r->ready, r->cready, r->nready + 1);
  r->ready[r->nready++] = ed->fanin;
}

/* Deliver every fan-in edge completed since the last flush (in the order
 * they completed): the buffered messages flattened in source order. */
void wf_route_flush(wf_route_t *r, const wf_route_hooks_t *h,
                    wf_dvec_t *out) {
  for (size_t k = 0; k < r->nready; k++) {
    wf_fanin_t *f = r->fi[r->ready[k]];
    const wf_edge_t *ed = &r->g->edges[f->edge];
    WF_GROW(r->tmp, r->ctmp, (size_t)f->total);
    int n = 0;
    for (int i = 0; i < ed->nsrc; i++) {
      memcpy(r->tmp + n, f->q[i].v, (size_t)f->q[i].n * sizeof(wf_val_t));
      n += f->q[i].n;
      f->q[i].n = 0;
    }
    r->total -= f->total;
    f->total = 0;
    f->nonempty = 0;
    f->queued = 0;
    wf_val_t list = h->make_list ? h->make_list(h->ud, r->tmp, n) : 0;
    for (int i = 0; i < n; i++) wf_vals_release(r->vals, r->tmp[i]);
    deliver(r, out, ed->tgts[0], f->edge, list, 0);
  }
  r->nready = 0;
}

/* Fill err with "message from 'src' (to 'only') was not delivered: ...". */
static int undelivered_err(wf_route_t *r, int src, int only, wf_err_t *err) {
  char buf[sizeof err->msg], label[128];
  const wf_graph_t *g = r->g;
  int n = snprintf(buf, sizeof buf, "message from '%s'", g->execs[src].id);
  if (only >= 0)
    n += snprintf(buf + n, sizeof buf - (size_t)n, " to '%s'",
                  g->execs[only].id);
  n += snprintf(buf + n, sizeof buf - (size_t)n,
                " was not delivered: no edge accepted it (");
  for (size_t i = 0; i < r->nrefused && n < (int)sizeof buf; i++) {
    wf_graph_edge_label(g, r->refused[i], label, sizeof label);
    n += snprintf(buf + n, sizeof buf - (size_t)n, "%sedge '%s'",
                  i ? ", " : "", label);
  }
  if (n < (int)sizeof buf)
    snprintf(buf + n, sizeof buf - (size_t)n,
             "); on_undelivered = \"error\" made it fail the run");
  return wf_err_set(err, "%s", buf);
}

/* Route msg sent by src along its out-edges (only >= 0: to that target). */
int wf_route_message(wf_route_t *r, const wf_route_hooks_t *h, int src,
                     wf_val_t msg, int only, wf_dvec_t *out, wf_err_t *err) {
  const wf_graph_t *g = r->g;
  r->nrefused = 0;
  if (src < 0 || src >= g->nexec)
    return wf_err_set(err, "route: executor index %d out of range", src);
  const wf_gexec_t *ge = &g->execs[src];
  int taken = 0;
  for (int k = 0; k < ge->nout; k++) {
    int e = ge->out[k], ok;
    const wf_edge_t *ed = &g->edges[e];
    if (only >= 0 && !edge_has_target(ed, only)) continue;
    size_t before = out->n;
    switch (ed->kind) {
    case WF_EDGE_DIRECT:
      if (ed->has_cond[0]) {
        if (eval_cond(r, h, e, 0, msg, &ok, err)) goto fail;
        if (!ok) break;
      }
      deliver(r, out, ed->tgts[0], e, msg, 1);
      break;
    case WF_EDGE_SWITCH: {
      int chosen = ed->dflt;
      for (int i = 0; i < ed->ntgt; i++) {
        if (eval_cond(r, h, e, i, msg, &ok, err)) goto fail;
        if (ok) {
          chosen = ed->tgts[i];
          break;
        }
      }
      if (chosen >= 0 && (only < 0 || chosen == only))
        deliver(r, out, chosen, e, msg, 1);
      break;
    }
    case WF_EDGE_FANOUT:
      if (route_fanout(r, h, e, msg, only, out, err)) goto fail;
      break;
    case WF_EDGE_FANIN:
      route_fanin(r, e, ge->outpos[k], msg);
      taken = 1;
      break;
    }
    if (out->n > before) {
      taken = 1;
    } else if (!taken) { /* remember refusals until something accepts */
      WF_GROW(r->refused, r->crefused, r->nrefused + 1);
      r->refused[r->nrefused++] = e;
    }
  }
  if (taken) r->nrefused = 0;
  if (r->nrefused && r->strict) return undelivered_err(r, src, only, err);
  return WF_OK;
fail:
  r->nrefused = 0;
  return WF_ERR;
}

/* Edges that refused the last routed message (see route.h). */
int wf_route_refused(const wf_route_t *r, const int **edges) {
  *edges = r->refused;
  return (int)r->nrefused;
}

/* Strict mode: undelivered messages fail wf_route_message. */
void wf_route_set_strict(wf_route_t *r, int strict) { r->strict = strict; }

/* Messages buffered by fan-in edge e from its i-th source. */
int wf_route_buffered(const wf_route_t *r, int edge, int i) {
  if (edge < 0 || edge >= r->g->nedge) return 0;
  const wf_edge_t *ed = &r->g->edges[edge];
  if (ed->fanin < 0 || i < 0 || i >= ed->nsrc || !r->fi[ed->fanin]) return 0;
  return r->fi[ed->fanin]->q[i].n;
}

/* The buffer of fan-in edge e, source position i (borrowed). */
const wf_val_t *wf_route_buffer(const wf_route_t *r, int edge, int i, int *n) {
  *n = wf_route_buffered(r, edge, i);
  return *n ? r->fi[r->g->edges[edge].fanin]->q[i].v : NULL;
}

/* Restore one buffered message of fan-in edge e, source position i. */
int wf_route_restore(wf_route_t *r, int edge, int i, wf_val_t msg,
                     wf_err_t *err) {
  const wf_edge_t *ed = (edge >= 0 && edge < r->g->nedge) ? &r->g->edges[edge]
                                                          : NULL;
  if (!ed || ed->fanin < 0 || i < 0 || i >= ed->nsrc) {
    wf_vals_release(r->vals, msg);
    return wf_err_set(err, "restore: edge %d has no fan-in source %d", edge,
                      i);
  }
  route_fanin(r, edge, i, msg);
  wf_vals_release(r->vals, msg); /* route_fanin retained its own */
  return WF_OK;
}

/* Use compatible graph g from now on (wf_run_swap_graph checked it). */
void wf_route_set_graph(wf_route_t *r, const wf_graph_t *g) { r->g = g; }

/* Messages buffered across every fan-in edge. */
int wf_route_buffered_total(const wf_route_t *r) { return r->total; }

/* Append d (its message reference moves into the vector). */
void wf_dvec_push(wf_dvec_t *dv, wf_delivery_t d) {
  if (dv->n == dv->cap) WF_GROW(dv->v, dv->cap, dv->n + 1);
  dv->v[dv->n++] = d;
}

/* Release every message and empty the vector, keeping its storage. */
void wf_dvec_clear(wf_dvec_t *dv, wf_vals_t *vals) {
  for (size_t i = 0; i < dv->n; i++) wf_vals_release(vals, dv->v[i].msg);
  dv->n = 0;
}

/* Free the vector's storage. */
void wf_dvec_free(wf_dvec_t *dv) {
  free(dv->v);
  dv->v = NULL;
  dv->n = dv->cap = 0;
}
