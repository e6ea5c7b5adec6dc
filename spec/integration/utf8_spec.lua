-- spec/integration/utf8_spec.lua — every record can be read back: values
-- holding bytes that are not UTF-8 (latin-1 from a tool, say) are refused
-- where they are written (ctx:send, ctx:set_state, ctx:yield_output,
-- ctx:request_info, ctx:emit, tool results) with the path of the string,
-- so a durable run fails clearly instead of storing a checkpoint that
-- cannot be decoded; log lines and error messages are text and carry
-- U+FFFD instead; `weft run` prints valid JSON on stdout and with
-- `--events jsonl`. Uses real child `weft` processes and a sqlite store in
-- a private temp dir.
local weft = require "weft"
local json = weft.json
local durable = require "weft.durable"
local procs = require "support.procs"

local bin = procs.weft_bin()
local FFFD = "\239\191\189"
local NAMESPACES = { "runs", "ckpt", "pw", "journal", "req" }

-- Fresh private temp dirs, removed at the end.
local scratch = require("support.files").scratch()
teardown(scratch.clean)
local tmpdir = scratch.dir

-- Write a workflow script into dir; returns its path.
local function script(dir, name, text)
  local path = dir .. "/" .. name
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

-- Decode every stored record and log entry of run id; returns the count.
local function all_readable(url, id)
  local st = assert(weft.store.open(url))
  local n = 0
  for _, ns in ipairs(NAMESPACES) do
    for _, row in ipairs(assert(st:scan(ns, id))) do
      local v, err = json.decode(row.value)
      assert(err == nil, ns .. " " .. row.key .. ": " .. tostring(err))
      assert.is_not_nil(v)
      n = n + 1
    end
    for _, row in ipairs(assert(st:range("ckpt", id))) do
      local _, err = json.decode(row.value)
      assert(err == nil, "ckpt " .. id .. ": " .. tostring(err))
      n = n + 1
    end
  end
  st:close()
  return n
end

-- A workflow: `a` writes the tool's latin-1 text into state and passes on;
-- `b` asks a human (the run pauses), then outputs the state.
local LATIN_STATE = [[
local weft = require "weft"
local a = weft.executor("a", function(msg, ctx)
  ctx:set_state("notes", { items = { "x", "y", "abcde\233" } })
  ctx:send(msg)
end)
local b = weft.executor("b", function(msg, ctx)
  local answer = ctx:request_info({ question = "go on?" })
  ctx:yield_output({ notes = ctx:get_state("notes"), answer = answer })
end)
return weft.workflow("latin"):start(a):edge(a, b):build()
]]

describe("a durable sqlite run with latin-1 state", function()
  it("is refused at ctx:set_state with the path, fails clearly and stores nothing unreadable", function()
    local dir = tmpdir()
    local path = script(dir, "latin.lua", LATIN_STATE)
    local url = "sqlite:" .. dir .. "/weft.db"
    local rc, _, err = procs.run({ bin, "run", path, "--store", url, "--run-id", "r1" })
    -- before: the run paused (state checkpointed) and its resume found a
    -- corrupt checkpoint
    assert.equal(1, rc, err)
    assert.truthy(err:find("ctx:set_state: state.notes.items[3]: invalid UTF-8 (byte 0xE9 at offset 5)",
                           1, true), err)
    assert.is_true(all_readable(url, "r1") > 0)
    local st = assert(weft.store.open(url))
    local rec = assert(durable.record(st, "r1"))
    st:close()
    assert.equal("failed", rec.status)
    assert.truthy(rec.error:find("invalid UTF-8", 1, true), rec.error)
    -- another process reads the run back (no "corrupt checkpoint")
    local rc2, out2, err2 = procs.run({ bin, "runs", "show", "r1", "--store", url })
    assert.equal(0, rc2, err2)
    assert.equal("failed", json.decode(out2).status)
    local _, _, err3 = procs.run({ bin, "runs", "resume", "r1", "--store", url })
    assert.is_nil(err3:find("corrupt", 1, true), err3)
  end)
end)

