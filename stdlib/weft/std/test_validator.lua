--- Built-in validator: builds the code with a test program and runs it in
-- the sandbox. The test program reports `PASS name` / `FAIL name: why`
-- lines (counted) and exits non-zero on failure.
-- Input `{code, language, task?, attempt?}`; sends `{passed, errors,
-- feedback, code, language, task, attempt, test_count, tests_passed,
-- tests_failed}`.
-- Uses weft, weft.sandbox, weft.std.code.
local weft = require "weft"
local sandbox = require "weft.sandbox"
local code = require "weft.std.code"

local type, error, concat = type, error, table.concat

--- Create the executor: `test_validator(id, {tests = "<test source>" |
-- function(code) return source end, language = "c", flags, timeout})`. The
-- code is compiled as its own unit and linked with the tests.
return function(id, opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("test_validator: options must be a table", 2) end
  if type(opts.tests) ~= "string" and type(opts.tests) ~= "function" then
    error(("executor '%s': tests must be the test program's source (a string) or a function"):format(id), 2)
  end
  local flags = opts.flags or { "-Wall" }
  return weft.executor(id, {
    kind = "validator",
    description = "runs tests against the code in the sandbox",
    handle = function(msg, ctx)
      if type(msg) ~= "table" or type(msg.code) ~= "string" then
        error(("executor '%s': expects {code = string, language = ...}"):format(id), 0)
      end
      local lang = code.language(id, msg.language or opts.language)
      local tests = type(opts.tests) == "function" and opts.tests(msg.code) or opts.tests
      local dir = code.workdir(id, { ["main." .. lang.ext] = msg.code, ["tests." .. lang.ext] = tests })
      local argv = { lang.cc }
      for _, f in ipairs(flags) do argv[#argv + 1] = f end
      for _, a in ipairs({ "main." .. lang.ext, "tests." .. lang.ext, "-o", "tests" }) do argv[#argv + 1] = a end
      local ok, build = pcall(code.run, id, dir, argv, opts)
      local run
      if ok and build.exit_code == 0 then
        ok, run = pcall(code.run, id, dir, { "./tests" }, opts)
      end
      sandbox.remove(dir)
      if not ok then error(build or run, 0) end
      local out = {
        code = msg.code, language = msg.language or opts.language or "c",
        task = msg.task or msg.prompt, attempt = msg.attempt,
        test_count = 0, tests_passed = 0, tests_failed = 0,
      }
      if not run then
        out.passed = false
        out.errors = weft.json.array(code.diagnostics(build.stderr))
        out.feedback = code.summary("building the tests", build) .. ":\n" .. concat(out.errors, "\n")
      else
        local failures = {}
        for line in (run.stdout .. "\n" .. run.stderr):gmatch("[^\n]+") do
          if line:match("^PASS") then
            out.tests_passed = out.tests_passed + 1
          elseif line:match("^FAIL") then
            out.tests_failed = out.tests_failed + 1
            failures[#failures + 1] = line
          end
        end
        out.test_count = out.tests_passed + out.tests_failed
        out.passed = run.exit_code == 0 and out.tests_failed == 0
        if not out.passed and #failures == 0 then failures[1] = code.summary("the tests", run) end
        out.errors = weft.json.array(failures)
        out.feedback = out.passed and ("%d tests passed"):format(out.tests_passed)
          or concat(failures, "\n")
      end
      ctx:log(out.passed and "info" or "warn", "tests: " .. out.feedback:gsub("\n", " | "))
      ctx:send(out)
    end,
  })
end
