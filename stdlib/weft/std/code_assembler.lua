--- Built-in executor: assembles code parts into one source.
-- Input `{parts = {{name, code, language, section?}, ...}, language}` or a
-- list of parts (what a fan-in delivers); sends `{code, language,
-- part_count, size_bytes}`. Parts keep their order; a section title
-- becomes a comment above its part.
-- Uses weft.
local weft = require "weft"

local type, error, concat, ipairs = type, error, table.concat, ipairs

local COMMENT = { c = "/* %s */", cpp = "// %s", lua = "-- %s", python = "# %s" }

--- Create the executor: `code_assembler(id, {language = "c"})`.
return function(id, opts)
  opts = opts or {}
  return weft.executor(id, {
    kind = "worker",
    description = "assembles code parts into one source",
    handle = function(msg, ctx)
      if type(msg) ~= "table" then error(("executor '%s': expects a list of parts or {parts = ...}"):format(id), 0) end
      local parts = msg.parts or msg
      local lang = msg.language or opts.language or (parts[1] and parts[1].language) or "c"
      local comment = COMMENT[lang] or "/* %s */"
      local out = {}
      for i, p in ipairs(parts) do
        if type(p) ~= "table" or type(p.code) ~= "string" then
          error(("executor '%s': part %d has no code string"):format(id, i), 0)
        end
        local title = p.section or p.name
        local body = (p.code:gsub("%s+$", ""))
        out[#out + 1] = title and (comment:format(title) .. "\n" .. body) or body
      end
      if #out == 0 then error(("executor '%s': no parts to assemble"):format(id), 0) end
      local src = concat(out, "\n\n") .. "\n"
      ctx:send({ code = src, language = lang, part_count = #parts, size_bytes = #src })
    end,
  })
end
