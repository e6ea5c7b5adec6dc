/* examples/embed/host.c — a C program embedding weft through weft.h: loads
 * a workflow script (default examples/hello.lua), prints every event as a
 * JSON line, starts one run with a JSON input, runs the loop until the run
 * ends and prints its result.
 *
 *   build/embed_host [script.lua] ['"json input"']
 *
 * The Lua tree is found through $WEFT_PATH or the source directory this
 * program was built from. Exit status 0 when the run completed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft.h"

#ifndef WEFT_SOURCE_DIR
#define WEFT_SOURCE_DIR "."
#endif

/* Subscriber: one event per line. */
static void on_event(void *ud, const char *event_json) {
  int *n = ud;
  (*n)++;
  printf("event %s\n", event_json);
}

int main(int argc, char **argv) {
  const char *script = argc > 1 ? argv[1] : WEFT_SOURCE_DIR "/examples/hello.lua";
  const char *input = argc > 2 ? argv[2] : "\"hi\"";
  char err[1024], run_id[128];
  int nevents = 0, code = 1;
  const char *res;

  /* root NULL makes weft look at $WEFT_PATH */
  const char *env = getenv("WEFT_PATH");
  weft_opts_t opts = {env && *env ? NULL : WEFT_SOURCE_DIR, NULL};
  weft_t *w = weft_new(&opts);
  if (!w) {
    fprintf(stderr, "embed_host: cannot create weft\n");
    return 1;
  }
  if (weft_load(w, script, err, sizeof err) != 0) {
    fprintf(stderr, "embed_host: %s\n", err);
    goto out;
  }
  weft_subscribe(w, on_event, &nevents);
  if (weft_start(w, input, run_id, sizeof run_id, err, sizeof err) != 0) {
    fprintf(stderr, "embed_host: %s\n", err);
    goto out;
  }
  if (weft_run(w) != 0) {
    fprintf(stderr, "embed_host: %s\n", weft_error(w));
    goto out;
  }
  res = weft_result_json(w, run_id);
  printf("result %s\n", res ? res : "null");
  printf("events %d\n", nevents);
  code = res && strstr(res, "\"status\":\"completed\"") ? 0 : 1;
out:
  weft_free(w);
  return code;
}
