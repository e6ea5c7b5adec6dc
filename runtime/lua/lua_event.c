/* lua_event.c — event records (event.c) as Lua tables for
 * "weft.core.sched": the table given to subscribers and kept in a run's log
 * ({type, run_id, superstep, executor_id, ts, data}, with data shaped per
 * event type), and core.run_events. Depends on lua.h, event.h (through
 * sched.h), lua_rt.h, lua_sched_int.h. */
#include "lua_sched_int.h"

/* Push the Lua table of event ev of run lr on L. */
void wf_lua_event_push(lua_State *L, wf_lua_run_t *lr, const wf_event_t *ev) {
  wf_lua_rt_t *rt = lr->rt;
  const wf_graph_t *g = lr->lg->g;
  int i;
  lua_createtable(L, 0, 8);
  wf_lua_sched_set_str(L, "type", wf_event_type_name(ev->type));
  wf_lua_sched_set_str(L, "run_id", wf_run_id(lr->run));
  wf_lua_sched_set_int(L, "superstep", ev->superstep);
  if (ev->exec >= 0 && ev->exec < g->nexec)
    wf_lua_sched_set_str(L, "executor_id", g->execs[ev->exec].id);
  lua_pushnumber(L, ev->ts);
  lua_setfield(L, -2, "ts");
  switch (ev->type) {
  case WF_EV_WORKFLOW_STARTED:
    lua_createtable(L, 0, 1);
    wf_lua_sched_set_str(L, "workflow", g->name);
    break;
  case WF_EV_EXECUTOR_INVOKED:
  case WF_EV_EXECUTOR_COMPLETED:
    lua_createtable(L, 0, 1);
    wf_lua_sched_set_int(L, "attempt", ev->attempt);
    break;
  case WF_EV_EXECUTOR_FAILED:
    lua_createtable(L, 0, 6);
    wf_lua_sched_set_str(L, "error", ev->str);
    wf_lua_sched_set_str(L, "traceback", ev->str2);
    wf_lua_sched_set_int(L, "attempt", ev->attempt);
    wf_lua_sched_set_bool(L, "retrying", ev->flags & WF_EVF_RETRYING);
    wf_lua_sched_set_bool(L, "continued", ev->flags & WF_EVF_CONTINUED);
    wf_lua_sched_set_bool(L, "timed_out", ev->flags & WF_EVF_TIMEOUT);
    break;
  case WF_EV_LOG:
    lua_createtable(L, 0, 2);
    wf_lua_sched_set_str(L, "level", ev->str2);
    wf_lua_sched_set_str(L, "message", ev->str);
    break;
  case WF_EV_STATE_CONFLICT:
    lua_createtable(L, 0, 2);
    wf_lua_sched_set_str(L, "key", ev->str);
    lua_createtable(L, ev->nints, 0);
    for (i = 0; i < ev->nints; i++) {
      int x = ev->ints[i];
      lua_pushstring(L, (x >= 0 && x < g->nexec) ? g->execs[x].id : "?");
      lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "writers");
    break;
  case WF_EV_WORKFLOW_FAILED:
    lua_createtable(L, 0, 1);
    wf_lua_sched_set_str(L, "error", ev->str);
    break;
  case WF_EV_MESSAGE_UNDELIVERED: { /* exec = the sender, ints = the refusing
                                     edges, str2 = the target of a targeted
                                     send, data = the message */
      char label[256];
      lua_createtable(L, 0, 4);
      wf_lua_sched_set_str(L, "from", g->execs[ev->exec].id);
      if (ev->str2) wf_lua_sched_set_str(L, "target", ev->str2);
      lua_createtable(L, ev->nints, 0); /* data.edges: labels */
      for (i = 0; i < ev->nints; i++) {
        lua_pushstring(L, wf_graph_edge_label(g, ev->ints[i], label,
                                              sizeof label));
        lua_rawseti(L, -2, i + 1);
      }
      lua_setfield(L, -2, "edges");
      wf_lua_val_push(rt, L, ev->data);
      lua_setfield(L, -2, "message");
      break;
    }
  case WF_EV_CUSTOM:
  case WF_EV_AGENT_UPDATE:
  case WF_EV_REQUEST_INFO:
    wf_lua_sched_set_str(L, "name", ev->str);
    wf_lua_val_push(rt, L, ev->data);
    break;
  default:
    wf_lua_val_push(rt, L, ev->data);
    break;
  }
  lua_setfield(L, -2, "data");
}

/* core.run_events(run) -> list of event tables (from the kept log) */
static int l_run_events(lua_State *L) {
  wf_lua_run_t *lr = wf_lua_run_check(L, 1);
  size_t n, i;
  const wf_event_t *ev = wf_run_events(lr->run, &n);
  lua_createtable(L, (int)n, 0);
  for (i = 0; i < n; i++) {
    wf_lua_event_push(L, lr, &ev[i]);
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}

static const luaL_Reg event_fns[] = {{"run_events", l_run_events},
                                     {NULL, NULL}};

/* Add core.run_events to the module table at the top of L. */
void wf_lua_event_open(lua_State *L) { luaL_register(L, NULL, event_fns); }
