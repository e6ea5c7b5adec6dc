-- spec/unit/check_spec.lua — weft.check (the one option checker) and the
-- errors it gives the public API: typos in edge, switch, fan-out and fan-in
-- options, "did you mean", unknown executor ids, ctx.send with a dot,
-- max_supersteps naming the executors still active, messages that no edge
-- accepts (the message_undelivered event, on_undelivered = "error"), and
-- the CLI: an option error while a script loads exits 2 with file:line,
-- `--events pretty` shows undelivered messages, WEFT_DEBUG=1 prints an
-- executor's traceback.
local weft = require "weft"
local check = require "weft.check"
local h = require "helpers"

local noop = function() end

describe("weft.check", function()
  local S = check.spec("thing", { properties = {
    when = { type = "callable", aliases = { "condition" } },
    count = { type = "integer", minimum = 1 },
    mode = { enum = { "fast", "slow" } },
    retry = { type = "table", properties = { max_attempts = { type = "integer", minimum = 1 } } },
  } })

  it("names the function, the option, the valid names and the nearest name", function()
    assert.equal("thing: unknown option 'wen' (options: count, mode, retry, when); did you mean 'when'?",
      check.problem(S, { wen = noop }))
    assert.equal("thing: unknown option 'condition' (options: count, mode, retry, when); did you mean 'when'?",
      check.problem(S, { condition = noop }))
    assert.equal("thing: unknown option 'zzz' (options: count, mode, retry, when)", check.problem(S, { zzz = 1 }))
  end)

  it("describes what a value must be and what it got", function()
    assert.equal("thing: when must be a function, got string", check.problem(S, { when = "x" }))
    assert.equal("thing: count must be an integer >= 1, got 0", check.problem(S, { count = 0 }))
    assert.equal("thing: count must be an integer >= 1, got 1.5", check.problem(S, { count = 1.5 }))
    assert.equal("thing: mode must be 'fast' or 'slow', got 'fsat'", check.problem(S, { mode = "fsat" }))
    assert.equal("thing: retry.max_attempts must be an integer >= 1, got 0",
      check.problem(S, { retry = { max_attempts = 0 } }))
    assert.equal("thing: unknown option 'retry.max_attempt' (options: max_attempts); did you mean 'max_attempts'?",
      check.problem(S, { retry = { max_attempt = 2 } }))
    assert.equal("thing: options must be a table, got number", check.problem(S, 5))
    assert.is_nil(check.problem(S, { when = setmetatable({}, { __call = noop }), count = 3, mode = "fast" }))
  end)

  it("raises at the caller's level and returns the options", function()
    local line = debug.getinfo(1, "l").currentline
    local err = h.error_of(function() check.options(S, { count = -1 }, 1) end)
    assert.mentions("check_spec.lua:" .. (line + 1) .. ": thing: count must be", err)
    local o = { count = 2 }
    assert.equal(o, check.options(S, o))
    assert.same({}, check.options(S, nil))
  end)

  it("takes an object JSON schema as a spec (required, JSON types)", function()
    local body = check.spec("POST /things", { type = "object", required = { "name" }, properties = {
      name = { type = "string", minLength = 1 }, tags = { type = "array" } } })
    assert.equal("POST /things: name must be a non-empty string, got nothing", check.problem(body, {}))
    assert.equal("POST /things: tags must be a list, got string", check.problem(body, { name = "a", tags = "x" }))
    assert.is_nil(check.problem(body, { name = "a", tags = { 1 } }))
  end)

  it("names a value given wrong before a required one missing", function()
    local part = check.spec("part", { properties = {
      type = { enum = { "input_text" }, required = true }, text = { type = "string", required = true } } })
    -- "text" sorts first, but the part's type is what is wrong with it
    assert.equal("part: type must be 'input_text', got 'input_image'",
      check.problem(part, { type = "input_image" }))
    assert.equal("part: text must be a string, got nothing", check.problem(part, { type = "input_text" }))
  end)

  it("finds near names only", function()
    assert.equal("model", check.nearest("modle", { "model", "name" }))
    assert.equal("max_retries", check.nearest("max_retry", { "max_retries", "wait" }))
    assert.is_nil(check.nearest("x", { "y" }))
    assert.equal("", check.did_you_mean("completely", { "when" }))
  end)
end)

