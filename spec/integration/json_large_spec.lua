-- A JSON body of many keys decodes in linear time: 300,000 keys of five
-- shapes, in a child `weft exec` under a CPU-time limit (30 s for about 1 s
-- of work); 300,000 keys whose strings collide in OpenResty's LuaJIT string
-- table (interning them alone takes ~45 s: a hostile body) are refused at
-- max_strings, as weft serve decodes bodies, instead of running out of it.
local procs = require "support.procs"

local root = os.getenv("WEFT_SOURCE_DIR") or "."
local bin = procs.weft_bin()

describe("json.decode of an object of 300,000 keys", function()
  it("takes every key, of every shape, within a CPU-time limit", function()
    local rc, out, err = procs.run({ "sh", "-c", 'ulimit -t 30 && exec "$0" exec "$1" 300000', bin,
                                     root .. "/spec/fixtures/json/many_keys.lua" })
    assert.equal(0, rc, err)
    for _, shape in ipairs { "short", "digits", "start", "middle", "tail" } do
      assert.truthy(out:find(shape .. "\t300000\n", 1, true), out)
    end
    assert.truthy(out:find("colliding\trefused\tinvalid JSON at line 1 column %d+: too many strings %(more than 50000, "
      .. "keys included%)\n"), out)
  end)
end)
