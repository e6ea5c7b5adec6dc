-- host_reload_spec.lua — weft.host keeps its promises: a changed state
-- reducer keeps runs in flight on their version, a run that stays says so
-- once (as an event), dir hosts have their own module namespace, and every
-- module a host loads is watched by content.
local weft = require "weft"
local files = require "support.files"

local dir
before_each(function() dir = files.tempdir(nil, { "lib" }) end)
after_each(function() files.remove(dir) end)

-- Write text to path atomically (write + rename, as editors save).
local put = files.put

-- Write text over path in place (same inode, as `>` in a shell).
local overwrite = files.write

-- A loop workflow: executor a writes n to state key total, n = 1..12, one
-- superstep each; `state` is the Lua of the :state{} table, `extra` Lua
-- placed before the workflow (helpers a reducer may use), `more` a second
-- executor b (a different graph) when true.
local function flow(state, extra, more)
  return ([[
local weft = require "weft"
%s
local a = weft.executor("a", function(n, ctx)
  weft.sleep(0.001)
  ctx:set_state("total", n)
  if n < 12 then ctx:send(n + 1) else ctx:yield_output("done") end
end)
%s
]]):format(extra or "", more and [[
local b = weft.executor("b", function(n, ctx) ctx:send(n) end)
return weft.workflow("flow"):start(a):edge(a, a):edge(a, b):edge(b, a):state(]] .. state .. [[):build()
]] or [[
return weft.workflow("flow"):start(a):edge(a, a):state(]] .. state .. [[):build()
]])
end

-- Wait (yielding to the loop) until pred() holds.
local function until_(pred, what)
  for _ = 1, 500 do
    if pred() then return end
    weft.sleep(0.01)
  end
  error("condition not reached: " .. (what or "?"), 2)
end

