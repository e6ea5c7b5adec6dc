-- spec/unit/agent_configs_spec.lua — weft.agents: the ready-made agents
-- (research, writer, reviewer, coder, translator, summarizer) build
-- weft.agent objects with the right instructions, model and options,
-- validate their options, and really talk to a (mock) model.
local weft = require "weft"
local llm = require "weft.llm"
local agents = require "weft.agents"
local h = require "helpers"

-- The three verbs of each specialised agent in the seed's registry.
local VERBS = {
  research = { "Search", "Analyze", "Summarize" },
  writer = { "Generate", "Structure", "Format" },
  reviewer = { "Validate", "Improve", "Approve" },
  coder = { "Generate", "Test", "Document" },
  translator = { "Translate", "Validate", "Optimize" },
  summarizer = { "Condense", "Extract", "Highlight" },
}

local TEMPERATURE = { research = 0.2, writer = 0.7, reviewer = 0.1, coder = 0.1,
                      translator = 0.2, summarizer = 0.2 }

-- Run fn with agents.getenv answering WEFT_MODEL = value.
local function with_env_model(value, fn)
  local real = agents.getenv
  agents.getenv = function(k) if k == "WEFT_MODEL" then return value end return real(k) end
  local ok, err = pcall(fn)
  agents.getenv = real
  if not ok then error(err, 0) end
end

