/* lua_proc.c — Lua binding of child processes (package "weft.core.proc"):
 * the yielding primitive run(spec) behind weft.sandbox.run, and the small
 * file-system helpers weft.sandbox needs (mkdtemp, chown, rmtree,
 * realpath, executable, geteuid, nondumpable) plus fd_count for leak
 * checks. Arguments are validated for the user by lua/weft/sandbox.lua;
 * here they are only type-checked. run() follows the wait protocol
 * (lua_rt.h): the process's notification marks the caller ready, its
 * result table is built when the caller resumes. A process still running
 * when its task is aborted (run cancel, executor timeout) or when the Lua
 * state closes (a close hook) is killed with everything it started (see
 * proc.h). Depends on lua.h, lua_rt.h, proc.h. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lua_rt.h"
#include "proc.h"

typedef struct lp_state lp_state_t;

/* One process a Lua caller waits for. */
typedef struct lp_wait {
  wf_proc_t *p;
  wf_task_t *t;    /* the waiter (a task or the main thread) */
  lp_state_t *st;
  struct lp_wait *prev, *next;
} lp_wait_t;

/* Per-state: the waits in progress, so that the state's close kills what
 * is still running. Found through its close hook. */
struct lp_state {
  wf_lua_hook_t hook; /* first: the hook is the state */
  lp_wait_t *live;
};

/* Unlink w from its state's list and free it with its process. */
static void lp_free(lp_wait_t *w) {
  if (w->prev)
    w->prev->next = w->next;
  else
    w->st->live = w->next;
  if (w->next) w->next->prev = w->prev;
  wf_proc_free(w->p);
  free(w);
}

/* Close hook: the Lua state is closing; kill the processes its tasks still
 * wait for (those tasks will never be resumed: they forget the wait). */
static void lp_close(wf_lua_rt_t *rt, wf_lua_hook_t *h) {
  lp_state_t *st = (lp_state_t *)h;
  (void)rt;
  while (st->live) {
    wf_task_t *t = st->live->t;
    t->cancel = NULL;
    t->prepare = NULL;
    t->wait = NULL;
    lp_free(st->live);
  }
  free(st);
}

/* The proc state of rt (registering its close hook on first use); NULL
 * when out of memory. */
static lp_state_t *lp_state(wf_lua_rt_t *rt) {
  lp_state_t *st = (lp_state_t *)wf_lua_rt_hook(rt, lp_close);
  if (st || !(st = calloc(1, sizeof *st))) return st;
  st->hook.fn = lp_close;
  st->hook.order = WF_HOOK_IO;
  wf_lua_rt_on_close(rt, &st->hook);
  return st;
}

/* Push the result table of a finished process on L.
 * {exit_code|nil, signal|nil, stdout, stderr, stdout_truncated,
 *  stderr_truncated, timed_out, duration_ms, pid, error|nil} */
static void lp_push_result(lua_State *L, wf_proc_t *p) {
  size_t len;
  int trunc;
  const char *s;
  lua_createtable(L, 0, 10);
  if (wf_proc_signal(p)) {
    lua_pushinteger(L, wf_proc_signal(p));
    lua_setfield(L, -2, "signal");
  } else {
    lua_pushinteger(L, wf_proc_exit_code(p));
    lua_setfield(L, -2, "exit_code");
  }
  s = wf_proc_stdout(p, &len, &trunc);
  lua_pushlstring(L, s, len);
  lua_setfield(L, -2, "stdout");
  lua_pushboolean(L, trunc);
  lua_setfield(L, -2, "stdout_truncated");
  s = wf_proc_stderr(p, &len, &trunc);
  lua_pushlstring(L, s, len);
  lua_setfield(L, -2, "stderr");
  lua_pushboolean(L, trunc);
  lua_setfield(L, -2, "stderr_truncated");
  lua_pushboolean(L, wf_proc_timed_out(p));
  lua_setfield(L, -2, "timed_out");
  lua_pushnumber(L, wf_proc_duration_ms(p));
  lua_setfield(L, -2, "duration_ms");
  lua_pushinteger(L, (lua_Integer)wf_proc_pid(p));
  lua_setfield(L, -2, "pid");
  if (wf_proc_exec_error(p)) {
    lua_pushstring(L, wf_proc_exec_error(p));
    lua_setfield(L, -2, "error");
  }
}

/* proc notification (libev callback, no Lua runs): the waiter is ready. */
static void lp_notify(void *ud, wf_proc_t *p) {
  lp_wait_t *w = ud;
  (void)p;
  wf_task_ready(w->t);
}

/* The caller resumes: the result table, then the process is freed. */
static int lp_prepare(wf_task_t *t, lua_State *L) {
  lp_wait_t *w = t->wait;
  lp_push_result(L, w->p);
  lp_free(w);
  return 1;
}

/* Cancel callback (abort, run cancel, timeout): kill the process group and
 * forget the process. */
