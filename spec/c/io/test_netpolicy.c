/* test_netpolicy.c — unit tests of the network policy (runtime/io/
 * netpolicy.c) without sockets: host patterns (exact, wildcard, case,
 * trailing dot, IP literals), blocked ports, the private ranges (every
 * spelling of an address, IPv4-mapped IPv6), allow_cidrs and the messages.
 * Depends on netpolicy.h and harness.h. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "harness.h"
#include "netpolicy.h"

/* 1 when ip (text) is judged private. */
static int priv(const char *ip) {
  unsigned char a[16];
  if (inet_pton(AF_INET, ip, a) == 1) return wf_netpolicy_private(AF_INET, a);
  if (inet_pton(AF_INET6, ip, a) == 1) return wf_netpolicy_private(AF_INET6, a);
  return -1;
}

static void test_private_ranges(void) {
  const char *yes[] = {"127.0.0.1", "127.255.0.9", "10.1.2.3", "172.16.0.1",
                       "172.31.255.255", "192.168.1.1", "169.254.169.254",
                       "100.64.0.1", "100.127.255.255", "0.0.0.0", "::1", "::",
                       "fc00::1", "fd12:3456::1", "fe80::1", "febf::1",
                       "::ffff:127.0.0.1", "::ffff:10.0.0.1",
                       "::ffff:169.254.169.254", NULL};
  const char *no[] = {"8.8.8.8", "172.32.0.1", "172.15.255.255", "100.128.0.1",
                      "192.169.0.1", "1.1.1.1", "2001:4860:4860::8888",
                      "fec0::1", "::ffff:8.8.8.8", "::2", NULL};
  for (int i = 0; yes[i]; i++) {
    if (priv(yes[i]) != 1) fprintf(stderr, "  not private: %s\n", yes[i]);
    CHECK(priv(yes[i]) == 1);
  }
  for (int i = 0; no[i]; i++) {
    if (priv(no[i]) != 0) fprintf(stderr, "  private: %s\n", no[i]);
    CHECK(priv(no[i]) == 0);
  }
}

static void test_hosts(void) {
  wf_netpolicy_t *p = wf_netpolicy_new();
  wf_err_t err;
  CHECK(wf_netpolicy_check_host(p, "anything.example", 443, &err) == WF_OK);
  CHECK(wf_netpolicy_allow_host(p, "api.openai.com", &err) == WF_OK);
  CHECK(wf_netpolicy_allow_host(p, "*.Trusted.COM.", &err) == WF_OK);
  CHECK(wf_netpolicy_allow_host(p, "10.0.0.7", &err) == WF_OK);
  CHECK(wf_netpolicy_allow_host(p, "[::1]", &err) == WF_OK);
  CHECK(wf_netpolicy_check_host(p, "api.openai.com", 443, &err) == WF_OK);
  CHECK(wf_netpolicy_check_host(p, "API.OpenAI.com.", 443, &err) == WF_OK);
  CHECK(wf_netpolicy_check_host(p, "x.trusted.com", 80, &err) == WF_OK);
  CHECK(wf_netpolicy_check_host(p, "a.b.trusted.com", 80, &err) == WF_OK);
  CHECK(wf_netpolicy_check_host(p, "10.0.0.7", 80, &err) == WF_OK);
  CHECK(wf_netpolicy_check_host(p, "[::1]", 80, &err) == WF_OK);
  CHECK(wf_netpolicy_check_host(p, "0:0::1", 80, &err) == WF_OK);
  /* refused: the apex of a wildcard, look-alikes, other literals */
  CHECK(wf_netpolicy_check_host(p, "trusted.com", 80, &err) == WF_ERR);
  CHECK_STR(err.msg, "network policy refuses host 'trusted.com' (port 80): not in allow_hosts");
  CHECK(wf_netpolicy_check_host(p, "eviltrusted.com", 80, &err) == WF_ERR);
  CHECK(wf_netpolicy_check_host(p, "api.openai.com.evil.net", 443, &err) == WF_ERR);
  CHECK(wf_netpolicy_check_host(p, "openai.com", 443, &err) == WF_ERR);
  CHECK(wf_netpolicy_check_host(p, "10.0.0.8", 80, &err) == WF_ERR);
  CHECK(wf_netpolicy_check_host(p, "127.0.0.1", 80, &err) == WF_ERR);
  CHECK(wf_netpolicy_check_host(p, "", 80, &err) == WF_ERR);
  /* malformed patterns */
  CHECK(wf_netpolicy_allow_host(p, "*.", &err) == WF_ERR);
  CHECK(wf_netpolicy_allow_host(p, "a*.com", &err) == WF_ERR);
  CHECK(wf_netpolicy_allow_host(p, "user@host", &err) == WF_ERR);
  CHECK(wf_netpolicy_allow_host(p, "", &err) == WF_ERR);
  CHECK(strstr(err.msg, "bad host pattern") != NULL);
  wf_netpolicy_unref(p);
  /* an empty list allows nothing */
  p = wf_netpolicy_new();
  wf_netpolicy_restrict_hosts(p);
  CHECK(wf_netpolicy_check_host(p, "example.com", 443, &err) == WF_ERR);
  wf_netpolicy_unref(p);
}

