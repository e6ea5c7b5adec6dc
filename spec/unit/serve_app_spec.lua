-- spec/unit/serve_app_spec.lua — the REST application of `weft serve`
-- (lua/weft/serve/) driven through app:handle(req, res) with the fake
-- response of spec/support/fake_res.lua: router errors, agents, tools,
-- workflows, executions (sync, async, SSE, cancel, responses), health and
-- metrics. Agents answer through the offline mock model.
local weft = require "weft"
local json = require "weft.json"
local fake = require "support.fake_res"
local h = require "helpers"

local call = fake.call

local err_of = fake.err_of

local new_app = fake.app


local WRITER = { name = "writer", model = "mock:echo", instructions = "You write." }

describe("weft.serve app router", function()
  it("answers 404 with the error shape for an unknown path", function()
    local e = err_of(call(new_app(), "GET", "/api/v1/nope"), 404)
    assert.equal("not_found", e.code)
  end)

  it("answers 405 listing the allowed methods (body and Allow header)", function()
    local res = call(new_app(), "PATCH", "/api/v1/workflows")
    local e = err_of(res, 405)
    assert.same({ "GET", "POST" }, e.details.allowed)
    assert.equal("GET, POST", res.headers.allow)
  end)

  it("rejects path traversal in ids with 400", function()
    local app = new_app()
    for _, p in ipairs({ "/api/v1/agents/..%2Fetc", "/api/v1/agents/../x", "/api/v1/agents/a%5C..%5Cb",
                         "/api/v1/agents/..", "/api/v1/agents/%zz" }) do
      local e = err_of(call(app, "GET", p), 400)
      assert.matches("path", e.code, 1, true)
    end
  end)

  it("rejects ids outside [A-Za-z0-9_.-]{1,64} with 400 invalid_id", function()
    local app = new_app()
    assert.equal("invalid_id", err_of(call(app, "GET", "/api/v1/agents/a%20b"), 400).code)
    assert.equal("invalid_id", err_of(call(app, "GET", "/api/v1/agents/" .. ("x"):rep(65)), 400).code)
    assert.equal(404, call(app, "GET", "/api/v1/agents/" .. ("x"):rep(64)).status_code)
  end)

  it("decodes each path segment once and refuses ids with NUL or path characters as invalid_id", function()
    local app = new_app()
    assert.equal(201, call(app, "POST", "/api/v1/agents",
      { body = { id = "victim", name = "v", model = "mock:echo", instructions = "x" } }).status_code)
    for _, p in ipairs({ "/api/v1/agents/victim%00.evil", "/api/v1/agents/victim%00", "/api/v1/agents/a%2Fb",
                         "/api/v1/agents/a%5Cb", "/api/v1/agents/victim%2500" }) do
      local e = err_of(call(app, "DELETE", p), 400)
      assert.equal("invalid_id", e.code, p)
      assert.equal("id", e.details.field, p)
    end
    -- the raw path is what is routed: weft.server gives it as req.raw_path
    local res = fake.new()
    weft.go(function()
      app:handle({ method = "DELETE", path = "/api/v1/agents/victim\0.evil", raw_path = "/api/v1/agents/victim%00.evil",
                   headers = {}, query = {} }, res)
    end):wait()
    assert.equal(400, res.status_code)
    assert.equal("invalid_id", res:decoded().error.code)
    assert.equal(200, call(app, "GET", "/api/v1/agents/victim").status_code)
    assert.equal(200, call(app, "GET", "/api/v1/agents/%76ictim").status_code)
  end)

  it("refuses request bodies nested deeper than MAX_BODY_DEPTH with 400 invalid_json", function()
    local appmod = require "weft.serve.app"
    local d = appmod.MAX_BODY_DEPTH
    local deep = '{"input": ' .. ("["):rep(d) .. ("]"):rep(d) .. "}"
    local e = err_of(call(new_app(), "POST", "/api/v1/agents", { body = deep }), 400)
    assert.equal("invalid_json", e.code)
    assert.equal(d, e.details.max_depth)
    assert.matches("nesting too deep", e.message, 1, true)
    -- one level less gets through the door (and fails later, on the fields)
    local ok = '{"input": ' .. ("["):rep(d - 1) .. ("]"):rep(d - 1) .. "}"
    local r = call(new_app(), "POST", "/api/v1/agents", { body = ok })
    assert.are_not.equal("invalid_json", r:decoded().error.code)
  end)

  it("refuses request bodies of more than MAX_BODY_STRINGS strings with 400 invalid_json", function()
    local appmod = require "weft.serve.app"
    local n = appmod.MAX_BODY_STRINGS
    local parts = {}
    for i = 1, n do parts[i] = "\"s\"" end -- n strings, and the key "input"
    local e = err_of(call(new_app(), "POST", "/api/v1/agents",
                          { body = '{"input": [' .. table.concat(parts, ",") .. "]}" }), 400)
    assert.equal("invalid_json", e.code)
    assert.equal(n, e.details.max_strings)
    assert.matches("too many strings (more than " .. n .. ", keys included)", e.message, 1, true)
    parts[n] = nil -- one less gets through the door (and fails later, on the fields)
    local r = call(new_app(), "POST", "/api/v1/agents", { body = '{"input": [' .. table.concat(parts, ",") .. "]}" })
    assert.are_not.equal("invalid_json", r:decoded().error.code)
  end)

  it("answers a handler error with 500 and a reference, without paths or traceback", function()
    local app = new_app()
    app:route("GET", "/api/v1/boom", function() error("kaboom at /srv/secret/dir/x.lua") end)
    local e = err_of(call(app, "GET", "/api/v1/boom"), 500)
    assert.equal("internal", e.code)
    assert.is_string(e.details.reference)
    assert.falsy(e.message:find("/", 1, true), e.message)
    assert.falsy(e.message:find("traceback", 1, true), e.message)
    assert.falsy(e.message:find("kaboom", 1, true), e.message)
  end)

  it("answers 400 with the line and column of invalid JSON", function()
    local e = err_of(call(new_app(), "POST", "/api/v1/agents", { body = '{"name": "a",\n  oops}' }), 400)
    assert.equal("invalid_json", e.code)
    assert.equal(2, e.details.line)
    assert.is_number(e.details.column)
  end)

  it("answers 415 for a body that is not application/json", function()
    local e = err_of(call(new_app(), "POST", "/api/v1/agents",
                          { body = "name=a", headers = { ["content-type"] = "application/x-www-form-urlencoded" } }), 415)
    assert.equal("unsupported_media_type", e.code)
    -- a charset parameter is fine
    local res = call(new_app(), "POST", "/api/v1/agents",
                     { body = json.encode(WRITER), headers = { ["content-type"] = "application/json; charset=utf-8" } })
    assert.equal(201, res.status_code, res.body)
  end)

  it("answers 400 when the body is not an object or is missing", function()
    local app = new_app()
    assert.equal("bad_request", err_of(call(app, "POST", "/api/v1/agents", { body = "[1,2]" }), 400).code)
    assert.equal("bad_request", err_of(call(app, "POST", "/api/v1/agents"), 400).code)
  end)

  it("turns a handler crash into a 500 without the traceback", function()
    local app = new_app()
    app:route("GET", "/boom", function() error("kaput") end)
    local stderr = io.stderr
    io.stderr = { write = function() end } -- keep the test output clean
    local res = call(app, "GET", "/boom")
    io.stderr = stderr
    local e = err_of(res, 500)
    assert.equal("internal", e.code)
    assert.not_matches("traceback", res.body)
  end)

  it("validates limit and offset", function()
    local app = new_app()
    assert.equal("bad_request", err_of(call(app, "GET", "/api/v1/agents", { query = { limit = "x" } }), 400).code)
    assert.equal("bad_request", err_of(call(app, "GET", "/api/v1/agents", { query = { limit = "5000" } }), 400).code)
    assert.equal("bad_request", err_of(call(app, "GET", "/api/v1/agents", { query = { offset = "-1" } }), 400).code)
  end)
end)

