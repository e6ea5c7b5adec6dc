/* test_refs.c — the registry-ref leak check of lua_rt.c: a Lua state that
 * closes with a wf_lua_ref not given back reports how many and aborts, when
 * the check is on (compiled in by the WEFT_DEBUG_REFS build option or a
 * build without NDEBUG, or $WEFT_DEBUG_REFS at run time); a state without a
 * leak closes quietly. Each case runs in a child process whose exit and
 * stderr are checked.
 *
 *   c_test_refs              cases for this build's configuration (c_refs)
 *   c_test_refs compiled-in  also require the check to be compiled in (the
 *                            asan_ref_canary test of sanitized builds)
 *
 * Depends on LuaJIT, lua_rt.h and harness.h. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "lua_rt.h"

#if defined(WEFT_DEBUG_REFS) || !defined(NDEBUG)
#define REFS_COMPILED_IN 1
#else
#define REFS_COMPILED_IN 0
#endif

typedef struct child {
  int aborted;     /* killed by SIGABRT */
  int code;        /* exit status when it exited */
  char err[2048];  /* its stderr */
} child_t;

/* Set: the child also takes a ref of nil and gives it back. */
static int nil_ref;

/* In the child: a state with weft's runtime that takes `leak` registry refs
 * through wf_lua_ref and gives back none of them (and, with nil_ref, one of
 * nil that it gives back), then closes. */
static void child_body(int leak) {
  lua_State *L = luaL_newstate();
  if (!L) _exit(3);
  luaL_openlibs(L);
  wf_lua_rt_t *rt = wf_lua_rt(L);
  for (int i = 0; i < leak; i++) {
    lua_newtable(L);
    (void)wf_lua_ref(rt, L);
  }
  if (nil_ref) {
    lua_pushnil(L);
    wf_lua_unref(rt, wf_lua_ref(rt, L)); /* LUA_REFNIL */
  }
  lua_close(L);
  _exit(0);
}

/* Run child_body(leak) in a child, with $WEFT_DEBUG_REFS set when env. */
static child_t run_child(int leak, int env) {
  child_t c;
  int fds[2];
  memset(&c, 0, sizeof c);
  c.code = -1;
  if (pipe(fds) != 0) return c;
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 2);
    if (env) setenv("WEFT_DEBUG_REFS", "1", 1);
    else unsetenv("WEFT_DEBUG_REFS");
    child_body(leak);
  }
  close(fds[1]);
  size_t n = 0;
  ssize_t r;
  while (n < sizeof c.err - 1 &&
         (r = read(fds[0], c.err + n, sizeof c.err - 1 - n)) > 0)
    n += (size_t)r;
  c.err[n] = '\0';
  close(fds[0]);
  int st = 0;
  if (pid < 0 || waitpid(pid, &st, 0) != pid) return c;
  if (WIFSIGNALED(st)) c.aborted = WTERMSIG(st) == SIGABRT;
  if (WIFEXITED(st)) c.code = WEXITSTATUS(st);
  return c;
}

/* A state that gave back every ref closes quietly, check on or off. */
static void test_no_leak_is_quiet(void) {
  child_t c = run_child(0, 1);
  CHECK_INT(c.aborted, 0);
  CHECK_INT(c.code, 0);
  CHECK_STR(c.err, "");
  c = run_child(0, 0);
  CHECK_INT(c.code, 0);
  CHECK_STR(c.err, "");
}

/* A ref of nil given back (LUA_REFNIL both ways) is no leak. */
static void test_nil_ref_is_no_leak(void) {
  nil_ref = 1;
  child_t c = run_child(0, 1);
  nil_ref = 0;
  CHECK_INT(c.aborted, 0);
  CHECK_INT(c.code, 0);
  CHECK_STR(c.err, "");
}

/* $WEFT_DEBUG_REFS turns the check on in any build: message, then abort. */
static void test_leak_fails_with_env(void) {
  child_t c = run_child(2, 1);
  CHECK_INT(c.aborted, 1);
  CHECK(strstr(c.err, "weft: 2 registry reference(s) leaked") != NULL);
  if (!strstr(c.err, "leaked")) fprintf(stderr, "  stderr: %s\n", c.err);
}

/* Without the variable the build decides. */
static void test_leak_without_env(void) {
  child_t c = run_child(1, 0);
  if (REFS_COMPILED_IN) {
    CHECK_INT(c.aborted, 1);
    CHECK(strstr(c.err, "weft: 1 registry reference(s) leaked") != NULL);
  } else {
    CHECK_INT(c.aborted, 0);
    CHECK_INT(c.code, 0);
    CHECK_STR(c.err, "");
  }
}

/* The canary of sanitized builds: the check must be compiled in there. */
static void test_compiled_in(void) {
  CHECK_INT(REFS_COMPILED_IN, 1);
  child_t c = run_child(1, 0);
  CHECK_INT(c.aborted, 1);
  CHECK(strstr(c.err, "1 registry reference(s) leaked") != NULL);
}

int main(int argc, char **argv) {
  RUN(test_no_leak_is_quiet);
  RUN(test_nil_ref_is_no_leak);
  RUN(test_leak_fails_with_env);
  RUN(test_leak_without_env);
  if (argc > 1 && strcmp(argv[1], "compiled-in") == 0) RUN(test_compiled_in);
  return harness_end("test_refs.c");
}
