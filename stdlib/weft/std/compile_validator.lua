--- Built-in validator: compiles code in the sandbox.
-- Input `{code, language, task?, attempt?}`; sends `{passed, errors,
-- feedback, code, language, task, attempt}` — route on `passed` with a
-- conditional edge (back to the generator on failure).
-- Uses weft, weft.sandbox, weft.std.code.
local weft = require "weft"
local sandbox = require "weft.sandbox"
local code = require "weft.std.code"

local type, error, concat = type, error, table.concat

--- Create the executor: `compile_validator(id, {language = "c", flags =
-- {"-Wall", "-Werror"}, timeout, memory_mb, isolation})`. The compiler runs
-- in bwrap isolation; without bubblewrap every invocation fails naming the
-- fix, unless `isolation = "none"` opts out (see weft.sandbox).
return function(id, opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("compile_validator: options must be a table", 2) end
  code.check_opts(id, opts)
  local flags = opts.flags or { "-Wall", "-Wextra", "-Werror" }
  return weft.executor(id, {
    kind = "validator",
    description = "compiles code in the sandbox",
    handle = function(msg, ctx)
      if type(msg) ~= "table" or type(msg.code) ~= "string" then
        error(("executor '%s': expects {code = string, language = ...}"):format(id), 0)
      end
      local lang = code.language(id, msg.language or opts.language)
      local src = "main." .. lang.ext
      local dir = code.workdir(id, { [src] = msg.code })
      local argv = { lang.cc }
      for _, f in ipairs(flags) do argv[#argv + 1] = f end
      for _, a in ipairs({ "-c", src, "-o", "main.o" }) do argv[#argv + 1] = a end
      local ok, r = pcall(code.run, id, dir, argv, opts)
      sandbox.remove(dir)
      if not ok then error(r, 0) end
      local passed = r.exit_code == 0
      local errors = passed and {} or code.diagnostics(r.stderr)
      if not passed then ctx:log("warn", "compile failed: " .. concat(errors, " | ")) end
      ctx:send({
        passed = passed, errors = weft.json.array(errors),
        feedback = passed and "compiles cleanly" or (code.summary("compilation", r) .. ":\n" .. concat(errors, "\n")),
        code = msg.code, language = msg.language or opts.language or "c",
        task = msg.task or msg.prompt, attempt = msg.attempt,
      })
    end,
  })
end
