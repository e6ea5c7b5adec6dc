-- spec/unit/serve_openai_spec.lua — the OpenAI-compatible endpoint of
-- `weft serve` (lua/weft/serve/openai.lua): /v1/models and
-- /v1/chat/completions (plain and streamed) through app:handle with the
-- fake response, then end to end over weft.server on 127.0.0.1 with
-- weft's own OpenAI client (weft.llm.chat, plain and streamed). Agents
-- answer through the offline mock model.
local weft = require "weft"
local json = require "weft.json"
local fake = require "support.fake_res"
local serve = require "weft.serve.app"

local call = fake.call

local WRITER = { id = "writer", name = "writer", model = "mock:echo", instructions = "You write." }
local WF = { id = "w1", name = "w1", nodes = { { id = "o", builtin = "passthrough" } }, start = "o" }

local function new_app(security)
  local app = serve.new{ store = assert(weft.store.open("memory:")), security = security }
  local h = security and { authorization = "Bearer admin-secret-1" } or nil
  assert.equal(201, call(app, "POST", "/api/v1/agents", { body = WRITER, headers = h }).status_code)
  assert.equal(201, call(app, "POST", "/api/v1/workflows", { body = WF, headers = h }).status_code)
  return app
end

-- The data payloads of an SSE text.
local function sse_data(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do
    local d = line:match("^data: (.*)$")
    if d then out[#out + 1] = d end
  end
  return out
end

describe("weft.serve.openai", function()
  it("lists agents and workflows as models", function()
    local res = call(new_app(), "GET", "/v1/models")
    assert.equal(200, res.status_code)
    local d = res:decoded()
    assert.equal("list", d.object)
    local ids = {}
    for _, m in ipairs(d.data) do
      assert.equal("model", m.object)
      assert.is_number(m.created)
      ids[#ids + 1] = m.id
    end
    assert.same({ "agent:writer", "workflow:w1" }, ids)
  end)

  it("answers a chat.completion from an agent", function()
    local res = call(new_app(), "POST", "/v1/chat/completions",
      { body = { model = "agent:writer", messages = { { role = "user", content = "hello there" } } } })
    assert.equal(200, res.status_code, res.body)
    local d = res:decoded()
    assert.equal("chat.completion", d.object)
    assert.equal("agent:writer", d.model)
    assert.matches("^chatcmpl%-", d.id)
    assert.equal("assistant", d.choices[1].message.role)
    assert.matches("hello there", d.choices[1].message.content, 1, true)
    assert.equal("stop", d.choices[1].finish_reason)
    assert.equal(0, d.choices[1].index)
    assert.is_number(d.usage.prompt_tokens)
    assert.is_number(d.usage.completion_tokens)
    assert.equal(d.usage.prompt_tokens + d.usage.completion_tokens, d.usage.total_tokens)
  end)

  it("runs a workflow as an agent", function()
    local res = call(new_app(), "POST", "/v1/chat/completions",
      { body = { model = "workflow:w1", messages = { { role = "user", content = { { type = "text", text = "ping" } } } } } })
    assert.equal(200, res.status_code, res.body)
    assert.equal("ping", res:decoded().choices[1].message.content)
  end)

  it("streams chat.completion.chunk deltas then [DONE]", function()
    for _, model in ipairs({ "agent:writer", "workflow:w1" }) do
      local res = call(new_app(), "POST", "/v1/chat/completions",
        { body = { model = model, stream = true, stream_options = { include_usage = true },
                   messages = { { role = "user", content = "stream me" } } } })
      assert.equal(200, res.status_code)
      assert.equal("text/event-stream", res.headers["content-type"])
      assert.is_true(res.closed)
      local data = sse_data(res:text())
      assert.equal("[DONE]", data[#data])
      local text, fin, usage = {}, nil, nil
      for i = 1, #data - 1 do
        local c = json.decode(data[i])
        assert.equal("chat.completion.chunk", c.object)
        assert.equal(model, c.model)
        if c.usage then usage = c.usage
        else
          if c.choices[1].delta.content then text[#text + 1] = c.choices[1].delta.content end
          if c.choices[1].finish_reason ~= json.null then fin = c.choices[1].finish_reason end
        end
      end
      assert.equal("assistant", json.decode(data[1]).choices[1].delta.role)
      assert.matches("stream me", table.concat(text), 1, true)
      assert.equal("stop", fin)
      assert.is_number(usage.total_tokens)
    end
  end)

  it("stops writing when the streaming client leaves", function()
    local res = call(new_app(), "POST", "/v1/chat/completions", { res = { fail_after = 1 },
      body = { model = "agent:writer", stream = true, messages = { { role = "user", content = "bye" } } } })
    assert.equal(200, res.status_code)
    assert.equal(1, #res.chunks)
    assert.is_nil(res.closed)
  end)

  it("answers errors in OpenAI's shape", function()
    local app = new_app()
    local function err(status, body)
      local res = call(app, "POST", "/v1/chat/completions", { body = body })
      assert.equal(status, res.status_code, res.body)
      local e = res:decoded().error
      assert.is_string(e.message)
      assert.is_string(e.type)
      assert.is_not_nil(e.code)
      return e
    end
    local e = err(404, { model = "agent:nope", messages = { { role = "user", content = "x" } } })
    assert.equal("model_not_found", e.code)
    assert.equal("invalid_request_error", e.type)
    assert.equal("model", e.param)
    assert.equal("model_not_found", err(404, { model = "gpt-4o", messages = { { role = "user", content = "x" } } }).code)
    assert.equal("invalid_messages", err(400, { model = "agent:writer", messages = {} }).code)
    assert.equal("invalid_messages", err(400, { model = "agent:writer", messages = { { role = "wizard", content = "x" } } }).code)
    local res = call(app, "POST", "/v1/chat/completions", { body = "{oops" })
    assert.equal(400, res.status_code)
    assert.equal("invalid_json", res:decoded().error.code)
    -- the REST API keeps its own shape
    assert.is_not_nil(call(app, "GET", "/api/v1/nope"):decoded().error.details)
  end)

  it("needs a key with the run scope when keys are configured", function()
    local app = new_app{ keys = {
      { id = "boss", key = "admin-secret-1", scopes = { "admin" } },
      { id = "ro", key = "read-secret-1", scopes = { "read" } } } }
    local body = { model = "agent:writer", messages = { { role = "user", content = "x" } } }
    local res = call(app, "POST", "/v1/chat/completions", { body = body })
    assert.equal(401, res.status_code)
    assert.equal("invalid_api_key", res:decoded().error.code)
    assert.equal("authentication_error", res:decoded().error.type)
    res = call(app, "POST", "/v1/chat/completions", { body = body, headers = { authorization = "Bearer read-secret-1" } })
    assert.equal(403, res.status_code)
    assert.equal("permission_error", res:decoded().error.type)
    assert.equal(200, call(app, "GET", "/v1/models", { headers = { authorization = "Bearer read-secret-1" } }).status_code)
    assert.equal(200, call(app, "POST", "/v1/chat/completions",
      { body = body, headers = { authorization = "Bearer admin-secret-1" } }).status_code)
  end)

  it("works end to end with weft's OpenAI client (plain and streamed)", function()
    local app = new_app{ keys = { { id = "boss", key = "admin-secret-1", scopes = { "admin" } } } }
    local srv = assert(weft.server.listen{ host = "127.0.0.1", port = 0,
      handler = function(req, res) app:handle(req, res) end })
    local base = ("http://127.0.0.1:%d/v1"):format(srv.port)
    local r, err = weft.llm.chat{ model = "openai:agent:writer", base_url = base, api_key = "admin-secret-1",
      messages = { { role = "user", content = "over the wire" } }, retries = 0 }
    assert.is_table(r, err)
    assert.matches("over the wire", r.text, 1, true)
    assert.equal("stop", r.finish_reason)
    local chunks = {}
    r, err = weft.llm.chat{ model = "openai:workflow:w1", base_url = base, api_key = "admin-secret-1",
      messages = { { role = "user", content = "streamed" } }, retries = 0,
      stream = function(c) if c.text then chunks[#chunks + 1] = c.text end end }
    assert.is_table(r, err)
    assert.equal("streamed", r.text)
    assert.equal("streamed", table.concat(chunks))
    r, err = weft.llm.chat{ model = "openai:agent:writer", base_url = base, api_key = "wrong-key-000",
      messages = { { role = "user", content = "x" } }, retries = 0 }
    assert.is_nil(r)
    assert.matches("invalid API key", tostring(err), 1, true)
    srv:close()
    srv:drain(5)
  end)
end)
