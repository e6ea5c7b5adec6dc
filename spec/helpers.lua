--- spec/helpers.lua — shared helpers for the weft busted specs.
--
-- Provides event queries (`types`, `filter`, `find`, `index`, `count`,
-- `trace`, `custom`), `example_cli` and `same_from_cli` (an example run by
-- the weft CLI), small executor factories (`recorder`, `forward`, `output`), a
-- concurrency `gauge`, the tool `add_tool`, `error_of` for pcall-style error capture,
-- `poll_until` to drive the loop until a condition holds, the repository
-- `root`, and the `assert.mentions(needle, text)` assertion (plain substring
-- match with a readable failure message). Uses only the public weft Lua API.
--
-- Load with `local h = require "helpers"` (LUA_PATH must contain
-- "<repo>/spec/?.lua", as spec/tests.cmake and the documented command do).

local weft = require "weft"
local say = require "say"
local luassert = require "luassert"

local ipairs, type, tostring, pcall, error = ipairs, type, tostring, pcall, error
local concat = table.concat

local M = {}

--- The keys of t, sorted.
function M.keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

--- Path of the repository root, with a trailing slash ("" when relative).
M.root = (debug.getinfo(1, "S").source:match("^@(.-)spec[/\\]helpers%.lua$")) or ""

-- assert.mentions(needle, text): text is a string containing needle.
local function mentions(_, args)
  local needle, text = args[1], args[2]
  return type(text) == "string" and text:find(needle, 1, true) ~= nil
end
say:set("assertion.mentions.positive",
        "Expected the text to mention:\n%s\nText:\n%s")
say:set("assertion.mentions.negative",
        "Expected the text not to mention:\n%s\nText:\n%s")
luassert:register("assertion", "mentions", mentions,
                  "assertion.mentions.positive", "assertion.mentions.negative")

--- The list of event types, in order.
function M.types(events)
  local out = {}
  for i, ev in ipairs(events or {}) do out[i] = ev.type end
  return out
end

