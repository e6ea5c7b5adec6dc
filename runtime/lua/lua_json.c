/* lua_json.c — weft.core.json: an RFC 8259 JSON codec for Lua values whose
 * errors name the path of the offending value ("value.items[2].fn: function
 * is not JSON-serialisable"). Provides wf_lua_open_json, which pushes
 * { encode, check, decode, fix_utf8, array_mt, object_mt, null, MAX_DEPTH }. Strings
 * are UTF-8 both ways: what encode writes, decode reads back (encode refuses
 * invalid UTF-8 with the path and offset, or replaces it on request).
 *
 * Uses the Lua C API (LuaJIT 2.1) and libc (snprintf/strtod for non-integral
 * numbers). It never calls malloc: output and key buffers start on the C
 * stack and grow into Lua userdata anchored on the Lua stack, so a Lua error
 * (out of memory, stack overflow) can unwind at any point without leaking.
 *
 * Encoding is two-phase only on failure: encode emits optimistically, and
 * when anything is wrong it throws the output away and runs check() to find
 * and describe the first problem. So encode's error is check()'s error by
 * construction, and the emitter needs neither paths nor a cycle set (a cycle
 * simply exceeds the depth limit). check() itself runs without a cycle set up
 * to depth 64 and re-runs with one only when a value is nested deeper. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lua_core.h"
#include "utf8.h"

/* Nested containers (arrays and objects), one limit for all three
 * functions: decode accepts exactly what encode and check accept, so a
 * decoded value can be encoded again and the other way round. decode may
 * be given a lower limit (opts.max_depth), e.g. for untrusted input that
 * will be embedded in larger documents. Exposed to Lua as MAX_DEPTH. */
#define WF_JSON_MAX_DEPTH 1000
#define WF_JSON_FAST_DEPTH 64   /* check() depth before cycle detection */
#define WF_JSON_INLINE 1024     /* bytes buffered on the C stack before a userdata */
#define WF_JSON_SMALL_KEYS 16   /* object keys sorted without a userdata */
#define WF_JSON_MAX_SAFE 9007199254740992.0 /* 2^53: integers exact up to here */
#define WF_JSON_PATH_EDGE 10    /* path components kept at each end of a long path */

#define WF_JSON_STR_(x) #x
#define WF_JSON_STR(x) WF_JSON_STR_(x)

/* Error builders hold a luaL_Buffer (8 KB): kept out of the recursive
 * functions' frames, or 1000 levels would overflow the C stack. */
#define WF_JSON_COLD __attribute__((noinline, cold))

enum { WF_JSON_OK = 0, WF_JSON_FAIL, WF_JSON_RETRY };
enum { WF_JSON_PLAIN = 0, WF_JSON_ARRAY, WF_JSON_OBJECT };

/* Upvalues of encode, check and decode; the markers also live in the
 * registry under these names, so every opener of one state shares them. */
#define WF_JSON_ARRAY_MT lua_upvalueindex(1)
#define WF_JSON_OBJECT_MT lua_upvalueindex(2)
#define WF_JSON_ARRAY_NAME "weft.json.array"
#define WF_JSON_OBJECT_NAME "weft.json.object"

/* ---- growable byte buffer ------------------------------------------------ */

/* Bytes in `inl` (C stack) until they outgrow it, then in a userdata stored
 * at Lua stack slot `slot` (replaced, never freed by hand, on each growth). */
typedef struct {
  lua_State *L;
  char *p;
  size_t len, cap;
  int slot;
  char inl[WF_JSON_INLINE];
} wf_json_buf_t;

/* Start an empty buffer anchored at stack slot `slot` (which must exist). */
static void wf_json_buf_init(wf_json_buf_t *b, lua_State *L, int slot) {
  b->L = L;
  b->p = b->inl;
  b->len = 0;
  b->cap = sizeof b->inl;
  b->slot = slot;
}

/* Make room for n more bytes; may raise a memory error (nothing leaks). */
static void wf_json_buf_grow(wf_json_buf_t *b, size_t n) {
  size_t cap = b->cap * 2;
  char *p;
  while (cap - b->len < n) cap *= 2;
  p = lua_newuserdata(b->L, cap);
  memcpy(p, b->p, b->len);
  lua_replace(b->L, b->slot);
  b->p = p;
  b->cap = cap;
}

/* Ensure room for n more bytes in buffer b. */
#define WF_JSON_RESERVE(b, n)                                   \
  do {                                                          \
    if ((b)->cap - (b)->len < (size_t)(n)) wf_json_buf_grow((b), (n)); \
  } while (0)

