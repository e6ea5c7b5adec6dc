/* lua_rt.h — the binding's per-lua_State runtime (one event loop, value
 * table, scheduler and task pool per Lua state) and tasks: pooled
 * coroutines that run executor invocations and yield inside weft primitives.
 * Only runtime/lua_*.c include this. Depends on lua.h, loop.h, sched.h. */
#ifndef WF_LUA_RT_H
#define WF_LUA_RT_H

#include <lauxlib.h>
#include <lua.h>

#include "loop.h"
#include "sched.h"
#include "val.h"

typedef struct wf_lua_rt wf_lua_rt_t;
typedef struct wf_task wf_task_t;

/* What a task does when its coroutine finishes an invocation (yields DONE)
 * or dies: ok, and on failure a message and a traceback (may be NULL). */
typedef void (*wf_task_done_fn)(wf_task_t *t, int ok, const char *msg,
                                const char *tb);

struct wf_task {
  wf_lua_rt_t *rt;
  lua_State *co;    /* the coroutine */
  int co_ref;       /* registry ref anchoring co */
  wf_defer_t defer; /* resume queue node */
  int nret;         /* values pushed on co for the next resume */
  int waiting;      /* suspended inside a weft primitive */
  int aborted;      /* abort requested while running: discard on return */
  int oneshot;      /* a weft.go task: freed, not pooled, when it ends */
  /* what the task waits on, and how to cancel it (abort/timeout) */
  void (*cancel)(wf_task_t *t);
  void *wait;
  ev_timer timer;   /* used by sleep-like primitives */
  /* owner: a scheduler invocation, or a plain Lua waiter */
  wf_task_done_fn done;
  wf_run_t *run;
  uint32_t seq;
  wf_task_t *next;  /* pool / wait lists */
  wf_task_t *sprev, *snext; /* live one-shot tasks (freed at close) */
};

struct wf_lua_rt {
  lua_State *aux;  /* helper thread for C-initiated calls; never resumed */
  int aux_ref;
  wf_loop_t *loop;
  int own_loop;
  wf_vals_t *vals;
  int vals_ref;    /* registry ref: the value table, vals[h] = value */
  wf_sched_t *sched;
  wf_task_t *pool; /* idle tasks, each suspended at the DONE yield */
  int npool;
  wf_task_t *current; /* task being resumed, NULL on the main thread */
  int worker_ref;     /* the Lua worker body (set by weft.run module) */
  int callback_depth; /* >0 while C calls into Lua from the loop */
  wf_task_t *spawned;          /* live one-shot (weft.go) tasks */
  struct wf_lua_run *runs;     /* live runs (lua_sched.c) */
  struct wf_lua_graph *graphs; /* live graphs (lua_sched.c) */
  int closing;
  int nrefs; /* registry refs taken through wf_lua_ref, for leak checks */
};

/* Take a registry ref to the value on top of L's stack (popped); counted. */
int wf_lua_ref(wf_lua_rt_t *rt, lua_State *L);
/* Release a ref taken by wf_lua_ref (LUA_NOREF is a no-op); counted. */
void wf_lua_unref(wf_lua_rt_t *rt, int ref);

/* The runtime of L's Lua state (created on first use). */
wf_lua_rt_t *wf_lua_rt(lua_State *L);
/* Create the runtime of L's state on the host's libev loop evl, before
 * anything used it; NULL if it already exists on another loop. */
wf_lua_rt_t *wf_lua_rt_attach(lua_State *L, struct ev_loop *evl);

/* Values: store the value at idx of L under a fresh handle (count 1). */
wf_val_t wf_lua_val_put(wf_lua_rt_t *rt, lua_State *L, int idx);
/* Push the value of handle h (nil for 0) on L. */
void wf_lua_val_push(wf_lua_rt_t *rt, lua_State *L, wf_val_t h);

/* Tasks. Get a task whose coroutine will run the worker body. */
wf_task_t *wf_task_get(wf_lua_rt_t *rt);
/* A one-shot task running the function at the top of L's stack below its
 * nargs arguments (all popped); started from the loop, never inside this
 * call. NULL on allocation failure. */
wf_task_t *wf_task_spawn(wf_lua_rt_t *rt, lua_State *L, int nargs);
/* Resume t with the nret values already pushed on t->co (one resume point
 * for every entry into Lua from the loop; handles DONE, errors, aborts). */
void wf_task_resume(wf_task_t *t);
/* Queue t to be resumed from the loop with nret values pushed on t->co. */
void wf_task_wake(wf_task_t *t, int nret);
/* Abort t: cancel what it waits on and drop its coroutine (not pooled). */
void wf_task_abort(wf_task_t *t);
/* The task whose coroutine is L, or NULL (main thread, foreign coroutine). */
wf_task_t *wf_task_of(wf_lua_rt_t *rt, lua_State *L);
/* Yield the calling task for a primitive (sets waiting). Use as
 * `return wf_task_yield(t, L);` — the last statement of a lua_CFunction. */
int wf_task_yield(wf_task_t *t, lua_State *L);
/* Raise unless L may block: inside a task it returns the task; on the main
 * thread outside loop callbacks it returns NULL (caller runs the loop);
 * anywhere else it raises naming fname. */
wf_task_t *wf_task_check_blocking(wf_lua_rt_t *rt, lua_State *L,
                                  const char *fname);

/* Run one loop iteration from a blocking call on the main thread. */
void wf_lua_rt_step(wf_lua_rt_t *rt);

#endif
