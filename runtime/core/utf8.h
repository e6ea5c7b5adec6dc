/* utf8.h — UTF-8 validation (RFC 3629) shared by the JSON codec and the
 * scheduler's value checks: what encode accepts, decode reads back, and a
 * value an executor hands to the scheduler is checked the same way.
 * Pure functions, no allocation, no dependencies. */
#ifndef WF_UTF8_H
#define WF_UTF8_H

#include <stddef.h>

/* Per lead byte: the length of its sequence (0: never a lead byte, i.e.
 * continuation bytes, C0/C1 and F5..FF). */
extern const unsigned char wf_utf8_lead[256];

/* Length of the valid UTF-8 sequence starting at p (a byte >= 0x80, p <
 * end), or 0 when it is not valid: overlong forms, surrogates, code points
 * past U+10FFFF, a sequence cut by end (RFC 3629, section 4). */
static inline size_t wf_utf8_len(const unsigned char *p,
                                 const unsigned char *end) {
  unsigned c = p[0], lo = 0x80, hi = 0xBF;
  size_t n = wf_utf8_lead[c];
  if (n == 0 || (size_t)(end - p) < n) return 0;
  if (c == 0xE0) lo = 0xA0;
  else if (c == 0xED) hi = 0x9F;
  else if (c == 0xF0) lo = 0x90;
  else if (c == 0xF4) hi = 0x8F;
  if (p[1] < lo || p[1] > hi) return 0;
  if (n > 2 && (p[2] & 0xC0) != 0x80) return 0;
  if (n > 3 && (p[3] & 0xC0) != 0x80) return 0;
  return n;
}

/* Offset of the first byte of s that does not begin a valid UTF-8
 * sequence, or len when all of s is valid UTF-8 (8 bytes at a time while
 * they are ASCII). */
size_t wf_utf8_bad(const char *s, size_t len);

#endif
