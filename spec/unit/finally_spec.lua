-- spec/support/finally.lua (loaded for every spec through .busted): every
-- function a test gives to finally runs when it ends — busted alone keeps
-- only the last one, so an earlier cleanup (a test server killed, a
-- directory removed) silently never ran.
local files = require "support.files"
local procs = require "support.procs"

local root = os.getenv("WEFT_SOURCE_DIR") or "."
local order = {}

describe("finally in a spec", function()
  it("takes several functions", function()
    finally(function() order[#order + 1] = "first" end)
    finally(function() order[#order + 1] = "second" end)
    finally(function() order[#order + 1] = "third" end)
  end)

  it("ran them all when the test ended, the last given first", function()
    assert.same({ "third", "second", "first" }, order)
  end)

  it("runs the others when one fails, and the test fails with its error", function()
    local dir = files.tempdir()
    finally(function() files.remove(dir) end)
    local spec = dir .. "/failing_spec.lua"
    files.write(spec, ([[
describe("x", function()
  it("y", function()
    finally(function() io.open(%q, "w"):close() end)
    finally(function() error("cleanup failed") end)
    finally(function() io.open(%q, "w"):close() end)
  end)
end)
]]):format(dir .. "/a", dir .. "/c"))
    local rc, out, err = procs.run({ procs.weft_bin(), "exec", "/usr/bin/busted", "--output=plainTerminal",
                                     "-C", root, spec }, nil, 60)
    assert.is_true(rc ~= 0, out)
    assert.matches("cleanup failed", out .. err)
    assert.truthy(files.slurp(dir .. "/a"))
    assert.truthy(files.slurp(dir .. "/c"))
  end)
end)