--- Events of this type (and executor id, when given), in order.
function M.filter(events, etype, executor_id)
  local out = {}
  for _, ev in ipairs(events or {}) do
    if ev.type == etype and (executor_id == nil or ev.executor_id == executor_id) then
      out[#out + 1] = ev
    end
  end
  return out
end

--- The first event of this type (and executor id, when given), or nil.
function M.find(events, etype, executor_id)
  return M.filter(events, etype, executor_id)[1]
end

--- Index of the first matching event in the list, or nil.
function M.index(events, etype, executor_id)
  for i, ev in ipairs(events or {}) do
    if ev.type == etype and (executor_id == nil or ev.executor_id == executor_id) then
      return i
    end
  end
end

--- Number of matching events.
function M.count(events, etype, executor_id)
  return #M.filter(events, etype, executor_id)
end

--- One line per event: "type [executor_id] [name] @superstep" (workflow-level
-- events are just their type). Comparable across runs (no ids, no times).
function M.trace(events)
  local out = {}
  for _, ev in ipairs(events or {}) do
    local t = ev.type
    if t:match("^workflow_") then
      out[#out + 1] = t
    else
      local parts = { t }
      if ev.executor_id ~= nil then parts[#parts + 1] = tostring(ev.executor_id) end
      if ev.name ~= nil then parts[#parts + 1] = tostring(ev.name) end
      parts[#parts + 1] = "@" .. tostring(ev.superstep)
      out[#out + 1] = concat(parts, " ")
    end
  end
  return out
end

--- An executor that records every message it receives, then calls fn (if
-- any). Returns the executor, the list of received messages and the list
-- of ctx.superstep of each call.
function M.recorder(id, fn)
  local seen, supersteps = {}, {}
  local ex = weft.executor(id, function(msg, ctx)
    seen[#seen + 1] = msg
    supersteps[#supersteps + 1] = ctx.superstep
    if fn then fn(msg, ctx) end
  end)
  return ex, seen, supersteps
end

--- Executors with these ids whose handler does nothing, in argument order.
function M.idle(...)
  local out = {}
  for i, id in ipairs({ ... }) do out[i] = weft.executor(id, function() end) end
  return unpack(out, 1, select("#", ...))
end

--- An executor that sends what it receives.
function M.forward(id)
  return weft.executor(id, function(msg, ctx) ctx:send(msg) end)
end

--- An executor that yields what it receives as an output.
function M.output(id)
  return weft.executor(id, function(msg, ctx) ctx:yield_output(msg) end)
end

--- A concurrency gauge: g.enter() / g.leave() around a yielding call; g.peak
-- is the highest number of callers inside at once.
function M.gauge()
  local g = { now = 0, peak = 0 }
  function g.enter()
    g.now = g.now + 1
    if g.now > g.peak then g.peak = g.now end
  end
  function g.leave() g.now = g.now - 1 end
  return g
end

--- The error raised by fn(...) as a string, or nil when it does not raise.
function M.error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then return nil end
  return tostring(err)
end

--- Run ready work (weft.poll, never blocking) until cond() is true; fails
-- after `limit` polls (default 10000) instead of hanging. Meant for states
-- reached by ready work alone (a spawned run starting its invocations).
function M.poll_until(cond, limit)
  limit = limit or 10000
  for _ = 1, limit do
    if cond() then return end
    weft.poll()
  end
  if not cond() then error("condition not reached after " .. limit .. " polls", 2) end
end

--- Executor ids of a run's executor_invoked events, in order; only those of `superstep` if given.
function M.invoked(events, superstep)
  local out = {}
  for _, ev in ipairs(M.filter(events, "executor_invoked")) do
    if superstep == nil or ev.superstep == superstep then out[#out + 1] = ev.executor_id end
  end
  return out
end

--- Register mock model `name` answering reply (a string, or fn(messages, n)
-- where n counts its calls) and recording each call's messages; returns
-- the list of calls.
function M.scripted(name, reply)
  local calls = {}
  require("weft.llm").mock.register(name, { {
    reply = function(messages)
      calls[#calls + 1] = messages
      if type(reply) == "function" then return reply(messages, #calls) end
      return reply
    end,
  } })
  return calls
end

--- The tool "add" (two numbers a, b; both required), handled by handler
-- or by returning their sum.
function M.add_tool(handler)
  return weft.tool {
    name = "add", description = "Add two numbers",
    parameters = { type = "object", properties = { a = { type = "number" }, b = { type = "number" } },
                   required = { "a", "b" } },
    handler = handler or function(args) return args.a + args.b end,
  }
end

--- The data of the custom events named name, in order.
function M.custom(events, name)
  local out = {}
  for _, ev in ipairs(events) do
    if ev.type == "custom" and ev.name == name then out[#out + 1] = ev.data end
  end
  return out
end

--- Run `weft run <root>/<path> [args...]` (WEFT_BIN, set by ctest): its
-- output lines decoded as JSON, whether it exited 0, and its raw output;
-- nil when WEFT_BIN is unset.
function M.example_cli(path, ...)
  local bin = os.getenv("WEFT_BIN")
  if not bin then return nil end
  local cmd = { ("%q run %q"):format(bin, M.root .. path) }
  for _, a in ipairs({ ... }) do cmd[#cmd + 1] = ("%q"):format(a) end
  local p = assert(io.popen(concat(cmd, " ") .. " 2>&1"))
  local out = p:read("*a")
  local ok, _, code = p:close()
  local lines = {}
  for line in out:gmatch("[^\n]+") do
    local v = weft.json.decode(line)
    assert(v ~= nil, "not a JSON line: " .. line)
    lines[#lines + 1] = v
  end
  return lines, (ok == true or code == 0), out
end

--- The example at path must give the output `expected` (its one line)
-- from the CLI too; pending outside ctest (WEFT_BIN unset).
function M.same_from_cli(path, expected, ...)
  local lines, ok, raw = M.example_cli(path, ...)
  if lines == nil then return pending("WEFT_BIN is not set (ctest sets it)") end
  luassert.is_true(ok, raw)
  luassert.same({ expected }, lines)
end

return M