static void lp_cancel(wf_task_t *t) { lp_free(t->wait); }

/* A list field k of table idx as a NULL-terminated array of strings
 * anchored by a userdata left on the stack (NULL when the field is nil).
 * Raises naming the field when it is not a list of strings. */
static const char **lp_strv(lua_State *L, int idx, const char *k) {
  const char **v;
  size_t n;
  lua_getfield(L, idx, k);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushnil(L); /* keep the stack shape: one slot per list */
    return NULL;
  }
  if (!lua_istable(L, -1)) luaL_error(L, "proc.run: %s must be a list", k);
  n = lua_objlen(L, -1);
  v = lua_newuserdata(L, (n + 1) * sizeof *v);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, -2, (int)i + 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "proc.run: %s[%d] must be a string", k, (int)i + 1);
    v[i] = lua_tostring(L, -1); /* anchored by the list */
    lua_pop(L, 1);
  }
  v[n] = NULL;
  lua_remove(L, -2); /* the list stays reachable from spec */
  return v;
}

/* Optional number field k of table idx (dflt when nil). */
static double lp_num(lua_State *L, int idx, const char *k, double dflt) {
  double v = dflt;
  lua_getfield(L, idx, k);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "proc.run: %s must be a number", k);
    v = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

/* Optional integer field k of table idx in [-1, max] (dflt when nil). */
static long long lp_int(lua_State *L, int idx, const char *k, long long dflt,
                        long long max) {
  double v = lp_num(L, idx, k, (double)dflt);
  if (!(v >= -1 && v <= (double)max))
    luaL_error(L, "proc.run: %s out of range", k);
  return (long long)v;
}

/* Optional string field k of table idx, anchored by spec (NULL when nil). */
static const char *lp_str(lua_State *L, int idx, const char *k, size_t *len) {
  const char *s = NULL;
  lua_getfield(L, idx, k);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "proc.run: %s must be a string", k);
    s = lua_tolstring(L, -1, len);
  }
  lua_pop(L, 1);
  return s;
}

/* proc.run{argv, env, cwd, stdin, timeout, memory_mb, cpu_s, max_procs,
 * max_output, uid, gid, wrap} -> result table | nil, err, "io". Yields the
 * calling task until the process ends; on the main thread runs the loop.
 * See lp_push_result for the result. */
static int l_run(lua_State *L) {
  wf_lua_rt_t *rt = wf_lua_rt(L);
  wf_proc_opts_t o;
  wf_task_t mw, *t;
  wf_err_t err;
  lp_state_t *st;
  lp_wait_t *w;

  luaL_checktype(L, 1, LUA_TTABLE);
  /* an aborted invocation's task starts no process */
  if (wf_task_aborted(rt, L)) return wf_task_refuse(L, "weft.sandbox.run");
  lua_settop(L, 1);
  memset(&o, 0, sizeof o);
  o.argv = lp_strv(L, 1, "argv");
  o.env = lp_strv(L, 1, "env");
  o.wrap = lp_strv(L, 1, "wrap");
  if (!o.argv || !o.argv[0])
    return luaL_error(L, "proc.run: argv must be a non-empty list");
  o.cwd = lp_str(L, 1, "cwd", NULL);
  o.stdin_data = lp_str(L, 1, "stdin", &o.stdin_len);
  o.timeout = lp_num(L, 1, "timeout", 0);
  o.memory_mb = (long)lp_int(L, 1, "memory_mb", 0, 1LL << 40);
  o.cpu_s = (long)lp_int(L, 1, "cpu_s", 0, 1LL << 40);
  o.max_procs = (long)lp_int(L, 1, "max_procs", 0, 1LL << 40);
  o.max_output = (size_t)lp_int(L, 1, "max_output", 0, 1LL << 40);
  o.drop_to_uid = (int)lp_int(L, 1, "uid", -1, INT_MAX);
  o.drop_to_gid = (int)lp_int(L, 1, "gid", -1, INT_MAX);
  if (o.timeout < 0 || o.timeout != o.timeout)
    return luaL_error(L, "proc.run: timeout must be >= 0");
  t = wf_task_waiter(rt, L, "weft.sandbox.run", &mw);

  /* nothing below raises until the process is handed over */
  st = lp_state(rt);
  w = st ? calloc(1, sizeof *w) : NULL;
  if (!w) return luaL_error(L, "proc.run: out of memory");
  w->t = t;
  w->st = st;
  w->p = wf_proc_spawn(rt->loop, &o, lp_notify, w, &err);
  if (!w->p) {
    free(w);
    return wf_lua_fail(L, err.msg, "io");
  }
  w->next = st->live;
  if (st->live) st->live->prev = w;
  st->live = w;
  lua_settop(L, 0);
  t->wait = w;
  t->cancel = lp_cancel;
  t->prepare = lp_prepare;
  return wf_task_suspend(t, L, "weft.sandbox.run");
}

