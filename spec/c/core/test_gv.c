/* test_gv.c — unit tests of gv.c (Graphviz layout) without Lua: a graph
 * renders as SVG; Graphviz's syntax errors come back in err and nothing
 * reaches stderr; the rest of one source is never parsed as the next
 * call's; the source, node and edge limits, a NUL byte and a format other
 * than svg are refused; threads rendering at once all get the right output.
 * Depends on harness.h, gv.h, C11 threads. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>
#include <unistd.h>

#include "gv.h"
#include "harness.h"

/* Render src (NUL-terminated); the output (free with wf_gv_free) or NULL
 * with err set. */
static char *render(const char *src, wf_err_t *err) {
  char *out;
  size_t n;
  if (wf_gv_render(src, strlen(src), "svg", &out, &n, err) != WF_OK) {
    CHECK(out == NULL);
    return NULL;
  }
  CHECK_INT(n, strlen(out));
  return out;
}

/* A chain of n nodes "n0 -> n1 -> ..." as dot (malloc'ed). */
static char *chain(int n) {
  size_t cap = 64 + (size_t)n * 24, o = 0;
  char *s = malloc(cap);
  o += (size_t)snprintf(s + o, cap - o, "digraph chain {\n");
  for (int i = 0; i + 1 < n; i++)
    o += (size_t)snprintf(s + o, cap - o, "  n%d -> n%d;\n", i, i + 1);
  snprintf(s + o, cap - o, "}\n");
  return s;
}

static void test_renders_svg(void) {
  wf_err_t err;
  char *svg = render("digraph g { a -> b [label=\"x<y\"] }", &err);
  CHECK(svg != NULL);
  if (!svg) return;
  CHECK(strstr(svg, "<svg") != NULL);
  CHECK(strstr(svg, "<title>a</title>") != NULL);
  CHECK(strstr(svg, ">x&lt;y</text>") != NULL);
  CHECK(strstr(svg, "</svg>") != NULL);
  wf_gv_free(svg);
  wf_gv_free(NULL);
}

/* Graphviz's complaint is the error, and stderr stays silent. */
static void test_errors_returned_not_printed(void) {
  char path[] = "/tmp/wf-gv-stderr-XXXXXX";
  int fd = mkstemp(path), saved = dup(2);
  wf_err_t err;
  char buf[256];
  ssize_t n;
  CHECK(fd >= 0 && saved >= 0);
  fflush(stderr);
  dup2(fd, 2);
  CHECK(render("digraph { a -> }", &err) == NULL);
  CHECK(render("digraph {\n a [label=\"open\n", &err) == NULL);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  n = pread(fd, buf, sizeof buf - 1, 0);
  CHECK_INT(n, 0);
  if (n > 0) {
    buf[n] = '\0';
    fprintf(stderr, "printed: %s\n", buf);
  }
  close(fd);
  unlink(path);
  CHECK(render("digraph { a -> }", &err) == NULL);
  CHECK_STR(err.msg, "dot source: syntax error in line 1 near '}'");
}

/* What follows a graph on its last line is dropped, not read next time. */
static void test_no_carry_over(void) {
  wf_err_t err;
  char *a = render("digraph a {} digraph zzz {}", &err);
  char *q = render("digraph q {}", &err);
  CHECK(a && strstr(a, "<title>a</title>"));
  CHECK(q && strstr(q, "<title>q</title>"));
  CHECK(q && !strstr(q, "zzz"));
  wf_gv_free(a);
  wf_gv_free(q);
}

static void test_limits(void) {
  wf_err_t err;
  char *out = (char *)1, *big;
  size_t n = 7;
  CHECK_INT(wf_gv_render("digraph {}", 10, "png", &out, &n, &err), WF_ERR);
  CHECK(out == NULL && n == 0);
  CHECK_STR(err.msg, "graphviz: format 'png' is not one of svg");
  CHECK_INT(wf_gv_render("digraph {\0}", 11, "svg", &out, &n, &err), WF_ERR);
  CHECK_STR(err.msg, "dot source: a NUL byte at offset 9");
  big = calloc(WF_GV_MAX_SOURCE + 2, 1);
  memset(big, ' ', WF_GV_MAX_SOURCE + 1);
  CHECK_INT(wf_gv_render(big, WF_GV_MAX_SOURCE + 1, "svg", &out, &n, &err),
            WF_ERR);
  CHECK(strstr(err.msg, "over the limit of 1048576") != NULL);
  free(big);
  big = chain(WF_GV_MAX_NODES + 1);
  CHECK(render(big, &err) == NULL);
  {
    char want[160];
    snprintf(want, sizeof want, "graphviz: %d nodes and %d edges, over the "
             "limit of %d nodes and %d edges", WF_GV_MAX_NODES + 1,
             WF_GV_MAX_NODES, WF_GV_MAX_NODES, WF_GV_MAX_EDGES);
    CHECK_STR(err.msg, want);
  }
  free(big);
  /* 8001 parallel edges between two nodes */
  {
    size_t cap = 32 + 6 * (WF_GV_MAX_EDGES + 1), o;
    big = malloc(cap);
    o = (size_t)snprintf(big, cap, "digraph {");
    for (int i = 0; i <= WF_GV_MAX_EDGES; i++)
      o += (size_t)snprintf(big + o, cap - o, "a->b;");
    snprintf(big + o, cap - o, "}");
  }
  CHECK(render(big, &err) == NULL);
  {
    char want[80];
    snprintf(want, sizeof want, "2 nodes and %d edges, over the limit",
             WF_GV_MAX_EDGES + 1);
    CHECK(strstr(err.msg, want) != NULL);
  }
  free(big);
}

static const char *thread_src;
static const char *thread_want;

/* A thread: render thread_src 10 times; the count of right outputs. */
static int render_many(void *arg) {
  int ok = 0;
  (void)arg;
  for (int i = 0; i < 10; i++) {
    wf_err_t err;
    char *out;
    size_t n;
    if (wf_gv_render(thread_src, strlen(thread_src), "svg", &out, &n, &err) ==
        WF_OK) {
      ok += strcmp(out, thread_want) == 0;
      wf_gv_free(out);
    }
  }
  return ok;
}

static void test_threads(void) {
  wf_err_t err;
  char *src = chain(20), *want = render(src, &err);
  thrd_t th[4];
  CHECK(want != NULL);
  if (!want) return;
  thread_src = src;
  thread_want = want;
  for (int i = 0; i < 4; i++)
    CHECK_INT(thrd_create(&th[i], render_many, NULL), thrd_success);
  for (int i = 0; i < 4; i++) {
    int ok = 0;
    thrd_join(th[i], &ok);
    CHECK_INT(ok, 10);
  }
  wf_gv_free(want);
  free(src);
}

int main(void) {
  RUN(test_renders_svg);
  RUN(test_errors_returned_not_printed);
  RUN(test_no_carry_over);
  RUN(test_limits);
  RUN(test_threads);
  return harness_end(__FILE__);
}