/* Append n bytes. */
static inline void wf_json_buf_add(wf_json_buf_t *b, const char *s, size_t n) {
  WF_JSON_RESERVE(b, n);
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

/* Append one byte. */
static inline void wf_json_buf_addc(wf_json_buf_t *b, char c) {
  WF_JSON_RESERVE(b, 1);
  b->p[b->len++] = c;
}

/* ---- shared helpers ------------------------------------------------------ */

/* Which marker metatable (if any) the table at idx carries. */
static int wf_json_marker(lua_State *L, int idx, const void *amt,
                          const void *omt) {
  const void *mt;
  if (!lua_getmetatable(L, idx)) return WF_JSON_PLAIN;
  mt = lua_topointer(L, -1);
  lua_pop(L, 1);
  return mt == amt ? WF_JSON_ARRAY : mt == omt ? WF_JSON_OBJECT : WF_JSON_PLAIN;
}

/* Whether a number key is an array index: a finite integer >= 1. */
static inline int wf_json_is_index(double d) {
  return d >= 1 && d < HUGE_VAL && floor(d) == d;
}

/* Write d into out (>= 32 bytes) as JSON text: integers up to 2^53 without
 * exponent or point, "-0" for negative zero, other numbers with the fewest
 * of 14..17 significant digits that read back as the same double. Returns
 * the length. NaN and infinities come out as "nan"/"inf" (messages only). */
static size_t wf_json_fmt_number(char *out, double d) {
  int prec;
  if (d == 0) {
    if (signbit(d)) { memcpy(out, "-0", 3); return 2; }
    memcpy(out, "0", 2);
    return 1;
  }
  if (d >= -WF_JSON_MAX_SAFE && d <= WF_JSON_MAX_SAFE && floor(d) == d) {
    char tmp[24];
    int i = sizeof tmp;
    uint64_t u = d < 0 ? (uint64_t)-d : (uint64_t)d;
    do { tmp[--i] = (char)('0' + u % 10); u /= 10; } while (u);
    if (d < 0) tmp[--i] = '-';
    memcpy(out, tmp + i, sizeof tmp - i);
    out[sizeof tmp - i] = '\0';
    return sizeof tmp - i;
  }
  if (isnan(d)) { memcpy(out, "nan", 4); return 3; }
  /* Starting at 15 loses nothing: when 14 digits read back, %.15g prints
   * the same text (the double is within half an ulp of that decimal). */
  for (prec = 15; prec < 17; prec++) {
    snprintf(out, 32, "%.*g", prec, d);
    if (strtod(out, NULL) == d) return strlen(out);
  }
  return (size_t)snprintf(out, 32, "%.17g", d);
}

/* ---- UTF-8 ----------------------------------------------------------------
 * Strings are written and read as UTF-8 (RFC 3629): encode rejects (or,
 * asked to, replaces) what decode would reject, so that every document
 * encode writes can be read back (validation: utf8.h). The scans run 8
 * bytes at a time while the bytes are plain ASCII, then one sequence at a
 * time. */

#define WF_JSON_ONES 0x0101010101010101ULL
#define WF_JSON_HIGH 0x8080808080808080ULL

/* Whether none of the 8 bytes of w needs attention in a JSON string: no
 * byte >= 0x80, < 0x20, '"' or '\\'. Bytes < 0x80 do not borrow from each
 * other when 0x20 or 1 is subtracted, so a high bit set below means a byte
 * matched (or, only above a match, a borrow). */
static inline int wf_json_plain8(uint64_t w) {
  return ((w | (w - 0x20 * WF_JSON_ONES) | ((w ^ 0x22 * WF_JSON_ONES) - WF_JSON_ONES) |
           ((w ^ 0x5C * WF_JSON_ONES) - WF_JSON_ONES)) & WF_JSON_HIGH) == 0;
}

/* JSON escape of each byte: 0 = as is, 'u' = \u00XX, else \<char>. */
static const char wf_json_esc[256] = {
  'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'b', 't', 'n', 'u', 'f', 'r', 'u', 'u',
  'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',
  0, 0, '"', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '\\', 0, 0, 0,
};

/* U+FFFD REPLACEMENT CHARACTER, written for each invalid byte in
 * replace mode. */
static const char wf_json_fffd[3] = {'\xEF', '\xBF', '\xBD'};

/* Append s as a quoted JSON string: valid UTF-8 as it is, control bytes,
 * '"' and '\\' escaped. A byte that does not begin a valid UTF-8 sequence
 * makes it fail (WF_JSON_FAIL, b partly written), or with `replace` comes
 * out as U+FFFD. */
static int wf_json_add_string(wf_json_buf_t *b, const char *s, size_t len,
                              int replace) {
  static const char hex[] = "0123456789abcdef";
  const char *run = s, *end = s + len;
  WF_JSON_RESERVE(b, len + 2);
  b->p[b->len++] = '"';
  while (s < end) {
    const char *stop;
    if (end - s >= 8) {
      uint64_t w;
      memcpy(&w, s, 8);
      if (wf_json_plain8(w)) { s += 8; continue; }
      stop = s + 8; /* byte by byte to the end of this word (or just past) */
    } else {
      stop = end;
    }
    while (s < stop) {
      unsigned char c = (unsigned char)*s;
      char x;
      if (c >= 0x80) {
        size_t n = wf_utf8_len((const unsigned char *)s, (const unsigned char *)end);
        if (n) { s += n; continue; }
        if (!replace) return WF_JSON_FAIL;
        wf_json_buf_add(b, run, (size_t)(s - run));
        wf_json_buf_add(b, wf_json_fffd, sizeof wf_json_fffd);
        run = ++s;
        continue;
      }
      x = wf_json_esc[c];
      if (!x) { s++; continue; }
      wf_json_buf_add(b, run, (size_t)(s - run));
      run = ++s;
      WF_JSON_RESERVE(b, 6);
      b->p[b->len++] = '\\';
      if (x == 'u') {
        memcpy(b->p + b->len, "u00", 3);
        b->p[b->len + 3] = hex[c >> 4];
        b->p[b->len + 4] = hex[c & 15];
        b->len += 5;
      } else {
        b->p[b->len++] = x;
      }
    }
  }
  wf_json_buf_add(b, run, (size_t)(end - run));
  wf_json_buf_addc(b, '"');
  return WF_JSON_OK;
}

/* ---- check: validation with error paths --------------------------------- */

/* One path component: an array index or a string key (by stack slot). */
typedef struct {
  double index;
  int key; /* stack slot of the string key, 0 for an index */
} wf_json_comp_t;

/* State of one check traversal (a C-stack value, no resources of its own). */
typedef struct {
  lua_State *L;
  const void *array_mt, *object_mt;
  const char *root;
  size_t rootlen;
  int max_depth;
  int utf8;             /* strings must be valid UTF-8 (not in replace mode) */
  int visited;          /* stack slot of {table = depth}, 0 in the fast pass */
  wf_json_comp_t *path; /* path[d] leads to the value at depth d (d >= 1) */
} wf_json_chk_t;

/* Append up to max bytes of s to a message, never cutting a UTF-8
 * sequence: valid UTF-8 as it is, bytes that are not as \xHH (so that
 * messages are valid UTF-8 themselves and can be encoded); with `esc` also
 * control bytes, '"' and '\\' escaped as in JSON. Returns the bytes of s
 * consumed. */
static size_t wf_json_msg_text(luaL_Buffer *b, const char *s, size_t len,
                               size_t max, int esc) {
  const unsigned char *p = (const unsigned char *)s, *end = p + len;
  size_t i = 0;
  while (i < len) {
    unsigned char c = p[i];
    char tmp[8];
    if (c >= 0x80) {
      size_t n = wf_utf8_len(p + i, end);
      if (n) {
        if (i + n > max) break;
        luaL_addlstring(b, s + i, n);
        i += n;
        continue;
      }
      if (i >= max) break;
      snprintf(tmp, sizeof tmp, "\\x%02X", c);
      luaL_addstring(b, tmp);
    } else {
      char x = esc ? wf_json_esc[c] : 0;
      if (i >= max) break;
      if (x == 'u') {
        snprintf(tmp, sizeof tmp, "\\u%04x", c);
        luaL_addstring(b, tmp);
      } else if (x) {
        luaL_addchar(b, '\\');
        luaL_addchar(b, x);
      } else {
        luaL_addchar(b, (char)c);
      }
    }
    i++;
  }
  return i;
}

/* Append a string quoted for a message, cut after 40 bytes. */
static void wf_json_msg_quoted(luaL_Buffer *b, const char *s, size_t len) {
  luaL_addchar(b, '"');
  if (wf_json_msg_text(b, s, len, 40, 1) < len) luaL_addstring(b, "...");
  luaL_addchar(b, '"');
}

/* Append a number for a message. */
static void wf_json_msg_number(luaL_Buffer *b, double d) {
  char tmp[32];
  luaL_addlstring(b, tmp, wf_json_fmt_number(tmp, d));
}

/* Whether s is a Lua-style identifier (then a path shows it as .s). */
static int wf_json_is_ident(const char *s, size_t len) {
  size_t i;
  if (len == 0 || (s[0] >= '0' && s[0] <= '9')) return 0;
  for (i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_'))
      return 0;
  }
  return 1;
}

/* Append the path of the value at `depth`: root, then .key / ["key"] / [i],
 * eliding the middle of very long paths. */
static void wf_json_msg_path(luaL_Buffer *b, wf_json_chk_t *c, int depth) {
  int d;
  wf_json_msg_text(b, c->root, c->rootlen, c->rootlen, 0);
  for (d = 1; d <= depth; d++) {
    wf_json_comp_t *p = &c->path[d];
    if (depth > 3 * WF_JSON_PATH_EDGE && d == WF_JSON_PATH_EDGE + 1) {
      char tmp[48];
      snprintf(tmp, sizeof tmp, "...(%d more)...",
               depth - 2 * WF_JSON_PATH_EDGE);
      luaL_addstring(b, tmp);
      d = depth - WF_JSON_PATH_EDGE + 1;
      p = &c->path[d];
    }
    if (p->key) {
      size_t len;
      const char *s = lua_tolstring(c->L, p->key, &len);
      if (wf_json_is_ident(s, len)) {
        luaL_addchar(b, '.');
        luaL_addlstring(b, s, len);
      } else {
        luaL_addchar(b, '[');
        wf_json_msg_quoted(b, s, len);
        luaL_addchar(b, ']');
      }
    } else {
      luaL_addchar(b, '[');
      wf_json_msg_number(b, p->index);
      luaL_addchar(b, ']');
    }
  }
}

/* Begin an error message "<path>: " for the value at depth. */
static void wf_json_fail_begin(wf_json_chk_t *c, luaL_Buffer *b, int depth) {
  luaL_buffinit(c->L, b);
  wf_json_msg_path(b, c, depth);
  luaL_addstring(b, ": ");
}

/* Push "<path>: <msg>" and return WF_JSON_FAIL. */
WF_JSON_COLD static int wf_json_fail(wf_json_chk_t *c, int depth, const char *msg) {
  luaL_Buffer b;
  wf_json_fail_begin(c, &b, depth);
  luaL_addstring(&b, msg);
  luaL_pushresult(&b);
  return WF_JSON_FAIL;
}

/* Push "<path>: <pre><number><post>" and return WF_JSON_FAIL. */
WF_JSON_COLD static int wf_json_fail_num(wf_json_chk_t *c, int depth, const char *pre,
                            double d, const char *post) {
  luaL_Buffer b;
  wf_json_fail_begin(c, &b, depth);
  luaL_addstring(&b, pre);
  wf_json_msg_number(&b, d);
  luaL_addstring(&b, post);
  luaL_pushresult(&b);
  return WF_JSON_FAIL;
}

/* Push "<path>: <pre><type of the value at idx><post>"; WF_JSON_FAIL. */
WF_JSON_COLD static int wf_json_fail_type(wf_json_chk_t *c, int depth, int idx,
                                          const char *pre, const char *post) {
  luaL_Buffer b;
  const char *tn = luaL_typename(c->L, idx);
  wf_json_fail_begin(c, &b, depth);
  luaL_addstring(&b, pre);
  luaL_addstring(&b, tn);
  luaL_addstring(&b, post);
  luaL_pushresult(&b);
  return WF_JSON_FAIL;
}

/* The error for a table with both index keys and string keys. */
WF_JSON_COLD static int wf_json_fail_mixed(wf_json_chk_t *c, int depth, double ikey,
                              const char *skey, size_t slen) {
  luaL_Buffer b;
  wf_json_fail_begin(c, &b, depth);
  luaL_addstring(&b, "table has mixed keys (");
  wf_json_msg_number(&b, ikey);
  luaL_addstring(&b, " and ");
  wf_json_msg_quoted(&b, skey, slen);
  luaL_addchar(&b, ')');
  luaL_pushresult(&b);
  return WF_JSON_FAIL;
}

/* The error for a string key in a table marked as an array. */
WF_JSON_COLD static int wf_json_fail_marked(wf_json_chk_t *c, int depth, int key) {
  luaL_Buffer b;
  size_t len;
  const char *s = lua_tolstring(c->L, key, &len);
  wf_json_fail_begin(c, &b, depth);
  luaL_addstring(&b, "table marked as array has string key ");
  wf_json_msg_quoted(&b, s, len);
  luaL_pushresult(&b);
  return WF_JSON_FAIL;
}

/* The error for a string at depth, or with `key` a key of the table at
 * depth, that is not valid UTF-8 from offset off. */
WF_JSON_COLD static int wf_json_fail_utf8(wf_json_chk_t *c, int depth, const char *s,
                                          size_t len, size_t off, int key) {
  luaL_Buffer b;
  char tmp[64];
  wf_json_fail_begin(c, &b, depth);
  if (key) {
    luaL_addstring(&b, "key ");
    wf_json_msg_quoted(&b, s, len);
    luaL_addstring(&b, " is not valid UTF-8");
  } else {
    luaL_addstring(&b, "invalid UTF-8");
  }
  snprintf(tmp, sizeof tmp, " (byte 0x%02X at offset %zu)", (unsigned char)s[off], off);
  luaL_addstring(&b, tmp);
  luaL_pushresult(&b);
  return WF_JSON_FAIL;
}

/* The error for a table that reached itself: at depth, first seen at `at`. */
WF_JSON_COLD static int wf_json_fail_cycle(wf_json_chk_t *c, int depth, int at) {
  luaL_Buffer b;
  wf_json_fail_begin(c, &b, depth);
  luaL_addstring(&b, "cyclic table (same table as ");
  wf_json_msg_path(&b, c, at);
  luaL_addchar(&b, ')');
  luaL_pushresult(&b);
  return WF_JSON_FAIL;
}

/* The error for integer keys that are not 1..n: names the first hole. */
WF_JSON_COLD static int wf_json_fail_sparse(wf_json_chk_t *c, int idx, int depth,
                               double max) {
  lua_State *L = c->L;
  luaL_Buffer b;
  double hole = 1;
  for (;; hole++) {
    int absent;
    lua_rawgeti(L, idx, (int)hole);
    absent = lua_isnil(L, -1);
    lua_pop(L, 1);
    if (absent) break;
  }
  wf_json_fail_begin(c, &b, depth);
  luaL_addstring(&b, "sparse array: index ");
  wf_json_msg_number(&b, hole);
  luaL_addstring(&b, " is nil but index ");
  wf_json_msg_number(&b, max);
  luaL_addstring(&b, " is set");
  luaL_pushresult(&b);
  return WF_JSON_FAIL;
}

static int wf_json_check_value(wf_json_chk_t *c, int idx, int depth);

/* Check the table at idx (at depth): its keys, then each value. On failure
 * the message is on top of the stack and the stack is otherwise left as is
 * (the path refers to key slots below). */
static int wf_json_check_table(wf_json_chk_t *c, int idx, int depth) {
  lua_State *L = c->L;
  wf_json_comp_t *comp;
  const char *skey = NULL;
  size_t slen = 0, n = 0;
  double ikey = 0, max = 0;
  int marker, r;

  if (depth >= c->max_depth && !c->visited) return WF_JSON_RETRY;
  luaL_checkstack(L, 8, "JSON nesting");
  if (c->visited) {
    lua_pushvalue(L, idx);
    lua_rawget(L, c->visited);
    if (!lua_isnil(L, -1)) {
      int at = (int)lua_tointeger(L, -1);
      lua_pop(L, 1);
      return wf_json_fail_cycle(c, depth, at);
    }
    lua_pop(L, 1);
    if (depth >= c->max_depth)
      return wf_json_fail(c, depth, "nesting too deep (more than "
                                    WF_JSON_STR(WF_JSON_MAX_DEPTH) " levels)");
    lua_pushvalue(L, idx);
    lua_pushinteger(L, depth);
    lua_rawset(L, c->visited);
  }
  marker = wf_json_marker(L, idx, c->array_mt, c->object_mt);
  comp = &c->path[depth + 1];
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int top = lua_gettop(L), vt;
    n++;
    switch (lua_type(L, top - 1)) {
    case LUA_TSTRING:
      if (marker == WF_JSON_ARRAY) return wf_json_fail_marked(c, depth, top - 1);
      if (ikey != 0) {
        size_t len;
        const char *s = lua_tolstring(L, top - 1, &len);
        return wf_json_fail_mixed(c, depth, ikey, s, len);
      }
      if (c->utf8) {
        size_t len, off;
        const char *s = lua_tolstring(L, top - 1, &len);
        if ((off = wf_utf8_bad(s, len)) < len)
          return wf_json_fail_utf8(c, depth, s, len, off, 1);
      }
      if (!skey) skey = lua_tolstring(L, top - 1, &slen);
      comp->key = top - 1;
      break;
    case LUA_TNUMBER: {
      double d = lua_tonumber(L, top - 1);
      if (!wf_json_is_index(d)) {
        if (d < HUGE_VAL && d > -HUGE_VAL && floor(d) == d)
          return wf_json_fail_num(c, depth, "table has array index ", d,
                                  " (arrays start at 1)");
        return wf_json_fail_num(c, depth, "table has non-integer number key ",
                                d, "");
      }
      if (marker == WF_JSON_OBJECT)
        return wf_json_fail_num(c, depth,
                                "table marked as object has number key ", d, "");
      if (skey) return wf_json_fail_mixed(c, depth, d, skey, slen);
      if (ikey == 0) ikey = d;
      if (d > max) max = d;
      comp->key = 0;
      comp->index = d;
      break;
    }
    case LUA_TBOOLEAN:
      return wf_json_fail(c, depth, lua_toboolean(L, top - 1)
                                        ? "table has boolean key true"
                                        : "table has boolean key false");
    default:
      return wf_json_fail_type(c, depth, top - 1, "table has ", " key");
    }
    vt = lua_type(L, top);
    if (vt == LUA_TSTRING) {
      if (c->utf8) {
        size_t len, off;
        const char *s = lua_tolstring(L, top, &len);
        if ((off = wf_utf8_bad(s, len)) < len)
          return wf_json_fail_utf8(c, depth + 1, s, len, off, 0);
      }
    } else if (vt != LUA_TBOOLEAN) {
      r = vt == LUA_TTABLE ? wf_json_check_table(c, top, depth + 1)
                           : wf_json_check_value(c, top, depth + 1);
      if (r != WF_JSON_OK) return r;
    }
    lua_pop(L, 1);
  }
  if (ikey != 0 && max != (double)n) return wf_json_fail_sparse(c, idx, depth, max);
  if (c->visited) {
    lua_pushvalue(L, idx);
    lua_pushnil(L);
    lua_rawset(L, c->visited);
  }
  return WF_JSON_OK;
}

