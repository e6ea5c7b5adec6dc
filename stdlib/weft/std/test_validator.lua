--- Built-in validator: builds the code with a test program and runs it in
-- the sandbox. The test program prints `PASS name` / `FAIL name: why`
-- lines on stdout and returns non-zero from main on failure; the options
-- declare how many tests it runs (`test_count`).
--
-- The verdict cannot be forged by printing PASS lines: the program is
-- linked with a harness (`-Wl,--wrap=main`) that, once the test program's
-- main has returned, prints a line with a token drawn at random for this
-- invocation and main's return value. Only the lines before that line
-- count, and the tests pass only when it is there, main returned 0, no
-- test failed and exactly `test_count` tests passed. Code that exits from
-- a constructor or from a tested function, or prints extra PASS lines,
-- fails. (Code under test shares the test program's process: code written
-- to read the token out of its own memory could still forge the line.)
--
-- Input `{code, language, task?, attempt?}`; sends `{passed, errors,
-- feedback, code, language, task, attempt, test_count, tests_passed,
-- tests_failed}` (test_count: the declared number).
-- Uses weft, weft.sandbox, weft.std.code.
local weft = require "weft"
local sandbox = require "weft.sandbox"
local code = require "weft.std.code"

local type, error, concat, floor = type, error, table.concat, math.floor

-- The harness: valid C and C++; TOKEN is replaced per invocation.
local HARNESS = [[
/* weft test harness (linked with -Wl,--wrap=main): reports the return
 * value of the test program's main once it has returned */
#include <stdio.h>
#ifdef __cplusplus
extern "C" {
#endif
int __real_main(int argc, char **argv, char **envp);
int __wrap_main(int argc, char **argv, char **envp) {
  int rc = __real_main(argc, argv, envp);
  fflush(stdout);
  printf("\nTOKEN %d\n", rc);
  fflush(stdout);
  return rc;
}
#ifdef __cplusplus
}
#endif
]]

-- Count the PASS/FAIL lines of stdout before the harness's verdict line.
-- Returns passed, failed, failure lines, and main's return value (nil when
-- the verdict line is missing).
local function verdict(stdout, token)
  local passed, failed, failures, rc = 0, 0, {}, nil
  local prefix = token .. " "
  for line in stdout:gmatch("[^\n]+") do
    if line:sub(1, #prefix) == prefix then
      rc = tonumber(line:sub(#prefix + 1):match("^(%-?%d+)$"))
      if rc then break end
    end
    if line:match("^PASS") then
      passed = passed + 1
    elseif line:match("^FAIL") then
      failed = failed + 1
      failures[#failures + 1] = line
    end
  end
  return passed, failed, failures, rc
end

--- Create the executor: `test_validator(id, {tests = "<test source>" |
-- function(code) return source end, test_count = N, language = "c",
-- flags, timeout, isolation})`. The code is compiled as its own unit and
-- linked with the tests and the harness.
return function(id, opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("test_validator: options must be a table", 2) end
  if type(opts.tests) ~= "string" and type(opts.tests) ~= "function" then
    error(("executor '%s': tests must be the test program's source (a string) or a function"):format(id), 2)
  end
  local declared = opts.test_count
  if type(declared) ~= "number" or declared < 1 or declared ~= floor(declared) then
    error(("executor '%s': test_count (the number of tests the test program runs) must be a positive integer"):format(id), 2)
  end
  code.check_opts(id, opts)
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
      local token = "weft-verdict-" .. code.token(id)
      local ext = lang.ext
      local dir = code.workdir(id, {
        ["main." .. ext] = msg.code, ["tests." .. ext] = tests,
        ["weft_harness." .. ext] = HARNESS:gsub("TOKEN", token),
      })
      local argv = { lang.cc }
      for _, f in ipairs(flags) do argv[#argv + 1] = f end
      for _, a in ipairs({ "main." .. ext, "tests." .. ext, "weft_harness." .. ext,
                           "-Wl,--wrap=main", "-o", "tests" }) do
        argv[#argv + 1] = a
      end
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
        test_count = declared, tests_passed = 0, tests_failed = 0,
      }
      if not run then
        out.passed = false
        out.errors = weft.json.array(code.diagnostics(build.stderr))
        out.feedback = code.summary("building the tests", build) .. ":\n" .. concat(out.errors, "\n")
      else
        local passed, failed, failures, rc = verdict(run.stdout, token)
        out.tests_passed, out.tests_failed = passed, failed
        out.passed = rc == 0 and run.exit_code == 0 and failed == 0 and passed == declared
        if not out.passed and #failures == 0 then
          if rc == nil and not run.timed_out and not run.signal then
            failures[1] = ("the test program exited (code %s) before its main returned"):format(
              tostring(run.exit_code))
          elseif rc ~= nil and passed + failed ~= declared then
            failures[1] = ("%d tests declared, %d reported (%d passed, %d failed)"):format(
              declared, passed + failed, passed, failed)
          else
            failures[1] = code.summary("the tests", run)
          end
        end
        out.errors = weft.json.array(failures)
        out.feedback = out.passed and ("%d tests passed"):format(passed) or concat(failures, "\n")
      end
      ctx:log(out.passed and "info" or "warn", "tests: " .. out.feedback:gsub("\n", " | "))
      ctx:send(out)
    end,
  })
end
