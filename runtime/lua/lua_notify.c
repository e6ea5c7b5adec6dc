/* lua_notify.c — weft.core.notify: lets a host that can only wait on
 * sockets it connects to (nginx's Lua module: ngx.socket.tcp) wait for
 * weft's I/O without a busy poll, and drive weft's loop from a coroutine of
 * its own.
 *
 *   open() -> notifier: a unix socket (in a fresh mkdtemp directory) and a
 *     waiter thread. The host connects to notifier:path() once, then for
 *     each wait writes "<ms>\n" (-1: no limit) and reads one line: "r" when
 *     weft.fd() polled readable, "t" when the time passed. The thread only
 *     poll(2)s the epoll descriptor, which the kernel allows alongside
 *     weft's loop using it; it never touches libev's or Lua's memory, so
 *     the two threads share nothing else. The path is removed once the
 *     host connected (notifier:unlink).
 *   poll() -> true while work remains: weft.poll() for a coroutine weft does
 *     not manage (nginx runs every handler and timer in one), allowed when
 *     no weft task or weft callback is running (then no task can be resumed
 *     inside another).
 *   detach() -> true when the host's per-coroutine data was cleared:
 *     OpenResty's LuaJIT gives a new coroutine its parent's "exdata" (for
 *     nginx: the current request), and nginx's coroutine.yield/resume act
 *     on a coroutine with a request as on one of nginx's own. weft's tasks
 *     are created from one helper thread; clearing its exdata (and that of
 *     pooled tasks) keeps them plain Lua coroutines whichever handler first
 *     loaded weft. Found with dlsym: other LuaJITs have no exdata (false).
 *
 * The C state outlives the Lua object (luv style): the userdata holds a
 * pointer; __gc and the runtime's close hook each stop the thread and drop
 * one of two references. Depends on lua.h, lua_rt.h, lua_loop.h, watch.h,
 * C11 threads (as watchdog.c). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <threads.h>
#include <unistd.h>

#include "lua_loop.h"
#include "lua_rt.h"
#include "watch.h"

#define NOTIFY_MT "weft.notify"

typedef struct wf_notify {
  wf_lua_hook_t hook; /* first: the close hook finds the struct from it */
  int refs;           /* the userdata and the close hook */
  int running;        /* the thread was started and not joined yet */
  thrd_t th;
  int epfd;           /* weft's backend fd, polled by the thread only */
  int lfd;            /* listening socket */
  int stop[2];        /* pipe: a byte in stop[1] ends the thread */
  int path_live;      /* path and dir still exist */
  char dir[64];
  char path[80];
} wf_notify_t;

