/* gv.c — graph layout with Graphviz (see gv.h for the contract).
 *
 * One Graphviz context for the process, made on first use, with exactly two
 * plugins: core (the SVG renderer) and dot_layout, dlopen'ed from
 * Graphviz's plugin directory (WF_GV_PLUGIN_DIR, from pkg-config at build
 * time) and handed to gvContextPlugins as builtins. Demand loading
 * (gvContext) would also load the pango text-layout plugin: fontconfig then
 * scans the system's fonts (slow on first use, leaks by design under
 * LeakSanitizer) and text widths vary with the installed fonts. Without it
 * Graphviz estimates text widths from its built-in metrics: the same layout
 * on every machine.
 *
 * Graphviz reports problems through agerr(), which prints to stderr unless
 * a user function is set (agseterrf): ours appends to a buffer that the
 * failing call turns into its error. Graphviz's parser, its error state and
 * several of its renderers' buffers are global, so every call holds one
 * mutex (C11 threads, not <pthread.h>: see watchdog.c).
 * Depends on gv.h, common.h, libgvc/libcgraph, dlfcn, threads. */
#include "gv.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <threads.h>

#include <gvc.h>

#ifndef WF_GV_PLUGIN_DIR
#define WF_GV_PLUGIN_DIR "/usr/lib/x86_64-linux-gnu/graphviz"
#endif
#ifndef WF_GV_PLUGIN_ABI
#define WF_GV_PLUGIN_ABI "6"
#endif

#define GV_MSG_MAX 1024 /* bytes of Graphviz messages kept per call */

/* The dot scanner's reset (flex's yylex_destroy, exported by libcgraph
 * but in no public header; weak, in case a build of it lacks it). */
extern int aaglex_destroy(void) __attribute__((weak));

static once_flag gv_once = ONCE_FLAG_INIT;
static mtx_t gv_mtx;
static GVC_t *gv_ctx;        /* NULL when init failed: gv_init_err says why */
static char gv_init_err[400];
static char gv_msg[GV_MSG_MAX]; /* messages of the current call (under gv_mtx) */
static size_t gv_msg_len;

/* agerr's user function: keep what Graphviz says (it calls this with the
 * level, ": " and the message as separate pieces); drop what overflows. */
static int gv_errf(char *s) {
  size_t n = strlen(s), room = sizeof gv_msg - 1 - gv_msg_len;
  if (n > room) n = room;
  memcpy(gv_msg + gv_msg_len, s, n);
  gv_msg_len += n;
  gv_msg[gv_msg_len] = '\0';
  return 0;
}

/* The library symbol of plugin name ("core"): dlopen'ed for good. NULL
 * with gv_init_err set. */