describe("workflow builder options", function()
  local a, b
  before_each(function() a, b = h.idle("a", "b") end)

  it("rejects {condition = fn} on an edge at the call, suggesting when", function()
    local line = debug.getinfo(1, "l").currentline
    local err = h.error_of(function() weft.workflow("w"):start(a):edge(a, b, { condition = noop }):build() end)
    assert.mentions("check_spec.lua:" .. (line + 1)
      .. ": edge 'a -> b': unknown option 'condition' (options: name, when); did you mean 'when'?", err)
  end)

  it("rejects a typo like {wen = fn} instead of building an unconditional edge", function()
    local err = h.error_of(function() weft.workflow("w"):start(a):edge(a, b, { wen = noop }) end)
    assert.mentions("edge 'a -> b': unknown option 'wen'", err)
    assert.mentions("did you mean 'when'?", err)
  end)

  it("checks switch cases, fan-out and fan-in options", function()
    assert.mentions("switch from 'a': case 1: unknown option 'condition'",
      h.error_of(function() weft.workflow("w"):start(a):switch(a, { { condition = noop, to = b } }) end))
    assert.mentions("switch from 'a': case 1 has no 'when'",
      h.error_of(function() weft.workflow("w"):start(a):switch(a, { { to = b } }) end))
    assert.mentions("fan_out from 'a': unknown option 'selector' (options: name, select); did you mean 'select'?",
      h.error_of(function() weft.workflow("w"):start(a):fan_out(a, { b }, { selector = noop }) end))
    assert.mentions("fan_in to 'b': unknown option 'nmae' (options: name); did you mean 'name'?",
      h.error_of(function() weft.workflow("w"):start(a):fan_in({ a }, b, { nmae = "x" }) end))
  end)

  it("suggests the nearest executor id for an unknown one", function()
    local writer = weft.executor("writer", noop)
    local err = h.error_of(function() weft.workflow("w"):start(a):edge(a, writer):edge(writer, "wrtier"):build() end)
    assert.mentions("edge 'writer -> wrtier': unknown executor 'wrtier'; did you mean 'writer'?", err)
  end)

  it("checks executor options with a suggestion", function()
    assert.mentions("executor 'x': unknown option 'handler' (options: description, guards, handle, kind, name, on_error, "
      .. "retry, timeout); did you mean 'handle'?", h.error_of(weft.executor, "x", { handler = noop }))
  end)
end)

describe("errors inside runs", function()
  it("says that ctx.send was called with a dot", function()
    local a = weft.executor("a", function(msg, ctx) ctx.send(msg) end)
    local res = weft.workflow("w"):start(a):build():run("x")
    assert.equal("failed", res.status)
    assert.mentions("ctx:send: called as ctx.send(...) (with a dot); call it with a colon: ctx:send(...)", res.error)
  end)

  it("suggests the nearest id for an unknown ctx:send target", function()
    local b = weft.executor("bravo", noop)
    local a = weft.executor("a", function(msg, ctx) ctx:send(msg, "brvao") end)
    local res = weft.workflow("w"):start(a):edge(a, b):build():run("x")
    assert.mentions("ctx:send: unknown target executor 'brvao'; did you mean 'bravo'?", res.error)
  end)

  it("names the executors still active and how to raise max_supersteps", function()
    local a = weft.executor("ping", function(msg, ctx) ctx:send(msg) end)
    local res = weft.workflow("w"):start(a):edge(a, a):build():run("x", { max_supersteps = 3 })
    assert.equal("failed", res.status)
    assert.mentions("max_supersteps (3) exceeded with executors still active: 'ping'; raise the limit with "
      .. "the run option max_supersteps", res.error)
  end)
end)