describe("weft.serve agents", function()
  it("creates (201), gets, lists with pagination, updates and deletes", function()
    local app = new_app({ tools = { h.add_tool() } })
    local res = call(app, "POST", "/api/v1/agents", { body = { id = "w1", name = "writer", model = "mock:echo",
                                                                 temperature = 0.2, max_tokens = 50, tools = { "add" } } })
    assert.equal(201, res.status_code, res.body)
    assert.equal("/api/v1/agents/w1", res.headers.location)
    assert.equal("w1", res:decoded().id)
    for i = 2, 5 do
      assert.equal(201, call(app, "POST", "/api/v1/agents", { body = { id = "w" .. i, name = "n", model = "mock:echo" } }).status_code)
    end
    local got = call(app, "GET", "/api/v1/agents/w1"):decoded()
    assert.same({ "add" }, got.tools)
    assert.equal(0.2, got.temperature)
    local page = call(app, "GET", "/api/v1/agents", { query = { limit = "2", offset = "1" } }):decoded()
    assert.equal(5, page.total)
    assert.same({ "w2", "w3" }, { page.items[1].id, page.items[2].id })
    -- PATCH merges
    res = call(app, "PATCH", "/api/v1/agents/w1", { body = { temperature = 0.9 } })
    assert.equal(200, res.status_code, res.body)
    got = res:decoded()
    assert.equal(0.9, got.temperature)
    assert.same({ "add" }, got.tools)
    -- PUT replaces
    got = call(app, "PUT", "/api/v1/agents/w1", { body = { name = "writer2", model = "mock:echo" } }):decoded()
    assert.equal("writer2", got.name)
    assert.is_nil(got.tools)
    assert.equal(204, call(app, "DELETE", "/api/v1/agents/w1").status_code)
    assert.equal(404, call(app, "GET", "/api/v1/agents/w1").status_code)
    err_of(call(app, "DELETE", "/api/v1/agents/w1"), 404)
    err_of(call(app, "PUT", "/api/v1/agents/nope", { body = WRITER }), 404)
  end)

  it("rejects an unknown tool naming it", function()
    local e = err_of(call(new_app(), "POST", "/api/v1/agents",
                          { body = { name = "w", model = "mock:echo", tools = { "nope" } } }), 400)
    assert.equal("unknown_tool", e.code)
    assert.matches("nope", e.message, 1, true)
    assert.equal("nope", e.details.tool)
  end)

  it("rejects bad fields with weft's validation message", function()
    local app = new_app()
    assert.matches("unknown field 'modle'",
      err_of(call(app, "POST", "/api/v1/agents", { body = { name = "w", modle = "x" } }), 400).message, 1, true)
    assert.matches("temperature must be a number",
      err_of(call(app, "POST", "/api/v1/agents", { body = { name = "w", model = "mock:echo", temperature = "hot" } }), 400).message, 1, true)
    assert.matches("name",
      err_of(call(app, "POST", "/api/v1/agents", { body = { model = "mock:echo" } }), 400).message, 1, true)
    assert.equal("invalid_id",
      err_of(call(app, "POST", "/api/v1/agents", { body = { id = "../x", name = "w", model = "mock:echo" } }), 400).code)
    assert.matches("does not match",
      err_of(call(app, "POST", "/api/v1/agents", { body = WRITER }) and
             call(app, "PUT", "/api/v1/agents/writer", { body = { id = "other", name = "w", model = "mock:echo" } }), 400).message, 1, true)
  end)

  it("answers 409 for a duplicate id", function()
    local app = new_app()
    assert.equal(201, call(app, "POST", "/api/v1/agents", { body = WRITER }).status_code)
    assert.equal("conflict", err_of(call(app, "POST", "/api/v1/agents", { body = WRITER }), 409).code)
  end)

  it("keeps definitions in the store across apps", function()
    local store = assert(weft.store.open("memory:"))
    local a1 = new_app({ store = store })
    assert.equal(201, call(a1, "POST", "/api/v1/agents", { body = WRITER }).status_code)
    assert.is_string(store:get("defs", "agent/writer"))
    local a2 = new_app({ store = store })
    assert.equal("writer", call(a2, "GET", "/api/v1/agents/writer"):decoded().name)
  end)

  it("refuses to delete an agent a workflow uses", function()
    local app = new_app()
    call(app, "POST", "/api/v1/agents", { body = WRITER })
    call(app, "POST", "/api/v1/workflows", { body = { id = "wf", nodes = { { id = "w", agent = "writer" } } } })
    assert.equal("conflict", err_of(call(app, "DELETE", "/api/v1/agents/writer"), 409).code)
  end)
end)

