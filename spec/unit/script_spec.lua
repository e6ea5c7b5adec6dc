-- spec/unit/script_spec.lua — weft.script, the one loader of workflow
-- scripts: a script requires modules beside it whatever the current
-- directory, without them reaching package.path or package.loaded (two
-- directories with a module of the same name each get their own); weft's
-- own modules cannot be shadowed; errors name the file (file:line), error
-- objects as JSON; `...` holds the args; namespaces start fresh
-- generations. Also `weft run DIR/flow.lua` from another directory.
local weft = require "weft"
local script = require "weft.script"

local bin = os.getenv("WEFT_BIN")

local dir
before_each(function()
  dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir .. "/a " .. dir .. "/b"))
end)
after_each(function() os.execute("rm -rf " .. dir) end)

-- Write text to path.
local function put(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- A flow whose only executor outputs the tag of module `mod`.
local function tagged_flow(mod)
  return ([[
local weft = require "weft"
local m = require %q
return weft.workflow("flow"):start(weft.executor("a", function(_, ctx) ctx:yield_output(m.tag) end)):build()
]]):format(mod)
end

--- Quote s for the shell.
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

describe("weft.script.load", function()
  it("lets each script require the module beside it, outside package.path and package.loaded", function()
    put(dir .. "/a/helper.lua", 'return { tag = "A" }\n')
    put(dir .. "/b/helper.lua", 'return { tag = "B" }\n')
    put(dir .. "/a/flow.lua", tagged_flow("helper"))
    put(dir .. "/b/flow.lua", tagged_flow("helper"))
    local path = package.path
    local a = assert(script.load(dir .. "/a/flow.lua"))
    local b = assert(script.load(dir .. "/b/flow.lua"))
    assert.same({ "A" }, a:run("x").outputs)
    assert.same({ "B" }, b:run("x").outputs)
    assert.equal(path, package.path)
    assert.is_nil(package.loaded.helper)
  end)

  it("finds DIR/name/init.lua and keeps one copy per namespace generation", function()
    os.execute("mkdir -p " .. dir .. "/a/lib")
    put(dir .. "/a/lib/init.lua", 'N = (N or 0) + 1\nreturn { tag = "lib" .. N }\n')
    put(dir .. "/a/flow.lua", [[
local one, two = require "lib", require "lib"
assert(one == two)
return require("weft").workflow("flow"):start(require("weft").executor("a",
  function(_, ctx) ctx:yield_output(one.tag) end)):build()
]])
    local ns = script.namespace(dir .. "/a")
    assert.same({ "lib1" }, assert(script.load(dir .. "/a/flow.lua", { namespace = ns })):run("x").outputs)
    assert.same({ "lib1" }, assert(script.load(dir .. "/a/flow.lua", { namespace = ns })):run("x").outputs)
    ns:fresh()
    assert.same({ "lib2" }, assert(script.load(dir .. "/a/flow.lua", { namespace = ns })):run("x").outputs)
    assert.is_nil(rawget(_G, "N")) -- the global stays in the namespace
  end)

  it("never lets a directory shadow weft's own modules", function()
    put(dir .. "/a/weft.lua", 'error("the directory\'s weft.lua was loaded")\n')
    put(dir .. "/a/flow.lua", tagged_flow("weft.json"):gsub("m%.tag", "m == require('weft').json and 'ok'"))
    local wf, err = script.load(dir .. "/a/flow.lua")
    assert.is_truthy(wf, err)
    assert.same({ "ok" }, wf:run("x").outputs)
  end)

  it("passes args as the script's ...", function()
    put(dir .. "/a/flow.lua", [[
local tag = select(2, ...)
local weft = require "weft"
return weft.workflow("flow"):start(weft.executor("a", function(_, ctx) ctx:yield_output(tag) end)):build()
]])
    local wf = assert(script.load(dir .. "/a/flow.lua", { args = { "one", "two" } }))
    assert.same({ "two" }, wf:run("x").outputs)
  end)

  it("returns the script's source with the workflow", function()
    put(dir .. "/a/flow.lua", tagged_flow("weft.json"))
    local wf, src = script.load(dir .. "/a/flow.lua")
    assert.is_true(weft.is_workflow(wf))
    assert.equal(tagged_flow("weft.json"), src)
  end)

  it("names a missing file", function()
    local wf, err = script.load(dir .. "/nope.lua")
    assert.is_nil(wf)
    assert.equal("cannot open " .. dir .. "/nope.lua (No such file or directory)", err)
  end)

  it("gives file:line for syntax and runtime errors and for a missing module", function()
    put(dir .. "/a/syntax.lua", "local x = 1\nlocal y = = 2\n")
    put(dir .. "/a/runtime.lua", "local t = nil\nlocal v = t.field\n")
    put(dir .. "/a/missing.lua", "local weft = require 'weft'\nlocal m = require 'no_such_module_here'\n")
    local _, e1 = script.load(dir .. "/a/syntax.lua")
    assert.matches("^" .. dir:gsub("%p", "%%%0") .. "/a/syntax%.lua:2: ", e1)
    local _, e2 = script.load(dir .. "/a/runtime.lua")
    assert.matches("^" .. dir:gsub("%p", "%%%0") .. "/a/runtime%.lua:2: attempt to index", e2)
    local _, e3 = script.load(dir .. "/a/missing.lua")
    assert.matches("^" .. dir:gsub("%p", "%%%0") .. "/a/missing%.lua:2: module 'no_such_module_here' not found", e3)
  end)

  it("shows a raised table as JSON after the file name and hands over the traceback", function()
    put(dir .. "/a/flow.lua", 'error({ reason = "no config" })\n')
    local tb
    local wf, err = script.load(dir .. "/a/flow.lua", { traceback = function(t) tb = t end })
    assert.is_nil(wf)
    assert.equal(dir .. '/a/flow.lua: {"reason":"no config"}', err)
    assert.matches("stack traceback", tb)
  end)

  it("builds a returned builder and names the script in its validation error", function()
    put(dir .. "/a/flow.lua", 'local weft = require "weft"\nreturn weft.workflow("nostart"):add(weft.executor("a", function() end))\n')
    local wf, err = script.load(dir .. "/a/flow.lua")
    assert.is_nil(wf)
    assert.matches("^" .. dir:gsub("%p", "%%%0") .. "/a/flow%.lua:%d*:? ?workflow 'nostart': no start executor$", err)
    assert.not_matches("script%.lua", err)
  end)

  it("says what the script returned when it is not a workflow", function()
    put(dir .. "/a/flow.lua", "return 42\n")
    local _, err = script.load(dir .. "/a/flow.lua")
    assert.equal(dir .. "/a/flow.lua: expected the script to return a workflow "
      .. "(return weft.workflow(...):build()), got a number", err)
  end)

  it("raises on misuse at the caller", function()
    assert.has_error(function() script.load(42) end, "weft.script.load: path must be a string")
    assert.has_error(function() script.load("x.lua", "args") end,
      "weft.script.load: opts must be a table {args, namespace, traceback}")
  end)
end)

describe("weft run DIR/flow.lua", function()
  it("finds a module beside the script when run from another directory", function()
    put(dir .. "/a/helper.lua", 'return { tag = "beside" }\n')
    put(dir .. "/a/flow.lua", tagged_flow("helper"))
    local p = assert(io.popen("cd " .. q(dir .. "/b") .. " && " .. q(bin) .. " run "
      .. q(dir .. "/a/flow.lua") .. " --input x 2>&1; echo \"exit=$?\""))
    local out = p:read("*a")
    p:close()
    assert.matches("exit=0", out)
    assert.matches("beside", out)
  end)
end)