describe("a durable run's input", function()
  it("is refused before anything is stored when it is not UTF-8, naming the input", function()
    local dir = tmpdir()
    local path = script(dir, "echo.lua", [[
local weft = require "weft"
return weft.workflow("echo"):start(weft.executor("a", function(m, ctx) ctx:yield_output(m) end)):build()
]])
    local input = script(dir, "input.txt", "caf\233")
    local url = "sqlite:" .. dir .. "/weft.db"
    local rc, _, err = procs.run({ bin, "run", path, "--store", url, "--run-id", "r2", "--input-file", input })
    assert.equal(2, rc, err)
    assert.truthy(err:find("run input: invalid UTF-8 (byte 0xE9 at offset 3)", 1, true), err)
    local st = assert(weft.store.open(url))
    assert.is_nil((st:get("runs", "r2")))
    st:close()
  end)
end)

-- Run a one-executor workflow whose handler is fn; returns the result.
local function run_one(fn, opts)
  local a = weft.executor("a", fn)
  local b = weft.executor("b", function() end)
  return weft.workflow("w"):start(a):edge(a, b):build():run("go", opts)
end

describe("values written by an executor", function()
  local cases = {
    { "ctx:send", function(_, ctx) ctx:send({ items = { "ok", "caf\233" } }) end,
      "ctx:send: message.items[2]: invalid UTF-8 (byte 0xE9 at offset 3)" },
    { "ctx:send (a string)", function(_, ctx) ctx:send("caf\233") end,
      "ctx:send: message: invalid UTF-8 (byte 0xE9 at offset 3)" },
    { "ctx:yield_output", function(_, ctx) ctx:yield_output("\192\175") end,
      "ctx:yield_output: output: invalid UTF-8 (byte 0xC0 at offset 0)" },
    { "ctx:set_state", function(_, ctx) ctx:set_state("notes", { t = { ["k\237\160\128"] = 1 } }) end,
      'ctx:set_state: state.notes.t: key "k\\xED\\xA0\\x80" is not valid UTF-8 (byte 0xED at offset 1)' },
    { "ctx:set_state (its key)", function(_, ctx) ctx:set_state("caf\233", 1) end,
      "ctx:set_state: key: invalid UTF-8 (byte 0xE9 at offset 3)" },
    { "ctx:request_info", function(_, ctx) ctx:request_info({ q = "ok\226\130" }) end,
      "ctx:request_info: request.q: invalid UTF-8 (byte 0xE2 at offset 2)" },
    { "ctx:emit", function(_, ctx) ctx:emit("note", { "\255" }) end,
      "ctx:emit: data[1]: invalid UTF-8 (byte 0xFF at offset 0)" },
    { "ctx:emit (a string)", function(_, ctx) ctx:emit("note", "\255") end,
      "ctx:emit: data: invalid UTF-8 (byte 0xFF at offset 0)" },
    { "ctx:emit (its name)", function(_, ctx) ctx:emit("n\255", 1) end,
      "ctx:emit: name: invalid UTF-8 (byte 0xFF at offset 1)" },
    { "ctx:set_state (a string)", function(_, ctx) ctx:set_state("k", "\128") end,
      "ctx:set_state: state.k: invalid UTF-8 (byte 0x80 at offset 0)" },
  }
  for _, c in ipairs(cases) do
    it("are refused at " .. c[1] .. " with the path of the string", function()
      local res = run_one(c[2])
      assert.equal("failed", res.status)
      assert.truthy(res.error:find(c[3], 1, true), res.error)
      assert.is_string(json.encode(res.error)) -- the message itself is UTF-8
    end)
  end

  it("keep log lines and error messages as text, with U+FFFD for bad bytes", function()
    local url = "sqlite:" .. tmpdir() .. "/weft.db"
    local res = run_one(function(_, ctx)
      ctx:log("info", "read caf\233")
      error("cannot parse caf\233", 0)
    end, { store = url, run_id = "r-text" })
    assert.equal("failed", res.status)
    local log, failed
    for _, ev in ipairs(res.events) do
      if ev.type == "log" then log = ev.data.message end
      if ev.type == "executor_failed" then failed = ev.data.error end
    end
    assert.equal("read caf" .. FFFD, log)
    assert.equal("cannot parse caf" .. FFFD, failed)
    -- before: the run record could not be written (or read back)
    local st = assert(weft.store.open(url))
    local rec = assert(durable.record(st, "r-text"))
    st:close()
    assert.equal("failed", rec.status)
    assert.truthy(rec.error:find("cannot parse caf" .. FFFD, 1, true), rec.error)
    assert.is_true(all_readable(url, "r-text") > 0)
  end)
end)