/* Check any value at stack slot idx, at depth (0 = the root). */
static int wf_json_check_value(wf_json_chk_t *c, int idx, int depth) {
  lua_State *L = c->L;
  switch (lua_type(L, idx)) {
  case LUA_TSTRING:
    if (c->utf8) {
      size_t len, off;
      const char *s = lua_tolstring(L, idx, &len);
      if ((off = wf_utf8_bad(s, len)) < len)
        return wf_json_fail_utf8(c, depth, s, len, off, 0);
    }
    return WF_JSON_OK;
  case LUA_TBOOLEAN:
    return WF_JSON_OK;
  case LUA_TNUMBER: {
    double d = lua_tonumber(L, idx);
    if (isnan(d)) return wf_json_fail(c, depth, "NaN is not JSON-serialisable");
    if (d == HUGE_VAL) return wf_json_fail(c, depth, "inf is not JSON-serialisable");
    if (d == -HUGE_VAL)
      return wf_json_fail(c, depth, "-inf is not JSON-serialisable");
    return WF_JSON_OK;
  }
  case LUA_TTABLE:
    return wf_json_check_table(c, idx, depth);
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) == NULL) return WF_JSON_OK; /* json.null */
    break;
  default:
    break;
  }
  return wf_json_fail_type(c, depth, idx, "", " is not JSON-serialisable");
}

