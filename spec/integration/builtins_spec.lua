-- Built-in executors (weft.std) and the codegen example: real gcc and test
-- binaries in the sandbox (bubblewrap), the mock model scripted offline;
-- test verdicts that code under test cannot forge; the validators without
-- bubblewrap (a child weft whose PATH has no bwrap).
local weft = require "weft"
local llm = require "weft.llm"
local std = require "weft.std"
local code = require "weft.std.code"
require "helpers" -- assert.mentions

local root = os.getenv("WEFT_SOURCE_DIR") or "."

-- Run a one-executor workflow on msg; returns the result and what the
-- executor sent (collected by a sink).
local function run_one(ex, msg)
  local got = {}
  local sink = weft.executor("sink", function(m) got[#got + 1] = m end)
  local res = weft.workflow("one"):start(ex):edge(ex, sink):build():run(msg)
  return res, got[1]
end

describe("weft.std.code", function()
  it("extracts the first fenced block without its language tag", function()
    assert.equal("int x;\n", code.extract("Sure:\n```c\nint x;\n```\nbye"))
    assert.equal("plain text\n", code.extract("  plain text  "))
  end)

  it("keeps compiler error lines as diagnostics", function()
    local d = code.diagnostics("a.c: In function 'f':\na.c:2:3: error: bad\nnote\na.c:4:1: error: worse\n")
    assert.same({ "a.c:2:3: error: bad", "a.c:4:1: error: worse" }, d)
  end)

  it("rejects an unsupported language naming the executor", function()
    assert.has_error(function() code.language("gen", "cobol") end,
      "executor 'gen': unsupported language 'cobol' (supported: c, cpp)")
  end)
end)

describe("compile_validator", function()
  it("passes code that compiles", function()
    local res, out = run_one(std.compile_validator("cc"), { code = "int f(void) { return 1; }\n", language = "c" })
    assert.equal("completed", res.status)
    assert.is_true(out.passed)
    assert.same({}, out.errors)
  end)

  it("fails code that does not compile, with the compiler's errors", function()
    local res, out = run_one(std.compile_validator("cc"), { code = "int f(void) { return x; }\n", task = "t" })
    assert.equal("completed", res.status)
    assert.is_false(out.passed)
    assert.truthy(out.errors[1]:find("error: 'x' undeclared", 1, true))
    assert.equal("t", out.task)
    assert.truthy(out.feedback:find("compilation failed with exit code 1", 1, true))
  end)

  it("fails the invocation on a message without code", function()
    local res = run_one(std.compile_validator("cc"), { nope = 1 })
    assert.equal("failed", res.status)
    assert.truthy(res.error:find("executor 'cc': expects {code = string", 1, true))
  end)
end)

describe("test_validator", function()
  local tests = [[
#include <stdio.h>
int twice(int);
int main(void) {
  int bad = 0;
  if (twice(2) == 4) puts("PASS two"); else { puts("FAIL two: wrong"); bad = 1; }
  if (twice(0) == 0) puts("PASS zero"); else { puts("FAIL zero: wrong"); bad = 1; }
  return bad;
}
]]

  local function validator(n) return std.test_validator("t", { tests = tests, test_count = n or 2 }) end

  it("counts passing tests", function()
    local _, out = run_one(validator(), { code = "int twice(int x) { return 2 * x; }\n" })
    assert.is_true(out.passed)
    assert.equal(2, out.test_count)
    assert.equal(2, out.tests_passed)
  end)

  it("reports failing tests by name", function()
    local _, out = run_one(validator(), { code = "int twice(int x) { return x + 2; }\n" })
    assert.is_false(out.passed)
    assert.equal(1, out.tests_failed)
    assert.same({ "FAIL zero: wrong" }, out.errors)
  end)

  it("reports code that does not build with the tests", function()
    local _, out = run_one(validator(), { code = "int other(int x) { return x; }\n" })
    assert.is_false(out.passed)
    assert.truthy(out.feedback:find("building the tests failed", 1, true))
  end)

  it("rejects PASS lines forged by a constructor that exits before main", function()
    local forged = [[
#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void forge(void) {
  puts("PASS two"); puts("PASS zero"); fflush(stdout); _exit(0);
}
int twice(int x) { return x; }
]]
    local _, out = run_one(validator(), { code = forged })
    assert.is_false(out.passed)
    assert.same({ "the test program exited (code 0) before its main returned" }, out.errors)
  end)

  it("rejects PASS lines printed by the tested function before it exits", function()
    local forged = [[
#include <stdio.h>
#include <stdlib.h>
int twice(int x) { (void)x; puts("PASS two"); puts("PASS zero"); exit(0); }
]]
    local _, out = run_one(validator(), { code = forged })
    assert.is_false(out.passed)
    assert.mentions("before its main returned", out.feedback)
  end)

  it("rejects extra PASS lines: the count must match the declared number", function()
    local extra = [[
#include <stdio.h>
__attribute__((constructor)) static void extra(void) { puts("PASS bonus"); }
int twice(int x) { return 2 * x; }
]]
    local _, out = run_one(validator(), { code = extra })
    assert.is_false(out.passed)
    assert.equal(3, out.tests_passed)
    assert.same({ "2 tests declared, 3 reported (3 passed, 0 failed)" }, out.errors)
  end)

  it("fails when fewer tests ran than declared", function()
    local _, out = run_one(validator(3), { code = "int twice(int x) { return 2 * x; }\n" })
    assert.is_false(out.passed)
    assert.equal(3, out.test_count)
    assert.same({ "3 tests declared, 2 reported (2 passed, 0 failed)" }, out.errors)
  end)

  it("requires the declared number of tests", function()
    assert.has_error(function() std.test_validator("t", { tests = tests }) end,
      "executor 't': test_count (the number of tests the test program runs) must be a positive integer")
  end)
end)

describe("the code validators without bubblewrap", function()
  it("fail naming the fix, and run with isolation = \"none\"", function()
    local procs = require "support.procs"
    local rc, out, err = procs.run({ procs.weft_bin(), "exec", root .. "/spec/fixtures/sandbox_child.lua" },
      { WEFT_SPEC_CASE = "nobwrap", PATH = "/nonexistent" }, 120)
    assert.equal(0, rc, err)
    assert.mentions("validator_status=failed\n", out)
    assert.mentions("executor 'cc': sandbox.run: bubblewrap (bwrap) is not usable: "
      .. "bwrap is not on PATH; install bubblewrap", out)
    assert.mentions('or pass isolation = "none"', out)
    assert.mentions("validator_none_passed=true\n", out)
  end)

  it("reject an unknown isolation naming the executor (sandbox.run's own schema), at the caller", function()
    assert.has_error(function() std.compile_validator("cc", { isolation = "docker" }) end,
      "executor 'cc': isolation must be \"bwrap\" (the default) or \"none\", got 'docker'")
    local ok, err = pcall(function()
      std.test_validator("tv", { tests = "int main(void) { return 0; }", test_count = 1, isolation = 5 })
    end)
    assert.is_false(ok)
    assert.mentions("builtins_spec.lua:", err)
    assert.mentions("executor 'tv': isolation must be \"bwrap\" (the default) or \"none\", got 5", err)
  end)

  it("run commands with the sandbox's default environment, in the C locale", function()
    local dir = code.workdir("env", {})
    finally(function() require("weft.sandbox").remove(dir) end)
    local r = code.run("env", dir, { "/usr/bin/env" }, { isolation = "none" })
    local got = {}
    for k, v in r.stdout:gmatch("([%w_]+)=([^\n]*)") do got[k] = v end
    for k, v in pairs(require("weft.sandbox").ENV) do assert.equal(v, got[k], k) end
    assert.equal("C", got.LC_ALL)
  end)
end)

describe("code_assembler", function()
  it("joins parts in order under section comments", function()
    local _, out = run_one(std.code_assembler("asm"), {
      language = "c",
      parts = { { name = "types", code = "typedef int t;\n", section = "Types" }, { name = "impl", code = "t f(void) { return 0; }" } },
    })
    assert.equal("/* Types */\ntypedef int t;\n\n/* impl */\nt f(void) { return 0; }\n", out.code)
    assert.equal(2, out.part_count)
    assert.equal(#out.code, out.size_bytes)
  end)
end)

describe("sub_workflow", function()
  it("runs the inner workflow and reports its outputs", function()
    local inner = weft.workflow("inner"):start(weft.executor("dbl", function(m, ctx)
      weft.sleep(0.001)
      ctx:yield_output(m * 2)
    end)):build()
    local _, out = run_one(std.sub_workflow("sub", inner), 21)
    assert.same({ 42 }, out.outputs)
    assert.is_true(out.success)
    assert.equal(1, out.superstep_count)
  end)

  it("fails the invocation when asked to and the inner run fails", function()
    local inner = weft.workflow("bad"):start(weft.executor("boom", function() error("nope") end)):build()
    local res = run_one(std.sub_workflow("sub", inner, { fail_on_error = true }), 1)
    assert.equal("failed", res.status)
    assert.truthy(res.error:find("sub-workflow 'bad' failed", 1, true))
  end)
end)

describe("llm_generator", function()
  after_each(function() llm.mock.reset() end)

  it("gives up after max_attempts naming the errors", function()
    local gen = std.llm_generator("gen", { max_attempts = 2 })
    local res = run_one(gen, { passed = false, task = "t", code = "x", errors = { "e1" }, attempt = 2 })
    assert.equal("failed", res.status)
    assert.truthy(res.error:find("executor 'gen': still failing after 2 attempts: e1", 1, true))
  end)

  it("sends the code of the model's fenced reply", function()
    llm.mock.register("gen1", { { reply = "```c\nint one(void) { return 1; }\n```" } })
    local _, out = run_one(std.llm_generator("gen", { model = "mock:gen1" }), "write one()")
    assert.equal("int one(void) { return 1; }\n", out.code)
    assert.equal("write one()", out.task)
    assert.equal(1, out.attempt)
  end)
end)

describe("examples/codegen_loop.lua", function()
  it("fixes the code after the compiler's feedback and passes the tests", function()
    local wf = dofile(root .. "/examples/codegen_loop.lua")
    local res = wf:run("")
    assert.equal("completed", res.status)
    assert.equal(1, #res.outputs)
    assert.equal(2, res.outputs[1].attempts)
    assert.equal(3, res.outputs[1].tests_passed)
    local warned
    for _, ev in ipairs(res.events) do
      if ev.type == "log" and ev.executor_id == "compile" then warned = ev.data.message end
    end
    assert.truthy(warned and warned:find("error:", 1, true))
  end)
end)
