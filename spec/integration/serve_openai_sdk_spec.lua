-- The OpenAI face of `weft serve` against the official `openai` npm SDK
-- (pinned in spec/interop/openai, installed by scripts/deps.sh): node runs
-- spec/interop/openai/sdk_client.mjs, one scenario per test, against a
-- real `weft serve` on loopback (memory store, in process) whose agents
-- answer through the mock model; the agent "bad" calls the provider test
-- server (in this process), which answers 400. #http #openai
local weft = require "weft"
local json = weft.json
local procs = require "support.procs"
local files = require "support.files"
local ps = require "support.provider_server"

local src = os.getenv("WEFT_SOURCE_DIR") or "."
local dir = src .. "/spec/interop/openai"

-- One question to a human, then the answer in the output.
local ASK = [[
local weft = require "weft"
return weft.workflow("ask"):start(weft.executor("ask", function(m, ctx)
  local a = ctx:request_info({ question = "ok?" })
  ctx:yield_output(tostring(m) .. ": " .. (type(a) == "table" and tostring(a.answer) or tostring(a)))
end)):build()
]]

-- A tools file for --tools: one weft.tool.
local ADD = [[
local weft = require "weft"
return weft.tool{ name = "add", description = "a + b",
  parameters = { type = "object", properties = { a = { type = "number" }, b = { type = "number" } } },
  handler = function(args) return args.a + args.b end }
]]

describe("weft serve with the openai SDK", function()
  local serve, srv, base, tmp

  -- Run scenario name of sdk_client.mjs; its decoded findings.
  local function sdk(name)
    local rc, out, err = procs.run({ "node", dir .. "/sdk_client.mjs", base, name }, nil, 120)
    local v = json.decode(procs.last_line(out) or "")
    assert(rc == 0 and type(v) == "table", ("sdk_client %s exited %s: %s %s"):format(name, tostring(rc), out, err))
    return v
  end

  setup(function()
    assert(io.open(dir .. "/node_modules/openai/package.json"),
      "the openai SDK is not installed: run scripts/deps.sh (npm ci in spec/interop/openai)")
    tmp = files.tempdir("weft-openai-sdk", { "scripts", "tools" })
    files.write(tmp .. "/scripts/ask.lua", ASK)
    files.write(tmp .. "/tools/add.lua", ADD)
    -- the mock's slow reply keeps a background response running until cancelled
    files.write(tmp .. "/mock.json", json.encode({ { match = "slow", latency = 600, reply = "late" } }))
    srv = ps.start{ host = "127.0.0.1", port = 0 }
    local port = procs.free_port()
    serve = procs.spawn({ procs.weft_bin(), "serve", "--port", tostring(port), "--store", "memory:",
                          "--scripts", tmp .. "/scripts", "--tools", tmp .. "/tools" },
      { OPENAI_BASE_URL = srv.url .. "/_f/status=400/v1", OPENAI_API_KEY = "test-key",
        WEFT_MOCK_SCRIPT = tmp .. "/mock.json" })
    procs.wait_port(port)
    base = ("http://127.0.0.1:%d"):format(port)
    assert.same({ writer = 201, bad = 201, calc = 201 }, sdk("setup"))
  end)

  teardown(function()
    if serve then procs.kill(serve); procs.wait(serve, 20) end
    if srv then srv:stop() end
    if tmp then files.remove(tmp) end
  end)

  it("lists models and retrieves them by ids holding ':'", function()
    local r = sdk("models")
    assert.same({ "agent:bad", "agent:calc", "agent:writer", "workflow:ask" }, r.ids)
    assert.equal("agent:writer", r.agent.id)
    assert.equal("model", r.agent.object)
    assert.equal("workflow:ask", r.workflow)
    assert.equal(404, r.missing.status)
  end)

  it("creates and retrieves a response", function()
    local r = sdk("create")
    assert.equal("completed", r.status)
    assert.matches("echo: hello sdk", r.text, 1, true)
    assert.equal(r.text, r.again)
    assert.equal(r.usage.input_tokens + r.usage.output_tokens, r.usage.total_tokens)
  end)

  it("streams a response through the SDK's stream helper", function()
    local r = sdk("stream")
    assert.equal("response.created", r.types[1])
    assert.equal("response.completed", r.types[#r.types])
    assert.matches("echo: stream sdk", r.deltas, 1, true)
    assert.equal(r.deltas, r.text)
    assert.equal("completed", r.status)
  end)

  it("continues a conversation with previous_response_id", function()
    local r = sdk("conversation")
    assert.matches("echo: second turn", r.text, 1, true)
    assert.is_true(r.previous)
    assert.is_true(r.grew)
    assert.is_true(r.bad.bad_request)
  end)

  it("round-trips the client's function tools", function()
    local r = sdk("tools")
    assert.equal("get_weather", r.name)
    assert.same({ city = "Paris" }, r.args)
    assert.equal("tool said: sunny, 21 C", r.text)
    assert.equal("completed", r.status)
  end)

  it("runs background responses: poll, stream by id after a sequence number, cancel", function()
    local r = sdk("background")
    assert.is_true(r.background)
    assert.equal("completed", r.status)
    assert.matches("in the background", r.text, 1, true)
    assert.equal(3, r.seqs[1])
    for i = 2, #r.seqs do assert.equal(r.seqs[i - 1] + 1, r.seqs[i]) end
    assert.same(r.seqs, r.helper)
    assert.equal(r.text, r.helper_text)
    assert.equal("in_progress", r.slow)
    assert.equal("cancelled", r.cancelled)
    assert.equal("cancelled", r.after)
  end)

  it("answers a paused workflow through chat completions and responses", function()
    local r = sdk("paused")
    assert.equal("tool_calls", r.finish)
    assert.equal("weft_request", r.tool)
    assert.same({ executor_id = "ask", request = { question = "ok?" } }, r.request)
    assert.equal("expense: approved", r.chat_text)
    assert.equal("weft_request", r.fc)
    assert.equal("trip: yes", r.text)
  end)

  it("gives the provider's 400 to the SDK as a BadRequestError, with one provider call each", function()
    srv:reset()
    local r = sdk("provider_error")
    for _, k in ipairs({ "chat", "responses" }) do
      assert.is_true(r[k].bad_request, k)
      assert.equal(400, r[k].status)
      assert.matches("400", r[k].message)
    end
    local calls = 0
    for _, n in pairs(srv:stats().by_path or {}) do calls = calls + n end
    assert.equal(2, calls) -- one per SDK call: neither the SDK nor weft retried
  end)

  it("gives agents created over REST the tools of --tools", function()
    local r = sdk("tools_dir")
    assert.same({ "add" }, r.listed)
    assert.equal("tool said: 5", r.text)
  end)
end)
