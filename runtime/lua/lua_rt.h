/* lua_rt.h — the binding's per-lua_State runtime (one event loop, value
 * table, scheduler and task pool per Lua state, ordered close hooks) and
 * tasks: pooled coroutines that run executor invocations and yield inside
 * weft primitives, with the one wait/resume protocol every yielding
 * primitive follows (see "The protocol" below and docs/internals.md).
 * Only the bindings (runtime/lua/lua_*.c) include this. Depends on lua.h, loop.h, sched.h. */
#ifndef WF_LUA_RT_H
#define WF_LUA_RT_H

#include <lauxlib.h>
#include <lua.h>

#include "loop.h"
#include "sched.h"
#include "val.h"

typedef struct wf_lua_rt wf_lua_rt_t;
typedef struct wf_task wf_task_t;
typedef struct wf_lua_hook wf_lua_hook_t;

/* Builds a primitive's results on L when its wait is over (OpenResty's
 * prepare_retvals): called by the resumer just before lua_resume (or, for
 * a main-thread waiter, before the primitive returns), never from an event
 * callback; returns the number of values pushed. It owns what t->wait
 * holds from then on (free it here). */
typedef int (*wf_task_prepare_fn)(wf_task_t *t, lua_State *L);

/* What a task does when its coroutine finishes an invocation (yields DONE)
 * or dies: ok, and on failure a message and a traceback (may be NULL) and
 * flags (WF_INV_NO_RETRY: the error table's no_retry was true). */
typedef void (*wf_task_done_fn)(wf_task_t *t, int ok, const char *msg,
                                const char *tb, unsigned flags);

/* A task: one per run in flight (issue 14), so its fields are packed
 * without holes (the flags are bytes): 200 bytes. */
struct wf_task {
  wf_lua_rt_t *rt;
  lua_State *co;    /* the coroutine */
  int co_ref;       /* registry ref anchoring co */
  int result;       /* the outcome an event handler records for prepare */
  wf_defer_t defer; /* resume queue node */
  int nret;         /* values pushed on co for the next resume */
  unsigned char waiting; /* suspended inside a weft primitive */
  unsigned char aborted; /* abort requested while running: discard on return */
  unsigned char oneshot; /* a weft.go task: freed, not pooled, when it ends */
  unsigned char main;    /* a main-thread waiter (wf_task_waiter), not a task */
  unsigned char woken;   /* main-thread waiter: its wait is over */
  uint32_t seq;          /* the owner invocation's (see run below) */
  /* the wait protocol: what the task waits on, how to cancel it (abort,
   * executor timeout, deadlock; called whether or not the wait is over,
   * it frees what wait holds) and how to build the results; all three
   * are cleared by the resumer */
  void *wait;
  void (*cancel)(wf_task_t *t);
  wf_task_prepare_fn prepare;
  const char *what; /* main-thread waiter: named after fname in a deadlock
                       error ("run ID"), so nothing is formatted per wait */
  ev_timer timer;   /* a wait's timeout (stopped by the resumer) */
  /* owner: a scheduler invocation, or a plain Lua waiter */
  wf_task_done_fn done;
  wf_run_t *run;    /* with seq above */
  /* the invocation's executor index, superstep, order and attempt (set
   * with run and seq: core.current still tells them after an abort) */
  uint32_t attempt;
  int exec, superstep, order;
  wf_task_t *next;  /* pool / wait lists */
  wf_task_t *sprev, *snext; /* a one-shot task's list: its owner's (kin)
                               or, owning none, the live ones (rt) */
  wf_task_t *kin;   /* a weft.go task: the invocation's task it works for
                       (stopped with it: wf_task_abort), or NULL; an
                       invocation's task: the first of those it owns */
};
/* 208 bytes on 64-bit with libev's 48-byte ev_timer (224 before it was
 * packed): a field that opens a hole fails the build here. */
_Static_assert(sizeof(void *) != 8 || sizeof(struct wf_task) <= 160 + sizeof(ev_timer),
               "wf_task_t (one per run in flight) grew: pack its fields");

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
  struct wf_lua_deliv *deliv;  /* delivery of events to subscribers
                                  (lua_event.c); NULL until the first
                                  subscribed run */
  int dispatch_ref;            /* weft.events' dispatcher, with deliv */
  wf_lua_hook_t *hooks;        /* close hooks, in order */
  int closing;
  int nrefs; /* registry refs taken through wf_lua_ref, for leak checks */
  struct wf_watchdog *watchdog; /* told which executor runs (lua_watchdog.c);
                                   NULL: none */
};

/* A close hook: fn runs once when the state closes, before the runs,
 * tasks, scheduler and loop are torn down; hooks run by ascending order
 * (ties: first registered first). Embed it in the owner's C state; fn may
 * free that state. */
struct wf_lua_hook {
  void (*fn)(wf_lua_rt_t *rt, wf_lua_hook_t *h);
  int order;
  wf_lua_hook_t *next;
};
/* Hook orders: I/O that tasks wait on goes first, so that a task
 * dropped later has nothing left running. */
enum { WF_HOOK_IO = 10 };

/* Register h to run when rt's state closes. */
void wf_lua_rt_on_close(wf_lua_rt_t *rt, wf_lua_hook_t *h);
/* The hook registered with function fn, or NULL. */
wf_lua_hook_t *wf_lua_rt_hook(wf_lua_rt_t *rt,
                              void (*fn)(wf_lua_rt_t *, wf_lua_hook_t *));

