-- spec/integration/agent_providers_spec.lua — weft.agent over real HTTP
-- (weft.http + weft.llm) against the provider test server (spec/support/
-- provider_server.lua, 127.0.0.1 only): for every provider, plain and
-- streamed, a tool round trip (the server calls the tool, the agent runs
-- it and sends the result back in the provider's wire format), invalid
-- arguments returned as an error result, a second turn on the same thread
-- (the history with tool calls re-encoded), usage summed, server latency,
-- a failing server returning nil, err naming the agent, and concurrent
-- agents in tasks and in a workflow. #http
local weft = require "weft"
local json = require "weft.json"
local provider_env = require "support.provider_env"
local h = require "helpers"

local KEY = "sk-FAKE-weft-agents-9a8b7c6d"
local PROVIDERS = { "openai", "anthropic", "gemini", "ollama" }
local PATH = { openai = "/v1/chat/completions", anthropic = "/v1/messages",
               gemini = "/v1beta/models/m1:", ollama = "/api/chat" }

local function roles(msgs)
  local out = {}
  for i, m in ipairs(msgs) do out[i] = m.role end
  return table.concat(out, ",")
end

describe("agents against the provider test server #http", function()
  -- the provider test server (env.srv) for these tests, and env.base(p, faults)
  local env = provider_env.use()
  local base = env.base

  -- An agent on provider p with add and fail tools.
  local function agent_for(p, faults, extra)
    local calls = {}
    local add = weft.tool {
      name = "add", description = "Add two numbers",
      parameters = { type = "object", properties = { a = { type = "number" }, b = { type = "number" } },
                     required = { "a", "b" } },
      handler = function(args, ctx)
        calls[#calls + 1] = ctx.call_id
        weft.sleep(0.001)
        return args.a + args.b
      end,
    }
    local opts = { name = p .. "-agent", model = p .. ":m1", instructions = "You add numbers.",
                   tools = { add }, llm = { api_key = KEY, base_url = base(p, faults), retry_base = 0.01 } }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return weft.agent(opts), calls
  end

  -- Requests the server saw on p's endpoint.
  local function requests(p)
    local n = 0
    for path, c in pairs(env.srv:stats().by_path or {}) do
      if path:find(PATH[p], 1, true) then n = n + c end
    end
    return n
  end

  for _, p in ipairs(PROVIDERS) do
    for _, mode in ipairs { "run", "stream" } do
      describe(p .. " " .. mode, function()
        -- agent:run or agent:stream (collecting chunks) on thread th.
        local function go(a, input, th)
          if mode == "run" then return a:run(input, th) end
          local chunks = {}
          local res, err, code = a:stream(input, th, function(c) chunks[#chunks + 1] = c end)
          if res then
            local text = {}
            for _, c in ipairs(chunks) do if c.text then text[#text + 1] = c.text end end
            assert.equals(res.text, table.concat(text))
          end
          return res, err, code
        end

        it("runs a tool the model calls and answers with its result", function()
          local a, calls = agent_for(p)
          local th = a:new_thread()
          local res = assert(go(a, 'please call add {"a":2,"b":3}', th))
          assert.equals("tool said: 5", res.text)
          assert.equals("user,assistant,tool,assistant", roles(res.messages))
          assert.equals(1, #calls)
          assert.equals(2, requests(p))
          assert.is_true(res.usage.input_tokens > 0)
          assert.is_true(res.usage.output_tokens > 0)
          assert.equals(res.usage.input_tokens + res.usage.output_tokens, res.usage.total_tokens)
        end)

        it("sends invalid arguments back as an error result", function()
          local a, calls = agent_for(p)
          local res = assert(go(a, 'call add {"a":"two","b":3}'))
          assert.equals([[tool said: {"error":"invalid arguments for tool 'add': arguments.a: expected number, got string"}]],
                        res.text)
          assert.equals(0, #calls)
        end)

        it("continues the thread with the tool history in the wire format", function()
          local a = agent_for(p)
          local th = a:new_thread()
          assert(go(a, 'call add {"a":1,"b":1}', th))
          local res = assert(go(a, "and now?", th))
          assert.equals("echo: and now?", res.text)
          assert.equals(6, th:len())
          local back = weft.thread.deserialize(th:serialize())
          assert.equals("echo: again", assert(go(a, "again", back)).text)
        end)

        it("waits for a slow server", function()
          local a = agent_for(p, "latency=20")
          assert.equals("tool said: 7", assert(go(a, 'call add {"a":3,"b":4}')).text)
        end)

        it("returns nil, err naming the agent when the server fails", function()
          local a = agent_for(p, "status=400")
          local th = a:new_thread()
          local res, err, code = go(a, "hi", th)
          assert.is_nil(res)
          assert.mentions("agent '" .. p .. "-agent': " .. p .. ": HTTP 400", err)
          assert.equals("http_400", code)
          assert.equals(0, th:len())
          assert.is_nil(err:find(KEY, 1, true))
        end)
      end)
    end
  end

  it("runs 20 agents at once in tasks against the server", function()
    local a = agent_for("openai", "latency=10")
    local tasks = {}
    for i = 1, 20 do
      tasks[i] = weft.go(function()
        local th = a:new_thread()
        local r1 = assert(a:run(('call add {"a":%d,"b":1}'):format(i), th))
        local r2 = assert(a:run("bye " .. i, th))
        return r1.text, r2.text, th:len()
      end)
    end
    for i = 1, 20 do
      local t1, t2, n = tasks[i]:wait()
      assert.equals("tool said: " .. (i + 1), t1)
      assert.equals("echo: bye " .. i, t2)
      assert.equals(6, n)
    end
    assert.equals(60, requests("openai"))
  end)

  it("streams agent_update events from an agent executor in a workflow", function()
    local a = agent_for("anthropic")
    local ex = weft.executor("calc", function(msg, ctx)
      local res = assert(a:stream(msg, a:new_thread(), function() end))
      ctx:yield_output(res.text)
    end)
    local res = weft.workflow("w"):start(ex):build():run('call add {"a":20,"b":22}')
    assert.equals("completed", res.status)
    assert.same({ "tool said: 42" }, res.outputs)
    local deltas = 0
    for _, ev in ipairs(h.filter(res.events, "agent_update", "calc")) do
      if ev.data.tool_call_delta then deltas = deltas + 1 end
    end
    assert.is_true(deltas > 0)
  end)

  it("chains agent executors over HTTP", function()
    local w = agent_for("openai", nil, { name = "writer" })
    local r = agent_for("anthropic", nil, { name = "reviewer" })
    local sink, seen = h.recorder("sink")
    local wf = weft.workflow("chain"):start(w:as_executor()):edge("writer", r:as_executor())
      :edge("reviewer", sink):build()
    local res = wf:run('call add {"a":1,"b":2}')
    assert.equals("completed", res.status)
    assert.equals("reviewer", seen[1].executor_id)
    -- the reviewer got the writer's whole conversation (tool calls included,
    -- re-encoded for Anthropic); the server, reading the last user message,
    -- makes it call the tool too
    assert.equals("user,assistant,tool,assistant,assistant,tool,assistant", roles(seen[1].conversation))
    assert.equals("tool said: 3", seen[1].response)
    assert.is_nil(json.check(seen[1]))
  end)
end)