describe("weft.agents", function()
  local no_env
  before_each(function()
    -- a WEFT_MODEL in the caller's environment must not leak into these tests
    no_env = agents.getenv
    agents.getenv = function() return nil end
  end)
  after_each(function() agents.getenv = no_env end)

  it("lists the six kinds in the seed's order", function()
    assert.same({ "research", "writer", "reviewer", "coder", "translator", "summarizer" }, agents.KINDS)
  end)

  for kind, verbs in pairs(VERBS) do
    describe(kind, function()
      it("builds an agent named after its kind, on mock:echo by default", function()
        local a = agents[kind]()
        assert.is_true(require("weft.agent").is_agent(a))
        assert.equal(kind, a.name)
        assert.equal("mock:echo", a.model)
        assert.equal(TEMPERATURE[kind], a.temperature)
        assert.is_string(a.description)
      end)

      it("has instructions covering its three duties", function()
        local text = agents[kind]().instructions
        for i, v in ipairs(verbs) do
          assert.mentions(i .. ". " .. v, text)
        end
      end)

      it("is made by agents.create too", function()
        local a = agents.create(kind, { name = "x" })
        assert.equal("x", a.name)
        assert.equal(agents[kind]().instructions, a.instructions)
      end)
    end)
  end

  describe("model", function()
    it("uses opts.model first", function()
      with_env_model("openai:gpt-4o-mini", function()
        assert.equal("mock:writer_probe", agents.writer{ model = "mock:writer_probe" }.model)
      end)
    end)

    it("uses WEFT_MODEL when opts.model is not given", function()
      with_env_model("anthropic:claude-3-5-haiku-latest", function()
        assert.equal("anthropic:claude-3-5-haiku-latest", agents.coder().model)
      end)
    end)

    it("falls back to mock:echo when WEFT_MODEL is empty or unset", function()
      with_env_model("", function() assert.equal("mock:echo", agents.summarizer().model) end)
      with_env_model(nil, function() assert.equal("mock:echo", agents.summarizer().model) end)
      assert.equal("mock:echo", agents.model({}))
      assert.equal("mock:m", agents.model({ model = "mock:m" }))
    end)
  end)

  describe("common options", function()
    it("replaces the instructions, or appends extra instructions", function()
      assert.equal("Only say hi.", agents.writer{ instructions = "Only say hi." }.instructions)
      local a = agents.writer{ extra_instructions = "Use British spelling." }
      assert.equal(agents.writer().instructions .. "\n\nUse British spelling.", a.instructions)
    end)

    it("passes temperature, max_tokens, max_tool_rounds, llm, description and tools to the agent", function()
      local add = weft.tool{ name = "add", description = "Add",
                             parameters = { type = "object", properties = { a = { type = "number" } } },
                             handler = function(args) return args.a end }
      local a = agents.research{ temperature = 0.9, max_tokens = 300, max_tool_rounds = 2,
                                 llm = { retries = 1 }, tools = { add }, description = "d" }
      assert.equal(0.9, a.temperature)
      assert.equal(300, a.max_tokens)
      assert.equal(2, a.max_tool_rounds)
      assert.same({ retries = 1 }, a.llm)
      assert.equal("d", a.description)
      assert.equal(add, a.tools[1])
    end)

    it("rejects unknown options, naming the agent and listing the options", function()
      local err = h.error_of(agents.writer, { name = "w", tonne = "x" })
      assert.mentions("weft.agents.writer 'w': unknown option 'tonne' (options: ", err)
      assert.mentions("tone", err)
    end)

    it("rejects options that are not a table, bad names and bad instructions", function()
      assert.mentions("weft.agents.coder: options must be a table, got string", h.error_of(agents.coder, "x"))
      assert.mentions("weft.agents.coder: name must be a non-empty string", h.error_of(agents.coder, { name = "" }))
      assert.mentions("instructions must be a string", h.error_of(agents.coder, { instructions = 1 }))
      assert.mentions("extra_instructions must be a string", h.error_of(agents.coder, { extra_instructions = {} }))
    end)

    it("lets weft.agent report a bad model, at the caller's line", function()
      local err = h.error_of(function() agents.coder{ model = "nonsense" } end)
      assert.mentions("agent 'coder'", err)
      assert.mentions("agent_configs_spec.lua:", err)
    end)

    it("reports its own misuse at the caller's line", function()
      assert.mentions("agent_configs_spec.lua:", h.error_of(function() agents.writer{ tone = 1 } end))
    end)
  end)

  describe("kind options", function()
    it("research: focus and max_points", function()
      local text = agents.research{ focus = "costs", max_points = 3 }.instructions
      assert.mentions("at most 3 short bullet points", text)
      assert.mentions("Focus on: costs.", text)
      assert.mentions("max_points must be an integer >= 1", h.error_of(agents.research, { max_points = 0 }))
      assert.mentions("focus must be a string", h.error_of(agents.research, { focus = 1 }))
    end)

    it("writer: tone, audience, format, max_words", function()
      local text = agents.writer{ tone = "playful", audience = "children", format = "plain text",
                                  max_words = 150 }.instructions
      assert.mentions("Write for children in a playful tone.", text)
      assert.mentions("3. Format: plain text;", text)
      assert.mentions("Stay under 150 words.", text)
      assert.mentions("max_words must be an integer >= 1", h.error_of(agents.writer, { max_words = 1.5 }))
    end)

    it("reviewer: criteria and the APPROVED / REVISE: protocol", function()
      local text = agents.reviewer{ criteria = { "has a title", "under 100 words" } }.instructions
      assert.mentions("- has a title\n- under 100 words\n", text)
      assert.mentions("Always start your reply with APPROVED or REVISE:", text)
      assert.mentions("criteria must be a non-empty list of strings", h.error_of(agents.reviewer, { criteria = {} }))
      assert.mentions("criteria[2] must be a string", h.error_of(agents.reviewer, { criteria = { "a", 2 } }))
    end)

    it("coder: language and style", function()
      local text = agents.coder{ language = "C", style = "K&R braces" }.instructions
      assert.mentions("You are an expert C programmer.", text)
      assert.mentions("```c blocks", text)
      assert.mentions("Follow this style: K&R braces", text)
      assert.mentions("You are an expert Lua programmer.", agents.coder().instructions)
      assert.mentions("language must be a non-empty string", h.error_of(agents.coder, { language = "" }))
    end)

    it("translator: target and source languages and a sorted glossary", function()
      local text = agents.translator{ target_language = "German", source_language = "English",
                                      glossary = { workflow = "Arbeitsablauf", agent = "Agent" } }.instructions
      assert.mentions("from English into German.", text)
      assert.mentions("- agent -> Agent\n- workflow -> Arbeitsablauf", text)
      assert.mentions("into French.", agents.translator().instructions)
      assert.mentions("glossary must map strings to strings", h.error_of(agents.translator, { glossary = { a = 1 } }))
    end)

    it("summarizer: max_words and style", function()
      local text = agents.summarizer{ max_words = 40, style = "paragraph" }.instructions
      assert.mentions("one short paragraph, in at most 40 words", text)
      assert.mentions("a few bullet points", agents.summarizer().instructions)
      assert.mentions("style must be 'bullets' or 'paragraph'", h.error_of(agents.summarizer, { style = "poem" }))
    end)
  end)

  describe("create", function()
    it("rejects an unknown kind, listing the kinds", function()
      assert.mentions("weft.agents.create: unknown kind 'poet' (kinds: research, writer, reviewer, coder, translator, summarizer)",
                      h.error_of(agents.create, "poet"))
      assert.mentions("unknown kind 'make'", h.error_of(agents.create, "make"))
    end)
  end)

  describe("verdict", function()
    it("reads APPROVED, in any case, with or without a comment", function()
      assert.same({ "approve", "" }, { agents.verdict("APPROVED") })
      assert.same({ "approve", "Clear and accurate." }, { agents.verdict("  Approved: Clear and accurate.\n") })
    end)

    it("reads REVISE: with its feedback", function()
      assert.same({ "revise", "1. Add an example." }, { agents.verdict("REVISE: 1. Add an example.") })
    end)

    it("treats anything else as feedback to revise", function()
      assert.same({ "revise", "Needs an example." }, { agents.verdict("Needs an example.") })
      assert.same({ "revise", "" }, { agents.verdict(nil) })
    end)
  end)

  describe("with a model", function()
    after_each(function() llm.mock.register("cfg_probe", nil) end)

    it("sends its instructions as the system message and answers", function()
      llm.mock.register("cfg_probe", { { reply = function(messages)
        return messages[1].role .. ": " .. messages[1].content:sub(1, 40) .. " | " .. messages[#messages].content
      end } })
      local a = agents.translator{ model = "mock:cfg_probe", target_language = "Italian" }
      local res = assert(a:run("Good morning"))
      assert.equal("system: You are a professional translator. Trans | Good morning", res.text)
    end)

    it("uses the tools it is given", function()
      local lookup = weft.tool{ name = "lookup", description = "Look a topic up",
                                parameters = { type = "object", properties = { q = { type = "string" } },
                                               required = { "q" } },
                                handler = function(args) return "facts about " .. args.q end }
      local a = agents.research{ tools = { lookup } }
      local res = assert(a:run('call lookup {"q": "tides"}'))
      assert.equal("tool said: facts about tides", res.text)
    end)
  end)
end)