/* Check the value at slot idx, naming it `root` in errors, strings as UTF-8
 * unless !utf8; must be called from encode/check (marker upvalues).
 * Returns WF_JSON_OK, or WF_JSON_FAIL
 * with the message pushed. Allocates only for values nested deeper than
 * WF_JSON_FAST_DEPTH (a cycle set and a path array, both Lua-owned). */
static int wf_json_check_run(lua_State *L, int idx, const char *root,
                             size_t rootlen, int utf8) {
  wf_json_comp_t fast[WF_JSON_FAST_DEPTH + 2];
  wf_json_chk_t c;
  int base = lua_gettop(L), r;
  c.L = L;
  c.array_mt = lua_topointer(L, WF_JSON_ARRAY_MT);
  c.object_mt = lua_topointer(L, WF_JSON_OBJECT_MT);
  c.root = root;
  c.rootlen = rootlen;
  c.max_depth = WF_JSON_FAST_DEPTH;
  c.utf8 = utf8;
  c.visited = 0;
  c.path = fast;
  r = wf_json_check_value(&c, idx, 0);
  if (r != WF_JSON_RETRY) return r;
  lua_settop(L, base);
  lua_createtable(L, 0, 2 * WF_JSON_FAST_DEPTH);
  c.visited = base + 1;
  c.path = lua_newuserdata(L, sizeof(wf_json_comp_t) * (WF_JSON_MAX_DEPTH + 2));
  c.max_depth = WF_JSON_MAX_DEPTH;
  return wf_json_check_value(&c, idx, 0);
}

/* check(value [, root]) -> nil | "root.path: what is wrong" (strings must
 * be valid UTF-8, as in encode without replace). */
static int wf_json_l_check(lua_State *L) {
  size_t rootlen;
  const char *root;
  lua_settop(L, 2);
  root = luaL_optlstring(L, 2, "value", &rootlen);
  if (wf_json_check_run(L, 1, root, rootlen, 1) == WF_JSON_OK) lua_pushnil(L);
  return 1;
}

/* fix_utf8(s) -> s with each byte that does not begin a valid UTF-8
 * sequence replaced by U+FFFD (as encode's replace mode writes it); s
 * itself when it is valid. For text (messages, logs), not for data. */
