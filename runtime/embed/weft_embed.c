/* weft_embed.c — the C embedding API (weft.h): one LuaJIT state per weft_t
 * with the weft modules preloaded and lua/ + stdlib/ on package.path (the
 * same setup as main.c, through wf_lua_set_path), driven through a small
 * Lua helper chunk (EMBED_LUA) that loads the script with weft.script (the
 * loader the CLI, weft.host and the server use), spawns runs, steps the
 * loop and encodes events and results as JSON. Every entry into
 * Lua is a lua_pcall; host callbacks run from a C function called by the
 * runs' on_event subscriber, after the event string is on the stack, so no
 * Lua error can unwind through host code. Depends on LuaJIT, lua_core.h,
 * lua_rt.h (to attach the runtime to a host libev loop). */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_core.h"
#include "lua_rt.h"
#include "weft.h"

struct weft {
  lua_State *L;
  int h_ref;       /* registry ref: the helper table */
  weft_event_fn cb;
  void *ud;
  int in_cb;       /* >0 while the subscriber runs */
  char *result;    /* last weft_result_json string */
  char err[1024];
};

/* The helper chunk: called with the emit C closure, returns the helper
 * table {load, start, step, result, subscribe}. */
static const char EMBED_LUA[] =
    "local emit = ...\n"
    "local weft = require 'weft'\n"
    "local json = weft.json\n"
    "local loop = require 'weft.core.loop'\n"
    "local script = require 'weft.script'\n"
    "local H, runs, wf, sub = {}, {}, nil, false\n"
    "local function encode_event(ev)\n"
    "  local ok, s = pcall(json.encode, ev)\n"
    "  if ok then return s end\n"
    "  local t = {}\n"
    "  for k, v in pairs(ev) do if k ~= 'data' then t[k] = v end end\n"
    "  t.data_error = tostring(s)\n"
    "  return json.encode(t)\n"
    "end\n"
    "function H.load(path)\n"
    "  local v, err = script.load(path)\n"
    "  if not v then error(err, 0) end\n"
    "  wf = v\n"
    "end\n"
    "function H.start(input_json)\n"
    "  if not wf then error('no workflow loaded (call weft_load first)', 0) end\n"
    "  local input\n"
    "  if input_json then\n"
    "    local v, e = json.decode(input_json)\n"
    "    if v == nil then error('input: ' .. tostring(e), 0) end\n"
    "    if v ~= json.null then input = v end\n"
    "  end\n"
    "  local ok, h = pcall(wf.spawn, wf, input, { on_event = function(ev)\n"
    "    if sub then emit(encode_event(ev)) end\n"
    "  end })\n"
    "  if not ok then error(tostring(h), 0) end\n"
    "  runs[h.id] = h\n"
    "  return h.id\n"
    "end\n"
    "function H.subscribe(on) sub = on end\n"
    "local function running()\n"
    "  for _, h in pairs(runs) do\n"
    "    local s = h:status()\n"
    "    if s == 'pending' or s == 'running' then return true end\n"
    "  end\n"
    "  return false\n"
    "end\n"
    "function H.step(block)\n"
    "  local active\n"
    "  if block then active = loop.step() else active = loop.poll() end\n"
    "  local r = running()\n"
    "  if r and block and not active then\n"
    "    error('runs are still running but weft has nothing left to wait on', 0)\n"
    "  end\n"
    "  return r\n"
    "end\n"
    "function H.result(id)\n"
    "  local h = runs[id]\n"
    "  if not h then return nil end\n"
    "  local r = h:result()\n"
    "  if not r then return nil end\n"
    "  local t = { run_id = id, status = r.status, error = r.error,\n"
    "    supersteps = r.supersteps, outputs = json.array(r.outputs or {}),\n"
    "    state = r.state }\n"
    "  local ok, s = pcall(json.encode, t)\n"
    "  if ok then return s end\n"
    "  t.state, t.state_error = nil, tostring(s)\n"
    "  ok, s = pcall(json.encode, t)\n"
    "  if ok then return s end\n"
    "  t.outputs, t.outputs_error = nil, tostring(s)\n"
    "  return json.encode(t)\n"
    "end\n"
    "return H\n";

/* Copy msg into err (size errlen) and into w's last error. */
static void embed_fail(weft_t *w, char *err, size_t errlen, const char *msg) {
  if (msg != w->err)
    snprintf(w->err, sizeof w->err, "%s", msg ? msg : "(unknown error)");
  if (err && errlen) snprintf(err, errlen, "%s", w->err);
}

/* The emit C closure: hand one event JSON string to the subscriber. The
 * string stays on the stack during the call; nothing here can raise. */
static int embed_emit(lua_State *L) {
  weft_t *w = lua_touserdata(L, lua_upvalueindex(1));
  const char *s = lua_tostring(L, 1);
  if (w->cb && s) {
    w->in_cb++;
    w->cb(w->ud, s);
    w->in_cb--;
  }
  return 0;
}


/* Protected setup (lua_cpcall): libraries, preload, path, and the runtime
 * attached to the host loop when one is given. ud: the options. */
static int embed_init(lua_State *L) {
  const weft_opts_t *o = lua_touserdata(L, 1);
  const char *root = o->root;
  luaL_openlibs(L);
  wf_lua_preload(L);
  if (!root || !*root) root = getenv("WEFT_PATH");
  if (root && *root) wf_lua_set_path(L, root);
  if (o->loop && !wf_lua_rt_attach(L, o->loop))
    return luaL_error(L, "weft_new: the runtime already runs on another loop");
  return 0;
}

