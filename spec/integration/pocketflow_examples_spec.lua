-- spec/integration/pocketflow_examples_spec.lua — the ports of PocketFlow's
-- cookbook in examples/pocketflow/ (agent, workflow, translate,
-- nested_batch) run offline
-- on their scripted mock models and produce what their comments promise,
-- in-process and from the weft CLI; the agent's decide node retries a reply
-- that is not JSON; the translations are all in flight together (the
-- mock's replies wait at a barrier that opens only when every language
-- has asked).
local weft = require "weft"
local llm = require "weft.llm"
local files = require "support.files"
local h = require "helpers"

-- Load an example afresh (it registers its mock scripts again).
local function load_example(name)
  return dofile(h.root .. "examples/pocketflow/" .. name)
end

-- The flow_step events of a run, as "node:action" strings.
local function steps(res)
  local out = {}
  for _, ev in ipairs(res.events) do
    if ev.type == "custom" and ev.name == "flow_step" then out[#out + 1] = ev.data.node .. ":" .. ev.data.action end
  end
  return out
end

-- The same example must give the same output from the CLI.
local function same_from_cli(name, expected, ...) return h.same_from_cli("examples/pocketflow/" .. name, expected, ...) end

local HOPFIELD = "The Nobel Prize in Physics 2024 was awarded jointly to John J. Hopfield and Geoffrey E. Hinton "
  .. "for foundational discoveries and inventions that enable machine learning with artificial neural networks."

describe("examples/pocketflow/agent.lua", function()
  it("searches once, decides to answer and answers from what it found", function()
    local res = load_example("agent.lua"):run("")
    assert.equal("completed", res.status, res.error)
    local shared = res.outputs[1]
    assert.equal("Who won the Nobel Prize in Physics 2024?", shared.question)
    assert.equal(shared.question, shared.search_query)
    assert.equal("According to my research: " .. HOPFIELD, shared.answer)
    assert.same({ "decide:search", "search:decide", "decide:answer", "answer:done" }, steps(res))
  end)

  it("answers that it found nothing when the offline web has no page on the question", function()
    local res = load_example("agent.lua"):run("What is the capital of Mars?")
    assert.equal("According to my research: Nothing found on the web about it.", res.outputs[1].answer)
  end)

  it("asks the model again when its decision is not JSON (max_retries)", function()
    local wf = load_example("agent.lua")
    llm.mock.register("pf_agent", { { replies = { "Let me think about it.", '{"action": "answer", "answer": "42"}' } } })
    local res = wf:run({ question = "What is the answer?" })
    assert.equal("completed", res.status, res.error)
    assert.equal("42", res.outputs[1].context)
    assert.same({ "decide:answer", "answer:done" }, steps(res))
  end)

  it("fails naming the node and the attempts when the model never answers in JSON", function()
    local wf = load_example("agent.lua")
    llm.mock.register("pf_agent", { { reply = "I would rather chat." } })
    local res = wf:run("anything")
    assert.equal("failed", res.status)
    assert.mentions("Node 'decide': exec failed after 3 attempts: the model's decision is not a JSON object", res.error)
  end)

  it("gives the same output from the weft CLI", function()
    local res = load_example("agent.lua"):run("")
    same_from_cli("agent.lua", res.outputs[1])
  end)
end)

describe("examples/pocketflow/workflow.lua", function()
  it("outlines three sections, writes one paragraph each in order and restyles the draft", function()
    local res = load_example("workflow.lua"):run("tide pools")
    assert.equal("completed", res.status, res.error)
    local s = res.outputs[1]
    assert.equal("tide pools", s.topic)
    assert.same({ "What tide pools is", "Why tide pools matters", "Getting started with tide pools" }, s.sections)
    assert.equal("1. What tide pools is\n2. Why tide pools matters\n3. Getting started with tide pools", s.outline)
    assert.same({ "completed section 1/3: What tide pools is", "completed section 2/3: Why tide pools matters",
                  "completed section 3/3: Getting started with tide pools" }, s.progress)
    assert.mentions("## Why tide pools matters\n\nWhy tide pools matters comes down to one simple idea", s.draft)
    assert.equal("Ever wondered where to begin? Let's walk through it together.\n\n" .. s.draft, s.final_article)
    assert.same({ "outline:default", "write:default", "style:default" }, steps(res))
  end)

  it("gives the same output from the weft CLI (default topic)", function()
    local res = load_example("workflow.lua"):run("")
    assert.equal("AI Safety", res.outputs[1].topic)
    same_from_cli("workflow.lua", res.outputs[1])
  end)
end)

describe("examples/pocketflow/translate.lua", function()
  local scratch = files.scratch("weft_pf_")
  after_each(scratch.clean)

  it("translates into the eight languages and writes one file per language", function()
    local dir = scratch.dir()
    local res = load_example("translate.lua"):run({ text = "# Hi\n\nthere", languages = { "German", "French" },
                                                    output_dir = dir })
    assert.equal("completed", res.status, res.error)
    local s = res.outputs[1]
    assert.same({ German = "[German] # Hi\n\n[German] there", French = "[French] # Hi\n\n[French] there" },
                s.translations)
    assert.same({ dir .. "/README_GERMAN.md", dir .. "/README_FRENCH.md" }, s.files)
    assert.equal("[French] # Hi\n\n[French] there", files.read(dir .. "/README_FRENCH.md"))
    local all = load_example("translate.lua"):run("").outputs[1]
    assert.equal(8, #all.languages)
    assert.equal("[Korean] # PocketFlow", all.translations.Korean:match("^[^\n]+"))
  end)

  it("has every language's model call in flight at once", function()
    local wf = load_example("translate.lua")
    local cond, waiting, peak = weft.cond(), 0, 0
    llm.mock.register("pf_translator", { { reply = function()
      waiting = waiting + 1
      peak = math.max(peak, waiting)
      if waiting == 8 then cond:signal() end
      while peak < 8 do
        if not cond:wait(5) then error("only " .. waiting .. " of 8 calls in flight together", 0) end
      end
      return "translated"
    end } })
    local res = wf:run("")
    assert.equal("completed", res.status, res.error)
    assert.equal(8, peak)
    assert.equal("translated", res.outputs[1].translations.German)
  end)

  it("gives the same output from the weft CLI", function()
    local res = load_example("translate.lua"):run("")
    same_from_cli("translate.lua", res.outputs[1])
  end)
end)

describe("examples/pocketflow/nested_batch.lua", function()
  it("averages per student, per class and for the school, the class params reaching the inner batch", function()
    local res = load_example("nested_batch.lua"):run("")
    assert.equal("completed", res.status, res.error)
    local s = res.outputs[1]
    local function near(want, got) assert.is_true(math.abs(want - got) < 1e-9, ("%s ~= %s"):format(want, got)) end
    near(25 / 3 - 1 / 6, s.results.class_a.student1)
    near(25 / 3, s.results.class_a.student2)
    near(22 / 3, s.results.class_b.student3)
    near(26.5 / 3, s.results.class_b.student4)
    near(8.25, s.class_averages.class_a)
    near(48.5 / 6, s.class_averages.class_b)
    near(49 / 6, s.school_average)
    -- per student: load, average, then the student flow as a step of the
    -- class batch; per class: the class batch as a step of the school's
    local per_student = { "load:calculate", "average:default", "student:default" }
    local want = {}
    for _ = 1, 2 do
      for _ = 1, 2 do for _, st in ipairs(per_student) do want[#want + 1] = st end end
      want[#want + 1] = "class:default"
    end
    assert.same(want, steps(res))
  end)

  it("names each params set on the way down when a student has no grades", function()
    local res = load_example("nested_batch.lua"):run({ school = { a = { ann = { 9 } }, b = { bob = { 7 }, cy = {} } } })
    assert.equal("failed", res.status)
    assert.mentions("BatchFlow 'school': params set 2 of 2: BatchFlow 'class': params set 2 of 2: "
      .. "Node 'load': exec failed after 1 attempt: no grades", res.error)
  end)

  it("gives the same output from the weft CLI", function()
    local res = load_example("nested_batch.lua"):run("")
    same_from_cli("nested_batch.lua", res.outputs[1])
  end)
end)