static int wf_json_l_fix_utf8(lua_State *L) {
  size_t len, off;
  const char *s, *end;
  luaL_Buffer b;
  luaL_checktype(L, 1, LUA_TSTRING);
  s = lua_tolstring(L, 1, &len);
  end = s + len;
  if ((off = wf_utf8_bad(s, len)) == len) {
    lua_settop(L, 1);
    return 1;
  }
  luaL_buffinit(L, &b);
  while (s < end) {
    size_t n;
    luaL_addlstring(&b, s, off);
    s += off;
    if (s == end) break;
    luaL_addlstring(&b, wf_json_fffd, sizeof wf_json_fffd);
    s++;
    n = (size_t)(end - s);
    off = wf_utf8_bad(s, n);
  }
  luaL_pushresult(&b);
  return 1;
}

/* ---- encode --------------------------------------------------------------- */

/* An object key, borrowed from the table being encoded (which anchors it). */
typedef struct {
  const char *s;
  size_t len;
} wf_json_key_t;

/* State of one encode: options and the output buffer. */
typedef struct {
  lua_State *L;
  const void *array_mt, *object_mt;
  int pretty, sort_keys, replace;
  wf_json_buf_t buf;
} wf_json_enc_t;

/* Bytewise order of two object keys (qsort comparator). */
static int wf_json_key_cmp(const void *a, const void *b) {
  const wf_json_key_t *x = a, *y = b;
  int r = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
  if (r) return r;
  return x->len < y->len ? -1 : x->len > y->len;
}

/* Pretty output: a newline and 2 spaces per level. */
static void wf_json_indent(wf_json_enc_t *e, int depth) {
  wf_json_buf_t *b = &e->buf;
  WF_JSON_RESERVE(b, 1 + 2 * (size_t)depth);
  b->p[b->len++] = '\n';
  memset(b->p + b->len, ' ', 2 * (size_t)depth);
  b->len += 2 * (size_t)depth;
}

static int wf_json_emit_value(wf_json_enc_t *e, int idx, int depth);

/* Emit the table at idx as the array [t[1], ..., t[n]]. */
static int wf_json_emit_array(wf_json_enc_t *e, int idx, size_t n, int depth) {
  lua_State *L = e->L;
  size_t i;
  wf_json_buf_addc(&e->buf, '[');
  for (i = 1; i <= n; i++) {
    if (i > 1) wf_json_buf_addc(&e->buf, ',');
    if (e->pretty) wf_json_indent(e, depth + 1);
    lua_rawgeti(L, idx, (int)i);
    if (wf_json_emit_value(e, lua_gettop(L), depth + 1)) return WF_JSON_FAIL;
    lua_pop(L, 1);
  }
  if (e->pretty) wf_json_indent(e, depth);
  wf_json_buf_addc(&e->buf, ']');
  return WF_JSON_OK;
}

/* Emit one "key":value member whose value is on top of the stack (popped). */
static int wf_json_emit_member(wf_json_enc_t *e, const char *s, size_t len,
                               int first, int depth) {
  if (!first) wf_json_buf_addc(&e->buf, ',');
  if (e->pretty) wf_json_indent(e, depth + 1);
  if (wf_json_add_string(&e->buf, s, len, e->replace)) return WF_JSON_FAIL;
  if (e->pretty) wf_json_buf_add(&e->buf, ": ", 2);
  else wf_json_buf_addc(&e->buf, ':');
  if (wf_json_emit_value(e, lua_gettop(e->L), depth + 1)) return WF_JSON_FAIL;
  lua_pop(e->L, 1);
  return WF_JSON_OK;
}

/* Emit the table at idx (n string keys, the first `have` already in keys[])
 * as an object, in bytewise key order if sort_keys. */
static int wf_json_emit_object(wf_json_enc_t *e, int idx, size_t n,
                               wf_json_key_t *keys, size_t have, int depth) {
  lua_State *L = e->L;
  size_t i;
  wf_json_buf_addc(&e->buf, '{');
  if (!e->sort_keys) {
    int first = 1;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      size_t len;
      const char *s = lua_tolstring(L, -2, &len);
      if (wf_json_emit_member(e, s, len, first, depth)) return WF_JSON_FAIL;
      first = 0;
    }
  } else {
    if (have < n) { /* too many for the C stack array: a Lua-owned one */
      keys = lua_newuserdata(L, n * sizeof *keys);
      i = 0;
      lua_pushnil(L);
      while (lua_next(L, idx)) {
        lua_pop(L, 1);
        keys[i].s = lua_tolstring(L, -1, &keys[i].len);
        i++;
      }
    }
    qsort(keys, n, sizeof *keys, wf_json_key_cmp);
    for (i = 0; i < n; i++) {
      lua_pushlstring(L, keys[i].s, keys[i].len);
      lua_rawget(L, idx);
      if (wf_json_emit_member(e, keys[i].s, keys[i].len, i == 0, depth))
        return WF_JSON_FAIL;
    }
    if (have < n) lua_pop(L, 1);
  }
  if (e->pretty) wf_json_indent(e, depth);
  wf_json_buf_addc(&e->buf, '}');
  return WF_JSON_OK;
}

/* Emit the table at idx: classify its keys, then emit it as [] / {} /
 * array / object. Fails (without a message) on anything check() rejects. */
static int wf_json_emit_table(wf_json_enc_t *e, int idx, int depth) {
  lua_State *L = e->L;
  wf_json_key_t keys[WF_JSON_SMALL_KEYS];
  size_t n = 0, nstr = 0;
  double max = 0;
  int marker;

  if (depth >= WF_JSON_MAX_DEPTH) return WF_JSON_FAIL; /* or a cycle */
  luaL_checkstack(L, 8, "JSON nesting");
  marker = wf_json_marker(L, idx, e->array_mt, e->object_mt);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int kt = lua_type(L, -2);
    lua_pop(L, 1);
    n++;
    if (kt == LUA_TSTRING) {
      if (nstr < WF_JSON_SMALL_KEYS)
        keys[nstr].s = lua_tolstring(L, -1, &keys[nstr].len);
      nstr++;
    } else if (kt == LUA_TNUMBER) {
      double d = lua_tonumber(L, -1);
      if (!wf_json_is_index(d)) return WF_JSON_FAIL;
      if (d > max) max = d;
    } else {
      return WF_JSON_FAIL;
    }
  }
  if (n == 0) {
    wf_json_buf_add(&e->buf, marker == WF_JSON_ARRAY ? "[]" : "{}", 2);
    return WF_JSON_OK;
  }
  if (nstr == 0) {
    if (marker == WF_JSON_OBJECT || max != (double)n) return WF_JSON_FAIL;
    return wf_json_emit_array(e, idx, n, depth);
  }
  if (nstr != n || marker == WF_JSON_ARRAY) return WF_JSON_FAIL;
  return wf_json_emit_object(e, idx, n, keys,
                             n < WF_JSON_SMALL_KEYS ? n : WF_JSON_SMALL_KEYS,
                             depth);
}

