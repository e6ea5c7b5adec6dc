/* netpolicy.c — the network policy of netpolicy.h: host patterns, blocked
 * ports, private ranges and allowed CIDRs, checked by name (every URL a
 * request goes to) and by address (every socket it connects). Addresses
 * are compared as bytes (inet_pton), so every spelling of one address
 * ("0x7f.1", "2130706433", "::ffff:127.0.0.1") is judged the same once
 * parsed; curl's URL parser already turns the IPv4 spellings into dotted
 * quads. Depends on common.h and libc's inet_pton. */
#include "netpolicy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WF_NETPOLICY_HOST_MAX 253

/* An address range: family, address bytes (4 or 16), prefix length. */
typedef struct wf_netpolicy_cidr {
  int family;
  unsigned char a[16];
  int bits;
} wf_netpolicy_cidr_t;

/* A host pattern, normalised: lower case, no trailing dot, no brackets;
 * wild: "*.suffix" (name holds ".suffix"); ip: an IP literal (a holds it). */
typedef struct wf_netpolicy_host {
  char *name;
  int wild;
  int family; /* AF_INET/AF_INET6 for an IP literal, else 0 */
  unsigned char a[16];
} wf_netpolicy_host_t;

struct wf_netpolicy {
  int refs;
  wf_netpolicy_t *both[2]; /* set: this policy is both of these (and has
                              no rules of its own) */
  int restrict_hosts; /* 0: any host */
  int allow_private;
  wf_netpolicy_host_t *hosts;
  size_t nhosts, caphosts;
  int *ports;
  size_t nports, capports;
  wf_netpolicy_cidr_t *cidrs;
  size_t ncidrs, capcidrs;
};

wf_netpolicy_t *wf_netpolicy_new(void) {
  wf_netpolicy_t *p = wf_xcalloc(1, sizeof *p);
  p->refs = 1;
  return p;
}

wf_netpolicy_t *wf_netpolicy_ref(wf_netpolicy_t *p) {
  if (p) p->refs++;
  return p;
}

wf_netpolicy_t *wf_netpolicy_both(wf_netpolicy_t *a, wf_netpolicy_t *b) {
  wf_netpolicy_t *p = wf_netpolicy_new();
  p->both[0] = wf_netpolicy_ref(a);
  p->both[1] = wf_netpolicy_ref(b);
  return p;
}

void wf_netpolicy_unref(wf_netpolicy_t *p) {
  if (!p || --p->refs > 0) return;
  wf_netpolicy_unref(p->both[0]);
  wf_netpolicy_unref(p->both[1]);
  for (size_t i = 0; i < p->nhosts; i++) free(p->hosts[i].name);
  free(p->hosts);
  free(p->ports);
  free(p->cidrs);
  free(p);
}

/* Normalise host into out (size WF_NETPOLICY_HOST_MAX + 3): lower case,
 * brackets and one trailing dot removed. WF_ERR when empty or too long. */
static int norm_host(const char *host, char *out) {
  size_t n = strlen(host);
  if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
    host++;
    n -= 2;
  }
  if (n > 0 && host[n - 1] == '.') n--;
  if (n == 0 || n > WF_NETPOLICY_HOST_MAX) return WF_ERR;
  for (size_t i = 0; i < n; i++) out[i] = (char)tolower((unsigned char)host[i]);
  out[n] = 0;
  return WF_OK;
}

/* Parse an IP literal (normalised, no brackets): its family, or 0. */
static int parse_ip(const char *s, unsigned char *a) {
  if (inet_pton(AF_INET, s, a) == 1) return AF_INET;
  if (inet_pton(AF_INET6, s, a) == 1) return AF_INET6;
  return 0;
}

void wf_netpolicy_restrict_hosts(wf_netpolicy_t *p) { p->restrict_hosts = 1; }

