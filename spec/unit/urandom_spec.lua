-- weft.urandom (ids and tokens) and the definition hash of weft.durable,
-- both on the per-run path: random bytes are read ahead from /dev/urandom
-- and never handed out twice; a workflow's hash is computed once.
local weft = require "weft"
local urandom = require "weft.urandom"

describe("weft.urandom.hex", function()
  it("gives 2n lower-case hex digits, never the same bytes twice, any n", function()
    local seen = {}
    for _ = 1, 3000 do -- several read-ahead blocks
      local h = urandom.hex(4)
      assert.matches("^%x%x%x%x%x%x%x%x$", h)
      assert.equal(h:lower(), h)
      assert.is_nil(seen[h], "the same 4 bytes handed out twice: " .. h)
      seen[h] = true
    end
    assert.equal(2 * 600, #urandom.hex(600)) -- more than a block
    assert.equal(2, #urandom.hex(1))
  end)
end)

describe("weft.durable.hash", function()
  it("is the same for the same definition, computed once per workflow", function()
    local function build()
      return weft.workflow("h"):start(weft.executor("a", function() end)):build()
    end
    local wf = build()
    local h = weft.durable.hash(wf)
    assert.matches("^%x+$", h)
    assert.equal(16, #h)
    assert.equal(h, weft.durable.hash(wf))
    assert.equal(h, weft.durable.hash(build()))
    local other = weft.workflow("h"):start(weft.executor("b", function() end)):build()
    assert.are_not.equal(h, weft.durable.hash(other))
  end)
end)
