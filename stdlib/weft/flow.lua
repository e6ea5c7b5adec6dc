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
-- Every phase gets, as its last argument, the node as the run sees it
-- (`prep(shared, node)`, `exec(prep_res, attempt, node)`, `post(shared,
-- prep_res, exec_res, node)`, `exec_fallback(prep_res, err, node)`): its
-- fields plus `node.params`, PocketFlow's `self.params`; what a phase
-- stores on it stays with that run of the node. A node or flow run
-- alone has its own params (`Node{params = t}` or `node:set_params(t)`); a
-- flow gives its nodes its params instead (one copy per run of the flow,
-- shared by its nodes; a node's own params count only when it runs
-- alone), as PocketFlow does.
--
-- `BatchNode` calls exec once per item of the list prep returns (each item
-- with its own retries and fallback) and hands the list of results to post.
-- `BatchFlow`: prep returns a list of params tables and the flow's nodes
-- run once per set, each merged over the flow's params; post(shared, list,
-- nil) (default action "default"). Errors name the item ("item 2 of 3",
-- "params set 2 of 3").
--
-- The async family: every phase may yield already, so `AsyncNode`,
-- `AsyncBatchNode`, `AsyncFlow` and `AsyncBatchFlow` are Node, BatchNode,
-- Flow and BatchFlow that also take PocketFlow's names `prep_async`,
-- `exec_async`, `post_async`, `exec_fallback_async` (and `run_async`).
-- `AsyncParallelBatchNode` and `AsyncParallelBatchFlow` (PocketFlow JS:
-- `ParallelBatchNode`, `ParallelBatchFlow`) run their items concurrently,
-- each in a weft task (weft.go), at most `max_parallel` at once (default
-- all); results keep the item order; after a failure no new item starts,
-- those in flight finish, and the lowest failed item's error is raised.
--
-- `flow:as_executor(id [, {output = true}])` wraps a flow as a workflow
-- executor: a table input (not a list) is copied as the shared table, any
-- other input becomes `{input = value}`; each node step is a `flow_step`
-- custom event `{flow, node, action, step}`; it sends the final shared
-- table to its successors and (unless output = false) yields it as a
-- workflow output. `flow:as_workflow(name)` builds the one-executor
-- workflow around it.
-- Uses weft (executor, workflow, sleep, go, json), weft.check.
local weft = require "weft"
local check = require "weft.check"

local type, error, pairs, ipairs, tostring, setmetatable, getmetatable, pcall =
  type, error, pairs, ipairs, tostring, setmetatable, getmetatable, pcall
local sformat, concat, min = string.format, table.concat, math.min

local _M = {}

--- The default bound on node runs of one flow run.
_M.MAX_STEPS = 1000

-- Classes are behaviours (how _run works); the kind (Node, AsyncNode,
-- AsyncParallelBatchNode...) is the name a node shows in errors. A batch
-- node or batch flow runs its items one after the other, or concurrently
-- when its `parallel` field is set.
local Node = {}
Node.__index = Node
Node.__tostring = function(n) return n.kind .. " '" .. n.name .. "'" end

local BatchNode = setmetatable({}, { __index = Node })
BatchNode.__index = BatchNode
BatchNode.__tostring = Node.__tostring

local Flow = setmetatable({}, { __index = Node })
Flow.__index = Flow
Flow.__tostring = Node.__tostring

local BatchFlow = setmetatable({}, { __index = Flow })
BatchFlow.__index = BatchFlow
BatchFlow.__tostring = Node.__tostring

local NODES = { [Node] = true, [BatchNode] = true, [Flow] = true, [BatchFlow] = true }
local FLOWS = { [Flow] = true, [BatchFlow] = true }

