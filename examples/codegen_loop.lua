-- examples/codegen_loop.lua — generate, compile, test, and feed failures
-- back to the generator until the code passes. Offline: the mock model is
-- scripted to write a C function that does not compile first, and the
-- fixed one once it sees the compiler's errors. gcc and a test binary,
-- run in the sandbox (bubblewrap: scripts/deps.sh installs it), validate
-- each attempt; the test validator expects the 3 tests TESTS declares.
--
--   weft run examples/codegen_loop.lua --events pretty
--   weft run examples/codegen_loop.lua --input "<another task for the model>"
--
-- Graph:  generate -> compile -(passed)-> test -(passed)-> done
--            ^           |(failed)          |(failed)
--            +-----------+------------------+
local weft = require "weft"
local llm = require "weft.llm"
local std = require "weft.std"

local TASK = "Write a C function `int add(int a, int b)` that returns the sum of a and b."

-- The scripted model: a first attempt with a type error, then the fix
-- whenever the prompt carries the compiler's feedback.
llm.mock.register("codegen", {
  {
    match = "previous attempt failed",
    reply = "Here is the fixed version:\n```c\nint add(int a, int b)\n{\n  return a + b;\n}\n```",
  },
  {
    reply = "```c\nint add(int a, int b)\n{\n  return a + \"b\";\n}\n```",
  },
})

local TESTS = [[
#include <stdio.h>
int add(int a, int b);
static int failures;
static void check(const char *name, int got, int want) {
  if (got == want) printf("PASS %s\n", name);
  else { printf("FAIL %s: got %d, want %d\n", name, got, want); failures++; }
}
int main(void) {
  check("small", add(2, 3), 5);
  check("negative", add(-4, 1), -3);
  check("zero", add(0, 0), 0);
  return failures != 0;
}
]]

local generate = std.llm_generator("generate", {
  model = "mock:codegen", language = "c", prompt = TASK, max_attempts = 4,
})
local compile = std.compile_validator("compile", { language = "c" })
local test = std.test_validator("test", { tests = TESTS, test_count = 3 })
local done = weft.executor("done", function(result, ctx)
  ctx:yield_output({
    code = result.code, attempts = result.attempt,
    tests_passed = result.tests_passed, test_count = result.test_count,
  })
end)

local function passed(r) return r.passed end
local function failed(r) return not r.passed end

return weft.workflow("codegen_loop")
  :start(generate)
  :edge(generate, compile)
  :edge(compile, test, { when = passed, name = "compiles" })
  :edge(compile, generate, { when = failed, name = "compile errors" })
  :edge(test, done, { when = passed, name = "tests pass" })
  :edge(test, generate, { when = failed, name = "tests fail" })
  :build()