describe("undelivered messages", function()
  local function graph()
    local a = weft.executor("a", function(msg, ctx) ctx:send(msg) end)
    local b = weft.executor("b", function(msg, ctx) ctx:yield_output(msg) end)
    return weft.workflow("w"):start(a):edge(a, b, { when = function(m) return m == "yes" end, name = "yes" })
  end

  it("publish message_undelivered naming the sender and the refusing edges; the run completes", function()
    local res = graph():build():run("no")
    assert.equal("completed", res.status)
    local ev = h.find(res.events, "message_undelivered", "a")
    assert.is_table(ev)
    assert.equal(0, ev.superstep)
    assert.same({ from = "a", edges = { "a -> b (yes)" }, message = "no" }, ev.data)
  end)

  it("publish nothing when an edge accepts the message or the sender has no edge", function()
    local res = graph():build():run("yes")
    assert.same({ "yes" }, res.outputs)
    assert.is_nil(h.find(res.events, "message_undelivered"))
  end)

  it("fail the run with on_undelivered = 'error' (run option or workflow default)", function()
    local res = graph():build():run("no", { on_undelivered = "error" })
    assert.equal("failed", res.status)
    assert.equal("message from 'a' was not delivered: no edge accepted it (edge 'a -> b (yes)'); "
      .. 'on_undelivered = "error" made it fail the run', res.error)
    res = graph():defaults{ on_undelivered = "error" }:build():run("no")
    assert.equal("failed", res.status)
    assert.mentions("run: on_undelivered must be 'event' or 'error', got 'eror'",
      h.error_of(function() graph():build():run("no", { on_undelivered = "eror" }) end))
  end)

  it("name the target of a targeted send that its edge refused", function()
    local b = weft.executor("b", noop)
    local a = weft.executor("a", function(msg, ctx) ctx:send(msg, "b") end)
    local res = weft.workflow("w"):start(a):edge(a, b, { when = function() return false end }):build():run("x")
    local ev = h.find(res.events, "message_undelivered", "a")
    assert.equal("b", ev.data.target)
  end)
end)

describe("weft CLI and option errors", function()
  local SRC = os.getenv("WEFT_SOURCE_DIR") or "."
  local BIN = os.getenv("WEFT_BIN") or (SRC .. "/build/weft")
  local dir

  local files = require "support.files"
  local sh, read = files.quote, files.read
  -- Write a script into dir and run `env weft run script args...`.
  local function weft_run(name, text, args, env)
    files.write(dir .. "/" .. name, text)
    local errf = dir .. "/stderr"
    local p = assert(io.popen(("cd %s && %s %s run %s %s 2>%s; echo \"__rc=$?\""):format(
      sh(dir), env or "", sh(BIN), sh(name), args or "", sh(errf))))
    local out = p:read("*a")
    p:close()
    return tonumber(out:match("__rc=(%d+)")), read(errf), out
  end

  setup(function() dir = files.tempdir() end)
  teardown(function() files.remove(dir) end)

  it("exits 2 with file:line for an option error while the script loads", function()
    local rc, err = weft_run("typo.lua", [[
local weft = require "weft"
local a = weft.executor("a", function(m, ctx) ctx:send(m) end)
local b = weft.executor("b", function(m, ctx) ctx:yield_output(m) end)
return weft.workflow("w"):start(a)
  :edge(a, b, { wen = function(m) return m == "go" end })
  :build()
]])
    assert.equal(2, rc)
    assert.mentions("typo.lua:5: edge 'a -> b': unknown option 'wen' (options: name, when); did you mean 'when'?", err)
  end)

  it("shows an undelivered message in --events pretty", function()
    local rc, err = weft_run("drop.lua", [[
local weft = require "weft"
local a = weft.executor("a", function(m, ctx) ctx:send(m) end)
local b = weft.executor("b", function(m, ctx) ctx:yield_output(m) end)
return weft.workflow("w"):start(a):edge(a, b, { when = function(m) return m == "go" end, name = "go" }):build()
]], "--input stop --events pretty")
    assert.equal(0, rc)
    assert.mentions("message_undelivered a  no edge accepted it: a -> b (go)  message=\"stop\"", err)
  end)

  it("prints an executor's traceback on stderr with WEFT_DEBUG=1", function()
    local script = [[
local weft = require "weft"
local function deep() error("kaboom") end
return weft.workflow("w"):start(weft.executor("a", function() deep() end)):build()
]]
    local rc, err = weft_run("boom.lua", script, "", "WEFT_DEBUG=1")
    assert.equal(1, rc)
    assert.mentions("weft: executor 'a' (superstep 0, attempt 1):", err)
    assert.mentions("in function 'deep'", err)
    local _, quiet = weft_run("boom.lua", script, "")
    assert.is_nil(quiet:find("in function 'deep'", 1, true))
  end)
end)