-- The kinds: class, whether the PocketFlow *_async names are accepted,
-- whether items run concurrently. PocketFlow (Python) has the Async*
-- names, its JavaScript port the Parallel* ones.
local KINDS = {
  Node = { cls = Node }, AsyncNode = { cls = Node, async = true },
  BatchNode = { cls = BatchNode }, AsyncBatchNode = { cls = BatchNode, async = true },
  ParallelBatchNode = { cls = BatchNode, parallel = true },
  AsyncParallelBatchNode = { cls = BatchNode, async = true, parallel = true },
  Flow = { cls = Flow }, AsyncFlow = { cls = Flow, async = true },
  BatchFlow = { cls = BatchFlow }, AsyncBatchFlow = { cls = BatchFlow, async = true },
  ParallelBatchFlow = { cls = BatchFlow, parallel = true },
  AsyncParallelBatchFlow = { cls = BatchFlow, async = true, parallel = true },
}

-- The phases of nodes and flows; each may also be given by its PocketFlow
-- async name (prep_async...) in an Async kind.
local NODE_PHASES = { "prep", "exec", "post", "exec_fallback" }
local FLOW_PHASES = { "prep", "post" }

-- The field spec of a kind (built once per kind, at load time).
local function field_spec(kind, k)
  local flowish = FLOWS[k.cls]
  local props = {
    name = { type = "string", minLength = 1 },
    params = { type = "table" },
  }
  for _, ph in ipairs(flowish and FLOW_PHASES or NODE_PHASES) do
    local p = { type = "callable" }
    if k.async then
      props[ph .. "_async"] = { type = "callable" }
    else
      p.aliases = { ph .. "_async" }
    end
    props[ph] = p
  end
  if flowish then
    props.start = { type = "any" }
    props.max_steps = { type = "integer", minimum = 1 }
    props.unmatched = { enum = { "end", "error" } }
  else
    props.max_retries = { type = "integer", minimum = 1, aliases = { "retries", "max_attempts" } }
    props.wait = { type = "number", minimum = 0, unit = "seconds" }
  end
  if k.parallel then props.max_parallel = { type = "integer", minimum = 1, aliases = { "concurrency" } } end
  return check.spec("weft.flow." .. kind, { noun = "field", properties = props })
end
for kind, k in pairs(KINDS) do k.spec = field_spec(kind, k) end

local counter = 0

--- True when v is a node (any kind of node or flow).
function _M.is_node(v)
  return NODES[getmetatable(v)] == true
end

--- True when v is a flow (Flow, BatchFlow or one of their Async/Parallel kinds).
function _M.is_flow(v)
  return FLOWS[getmetatable(v)] == true
end

-- Raise a misuse error at the caller of the public function.
local function bad(what, msg, level)
  error(what .. ": " .. msg, level + 1)
end

-- Check a constructor table against the fields of its kind; returns the
-- node's name and how errors name it.
local function check_spec(kind, spec, level)
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
  check.options(KINDS[kind].spec, spec, level + 1, what)
  return name, what
end

-- A phase given by its plain or its async name (not both).
local function phase(spec, ph, what, level)
  local plain, async = spec[ph], spec[ph .. "_async"]
  if plain ~= nil and async ~= nil then
    bad(what, sformat("give %s or %s_async, not both (they are the same phase: every phase may yield)", ph, ph),
        level + 1)
  end
  if plain ~= nil then return plain end
  return async
end

-- A new node or flow of this kind from its constructor table.
local function new(kind, spec, level)
  local k = KINDS[kind]
  local name, what = check_spec(kind, spec, level + 1)
  local n = { kind = kind, name = name, params = spec.params or {}, successors = {}, actions = {},
              parallel = k.parallel or false, max_parallel = spec.max_parallel }
  for _, ph in ipairs(FLOWS[k.cls] and FLOW_PHASES or NODE_PHASES) do
    n[ph] = phase(spec, ph, what, level + 1)
  end
  if FLOWS[k.cls] then
    if not _M.is_node(spec.start) then
      bad(what, "start must be a node (weft.flow.Node, BatchNode or Flow), got "
        .. (spec.start == nil and "nothing" or type(spec.start)), level + 1)
    end
    n.start, n.max_steps, n.unmatched = spec.start, spec.max_steps or _M.MAX_STEPS, spec.unmatched or "end"
  else
    n.max_retries, n.wait = spec.max_retries or 1, spec.wait or 0
  end
  -- what the phases receive as their last argument: the node seen from one
  -- run, with the params of that run (see `view`)
  n.view_mt = { __index = n, __tostring = function() return what end }
  return setmetatable(n, k.cls)