int wf_netpolicy_allow_host(wf_netpolicy_t *p, const char *pattern,
                            wf_err_t *err) {
  char buf[WF_NETPOLICY_HOST_MAX + 3];
  wf_netpolicy_host_t h = {0};
  const char *s = pattern;
  p->restrict_hosts = 1;
  if (strncmp(s, "*.", 2) == 0) {
    h.wild = 1;
    s += 1; /* keep the dot: the suffix is ".example.com" */
  }
  if (norm_host(s, buf) != WF_OK) goto bad;
  if (!h.wild) h.family = parse_ip(buf, h.a);
  if (!h.family && (strpbrk(buf, "*/@ \t:[]") || (h.wild && !buf[1]))) goto bad;
  h.name = wf_xstrdup(buf);
  WF_GROW(p->hosts, p->caphosts, p->nhosts + 1);
  p->hosts[p->nhosts++] = h;
  return WF_OK;
bad:
  return wf_err_set(err, "bad host pattern '%.100s' (expected a name, "
                    "\"*.domain\" or an IP address)", pattern);
}

int wf_netpolicy_block_port(wf_netpolicy_t *p, int port, wf_err_t *err) {
  if (port < 1 || port > 65535)
    return wf_err_set(err, "bad port %d (expected 1 to 65535)", port);
  WF_GROW(p->ports, p->capports, p->nports + 1);
  p->ports[p->nports++] = port;
  return WF_OK;
}

void wf_netpolicy_set_private(wf_netpolicy_t *p, int allow) {
  p->allow_private = allow != 0;
}

int wf_netpolicy_allow_cidr(wf_netpolicy_t *p, const char *cidr,
                            wf_err_t *err) {
  char buf[64];
  wf_netpolicy_cidr_t c = {0};
  const char *slash = strchr(cidr, '/');
  size_t n = slash ? (size_t)(slash - cidr) : strlen(cidr);
  char *end = NULL;
  if (n == 0 || n >= sizeof buf) goto bad;
  memcpy(buf, cidr, n);
  buf[n] = 0;
  if (!(c.family = parse_ip(buf, c.a))) goto bad;
  c.bits = c.family == AF_INET ? 32 : 128;
  if (slash) {
    long b = strtol(slash + 1, &end, 10);
    if (!slash[1] || *end || b < 0 || b > c.bits) goto bad;
    c.bits = (int)b;
  }
  WF_GROW(p->cidrs, p->capcidrs, p->ncidrs + 1);
  p->cidrs[p->ncidrs++] = c;
  return WF_OK;
bad:
  return wf_err_set(err, "bad address range '%.100s' (expected such as "
                    "\"10.1.0.0/16\" or \"fd00::/8\")", cidr);
}

/* 1 if the first bits of a and b are equal. */
static int prefix_eq(const unsigned char *a, const unsigned char *b, int bits) {
  int bytes = bits / 8, rest = bits % 8;
  if (memcmp(a, b, (size_t)bytes) != 0) return 0;
  if (rest == 0) return 1;
  unsigned char mask = (unsigned char)(0xff << (8 - rest));
  return (a[bytes] & mask) == (b[bytes] & mask);
}

/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as its IPv4: family and a
 * become AF_INET and the 4 bytes. */
static int unmap(int family, const unsigned char *a, unsigned char *v4) {
  static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (family == AF_INET6 && memcmp(a, mapped, 12) == 0) {
    memcpy(v4, a + 12, 4);
    return AF_INET;
  }
  memcpy(v4, a, family == AF_INET ? 4 : 16);
  return family;
}

int wf_netpolicy_private(int family, const unsigned char *a) {
  static const struct { unsigned char a[4]; int bits; } v4[] = {
      {{0, 0, 0, 0}, 8},     {{10, 0, 0, 0}, 8},     {{100, 64, 0, 0}, 10},
      {{127, 0, 0, 0}, 8},   {{169, 254, 0, 0}, 16}, {{172, 16, 0, 0}, 12},
      {{192, 168, 0, 0}, 16}};
  static const unsigned char zero[16] = {0};
  static const unsigned char fc00[16] = {0xfc}, fe80[16] = {0xfe, 0x80};
  unsigned char b[16];
  family = unmap(family, a, b);
  if (family == AF_INET) {
    for (size_t i = 0; i < sizeof v4 / sizeof *v4; i++)
      if (prefix_eq(b, v4[i].a, v4[i].bits)) return 1;
    return 0;
  }
  if (family != AF_INET6) return 1;
  if (memcmp(b, zero, 15) == 0 && (b[15] == 0 || b[15] == 1)) return 1; /* :: ::1 */
  return prefix_eq(b, fc00, 7) || prefix_eq(b, fe80, 10);
}