/* Emit any value at stack slot idx. */
static int wf_json_emit_value(wf_json_enc_t *e, int idx, int depth) {
  lua_State *L = e->L;
  switch (lua_type(L, idx)) {
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    return wf_json_add_string(&e->buf, s, len, e->replace);
  }
  case LUA_TNUMBER: {
    double d = lua_tonumber(L, idx);
    if (isnan(d) || isinf(d)) return WF_JSON_FAIL;
    WF_JSON_RESERVE(&e->buf, 32);
    e->buf.len += wf_json_fmt_number(e->buf.p + e->buf.len, d);
    return WF_JSON_OK;
  }
  case LUA_TBOOLEAN:
    if (lua_toboolean(L, idx)) wf_json_buf_add(&e->buf, "true", 4);
    else wf_json_buf_add(&e->buf, "false", 5);
    return WF_JSON_OK;
  case LUA_TTABLE:
    return wf_json_emit_table(e, idx, depth);
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) != NULL) return WF_JSON_FAIL;
    wf_json_buf_add(&e->buf, "null", 4);
    return WF_JSON_OK;
  default:
    return WF_JSON_FAIL;
  }
}

/* encode(value [, opts]) -> string; raises "path: what is wrong" (with the
 * caller's position) when value is not serialisable. opts: pretty,
 * sort_keys (default true), root (default "value"), invalid_utf8 ("error",
 * the default, or "replace": each byte that is not valid UTF-8 is written
 * as U+FFFD). */
static int wf_json_l_encode(lua_State *L) {
  wf_json_enc_t e;
  size_t rootlen = 5;
  const char *root = "value";

  lua_settop(L, 2);
  e.L = L;
  e.pretty = 0;
  e.sort_keys = 1;
  e.replace = 0;
  if (!lua_isnil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "pretty");
    e.pretty = lua_toboolean(L, -1);
    lua_getfield(L, 2, "sort_keys");
    if (!lua_isnil(L, -1)) e.sort_keys = lua_toboolean(L, -1);
    lua_getfield(L, 2, "invalid_utf8");
    if (!lua_isnil(L, -1)) {
      const char *m = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
      if (strcmp(m, "replace") == 0) e.replace = 1;
      else if (strcmp(m, "error") != 0)
        return luaL_argerror(L, 2, "opts.invalid_utf8 must be 'error' or 'replace'");
    }
    lua_pop(L, 3);
    lua_getfield(L, 2, "root"); /* slot 3, keeps the root name alive */
    if (!lua_isnil(L, 3)) {
      if (lua_type(L, 3) != LUA_TSTRING)
        return luaL_argerror(L, 2, "opts.root must be a string");
      root = lua_tolstring(L, 3, &rootlen);
    }
  } else {
    lua_pushnil(L);
  }
  lua_pushnil(L); /* slot 4: anchors the output buffer once it grows */
  e.array_mt = lua_topointer(L, WF_JSON_ARRAY_MT);
  e.object_mt = lua_topointer(L, WF_JSON_OBJECT_MT);
  wf_json_buf_init(&e.buf, L, 4);
  if (wf_json_emit_value(&e, 1, 0) == WF_JSON_OK) {
    lua_pushlstring(L, e.buf.p, e.buf.len);
    return 1;
  }
  lua_settop(L, 3);
  if (wf_json_check_run(L, 1, root, rootlen, !e.replace) != WF_JSON_FAIL)
    return luaL_error(L, "json.encode: internal error (encode failed, check passed)");
  luaL_where(L, 1); /* level 1: the Lua code that called encode */
  lua_insert(L, -2);
  lua_concat(L, 2);
  return lua_error(L);
}

/* ---- decode --------------------------------------------------------------- */

/* State of one decode: the input cursor and the first error. */
typedef struct {
  lua_State *L;
  const char *start, *p, *end;
  const char *err, *errpos;
  int depth, max_depth;
  long strings_left; /* strings (keys, string values) still allowed */
  long max_strings;  /* the limit, for the message (-1: none) */
  wf_json_buf_t buf; /* unescaped strings, long numbers */
} wf_json_dec_t;

/* The error of a container nested deeper than max_depth (the message gets
 * the limit when it is reported). */
static const char wf_json_too_deep[] = "nesting too deep";
/* The error of a document holding more than max_strings strings. */
static const char wf_json_too_many[] = "too many strings";

/* Record a parse error at pos; returns WF_JSON_FAIL. */
static int wf_json_dec_fail(wf_json_dec_t *d, const char *pos, const char *msg) {
  d->err = msg;
  d->errpos = pos;
  return WF_JSON_FAIL;
}

/* Skip JSON whitespace. */
static inline void wf_json_skip_ws(wf_json_dec_t *d) {
  const char *p = d->p, *end = d->end;
  while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
  d->p = p;
}

/* Value of a hex digit, or -1. */
static inline int wf_json_hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Read 4 hex digits at p (bounds checked by the caller); -1 if invalid. */
static long wf_json_hex4(const char *p) {
  long v = 0;
  int i;
  for (i = 0; i < 4; i++) {
    int h = wf_json_hex(p[i]);
    if (h < 0) return -1;
    v = v * 16 + h;
  }
  return v;
}

/* Decode the \u escape at d->p (pointing at the 'u'), surrogate pairs
 * included, appending UTF-8 to d->buf and advancing d->p past it. */