end

--- A node: `Node{name, prep = fn(shared, node), exec = fn(prep_res,
-- attempt, node), post = fn(shared, prep_res, exec_res, node) -> action,
-- max_retries = 1, wait = 0, exec_fallback = fn(prep_res, err, node),
-- params = {}}`; `node.params` are the params of the run.
function _M.Node(spec) local n = new("Node", spec, 2); return n end

--- PocketFlow's AsyncNode: a Node (every phase may yield) that also takes
-- prep_async, exec_async, post_async and exec_fallback_async.
function _M.AsyncNode(spec) local n = new("AsyncNode", spec, 2); return n end

--- A batch node: like Node, but prep returns a list and exec runs once per
-- item, in order (post receives the list of results).
function _M.BatchNode(spec) local n = new("BatchNode", spec, 2); return n end

--- PocketFlow's AsyncBatchNode: a BatchNode taking the *_async names too.
function _M.AsyncBatchNode(spec) local n = new("AsyncBatchNode", spec, 2); return n end

--- A batch node whose items run concurrently, each in its own weft task
-- (at most `max_parallel` at once, default all).
function _M.ParallelBatchNode(spec) local n = new("ParallelBatchNode", spec, 2); return n end

--- PocketFlow's AsyncParallelBatchNode: a ParallelBatchNode taking the
-- *_async names too.
function _M.AsyncParallelBatchNode(spec) local n = new("AsyncParallelBatchNode", spec, 2); return n end

--- A flow: `Flow{start = node, name, prep = fn(shared, flow), post =
-- fn(shared, prep_res, last_action, flow), max_steps = 1000, unmatched =
-- "end" | "error", params = {}}`.
function _M.Flow(spec) local n = new("Flow", spec, 2); return n end

--- PocketFlow's AsyncFlow: a Flow taking prep_async and post_async too.
function _M.AsyncFlow(spec) local n = new("AsyncFlow", spec, 2); return n end

--- A batch flow: prep returns a list of params tables and the flow's nodes
-- run once per params set, in order, each with the flow's params merged
-- with that set; post(shared, list, nil, flow).
function _M.BatchFlow(spec) local n = new("BatchFlow", spec, 2); return n end

--- PocketFlow's AsyncBatchFlow: a BatchFlow taking the *_async names too.
function _M.AsyncBatchFlow(spec) local n = new("AsyncBatchFlow", spec, 2); return n end

--- A batch flow whose params sets run concurrently (at most `max_parallel`
-- at once, default all).
function _M.ParallelBatchFlow(spec) local n = new("ParallelBatchFlow", spec, 2); return n end

--- PocketFlow's AsyncParallelBatchFlow: a ParallelBatchFlow taking the
-- *_async names too.
function _M.AsyncParallelBatchFlow(spec) local n = new("AsyncParallelBatchFlow", spec, 2); return n end

--- Set the params a node (or flow) runs with when it runs alone, or that
-- a flow gives its nodes; returns the node. Inside a flow a node gets its
-- flow's params instead, as in PocketFlow.
function Node:set_params(params)
  if not _M.is_node(self) then error("node:set_params: call it with ':' on a node", 2) end
  if type(params) ~= "table" then
    error(sformat("%s: set_params expects a table, got %s", tostring(self), type(params)), 2)
  end
  self.params = params
  return self
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