describe("weft.serve tools", function()
  it("lists and gets registered tools", function()
    local app = new_app()
    app:register_tool(h.add_tool())
    local list = call(app, "GET", "/api/v1/tools"):decoded()
    assert.equal(1, list.total)
    assert.equal("add", list.items[1].name)
    assert.equal("object", call(app, "GET", "/api/v1/tools/add"):decoded().parameters.type)
    err_of(call(app, "GET", "/api/v1/tools/nope"), 404)
  end)

  it("executes a tool with valid arguments", function()
    local app = new_app({ tools = { h.add_tool() } })
    local res = call(app, "POST", "/api/v1/tools/add/execute", { body = { arguments = { a = 2, b = 3 } } })
    assert.equal(200, res.status_code, res.body)
    assert.equal(5, res:decoded().result)
  end)

  it("answers 400 with the schema error for bad arguments", function()
    local app = new_app({ tools = { h.add_tool() } })
    local e = err_of(call(app, "POST", "/api/v1/tools/add/execute", { body = { arguments = { a = "x", b = 1 } } }), 400)
    assert.equal("validation_error", e.code)
    assert.matches("arguments.a", e.message, 1, true)
    e = err_of(call(app, "POST", "/api/v1/tools/add/execute", { body = { arguments = { a = 1 } } }), 400)
    assert.matches("b", e.message, 1, true)
    err_of(call(app, "POST", "/api/v1/tools/add/execute", { body = { arguments = { 1, 2 } } }), 400)
    err_of(call(app, "POST", "/api/v1/tools/nope/execute", { body = { arguments = {} } }), 404)
  end)

  it("answers 500 tool_failed when the handler raises", function()
    local app = new_app({ tools = { weft.tool{ name = "bad", handler = function() error("no way") end } } })
    local e = err_of(call(app, "POST", "/api/v1/tools/bad/execute", { body = {} }), 500)
    assert.equal("tool_failed", e.code)
    assert.matches("no way", e.message, 1, true)
  end)

  it("refuses a non-tool in register_tool", function()
    assert.has_error(function() new_app():register_tool({ name = "x" }) end, "register_tool: expects a weft.tool object")
  end)
end)

-- An app with the writer agent and a workflow definition body.
local function app_with(wf_body, opts)
  local app, store = new_app(opts)
  assert.equal(201, call(app, "POST", "/api/v1/agents", { body = WRITER }).status_code)
  if wf_body then
    local res = call(app, "POST", "/api/v1/workflows", { body = wf_body })
    assert.equal(201, res.status_code, res.body)
  end
  return app, store
end