static int wf_json_dec_unicode(wf_json_dec_t *d) {
  const char *esc = d->p - 1; /* the backslash */
  unsigned long cp;
  char u[4];
  size_t n;
  long v;
  if (d->end - d->p < 5 || (v = wf_json_hex4(d->p + 1)) < 0)
    return wf_json_dec_fail(d, esc, "invalid \\u escape");
  d->p += 5;
  cp = (unsigned long)v;
  if (cp >= 0xDC00 && cp <= 0xDFFF)
    return wf_json_dec_fail(d, esc, "lone surrogate in \\u escape");
  if (cp >= 0xD800 && cp <= 0xDBFF) {
    long lo;
    if (d->end - d->p < 6 || d->p[0] != '\\' || d->p[1] != 'u' ||
        (lo = wf_json_hex4(d->p + 2)) < 0xDC00 || lo > 0xDFFF)
      return wf_json_dec_fail(d, esc, "lone surrogate in \\u escape");
    d->p += 6;
    cp = 0x10000 + ((cp - 0xD800) << 10) + ((unsigned long)lo - 0xDC00);
  }
  if (cp < 0x80) {
    u[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    u[0] = (char)(0xC0 | (cp >> 6));
    u[1] = (char)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    u[0] = (char)(0xE0 | (cp >> 12));
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    u[0] = (char)(0xF0 | (cp >> 18));
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[3] = (char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  wf_json_buf_add(&d->buf, u, n);
  return WF_JSON_OK;
}

/* Skip plain string bytes from p: printable ASCII other than '"' and '\\',
 * and valid UTF-8 sequences. Stops at a quote, a backslash, a control
 * byte, the end, or an invalid UTF-8 byte (then *bad is set). */
static const char *wf_json_scan_plain(const char *p, const char *end, int *bad) {
  *bad = 0;
  while (p < end) {
    const char *stop;
    if (end - p >= 8) {
      uint64_t w;
      memcpy(&w, p, 8);
      if (wf_json_plain8(w)) { p += 8; continue; }
      stop = p + 8; /* byte by byte to the end of this word (or just past) */
    } else {
      stop = end;
    }
    while (p < stop) {
      unsigned char c = (unsigned char)*p;
      size_t n;
      if (c == '"' || c == '\\' || c < 0x20) return p;
      if (c < 0x80) { p++; continue; }
      n = wf_utf8_len((const unsigned char *)p, (const unsigned char *)end);
      if (n == 0) {
        *bad = 1;
        return p;
      }
      p += n;
    }
  }
  return p;
}

/* Parse the string at d->p (its opening quote) and push it. Invalid UTF-8
 * is an error (what is decoded is also safe to encode again). */
static int wf_json_dec_string(wf_json_dec_t *d) {
  const char *quote = d->p, *s = d->p + 1, *p, *end = d->end;
  int bad;
  /* every string is interned by LuaJIT: a bound on their number bounds
   * what a hostile document can cost there (see json.decode) */
  if (d->strings_left == 0) return wf_json_dec_fail(d, quote, wf_json_too_many);
  d->strings_left--;
  p = wf_json_scan_plain(s, end, &bad);
  if (bad) return wf_json_dec_fail(d, p, "invalid UTF-8 in string");
  if (p < end && *p == '"') { /* no escapes: straight from the input */
    lua_pushlstring(d->L, s, (size_t)(p - s));
    d->p = p + 1;
    return WF_JSON_OK;
  }
  d->buf.len = 0;
  wf_json_buf_add(&d->buf, s, (size_t)(p - s));
  for (;;) {
    const char *run = p;
    p = wf_json_scan_plain(p, end, &bad);
    if (bad) return wf_json_dec_fail(d, p, "invalid UTF-8 in string");
    wf_json_buf_add(&d->buf, run, (size_t)(p - run));
    if (p == end) return wf_json_dec_fail(d, quote, "unterminated string");
    if (*p == '"') break;
    if (*p != '\\')
      return wf_json_dec_fail(d, p, "unescaped control character in string");
    if (++p == end) return wf_json_dec_fail(d, quote, "unterminated string");
    switch (*p) {
    case '"': case '\\': case '/': wf_json_buf_addc(&d->buf, *p); break;
    case 'b': wf_json_buf_addc(&d->buf, '\b'); break;
    case 'f': wf_json_buf_addc(&d->buf, '\f'); break;
    case 'n': wf_json_buf_addc(&d->buf, '\n'); break;
    case 'r': wf_json_buf_addc(&d->buf, '\r'); break;
    case 't': wf_json_buf_addc(&d->buf, '\t'); break;
    case 'u':
      d->p = p;
      if (wf_json_dec_unicode(d)) return WF_JSON_FAIL;
      p = d->p;
      continue;
    default:
      return wf_json_dec_fail(d, p - 1, "invalid escape");
    }
    p++;
  }
  lua_pushlstring(d->L, d->buf.p, d->buf.len);
  d->p = p + 1;
  return WF_JSON_OK;
}

#define WF_JSON_DIGIT(c) ((c) >= '0' && (c) <= '9')

/* Parse the number at d->p and push it: up to 15 integer digits exactly,
 * anything else through strtod. Out-of-range magnitudes are errors. */
static int wf_json_dec_number(wf_json_dec_t *d) {
  const char *s = d->p, *p = d->p, *end = d->end;
  int neg = 0, integral = 1;
  double v;
  if (*p == '-') { neg = 1; p++; }
  if (p == end || !WF_JSON_DIGIT(*p)) return wf_json_dec_fail(d, s, "invalid number");
  if (*p == '0') {
    p++;
    if (p < end && WF_JSON_DIGIT(*p))
      return wf_json_dec_fail(d, s, "invalid number (leading zero)");
  } else {
    while (p < end && WF_JSON_DIGIT(*p)) p++;
  }
  if (p < end && *p == '.') {
    integral = 0;
    if (++p == end || !WF_JSON_DIGIT(*p)) return wf_json_dec_fail(d, s, "invalid number");
    while (p < end && WF_JSON_DIGIT(*p)) p++;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    integral = 0;
    if (++p < end && (*p == '+' || *p == '-')) p++;
    if (p == end || !WF_JSON_DIGIT(*p)) return wf_json_dec_fail(d, s, "invalid number");
    while (p < end && WF_JSON_DIGIT(*p)) p++;
  }
  if (integral && p - s - neg <= 15) {
    const char *q;
    int64_t u = 0;
    for (q = s + neg; q < p; q++) u = u * 10 + (*q - '0');
    v = (double)u;
    if (neg) v = -v; /* "-0" gives -0.0 */
  } else {
    /* strtod needs a terminator right after the number (and must not read
     * past it, e.g. "0x1"), so copy it out. */
    size_t n = (size_t)(p - s);
    char tmp[64], *t = tmp;
    if (n >= sizeof tmp) {
      d->buf.len = 0;
      wf_json_buf_add(&d->buf, s, n);
      wf_json_buf_addc(&d->buf, '\0');
      t = d->buf.p;
    } else {
      memcpy(tmp, s, n);
      tmp[n] = '\0';
    }
    v = strtod(t, NULL);
    if (isinf(v)) return wf_json_dec_fail(d, s, "number out of range");
  }
  lua_pushnumber(d->L, v);
  d->p = p;
  return WF_JSON_OK;
}

static int wf_json_dec_value(wf_json_dec_t *d);

/* Parse the array at d->p and push it (with the array marker). */
static int wf_json_dec_array(wf_json_dec_t *d) {
  lua_State *L = d->L;
  int t, i;
  if (++d->depth > d->max_depth)
    return wf_json_dec_fail(d, d->p, wf_json_too_deep);
  luaL_checkstack(L, 6, "JSON nesting");
  d->p++;
  lua_newtable(L);
  lua_pushvalue(L, WF_JSON_ARRAY_MT);
  lua_setmetatable(L, -2);
  t = lua_gettop(L);
  wf_json_skip_ws(d);
  if (d->p < d->end && *d->p == ']') {
    d->p++;
    d->depth--;
    return WF_JSON_OK;
  }
  for (i = 1;; i++) {
    if (wf_json_dec_value(d)) return WF_JSON_FAIL;
    lua_rawseti(L, t, i);
    wf_json_skip_ws(d);
    if (d->p == d->end) return wf_json_dec_fail(d, d->p, "unexpected end of input");
    if (*d->p == ']') break;
    if (*d->p != ',') return wf_json_dec_fail(d, d->p, "expected ',' or ']'");
    d->p++;
  }
  d->p++;
  d->depth--;
  return WF_JSON_OK;
}

/* Parse the object at d->p and push it (a plain table). */
static int wf_json_dec_object(wf_json_dec_t *d) {
  lua_State *L = d->L;
  int t;
  if (++d->depth > d->max_depth)
    return wf_json_dec_fail(d, d->p, wf_json_too_deep);
  luaL_checkstack(L, 6, "JSON nesting");
  d->p++;
  lua_newtable(L);
  t = lua_gettop(L);
  wf_json_skip_ws(d);
  if (d->p < d->end && *d->p == '}') {
    d->p++;
    d->depth--;
    return WF_JSON_OK;
  }
  for (;;) {
    wf_json_skip_ws(d);
    if (d->p == d->end) return wf_json_dec_fail(d, d->p, "unexpected end of input");
    if (*d->p != '"') return wf_json_dec_fail(d, d->p, "expected string key");
    if (wf_json_dec_string(d)) return WF_JSON_FAIL;
    wf_json_skip_ws(d);
    if (d->p == d->end) return wf_json_dec_fail(d, d->p, "unexpected end of input");
    if (*d->p != ':') return wf_json_dec_fail(d, d->p, "expected ':'");
    d->p++;
    if (wf_json_dec_value(d)) return WF_JSON_FAIL;
    lua_rawset(L, t);
    wf_json_skip_ws(d);
    if (d->p == d->end) return wf_json_dec_fail(d, d->p, "unexpected end of input");
    if (*d->p == '}') break;
    if (*d->p != ',') return wf_json_dec_fail(d, d->p, "expected ',' or '}'");
    d->p++;
  }
  d->p++;
  d->depth--;
  return WF_JSON_OK;
}

/* Parse a literal (true/false/null) at d->p. */
static int wf_json_dec_literal(wf_json_dec_t *d, const char *word, size_t n) {
  if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0)
    return wf_json_dec_fail(d, d->p, "expected value");
  d->p += n;
  return WF_JSON_OK;
}

/* Parse any value at d->p (after whitespace) and push it. */
static int wf_json_dec_value(wf_json_dec_t *d) {
  wf_json_skip_ws(d);
  if (d->p == d->end) return wf_json_dec_fail(d, d->p, "unexpected end of input");
  switch (*d->p) {
  case '{': return wf_json_dec_object(d);
  case '[': return wf_json_dec_array(d);
  case '"': return wf_json_dec_string(d);
  case 't':
    if (wf_json_dec_literal(d, "true", 4)) return WF_JSON_FAIL;
    lua_pushboolean(d->L, 1);
    return WF_JSON_OK;
  case 'f':
    if (wf_json_dec_literal(d, "false", 5)) return WF_JSON_FAIL;
    lua_pushboolean(d->L, 0);
    return WF_JSON_OK;
  case 'n':
    if (wf_json_dec_literal(d, "null", 4)) return WF_JSON_FAIL;
    lua_pushlightuserdata(d->L, NULL);
    return WF_JSON_OK;
  case '-': case '0': case '1': case '2': case '3': case '4':
  case '5': case '6': case '7': case '8': case '9':
    return wf_json_dec_number(d);
  default:
    return wf_json_dec_fail(d, d->p, "expected value");
  }
}

/* decode(s [, opts]) -> value | nil, "invalid JSON at line L column C:
 * what". opts.max_depth: nesting limit, 1..MAX_DEPTH (default MAX_DEPTH);
 * opts.max_strings: at most that many strings, keys included (default
 * none). */
static int wf_json_l_decode(lua_State *L) {
  wf_json_dec_t d;
  const char *q, *bol;
  size_t len;
  int line = 1, max_depth = WF_JSON_MAX_DEPTH;
  long max_strings = -1;

  luaL_checktype(L, 1, LUA_TSTRING);
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "max_depth");
    if (!lua_isnil(L, -1)) {
      lua_Number n = lua_tonumber(L, -1);
      if (lua_type(L, -1) != LUA_TNUMBER || n != floor(n) || n < 1 ||
          n > WF_JSON_MAX_DEPTH)
        return luaL_argerror(L, 2, "opts.max_depth must be an integer in 1.."
                             WF_JSON_STR(WF_JSON_MAX_DEPTH));
      max_depth = (int)n;
    }
    lua_getfield(L, 2, "max_strings");
    if (!lua_isnil(L, -1)) {
      lua_Number n = lua_tonumber(L, -1);
      if (lua_type(L, -1) != LUA_TNUMBER || n != floor(n) || n < 0 ||
          n > 2147483647.0)
        return luaL_argerror(L, 2, "opts.max_strings must be an integer >= 0");
      max_strings = (long)n;
    }
  }
  lua_settop(L, 1);
  lua_pushnil(L); /* slot 2: anchors the string buffer once it grows */
  d.L = L;
  d.start = d.p = lua_tolstring(L, 1, &len);
  d.end = d.start + len;
  d.depth = 0;
  d.max_depth = max_depth;
  d.max_strings = max_strings;
  d.strings_left = max_strings; /* -1: never reaches 0 (counts down from -1) */
  d.err = NULL;
  d.errpos = NULL;
  wf_json_buf_init(&d.buf, L, 2);
  if (len >= 3 && memcmp(d.p, "\xEF\xBB\xBF", 3) == 0) d.p += 3; /* BOM */
  if (wf_json_dec_value(&d) == WF_JSON_OK) {
    wf_json_skip_ws(&d);
    if (d.p == d.end) return 1;
    wf_json_dec_fail(&d, d.p, "unexpected data after the value");
  }
  for (q = bol = d.start; q < d.errpos; q++)
    if (*q == '\n') { line++; bol = q + 1; }
  lua_pushnil(L);
  if (d.err == wf_json_too_deep)
    lua_pushfstring(L, "invalid JSON at line %d column %d: %s (more than %d "
                    "levels)", line, (int)(d.errpos - bol) + 1, d.err,
                    d.max_depth);
  else if (d.err == wf_json_too_many)
    lua_pushfstring(L, "invalid JSON at line %d column %d: %s (more than %d, "
                    "keys included)", line, (int)(d.errpos - bol) + 1, d.err,
                    (int)d.max_strings);
  else
    lua_pushfstring(L, "invalid JSON at line %d column %d: %s", line,
                    (int)(d.errpos - bol) + 1, d.err);
  return 2;
}

