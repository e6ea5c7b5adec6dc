-- MCP against the official implementations (npm, spec/interop/mcp):
-- weft.tool.mcp with the reference servers server-everything and
-- server-filesystem over stdio (sandboxed children) and streamable HTTP,
-- misbehaving stdio servers (spec/interop/mcp/hostile.mjs), and `weft
-- serve`'s /mcp endpoint driven by the SDK's client (client.mjs). #mcp
local weft = require "weft"
local procs = require "support.procs"
local json = weft.json

local src = os.getenv("WEFT_SOURCE_DIR") or "."
local dir = src .. "/spec/interop/mcp"
local mods = dir .. "/node_modules"
local everything = mods .. "/@modelcontextprotocol/server-everything/dist/index.js"
local filesystem = mods .. "/@modelcontextprotocol/server-filesystem/dist/index.js"

-- Absolute paths (the sandbox binds them read-only at the same place).
local function abs(p)
  if p:sub(1, 1) == "/" then return p end
  local pwd = os.getenv("PWD") or io.popen("pwd"):read("*l")
  return pwd .. "/" .. p
end
mods, dir, everything, filesystem = abs(mods), abs(dir), abs(everything), abs(filesystem)

assert(io.open(everything), "the MCP reference servers are not installed: run scripts/deps.sh (npm ci in spec/interop/mcp)")

local function by_name(tools)
  local out = {}
  for _, t in ipairs(tools) do out[t.name] = t end
  return out
end

