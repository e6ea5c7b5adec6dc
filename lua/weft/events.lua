-- weft.events — the delivery of a run's events to its on_event subscriber.
-- The scheduler hands the events over in batches (before an executor's
-- code starts, after a live event, and when the run goes back to the
-- loop): one call from C per batch into the dispatcher made here, which
-- reads the compact C records (wf_event_t, runtime/core/event.h) through
-- the FFI and builds the common event tables in compiled Lua; an event
-- with data or strings is built in C (event_table). The tables are the
-- same either way: {type, run_id, superstep, executor_id, ts, data}.
-- Loaded by the runtime (lua_event.c) at the first run given an on_event
-- subscriber; not called by users. Uses ffi.
local ffi = require "ffi"

local cast = ffi.cast
local error, format, ipairs, assert = error, string.format, ipairs, assert

ffi.cdef [[
typedef struct weft_event_record {
  uint8_t type;
  uint8_t flags;
  int32_t exec;
  uint32_t superstep;
  uint32_t attempt;
  uint32_t data;
  int32_t nints;
  char *str;
  char *str2;
  int32_t *ints;
  double ts;
} weft_event_record;
]]
local records_t = ffi.typeof("const weft_event_record *")

-- Check the declaration above against the C layout (layout: sizes and
-- offsets from lua_event.c); a mismatch is a build error, said at once.
local function check_layout(layout)
  local size = ffi.sizeof("weft_event_record")
  if size ~= layout.size then
    error(format("weft.events: wf_event_t is %d bytes, the FFI declaration %d", layout.size, size), 0)
  end
  for _, f in ipairs { "type", "flags", "exec", "superstep", "attempt", "data", "nints", "str", "str2",
                       "ints", "ts" } do
    local off = ffi.offsetof("weft_event_record", f)
    if off ~= layout[f] then
      error(format("weft.events: wf_event_t.%s is at %d, the FFI declaration at %d", f, layout[f], off), 0)
    end
  end
end

--- Make the dispatcher: layout (from C: offsets, type names, where the
--- executor ids start in a graph's string table, the record buffers of the
--- nesting levels) and event_table(i) (the C-built table of event i of
--- the batch); returns dispatch.
return function(layout, event_table)
  check_layout(layout)
  local types, xbase = layout.types, layout.exec_base
  local buffers = {} -- level -> pointer to its records, made once
  for level = 1, #layout.buffers do buffers[level] = cast(records_t, layout.buffers[level]) end
  local INVOKED, COMPLETED
  -- types whose table has no data when the record holds none
  local plain = {}
  for i = 0, #types do
    local t = types[i]
    if t == "executor_invoked" then INVOKED = i
    elseif t == "executor_completed" then COMPLETED = i
    elseif t == "superstep_started" or t == "superstep_completed" or t == "workflow_completed"
      or t == "workflow_idle" or t == "workflow_cancelled" or t == "checkpoint_saved" then
      plain[i] = true
    end
  end
  assert(INVOKED and COMPLETED, "weft.events: event types without executor_invoked/completed")

  -- Call sub with the tables of the n records in the buffer of level (or,
  -- level 0, at p, a light userdata): strs is the graph's string table
  -- (executor ids from xbase), run_id the run's id. A subscriber's error
  -- goes up to C, which removes it.
  local function dispatch(sub, level, n, strs, run_id, p)
    local e = buffers[level] or cast(records_t, p)
    for i = 0, n - 1 do
      local r = e[i]
      local ty = r.type
      local ev
      if ty == INVOKED or ty == COMPLETED then
        ev = { type = types[ty], run_id = run_id, superstep = r.superstep,
               executor_id = strs[xbase + r.exec], ts = r.ts, data = { attempt = r.attempt } }
      elseif plain[ty] and r.data == 0 and r.exec < 0 then
        ev = { type = types[ty], run_id = run_id, superstep = r.superstep, ts = r.ts }
      else
        ev = event_table(i)
      end
      sub(ev)
    end
  end
  return dispatch
end
