/* netpolicy.h — a network policy for outbound connections: which hosts may
 * be named (exact names, "*.domain" wildcards, IP literals), which ports are
 * blocked, and whether private, loopback and link-local addresses may be
 * reached (checked on the address actually connected to, after DNS, so
 * neither a redirect nor a rebinding gets around it). Used by the HTTP
 * client (http.c, on every hop) and by TCP connects (tcp.c). A policy is
 * reference-counted: a request in flight keeps the one it started with.
 * Depends on common.h and the socket headers. */
#ifndef WF_NETPOLICY_H
#define WF_NETPOLICY_H

#include <sys/socket.h>

#include "common.h"

typedef struct wf_netpolicy wf_netpolicy_t;

/* A new policy: any host, any port, no private address (as a NETWORK
 * table with only defaults); one reference. */
wf_netpolicy_t *wf_netpolicy_new(void);
/* A policy that allows what both a and b allow (it takes a reference to
 * each); one reference. */
wf_netpolicy_t *wf_netpolicy_both(wf_netpolicy_t *a, wf_netpolicy_t *b);
/* Take one more reference; returns p (NULL: no-op). */
wf_netpolicy_t *wf_netpolicy_ref(wf_netpolicy_t *p);
/* Drop one reference, freeing p with the last. NULL is a no-op. */
void wf_netpolicy_unref(wf_netpolicy_t *p);
/* Restrict hosts to a list (the first call makes the list, empty: no host
 * at all) and add pattern to it: a name ("api.example.com", any case, a
 * trailing dot ignored), "*.example.com" (one or more labels before
 * example.com, not example.com itself) or an IP literal ("10.0.0.1",
 * "::1" or "[::1]"). WF_ERR for a malformed pattern. */
int wf_netpolicy_allow_host(wf_netpolicy_t *p, const char *pattern,
                            wf_err_t *err);
/* Restrict hosts to an empty list (no host allowed until some is added). */
void wf_netpolicy_restrict_hosts(wf_netpolicy_t *p);
/* Refuse port (1 to 65535). WF_ERR for another number. */
int wf_netpolicy_block_port(wf_netpolicy_t *p, int port, wf_err_t *err);
/* Whether private addresses (see wf_netpolicy_private) may be reached
 * (allow = 1) or not (0, the default). */
void wf_netpolicy_set_private(wf_netpolicy_t *p, int allow);
/* Allow a range ("10.1.0.0/16", "fd00::/8"; an address alone is one
 * address) even when private addresses are refused. WF_ERR when
 * malformed. */
int wf_netpolicy_allow_cidr(wf_netpolicy_t *p, const char *cidr,
                            wf_err_t *err);
/* WF_OK when host (as in a URL: a name or an IP literal, IPv6 with or
 * without brackets) on port may be named; WF_ERR with the rule, the host
 * and the port in err otherwise. */
int wf_netpolicy_check_host(const wf_netpolicy_t *p, const char *host,
                            int port, wf_err_t *err);
/* WF_OK when the address sa (AF_INET or AF_INET6; another family is
 * refused) may be connected to; WF_ERR naming the address, its port, host
 * (what was asked for, e.g. "name:port", for the message; may be NULL)
 * and the rule otherwise. */
int wf_netpolicy_check_addr(const wf_netpolicy_t *p, const struct sockaddr *sa,
                            const char *host, wf_err_t *err);
/* The same for an address in text form ("127.0.0.1", "::1"), as libcurl
 * reports the address of a connection; port is for the message. */
int wf_netpolicy_check_ip(const wf_netpolicy_t *p, const char *ip, int port,
                          const char *host, wf_err_t *err);
/* 1 if the IPv4 address a (network order, 4 bytes) or IPv6 address (16
 * bytes; family AF_INET or AF_INET6) is private: 0/8, 10/8, 100.64/10,
 * 127/8, 169.254/16, 172.16/12, 192.168/16, ::, ::1, fc00::/7, fe80::/10,
 * and an IPv4-mapped IPv6 address (::ffff:a.b.c.d) judged as its IPv4. */
int wf_netpolicy_private(int family, const unsigned char *a);

#endif
