/* lua_core.h — entry points of the Lua binding: registration of the C
 * modules into package.preload. Used by main.c (the weft executable) and by
 * lua_module.c (weft/core.so for a plain luajit). */
#ifndef WF_LUA_CORE_H
#define WF_LUA_CORE_H

#include <lua.h>

/* Register package.preload["weft.core"] and ["weft.core.<mod>"] for every
 * binding module (json, loop, sched, http, proc, store, tcp, server, …).
 * Returns 0. */
int wf_lua_preload(lua_State *L);
/* Prepend root's lua/ and stdlib/ (both ?.lua and ?/init.lua) to
 * package.path; used by the executable and the C embedding API. */
void wf_lua_set_path(lua_State *L, const char *root);
/* The weft.core table (what require "weft.core" returns): pushes it. */
int wf_lua_open_core(lua_State *L);
/* Per-module openers, each pushing its module table. */
int wf_lua_open_json(lua_State *L);
int wf_lua_open_loop(lua_State *L);
int wf_lua_open_sched(lua_State *L);
int wf_lua_open_http(lua_State *L);
int wf_lua_open_tcp(lua_State *L);
int wf_lua_open_proc(lua_State *L);
int wf_lua_open_store(lua_State *L);
int wf_lua_open_server(lua_State *L);
int wf_lua_open_watchdog(lua_State *L);
int wf_lua_open_child(lua_State *L);
int wf_lua_open_gv(lua_State *L);
int wf_lua_open_notify(lua_State *L);

struct wf_netpolicy;
/* lua_http.c, which owns the type: the network policy object at idx of L
 * (weft.core.http's policy()), NULL for nil; raises on another value. Also
 * used by lua_tcp.c (connect). */
struct wf_netpolicy *wf_lua_http_policy(lua_State *L, int idx);

#endif