/* Create the embedded weft (see weft.h). */
weft_t *weft_new(const weft_opts_t *opts) {
  weft_opts_t dflt = {NULL, NULL};
  weft_t *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->h_ref = LUA_NOREF;
  w->L = luaL_newstate();
  if (!w->L) goto err;
  if (lua_cpcall(w->L, embed_init, (void *)(opts ? opts : &dflt)) != 0)
    goto err;
  return w;
err:
  if (w->L) lua_close(w->L);
  free(w);
  return NULL;
}

/* Close the state and free w. */
void weft_free(weft_t *w) {
  if (!w) return;
  lua_close(w->L);
  free(w->result);
  free(w);
}

/* Push helper function name (loading the helper chunk on first use).
 * 0, or -1 with w->err set (stack unchanged). */
static int embed_fn(weft_t *w, const char *name) {
  lua_State *L = w->L;
  if (w->h_ref == LUA_NOREF) {
    if (luaL_loadbuffer(L, EMBED_LUA, sizeof EMBED_LUA - 1, "=weft_embed")) {
      embed_fail(w, NULL, 0, lua_tostring(L, -1));
      lua_pop(L, 1);
      return -1;
    }
    lua_pushlightuserdata(L, w);
    lua_pushcclosure(L, embed_emit, 1);
    if (lua_pcall(L, 1, 1, 0) != 0) {
      embed_fail(w, NULL, 0, lua_tostring(L, -1));
      lua_pop(L, 1);
      return -1;
    }
    w->h_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, w->h_ref);
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
  return 0;
}

/* pcall the helper function below its nargs arguments; 0 with nres results
 * on the stack, or -1 with the message in w->err and err (nothing left). */
static int embed_pcall(weft_t *w, int nargs, int nres, char *err,
                       size_t errlen) {
  if (lua_pcall(w->L, nargs, nres, 0) != 0) {
    embed_fail(w, err, errlen, lua_tostring(w->L, -1));
    lua_pop(w->L, 1);
    return -1;
  }
  return 0;
}

/* Refuse calls that would re-enter the loop from the subscriber. */
static int embed_reentered(weft_t *w, const char *fn, char *err,
                           size_t errlen) {
  char msg[128];
  if (!w->in_cb) return 0;
  snprintf(msg, sizeof msg, "%s: not allowed from an event callback", fn);
  embed_fail(w, err, errlen, msg);
  return 1;
}

/* Load the workflow script (see weft.h). */
int weft_load(weft_t *w, const char *script_path, char *err, size_t errlen) {
  if (!script_path) {
    embed_fail(w, err, errlen, "weft_load: script_path is NULL");
    return -1;
  }
  if (embed_reentered(w, "weft_load", err, errlen)) return -1;
  if (embed_fn(w, "load") != 0) {
    embed_fail(w, err, errlen, w->err);
    return -1;
  }
  lua_pushstring(w->L, script_path);
  return embed_pcall(w, 1, 0, err, errlen);
}

/* Start a run (see weft.h). */
int weft_start(weft_t *w, const char *json_input, char *run_id_out, size_t n,
               char *err, size_t errlen) {
  if (embed_reentered(w, "weft_start", err, errlen)) return -1;
  if (embed_fn(w, "start") != 0) {
    embed_fail(w, err, errlen, w->err);
    return -1;
  }
  if (json_input)
    lua_pushstring(w->L, json_input);
  else
    lua_pushnil(w->L);
  if (embed_pcall(w, 1, 1, err, errlen) != 0) return -1;
  const char *id = lua_tostring(w->L, -1);
  if (run_id_out && n) snprintf(run_id_out, n, "%s", id ? id : "");
  lua_pop(w->L, 1);
  return 0;
}

/* Set or clear the event subscriber (see weft.h). */
void weft_subscribe(weft_t *w, weft_event_fn cb, void *ud) {
  w->cb = cb;
  w->ud = ud;
  if (embed_fn(w, "subscribe") != 0) return;
  lua_pushboolean(w->L, cb != NULL);
  embed_pcall(w, 1, 0, NULL, 0);
}

/* One loop iteration (see weft.h). */
int weft_step(weft_t *w, int block) {
  int running;
  if (embed_reentered(w, "weft_step", NULL, 0)) return -1;
  if (embed_fn(w, "step") != 0) return -1;
  lua_pushboolean(w->L, block);
  if (embed_pcall(w, 1, 1, NULL, 0) != 0) return -1;
  running = lua_toboolean(w->L, -1);
  lua_pop(w->L, 1);
  return running ? 1 : 0;
}

/* Run until no run is running (see weft.h). */
int weft_run(weft_t *w) {
  int r;
  while ((r = weft_step(w, 1)) > 0) {
  }
  return r;
}

/* JSON result of a finished run (see weft.h). */
const char *weft_result_json(weft_t *w, const char *run_id) {
  const char *s;
  if (!run_id || embed_fn(w, "result") != 0) return NULL;
  lua_pushstring(w->L, run_id);
  if (embed_pcall(w, 1, 1, NULL, 0) != 0) return NULL;
  s = lua_tostring(w->L, -1);
  free(w->result);
  w->result = s ? strdup(s) : NULL;
  lua_pop(w->L, 1);
  return w->result;
}

/* The libev loop weft runs on. */
struct ev_loop *weft_loop(weft_t *w) {
  return wf_loop_ev(wf_lua_rt(w->L)->loop);
}

/* The last error message. */
const char *weft_error(weft_t *w) { return w->err; }