-- The pids of every descendant of pid.
local function descendants(pid, out)
  out = out or {}
  for _, c in ipairs(procs.children(pid)) do
    out[#out + 1] = c
    descendants(c, out)
  end
  return out
end

local function self_pid()
  return tonumber(procs.slurp("/proc/self/stat"):match("^(%d+)"))
end

-- The node processes below this one whose command line mentions s.
local function node_procs(s)
  local out = {}
  for _, p in ipairs(descendants(self_pid())) do
    local cmd = (procs.slurp("/proc/" .. p .. "/cmdline") or ""):gsub("%z", " ")
    if cmd:find("^node ") and cmd:find(s, 1, true) then out[#out + 1] = p end
  end
  return out
end

describe("weft.tool.mcp over stdio", function()
  local tools
  setup(function()
    tools = assert(weft.tool.mcp { command = { "node", everything, "stdio" }, ro_paths = { mods } })
  end)
  teardown(function() if tools then tools.client:close() end end)

  it("lists the server's tools with its names, descriptions and schemas unchanged", function()
    local t = by_name(tools)
    assert.truthy(t.echo and t["get-sum"])
    assert.equal("Echoes back the input string", t.echo.description)
    assert.equal("string", t.echo.parameters.properties.message.type)
    assert.equal("http://json-schema.org/draft-07/schema#", t.echo.parameters["$schema"])
    assert.same({ "a", "b" }, t["get-sum"].parameters.required)
    assert.equal("mcp-servers/everything", tools.client.name)
    assert.truthy(weft.tool.is_tool(t.echo))
  end)

  it("runs a tool an agent calls and gives the model its text", function()
    local a = weft.agent { name = "mcp-user", model = "mock:echo", tools = tools }
    local r = assert(a:run('call get-sum {"a": 2, "b": 40}'))
    assert.equal("tool said: The sum of 2 and 40 is 42.", r.text)
  end)

  it("validates arguments with the server's schema before calling", function()
    local ok, text = by_name(tools)["get-sum"]:invoke({ a = 1 })
    assert.is_false(ok)
    assert.equal("invalid arguments for tool 'get-sum': arguments: missing required property 'b'",
                 json.decode(text).error)
  end)

  it("starts a killed server again on the next call", function()
    local pids = node_procs(everything)
    assert.equal(1, #pids)
    os.execute("kill -9 " .. pids[1])
    local echo = by_name(tools).echo
    local ok, text = echo:invoke({ message = "one" })
    -- the call in flight when the server died may fail; the next one reaches a new server
    if not ok then
      assert.truthy(json.decode(text).error:find("mcp server 'mcp-servers/everything'", 1, true), text)
      ok, text = echo:invoke({ message = "two" })
    end
    assert.is_true(ok, text)
    assert.truthy(text:find("^Echo: "))
    local now = node_procs(everything)
    assert.equal(1, #now)
    assert.are_not.equal(pids[1], now[1])
  end)

  it("takes a prefix", function()
    local more = assert(weft.tool.mcp { command = { "node", everything, "stdio" }, ro_paths = { mods }, prefix = "ev_" })
    finally(function() more.client:close() end)
    local t = by_name(more)
    assert.truthy(t.ev_echo)
    local ok, text = t.ev_echo:invoke('{"message": "hi"}')
    assert.is_true(ok)
    assert.equal("Echo: hi", text)
  end)
end)

describe("weft.tool.mcp with server-filesystem", function()
  it("reports the server's isError results naming the server and the tool", function()
    local root = assert(weft.sandbox.tempdir("mcp-fs"))
    local tools
    finally(function()
      if tools then tools.client:close() end
      weft.sandbox.remove(root)
    end)
    local f = assert(io.open(root .. "/note.txt", "w"))
    f:write("hello from a file")
    f:close()
    os.execute("chmod -R a+rwX " .. procs.quote(root))
    tools = assert(weft.tool.mcp { command = { "node", filesystem, root }, ro_paths = { mods }, cwd = root })
    local t = by_name(tools)
    local read = t.read_text_file or t.read_file
    local ok, text = read:invoke({ path = root .. "/note.txt" })
    assert.is_true(ok, text)
    assert.equal("hello from a file", text)
    ok, text = read:invoke({ path = root .. "/missing.txt" })
    assert.is_false(ok)
    local err = json.decode(text).error
    assert.truthy(err:find("mcp server 'secure-filesystem-server': tool '" .. read.name .. "' reported an error", 1, true), err)
  end)
end)

describe("weft.tool.mcp over streamable HTTP", function()
  it("lists and calls the tools, and initializes again when the server lost the session", function()
    local port = procs.free_port()
    local p = procs.spawn({ "node", everything, "streamableHttp" }, { PORT = tostring(port) })
    local tools
    finally(function()
      if tools then tools.client:close() end
      procs.kill(p)
    end)
    procs.wait_port(port)
    local url = ("http://127.0.0.1:%d/mcp"):format(port)
    tools = assert(weft.tool.mcp { url = url, prefix = "ev_" })
    assert.equal("2025-06-18", tools.client.version)
    local sum = by_name(tools)["ev_get-sum"]
    assert.same({ true, "The sum of 2 and 3 is 5." }, { sum:invoke({ a = 2, b = 3 }) })
    local old = tools.client.transport.session
    assert.truthy(old)
    -- a new server process knows no session
    procs.kill(p)
    procs.wait(p, 10)
    p = procs.spawn({ "node", everything, "streamableHttp" }, { PORT = tostring(port) })
    procs.wait_port(port)
    local a = weft.agent { name = "http-user", model = "mock:echo", tools = tools }
    local r = assert(a:run('call ev_echo {"message": "again"}'))
    assert.equal("tool said: Echo: again", r.text)
    assert.are_not.equal(old, tools.client.transport.session)
  end)

  it("fails with an error naming the server when nothing listens", function()
    local port = procs.free_port()
    local tools, err, code = weft.tool.mcp { url = ("http://127.0.0.1:%d/mcp"):format(port), name = "gone" }
    assert.is_nil(tools)
    assert.equal("connect", code)
    assert.truthy(err:find("mcp server 'gone'", 1, true), err)
  end)
end)

describe("weft.tool.mcp with misbehaving stdio servers", function()
  local function hostile(mode, opts)
    local o = { command = { "node", dir .. "/hostile.mjs", mode }, ro_paths = { dir } }
    for k, v in pairs(opts or {}) do o[k] = v end
    local tools = assert(weft.tool.mcp(o))
    return tools[1], tools.client
  end

  it("skips lines that are not its answer (logs, broken JSON, other ids)", function()
    local poke, client = hostile("garbage")
    finally(function() client:close() end)
    assert.same({ true, "pong" }, { poke:invoke({}) })
    assert.same({ true, "pong" }, { poke:invoke({}) })
  end)

  it("refuses a message longer than weft.tcp.max_line", function()
    local poke, client = hostile("huge")
    finally(function() client:close() end)
    local ok, text = poke:invoke({})
    assert.is_false(ok)
    local err = json.decode(text).error
    assert.truthy(err:find("mcp server 'hostile-huge': a message longer than 1048576 bytes", 1, true), err)
  end)

  it("gives up on a call the server never answers after timeout", function()
    local poke, client = hostile("silent", { timeout = 0.5 })
    finally(function() client:close() end)
    local ok, text = poke:invoke({})
    assert.is_false(ok)
    local err = json.decode(text).error
    assert.truthy(err:find("mcp server 'hostile-silent': no answer to tools/call in 0.5 s", 1, true), err)
  end)

  it("names a server that exits, and starts it again on the next call", function()
    local poke, client = hostile("exit")
    finally(function() client:close() end)
    local ok, text = poke:invoke({})
    assert.is_false(ok)
    assert.truthy(json.decode(text).error:find("mcp server 'hostile-exit'", 1, true), text)
    ok, text = poke:invoke({})
    assert.is_false(ok)
    assert.truthy(json.decode(text).error:find("mcp server 'hostile-exit'", 1, true), text)
    assert.truthy(client.info and client.info.name == "hostile-exit")
  end)

  it("fails with the server's exit when it cannot start", function()
    local tools, err, code = weft.tool.mcp { command = { "node", "/nonexistent/server.js" }, name = "broken" }
    assert.is_nil(tools)
    assert.equal("connect", code)
    assert.truthy(err:find("mcp server 'broken': initialize: the server exited with code 1", 1, true), err)
  end)

  it("raises on bad options", function()
    assert.has_error(function() weft.tool.mcp { } end,
      "weft.tool.mcp: give either command = {argv} (stdio) or url = ... (streamable HTTP)")
    assert.has_error(function() weft.tool.mcp { command = { "x" }, url = "http://x/" } end)
  end)
end)

describe("weft serve /mcp", function()
  it("serves agents and workflows as tools to the official SDK client, with an API key", function()
    local keys = os.tmpname()
    local p, tools
    finally(function()
      if tools then tools.client:close() end
      if p then procs.kill(p) end
      os.remove(keys)
    end)
    local f = assert(io.open(keys, "w"))
    f:write(json.encode({ { id = "boss", key = "b-secret", scopes = { "admin" } } }))
    f:close()
    local port = procs.free_port()
    p = procs.spawn({ procs.weft_bin(), "serve", "--port", tostring(port), "--store", "memory:", "--keys", keys })
    procs.wait_port(port)
    local base = ("http://127.0.0.1:%d"):format(port)
    local h = { authorization = "Bearer b-secret", ["content-type"] = "application/json" }
    local res = assert(weft.http.request { method = "POST", url = base .. "/api/v1/agents", headers = h,
      body = { id = "helper", name = "helper", model = "mock:echo", instructions = "be brief" } })
    assert.equal(201, res.status, res.body)
    res = assert(weft.http.request { method = "POST", url = base .. "/api/v1/workflows", headers = h,
      body = { id = "w1", name = "w1", nodes = { { id = "o", builtin = "passthrough" } }, start = "o" } })
    assert.equal(201, res.status, res.body)
    local rc, out, err = procs.run({ "node", dir .. "/client.mjs", base .. "/mcp", "b-secret",
      "agent_helper", '{"message":"hello"}', "workflow_w1", '{"input":"data"}', "agent_nope", '{"message":"x"}' }, nil, 60)
    assert.equal(0, rc, err)
    local r = json.decode(out)
    assert.is_nil(r.error)
    assert.equal("weft", r.server.name)
    assert.is_true(r.session)
    local names = {}
    for i, t in ipairs(r.tools) do names[i] = t.name end
    assert.same({ "agent_helper", "workflow_w1" }, names)
    assert.same({ "message" }, r.tools[1].inputSchema.required)
    assert.same({ { type = "text", text = "echo: hello" } }, r.calls[1].content)
    assert.same({ { type = "text", text = "data" } }, r.calls[2].content)
    assert.truthy(r.calls[3].thrown:find("unknown tool 'agent_nope'", 1, true))
    -- without the key the SDK's connection is refused
    rc, out = procs.run({ "node", dir .. "/client.mjs", base .. "/mcp", "" }, nil, 60)
    assert.equal(0, rc)
    assert.truthy(json.decode(out).error:find("an API key is required", 1, true), out)
    -- sessions: required, checked and ended by DELETE; no GET stream
    local mh = { authorization = "Bearer b-secret", ["content-type"] = "application/json" }
    local function post(msg)
      local r = assert(weft.http.request { method = "POST", url = base .. "/mcp", headers = mh, body = msg })
      return r.status, r.body ~= "" and json.decode(r.body) or nil, r.headers
    end
    local st, b = post({ jsonrpc = "2.0", id = 1, method = "ping" })
    assert.equal(400, st)
    assert.equal(-32600, b.error.code)
    st, b = post({ jsonrpc = "2.0", id = 1, method = "initialize", params = { protocolVersion = "2025-03-26" } })
    assert.equal(200, st)
    assert.equal("2025-03-26", b.result.protocolVersion)
    local _, _, hd = post({ jsonrpc = "2.0", id = 1, method = "initialize", params = { protocolVersion = "1999-01-01" } })
    mh["mcp-session-id"] = hd["mcp-session-id"]
    st, b = post({ jsonrpc = "2.0", id = 2, method = "ping" })
    assert.equal(200, st)
    assert.same({ jsonrpc = "2.0", id = 2, result = {} }, b)
    assert.equal(202, (post({ jsonrpc = "2.0", method = "notifications/initialized" })))
    st, b = post({ jsonrpc = "2.0", id = 3, method = "resources/list" })
    assert.equal(-32601, b.error.code)
    assert.equal(400, (post({ { jsonrpc = "2.0", id = 4, method = "ping" } })))
    res = assert(weft.http.request { url = base .. "/mcp", headers = mh })
    assert.equal(405, res.status)
    res = assert(weft.http.request { method = "DELETE", url = base .. "/mcp", headers = mh })
    assert.equal(200, res.status)
    assert.equal(404, (post({ jsonrpc = "2.0", id = 5, method = "ping" })))
    -- weft's own client against weft serve
    tools = assert(weft.tool.mcp { url = base .. "/mcp", headers = { authorization = "Bearer b-secret" } })
    assert.same({ true, "echo: hi there" }, { by_name(tools).agent_helper:invoke({ message = "hi there" }) })
  end)
end)

describe("weft.tool.mcp in durable runs", function()
  local FLOW = [[
local weft = require "weft"
local dir, hostile = os.getenv("WEFT_TEST_DIR"), os.getenv("WEFT_TEST_HOSTILE")
local tools = assert(weft.tool.mcp { command = { "node", hostile, "count" }, ro_paths = { hostile:match("^(.*)/") },
                                     cwd = dir })
local ex = weft.executor("caller", function(_, ctx)
  local ok, text = tools[1]:invoke({})
  local answer = ctx:request_info({ question = "ok?" })
  ctx:yield_output({ ok = ok, text = text, answer = answer })
end)
return weft.workflow("mcp-durable"):start(ex):build()
]]

  it("journals tools/call: a re-executed invocation gets the recorded result, the server is not called again", function()
    local files = require "support.files"
    local d = assert(weft.sandbox.tempdir("mcp-durable"))
    finally(function() weft.sandbox.remove(d) end)
    os.execute("chmod 777 " .. procs.quote(d))
    local path = files.write(d .. "/flow.lua", FLOW)
    local store = "sqlite:" .. d .. "/weft.db"
    local env = { WEFT_TEST_DIR = d, WEFT_TEST_HOSTILE = dir .. "/hostile.mjs" }
    local bin = procs.weft_bin()
    local rc, out, err = procs.run({ bin, "run", path, "--store", store, "--run-id", "m1" }, env, 60)
    assert.equal(3, rc, out .. err) -- waits on its request
    assert.equal("called\n", procs.slurp(d .. "/calls"))
    local rc2, out2, err2 = procs.run({ bin, "runs", "respond", "m1", "req-0-0-1-1", '"yes"', "--store", store }, env, 60)
    assert.equal(0, rc2, out2 .. err2)
    local got = json.decode(procs.last_line(out2))
    assert.same({ ok = true, text = "pong 1", answer = "yes" }, got)
    assert.equal("called\n", procs.slurp(d .. "/calls"))
  end)
end)
