-- spec/unit/public_api_spec.lua — the `weft` table holds exactly the public
-- API of docs/api.md (The weft table): the functions and modules loaded
-- with it, the modules loaded on first use (weft.flow and weft.agents
-- among them), weft.durable without the run journal's internals, and
-- weft.reducers as a deprecated alias of weft.window. A key that leaks in
-- (or goes missing) fails here.
local weft = require "weft"

local bin = os.getenv("WEFT_BIN")

-- Loaded with `require "weft"`.
local EAGER = {
  "agent", "clock", "cond", "executor", "fd", "go", "is_builder", "is_executor", "is_workflow",
  "json", "now", "poll", "reduce", "sleep", "step", "timeout", "version", "wait_all", "workflow",
}
-- Loaded on first access.
local LAZY = {
  "agents", "durable", "flow", "guard", "guardrails", "host", "http", "llm", "memory", "otel", "patterns", "pool", "sandbox", "schema",
  "script", "server", "std", "store", "tcp", "thread", "tool", "window", "worker",
}

local keys = require("helpers").keys

-- The sorted union of lists a and b.
local function union(a, b)
  local out = {}
  for _, k in ipairs(a) do out[#out + 1] = k end
  for _, k in ipairs(b) do out[#out + 1] = k end
  table.sort(out)
  return out
end

describe("the weft table", function()
  it("has exactly the public names once every module is loaded", function()
    for _, k in ipairs(LAZY) do assert.is_table(weft[k], k) end
    assert.same(union(EAGER, LAZY), keys(weft))
  end)

  it("loads the documented stdlib modules weft.flow and weft.agents", function()
    assert.equal(require "weft.flow", weft.flow)
    assert.equal(require "weft.agents", weft.agents)
    assert.is_function(weft.flow.Node)
    assert.is_function(weft.agents.make)
  end)

  it("has no internal module or function under another name", function()
    for _, k in ipairs({ "core", "cli", "run", "context", "check", "task", "durable_internal",
                         "record_effects", "reducers_internal", "serve", "graphviz", "sha256" }) do
      assert.is_nil(rawget(weft, k), k)
      if k ~= "durable_internal" and k ~= "reducers_internal" then assert.is_nil(weft[k], k) end
    end
  end)

  it("gives weft.durable its public functions only, not the run journal", function()
    assert.same({ "cleanup", "hash" }, keys(weft.durable))
    assert.is_nil(weft.durable.record_effects)
    assert.is_nil(weft.durable.replay_of)
  end)

  it("gives weft.pool and weft.worker their public functions only", function()
    assert.same({ "QUEUE", "answer", "cancel", "events", "get", "spawn", "submit" }, keys(weft.pool))
    assert.same({ "new", "supervise" }, keys(weft.worker))
    assert.is_nil(weft.pool.summary)
    assert.is_nil(weft.pool.enqueue)
  end)

  it("keeps weft.reducers as an alias of weft.window that pairs() does not list", function()
    assert.equal(weft.window, weft.reducers)
    assert.is_function(weft.reducers.sliding_window)
    assert.is_nil(rawget(weft, "reducers"))
  end)

  it("loads none of the lazy modules with require 'weft'", function()
    -- weft.agent (loaded with weft) needs weft.tool, weft.thread and weft.schema
    local needed = { tool = true, thread = true, schema = true }
    local lazy = {}
    for _, k in ipairs(LAZY) do
      if not needed[k] then lazy[#lazy + 1] = ("%q"):format("weft." .. k) end
    end
    local script = os.tmpname()
    finally(function() os.remove(script) end)
    local f = assert(io.open(script, "w"))
    f:write(([[
local before = {}
for k in pairs(package.loaded) do before[k] = true end
local weft = require "weft"
local got = {}
for _, m in ipairs({ %s }) do
  if package.loaded[m] and not before[m] then got[#got + 1] = m end
end
for k in pairs(weft) do got[#got + 1] = "key:" .. k end
table.sort(got)
io.write(table.concat(got, " "))
]]):format(table.concat(lazy, ", ")))
    f:close()
    local p = assert(io.popen(("%q exec %q"):format(bin, script)))
    local out = p:read("*a")
    p:close()
    local want = {}
    for _, k in ipairs(EAGER) do want[#want + 1] = "key:" .. k end
    table.sort(want)
    assert.equal(table.concat(want, " "), out)
  end)
end)
