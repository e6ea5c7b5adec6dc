-- spec/unit/run_fastpath_spec.lua — the fixed cost of a run (refactoring
-- issue "the same or better benchmark figures"): a run without options
-- skips the option-spec walk, options given are checked without a lookup
-- of every name of the spec, and starting a run calls no require() (the
-- nested-run check and the input check use modules loaded once). Counted
-- calls, not timings. Options given are still checked as before.
local weft = require "weft"
local check = require "weft.check"

local function one()
  return weft.workflow("one"):start(weft.executor("a", function(msg, ctx) ctx:yield_output(msg) end)):build()
end

describe("the fixed cost of a run", function()
  local wf
  before_each(function() wf = one() end)

  it("does not walk the option spec when there are no options (nil or {})", function()
    local real, calls = check.options, 0
    check.options = function(...) calls = calls + 1; return real(...) end
    local ok, e = pcall(function()
      assert.same({ 1 }, wf:run(1).outputs)
      assert.same({ 2 }, wf:run(2, {}).outputs)
    end)
    check.options = real
    assert(ok, e)
    assert.equal(0, calls)
  end)

  it("calls no require() to start and finish a run", function()
    wf:run(1) -- anything loaded lazily on the first run is loaded now
    local real, names = _G.require, {}
    _G.require = function(name) names[#names + 1] = name; return real(name) end
    local ok, res = pcall(wf.run, wf, { x = 1 })
    _G.require = real
    assert(ok, res)
    assert.same({ { x = 1 } }, res.outputs)
    assert.same({}, names)
  end)

  it("checks the options given, not every name of the spec", function()
    local misses = 0
    local opts = setmetatable({ max_supersteps = 5, events = false },
                              { __index = function() misses = misses + 1 end })
    assert.is_nil(check.problem(require("weft.run").OPTIONS, opts))
    assert.equal(0, misses)
  end)

  it("still checks the options given", function()
    assert.has_error(function() wf:run(1, { max_supersteps = 0 }) end)
    assert.has_error(function() wf:run(1, { nope = 1 }) end)
    assert.has_error(function() wf:run(1, 5) end)
    assert.has_error(function() wf:run({ f = print }) end)
    assert.same({ 3 }, wf:run(3, { max_supersteps = 2 }).outputs)
  end)
end)
