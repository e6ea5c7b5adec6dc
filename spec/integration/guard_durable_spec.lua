-- spec/integration/guard_durable_spec.lua — guardrails in durable runs
-- (docs/guardrails.md, docs/durability.md "What is stored"): what a
-- durable run stores of a guarded executor's sends and outputs (pending
-- writes, checkpoints) is the value after its output guards. Two real
-- processes: `weft run` killed -9 once an invocation's effects are
-- recorded, then `weft runs resume`; every namespace of the SQLite store
-- and its files are searched for the card number a PII guard masks. #crash
local weft = require "weft"
local durable = require "weft.durable"
local procs = require "support.procs"
local files = require "support.files"
require "helpers" -- assert.mentions

local scratch = files.scratch("gdur")
after_each(scratch.clean)

-- The card number the handler makes (never in the run's input, so that
-- nothing but its sends and outputs could bring it into the store).
local CARD = "4111 1111 1111 1111"

-- "split" hands the input to "pay" and "slow" (superstep 1): "pay" sends
-- and yields a card number through a PII mask guard and finishes while
-- "slow" sleeps WEFT_TEST_SLEEP s, so its effects are recorded as pending
-- writes; "sink" (superstep 2) outputs the message it got.
local FLOW = [[
local weft = require "weft"
local split = weft.executor("split", function(m, ctx) ctx:send(m) end)
local pay = weft.executor("pay", { handle = function(m, ctx)
  local card = table.concat({ "4111", "1111", "1111", "1111" }, " ")
  local sent = ctx:send("pay " .. m .. " with " .. card, "sink")
  ctx:yield_output({ note = "card " .. card, sent = sent })
end, guards = { weft.guard.pii { stages = { "output" } } } })
local slow = weft.executor("slow", function(_, ctx)
  weft.sleep(tonumber(os.getenv("WEFT_TEST_SLEEP")) or 0)
  ctx:yield_output("slow done")
end)
local sink = weft.executor("sink", function(m, ctx) ctx:yield_output({ got = m }) end)
return weft.workflow("cards"):start(split):edge(split, pay):edge(split, slow):edge(pay, sink):build()
]]

-- Every key and value the run id left in namespaces of store st, as one
-- string per row ("ns key value").
local function rows_of(st, id)
  local out = {}
  local eid = durable.esc(id)
  for _, ns in ipairs({ "runs", "lease", "fence" }) do
    local v = st:get(ns, id)
    if v then out[#out + 1] = ns .. " " .. id .. " " .. v end
  end
  for _, ns in ipairs({ "pw", "journal", "req" }) do
    for _, row in ipairs(assert(st:scan(ns, eid .. "/"))) do out[#out + 1] = ns .. " " .. row.key .. " " .. row.value end
  end
  for _, row in ipairs(assert(st:range("ckpt", id))) do out[#out + 1] = "ckpt " .. row.seq .. " " .. row.value end
  return out
end

-- Assert that the card number is nowhere in the store at url (dir: its
-- directory, whose files are read byte by byte too, freed pages and the
-- WAL included); returns the rows, for more checks.
local function assert_no_card(url, dir, id)
  local st = assert(weft.store.open(url))
  local rows = rows_of(st, id)
  st:close()
  for _, row in ipairs(rows) do
    assert.is_nil(row:find(CARD, 1, true), "the card number is stored: " .. row)
  end
  for _, name in ipairs({ "weft.db", "weft.db-wal", "weft.db-shm" }) do
    local bytes = files.slurp(dir .. "/" .. name)
    if bytes then assert.is_nil(bytes:find(CARD, 1, true), "the card number is in " .. name) end
  end
  return rows
end

-- Run FLOW as run id in a `weft run` child, and kill it -9 once "pay"'s
-- effects are recorded as pending writes ("slow" sleeps). Returns the
-- script's path, the store URL and the pending writes.
local function run_and_kill(dir, id)
  local path, url = files.write(dir .. "/flow.lua", FLOW), "sqlite:" .. dir .. "/weft.db"
  local env = { WEFT_TEST_SLEEP = "30", WEFT_LEASE_TTL = "0.5" }
  local p = procs.spawn({ procs.weft_bin(), "run", path, "--store", url, "--run-id", id, "--input", "rent" }, env)
  local st = assert(weft.store.open(url))
  local pw
  while not pw do
    pw = st:scan("pw", id .. "/")
    if pw and #pw == 0 then pw = nil end
    if not pw then weft.sleep(0.005) end
  end
  st:close()
  procs.kill(p)
  procs.wait(p, 10)
  return path, url, pw
end

describe("guardrails in a durable run", function()
  it("store sends and outputs as the output guards masked them, before and after a resume", function()
    local dir = scratch.dir()
    local _, url, pw = run_and_kill(dir, "cd1")
    local bin = procs.weft_bin()
    assert.mentions("[CARD]", pw[1].value)
    assert_no_card(url, dir, "cd1")
    -- the resumed run replays the recorded (masked) effects
    local rc, out, err = procs.run({ bin, "runs", "resume", "cd1", "--store", url, "--wait" },
      { WEFT_TEST_SLEEP = "0", WEFT_LEASE_TTL = "0.5" }, 60)
    assert.equal(0, rc, out .. err)
    local st = assert(weft.store.open(url))
    local res = assert(durable.result(nil, st, "cd1"))
    st:close()
    assert.equal("completed", res.status)
    local by = {}
    for _, o in ipairs(res.outputs) do
      if type(o) == "table" then by[o.note and "pay" or "sink"] = o else by.slow = o end
    end
    assert.same({ note = "card [CARD]", sent = "pay rent with [CARD]" }, by.pay)
    assert.same({ got = "pay rent with [CARD]" }, by.sink)
    assert.equal("slow done", by.slow)
    local rows = assert_no_card(url, dir, "cd1")
    assert.is_true(#rows > 3)
  end)

  it("publish the guardrail_triggered events of replayed effects once, without running the guards again", function()
    local dir = scratch.dir()
    local path, url = run_and_kill(dir, "cd2")
    -- resumed here (the script returns the workflow: same hash)
    local wf = dofile(path)
    local events = {}
    local before = weft.guard.counters.pii and weft.guard.counters.pii.output.modify or 0
    local h = wf:resume("cd2", { store = url, lease = { wait = true }, on_event = function(ev)
      if ev.type == "custom" and ev.name == "guardrail_triggered" then events[#events + 1] = ev end
    end })
    assert.equal("completed", h:wait().status)
    -- "pay" masked its send and its output: two verdicts, recorded in the
    -- first process, published by the resumed run; the guard did not run here
    assert.equal(2, #events)
    for _, ev in ipairs(events) do
      assert.equal("pay", ev.executor_id)
      assert.same({ "pii", "output", "modify", "1 card masked" },
        { ev.data.guard, ev.data.stage, ev.data.action, ev.data.reason })
    end
    local after = weft.guard.counters.pii and weft.guard.counters.pii.output.modify or 0
    assert.equal(before, after)
  end)
end)