/* Push nil, "what: strerror(errno)", "io"; returns 3. */
static int lp_fail(lua_State *L, const char *what) {
  int e = errno;
  lua_pushfstring(L, "%s: %s", what, strerror(e));
  return wf_lua_fail(L, lua_tostring(L, -1), "io");
}

/* proc.mkdtemp(template) -> path | nil, err, "io" (template ends in
 * XXXXXX). */
static int l_mkdtemp(lua_State *L) {
  size_t n;
  const char *tpl = luaL_checklstring(L, 1, &n);
  char buf[PATH_MAX];
  if (n < 6 || n >= sizeof buf || strcmp(tpl + n - 6, "XXXXXX") != 0)
    return luaL_argerror(L, 1, "template must end in XXXXXX");
  memcpy(buf, tpl, n + 1);
  if (!mkdtemp(buf)) return lp_fail(L, tpl);
  lua_pushstring(L, buf);
  return 1;
}

/* proc.chown(path, uid, gid) -> true | nil, err, "io" (no symlink
 * following). */
static int l_chown(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  uid_t uid = (uid_t)luaL_checkinteger(L, 2);
  gid_t gid = (gid_t)luaL_checkinteger(L, 3);
  if (lchown(path, uid, gid) < 0) return lp_fail(L, path);
  lua_pushboolean(L, 1);
  return 1;
}

/* proc.rmtree(path) -> true | nil, err, "io" (see wf_proc_rmtree). */
static int l_rmtree(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  wf_err_t err;
  if (wf_proc_rmtree(path, &err) != WF_OK)
    return wf_lua_fail(L, err.msg, "io");
  lua_pushboolean(L, 1);
  return 1;
}

/* proc.realpath(path) -> absolute path without symlinks | nil, err, "io". */
static int l_realpath(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char buf[PATH_MAX];
  if (!realpath(path, buf)) return lp_fail(L, path);
  lua_pushstring(L, buf);
  return 1;
}

/* proc.executable(path) -> true when path is a regular file we may run. */
static int l_executable(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  lua_pushboolean(L, stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
                         access(path, X_OK) == 0);
  return 1;
}

/* proc.geteuid() -> the effective uid of this process. */
static int l_geteuid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)geteuid());
  return 1;
}

/* proc.nondumpable() -> true | nil, err, "io": this process becomes
 * non-dumpable (see wf_proc_nondumpable). */
static int l_nondumpable(lua_State *L) {
  wf_err_t err;
  if (wf_proc_nondumpable(&err) != WF_OK)
    return wf_lua_fail(L, err.msg, "io");
  lua_pushboolean(L, 1);
  return 1;
}

/* proc.fd_count() -> number of open fds of this process (leak checks). */
static int l_fd_count(lua_State *L) {
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  int n = 0;
  if (!d) return lp_fail(L, "/proc/self/fd");
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') n++;
  closedir(d);
  lua_pushinteger(L, n - 1); /* not the directory's own fd */
  return 1;
}

/* proc.listdir(path) -> {file names}, {subdirectory names} | nil, err,
 * "io": the regular files and directories of path (not followed through
 * symbolic links, as `find -type f`), unsorted, without "." and "..". */
static int l_listdir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  DIR *d = opendir(path);
  struct dirent *e;
  int nf = 0, nd = 0;
  if (!d) return lp_fail(L, path);
  lua_newtable(L);
  lua_newtable(L);
  while ((e = readdir(d))) {
    int type = e->d_type;
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (type == DT_UNKNOWN) { /* some file systems do not say: lstat */
      struct stat st;
      char full[PATH_MAX];
      snprintf(full, sizeof full, "%s/%s", path, e->d_name);
      type = lstat(full, &st) < 0     ? DT_UNKNOWN
             : S_ISREG(st.st_mode) ? DT_REG
             : S_ISDIR(st.st_mode) ? DT_DIR
                                   : DT_UNKNOWN;
    }
    if (type == DT_REG) {
      lua_pushstring(L, e->d_name);
      lua_rawseti(L, -3, ++nf);
    } else if (type == DT_DIR) {
      lua_pushstring(L, e->d_name);
      lua_rawseti(L, -2, ++nd);
    }
  }
  closedir(d);
  return 2;
}

static const luaL_Reg proc_fns[] = {
    {"run", l_run},         {"mkdtemp", l_mkdtemp},
    {"chown", l_chown},     {"rmtree", l_rmtree},
    {"realpath", l_realpath}, {"executable", l_executable},
    {"geteuid", l_geteuid}, {"fd_count", l_fd_count},
    {"nondumpable", l_nondumpable}, {"listdir", l_listdir},
    {NULL, NULL}};

int wf_lua_open_proc(lua_State *L) {
  wf_lua_rt(L);
  lua_newtable(L);
  luaL_register(L, NULL, proc_fns);
  return 1;
}
