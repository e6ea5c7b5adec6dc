-- spec/integration/examples_spec.lua — the scripts in examples/ load as
-- plain Lua files returning a built workflow, and produce exactly the
-- outputs and state their comments promise.
local h = require "helpers"

local function load_example(name)
  return dofile(h.root .. "examples/" .. name)
end

describe("examples/hello.lua", function()
  it("returns a workflow that upper-cases and exclaims its input", function()
    local res = load_example("hello.lua"):run("hi")
    assert.equal("completed", res.status)
    assert.same({ "HI!" }, res.outputs)
    assert.equal(2, res.supersteps)
  end)

  it("runs from the weft CLI as its header comment says", function()
    local bin = os.getenv("WEFT_BIN")
    if not bin then return pending("WEFT_BIN is not set (ctest sets it)") end
    local p = assert(io.popen(("%q run %q --input hi"):format(bin, h.root .. "examples/hello.lua")))
    local out = p:read("*a")
    p:close()
    assert.mentions("HI!", out)
  end)

  it("describes two executors joined by a direct edge", function()
    local shape = load_example("hello.lua"):describe()
    assert.equal("hello", shape.name)
    assert.equal("upper", shape.start)
    assert.same({ { kind = "direct", from = { "upper" }, to = { "exclaim" } } }, shape.edges)
  end)
end)

describe("examples/branching.lua", function()
  local wf
  setup(function() wf = load_example("branching.lua") end)

  it("shortens a long sentence in a loop and renders it in three styles", function()
    local res = wf:run("The quick brown fox jumps over the lazy dog")
    assert.equal("completed", res.status)
    assert.same({ "THE QUICK BROWN FOX", "The Quick Brown Fox", "fox brown quick the" }, res.outputs)
    assert.same({
      history = {
        "round 1: 9 words, 35 letters, 11 vowels",
        "round 2: 8 words, 32 letters, 10 vowels",
        "round 3: 7 words, 28 letters, 9 vowels",
        "round 4: 6 words, 25 letters, 8 vowels",
        "round 5: 5 words, 21 letters, 6 vowels",
        "round 6: 4 words, 16 letters, 5 vowels",
      },
      rounds = 6,
    }, res.state)
    assert.equal(26, res.supersteps)
  end)

  it("renders a short sentence after one round", function()
    local res = wf:run("Hi there")
    assert.same({ "HI THERE", "Hi There", "there hi" }, res.outputs)
    assert.same({ history = { "round 1: 2 words, 7 letters, 3 vowels" }, rounds = 1 }, res.state)
  end)

  it("sends a single word straight to the upper-case rendering", function()
    local res = wf:run("Hello!")
    assert.equal("completed", res.status)
    assert.same({ "HELLO" }, res.outputs)
    assert.same({}, res.state)
  end)

  it("rejects input without words", function()
    local res = wf:run("  ?! ")
    assert.equal("completed", res.status)
    assert.same({ "nothing to analyse" }, res.outputs)
  end)

  it("runs the three analysers concurrently and reports them in source order", function()
    local res = wf:run("Hi there")
    -- superstep 2 holds the analysers: all start before any completes, and
    -- their completions are published in invocation order.
    local lines = {}
    for _, line in ipairs(h.trace(res.events)) do
      if line:match("^executor_.* @2$") then lines[#lines + 1] = line end
    end
    assert.same({
      "executor_invoked count_words @2",
      "executor_invoked count_letters @2",
      "executor_invoked count_vowels @2",
      "executor_completed count_words @2",
      "executor_completed count_letters @2",
      "executor_completed count_vowels @2",
    }, lines)
  end)

  it("produces the same events on every run", function()
    local input = "The quick brown fox jumps over the lazy dog"
    assert.same(h.trace(wf:run(input).events), h.trace(wf:run(input).events))
  end)
end)
