--- weft.budget — execution budgets of runs (run option `budget`, spec
-- weft.run.BUDGET): wall time, model tokens and cost (from per-model
-- prices, USD per million tokens). The tokens and cost of every weft.llm
-- call made for a run, or for a run nested in it, count against its
-- budget; a call is refused once the budget is spent (or, under a cost
-- budget, when its model has no price), and a run past a limit ends,
-- failed, with "run exceeded its budget: <limit> (<value>)".
--
-- A nested run given no budget of its own shares its parent's (one
-- account); one given its own is held to both. The spent tokens and cost
-- of a durable run are kept in its run record (`spent`, updated at each
-- charge; weft.durable stores it with every checkpoint and journaled call
-- and gives a resumed run the most recent), so that a resumed run goes on
-- from them; a call replayed from the journal costs nothing again. The
-- wall-time limit counts from the start of the run in this process.
-- Uses weft.task (the current run, the timer task), weft.run (fail) and
-- weft.core.sched (run status).
local task = require "weft.task"
local sched = require "weft.core.sched"

local type, rawget, tostring, sformat = type, rawget, tostring, string.format

local _M = {}

local run_mod -- weft.run, loaded on first use (it loads this module)

-- The message of an exceeded limit.
local function exceeded(limit, value, unit)
  return sformat("run exceeded its budget: %s (%s%s)", limit, tostring(value), unit or "")
end

-- End run r as failed with msg, and the runs from cur (may be nil) out
-- to r: runs nested in r, whose invocations r's end aborts.
local function fail(r, msg, cur)
  run_mod = run_mod or require "weft.run"
  while cur and cur ~= r do
    run_mod.fail(cur, msg)
    cur = rawget(cur, "_parent")
  end
  run_mod.fail(r, msg)
end

-- The accounts of run r: the budgeted runs from r outwards, as a list of
-- run tables (a run sharing its parent's budget table is skipped: the
-- parent holds the account).
local function accounts(r)
  local out, n = nil, 0
  while r do
    local b = rawget(r, "_budget")
    if b then
      n = n + 1
      out = out or {}
      out[n] = r
    end
    r = rawget(r, "_parent")
  end
  return out
end

--- Open the account of run r (called by weft.run as it starts a run with
-- a budget): spent tokens and cost (from a durable run's record when
-- resumed), and the wall-time timer.
function _M.start(r)
  local b = r.budget
  local parent = rawget(r, "_parent")
  if parent and parent.budget == b then return end -- one account: the parent's
  local rec = r.durable and r.durable.record
  local spent = rec and type(rec.spent) == "table" and rec.spent or nil
  local acc = { spec = b, tokens = spent and tonumber(spent.tokens) or 0,
                cost = spent and tonumber(spent.cost) or 0 }
  r._budget = acc
  if b.seconds then
    local cond = task.cond()
    acc.cond = cond
    local prev = rawget(r, "on_end")
    -- the run's end stops the timer (a pause does not)
    r.on_end = function(run)
      if (sched.run_info(run.c)) ~= "idle" then
        acc.ended = true
        cond:signal()
      end
      if prev then return prev(run) end
      sched.end_done(run.c)
    end
    task.go_detached(function()
      if not acc.ended and not cond:wait(b.seconds) and not acc.ended then
        acc.ended = true
        fail(r, exceeded("seconds", b.seconds, " s"))
      end
    end)
  end
end

-- Whether account acc is spent: the message, or nil.
local function spent_msg(acc)
  local b = acc.spec
  if b.tokens and acc.tokens >= b.tokens then return exceeded("tokens", b.tokens) end
  if b.cost and acc.cost >= b.cost then return exceeded("cost", b.cost, " USD") end
  return nil
end

-- Charge usage of a call to model against the accounts (list of runs);
-- a run whose budget is now exceeded fails.
local function charge(runs, model, res, cur)
  local u = type(res) == "table" and res.usage
  if type(u) ~= "table" then return end
  local input, output = tonumber(u.input_tokens) or 0, tonumber(u.output_tokens) or 0
  local total = tonumber(u.total_tokens) or (input + output)
  for i = 1, #runs do
    local r = runs[i]
    local acc = r._budget
    local b = acc.spec
    acc.tokens = acc.tokens + total
    local price = b.prices and b.prices[model]
    if price then
      acc.cost = acc.cost + (input * (price.input or 0) + output * (price.output or 0)) / 1e6
    end
    local rec = r.durable and r.durable.record
    if rec then rec.spent = { tokens = acc.tokens, cost = acc.cost } end
    local b_tokens, b_cost = b.tokens, b.cost
    local msg = (b_tokens and acc.tokens > b_tokens and exceeded("tokens", b_tokens))
      or (b_cost and acc.cost > b_cost and exceeded("cost", b_cost, " USD")) or nil
    if msg and not acc.ended then
      acc.ended = true
      fail(r, msg, cur)
    end
  end
end

--- Make a weft.llm call to model under the budgets of the current run:
-- journal(kind, what, fn, ...) is called as weft.llm calls it, with fn
-- charging what a real call (not a replay) used. Returns its results, or
-- nil, err, "budget" when a budget is spent or (under a cost budget)
-- model has no price.
function _M.llm(model, journal, kind, what, fn, ...)
  local r = task.current()
  local runs = type(r) == "table" and accounts(r)
  if not runs then return journal(kind, what, fn, ...) end
  for i = 1, #runs do
    local acc = runs[i]._budget
    local msg = spent_msg(acc)
    if msg then
      if not acc.ended then
        acc.ended = true
        fail(runs[i], msg, r)
      end
      return nil, msg, "budget"
    end
    local b = acc.spec
    if b.cost and not (b.prices and b.prices[model]) then
      return nil, sformat("budget: model '%s' has no price in budget.prices (the run has a cost budget)",
                          model), "budget"
    end
  end
  return journal(kind, what, function(...)
    local res, err, code = fn(...)
    charge(runs, model, res, r)
    return res, err, code
  end, ...)
end

--- What run r has spent: {tokens, cost} of its account (or of the run
-- whose budget it shares), or nil without a budget.
function _M.spent(r)
  while r and not rawget(r, "_budget") do r = rawget(r, "_parent") end
  local acc = r and r._budget
  if not acc then return nil end
  return { tokens = acc.tokens, cost = acc.cost }
end

return _M