/* ---- module --------------------------------------------------------------- */

/* Push the weft.core.json table (functions share the marker metatables). */
int wf_lua_open_json(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"encode", wf_json_l_encode},
    {"check", wf_json_l_check},
    {"decode", wf_json_l_decode},
    {"fix_utf8", wf_json_l_fix_utf8},
    {NULL, NULL},
  };
  const luaL_Reg *f;
  lua_createtable(L, 0, 8);            /* M */
  luaL_newmetatable(L, WF_JSON_ARRAY_NAME);  /* M amt */
  luaL_newmetatable(L, WF_JSON_OBJECT_NAME); /* M amt omt */
  for (f = fns; f->name; f++) {
    lua_pushvalue(L, -2);
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, f->func, 2);
    lua_setfield(L, -4, f->name);
  }
  lua_setfield(L, -3, "object_mt");
  lua_setfield(L, -2, "array_mt");
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  lua_pushinteger(L, WF_JSON_MAX_DEPTH);
  lua_setfield(L, -2, "MAX_DEPTH");
  return 1;
}

#ifdef WF_JSON_STANDALONE
/* Standalone test build: require "weft.core.json" straight from a .so. */
int luaopen_weft_core_json(lua_State *L);
int luaopen_weft_core_json(lua_State *L) { return wf_lua_open_json(L); }
#endif
