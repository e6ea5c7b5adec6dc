/* tcp.h — non-blocking TCP sockets on the loop: listen, accept, connect,
 * read, write, each tried at once and returning WF_AGAIN when it would
 * block; the owner then asks to be notified on readiness (wf_tcp_wait) and
 * retries. The basis of the Lua cosockets (lua_tcp.c) used by the project's
 * test servers. Depends on loop.h, netpolicy.h. */
#ifndef WF_TCP_H
#define WF_TCP_H

#include <sys/types.h>

#include "loop.h"
#include "netpolicy.h"

typedef struct wf_tcp wf_tcp_t;
/* Readiness notification: called from a libev callback (no Lua here). */
typedef void (*wf_tcp_notify_fn)(void *ud, wf_tcp_t *t, int revents);

/* Listen on host:port (port 0: any free port), SO_REUSEADDR; backlog <= 0
 * means SOMAXCONN. Accepted and connected sockets get TCP_NODELAY. */
wf_tcp_t *wf_tcp_listen(wf_loop_t *l, const char *host, int port, int backlog,
                        wf_err_t *err);
/* The socket behind wf_tcp_listen, for servers with their own loop
 * watchers: a non-blocking listening descriptor on host:port ("*", "" or
 * NULL: any address; IPv4 addresses tried first), its address family in
 * *family (when not NULL); -1 with the reason when it fails. */
int wf_tcp_listen_fd(const char *host, int port, int backlog, int *family,
                     wf_err_t *err);
/* The local port fd is bound to, or -1. */
int wf_tcp_sock_port(int fd);
/* Start connecting to host:port (numeric or resolvable host; IPv4
 * addresses are tried first; the lookup itself blocks); completion is
 * signalled by writability, then wf_tcp_connected tells the outcome. NULL
 * with the reason when it fails at once. */
wf_tcp_t *wf_tcp_connect(wf_loop_t *l, const char *host, int port,
                         wf_err_t *err);
/* wf_tcp_connect under a network policy (NULL: none): the host and port
 * are checked first, then each resolved address before it is connected
 * (a refused one is skipped). NULL with *refused = 1 (refused may be
 * NULL) and the policy's reason when it refuses the host, the port or
 * every address. */
wf_tcp_t *wf_tcp_connect_policy(wf_loop_t *l, const char *host, int port,
                                const wf_netpolicy_t *policy, int *refused,
                                wf_err_t *err);
/* WF_OK once connected, WF_AGAIN while still connecting (a spurious
 * wakeup), WF_ERR with the reason (e.g. "Connection refused"). */
int wf_tcp_connected(wf_tcp_t *t, wf_err_t *err);
/* Accept one connection: WF_OK with *out, WF_AGAIN, or WF_ERR. */
int wf_tcp_accept(wf_tcp_t *srv, wf_tcp_t **out, wf_err_t *err);
/* Read up to n bytes: WF_OK with *got > 0, or *got == 0 at end of stream;
 * WF_AGAIN; WF_ERR (reset...). */
int wf_tcp_read(wf_tcp_t *t, char *buf, size_t n, size_t *got, wf_err_t *err);
/* Write up to n bytes: WF_OK with *sent > 0, WF_AGAIN, WF_ERR (EPIPE...). */
int wf_tcp_write(wf_tcp_t *t, const char *buf, size_t n, size_t *sent,
                 wf_err_t *err);
/* Be notified once when t becomes readable/writable (EV_READ|EV_WRITE);
 * replaces any previous wait. */
void wf_tcp_wait(wf_tcp_t *t, int events, wf_tcp_notify_fn fn, void *ud);
/* Cancel a pending wait. */
void wf_tcp_unwait(wf_tcp_t *t);
/* Framing of the input: a frame is taken from a buffer the socket fills
 * by reading as needed. */
typedef enum {
  WF_TCP_LINE,  /* up to LF, without it and a CR before it; at most n bytes */
  WF_TCP_ALL,   /* everything until the peer closes */
  WF_TCP_BYTES, /* exactly n bytes */
  WF_TCP_UNTIL  /* up to the delimiter (dl > 0 bytes), which is consumed */
} wf_tcp_frame_t;
/* Take one frame of t's input. WF_OK with *data, *len the frame; WF_AGAIN
 * when more input must arrive first (wait for EV_READ, call again);
 * WF_ERR with err: "line too long" (nothing consumed, *data NULL),
 * "closed" (the stream ended first) or the read error — the input left is
 * then in *data, *len (consumed, "" when none). A frame stays valid until
 * the next recv, take or close of t. */
int wf_tcp_recv(wf_tcp_t *t, wf_tcp_frame_t mode, size_t n, const char *delim,
                size_t dl, const char **data, size_t *len, wf_err_t *err);
/* Take everything buffered ("" when nothing; valid as a frame is). */
void wf_tcp_take(wf_tcp_t *t, const char **data, size_t *len);
/* Bytes buffered and not yet taken. */
size_t wf_tcp_buffered(const wf_tcp_t *t);
/* Local port (after listen with port 0). */
int wf_tcp_port(const wf_tcp_t *t);
/* The socket's file descriptor (for diagnostics and socket options). */
int wf_tcp_fd(const wf_tcp_t *t);
/* Shut down the write side (half-close). */
void wf_tcp_shutdown_write(wf_tcp_t *t);
/* Close and free; a pending wait is cancelled. NULL is a no-op. */
void wf_tcp_close(wf_tcp_t *t);

/* Raise this process's RLIMIT_NOFILE soft limit to the hard limit (servers
 * holding many connections). Returns the new soft limit, or -1. */
long wf_tcp_raise_nofile(void);

#endif