static void test_ports(void) {
  wf_netpolicy_t *p = wf_netpolicy_new();
  wf_err_t err;
  CHECK(wf_netpolicy_block_port(p, 22, &err) == WF_OK);
  CHECK(wf_netpolicy_block_port(p, 0, &err) == WF_ERR);
  CHECK(wf_netpolicy_block_port(p, 65536, &err) == WF_ERR);
  CHECK(wf_netpolicy_check_host(p, "example.com", 22, &err) == WF_ERR);
  CHECK_STR(err.msg, "network policy refuses port 22 of host 'example.com' (block_ports)");
  CHECK(wf_netpolicy_check_host(p, "example.com", 443, &err) == WF_OK);
  wf_netpolicy_unref(p);
}

static void test_addresses(void) {
  wf_netpolicy_t *p = wf_netpolicy_new();
  wf_err_t err;
  struct sockaddr_in in;
  struct sockaddr_in6 in6;
  memset(&in, 0, sizeof in);
  in.sin_family = AF_INET;
  in.sin_port = htons(8080);
  inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
  CHECK(wf_netpolicy_check_addr(p, (struct sockaddr *)&in, "evil.com:8080", &err) == WF_ERR);
  CHECK_STR(err.msg, "network policy refuses address 127.0.0.1 (port 8080) of evil.com:8080: "
            "a private address (allow_private or allow_cidrs permit it)");
  memset(&in6, 0, sizeof in6);
  in6.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "::ffff:169.254.169.254", &in6.sin6_addr);
  CHECK(wf_netpolicy_check_addr(p, (struct sockaddr *)&in6, NULL, &err) == WF_ERR);
  CHECK(wf_netpolicy_check_ip(p, "8.8.8.8", 443, "x", &err) == WF_OK);
  CHECK(wf_netpolicy_check_ip(p, "fd00::5", 443, "x", &err) == WF_ERR);
  CHECK(wf_netpolicy_check_ip(p, "not-an-ip", 443, "x", &err) == WF_ERR);
  /* allow_cidrs: an IPv4 range covers its mapped IPv6 spelling too */
  CHECK(wf_netpolicy_allow_cidr(p, "127.0.0.0/8", &err) == WF_OK);
  CHECK(wf_netpolicy_allow_cidr(p, "fd00::/8", &err) == WF_OK);
  CHECK(wf_netpolicy_check_addr(p, (struct sockaddr *)&in, "x", &err) == WF_OK);
  CHECK(wf_netpolicy_check_ip(p, "::ffff:127.0.0.2", 80, "x", &err) == WF_OK);
  CHECK(wf_netpolicy_check_ip(p, "fd00::5", 443, "x", &err) == WF_OK);
  CHECK(wf_netpolicy_check_ip(p, "10.0.0.1", 443, "x", &err) == WF_ERR);
  CHECK(wf_netpolicy_allow_cidr(p, "10.0.0.0/33", &err) == WF_ERR);
  CHECK(wf_netpolicy_allow_cidr(p, "10.0.0/8", &err) == WF_ERR);
  CHECK(wf_netpolicy_allow_cidr(p, "10.0.0.0/", &err) == WF_ERR);
  CHECK(strstr(err.msg, "bad address range '10.0.0.0/'") != NULL);
  wf_netpolicy_set_private(p, 1);
  CHECK(wf_netpolicy_check_ip(p, "10.0.0.1", 443, "x", &err) == WF_OK);
  wf_netpolicy_unref(p);
}

/* both(a, b) allows what both allow, and keeps them alive. */
static void test_both(void) {
  wf_netpolicy_t *a = wf_netpolicy_new(), *b = wf_netpolicy_new(), *ab;
  wf_err_t err;
  CHECK(wf_netpolicy_allow_host(a, "*.example.com", &err) == WF_OK);
  CHECK(wf_netpolicy_block_port(b, 8080, &err) == WF_OK);
  wf_netpolicy_set_private(a, 1);
  ab = wf_netpolicy_both(a, b);
  wf_netpolicy_unref(a);
  wf_netpolicy_unref(b);
  CHECK(wf_netpolicy_check_host(ab, "api.example.com", 443, &err) == WF_OK);
  CHECK(wf_netpolicy_check_host(ab, "api.example.com", 8080, &err) == WF_ERR);
  CHECK(wf_netpolicy_check_host(ab, "other.org", 443, &err) == WF_ERR);
  CHECK(strstr(err.msg, "allow_hosts") != NULL);
  /* b refuses private addresses even though a allows them */
  CHECK(wf_netpolicy_check_ip(ab, "10.0.0.1", 443, "x", &err) == WF_ERR);
  CHECK(wf_netpolicy_check_ip(ab, "8.8.8.8", 443, "x", &err) == WF_OK);
  wf_netpolicy_unref(ab);
}

int main(void) {
  RUN(test_private_ranges);
  RUN(test_hosts);
  RUN(test_ports);
  RUN(test_addresses);
  RUN(test_both);
  return harness_end(__FILE__);
}
