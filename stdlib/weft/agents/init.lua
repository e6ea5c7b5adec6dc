--- weft.agents — ready-made specialised agents (the agent registry of the
-- PocketFlow seed): research, writer, reviewer, coder, translator and
-- summarizer. Each is a function `(opts) -> weft.agent{...}`:
--
--   local agents = require "weft.agents"
--   local writer = agents.writer{ model = "openai:gpt-4o-mini", tone = "playful" }
--   local same = agents.create("writer", { tone = "playful" })
--
-- Common options: `name` (default the kind), `model` (else $WEFT_MODEL,
-- else "mock:echo"), `instructions` (replaces the built-in ones),
-- `extra_instructions` (appended to them), `description` (the agent's;
-- each kind has one), and what weft.agent takes:
-- `tools`, `temperature`, `max_tokens`, `memory`, `reducer`,
-- `max_tool_rounds`, `llm`. Each kind adds its own options (see its file).
-- An unknown option raises naming the agent and the option.
--
-- The reviewer answers "APPROVED" or "REVISE: <feedback>";
-- `agents.verdict(text)` reads such a reply back.
-- Uses weft.agent (loaded when an agent is made).
local type, error, pairs, tostring, require, ipairs =
  type, error, pairs, tostring, require, ipairs
local sformat = string.format

local _M = {}

--- The kinds of agent, in the seed's order.
_M.KINDS = { "research", "writer", "reviewer", "coder", "translator", "summarizer" }

--- The model used when neither opts.model nor $WEFT_MODEL is set.
_M.DEFAULT_MODEL = "mock:echo"

--- The environment reader (os.getenv); tests may replace it.
_M.getenv = os.getenv

local check = require "weft.check"

-- The option spec of a kind (weft.check): weft.agent's options, plus
-- extra_instructions and the kind's own (def.options: name -> true or a
-- property schema); made on first use, as weft.agent loads then.
local function spec_of(kind, def)
  if def._spec then return def._spec end
  local props = {}
  for k, p in pairs(require("weft.agent").OPTIONS.properties) do props[k] = p end
  props.extra_instructions = { type = "string" }
  for k, p in pairs(def.options or {}) do props[k] = p == true and { type = "any" } or p end
  def._spec = check.spec("weft.agents." .. kind, { properties = props })
  return def._spec
end

--- The model of an agent: opts.model, else $WEFT_MODEL, else "mock:echo".
function _M.model(opts)
  local m = opts and opts.model
  if m ~= nil then return m end
  m = _M.getenv("WEFT_MODEL")
  if m ~= nil and m ~= "" then return m end
  return _M.DEFAULT_MODEL
end

--- Build an agent of a kind: `make(kind, def, opts, level)` where def =
-- {instructions = fn(opts) -> string, description = "...", options =
-- {name = true, ...}, temperature = n, check = fn(opts) -> err | nil}, and
-- level the error level of the kind function's caller. Used by the kind
-- modules.
function _M.make(kind, def, opts, level)
  level = (level or 1) + 1
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error(sformat("weft.agents.%s: options must be a table, got %s", kind, type(opts)), level)
  end
  local name = opts.name == nil and kind or opts.name
  if type(name) ~= "string" or name == "" then
    error(sformat("weft.agents.%s: name must be a non-empty string", kind), level)
  end
  local what = sformat("weft.agents.%s '%s'", kind, name)
  check.options(spec_of(kind, def), opts, level, what)
  if def.check then
    local msg = def.check(opts)
    if msg then error(what .. ": " .. msg, level) end
  end
  local instructions = opts.instructions or def.instructions(opts)
  if opts.extra_instructions and opts.extra_instructions ~= "" then
    instructions = instructions .. "\n\n" .. opts.extra_instructions
  end
  local temperature = opts.temperature
  if temperature == nil then temperature = def.temperature end
  local agent = require("weft.agent").new({
    name = name, instructions = instructions, model = _M.model(opts),
    description = opts.description or def.description,
    tools = opts.tools, temperature = temperature, max_tokens = opts.max_tokens,
    memory = opts.memory, reducer = opts.reducer, max_tool_rounds = opts.max_tool_rounds,
    llm = opts.llm,
  }, level)
  return agent
end

--- A reviewer's verdict: "approve" when the reply starts with APPROVED
-- (any case), else "revise"; and the feedback (the text after the first
-- word and an optional colon, or the whole reply).
function _M.verdict(text)
  if type(text) ~= "string" then return "revise", "" end
  local body = text:match("^%s*(.-)%s*$")
  local word, rest = body:match("^(%a+)%s*:?%s*(.*)$")
  if word and word:upper() == "APPROVED" then return "approve", rest end
  if word and word:upper() == "REVISE" then return "revise", rest end
  return "revise", body
end

--- Make an agent of a kind by name: `create("writer", opts)`.
function _M.create(kind, opts)
  local make = type(kind) == "string" and _M[kind]
  local known = false
  for _, k in ipairs(_M.KINDS) do if k == kind then known = true end end
  if not known or type(make) ~= "function" then
    check.unknown("weft.agents.create", "kind", kind, _M.KINDS, 2)
  end
  return make(opts)
end

for _, k in ipairs(_M.KINDS) do _M[k] = require("weft.agents." .. k) end

return _M
