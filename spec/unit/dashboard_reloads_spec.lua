-- GET /api/v1/reloads (weft serve --watch): the host's reload events as
-- the dashboard's reload list shows them — the script's file named
-- relative to the scripts dir and errors scrubbed, never the server's
-- paths (spec/support/fake_res.lua's app, a real weft.host over a dir).
local weft = require "weft"
local fake = require "support.fake_res"
local files = require "support.files"

local call = fake.call
local scope = require("support.scope")(after_each)

local GOOD = [[
local weft = require "weft"
return weft.workflow("w"):start(weft.executor("a", function(m, ctx) ctx:yield_output(m) end)):build()
]]

describe("GET /api/v1/reloads", function()
  it("names the script's file relative to the scripts dir and scrubs errors (file:line kept)", function()
    local dir = scope.tmpdir()
    files.write(dir .. "/w.lua", GOOD)
    local a = fake.app{ scripts_dir = dir }
    a.host = assert(weft.host.new{ dir = dir })
    files.write(dir .. "/w.lua", 'local x = nil\nerror("broken in " .. "' .. dir .. '/lib/x.lua")\n')
    assert.is_nil(a.host:reload("w"))
    files.write(dir .. "/w.lua", GOOD)
    assert.truthy(a.host:reload("w"))
    local res = call(a, "GET", "/api/v1/reloads")
    assert.equal(200, res.status_code, res.body)
    assert.is_false(res.body:find(dir, 1, true) ~= nil, res.body)
    local d = res:decoded()
    assert.is_true(d.watching)
    local failed, reloaded
    for _, ev in ipairs(d.events) do
      if ev.type == "reload_failed" then failed = ev elseif ev.type == "reloaded" then reloaded = ev end
    end
    assert.equal("w.lua", failed.file)
    assert.is_nil(failed.path)
    assert.equal("w", failed.script)
    assert.matches("^w%.lua:2: broken in x%.lua$", failed.error)
    assert.equal("w.lua", reloaded.file)
    assert.is_nil(reloaded.path)
  end)
end)
