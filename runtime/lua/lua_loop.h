/* lua_loop.h — private to the binding files of package "weft.core.loop":
 * each adds its concept's functions to the module table on top of L's
 * stack. lua_loop.c builds the table; lua_sleep.c (sleep), lua_step.c
 * (step/poll and the host-loop fd/timeout), lua_go.c (weft.go tasks),
 * lua_cond.c (conditions), lua_signal.c (signal waits), lua_watch.c (file
 * watches). Depends on lua.h. */
#ifndef WF_LUA_LOOP_H
#define WF_LUA_LOOP_H

#include <lua.h>

/* sleep(seconds) */
void wf_lua_loop_sleep(lua_State *L);
/* step(), poll(), fd(), timeout([cap]) */
void wf_lua_loop_step(lua_State *L);
/* go(fn, ...), in_task() */
void wf_lua_loop_go(lua_State *L);
/* cond() and the cond metatable */
void wf_lua_loop_cond(lua_State *L);
/* signal_wait(signo) */
void wf_lua_loop_signal(lua_State *L);
/* watch_file(path[, interval[, timeout]]) */
void wf_lua_loop_watch(lua_State *L);

#endif
