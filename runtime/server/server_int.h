/* server_int.h — private to runtime/server/: the state server.c (the MHD
 * side) and gate.c (the request-head gate and the graceful close) share:
 * the server, its connections and its lingering sockets, and the few
 * functions each calls in the other. Depends on libev, libmicrohttpd,
 * server.h. */
#ifndef WF_SERVER_INT_H
#define WF_SERVER_INT_H

#include <microhttpd.h>
#include <stdint.h>
#include <sys/socket.h>

#include "server.h"

/* cn->linger: how cn's socket is closed */
enum {
  LINGER_NO,      /* by MHD, or by wf_gate_drop (nothing answered) */
  LINGER_WANTED,  /* MHD answered an error: linger when MHD closes it */
  LINGER_STARTED  /* weft holds a descriptor of it and lingers */
};

/* Per-connection state (MHD's socket context): the header/body deadline,
 * and the watch on the peer while a stream has nothing to send. */
typedef struct srv_conn srv_conn_t;
struct srv_conn {
  wf_server_t *s;
  int fd;
  int over_cap;   /* opened while the soft cap was reached: answer 503 */
  int timed_out;  /* deadline hit or body over the cap: answered, shut down */
  int linger;     /* LINGER_*: a graceful close after an error answer */
  ev_timer tm;    /* header or body deadline */
  ev_io peer;     /* readable while an idle stream waits: did the client go? */
  wf_server_req_t *req; /* the request in progress, or NULL */
  /* the gate: MHD reads only bytes weft has checked (gate.c) */
  struct MHD_Connection *c;  /* NULL until handed to MHD */
  struct sockaddr_storage addr;
  socklen_t alen;
  ev_io gate;        /* readable: the next request head may be in */
  int gating;        /* weft reads the next head (MHD suspended or absent) */
  int refused;       /* unchecked bytes reached MHD: serve nothing more */
  int end_unknown;   /* a checked request has a chunked body */
  int checking;      /* on s->chk: a request completed, see wf_gate_check */
  int active;        /* MHD began a request (on_uri) not yet completed */
  unsigned credits;  /* checked requests MHD has not started */
  uint64_t checked;  /* stream offset past the last checked request */
  size_t seen;       /* bytes peeked while the head was incomplete */
  const char *bad;   /* why the head at `checked` is refused, or NULL */
  int bad_status;    /* its status (400, 431) */
  srv_conn_t *prev, *next; /* all connections */
  srv_conn_t *cnext;       /* s->chk */
};

/* A socket closing gracefully after weft's last answer on it. Closing a
 * TCP socket with unread input resets the connection (RST), and a client
 * that is still sending (a body over the cap) may then never read the
 * answer: the kernel drops what was not yet sent or read. So the write
 * side is shut (FIN after the answer) and what the client still sends is
 * read and dropped on the loop until it closes its side, LINGER_BYTES
 * were dropped or LINGER_SECS passed; then the socket is closed. weft
 * holds its own descriptor (a dup when MHD has the connection), so MHD
 * may close its own at any time. */
typedef struct srv_linger srv_linger_t;
struct srv_linger {
  wf_server_t *s;
  int fd;
  int shared;   /* MHD may still hold the socket: shut it down at the end */
  srv_conn_t *held; /* suspended in MHD for the linger: resumed at the end */
  size_t got;   /* bytes dropped */
  ev_io io;
  ev_timer tm;
  srv_linger_t *prev, *next;
};

/* The server: MHD, the listening socket, connections, the ready queue. */
struct wf_server {
  struct ev_loop *evl;
  struct MHD_Daemon *d;
  ev_io io;
  ev_timer tm;
  ev_io lio;     /* the listening socket (weft accepts) */
  int port, listen_fd, closed;
  int in_run;         /* inside MHD_run (its callbacks) */
  srv_conn_t *conns;  /* every open connection, handed to MHD or not */
  srv_conn_t *chk;    /* connections whose request completed in MHD_run */
  srv_conn_t *adding; /* being handed to MHD (on_connection takes it) */
  srv_linger_t *lingers; /* sockets closing gracefully */
  unsigned nlingers;
  char *scratch;      /* peeked request heads */
  size_t scratch_len;
  wf_server_opts_t o;
  wf_server_notify_fn notify;
  void *ud;
  wf_server_req_t *rhead, *rtail; /* ready, not yet taken */
  wf_server_req_t *live;
  unsigned inflight, nconns;
};

/* ---- server.c ----------------------------------------------------------- */

/* Write the JSON error body {"error":{"code":..,"message":..}} of static
 * texts code and msg into buf[n]; returns its length (as snprintf). */
int wf_server_error_body(char *buf, size_t n, const char *code,
                         const char *msg);
/* Run MHD soon (after a resume or a shutdown made work for it). */
void wf_server_kick(wf_server_t *s);

/* ---- gate.c ------------------------------------------------------------- */

/* Set up cn's gate watcher (on cn->fd; not started). */
void wf_gate_init(srv_conn_t *cn);
/* Watch cn's socket for the next head (MHD is suspended or absent). */
void wf_gate_start(srv_conn_t *cn);
/* Stop watching cn's socket for a head. */
void wf_gate_stop(srv_conn_t *cn);
/* After an MHD turn in which cn's request completed: let MHD go on with
 * a checked request, or suspend it while the gate reads the next head. */
void wf_gate_check(srv_conn_t *cn);
/* Answer the refused head at cn->checked (400 or 431) and close. */
void wf_gate_refuse(srv_conn_t *cn);
/* Close cn gracefully after weft's last answer (cn may be gone). */
void wf_gate_finish(srv_conn_t *cn);
/* Answer a JSON error on cn's socket ourselves and close gracefully
 * (cn may be gone); status_line is e.g. "408 Request Timeout". */
void wf_gate_raw_error(srv_conn_t *cn, const char *status_line,
                       const char *code, const char *msg);
/* Stop cn's watchers, take it off the list and free it; its socket is
 * closed unless cn->fd is -1 (MHD holds it). */
void wf_gate_drop(srv_conn_t *cn);
/* Linger on fd (taken over; write side shut): shared, MHD may still hold
 * the socket; held, the connection suspended in MHD meanwhile or NULL. */
void wf_gate_linger(wf_server_t *s, int fd, int shared, srv_conn_t *held);
/* End l (resuming the connection it holds); run MHD after when kick. */
void wf_gate_linger_end(srv_linger_t *l, int kick);

#endif
