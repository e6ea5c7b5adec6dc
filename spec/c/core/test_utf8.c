/* test_utf8.c — unit tests of utf8.c: wf_utf8_bad finds the first byte
 * that does not begin a valid sequence (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF, no cut sequence), on both its 8-byte
 * ASCII path and its byte path, and wf_utf8_len measures one sequence.
 * Depends on harness.h, utf8.h. */
#include <string.h>

#include "harness.h"
#include "utf8.h"

/* wf_utf8_bad on a C string. */
static size_t bad(const char *s) { return wf_utf8_bad(s, strlen(s)); }

static void test_valid(void) {
  CHECK_INT(wf_utf8_bad("", 0), 0);
  CHECK_INT(bad("plain ascii, longer than eight bytes"), 36);
  CHECK_INT(bad("caf\xC3\xA9"), 5);                 /* U+00E9 */
  CHECK_INT(bad("\xE2\x82\xAC euro"), 8);           /* U+20AC */
  CHECK_INT(bad("\xF0\x9F\x98\x80"), 4);            /* U+1F600 */
  CHECK_INT(bad("\xF4\x8F\xBF\xBF"), 4);            /* U+10FFFF */
  CHECK_INT(bad("\xED\x9F\xBF"), 3);                /* U+D7FF */
  CHECK_INT(wf_utf8_bad("a\0b", 3), 3);             /* NUL is valid */
}

static void test_invalid(void) {
  CHECK_INT(bad("caf\xE9"), 3);                     /* Latin-1 */
  CHECK_INT(bad("\x80"), 0);                        /* lone continuation */
  CHECK_INT(bad("\xC0\xAF"), 0);                    /* overlong '/' */
  CHECK_INT(bad("\xE0\x80\xAF"), 0);                /* overlong, 3 bytes */
  CHECK_INT(bad("\xF0\x80\x80\xAF"), 0);            /* overlong, 4 bytes */
  CHECK_INT(bad("k\xED\xA0\x80"), 1);               /* surrogate U+D800 */
  CHECK_INT(bad("\xF4\x90\x80\x80"), 0);            /* past U+10FFFF */
  CHECK_INT(bad("\xF5\x80\x80\x80"), 0);            /* never a lead */
  CHECK_INT(bad("ok\xE2\x82"), 2);                  /* cut sequence */
  CHECK_INT(bad("\xC3\xA9\xC3"), 2);                /* cut at the end */
  /* the 8-byte path hands over to the byte path in the right word */
  CHECK_INT(bad("0123456789abcdef\xFF"), 16);
  CHECK_INT(bad("01234567\xC3\xA9" "89abcdef\x80"), 18);
}

static void test_len(void) {
  const unsigned char e[] = "\xE2\x82\xAC";
  CHECK_INT(wf_utf8_len(e, e + 3), 3);
  CHECK_INT(wf_utf8_len(e, e + 2), 0); /* cut by end */
  CHECK_INT(wf_utf8_lead[0xC1], 0);
  CHECK_INT(wf_utf8_lead[0xC2], 2);
  CHECK_INT(wf_utf8_lead[0xF4], 4);
  CHECK_INT(wf_utf8_lead[0xF5], 0);
}

int main(void) {
  RUN(test_valid);
  RUN(test_invalid);
  RUN(test_len);
  return harness_end("test_utf8");
}
