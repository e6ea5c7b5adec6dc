-- weft.host: scripts reloaded while runs are in flight; runs switch at a
-- barrier when the new graph is compatible, finish on their version
-- otherwise; broken scripts never replace working ones.
local weft = require "weft"
local files = require "support.files"

local dir
before_each(function() dir = files.tempdir() end)
after_each(function() files.remove(dir) end)

-- Write a loop workflow tagged tag to path atomically (write + rename, as
-- editors do); extra is Lua inserted before the return; edges = "loop" or
-- "two" (an extra executor: incompatible).
local function write(path, tag, extra, shape)
  local body = shape == "two" and [[
local b = weft.executor("b", function(n, ctx) ctx:send(n) end)
return weft.workflow("flow"):start(a):edge(a, b):edge(b, a):build()
]] or [[
return weft.workflow("flow"):start(a):edge(a, a):build()
]]
  files.put(path, ([[
local weft = require "weft"
local a = weft.executor("a", function(n, ctx)
  weft.sleep(0.01)
  if n < 12 then ctx:send(n + 1) else ctx:yield_output("%s") end
end)
%s
]]):format(tag, extra or "") .. body)
end

-- Wait (yielding to the loop) until pred() holds.
local function until_(pred)
  for _ = 1, 500 do
    if pred() then return end
    weft.sleep(0.01)
  end
  error("condition not reached")
end

-- A host watching dir/flow.lua (written at v1), closed after the test;
-- returns it, the script's path and the list of events it reported.
local function watched_flow()
  local path = dir .. "/flow.lua"
  write(path, "v1")
  local events = {}
  local host = weft.host.new{ scripts = { flow = path }, watch = true,
                              on_event = function(ev) events[#events + 1] = ev end }
  finally(function() host:close() end)
  return host, path, events
end

describe("weft.host", function()
  it("switches in-flight runs to a compatible new version at a barrier", function()
    local host, path, events = watched_flow()
    local hs = {}
    for i = 1, 20 do hs[i] = host:spawn("flow", 1) end
    until_(function() return hs[1].versions[3] ~= nil end)
    write(path, "v2")
    local results = weft.wait_all(hs)
    for i, r in ipairs(results) do
      assert.equal("completed", r.status, "run " .. i)
      assert.same({ "v2" }, r.outputs) -- the last superstep ran the new handler
      local v = hs[i].versions
      assert.equal(1, v[1])
      assert.equal(2, v[#v])
      for k = 2, #v do assert.is_true(v[k] >= v[k - 1]) end -- switched once, at a barrier
    end
    assert.equal("reloaded", events[1].type)
    assert.equal(2, events[1].version)
    assert.is_string(events[1].old_hash)
    assert.equal(2, host:version("flow"))
  end)

  it("lets runs finish on their version when the new graph is incompatible", function()
    local host, path = watched_flow()
    local h = host:spawn("flow", 1)
    until_(function() return h.versions[3] ~= nil end)
    write(path, "v2", nil, "two")
    until_(function() return host:version("flow") == 2 end)
    local r = h:wait()
    assert.same({ "v1" }, r.outputs)
    for _, v in ipairs(h.versions) do assert.equal(1, v) end
    assert.same({ "v2" }, host:run("flow", 12).outputs) -- new runs use it
  end)

  it("keeps the working version when a reload fails, and says where", function()
    local host, path, events = watched_flow()
    write(path, "v2", "local x = = 1")
    until_(function() return #events > 0 end)
    assert.equal("reload_failed", events[1].type)
    assert.truthy(events[1].error:find("flow.lua:6:", 1, true), events[1].error)
    assert.equal(1, host:version("flow"))
    assert.same({ "v1" }, host:run("flow", 12).outputs)
    write(path, "v3", "error('at load')")
    until_(function() return #events > 1 end)
    assert.equal("reload_failed", events[2].type)
    assert.truthy(events[2].error:find("at load", 1, true))
    write(path, "v4")
    until_(function() return host:version("flow") == 2 end)
    assert.same({ "v4" }, host:run("flow", 12).outputs)
  end)

  it("switches durable runs too and records the version of each superstep", function()
    local path = dir .. "/flow.lua"
    write(path, "v1")
    local store = weft.store.open("memory:")
    local host = weft.host{ scripts = { flow = path }, watch = true }
    finally(function() host:close() end)
    local h = host:spawn("flow", 1, { store = store })
    until_(function() return h.versions[3] ~= nil end)
    write(path, "v2")
    local r = h:wait()
    assert.same({ "v2" }, r.outputs)
    local rec = weft.json.decode(store:get("runs", h.id))
    assert.same(h.versions, rec.versions)
    assert.equal(1, rec.versions[1])
    assert.equal(2, rec.versions[#rec.versions])
  end)

  it("answers what it holds through has, info and recent_events, copies the caller cannot change", function()
    local path = dir .. "/flow.lua"
    write(path, "v1")
    local host = weft.host{ scripts = { flow = path } }
    assert.is_true(host:has("flow"))
    assert.is_false(host:has("other"))
    assert.is_nil(host:info("other"))
    local info = host:info("flow")
    assert.same({ version = 1, hash = weft.durable.hash(host:workflow("flow")), path = path }, info)
    assert.same({}, host:recent_events())
    write(path, "v2", "local x = = 1")
    assert.is_nil(host:reload("flow"))
    info = host:info("flow")
    assert.equal(1, info.version)
    assert.truthy(info.error:find("flow.lua:6:", 1, true), info.error)
    info.version = 99
    assert.equal(1, host:info("flow").version)
    write(path, "v3")
    assert.is_true(host:reload("flow"))
    assert.is_nil(host:info("flow").error)
    local evs = host:recent_events()
    assert.same({ "reload_failed", "reloaded" }, { evs[1].type, evs[2].type })
    evs[1] = nil
    assert.equal(2, #host:recent_events())
    for _ = 1, 1100 do assert.is_true(host:reload("flow")) end
    evs = host:recent_events()
    assert.equal(1000, #evs) -- the last 1,000, oldest first
    assert.equal(1102, evs[1000].version)
    assert.equal(103, evs[1].version)
  end)

  it("refuses a script that does not load at start", function()
    local path = files.write(dir .. "/bad.lua", "return 42\n")
    assert.has_error(function() weft.host.new{ scripts = { path } } end,
      "weft.host: " .. path .. ": expected the script to return a workflow "
      .. "(return weft.workflow(...):build()), got a number")
  end)

  it("names the script and shows a table raised while loading as JSON, as the CLI does", function()
    local path = files.write(dir .. "/raises.lua", 'error({ reason = "no config" })\n')
    local host = weft.host.new{ scripts = {} }
    local ok, err = host:add("raises", path)
    assert.is_nil(ok)
    assert.equal(path .. ': {"reason":"no config"}', err)
  end)

  it("lets a script require a module beside it, outside package.path and package.loaded", function()
    local other = dir .. "-cwd"
    os.execute("mkdir -p " .. other)
    finally(function() files.remove(other) end)
    files.write(dir .. "/beside_helper.lua", 'return { tag = "beside" }\n')
    files.write(dir .. "/flow.lua", [[
local weft = require "weft"
local helper = require "beside_helper"
return weft.workflow("flow"):start(weft.executor("a", function(_, ctx) ctx:yield_output(helper.tag) end)):build()
]])
    local path = package.path
    local host = weft.host{ scripts = { flow = dir .. "/flow.lua" } }
    assert.same({ "beside" }, host:run("flow", "x").outputs)
    assert.equal(path, package.path)
    assert.is_nil(package.loaded.beside_helper)
  end)
end)