/* The one shape of an expected failure: push nil, msg and, unless code is
 * NULL, code (a short word: "error", "cancelled", "conflict", ...);
 * returns the number pushed (3, or 2 without a code). */
int wf_lua_fail(lua_State *L, const char *msg, const char *code);
/* Register the metatable `name` of a userdata type once: methods (NULL:
 * none) as its __index table, gc (NULL: none) as its __gc. Leaves the
 * stack as it was. */
void wf_lua_class(lua_State *L, const char *name, const luaL_Reg *methods,
                  lua_CFunction gc);

/* Take a registry ref to the value on top of L's stack (popped); counted
 * (nil gives LUA_REFNIL, not counted). */
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
 * call. owner (or NULL): the invocation's task it works for, which stops
 * it when the invocation is aborted or fails (see wf_task_owner). NULL on
 * allocation failure. */
wf_task_t *wf_task_spawn(wf_lua_rt_t *rt, lua_State *L, int nargs,
                         wf_task_t *owner);
/* The invocation's task that the task running L works for: its own when
 * it runs an invocation, its owner when it is a weft.go task of one, else
 * NULL (the main thread, a callback, a task of no invocation). */
wf_task_t *wf_task_owner(wf_lua_rt_t *rt, lua_State *L);
/* Resume t: stop its timeout, push the results (t->nret values already on
 * t->co, then those of t->prepare), clear the wait and lua_resume (the one
 * resume point for every entry into Lua from the loop; handles DONE,
 * errors, aborts). */
void wf_task_resume(wf_task_t *t);
/* The event handler's side of the protocol: t's wait is over (what for is
 * in t->wait / t->result); stop its timeout and queue t to be resumed
 * from the loop (a main-thread waiter is flagged instead). Pushes nothing, never runs Lua;
 * t->cancel stays set until the resume, so an abort in between still
 * frees the wait. */
void wf_task_ready(wf_task_t *t);
/* Abort t: cancel what it waits on and drop its coroutine (not pooled). */
void wf_task_abort(wf_task_t *t);
/* The task whose coroutine is L, or NULL (main thread, foreign coroutine). */
wf_task_t *wf_task_of(wf_lua_rt_t *rt, lua_State *L);
/* 1 when L runs a task whose invocation was aborted while it ran (its run
 * cancelled or failed from inside, as a budget does): the task is dropped
 * at its next yield, so a primitive starts no I/O for it (nobody would
 * police it nor wait for it) and no wait (none would end). The one check
 * every primitive makes before starting I/O; wf_task_suspend makes it too,
 * for the waits that start nothing outside. */
int wf_task_aborted(wf_lua_rt_t *rt, lua_State *L);
/* The refusal of primitive fname in an aborted task: pushes nil,
 * "<fname>: not started: the invocation was aborted", "cancelled";
 * returns 3. */
int wf_task_refuse(lua_State *L, const char *fname);
/* Raise unless L may block: inside a task it returns the task; on the main
 * thread outside loop callbacks it returns NULL (caller runs the loop);
 * anywhere else it raises naming fname. */
wf_task_t *wf_task_check_blocking(wf_lua_rt_t *rt, lua_State *L,
                                  const char *fname);

/* The protocol. A yielding primitive does every check first, then
 *   wf_task_t mw, *t = wf_task_waiter(rt, L, "name", &mw);
 *   ...start the I/O; t->wait = what; t->cancel = ...; t->prepare = ...;
 *   return wf_task_suspend(t, L, "name");
 * and its event handler records the outcome (t->result, its wait struct)
 * and calls wf_task_ready(t). The same code serves tasks (which yield) and
 * the main thread (which runs the loop until ready). */
/* The waiter for a blocking call from L: the calling task, or on the main
 * thread outside callbacks mw set up as a main-thread waiter; raises
 * anywhere else (wf_task_check_blocking). */
wf_task_t *wf_task_waiter(wf_lua_rt_t *rt, lua_State *L, const char *fname,
                          wf_task_t *mw);
/* Suspend the primitive's caller until wf_task_ready(t): a task yields (use
 * as the last statement: `return wf_task_suspend(t, L, name);`); the main
 * thread runs the loop (wf_lua_block), then returns t->prepare's results.
 * A task whose invocation was aborted (wf_task_aborted) does not wait: the
 * wait is cancelled and the refusal returned (wf_task_refuse).
 * When nothing is left that could end the wait, the wait is cancelled and
 * it raises "<fname>: nothing left to wait on (deadlock)". */
int wf_task_suspend(wf_task_t *t, lua_State *L, const char *fname);
/* Before wf_task_suspend: t waits on what (cancel: see wf_task) at the
 * head of the wait list *list (linked through next). */
void wf_task_enlist(wf_task_t *t, void *what, void (*cancel)(wf_task_t *),
                    wf_task_t **list);
/* Take t off the wait list *list (when in it) and clear t->next. */
void wf_task_delist(wf_task_t *t, wf_task_t **list);
/* A prepare function pushing t->result as a boolean. */
int wf_task_prepare_bool(wf_task_t *t, lua_State *L);
/* Start t's timeout: after `seconds` (counted from now), cb runs with
 * t->timer.data == t. */
void wf_task_timeout(wf_task_t *t, double seconds,
                     void (*cb)(struct ev_loop *, ev_timer *, int));

/* Block the main thread: run loop iterations until done(ud) is true.
 * WF_OK then, WF_ERR when the loop has nothing left that could make it
 * true (a deadlock: the caller cleans up and raises). The one main-thread
 * spin of the binding. */
int wf_lua_block(wf_lua_rt_t *rt, int (*done)(void *ud), void *ud);

#endif