/* Write all of buf to fd; 0, or -1 on error. */
static int write_all(int fd, const char *buf, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, buf, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    buf += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Remove the socket path and its directory (once). */
static void notify_unlink(wf_notify_t *n) {
  if (!n->path_live) return;
  n->path_live = 0;
  unlink(n->path);
  rmdir(n->dir);
}

/* Serve one connection's wait requests until it closes or stop is written.
 * Runs on the waiter thread. */
static void notify_serve(wf_notify_t *n, int c) {
  char buf[64];
  size_t len = 0;
  for (;;) {
    char *nl = memchr(buf, '\n', len);
    if (!nl) {
      struct pollfd q[2] = {{c, POLLIN, 0}, {n->stop[0], POLLIN, 0}};
      if (len == sizeof buf) return; /* not a wait request: drop the host */
      if (poll(q, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (q[1].revents) return;
      ssize_t r = read(c, buf + len, sizeof buf - len);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return;
      len += (size_t)r;
      continue;
    }
    *nl = '\0';
    long ms = strtol(buf, NULL, 10);
    size_t used = (size_t)(nl + 1 - buf);
    memmove(buf, nl + 1, len - used);
    len -= used;
    if (ms < -1) ms = -1;
    if (ms > 3600000) ms = 3600000;
    /* c with no events still reports POLLHUP/POLLRDHUP: the host left */
    struct pollfd w[3] = {{n->epfd, POLLIN, 0},
                          {n->stop[0], POLLIN, 0},
                          {c, POLLRDHUP, 0}};
    int r = poll(w, 3, (int)ms);
    if (r < 0 && errno != EINTR) return;
    if (w[1].revents || w[2].revents) return;
    if (w[0].revents & POLLNVAL) return; /* the loop is gone */
    if (write_all(c, (r > 0 && w[0].revents) ? "r\n" : "t\n", 2) != 0) return;
  }
}

/* The waiter thread: accept the host's one connection, then serve it. */
static int notify_main(void *arg) {
  wf_notify_t *n = arg;
  prctl(PR_SET_NAME, "weft-notify"); /* as ps and /proc name it */
  struct pollfd p[2] = {{n->lfd, POLLIN, 0}, {n->stop[0], POLLIN, 0}};
  for (;;) {
    if (poll(p, 2, -1) >= 0) break;
    if (errno != EINTR) return 0;
  }
  if (p[1].revents || !(p[0].revents & POLLIN)) return 0;
  int c = accept(n->lfd, NULL, NULL);
  if (c < 0) return 0;
  notify_serve(n, c);
  close(c);
  return 0;
}

/* Stop and join the thread, close the descriptors and remove the path;
 * idempotent. */
static void notify_stop(wf_notify_t *n) {
  if (n->running) {
    (void)write_all(n->stop[1], "x", 1);
    thrd_join(n->th, NULL);
    n->running = 0;
  }
  if (n->lfd >= 0) close(n->lfd);
  if (n->stop[0] >= 0) close(n->stop[0]);
  if (n->stop[1] >= 0) close(n->stop[1]);
  n->lfd = n->stop[0] = n->stop[1] = -1;
  notify_unlink(n);
}

/* Drop one reference: the last one frees n. */
static void notify_release(wf_notify_t *n) {
  notify_stop(n);
  if (--n->refs == 0) free(n);
}

/* Close hook: the loop goes away, so the thread must stop polling it. */
static void notify_on_close(wf_lua_rt_t *rt, wf_lua_hook_t *h) {
  (void)rt;
  notify_release((wf_notify_t *)h);
}

/* Create the socket, the stop pipe and the thread of n; 0, or -1 with the
 * reason in err. */
static int notify_start(wf_notify_t *n, char *err, size_t errlen) {
  const char *tmp = getenv("TMPDIR");
  if (!tmp || !*tmp || strlen(tmp) > 40) tmp = "/tmp";
  snprintf(n->dir, sizeof n->dir, "%s/weft-notify-XXXXXX", tmp);
  if (!mkdtemp(n->dir)) {
    snprintf(err, errlen, "weft.notify: mkdtemp %s: %s", n->dir, strerror(errno));
    return -1;
  }
  n->path_live = 1;
  snprintf(n->path, sizeof n->path, "%s/s", n->dir);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", n->path);
  n->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (n->lfd < 0 || bind(n->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      listen(n->lfd, 1) != 0) {
    snprintf(err, errlen, "weft.notify: socket %s: %s", n->path, strerror(errno));
    return -1;
  }
  if (pipe2(n->stop, O_CLOEXEC) != 0) {
    snprintf(err, errlen, "weft.notify: pipe: %s", strerror(errno));
    return -1;
  }
  /* the thread inherits a full mask, as watchdog.c's: the host's signals
   * (nginx's SIGQUIT, SIGCHLD, ...) must interrupt its own loop, not land
   * on a thread that ignores them */
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &old);
  int rc = thrd_create(&n->th, notify_main, n);
  sigprocmask(SIG_SETMASK, &old, NULL);
  if (rc != thrd_success) {
    snprintf(err, errlen, "weft.notify: cannot start the waiter thread");
    return -1;
  }
  n->running = 1;
  return 0;
}

static wf_notify_t **check_notify(lua_State *L) {
  return luaL_checkudata(L, 1, NOTIFY_MT);
}

/* notify.open() -> notifier, or nil, err: a waiter on weft.fd() that a host
 * reaches through a unix socket (see the file comment). */
static int l_open(lua_State *L) {
  wf_lua_rt_t *rt = wf_lua_rt(L);
  int epfd = wf_watch_backend_fd(rt->loop);
  if (epfd < 0)
    return wf_lua_fail(L,
                       "weft.notify: the libev backend has no pollable "
                       "descriptor (set LIBEV_FLAGS to use epoll)",
                       "unsupported");
  wf_notify_t **ud = lua_newuserdata(L, sizeof *ud);
  *ud = NULL;
  luaL_getmetatable(L, NOTIFY_MT);
  lua_setmetatable(L, -2);
  wf_notify_t *n = calloc(1, sizeof *n);
  if (!n) return luaL_error(L, "weft.notify: out of memory");
  n->epfd = epfd;
  n->lfd = n->stop[0] = n->stop[1] = -1;
  char err[256];
  if (notify_start(n, err, sizeof err) != 0) {
    notify_stop(n);
    free(n);
    return wf_lua_fail(L, err, "error");
  }
  n->refs = 2;
  *ud = n;
  n->hook.fn = notify_on_close;
  n->hook.order = WF_HOOK_IO;
  wf_lua_rt_on_close(rt, &n->hook);
  return 1;
}

/* notifier:path() -> the unix socket path to connect to ("unix:" + path for
 * ngx.socket.tcp); nil once the host connected or the notifier closed. */
static int l_path(lua_State *L) {
  wf_notify_t **ud = check_notify(L);
  if (!*ud || !(*ud)->path_live) return 0;
  lua_pushstring(L, (*ud)->path);
  return 1;
}

/* notifier:unlink() -> removes the socket path (call once connected: no
 * one else can connect afterwards). */
static int l_unlink(lua_State *L) {
  wf_notify_t **ud = check_notify(L);
  if (*ud) notify_unlink(*ud);
  return 0;
}

/* notifier:close() / __gc: stop the thread, close the socket. */
static int l_close(lua_State *L) {
  wf_notify_t **ud = check_notify(L);
  if (*ud) notify_release(*ud);
  *ud = NULL;
  return 0;
}

/* notify.poll() -> true while work remains: weft.poll() from a coroutine
 * weft does not manage, when no weft task or callback is running. */
static int l_poll(lua_State *L) {
  wf_lua_rt_t *rt = wf_lua_rt(L);
  if (rt->current || wf_task_of(rt, L))
    return luaL_error(L,
                      "weft.notify.poll: runs the event loop: not from an "
                      "executor, a weft.go task or a coroutine they run");
  if (rt->callback_depth > 0)
    return luaL_error(L,
                      "weft.notify.poll: runs the event loop: not inside a "
                      "weft callback (on_event, a condition, a selector or "
                      "a reducer)");
  lua_pushboolean(L, wf_loop_poll(rt->loop));
  return 1;
}

typedef void (*setexdata_fn)(lua_State *L, void *exdata);

/* Set the exdata named sym of co to NULL, when that LuaJIT has it. */
static int clear_exdata(lua_State *co, const char *sym) {
  setexdata_fn set;
  /* dlsym returns an object pointer; POSIX allows this conversion */
  *(void **)&set = dlsym(RTLD_DEFAULT, sym);
  if (!set) return 0;
  set(co, NULL);
  return 1;
}

/* notify.detach() -> true when weft's task coroutines no longer carry the
 * host's per-coroutine data (OpenResty's exdata), false on a LuaJIT that
 * has none. Call before starting runs. */
static int l_detach(lua_State *L) {
  wf_lua_rt_t *rt = wf_lua_rt(L);
  int ok = clear_exdata(rt->aux, "lua_setexdata");
  clear_exdata(rt->aux, "lua_setexdata2");
  for (wf_task_t *t = rt->pool; t && ok; t = t->next) {
    clear_exdata(t->co, "lua_setexdata");
    clear_exdata(t->co, "lua_setexdata2");
  }
  lua_pushboolean(L, ok);
  return 1;
}

static const luaL_Reg notify_methods[] = {{"path", l_path},
                                          {"unlink", l_unlink},
                                          {"close", l_close},
                                          {NULL, NULL}};

static const luaL_Reg notify_fns[] = {{"open", l_open},
                                      {"poll", l_poll},
                                      {"detach", l_detach},
                                      {NULL, NULL}};

int wf_lua_open_notify(lua_State *L) {
  wf_lua_class(L, NOTIFY_MT, notify_methods, l_close);
  lua_newtable(L);
  luaL_register(L, NULL, notify_fns);
  return 1;
}
