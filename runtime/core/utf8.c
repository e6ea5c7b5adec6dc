/* utf8.c — UTF-8 validation (utf8.h). Depends on nothing but libc. */
#include <stdint.h>
#include <string.h>

#include "utf8.h"

#define WF_UTF8_HIGH 0x8080808080808080ULL

const unsigned char wf_utf8_lead[256] = {
  [0xC2] = 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
  2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
  [0xE0] = 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
  [0xF0] = 4, 4, 4, 4, 4,
};

size_t wf_utf8_bad(const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s, *end = p + len, *stop;
  while (p < end) {
    if (end - p >= 8) {
      uint64_t w;
      memcpy(&w, p, 8);
      if (!(w & WF_UTF8_HIGH)) { p += 8; continue; }
      stop = p + 8; /* byte by byte to the end of this word (or just past) */
    } else {
      stop = end;
    }
    while (p < stop) {
      size_t n;
      if (*p < 0x80) { p++; continue; }
      if ((n = wf_utf8_len(p, end)) == 0)
        return (size_t)(p - (const unsigned char *)s);
      p += n;
    }
  }
  return len;
}
