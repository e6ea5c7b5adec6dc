-- The weft command line, run as a child process ($WEFT_BIN, set by ctest;
-- default build/weft) on the fixture scripts of spec/fixtures/cli/, from the
-- source directory so error messages carry the relative fixture paths.
local cjson = require "cjson"
local files = require "support.files"

local SRC = os.getenv("WEFT_SOURCE_DIR") or "."
local BIN = os.getenv("WEFT_BIN") or (SRC .. "/build/weft")
local FIX = "spec/fixtures/cli/"

local shquote = files.quote

local function lines_of(s)
  local out = {}
  for line in s:gmatch("([^\n]*)\n") do out[#out + 1] = line end
  return out
end

-- One test per case { what, args, pattern }, named "<verb> <what>", that runs
-- check(args, pattern).
local function each_case(verb, check, cases)
  for _, case in ipairs(cases) do
    it(verb .. " " .. case[1], function() check(case[2], case[3]) end)
  end
end

-- Run `weft ARGS...` (each argument quoted); returns {code, out, err,
-- out_lines, err_lines}. stdin is empty unless `stdin` is given.
local function weft(args, stdin)
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = shquote(a) end
  local errfile = os.tmpname()
  local infile = files.write(os.tmpname(), stdin or "")
  local cmd = string.format("cd %s && %s %s <%s 2>%s; echo \"__rc=$?\"",
    shquote(SRC), shquote(BIN), table.concat(quoted, " "), shquote(infile), shquote(errfile))
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a")
  p:close()
  local err = files.read(errfile)
  os.remove(errfile)
  os.remove(infile)
  local code = tonumber(out:match("__rc=(%d+)\n?$"))
  out = out:gsub("__rc=%d+\n?$", "")
  return { code = code, out = out, err = err, out_lines = lines_of(out), err_lines = lines_of(err) }
end

describe("weft CLI", function()
  describe("run", function()
    it("prints every output as one JSON line and exits 0", function()
      local r = weft({ "run", FIX .. "good.lua", "--input", "hello" })
      assert.are.equal("", r.err)
      assert.are.equal(0, r.code)
      assert.are.equal(3, #r.out_lines)
      assert.are.equal('"HELLO"', r.out_lines[1])
      assert.are.same({ text = "HELLO", len = 5 }, cjson.decode(r.out_lines[2]))
      assert.are.equal('"HELLO!"', r.out_lines[3])
    end)

    it("takes the empty string as input when none is given", function()
      local r = weft({ "run", FIX .. "good.lua" })
      assert.are.equal(0, r.code)
      -- "" is short: only writer runs; its two outputs
      assert.are.same({ '""' }, { r.out_lines[1] })
      assert.are.same({ text = "", len = 0 }, cjson.decode(r.out_lines[2]))
      assert.are.equal(2, #r.out_lines)
    end)

    it("passes extra arguments and those after -- to the script as ...", function()
      local r = weft({ "run", FIX .. "good.lua", "--input", "hi", "--", "?" })
      assert.are.equal(0, r.code)
      assert.are.equal('"HI?"', r.out_lines[1])
      r = weft({ "run", FIX .. "good.lua", "--input=hi", "~" })
      assert.are.equal(0, r.code)
      assert.are.equal('"HI~"', r.out_lines[1])
    end)

    it("builds a returned builder", function()
      local r = weft({ "run", FIX .. "builder.lua", "--input", "x" })
      assert.are.equal(0, r.code)
      assert.are.same({ '"x"' }, r.out_lines)
    end)

    it("decodes --input-json", function()
      local r = weft({ "run", FIX .. "json_input.lua", "--input-json", '{"name":"ada","count":2}' })
      assert.are.equal("", r.err)
      assert.are.equal(0, r.code)
      assert.are.same({ greeting = "hello ada", i = 1 }, cjson.decode(r.out_lines[1]))
      assert.are.same({ greeting = "hello ada", i = 2 }, cjson.decode(r.out_lines[2]))
    end)

    it("reads --input-file, and stdin for '-'", function()
      local path = files.write(os.tmpname(), "from file")
      local r = weft({ "run", FIX .. "builder.lua", "--input-file", path })
      os.remove(path)
      assert.are.equal(0, r.code)
      assert.are.same({ '"from file"' }, r.out_lines)
      r = weft({ "run", FIX .. "builder.lua", "--input-file", "-" }, "piped")
      assert.are.equal(0, r.code)
      assert.are.same({ '"piped"' }, r.out_lines)
    end)

    it("exits 1 with 'weft: run failed: <error>' when the run fails", function()
      local r = weft({ "run", FIX .. "failing.lua", "--input", "x" })
      assert.are.equal(1, r.code)
      assert.are.equal("", r.out)
      assert.are.equal(1, #r.err_lines)
      assert.matches("^weft: run failed: .*kaboom: the disk is made of lava", r.err_lines[1])
      assert.matches("boom", r.err_lines[1])
    end)

    it("fails when the input has the wrong shape for the workflow", function()
      local r = weft({ "run", FIX .. "json_input.lua" })
      assert.are.equal(1, r.code)
      assert.matches("^weft: run failed: .*expected a JSON object input, got string", r.err_lines[1])
    end)

    it("stops a endless workflow at --max-supersteps with an error naming the limit", function()
      local r = weft({ "run", FIX .. "loop.lua", "--max-supersteps", "5", "--input", "p" })
      assert.are.equal(1, r.code)
      assert.matches("^weft: run failed: .*max_supersteps", r.err_lines[1])
      assert.matches("5", r.err_lines[1])
    end)

    it("accepts --max-concurrency", function()
      local r = weft({ "run", FIX .. "good.lua", "--input", "hello", "--max-concurrency", "1" })
      assert.are.equal(0, r.code)
      assert.are.equal(3, #r.out_lines)
    end)

    it("prints events as one JSON object per line on stderr with --events jsonl", function()
      local r = weft({ "run", FIX .. "good.lua", "--input", "hello", "--events", "jsonl" })
      assert.are.equal(0, r.code)
      assert.are.equal(3, #r.out_lines)
      local types = {}
      for _, line in ipairs(r.err_lines) do
        local ev = cjson.decode(line)
        assert.is_string(ev.type)
        assert.is_string(ev.run_id)
        types[#types + 1] = ev.type
      end
      assert.are.equal("workflow_started", types[1])
      assert.are.equal("workflow_completed", types[#types])
      local seen = {}
      for _, t in ipairs(types) do seen[t] = (seen[t] or 0) + 1 end
      assert.are.equal(3, seen.output)
      assert.are.equal(3, seen.executor_completed)
    end)

    it("prints one readable line per event with --events pretty", function()
      local r = weft({ "run", FIX .. "good.lua", "--input", "hello", "--events", "pretty" })
      assert.are.equal(0, r.code)
      local text = r.err
      assert.matches("workflow_started +workflow=good", text)
      assert.matches("%[ss 0%] executor_invoked +upper", text)
      assert.matches("%[ss 1%] executor_completed +writer", text)
      assert.matches("%[ss 1%] output +writer +\"HELLO\"", text)
      assert.matches("workflow_completed", r.err_lines[#r.err_lines])
      for _, line in ipairs(r.err_lines) do assert.matches("^%[ss [%d%-]+%] %a", line) end
    end)

    it("shows the failing executor and error in pretty events", function()
      local r = weft({ "run", FIX .. "failing.lua", "--events", "pretty" })
      assert.are.equal(1, r.code)
      assert.matches("executor_failed +boom +attempt=1.*kaboom", r.err)
      assert.matches("workflow_failed", r.err)
      assert.matches("^weft: run failed: ", r.err_lines[#r.err_lines])
    end)
  end)

  describe("script errors", function()
    local function one_line_error(args, pattern)
      local r = weft(args)
      assert.are.equal(2, r.code)
      assert.are.equal("", r.out)
      assert.are.equal(1, #r.err_lines, "expected one line, got:\n" .. r.err)
      assert.matches(pattern, r.err_lines[1])
      return r
    end

    each_case("reports", one_line_error, {
      { "a missing file", { "run", FIX .. "nope.lua" }, "^weft: cannot open spec/fixtures/cli/nope%.lua" },
      { "a syntax error with file:line", { "run", FIX .. "syntax.lua" }, "^weft: spec/fixtures/cli/syntax%.lua:3: " },
      { "a runtime error while loading with file:line", { "check", FIX .. "load_error.lua" },
        "^weft: spec/fixtures/cli/load_error%.lua:3: attempt to index" },
      { "a script that returns no workflow", { "run", FIX .. "returns_nil.lua" },
        "^weft: spec/fixtures/cli/returns_nil%.lua: expected the script to return a workflow.*got nothing" },
      { "a tail-called build's validation error at the weft.workflow line", { "run", FIX .. "invalid.lua" },
        "^weft: spec/fixtures/cli/invalid%.lua:7: workflow 'invalid': "
          .. "executors unreachable from start 'a': 'orphan'$" },
      { "a build validation error at the :build() line when Lua knows it", { "check", FIX .. "invalid_line.lua" },
        "^weft: spec/fixtures/cli/invalid_line%.lua:5: workflow 'nostart': no start executor$" },
      { "invalid --input-json", { "run", FIX .. "json_input.lua", "--input-json", "{nope" },
        "^weft: %-%-input%-json: invalid JSON" },
    })

    it("reports a validation error of a builder built by weft with the script's name", function()
      local r = one_line_error({ "check", FIX .. "invalid_builder.lua" },
        "^weft: spec/fixtures/cli/invalid_builder%.lua.*no start executor")
      assert.not_matches("cli%.lua", r.err)
    end)
  end)

  describe("usage errors", function()
    local function usage(args, pattern)
      local r = weft(args)
      assert.are.equal(2, r.code)
      assert.matches(pattern, r.err)
      assert.matches("usage: weft", r.err)
    end

    each_case("rejects", usage, {
      { "an unknown command", { "frobnicate" }, "unknown command 'frobnicate'" },
      { "no command", {}, "usage: weft COMMAND" },
      { "an unknown option", { "run", FIX .. "good.lua", "--colour" }, "unknown option '%-%-colour' for 'run'" },
      { "a missing option value", { "run", FIX .. "good.lua", "--input" }, "option %-%-input needs a value" },
      { "a bad --events value", { "run", FIX .. "good.lua", "--events", "xml" }, "'xml' is not one of pretty|jsonl" },
      { "a non-integer --max-supersteps", { "run", FIX .. "good.lua", "--max-supersteps", "0" },
        "not an integer >= 1" },
      { "two inputs at once", { "run", FIX .. "good.lua", "--input", "a", "--input-json", "1" }, "exclusive" },
      { "a missing file argument", { "graph" }, "missing FILE.lua" },
      { "a bad --format", { "graph", FIX .. "shapes.lua", "--format", "png" }, "not one of mermaid|dot" },
      { "a worker on a store no other process sees", { "worker", "--store", "memory:" }, "memory: is private to one process" },
      { "a worker given --scripts and --watch", { "worker", "--store", "memory:", "--scripts", "a", "--watch", "b" },
        "give %-%-scripts or %-%-watch, not both" },
      { "serve given --workers and --in-process", { "serve", "--store", "memory:", "--workers", "1", "--in-process" },
        "give %-%-workers or %-%-in%-process, not both" },
      { "a negative --workers", { "serve", "--workers", "-1" }, "not an integer >= 0" },
    })
  end)

  describe("check", function()
    it("prints a summary of a valid workflow", function()
      local r = weft({ "check", FIX .. "good.lua" })
      assert.are.equal(0, r.code)
      assert.are.same({ "ok: workflow 'good': 3 executors, 2 edges" }, r.out_lines)
    end)

    it("counts every edge kind", function()
      local r = weft({ "check", FIX .. "shapes.lua" })
      assert.are.equal(0, r.code)
      assert.are.same({ "ok: workflow 'shapes': 9 executors, 7 edges" }, r.out_lines)
    end)
  end)

  describe("graph", function()
    it("prints a mermaid flowchart with edge kinds and condition names", function()
      local r = weft({ "graph", FIX .. "shapes.lua" })
      assert.are.equal(0, r.code)
      local g = r.out
      assert.matches("^flowchart TD\n", g)
      -- node ids are generated; map labels back to them
      local id = {}
      for n, label in g:gmatch("\n  (n%d+)[%[%(%{]+\"(.-)\"") do id[label] = n end
      assert.is_string(id.router)
      local function has(line) assert.is_truthy(g:find(line, 1, true), "missing: " .. line .. "\n" .. g) end
      has(id.router .. ' -.->|"case 1: is_small"| ' .. id.small)
      has(id.router .. ' -.->|"case 2"| ' .. id.big)
      has(id.router .. ' -.->|"default"| ' .. id.other)
      has(id.small .. " --> " .. id.split)
      has(id.big .. ' -.->|"always"| ' .. id.split)
      has(id.split .. ' ==>|"fan-out"| ' .. id.w1)
      has(id.split .. ' ==>|"fan-out"| ' .. id.w2)
      has(id.w1 .. ' ==>|"fan-in"| ' .. id.join)
      has(id.w2 .. ' ==>|"fan-in"| ' .. id.join)
      has(id.other .. ' ==>|"select"| ' .. id.w1)
      -- quotes in ids are escaped, the validator shape is used
      has('{{"check #quot;q#quot;"}}')
      has(id.join .. ' --> ')
    end)

    it("prints a dot digraph with quoted ids and labels", function()
      local r = weft({ "graph", FIX .. "shapes.lua", "--format", "dot" })
      assert.are.equal(0, r.code)
      local g = r.out
      local function has(s) assert.is_truthy(g:find(s, 1, true), "missing: " .. s .. "\n" .. g) end
      assert.matches('^digraph "shapes" {\n', g)
      assert.matches("}\n$", g)
      has('"router" [shape=box, style="rounded,bold"];')
      has('"router" -> "small" [label="case 1: is_small", style=dashed];')
      has('"router" -> "big" [label="case 2", style=dashed];')
      has('"router" -> "other" [label="default", style=dashed];')
      has('"small" -> "split";')
      has('"big" -> "split" [label="always", style=dashed];')
      has('"split" -> "w1" [label="fan-out", style=bold];')
      has('"w2" -> "join" [label="fan-in", style=bold];')
      has('"other" -> "w1" [label="select", style=bold];')
      has('"join" -> "check \\"q\\"";')
    end)
  end)

  describe("exec", function()
    it("runs a plain script with arg set like luajit and weft on the path", function()
      local script = files.write(os.tmpname(), "#!/usr/bin/env luajit\n"
        .. "local weft = require 'weft'\n"
        .. "print(arg[0], #arg, arg[1], arg[2], select('#', ...), type(weft.workflow))\n")
      local r = weft({ "exec", script, "a b", "--c" })
      assert.are.equal(0, r.code)
      assert.are.same({ script .. "\t2\ta b\t--c\t2\tfunction" }, r.out_lines)
      os.remove(script)
    end)

    it("exits 1 with the error and a traceback when the script raises", function()
      local script = files.write(os.tmpname(), "error('exec went wrong')\n")
      local r = weft({ "exec", script })
      os.remove(script)
      assert.are.equal(1, r.code)
      assert.matches("exec went wrong", r.err_lines[1])
      assert.matches("stack traceback", r.err)
    end)

    it("passes os.exit codes through", function()
      local script = files.write(os.tmpname(), "os.exit(7)\n")
      local r = weft({ "exec", script })
      os.remove(script)
      assert.are.equal(7, r.code)
    end)
  end)

  describe("runs", function()
    local dir
    before_each(function()
      dir = files.tempdir()
    end)
    after_each(function() files.remove(dir) end)

    -- A script at dir/NAME whose one executor asks a human (wname: the
    -- workflow's name, part of the definition's hash).
    local function asking(name, wname)
      return files.write(dir .. "/" .. name, ([[
local weft = require "weft"
local ask = weft.executor("ask", function(_, ctx)
  ctx:yield_output({ answer = ctx:request_info({ question = "ok?" }) })
end)
return weft.workflow(%q):start(ask)
]]):format(wname or "asking"))
    end

    it("refuses an answer when the workflow changed, and stores nothing", function()
      local script = asking("ask.lua")
      local store = "sqlite:" .. dir .. "/w.db"
      local r = weft({ "run", script, "--store", store, "--run-id", "h1" })
      assert.are.equal(3, r.code, r.err)
      local req = r.err:match("request (req%-[%d%-]+)")
      assert.truthy(req, r.err)
      asking("ask.lua", "renamed") -- another definition, another hash
      r = weft({ "runs", "respond", "h1", req, '"yes"', "--store", store })
      assert.are.equal(2, r.code, r.err)
      assert.truthy(r.err:find("hash", 1, true), r.err)
      assert.falsy(r.err:find("%.lua:%d+:"), r.err)
      asking("ask.lua") -- back to the definition that paused
      r = weft({ "runs", "respond", "h1", req, '"yes"', "--store", store })
      assert.are.equal(0, r.code, r.err) -- not "already answered"
      assert.are.same({ answer = "yes" }, cjson.decode(r.out_lines[1]))
    end)

    it("says plainly that a completed run has nothing to resume (exit 0)", function()
      local script = asking("ask.lua")
      local store = "sqlite:" .. dir .. "/w.db"
      local r = weft({ "run", script, "--store", store, "--run-id", "h2" })
      local req = r.err:match("request (req%-[%d%-]+)")
      r = weft({ "runs", "respond", "h2", req, '"yes"', "--store", store })
      assert.are.equal(0, r.code, r.err)
      r = weft({ "runs", "resume", "h2", "--store", store })
      assert.are.equal(0, r.code, r.err)
      assert.are.equal("weft: run h2 already completed; nothing to resume\n", r.err)
      r = weft({ "runs", "respond", "h2", req, '"again"', "--store", store })
      assert.are.equal(2, r.code, r.err)
      assert.are.equal("weft: respond: run 'h2' already completed; nothing to resume\n", r.err)
    end)
  end)

  describe("help and version", function()
    it("prints the version", function()
      local r = weft({ "version" })
      assert.are.equal(0, r.code)
      assert.matches("^weft %d+%.%d+%.%d+ %(LuaJIT", r.out)
      assert.are.same(r.out, weft({ "--version" }).out)
    end)

    it("lists every command and the exit codes in --help", function()
      local r = weft({ "--help" })
      assert.are.equal(0, r.code)
      for _, cmd in ipairs({ "run", "check", "graph", "exec", "version", "help" }) do
        assert.matches("\n  " .. cmd .. " ", r.out)
      end
      assert.matches("Exit status: 0 success; 1 the run failed", r.out)
      assert.matches("WEFT_PATH", r.out)
      assert.are.same(r.out, weft({ "help" }).out)
    end)

    it("documents every option of run, and says outputs are JSON lines", function()
      local r = weft({ "help", "run" })
      assert.are.equal(0, r.code)
      for _, opt in ipairs({ "--input TEXT", "--input-json JSON", "--input-file PATH",
        "--events pretty|jsonl", "--max-supersteps N", "--max-concurrency N" }) do
        assert.is_truthy(r.out:find(opt, 1, true), opt)
      end
      assert.matches("a string output too %(as a JSON string%)", r.out)
      assert.matches("Exit status: 0 completed; 1", r.out)
      assert.are.same(r.out, weft({ "run", "--help" }).out)
    end)

    it("has help for every command", function()
      for _, cmd in ipairs({ "check", "graph", "exec", "version", "help" }) do
        local r = weft({ "help", cmd })
        assert.are.equal(0, r.code)
        assert.matches("^usage: weft " .. cmd, r.out)
      end
      assert.matches("%-%-format mermaid|dot", weft({ "graph", "-h" }).out)
      assert.are.equal(2, weft({ "help", "nope" }).code)
    end)
  end)
end)