-- The events of list whose type is t.
local function of_type(list, t)
  local out = {}
  for _, ev in ipairs(list) do if ev.type == t then out[#out + 1] = ev end end
  return out
end

-- A host over dir/flow.lua (not watching) whose first run is in flight
-- at superstep 3 when reloaded with the script new_src; returns the run's
-- result and handle, the host and its events.
local function reload_mid_run(src, new_src)
  put(dir .. "/flow.lua", src)
  local events = {}
  local host = weft.host{ scripts = { flow = dir .. "/flow.lua" },
                          on_event = function(ev) events[#events + 1] = ev end }
  local h = host:spawn("flow", 1)
  until_(function() return h.versions[3] ~= nil end, "superstep 2")
  put(dir .. "/flow.lua", new_src)
  assert.is_true(host:reload("flow"))
  return h:wait(), h, host, events
end

describe("weft.host state reducers", function()
  it("keeps a run on its version when a reducer changes with the same keys", function()
    local r, h, host, events = reload_mid_run(flow("{ total = weft.reduce.sum }"),
                                              flow("{ total = weft.reduce.max }"))
    assert.equal("completed", r.status, r.error)
    assert.equal(78, r.state.total) -- 1 + ... + 12: sum all along, no mix
    for _, v in ipairs(h.versions) do assert.equal(1, v) end
    local stays = of_type(events, "run_stays")
    assert.equal(1, #stays)
    assert.equal(h.id, stays[1].run_id)
    assert.equal(1, stays[1].version)
    assert.equal(2, stays[1].latest)
    assert.equal("the reducer of state key 'total' changed (weft.reduce.sum -> weft.reduce.max)",
                 stays[1].reason)
    assert.equal(12, host:run("flow", 1).state.total) -- new runs use max
  end)

  it("switches when a custom reducer only moved to other lines", function()
    local red = "{ total = function(acc, v) return (acc or 0) + v * k end }"
    local r, h = reload_mid_run(flow(red, "local k = 2"), flow(red, "-- a comment\n\nlocal k = 2"))
    assert.equal("completed", r.status, r.error)
    assert.equal(156, r.state.total)
    assert.equal(2, h.versions[#h.versions])
  end)

  it("keeps a run on its version when a custom reducer's code changes", function()
    local r, h, _, events = reload_mid_run(
      flow("{ total = function(acc, v) return (acc or 0) + v end }"),
      flow("{ total = function(acc, v) return (acc or 0) - v end }"))
    assert.equal(78, r.state.total)
    for _, v in ipairs(h.versions) do assert.equal(1, v) end
    local stays = of_type(events, "run_stays")
    assert.equal(1, #stays)
    assert.truthy(stays[1].reason:find("the reducer of state key 'total' changed (the function at ", 1, true),
                  stays[1].reason)
  end)

  it("keeps a run on its version when the graph gains an executor, with the scheduler's reason", function()
    local r, h, _, events = reload_mid_run(flow("{ total = weft.reduce.sum }"),
                                           flow("{ total = weft.reduce.sum }", nil, true))
    assert.equal(78, r.state.total)
    for _, v in ipairs(h.versions) do assert.equal(1, v) end
    local stays = of_type(events, "run_stays")
    assert.equal(1, #stays)
    assert.equal("the executors changed (2 instead of 1)", stays[1].reason)
  end)

  it("keeps a run on its version when a value the custom reducer uses changes", function()
    local red = "{ total = function(acc, v) return (acc or 0) + v * k end }"
    local r, h = reload_mid_run(flow(red, "local k = 1"), flow(red, "local k = 3"))
    assert.equal(78, r.state.total)
    for _, v in ipairs(h.versions) do assert.equal(1, v) end
  end)
end)

describe("weft.host run_stays", function()
  it("is published once per run, not at every superstep, and nothing floods stderr", function()
    put(dir .. "/flow.lua", flow("{}"))
    local events, lines = {}, 0
    local host = weft.host{ scripts = { flow = dir .. "/flow.lua" },
                            on_event = function(ev) events[#events + 1] = ev end }
    local stderr = io.stderr
    finally(function() io.stderr = stderr end) -- luacheck: ignore
    io.stderr = { write = function(_, ...) -- luacheck: ignore
      for _, s in ipairs({ ... }) do
        if tostring(s):find("stays on its version", 1, true) then lines = lines + 1 end
      end
    end }
    local hs = {}
    for i = 1, 20 do hs[i] = host:spawn("flow", 1) end
    until_(function() return hs[20].versions[3] ~= nil end, "superstep 2")
    -- a new state key: the runs' state could not follow
    put(dir .. "/flow.lua", flow("{ total = weft.reduce.sum }"))
    assert.is_true(host:reload("flow"))
    local results = weft.wait_all(hs)
    io.stderr = stderr -- luacheck: ignore
    local seen = {}
    for i, r in ipairs(results) do
      assert.equal("completed", r.status, r.error)
      assert.equal(12, r.state.total) -- last writer wins, as in version 1
      seen[hs[i].id] = 0
    end
    local stays = of_type(events, "run_stays")
    assert.equal(20, #stays)
    for _, ev in ipairs(stays) do
      assert.equal(0, seen[ev.run_id], "one event per run")
      seen[ev.run_id] = 1
      assert.equal("state key 'total' gained a reducer (weft.reduce.sum)", ev.reason)
    end
    assert.equal(0, lines)
  end)
end)

describe("weft.host dir mode", function()
  -- A script of dir d that outputs the tag of its module lib/tag.lua.
  local function tagged(d, tag)
    put(d .. "/lib/tag.lua", ("return { tag = %q }\n"):format(tag))
    put(d .. "/flow.lua", [[
local weft = require "weft"
local t = require "lib.tag"
return weft.workflow("flow"):start(weft.executor("a", function(_, ctx) ctx:yield_output(t.tag) end)):build()
]])
  end

  -- A second dir (removed after the test) beside dir: dir's flow outputs
  -- "A", the second's "B"; returns the second.
  local function tagged_pair()
    local dir2 = files.tempdir(nil, { "lib" })
    finally(function() files.remove(dir2) end)
    tagged(dir, "A")
    tagged(dir2, "B")
    return dir2
  end

  it("gives each host its own modules, outside package.loaded and package.path", function()
    local dir2 = tagged_pair()
    local path = package.path
    local a = weft.host{ dir = dir }
    local b = weft.host{ dir = dir2 }
    assert.same({ "A" }, a:run("flow", "x").outputs)
    assert.same({ "B" }, b:run("flow", "x").outputs)
    assert.is_nil(package.loaded["lib.tag"])
    assert.equal(path, package.path)
    -- A's edit reaches A (and only A) at its next reload
    put(dir .. "/lib/tag.lua", 'return { tag = "A2" }\n')
    assert.is_true(a:reload("flow"))
    assert.same({ "A2" }, a:run("flow", "x").outputs)
    assert.same({ "B" }, b:run("flow", "x").outputs)
  end)

  it("reloads a watching host when a module it loaded changes, other hosts untouched", function()
    local dir2 = tagged_pair()
    local a = weft.host{ dir = dir, watch = true }
    finally(function() a:close() end)
    local b = weft.host{ dir = dir2, watch = true }
    finally(function() b:close() end)
    put(dir .. "/lib/tag.lua", 'return { tag = "A2" }\n')
    until_(function() return a:version("flow") == 2 end, "host A reloaded")
    assert.same({ "A2" }, a:run("flow", "x").outputs)
    assert.equal(1, b:version("flow"))
    assert.same({ "B" }, b:run("flow", "x").outputs)
  end)

  it("watches a module created after the host started once a script loads it", function()
    put(dir .. "/flow.lua", [[
local weft = require "weft"
return weft.workflow("flow"):start(weft.executor("a", function(_, ctx) ctx:yield_output("none") end)):build()
]])
    local host = weft.host{ dir = dir, watch = true }
    finally(function() host:close() end)
    assert.same({ "none" }, host:run("flow", "x").outputs)
    os.execute("mkdir -p " .. dir .. "/new")
    put(dir .. "/new/tag.lua", 'return { tag = "one" }\n')
    put(dir .. "/flow.lua", [[
local weft = require "weft"
local t = require "new.tag"
return weft.workflow("flow"):start(weft.executor("a", function(_, ctx) ctx:yield_output(t.tag) end)):build()
]])
    until_(function() return host:version("flow") == 2 end, "script reloaded")
    assert.same({ "one" }, host:run("flow", "x").outputs)
    put(dir .. "/new/tag.lua", 'return { tag = "two" }\n')
    until_(function() return host:version("flow") == 3 end, "module change noticed")
    assert.same({ "two" }, host:run("flow", "x").outputs)
  end)

  it("adds a script created after the start, with the host's modules, and watches it", function()
    tagged(dir, "one")
    local host = weft.host{ dir = dir, watch = true }
    finally(function() host:close() end)
    put(dir .. "/late.lua", [[
local weft = require "weft"
local t = require "lib.tag"
return weft.workflow("late"):start(weft.executor("a", function(_, ctx) ctx:yield_output("late " .. t.tag) end)):build()
]])
    assert.is_true(host:add("late", dir .. "/late.lua"))
    assert.same({ "late one" }, host:run("late", "x").outputs)
    assert.has_error(function() host:add("late", dir .. "/late.lua") end, "host:add: script 'late' exists already")
    put(dir .. "/lib/tag.lua", 'return { tag = "two" }\n')
    until_(function() return host:version("late") == 2 end, "module change noticed")
    assert.same({ "late two" }, host:run("late", "x").outputs)
    put(dir .. "/bad.lua", "this is not Lua\n")
    local ok, err = host:add("bad", dir .. "/bad.lua")
    assert.is_nil(ok)
    assert.truthy(err:find("bad.lua:1:", 1, true), err)
  end)

  it("notices a module edit made before its watcher first looked, by content", function()
    tagged(dir, "one")
    local host = weft.host{ dir = dir, watch = true }
    finally(function() host:close() end)
    -- the watchers start from the loop, after this: the loaded content is
    -- what counts, not the file as the watcher first sees it
    overwrite(dir .. "/lib/tag.lua", 'return { tag = "two" }\n')
    until_(function() return host:version("flow") == 2 end, "module change noticed")
    assert.same({ "two" }, host:run("flow", "x").outputs)
  end)
end)
