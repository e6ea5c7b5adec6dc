--- weft.agents.coder — a coding agent: writes working code for a task,
-- with tests and documentation. Options (besides the common ones of
-- weft.agents): `language` (default "Lua"), `style` (coding conventions to
-- follow, a string).
-- Uses weft.agents.

local DEF = {
  temperature = 0.1,
  description = "Writes working code with tests and documentation",
  options = { language = { type = "string", minLength = 1 }, style = { type = "string", minLength = 1 } },
}

--- The instructions of a coder agent.
function DEF.instructions(opts)
  local lang = opts.language or "Lua"
  local text = "You are an expert " .. lang .. " programmer.\n"
    .. "1. Generate: write complete, working " .. lang .. " code for the task; handle bad input "
    .. "with clear errors; no placeholders or TODOs.\n"
    .. "2. Test: include tests covering the normal cases and the edge cases.\n"
    .. "3. Document: a one-line comment on every public function, and a short usage note.\n"
    .. "Reply with the code in fenced ```" .. lang:lower() .. " blocks (code first, tests second), "
    .. "then at most three sentences on design choices. When you are given review comments or "
    .. "errors, fix every one of them and reply with the complete corrected code."
  if opts.style then text = text .. "\nFollow this style: " .. opts.style end
  return text
end

--- Make a coder agent.
return function(opts)
  local agent = require("weft.agents").make("coder", DEF, opts, 2)
  return agent
end