describe("scalars an executor hands over", function()
  -- strings, numbers and other non-tables are checked by the C primitive
  -- itself; the error is json.check's all the same
  local nan = 0 / 0
  local cases = {
    { function(_, ctx) ctx:send(nan) end, "ctx:send: message: NaN is not JSON-serialisable" },
    { function(_, ctx) ctx:yield_output(1 / 0) end, "ctx:yield_output: output: inf is not JSON-serialisable" },
    { function(_, ctx) ctx:send(print) end, "ctx:send: message: function is not JSON-serialisable" },
    { function(_, ctx) ctx:set_state("k", coroutine.create(print)) end,
      "ctx:set_state: state.k: thread is not JSON-serialisable" },
    { function(_, ctx) ctx:emit("n", -1 / 0) end, "ctx:emit: data: -inf is not JSON-serialisable" },
  }
  for i, c in ipairs(cases) do
    it("are refused with json.check's message (" .. i .. ")", function()
      local res = run_one(c[1])
      assert.equal("failed", res.status)
      assert.truthy(res.error:find(c[2], 1, true), res.error)
    end)
  end

  it("reach weft.invocation's emit_live as nil, err", function()
    local got
    run_one(function()
      got = { require("weft.invocation").current():emit_live("agent_update", nil, "x\255") }
    end)
    assert.is_nil(got[1])
    assert.equal("a string that is not valid UTF-8 is not JSON-serialisable", got[2])
  end)
end)

describe("tool results", function()
  local function tool(handler)
    return weft.tool{ name = "fetch", description = "d", handler = handler }
  end

  it("refuse text that is not UTF-8, naming the tool", function()
    local ok, text = tool(function() return "caf\233" end):invoke({})
    assert.is_false(ok)
    assert.equal("tool 'fetch' returned text that is not UTF-8: result: invalid UTF-8 (byte 0xE9 at offset 3)",
                 json.decode(text).error)
  end)

  it("refuse values holding invalid UTF-8, naming the path", function()
    local ok, text = tool(function() return { rows = { "ok", "caf\233" } } end):invoke({})
    assert.is_false(ok)
    assert.truthy(json.decode(text).error:find("result.rows[2]: invalid UTF-8 (byte 0xE9 at offset 3)", 1, true))
  end)

  it("report a handler's error that is not UTF-8 as JSON (U+FFFD), without raising", function()
    local ok, text = tool(function() error("caf\233", 0) end):invoke({})
    assert.is_false(ok)
    assert.equal("tool 'fetch' failed: caf" .. FFFD, json.decode(text).error)
  end)

  it("pass valid UTF-8 text through as it is", function()
    local ok, text = tool(function() return "caf\195\169" end):invoke({})
    assert.is_true(ok)
    assert.equal("caf\195\169", text)
  end)
end)

describe("weft run output", function()
  it("is valid JSON on stdout and in --events jsonl when values and errors hold latin-1", function()
    local path = script(tmpdir(), "ev.lua", [[
local weft = require "weft"
local a = weft.executor("a", function(msg, ctx)
  ctx:log("info", "read caf\233 from the tool")
  ctx:yield_output({ text = "caf\195\169" })
  ctx:send(msg)
end)
local b = weft.executor("b", function(msg, ctx) error("cannot parse caf\233") end)
return weft.workflow("ev"):start(a):edge(a, b):build()
]])
    local rc, out, err = procs.run({ bin, "run", path, "--events", "jsonl" })
    assert.equal(1, rc, err)
    local lines = 0
    for _, text in ipairs({ out, err }) do
      for line in text:gmatch("[^\n]+") do
        if line:sub(1, 1) == "{" then
          local v, jerr = json.decode(line)
          assert(jerr == nil, tostring(jerr) .. ": " .. line)
          assert.is_table(v)
          lines = lines + 1
        end
      end
    end
    assert.equal('{"text":"caf\195\169"}', out:match("[^\n]+"))
    assert.truthy(err:find('"message":"read caf' .. FFFD .. ' from the tool"', 1, true), err)
    assert.is_true(lines > 5)
  end)
end)