local function execute(app, id, input, async)
  return call(app, "POST", "/api/v1/workflows/" .. id .. "/execute", { body = { input = input, async = async } })
end

describe("weft.serve workflows", function()
  it("creates, lists, gets and deletes a declarative workflow", function()
    local app = app_with({ id = "one", nodes = { { id = "w", agent = "writer" } } })
    local list = call(app, "GET", "/api/v1/workflows"):decoded()
    assert.equal(1, list.total)
    assert.equal("json", list.items[1].source)
    assert.equal("one", call(app, "GET", "/api/v1/workflows/one"):decoded().id)
    assert.equal(204, call(app, "DELETE", "/api/v1/workflows/one").status_code)
    err_of(call(app, "GET", "/api/v1/workflows/one"), 404)
    err_of(call(app, "DELETE", "/api/v1/workflows/one"), 404)
  end)

  it("runs conditional edges (equals / not_equals / exists / in)", function()
    local app = app_with({
      id = "cond", start = "p",
      nodes = { { id = "p", builtin = "passthrough" }, { id = "yes", builtin = "output" },
                { id = "no", builtin = "output" }, { id = "has", builtin = "output" },
                { id = "among", builtin = "output" } },
      edges = { { from = "p", to = "yes", condition = { field = "passed", equals = true } },
                { from = "p", to = "no", condition = { field = "passed", not_equals = true } },
                { from = "p", to = "has", condition = { field = "meta.tag", exists = true } },
                { from = "p", to = "among", condition = { field = "n", ["in"] = { 1, 2 } } } },
    })
    local out = execute(app, "cond", { passed = true, n = 2 }):decoded()
    assert.equal("completed", out.status)
    assert.equal(2, #out.outputs) -- yes + among
    out = execute(app, "cond", { passed = false, meta = { tag = "x" }, n = 3 }):decoded()
    assert.equal(2, #out.outputs) -- no + has
  end)

  it("supports switch cases, fan-out and fan-in", function()
    local app = app_with({
      id = "shape", start = "s",
      nodes = { { id = "s", builtin = "passthrough" }, { id = "a", builtin = "passthrough" },
                { id = "b", builtin = "passthrough" }, { id = "c", builtin = "passthrough" },
                { id = "asm", builtin = "code_assembler", options = { language = "lua" } } },
      edges = { { from = "s", cases = { { to = "a", condition = { field = "kind", equals = "fan" } } }, default = "c" },
                { from = "a", to = { "b", "c" } },
                { from = { "b", "c" }, to = "asm" } },
    })
    local out = execute(app, "shape", { kind = "fan", code = "x = 1", name = "p" }):decoded()
    assert.equal("completed", out.status, out.error)
    assert.equal(1, #out.outputs)
    assert.equal(2, out.outputs[1].part_count)
  end)

  it("answers 400 with weft's build message or the offending path", function()
    local app = app_with()
    local function bad(body, needle)
      local e = err_of(call(app, "POST", "/api/v1/workflows", { body = body }), 400)
      assert.matches(needle, e.message, 1, true)
      return e
    end
    bad({ id = "x", nodes = { { id = "a", agent = "ghost" } } }, "nodes[1].agent: unknown agent 'ghost'")
    bad({ id = "x", nodes = { { id = "a", builtin = "rm_rf" } } }, "unknown builtin 'rm_rf'")
    bad({ id = "x", nodes = { { id = "a", builtin = "output" } }, edges = { { from = "a", to = "zz" } } }, "unknown executor 'zz'")
    bad({ id = "x", nodes = { { id = "a", builtin = "output" }, { id = "b", builtin = "output" } } }, "unreachable")
    bad({ id = "x", nodes = { { id = "a", builtin = "passthrough" }, { id = "b", builtin = "output" } },
          edges = { { from = "a", to = "b", condition = { field = "x", matches = "y" } } } }, "edges[1].condition")
    bad({ id = "x", nodes = {} }, "workflow: nodes must be a non-empty list")
    bad({ id = "x", nodes = { { id = "a", builtin = "output" }, { id = "a", builtin = "output" } } }, "duplicate node id 'a'")
    assert.equal("invalid_id", err_of(call(app, "POST", "/api/v1/workflows",
      { body = { id = "a/b", nodes = { { id = "a", builtin = "output" } } } }), 400).code)
  end)

  it("answers 409 for a duplicate workflow id", function()
    local body = { id = "one", nodes = { { id = "w", agent = "writer" } } }
    local app = app_with(body)
    assert.equal("conflict", err_of(call(app, "POST", "/api/v1/workflows", { body = body }), 409).code)
  end)

  it("lists Lua workflows of scripts_dir read-only and runs them", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(require("lfs").mkdir(dir))
    local f = assert(io.open(dir .. "/hello.lua", "w"))
    f:write([[local weft = require "weft"
return weft.workflow("hello"):start(weft.executor("h", function(m, ctx) ctx:yield_output("hi " .. m) end)):build()]])
    f:close()
    local app = new_app({ scripts_dir = dir })
    local list = call(app, "GET", "/api/v1/workflows"):decoded()
    assert.equal("hello", list.items[1].id)
    assert.is_true(list.items[1].read_only)
    assert.equal("hello", call(app, "GET", "/api/v1/workflows/hello"):decoded().name)
    assert.equal("read_only", err_of(call(app, "DELETE", "/api/v1/workflows/hello"), 403).code)
    assert.same({ "hi bob" }, execute(app, "hello", "bob"):decoded().outputs)
    os.remove(dir .. "/hello.lua")
    require("lfs").rmdir(dir)
  end)

  it("keeps nothing per finished execution beyond the last MAX_FINISHED (no registry reference)", function()
    -- the run's subscriber (a closure holding the execution, which holds
    -- the run) stayed referenced from the registry after the run ended: a
    -- cycle through a GC root, ~5 KB lost per execution
    local app = new_app()
    assert.equal(201, call(app, "POST", "/api/v1/workflows",
      { body = { id = "p", name = "p", nodes = { { id = "a", builtin = "passthrough" } } } }).status_code)
    local function refs()
      collectgarbage("collect")
      local n = 0
      for _ in pairs(debug.getregistry()) do n = n + 1 end
      return n
    end
    for _ = 1, 50 do execute(app, "p", "x") end
    local before = refs()
    for _ = 1, 200 do execute(app, "p", "x") end
    assert.is_true(refs() - before < 10, ("registry grew by %d over 200 executions"):format(refs() - before))
  end)

  it("builds a declarative workflow again when its stored definition was replaced (by another app on the store)", function()
    local app, store = app_with({ id = "w", nodes = { { id = "first", agent = "writer" } } })
    assert.equal("first", execute(app, "w", "a"):decoded().outputs[1].executor_id)
    local other = new_app({ store = store })
    assert.equal(204, call(other, "DELETE", "/api/v1/workflows/w").status_code)
    assert.equal(201, call(other, "POST", "/api/v1/workflows",
      { body = { id = "w", nodes = { { id = "second", agent = "writer" } } } }).status_code)
    assert.equal("second", execute(app, "w", "b"):decoded().outputs[1].executor_id)
    assert.equal(204, call(other, "DELETE", "/api/v1/workflows/w").status_code)
    assert.equal(404, execute(app, "w", "c").status_code)
  end)

  it("lists the scripts dir once for many executions, again for a script added or removed", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(require("lfs").mkdir(dir))
    local function put(id)
      local f = assert(io.open(dir .. "/" .. id .. ".lua", "w"))
      f:write(([[local weft = require "weft"
return weft.workflow("%s"):start(weft.executor("h", function(m, ctx) ctx:yield_output(m) end)):build()]]):format(id))
      f:close()
    end
    put("one")
    local host = require "weft.host"
    local find, listings = host.find, 0
    -- only listings of the scripts dir count (the dashboard lists its own files once)
    host.find = function(d, ...) if d == dir then listings = listings + 1 end; return find(d, ...) end
    finally(function()
      host.find = find
      os.remove(dir .. "/one.lua")
      os.remove(dir .. "/two.lua")
      require("lfs").rmdir(dir)
    end)
    local app = new_app({ scripts_dir = dir })
    for i = 1, 5 do assert.same({ "x" .. i }, execute(app, "one", "x" .. i):decoded().outputs) end
    assert.equal(1, listings) -- before: one `find` process per execution
    put("two")
    assert.same({ "y" }, execute(app, "two", "y"):decoded().outputs)
    assert.equal(2, listings)
    os.remove(dir .. "/one.lua")
    assert.equal(404, call(app, "GET", "/api/v1/workflows/one").status_code)
  end)
end)

-- A workflow whose single node asks a human, then outputs the answer.
local HITL = { id = "ask", nodes = { { id = "q", builtin = "approval", options = { prompt = "ok?" } } } }

describe("weft.serve executions", function()
  it("runs synchronously: 200 with the outputs of the agent", function()
    local app = app_with({ id = "one", nodes = { { id = "w", agent = "writer" } } })
    local res = execute(app, "one", "hello")
    assert.equal(200, res.status_code, res.body)
    local x = res:decoded()
    assert.equal("completed", x.status)
    assert.equal("echo: hello", x.outputs[1].response)
    assert.equal(x.id, call(app, "GET", "/api/v1/executions/" .. x.id):decoded().id)
  end)

  it("runs asynchronously: 202, then the execution completes in the loop", function()
    local app = app_with({ id = "one", nodes = { { id = "w", agent = "writer" } } })
    local res = execute(app, "one", "later", true)
    assert.equal(202, res.status_code, res.body)
    local id = res:decoded().id
    assert.equal("running", res:decoded().status)
    assert.equal("/api/v1/executions/" .. id, res.headers.location)
    local x = app.executions[id]
    while x.status == "running" do x.cond:wait() end
    local got = call(app, "GET", "/api/v1/executions/" .. id):decoded()
    assert.equal("completed", got.status)
    assert.equal("echo: later", got.outputs[1].response)
  end)

  it("answers 404 for an unknown workflow or execution, 400 for bad fields", function()
    local app = app_with()
    err_of(execute(app, "nope", "x"), 404)
    err_of(call(app, "GET", "/api/v1/executions/nope"), 404)
    err_of(call(app, "POST", "/api/v1/workflows/nope/execute", { body = { inptu = 1 } }), 400)
    err_of(call(app, "POST", "/api/v1/workflows/nope/execute", { body = { async = "yes" } }), 400)
  end)

  it("lists executions filtered by workflow and status, paginated", function()
    local app = app_with({ id = "one", nodes = { { id = "w", agent = "writer" } } })
    call(app, "POST", "/api/v1/workflows", { body = HITL })
    execute(app, "one", "a"); execute(app, "one", "b"); execute(app, "ask", "c")
    assert.equal(3, call(app, "GET", "/api/v1/executions"):decoded().total)
    assert.equal(2, call(app, "GET", "/api/v1/executions", { query = { workflow = "one" } }):decoded().total)
    local idle = call(app, "GET", "/api/v1/executions", { query = { status = "idle" } }):decoded()
    assert.equal(1, idle.total)
    assert.equal("ask", idle.items[1].workflow)
    local page = call(app, "GET", "/api/v1/executions", { query = { limit = "1", offset = "2" } }):decoded()
    assert.equal(1, #page.items)
  end)

  it("pauses on a request and continues with a response", function()
    local app = app_with(HITL)
    local x = execute(app, "ask", "deploy"):decoded()
    assert.equal("idle", x.status)
    local rq = x.requests[1]
    assert.same({ prompt = "ok?", input = "deploy" }, rq.request)
    err_of(call(app, "POST", "/api/v1/executions/" .. x.id .. "/responses", { body = { request_id = "req-9", value = 1 } }), 404)
    err_of(call(app, "POST", "/api/v1/executions/" .. x.id .. "/responses", { body = { request_id = rq.request_id } }), 400)
    local res = call(app, "POST", "/api/v1/executions/" .. x.id .. "/responses",
                     { body = { request_id = rq.request_id, value = { approved = true } } })
    assert.equal(202, res.status_code, res.body)
    local live = app.executions[x.id]
    while live.status == "running" do live.cond:wait() end
    local got = call(app, "GET", "/api/v1/executions/" .. x.id):decoded()
    assert.equal("completed", got.status)
    assert.same({ { approved = true } }, got.outputs)
    assert.equal("conflict", err_of(call(app, "POST", "/api/v1/executions/" .. x.id .. "/responses",
      { body = { request_id = rq.request_id, value = 1 } }), 409).code)
  end)

  it("cancels an execution; a finished one answers 409", function()
    local app = app_with(HITL)
    local x = execute(app, "ask", "deploy"):decoded()
    local res = call(app, "DELETE", "/api/v1/executions/" .. x.id)
    assert.equal(200, res.status_code, res.body)
    assert.equal("cancelled", res:decoded().status)
    assert.equal("cancelled", call(app, "GET", "/api/v1/executions/" .. x.id):decoded().status)
    assert.equal("conflict", err_of(call(app, "DELETE", "/api/v1/executions/" .. x.id), 409).code)
    err_of(call(app, "DELETE", "/api/v1/executions/nope"), 404)
  end)

  it("streams the events as SSE with ids, and replays after last-event-id", function()
    local app = app_with({ id = "one", nodes = { { id = "w", agent = "writer" } } })
    local x = execute(app, "one", "hi"):decoded()
    local res = call(app, "GET", "/api/v1/executions/" .. x.id .. "/events")
    assert.equal(200, res.status_code)
    assert.equal("text/event-stream", res.headers["content-type"])
    assert.is_true(res.closed)
    local evs = res:events()
    assert.equal("1", evs[1].id)
    assert.equal("workflow_started", evs[1].data.type)
    assert.equal("workflow_completed", evs[#evs - 1].data.type)
    assert.equal("end", evs[#evs].event)
    local n = #evs - 1
    local again = call(app, "GET", "/api/v1/executions/" .. x.id .. "/events",
                       { headers = { ["last-event-id"] = tostring(n - 2) } }):events()
    assert.equal(3, #again)
    assert.equal(tostring(n - 1), again[1].id)
    err_of(call(app, "GET", "/api/v1/executions/" .. x.id .. "/events", { headers = { ["last-event-id"] = "x" } }), 400)
  end)

  it("keeps a live SSE stream open across a pause until the run ends", function()
    local app = app_with(HITL)
    local x = execute(app, "ask", "go"):decoded()
    local res = fake.new()
    local t = weft.go(function()
      app:handle(fake.request("GET", "/api/v1/executions/" .. x.id .. "/events"), res)
    end)
    weft.sleep(0)
    assert.is_falsy(res.closed) -- idle: the stream waits
    local rid = x.requests[1].request_id
    call(app, "POST", "/api/v1/executions/" .. x.id .. "/responses", { body = { request_id = rid, value = "yes" } })
    t:wait()
    assert.is_true(res.closed)
    local evs = res:events()
    assert.equal("end", evs[#evs].event)
    assert.equal("completed", evs[#evs].data.status)
  end)

  it("stops streaming when the client leaves", function()
    local app = app_with({ id = "one", nodes = { { id = "w", agent = "writer" } } })
    local x = execute(app, "one", "hi"):decoded()
    local res = call(app, "GET", "/api/v1/executions/" .. x.id .. "/events", { res = { fail_after = 2 } })
    assert.equal(2, #res.chunks)
    assert.is_falsy(res.closed)
  end)

  it("makes runs durable in the app's store", function()
    local path = os.tmpname()
    finally(function() os.remove(path); os.remove(path .. "-wal"); os.remove(path .. "-shm") end)
    local store = assert(require("weft").store.open("sqlite:" .. path))
    local app = app_with({ id = "one", nodes = { { id = "w", agent = "writer" } } }, { store = store })
    local x = execute(app, "one", "hi"):decoded()
    assert.is_true(x.durable)
    local rec = json.decode(assert(store:get("runs", x.id)))
    assert.equal("completed", rec.status)
    -- the summary survives a new app on the same store
    local app2 = new_app({ store = store })
    assert.equal("completed", call(app2, "GET", "/api/v1/executions/" .. x.id):decoded().status)
  end)

  it("makes runs durable in a memory store only when asked (it ends with the process)", function()
    local app, store = app_with({ id = "one", nodes = { { id = "w", agent = "writer" } } })
    local x = execute(app, "one", "hi"):decoded()
    assert.equal("completed", x.status)
    assert.is_nil(x.durable)
    assert.is_nil(store:get("runs", x.id))
    assert.is_nil(store:range("ckpt", x.id)[1])
    -- its summary is still kept in the store
    assert.equal("completed", call(new_app({ store = store }), "GET", "/api/v1/executions/" .. x.id):decoded().status)
    local app2, store2 = app_with({ id = "one", nodes = { { id = "w", agent = "writer" } } }, { durable = true })
    local x2 = execute(app2, "one", "hi"):decoded()
    assert.is_true(x2.durable)
    assert.equal("completed", json.decode(assert(store2:get("runs", x2.id))).status)
  end)
end)

describe("weft.serve health and metrics", function()
  it("reports health", function()
    local health = call(new_app(), "GET", "/api/v1/health"):decoded()
    assert.equal("ok", health.status)
    assert.equal("memory", health.store)
  end)

  it("exposes Prometheus counters and the duration histogram", function()
    local app = app_with({ id = "one", nodes = { { id = "w", agent = "writer" } } })
    execute(app, "one", "a"); execute(app, "one", "b")
    local res = call(app, "GET", "/metrics")
    assert.equal(200, res.status_code)
    assert.matches("^text/plain", res.headers["content-type"])
    local text = res.body
    assert.matches('weft_runs_total{status="completed"} 2', text, 1, true)
    assert.matches("weft_supersteps_total 4", text, 1, true)
    assert.matches('weft_executor_duration_seconds_bucket{le="+Inf"} 4', text, 1, true)
    assert.matches("weft_executor_duration_seconds_count 4", text, 1, true)
    assert.matches('weft_run_duration_seconds_bucket{le="+Inf"} 2', text, 1, true)
    assert.matches("weft_run_duration_seconds_count 2", text, 1, true)
    assert.matches('weft_http_requests_total{method="POST",code="200"} 2', text, 1, true)
  end)

  it("times every invocation, several of one executor in one superstep included", function()
    -- b and c both send to d: d runs twice in one superstep, and so does
    -- the implicit output node after it
    local app = app_with({ id = "fan", start = "a", nodes = {
      { id = "a", builtin = "passthrough" }, { id = "b", builtin = "passthrough" },
      { id = "c", builtin = "passthrough" }, { id = "d", builtin = "passthrough" } },
      edges = { { from = "a", to = { "b", "c" } }, { from = "b", to = "d" }, { from = "c", to = "d" } } })
    local x = execute(app, "fan", "m"):decoded()
    assert.equal("completed", x.status)
    assert.same({ "m", "m" }, x.outputs)
    local invoked, completed = 0, 0
    for _, ev in ipairs(app.executions[x.id].events) do
      if ev.type == "executor_invoked" then invoked = invoked + 1 end
      if ev.type == "executor_completed" then completed = completed + 1 end
    end
    assert.equal(7, invoked)
    assert.equal(7, completed)
    local text = call(app, "GET", "/metrics").body
    assert.matches("weft_executor_duration_seconds_count 7", text, 1, true)
    assert.matches('weft_executor_duration_seconds_bucket{le="+Inf"} 7', text, 1, true)
  end)

  it("counts model calls and tokens by provider", function()
    local llm = require "weft.llm"
    local before = (llm.counters.requests.mock or {}).ok or 0
    local app = app_with({ id = "one", nodes = { { id = "w", agent = "writer" } } })
    execute(app, "one", "a"); execute(app, "one", "b")
    local text = call(app, "GET", "/metrics").body
    assert.matches(('weft_llm_requests_total{provider="mock",status="ok"} %d'):format(before + 2), text, 1, true)
    assert.matches('weft_tokens_total{provider="mock",kind="input"} %d+', text)
  end)

  describe("request bodies (one schema each, weft.check)", function()
    local function post(app, path, body) return call(app, "POST", path, { body = body }) end

    it("names the unknown field and the one meant, with the endpoint's error code", function()
      local app = app_with()
      app:register_tool(h.add_tool())
      local e = err_of(post(app, "/api/v1/agents", { name = "w", modle = "x" }), 400)
      assert.equal("validation_error", e.code)
      assert.equal("modle", e.details.field)
      assert.matches("agent: unknown field 'modle' (fields: description, guardrails, id, instructions, max_tokens, "
                     .. "max_tool_rounds, model, name, temperature, tools); did you mean 'model'?", e.message, 1, true)
      e = err_of(post(app, "/api/v1/agents", { name = "w", system_prompt = "x" }), 400)
      assert.matches("did you mean 'instructions'?", e.message, 1, true)
      e = err_of(post(app, "/api/v1/workflows", { id = "x", nodes = { { id = "a", builtin = "output" } }, edgse = {} }), 400)
      assert.equal("invalid_workflow", e.code)
      assert.matches("did you mean 'edges'?", e.message, 1, true)
      e = err_of(post(app, "/api/v1/workflows", { id = "x", nodes = { { id = "a", builtn = "output" } } }), 400)
      assert.matches("nodes[1]: unknown field 'builtn' (fields: agent, builtin, guardrails, id, options); did you mean 'builtin'?",
                     e.message, 1, true)
      assert.equal("nodes[1].builtn", e.details.path)
      e = err_of(post(app, "/api/v1/workflows", { id = "x", nodes = { { id = "a", builtin = "passthrough" },
        { id = "b", builtin = "output" } }, edges = { { from = "a", to = "b", conditon = { field = "x", exists = true } } } }), 400)
      assert.matches("edges[1]: unknown field 'conditon'", e.message, 1, true)
      assert.matches("did you mean 'condition'?", e.message, 1, true)
      e = err_of(post(app, "/api/v1/workflows/w/execute", { inptu = "x" }), 400)
      assert.equal("validation_error", e.code)
      assert.matches("execute: unknown field 'inptu' (fields: async, input); did you mean 'input'?", e.message, 1, true)
      e = err_of(post(app, "/api/v1/workflows/w/execute", { async = "yes" }), 400)
      assert.equal("async", e.details.field)
      e = err_of(post(app, "/api/v1/tools/add/execute", { args = { a = 1, b = 2 } }), 400)
      assert.matches("did you mean 'arguments'?", e.message, 1, true)
      e = err_of(post(app, "/api/v1/tools/add/execute", { arguments = { 1, 2 } }), 400)
      assert.equal("arguments", e.details.field)
      e = err_of(post(app, "/api/v1/builder/execute", { requets = "make an agent" }), 400)
      assert.matches("builder: unknown field 'requets' (fields: context, dry_run, request); did you mean 'request'?",
                     e.message, 1, true)
      e = err_of(post(app, "/v1/chat/completions", { model = "agent:w", messages = {}, stream = "yes" }), 400, true)
      assert.equal("stream", e.param)
      assert.equal("invalid_request", e.code)
    end)

    it("passes a declarative workflow's limits to the workflow defaults, checking them", function()
      local app = app_with()
      local body = { id = "lim", max_supersteps = 7, limits = { messages_per_invocation = 5 },
                     nodes = { { id = "a", builtin = "output" } } }
      assert.equal(201, post(app, "/api/v1/workflows", body).status_code)
      local wf = require("weft.serve.workflows").get(app, "lim")
      assert.equal(5, wf._defaults.limits.messages_per_invocation)
      assert.equal(7, wf._defaults.max_supersteps)
      local e = err_of(post(app, "/api/v1/workflows", { id = "lim2", limits = { mesages_per_invocation = 5 },
                                                       nodes = { { id = "a", builtin = "output" } } }), 400)
      assert.equal("invalid_workflow", e.code)
      assert.matches("unknown limit 'limits.mesages_per_invocation'", e.message, 1, true)
      assert.matches("did you mean 'messages_per_invocation'?", e.message, 1, true)
      e = err_of(post(app, "/api/v1/workflows", { id = "lim3", limits = { messages_per_invocation = 0 },
                                                 nodes = { { id = "a", builtin = "output" } } }), 400)
      assert.matches("limits.messages_per_invocation must be an integer from 1", e.message, 1, true)
    end)

    it("publishes the schemas it checks at GET /api/v1/schemas", function()
      local res = call(app_with(), "GET", "/api/v1/schemas")
      assert.equal(200, res.status_code)
      local d = res:decoded()
      assert.same({ "name" }, d.agent.required)
      assert.is_false(d.agent.additionalProperties)
      assert.equal("integer", d.agent.properties.max_tokens.type)
      assert.equal("integer", d.workflow.properties.limits.properties.messages_per_invocation.type)
      assert.same({ "nodes" }, d.workflow.required)
      assert.same({ "request_id", "value" }, d.response.required)
      assert.is_true(d.chat_completion.additionalProperties)
      assert.equal("object", d.tool_execute.properties.arguments.type)
    end)
  end)
end)