static void *gv_plugin(const char *name) {
  char path[512], sym[64];
  void *h, *lib;
  snprintf(path, sizeof path, "%s/libgvplugin_%s.so." WF_GV_PLUGIN_ABI,
           WF_GV_PLUGIN_DIR, name);
  snprintf(sym, sizeof sym, "gvplugin_%s_LTX_library", name);
  if (!(h = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
    snprintf(gv_init_err, sizeof gv_init_err,
             "graphviz: cannot load the %s plugin: %.300s", name,
             dlerror());
    return NULL;
  }
  if (!(lib = dlsym(h, sym))) {
    snprintf(gv_init_err, sizeof gv_init_err, "graphviz: %.300s has no %s",
             path, sym);
    dlclose(h);
  }
  return lib;
}

/* call_once: the mutex, the error hook and the context with its plugins. */
static void gv_init(void) {
  static lt_symlist_t builtins[3];
  if (mtx_init(&gv_mtx, mtx_plain) != thrd_success) {
    snprintf(gv_init_err, sizeof gv_init_err, "graphviz: mtx_init failed");
    return;
  }
  agseterrf(gv_errf);
  if (!(builtins[0].address = gv_plugin("core")) ||
      !(builtins[1].address = gv_plugin("dot_layout")))
    return;
  builtins[0].name = "gvplugin_core_LTX_library";
  builtins[1].name = "gvplugin_dot_layout_LTX_library";
  mtx_lock(&gv_mtx);
  gv_msg_len = 0;
  gv_ctx = gvContextPlugins(builtins, 0);
  mtx_unlock(&gv_mtx);
  if (!gv_ctx)
    snprintf(gv_init_err, sizeof gv_init_err,
             "graphviz: cannot create a context");
}

/* err = "<what>: <Graphviz's messages>" — one line: "Error: " labels
 * dropped, lines joined by "; "; <fallback> when Graphviz said nothing. */
static int gv_fail(wf_err_t *err, const char *what, const char *fallback) {
  char line[GV_MSG_MAX];
  size_t o = 0;
  const char *p = gv_msg;
  while (*p && o < sizeof line - 1) {
    const char *nl = strchr(p, '\n'), *end = nl ? nl : p + strlen(p);
    size_t n;
    if (!strncmp(p, "Error: ", 7)) p += 7;
    n = (size_t)(end - p);
    if (n && o) {
      if (o + 2 >= sizeof line - 1) break;
      memcpy(line + o, "; ", 2);
      o += 2;
    }
    if (n > sizeof line - 1 - o) n = sizeof line - 1 - o;
    memcpy(line + o, p, n);
    o += n;
    p = nl ? nl + 1 : end;
  }
  line[o] = '\0';
  return wf_err_set(err, "%s: %s", what, o ? line : fallback);
}

int wf_gv_render(const char *src, size_t len, const char *format, char **out,
                 size_t *out_len, wf_err_t *err) {
  Agraph_t *g;
  char *data = NULL;
  unsigned int n = 0;
  int nodes, edges, rc = WF_ERR;
  *out = NULL;
  *out_len = 0;
  if (strcmp(format, "svg") != 0)
    return wf_err_set(err, "graphviz: format '%s' is not one of svg", format);
  if (len > WF_GV_MAX_SOURCE)
    return wf_err_set(err, "dot source: %zu bytes, over the limit of %d",
                      len, WF_GV_MAX_SOURCE);
  if (memchr(src, '\0', len))
    return wf_err_set(err, "dot source: a NUL byte at offset %zu",
                      (size_t)((const char *)memchr(src, '\0', len) - src));
  call_once(&gv_once, gv_init);
  if (!gv_ctx) return wf_err_set(err, "%s", gv_init_err);
  mtx_lock(&gv_mtx);
  gv_msg_len = 0;
  gv_msg[0] = '\0';
  agreseterrors();
  /* Graphviz 2.43's scanner keeps counting lines across reads: restart
   * it, so a syntax error names the line of this source. */
  agsetfile(NULL);
  /* agmemread reads up to the NUL: src[len] is one (Lua strings and the
   * callers' buffers are NUL-terminated, and there is none inside). */
  g = agmemread(src);
  /* The scanner keeps what it buffered past the graph's end (the rest of
   * its last line) and the next read would parse it first: another
   * caller's source. Drop it. */
  if (aaglex_destroy) aaglex_destroy();
  if (!g) {
    gv_fail(err, "dot source", "not a graph");
    goto out;
  }
  nodes = agnnodes(g);
  edges = agnedges(g);
  if (nodes > WF_GV_MAX_NODES || edges > WF_GV_MAX_EDGES) {
    wf_err_set(err, "graphviz: %d nodes and %d edges, over the limit of %d "
               "nodes and %d edges", nodes, edges, WF_GV_MAX_NODES,
               WF_GV_MAX_EDGES);
    agclose(g);
    goto out;
  }
  if (gvLayout(gv_ctx, g, "dot") != 0) {
    gv_fail(err, "graphviz layout", "failed");
  } else if (gvRenderData(gv_ctx, g, format, &data, &n) != 0 || !data) {
    gv_fail(err, "graphviz render", "failed");
    if (data) gvFreeRenderData(data);
  } else {
    *out = data;
    *out_len = n;
    rc = WF_OK;
  }
  gvFreeLayout(gv_ctx, g);
  agclose(g);
out:
  mtx_unlock(&gv_mtx);
  return rc;
}

void wf_gv_free(char *out) {
  if (out) gvFreeRenderData(out);
}
