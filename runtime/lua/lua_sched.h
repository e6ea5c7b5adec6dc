/* lua_sched.h — the binding of the scheduler: graphs and runs as Lua
 * userdata, the host hooks that run executors in tasks and call conditions,
 * selectors and reducers, and the primitives behind ctx. Depends on
 * lua_rt.h and sched.h. */
#ifndef WF_LUA_SCHED_H
#define WF_LUA_SCHED_H

#include "lua_rt.h"

/* The scheduler of rt with the binding's hooks. */
wf_sched_t *wf_lua_sched_new(wf_lua_rt_t *rt);
/* Free every run and graph still alive (the Lua state is closing). */
void wf_lua_sched_close(wf_lua_rt_t *rt);
/* The DONE sentinel the worker body yields when an invocation ends. */
void *wf_lua_done_sentinel(void);

#endif