-- The node as one run sees it: its fields, with that run's params (a node
-- is shared by every run of its flow, so the params cannot live in it).
local function view(node, params)
  return setmetatable({ params = params }, node.view_mt)
end

-- A shallow copy of t merged with u (u wins).
local function merged(t, u)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  if u then for k, v in pairs(u) do out[k] = v end end
  return out
end

-- Run fn(i) for i = 1..n concurrently in weft tasks, at most limit at
-- once (nil: all). Workers take the next item in turn; a worker about to
-- run an item starts one more worker unless one is already waiting to
-- start, so items that never wait cost two tasks, and items that wait all
-- get in flight. A failure stops items not started yet; the ones in
-- flight finish; then the error of the lowest failed item is raised as fn
-- raised it. fn names its item in its errors.
local function gather(n, limit, fn)
  limit = limit or n
  local started, err_i, err = 0, nil, nil
  local tasks, spare = {}, false
  local worker
  worker = function()
    spare = false
    while err_i == nil and started < n do
      started = started + 1
      local i = started
      if not spare and started < n and #tasks < limit then
        spare = true
        tasks[#tasks + 1] = weft.go(worker)
      end
      local ok, e = pcall(fn, i)
      if not ok and (err_i == nil or i < err_i) then err_i, err = i, e end
    end
  end
  spare = true
  tasks[1] = weft.go(worker)
  local k = 1
  while k <= #tasks do -- workers add workers: wait until the list stops growing
    tasks[k]:wait()
    k = k + 1
  end
  if err_i then error(err, 0) end
end

-- Prefix a string error with where it happened (other values unchanged).
local function located(where, err)
  if type(err) == "string" then return where .. ": " .. err end
  return err
end

-- Raise err from a failed exec, naming the node and, in a batch, the item
-- (string errors only).
local function exec_failed(node, err, attempts, item)
  if type(err) == "string" then
    error(sformat("%s: %sexec failed after %d attempt%s: %s", tostring(node), item or "", attempts,
                  attempts == 1 and "" or "s", err), 0)
  end
  error(err, 0)
end

-- exec with retries, wait and fallback, for one input; me is the node as
-- the run sees it, item "item i of n: " in a batch.
local function exec_one(node, input, me, item)
  local exec = node.exec
  if exec == nil then return nil end
  local n = node.max_retries
  for attempt = 1, n do
    local ok, res = pcall(exec, input, attempt, me)
    if ok then return res end
    if attempt == n then
      if node.exec_fallback then return node.exec_fallback(input, res, me) end
      exec_failed(node, res, n, item)
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

-- Run one node with params: prep, exec, post; returns the action.
function Node:_run(shared, _, params)
  local me = view(self, params)
  local p
  if self.prep then p = self.prep(shared, me) end
  local e = exec_one(self, p, me)
  local action
  if self.post then action = self.post(shared, p, e, me) end
  return checked_action(self, action, "post")
end

-- The list a batch's prep returned (nil = none), checked.
local function items_of(node, items)
  if items == nil then return {} end
  if type(items) ~= "table" then
    error(sformat("%s: prep must return a list of items, got %s", tostring(node), type(items)), 0)
  end
  return items
end

-- Run one batch node: exec over each item of prep's list, in order or
-- concurrently.
function BatchNode:_run(shared, _, params)
  local me = view(self, params)
  local items
  if self.prep then items = self.prep(shared, me) end
  items = items_of(self, items)
  local n, results = #items, weft.json.array()
  local function one(i)
    results[i] = exec_one(self, items[i], me, sformat("item %d of %d: ", i, n))
  end
  if self.parallel and n > 1 then
    gather(n, self.max_parallel, one)
  else
    for i = 1, n do one(i) end
  end
  local action
  if self.post then action = self.post(shared, items, results, me) end
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

-- Run the nodes of a flow from its start, each with params (the same
-- table for every node of this run); returns the last action.
local function orchestrate(flow, shared, hooks, params)
  local node, last, steps = flow.start, nil, 0
  while node do
    steps = steps + 1
    if steps > flow.max_steps then
      error(sformat("flow '%s': exceeded max_steps (%d) at %s after action '%s' (a loop without an exit?)",
                    flow.name, flow.max_steps, tostring(node), tostring(last)), 0)
    end
    last = node:_run(shared, hooks, params)
    if hooks.on_step then
      hooks.on_step({ flow = flow.name, node = node.name, action = last, step = steps })
    end
    node = successor(flow, node, last, hooks)
  end
  return last
end

-- Mark flow as running in this call chain (hooks.active): a flow that
-- would run inside itself is an error, not a stack overflow.
local function enter(flow, hooks)
  if hooks.active[flow] then
    error(sformat("flow '%s': runs inside itself (a flow cannot be one of its own nodes)", flow.name), 0)
  end
  hooks.active[flow] = true
end

-- Run a flow as a node: prep, the nodes (with a copy of the flow's params,
-- as PocketFlow), post; returns the flow's action.
function Flow:_run(shared, hooks, params)
  enter(self, hooks)
  local me = view(self, params)
  local p
  if self.prep then p = self.prep(shared, me) end
  local last = orchestrate(self, shared, hooks, merged(params))
  hooks.active[self] = nil
  if self.post then return checked_action(self, self.post(shared, p, last, me), "post") end
  return last
end

-- Hooks for one of concurrent branches: the same callbacks, its own chain
-- of active flows (branches run side by side, not inside one another).
local function branch_hooks(hooks)
  return { warn = hooks.warn, on_step = hooks.on_step, active = merged(hooks.active) }
end

-- Run a batch flow: its nodes once per params set prep returns (each
-- merged over the flow's params), in order or concurrently; then post
-- (default action "default", as PocketFlow's).
function BatchFlow:_run(shared, hooks, params)
  enter(self, hooks)
  local me = view(self, params)
  local sets
  if self.prep then sets = self.prep(shared, me) end
  if sets == nil then sets = {} end
  if type(sets) ~= "table" then
    error(sformat("%s: prep must return a list of params tables, got %s", tostring(self), type(sets)), 0)
  end
  local n = #sets
  for i = 1, n do
    if type(sets[i]) ~= "table" then
      error(sformat("%s: prep must return a list of params tables, item %d is a %s", tostring(self), i,
                    type(sets[i])), 0)
    end
  end
  local parallel = self.parallel and n > 1
  local function one(i)
    local h = parallel and branch_hooks(hooks) or hooks
    local ok, err = pcall(orchestrate, self, shared, h, merged(params, sets[i]))
    if not ok then error(located(sformat("%s: params set %d of %d", tostring(self), i, n), err), 0) end
  end
  if parallel then
    gather(n, self.max_parallel, one)
  else
    for i = 1, n do one(i) end
  end
  hooks.active[self] = nil
  local action
  if self.post then action = self.post(shared, sets, nil, me) end
  return checked_action(self, action, "post")
end

--- Run a node (or a flow) on shared (default {}) with its own params;
-- returns the action (for a flow, its post's result: by default the last
-- action) and shared. opts: warn = fn(msg) for an unmatched action
-- (default: stderr), on_step = fn({flow, node, action, step}) after each
-- node of a flow. `run_async` is the same (PocketFlow's name).
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
    if opts[k] ~= nil and not check.callable(opts[k]) then
      error(sformat("%s: run option %s must be a function", tostring(self), k), 2)
    end
  end
  local action = self:_run(shared, { warn = opts.warn, on_step = opts.on_step, active = {} }, self.params)
  return action, shared
end
Node.run_async = Node.run

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
      }, flow.params)
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

_M.classes = { Node = Node, BatchNode = BatchNode, Flow = Flow, BatchFlow = BatchFlow }

return _M
