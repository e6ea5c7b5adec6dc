/* lua_gv.c — Lua binding of the Graphviz layout (gv.h), module
 * "weft.core.gv": render(dot_source[, format]) -> svg | nil, err, "error".
 * Synchronous: the calling coroutine and its loop wait for the layout (see
 * gv.h for its cost). The public API is weft.graphviz.svg(desc), which also
 * makes the SVG safe to inline. Depends on lua.h, lua_rt.h, gv.h. */
#include <string.h>

#include <lauxlib.h>

#include "gv.h"
#include "lua_core.h"
#include "lua_rt.h"

/* The output in flight between wf_gv_render and its Lua string. */
typedef struct lg_out {
  char *p;
  size_t n;
} lg_out_t;

/* Protected push of the output (lightuserdata lg_out_t at 1): a Lua error
 * (out of memory) must not lose the buffer, which the caller frees. */
static int lg_push(lua_State *L) {
  lg_out_t *o = lua_touserdata(L, 1);
  lua_pushlstring(L, o->p, o->n);
  return 1;
}

/* gv.render(dot_source[, format]) -> string | nil, err, "error".
 * Lays out dot_source (a Graphviz dot digraph) with the dot engine and
 * renders it as SVG (format "svg", the default and only one). Graphviz's
 * syntax and layout errors, a source over WF_GV_MAX_SOURCE bytes and a graph
 * over WF_GV_MAX_NODES/WF_GV_MAX_EDGES are returned; a format other than
 * "svg" raises. */
static int l_render(lua_State *L) {
  size_t len;
  const char *src = luaL_checklstring(L, 1, &len);
  const char *fmt = luaL_optstring(L, 2, "svg");
  lg_out_t o = {NULL, 0};
  wf_err_t err;
  int st;
  luaL_argcheck(L, strcmp(fmt, "svg") == 0, 2, "format must be \"svg\"");
  /* stack: src, fmt, lg_push, &o — pushed before the buffer exists */
  lua_pushcfunction(L, lg_push);
  lua_pushlightuserdata(L, &o);
  if (wf_gv_render(src, len, fmt, &o.p, &o.n, &err) != WF_OK)
    return wf_lua_fail(L, err.msg, "error");
  st = lua_pcall(L, 1, 1, 0);
  wf_gv_free(o.p);
  if (st != 0) return lua_error(L);
  return 1;
}

int wf_lua_open_gv(lua_State *L) {
  static const luaL_Reg fns[] = {{"render", l_render}, {NULL, NULL}};
  lua_newtable(L);
  luaL_register(L, NULL, fns);
  lua_pushinteger(L, WF_GV_MAX_SOURCE);
  lua_setfield(L, -2, "MAX_SOURCE");
  lua_pushinteger(L, WF_GV_MAX_NODES);
  lua_setfield(L, -2, "MAX_NODES");
  lua_pushinteger(L, WF_GV_MAX_EDGES);
  lua_setfield(L, -2, "MAX_EDGES");
  return 1;
}