/* Whether the address (family, a) lies in an allowed range. */
static int in_cidrs(const wf_netpolicy_t *p, int family,
                    const unsigned char *a) {
  unsigned char b[16];
  int fb = unmap(family, a, b);
  for (size_t i = 0; i < p->ncidrs; i++) {
    const wf_netpolicy_cidr_t *c = &p->cidrs[i];
    if ((c->family == family && prefix_eq(a, c->a, c->bits)) ||
        (c->family == fb && prefix_eq(b, c->a, c->bits)))
      return 1;
  }
  return 0;
}

/* Whether port is blocked. */
static int port_blocked(const wf_netpolicy_t *p, int port) {
  for (size_t i = 0; i < p->nports; i++)
    if (p->ports[i] == port) return 1;
  return 0;
}

int wf_netpolicy_check_host(const wf_netpolicy_t *p, const char *host,
                            int port, wf_err_t *err) {
  char buf[WF_NETPOLICY_HOST_MAX + 3];
  unsigned char a[16];
  int family;
  if (p->both[0])
    return wf_netpolicy_check_host(p->both[0], host, port, err) == WF_OK
               ? wf_netpolicy_check_host(p->both[1], host, port, err)
               : WF_ERR;
  if (norm_host(host, buf) != WF_OK)
    return wf_err_set(err, "network policy refuses host '%.100s': not a host "
                      "name", host);
  if (port_blocked(p, port))
    return wf_err_set(err, "network policy refuses port %d of host '%s' "
                      "(block_ports)", port, buf);
  if (!p->restrict_hosts) return WF_OK;
  family = parse_ip(buf, a);
  for (size_t i = 0; i < p->nhosts; i++) {
    const wf_netpolicy_host_t *h = &p->hosts[i];
    if (family || h->family) { /* IP literals match IP literals, as bytes */
      if (family == h->family &&
          memcmp(a, h->a, family == AF_INET ? 4 : 16) == 0)
        return WF_OK;
    } else if (h->wild) {
      size_t n = strlen(buf), m = strlen(h->name);
      if (n > m && strcmp(buf + n - m, h->name) == 0) return WF_OK;
    } else if (strcmp(buf, h->name) == 0) {
      return WF_OK;
    }
  }
  return wf_err_set(err, "network policy refuses host '%s' (port %d): not in "
                    "allow_hosts", buf, port);
}

/* The address check proper, on family and bytes; text is the address as
 * shown in the message. */
static int check_bytes(const wf_netpolicy_t *p, int family,
                       const unsigned char *a, const char *text, int port,
                       const char *host, wf_err_t *err) {
  if (p->both[0])
    return check_bytes(p->both[0], family, a, text, port, host, err) == WF_OK
               ? check_bytes(p->both[1], family, a, text, port, host, err)
               : WF_ERR;
  if (family != AF_INET && family != AF_INET6)
    return wf_err_set(err, "network policy refuses a connection to %.200s: "
                      "not an IP address", host ? host : "?");
  if (!p->allow_private && wf_netpolicy_private(family, a) &&
      !in_cidrs(p, family, a))
    return wf_err_set(err, "network policy refuses address %s (port %d) of "
                      "%.200s: a private address (allow_private or "
                      "allow_cidrs permit it)", text, port, host ? host : text);
  return WF_OK;
}

int wf_netpolicy_check_addr(const wf_netpolicy_t *p, const struct sockaddr *sa,
                            const char *host, wf_err_t *err) {
  char text[INET6_ADDRSTRLEN];
  const unsigned char *a;
  int port;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    a = (const unsigned char *)&in->sin_addr;
    port = ntohs(in->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in = (const struct sockaddr_in6 *)sa;
    a = (const unsigned char *)&in->sin6_addr;
    port = ntohs(in->sin6_port);
  } else {
    return check_bytes(p, sa->sa_family, NULL, "?", 0, host, err);
  }
  if (!inet_ntop(sa->sa_family, a, text, sizeof text)) strcpy(text, "?");
  return check_bytes(p, sa->sa_family, a, text, port, host, err);
}

int wf_netpolicy_check_ip(const wf_netpolicy_t *p, const char *ip, int port,
                          const char *host, wf_err_t *err) {
  unsigned char a[16];
  int family = ip ? parse_ip(ip, a) : 0;
  return check_bytes(p, family, a, ip ? ip : "?", port, host, err);
}
