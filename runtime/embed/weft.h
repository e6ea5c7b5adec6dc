/* weft.h — the embedding API for C hosts: load a workflow script, start
 * runs with JSON input, receive their events as JSON lines and read their
 * results, driving weft's event loop yourself (weft_step) or to completion
 * (weft_run). One weft_t owns one LuaJIT state; it is not thread-safe.
 * Link with libweft, LuaJIT, libev (see docs/embedding.md). */
#ifndef WEFT_H
#define WEFT_H

#include <stddef.h>

struct ev_loop;

typedef struct weft weft_t;

typedef struct weft_opts {
  /* directory holding lua/ and stdlib/; NULL: $WEFT_PATH, else LUA_PATH as
   * it is */
  const char *root;
  /* an existing libev loop to attach to; NULL: ev_default_loop(0) */
  struct ev_loop *loop;
} weft_opts_t;

/* Event subscriber: event_json is one JSON object (no newline), valid only
 * during the call. Called from inside weft_step/weft_run; it may call
 * weft_result_json but no other weft_* function of the same weft_t. */
typedef void (*weft_event_fn)(void *ud, const char *event_json);

/* A new embedded weft (opts may be NULL). NULL when out of memory. */
weft_t *weft_new(const weft_opts_t *opts);
/* Close the Lua state (unfinished runs are dropped) and free w; the
 * attached libev loop is left alone. NULL is a no-op. */
void weft_free(weft_t *w);
/* Run the script at script_path; it must return a workflow (or builder),
 * which becomes the one weft_start runs. 0, or -1 with the message
 * (file:line where known) in err. */
int weft_load(weft_t *w, const char *script_path, char *err, size_t errlen);
/* Start a run of the loaded workflow; json_input NULL means no input. Puts
 * the run id in run_id_out (size n). 0, or -1 with err. The run makes
 * progress in weft_step / weft_run. */
int weft_start(weft_t *w, const char *json_input, char *run_id_out, size_t n,
               char *err, size_t errlen);
/* Receive every event of runs started afterwards (cb NULL: stop). */
void weft_subscribe(weft_t *w, weft_event_fn cb, void *ud);
/* Run the loop until no run is running (each completed, failed, was
 * cancelled or is idle waiting for input). 0, or -1 (weft_error). */
int weft_run(weft_t *w);
/* One loop iteration; block: wait for an event when nothing is ready.
 * 1 while some run is still running, 0 when none is, -1 on error. */
int weft_step(weft_t *w, int block);
/* The result of a finished run as JSON {run_id, status, outputs, error,
 * supersteps, state}, or NULL (unknown or still running). Valid until the
 * next weft_result_json call or weft_free. */
const char *weft_result_json(weft_t *w, const char *run_id);
/* The libev loop weft runs on (to add the host's own watchers). */
struct ev_loop *weft_loop(weft_t *w);
/* The message of the last failed call ("" if none). */
const char *weft_error(weft_t *w);

#endif
