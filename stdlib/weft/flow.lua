--- weft.flow — PocketFlow-style nodes and flows on top of weft.
--
-- A node does one step in three phases: `prep(shared)` reads what it needs
-- from the shared table, `exec(prep_res, attempt)` does the work (an LLM
-- call, a tool; retried), `post(shared, prep_res, exec_res)` writes results back
-- and returns an action string choosing the next node. A flow runs nodes
-- from its start node, following the successor of each returned action,
-- until a node has no successor for it.
--
--   local flow = require "weft.flow"
--   local review = flow.Node{ name = "review", exec = ..., post = function(shared, p, e)
--     return e.ok and "approve" or "revise" end }
--   draft:next(review)                 -- the "default" action
--   review:on("revise", draft)         -- a named action
--   review:on("approve", publish)
--   local action, shared = flow.Flow{ start = draft }:run{ topic = "tides" }
--
-- Semantics (as PocketFlow's):
--   * `max_retries` is the number of exec attempts (default 1: no retry);
--     `wait` seconds are slept (weft.sleep: yields inside an executor)
--     between attempts; after the last failure `exec_fallback(prep_res,
--     err)` gives the result, or the error is raised (a string error is
--     prefixed with the node name and the attempt count).
--   * post returns an action string, nil meaning "default".
--   * An action without a successor ends the flow. If the node has
--     successors for other actions, PocketFlow warns ("Flow ends: 'x' not
--     found in [...]"): so does weft.flow (through opts.warn of `run`, a
--     `warn` log event under as_executor, else stderr); with
--     `Flow{unmatched = "error"}` it is an error naming node and action.
--   * A flow is itself a node: it can be a step of another flow; its own
--     action is its post's return value, by default the last action of its
--     inner run. `prep(shared)`/`post(shared, prep_res, last_action)` of a
--     flow run before and after its nodes.
--   * `max_steps` (default 1000) bounds the node runs of one flow run, so a
--     loop without an exit fails naming the flow, the node and the action;
--     a flow that would run inside itself fails at once.
--   * Nodes hold no per-run state: one flow may run many times, at once.
--   * `node:run(shared [, {warn = fn(msg), on_step = fn({flow, node,
--     action, step})}])` returns the action and shared (default {}).
--   * Every phase may yield (weft.llm, agents, weft.sleep) when the flow
--     runs inside an executor or a weft.go task.
--
-- `BatchNode` calls exec once per item of the list prep returns (each item
-- with its own retries and fallback) and hands the list of results to post.
--
-- `flow:as_executor(id [, {output = true}])` wraps a flow as a workflow
-- executor: a table input (not a list) is copied as the shared table, any
-- other input becomes `{input = value}`; each node step is a `flow_step`
-- custom event `{flow, node, action, step}`; it sends the final shared
-- table to its successors and (unless output = false) yields it as a
-- workflow output. `flow:as_workflow(name)` builds the one-executor
-- workflow around it.
-- Uses weft (executor, workflow, sleep, json).
local weft = require "weft"
local check = require "weft.check"

local type, error, pairs, ipairs, tostring, setmetatable, getmetatable, pcall =
  type, error, pairs, ipairs, tostring, setmetatable, getmetatable, pcall
local sformat, concat, sort, floor = string.format, table.concat, table.sort, math.floor

local _M = {}

--- The default bound on node runs of one flow run.
_M.MAX_STEPS = 1000

local Node = {}
Node.__index = Node
Node.__tostring = function(n) return n.kind .. " '" .. n.name .. "'" end

local BatchNode = setmetatable({}, { __index = Node })
BatchNode.__index = BatchNode
BatchNode.__tostring = Node.__tostring

local Flow = setmetatable({}, { __index = Node })
Flow.__index = Flow
Flow.__tostring = Node.__tostring

local CLASSES = { [Node] = true, [BatchNode] = true, [Flow] = true }

local FN = { type = "callable" }
local NAME = { type = "string", minLength = 1 }
local NODE_SPEC = check.spec("weft.flow.Node", { noun = "field", properties = {
  name = NAME, prep = FN, exec = FN, post = FN, exec_fallback = FN,
  max_retries = { type = "integer", minimum = 1, aliases = { "retries", "max_attempts" } },
  wait = { type = "number", minimum = 0, unit = "seconds" },
} })
local FLOW_SPEC = check.spec("weft.flow.Flow", { noun = "field", properties = {
  name = NAME, prep = FN, post = FN, start = { type = "any" },
  max_steps = { type = "integer", minimum = 1 },
  unmatched = { enum = { "end", "error" } },
} })

local counter = 0

--- True when v is a node (a Node, BatchNode or Flow).
function _M.is_node(v)
  return CLASSES[getmetatable(v)] == true
end

--- True when v is a Flow.
function _M.is_flow(v)
  return getmetatable(v) == Flow
end

local callable = check.callable

-- Raise a misuse error at the caller of the public function.
local function bad(what, msg, level)
  error(what .. ": " .. msg, level + 1)
end

-- Common checks of a constructor table; returns the node's name.
local function check_spec(kind, spec, s, level)
  if type(spec) ~= "table" then
    bad("weft.flow." .. kind, "expects a table of fields, got " .. type(spec), level + 1)
  end
  local name = spec.name
  if name == nil then
    counter = counter + 1
    name = kind:lower() .. counter
  elseif type(name) ~= "string" or name == "" then
    bad("weft.flow." .. kind, "name must be a non-empty string", level + 1)
  end
  local what = kind .. " '" .. name .. "'"
  check.options(s, spec, level + 1, what)
  return name, what
end

-- A new node object of class cls from a checked spec.
local function new_node(cls, kind, spec, level)
  local name = check_spec(kind, spec, NODE_SPEC, level + 1)
  local retries, wait = spec.max_retries or 1, spec.wait or 0
  return setmetatable({
    kind = kind, name = name, prep = spec.prep, exec = spec.exec, post = spec.post,
    exec_fallback = spec.exec_fallback, max_retries = retries, wait = wait,
    successors = {}, actions = {},
  }, cls)
end

--- A node: `Node{name, prep = fn(shared), exec = fn(prep_res, attempt),
-- post = fn(shared, prep_res, exec_res) -> action, max_retries = 1,
-- wait = 0, exec_fallback = fn(prep_res, err)}`.
function _M.Node(spec)
  local n = new_node(Node, "Node", spec, 2)
  return n
end

--- A batch node: like Node, but prep returns a list and exec runs once per
-- item (post receives the list of results).
function _M.BatchNode(spec)
  local n = new_node(BatchNode, "BatchNode", spec, 2)
  return n
end

--- A flow: `Flow{start = node, name, prep, post, max_steps = 1000,
-- unmatched = "end" | "error"}`.
function _M.Flow(spec)
  local name, what = check_spec("Flow", spec, FLOW_SPEC, 2)
  if not _M.is_node(spec.start) then
    bad(what, "start must be a node (weft.flow.Node, BatchNode or Flow), got "
      .. (spec.start == nil and "nothing" or type(spec.start)), 2)
  end
  local max_steps = spec.max_steps or _M.MAX_STEPS
  local unmatched = spec.unmatched or "end"
  return setmetatable({
    kind = "Flow", name = name, start = spec.start, prep = spec.prep, post = spec.post,
    max_steps = max_steps, unmatched = unmatched, successors = {}, actions = {},
  }, Flow)
end

--- Set the successor of an action ("default" when omitted); returns the
-- successor, so that `a:next(b):next(c)` chains.
function Node:next(other, action)
  if not _M.is_node(self) then error("node:next: call it with ':' on a node", 2) end
  action = action == nil and "default" or action
  if type(action) ~= "string" or action == "" then
    error(sformat("%s: action must be a non-empty string", tostring(self)), 2)
  end
  if not _M.is_node(other) then
    error(sformat("%s: the successor of action '%s' must be a node, got %s",
                  tostring(self), action, type(other)), 2)
  end
  local prev = self.successors[action]
  if prev and prev ~= other then
    error(sformat("%s: action '%s' already leads to %s", tostring(self), action, tostring(prev)), 2)
  end
  if not prev then
    self.successors[action] = other
    self.actions[#self.actions + 1] = action
  end
  return other
end

--- Set the successor of a named action; returns the successor.
function Node:on(action, other)
  if not _M.is_node(self) then error("node:on: call it with ':' on a node", 2) end
  if type(action) ~= "string" or action == "" then
    error(sformat("%s: on expects an action string, got %s", tostring(self), type(action)), 2)
  end
  return Node.next(self, other, action)
end

-- Raise err from a failed exec, naming the node (string errors only).
local function exec_failed(node, err, attempts)
  if type(err) == "string" then
    error(sformat("%s: exec failed after %d attempt%s: %s", tostring(node), attempts,
                  attempts == 1 and "" or "s", err), 0)
  end
  error(err, 0)
end

-- exec with retries, wait and fallback, for one input.
local function exec_one(node, input)
  local exec = node.exec
  if exec == nil then return nil end
  local n = node.max_retries
  for attempt = 1, n do
    local ok, res = pcall(exec, input, attempt)
    if ok then return res end
    if attempt == n then
      if node.exec_fallback then return node.exec_fallback(input, res) end
      exec_failed(node, res, n)
    end
    if node.wait > 0 then weft.sleep(node.wait) end
  end
end

-- The action post returned, checked (nil = "default").
local function checked_action(node, action, from)
  if action == nil then return "default" end
  if type(action) ~= "string" or action == "" then
    error(sformat("%s: %s must return an action string or nil, got %s", tostring(node), from,
                  type(action) == "string" and "an empty string" or type(action)), 0)
  end
  return action
end

-- Run one node: prep, exec, post; returns the action.
function Node:_run(shared)
  local p
  if self.prep then p = self.prep(shared) end
  local e = exec_one(self, p)
  local action
  if self.post then action = self.post(shared, p, e) end
  return checked_action(self, action, "post")
end

-- Run one batch node: exec over each item of prep's list.
function BatchNode:_run(shared)
  local items
  if self.prep then items = self.prep(shared) end
  if items == nil then items = {} end
  if type(items) ~= "table" then
    error(sformat("%s: prep must return a list of items, got %s", tostring(self), type(items)), 0)
  end
  local results = weft.json.array()
  for i = 1, #items do results[i] = exec_one(self, items[i]) end
  local action
  if self.post then action = self.post(shared, items, results) end
  return checked_action(self, action, "post")
end

-- The successor of node for action, or nil when the flow ends there.
local function successor(flow, node, action, hooks)
  local nxt = node.successors[action]
  if nxt or #node.actions == 0 then return nxt end
  local known = {}
  for i, a in ipairs(node.actions) do known[i] = "'" .. a .. "'" end
  if flow.unmatched == "error" then
    error(sformat("flow '%s': %s returned action '%s', which has no successor (actions: %s)",
                  flow.name, tostring(node), action, concat(known, ", ")), 0)
  end
  local msg = sformat("flow '%s' ends: %s returned action '%s', not found in [%s]",
                      flow.name, tostring(node), action, concat(known, ", "))
  if hooks.warn then
    hooks.warn(msg)
  else
    io.stderr:write("weft.flow: warning: ", msg, "\n")
  end
  return nil
end

-- Run the nodes of a flow from its start; returns the last action.
local function orchestrate(flow, shared, hooks)
  local node, last, steps = flow.start, nil, 0
  while node do
    steps = steps + 1
    if steps > flow.max_steps then
      error(sformat("flow '%s': exceeded max_steps (%d) at %s after action '%s' (a loop without an exit?)",
                    flow.name, flow.max_steps, tostring(node), tostring(last)), 0)
    end
    last = node:_run(shared, hooks)
    if hooks.on_step then
      hooks.on_step({ flow = flow.name, node = node.name, action = last, step = steps })
    end
    node = successor(flow, node, last, hooks)
  end
  return last
end

-- Run a flow as a node: prep, the nodes, post; returns the flow's action.
-- hooks.active holds the flows running in this call chain: a flow that
-- would run inside itself is an error, not a stack overflow.
function Flow:_run(shared, hooks)
  local active = hooks.active
  if active[self] then
    error(sformat("flow '%s': runs inside itself (a flow cannot be one of its own nodes)", self.name), 0)
  end
  active[self] = true
  local p
  if self.prep then p = self.prep(shared) end
  local last = orchestrate(self, shared, hooks)
  active[self] = nil
  if self.post then return checked_action(self, self.post(shared, p, last), "post") end
  return last
end

--- Run a node (or a flow) on shared (default {}); returns the action (for
-- a flow, its post's result: by default the last action) and shared.
-- opts: warn = fn(msg) for an unmatched action (default: stderr),
-- on_step = fn({flow, node, action, step}) after each node of a flow.
function Node:run(shared, opts)
  if not _M.is_node(self) then error("node:run: call it with ':' on a node", 2) end
  if shared == nil then shared = {} end
  if type(shared) ~= "table" then
    error(sformat("%s: run expects a shared table, got %s", tostring(self), type(shared)), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(sformat("%s: run options must be a table", tostring(self)), 2)
  end
  opts = opts or {}
  for _, k in ipairs({ "warn", "on_step" }) do
    if opts[k] ~= nil and not callable(opts[k]) then
      error(sformat("%s: run option %s must be a function", tostring(self), k), 2)
    end
  end
  local action = self:_run(shared, { warn = opts.warn, on_step = opts.on_step, active = {} })
  return action, shared
end

-- A deep copy of a received message (messages are read-only).
local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  return setmetatable(out, getmetatable(v))
end

-- The shared table of an executor input.
local function shared_of(msg)
  if type(msg) == "table" and msg[1] == nil and not weft.json.is_array(msg) then
    return copy(msg)
  end
  return { input = msg }
end

--- A workflow executor running this flow (see the module comment).
function Flow:as_executor(id, opts)
  if not _M.is_flow(self) then error("flow:as_executor: call it with ':' on a flow", 2) end
  if type(id) ~= "string" or id == "" then
    error(sformat("%s: as_executor expects an executor id (a non-empty string)", tostring(self)), 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then error(sformat("%s: as_executor options must be a table", tostring(self)), 2) end
  local output = opts.output ~= false
  local flow = self
  return weft.executor(id, {
    kind = "orchestrator",
    description = "runs flow '" .. flow.name .. "'",
    handle = function(msg, ctx)
      local shared = shared_of(msg)
      flow:_run(shared, {
        warn = function(text) ctx:log("warn", text) end,
        on_step = function(step) ctx:emit("flow_step", step) end,
        active = {},
      })
      ctx:send(shared)
      if output then ctx:yield_output(shared) end
    end,
  })
end

--- A built one-executor workflow (named `name`, default the flow's name)
-- running this flow and outputting the final shared table.
function Flow:as_workflow(name)
  if not _M.is_flow(self) then error("flow:as_workflow: call it with ':' on a flow", 2) end
  name = name or self.name
  return weft.workflow(name):start(self:as_executor(self.name)):build()
end

_M.classes = { Node = Node, BatchNode = BatchNode, Flow = Flow }

return _M
