-- spec/unit/serve_responses_spec.lua — OpenAI's Responses API of `weft
-- serve` (lua/weft/serve/responses.lua) and the paused-workflow and
-- provider-error paths of /v1/chat/completions, through app:handle with
-- the fake response (spec/support/fake_res.lua). Agents answer through
-- the offline mock model; the paused workflow is a Lua script of the app.
local json = require "weft.json"
local fake = require "support.fake_res"
local files = require "support.files"
local responses = require "weft.serve.responses"

local call = fake.call
local scope = require("support.scope")(after_each)

local WRITER = { id = "writer", name = "writer", model = "mock:echo", instructions = "You write." }

-- One question to a human, then the answer in the output.
local ASK = [[
local weft = require "weft"
return weft.workflow("ask"):start(weft.executor("ask", function(m, ctx)
  local a = ctx:request_info({ question = "ok?" })
  ctx:yield_output(tostring(m) .. ": " .. (type(a) == "table" and tostring(a.answer) or tostring(a)))
end)):build()
]]

-- An app with the agent "writer" and the script workflow "ask".
local function new_app()
  local dir = scope.tmpdir()
  files.write(dir .. "/ask.lua", ASK)
  local app = fake.app{ scripts_dir = dir }
  assert.equal(201, call(app, "POST", "/api/v1/agents", { body = WRITER }).status_code)
  return app
end

-- POST /v1/responses with body; the fake res.
local function create(app, body) return call(app, "POST", "/v1/responses", { body = body }) end

-- The decoded OpenAI error of res after checking its status.
local function oerr(res, status)
  assert.equal(status, res.status_code, res.body)
  local e = res:decoded().error
  assert.is_string(e.message)
  assert.is_string(e.type)
  return e
end

describe("POST /v1/responses", function()
  it("answers a response object with a message item", function()
    local res = create(new_app(), { model = "agent:writer", input = "hello there" })
    assert.equal(200, res.status_code, res.body)
    local r = res:decoded()
    assert.equal("response", r.object)
    assert.matches("^resp_", r.id)
    assert.equal("completed", r.status)
    assert.equal("message", r.output[1].type)
    assert.equal("assistant", r.output[1].role)
    assert.equal("output_text", r.output[1].content[1].type)
    assert.matches("hello there", r.output_text, 1, true)
    assert.equal(r.usage.input_tokens + r.usage.output_tokens, r.usage.total_tokens)
  end)

  it("keeps the conversation for previous_response_id", function()
    local app = new_app()
    local r1 = create(app, { model = "agent:writer", input = "first" }):decoded()
    local r2 = create(app, { model = "agent:writer", input = "second", previous_response_id = r1.id }):decoded()
    assert.equal(r1.id, r2.previous_response_id)
    assert.matches("echo: second", r2.output_text, 1, true)
    -- the agent saw the earlier turns: the mock counts the words it was sent
    assert.is_true(r2.usage.input_tokens > r1.usage.input_tokens)
  end)

  it("tells the client's function tools as function_call items and continues with their outputs", function()
    local app = new_app()
    local tools = { { type = "function", name = "get_weather", description = "weather of a city",
                      parameters = { type = "object", properties = { city = { type = "string" } } } } }
    local r1 = create(app, { model = "agent:writer", tools = tools,
                             input = 'call get_weather {"city": "Paris"}' }):decoded()
    assert.equal("completed", r1.status)
    local fc = r1.output[#r1.output]
    assert.equal("function_call", fc.type)
    assert.equal("get_weather", fc.name)
    assert.same({ city = "Paris" }, json.decode(fc.arguments))
    assert.is_string(fc.call_id)
    -- an output for another call is refused, the right one continues the run
    local bad = create(app, { model = "agent:writer", previous_response_id = r1.id,
                              input = { { type = "function_call_output", call_id = "nope", output = "x" } } })
    assert.equal("input", oerr(bad, 400).param)
    bad = create(app, { model = "workflow:ask", previous_response_id = r1.id,
                        input = { { type = "function_call_output", call_id = fc.call_id, output = "x" } } })
    assert.equal("model", oerr(bad, 400).param)
    local r2 = create(app, { model = "agent:writer", previous_response_id = r1.id, tools = tools,
      input = { { type = "function_call_output", call_id = fc.call_id, output = "sunny" } } }):decoded()
    assert.equal("completed", r2.status)
    assert.equal("tool said: sunny", r2.output_text)
  end)

  it("tells every client call of one model reply in one response, and takes their outputs together", function()
    local app = new_app()
    local tools = { { type = "function", name = "f" }, { type = "function", name = "g" } }
    local r1 = create(app, { model = "agent:writer", tools = tools, input = 'call f {"x": 1} call g {"y": 2}' }):decoded()
    assert.equal(2, #r1.output)
    assert.same({ "f", "g" }, { r1.output[1].name, r1.output[2].name })
    assert.same({ y = 2 }, json.decode(r1.output[2].arguments))
    -- one output missing: refused, the run still waits
    local e = oerr(create(app, { model = "agent:writer", previous_response_id = r1.id,
      input = { { type = "function_call_output", call_id = r1.output[1].call_id, output = "A" } } }), 400)
    assert.matches(r1.output[2].call_id, e.message, 1, true)
    local r2 = create(app, { model = "agent:writer", previous_response_id = r1.id, input = {
      { type = "function_call_output", call_id = r1.output[1].call_id, output = "A" },
      { type = "function_call_output", call_id = r1.output[2].call_id, output = "B" } } }):decoded()
    assert.equal("tool said: A; B", r2.output_text)
    -- the paused response was continued once: a second continuation is refused
    oerr(create(app, { model = "agent:writer", previous_response_id = r1.id, input = {
      { type = "function_call_output", call_id = r1.output[1].call_id, output = "A" } } }), 400)
  end)

  it("takes a whole conversation with function calls and outputs as input (no previous_response_id)", function()
    local r = create(new_app(), { model = "agent:writer", input = {
      { role = "user", content = "call f" },
      { type = "function_call", call_id = "c1", name = "f", arguments = "{}" },
      { type = "function_call_output", call_id = "c1", output = "done" } } })
    assert.equal(200, r.status_code, r.body)
    assert.equal("tool said: done", r:decoded().output_text)
  end)

  it("streams the Responses events in order with sequence numbers", function()
    local res = create(new_app(), { model = "agent:writer", input = "stream me", stream = true })
    assert.equal(200, res.status_code)
    assert.equal("text/event-stream", res.headers["content-type"])
    local evs = res:events()
    local kinds = {}
    for i, e in ipairs(evs) do
      kinds[i] = e.event
      assert.equal(e.event, e.data.type)
      assert.equal(i - 1, e.data.sequence_number)
    end
    assert.equal("response.created", kinds[1])
    assert.equal("response.in_progress", kinds[2])
    assert.equal("response.output_item.added", kinds[3])
    assert.equal("response.content_part.added", kinds[4])
    assert.equal("response.completed", kinds[#kinds])
    local text = {}
    for _, e in ipairs(evs) do
      if e.event == "response.output_text.delta" then text[#text + 1] = e.data.delta end
    end
    assert.matches("stream me", table.concat(text), 1, true)
    assert.matches("stream me", evs[#evs].data.response.output_text, 1, true)
  end)

  it("keeps no events of a streamed foreground response once done, also when its client left", function()
    local app = new_app()
    local res = call(app, "POST", "/v1/responses", { res = { fail_after = 1 },
      body = { model = "agent:writer", input = "leaving", stream = true } })
    assert.equal(1, #res.chunks)
    local id = json.decode(res.chunks[1]:match("data: (.-)\n")).response.id
    local rec = responses.get(app, id)
    require("weft").go(function() responses.wait(rec) end):wait()
    assert.equal("completed", rec.status)
    assert.is_nil(rec.events)
  end)

  it("runs in the background: retrieve, stream by id after a sequence number, cancel", function()
    local app = new_app()
    local r = create(app, { model = "agent:writer", input = "in the back", background = true }):decoded()
    assert.is_true(r.background)
    local all = call(app, "GET", "/v1/responses/" .. r.id, { query = { stream = "true" } }):events()
    assert.equal("response.completed", all[#all].event)
    local rest = call(app, "GET", "/v1/responses/" .. r.id, { query = { stream = "true", starting_after = "2" } }):events()
    assert.equal(#all - 3, #rest)
    assert.equal(3, rest[1].data.sequence_number)
    local got = call(app, "GET", "/v1/responses/" .. r.id):decoded()
    assert.equal("completed", got.status)
    assert.matches("in the back", got.output_text, 1, true)
    -- a finished response stays as it is; a foreground one cannot be cancelled
    assert.equal("completed", call(app, "POST", "/v1/responses/" .. r.id .. "/cancel"):decoded().status)
    local fg = create(app, { model = "agent:writer", input = "x" }):decoded()
    oerr(call(app, "POST", "/v1/responses/" .. fg.id .. "/cancel"), 400)
    assert.equal(404, call(app, "GET", "/v1/responses/resp_nope").status_code)
    assert.is_true(call(app, "DELETE", "/v1/responses/" .. fg.id):decoded().deleted)
    assert.equal(404, call(app, "GET", "/v1/responses/" .. fg.id).status_code)
  end)

  it("cancels a background response that waits for its function outputs", function()
    local app = new_app()
    local r = create(app, { model = "agent:writer", background = true, input = "call f",
                            tools = { { type = "function", name = "f" } } }):decoded()
    local cur = call(app, "GET", "/v1/responses/" .. r.id):decoded()
    assert.equal("completed", cur.status)
    assert.equal("function_call", cur.output[1].type)
    local c = responses.get(app, r.id)
    local sess = c.sess
    assert.is_table(sess)
    call(app, "DELETE", "/v1/responses/" .. r.id)
    assert.is_true(sess.cancelled)
  end)

  it("answers a paused workflow's request as a weft_request call", function()
    local app = new_app()
    local r1 = create(app, { model = "workflow:ask", input = "expense" }):decoded()
    assert.equal("completed", r1.status)
    local fc = r1.output[1]
    assert.equal("function_call", fc.type)
    assert.equal("weft_request", fc.name)
    local args = json.decode(fc.arguments)
    assert.equal("ask", args.executor_id)
    assert.same({ question = "ok?" }, args.request)
    local r2 = create(app, { model = "workflow:ask", previous_response_id = r1.id,
      input = { { type = "function_call_output", call_id = fc.call_id, output = '{"answer": "yes"}' } } }):decoded()
    assert.equal("completed", r2.status)
    assert.equal("expense: yes", r2.output_text)
  end)

  it("refuses hostile and malformed input naming the problem", function()
    local app = new_app()
    local huge = {}
    for i = 1, responses.MAX_ITEMS + 1 do huge[i] = { role = "user", content = "x" } end
    assert.matches("at most", oerr(create(app, { model = "agent:writer", input = huge }), 400).message)
    assert.matches("input%[0%]%.type 'image_generation_call'",
      oerr(create(app, { model = "agent:writer", input = { { type = "image_generation_call" } } }), 400).message)
    assert.matches("role", oerr(create(app, { model = "agent:writer", input = { { role = "wizard", content = "x" } } }), 400).message)
    local e = oerr(create(app, { model = "agent:writer", input = "x", previous_response_id = "resp_nope" }), 400)
    assert.equal("previous_response_id", e.param)
    assert.equal("tools[0].type", oerr(create(app, { model = "agent:writer", input = "x",
      tools = { { type = "web_search" } } }), 400).param)
    assert.equal("tools[0].name", oerr(create(app, { model = "agent:writer", input = "x",
      tools = { { type = "function", name = "bad name!" } } }), 400).param)
    -- items, parts and tools go through the body's checker (weft.check):
    -- the message names the item and the field, the param is their path
    local e1 = oerr(create(app, { model = "agent:writer", input = { { role = "user", content = "a" },
      { role = "user", content = { { type = "input_image", image_url = "x" } } } } }), 400)
    assert.equal("input[1].content[0].type", e1.param)
    assert.matches("responses.create: input%[1%]%.content%[0%]: type must be input_text or output_text", e1.message)
    local e2 = oerr(create(app, { model = "agent:writer", input = { { type = "function_call", call_id = "c" } } }), 400)
    assert.equal("input[0].name", e2.param)
    assert.matches("input%[0%]: name must be a non%-empty string, got nothing", e2.message)
    local e3 = oerr(create(app, { model = "agent:writer", input = { { role = "user", content = 5 } } }), 400)
    assert.matches("input%[0%]: content must be a string or a list of text parts, got 5", e3.message)
    assert.equal("input[0]", oerr(create(app, { model = "agent:writer", input = { "text" } }), 400).param)
    assert.equal("tools[0].parameters", oerr(create(app, { model = "agent:writer", input = "x",
      tools = { { type = "function", name = "f", parameters = "{}" } } }), 400).param)
    -- other OpenAI fields of an item are accepted and ignored
    assert.equal("completed", create(app, { model = "agent:writer", input = { { type = "message", role = "user",
      id = "msg_1", status = "completed", content = { { type = "input_text", text = "hi", annotations = {} } } } } })
      :decoded().status)
    oerr(create(app, { model = "agent:writer", input = {
      { type = "function_call_output", call_id = "c1", output = "x" } } }), 400)
    assert.equal("model_not_found", oerr(create(app, { model = "gpt-4o", input = "x" }), 404).code)
    local fg = create(app, { model = "agent:writer", input = "x" }):decoded()
    assert.equal("stream", oerr(call(app, "GET", "/v1/responses/" .. fg.id, { query = { stream = "true" } }), 400).param)
  end)

  it("keeps at most MAX_STORED responses, forgetting the oldest finished ones", function()
    local app = new_app()
    local old = responses.MAX_STORED
    responses.MAX_STORED = 3
    finally(function() responses.MAX_STORED = old end)
    local ids = {}
    for i = 1, 5 do ids[i] = create(app, { model = "agent:writer", input = "n" .. i }):decoded().id end
    assert.equal(404, call(app, "GET", "/v1/responses/" .. ids[1]).status_code)
    assert.equal(404, call(app, "GET", "/v1/responses/" .. ids[2]).status_code)
    for i = 3, 5 do assert.equal(200, call(app, "GET", "/v1/responses/" .. ids[i]).status_code) end
    assert.equal(3, app._responses.n)
    -- past their TTL, finished responses are forgotten by the next create
    local ttl = responses.TTL
    responses.TTL = 0
    finally(function() responses.TTL = ttl end)
    create(app, { model = "agent:writer", input = "n6" })
    assert.equal(1, app._responses.n)
    assert.equal(404, call(app, "GET", "/v1/responses/" .. ids[5]).status_code)
  end)
end)

describe("GET /v1/models/{id}", function()
  it("retrieves a model whose id holds ':' (unescaped or %3A)", function()
    local app = new_app()
    local m = call(app, "GET", "/v1/models/agent:writer"):decoded()
    assert.same({ "agent:writer", "model", "weft" }, { m.id, m.object, m.owned_by })
    assert.equal("workflow:ask", call(app, "GET", "/v1/models/workflow%3Aask"):decoded().id)
    assert.equal("model_not_found", oerr(call(app, "GET", "/v1/models/agent:nope"), 404).code)
  end)
end)

describe("POST /v1/chat/completions", function()
  it("tells a paused workflow's request as a tool call and resumes it with the tool message", function()
    local app = new_app()
    local res = call(app, "POST", "/v1/chat/completions",
      { body = { model = "workflow:ask", messages = { { role = "user", content = "trip" } } } })
    assert.equal(200, res.status_code, res.body)
    local c = res:decoded().choices[1]
    assert.equal("tool_calls", c.finish_reason)
    local tc = c.message.tool_calls[1]
    assert.equal("weft_request", tc["function"].name)
    local res2 = call(app, "POST", "/v1/chat/completions", { body = { model = "workflow:ask", messages = {
      { role = "user", content = "trip" },
      { role = "assistant", content = json.null, tool_calls = { tc } },
      { role = "tool", tool_call_id = tc.id, content = '"approved"' } } } })
    assert.equal(200, res2.status_code, res2.body)
    assert.equal("trip: approved", res2:decoded().choices[1].message.content)
    assert.equal("stop", res2:decoded().choices[1].finish_reason)
  end)

  it("streams a paused workflow's request as a tool_calls delta", function()
    local app = new_app()
    local res = call(app, "POST", "/v1/chat/completions",
      { body = { model = "workflow:ask", stream = true, messages = { { role = "user", content = "trip" } } } })
    assert.equal(200, res.status_code)
    assert.equal("data: [DONE]\n\n", res:text():sub(-14))
    local tc, fin
    for _, e in ipairs(res:events()) do
      local c = type(e.data) == "table" and e.data.choices[1]
      if c and c.delta.tool_calls then tc = c.delta.tool_calls[1] end
      if c and c.finish_reason ~= json.null then fin = c.finish_reason end
    end
    assert.equal(0, tc.index)
    assert.equal("weft_request", tc["function"].name)
    assert.equal("tool_calls", fin)
    local res2 = call(app, "POST", "/v1/chat/completions", { body = { model = "workflow:ask", stream = true,
      messages = { { role = "tool", tool_call_id = tc.id, content = "ok" } } } })
    local text = {}
    for _, e in ipairs(res2:events()) do
      local d = type(e.data) == "table" and e.data.choices and e.data.choices[1]
      if d and d.delta and type(d.delta.content) == "string" then text[#text + 1] = d.delta.content end
    end
    assert.equal("trip: ok", table.concat(text))
  end)

  it("answers a provider's 400 as a 400 with its message, a 503 as a 502", function()
    local mock = require "weft.llm.mock"
    mock.register("bad", { { fail = { status = 400, times = 100 } } })
    mock.register("down", { { fail = { status = 503, times = 100, retry_after = 0 } } })
    finally(function() mock.reset() end)
    local app = new_app()
    assert.equal(201, call(app, "POST", "/api/v1/agents", { body = { id = "bad", name = "bad", model = "mock:bad" } }).status_code)
    assert.equal(201, call(app, "POST", "/api/v1/agents", {
      body = { id = "down", name = "down", model = "mock:down" } }).status_code)
    local body = { model = "agent:bad", messages = { { role = "user", content = "x" } } }
    oerr(call(app, "POST", "/v1/chat/completions", { body = body }), 400)
    body.stream = true
    oerr(call(app, "POST", "/v1/chat/completions", { body = body }), 400)
    oerr(create(app, { model = "agent:bad", input = "x" }), 400)
    oerr(create(app, { model = "agent:down", input = "x" }), 502)
  end)
end)

describe("weft.serve.tools.load (weft serve --tools)", function()
  local tools = require "weft.serve.tools"
  local TOOL = [[return require("weft").tool{ name = "%s", handler = function() return "ok" end }]]

  it("registers the tools of a file or of a directory's *.lua files", function()
    local dir = scope.tmpdir()
    files.write(dir .. "/a.lua", TOOL:format("one"))
    files.write(dir .. "/b.lua", [[return { { name = "two", handler = function() return 2 end },
      require("weft").tool{ name = "three", handler = function() return 3 end } }]])
    files.write(dir .. "/notes.txt", "not a tool")
    local app = fake.app{}
    assert.equal(3, tools.load(app, dir))
    local names = {}
    for _, t in ipairs(call(app, "GET", "/api/v1/tools"):decoded().items) do names[#names + 1] = t.name end
    assert.same({ "one", "three", "two" }, names)
    assert.equal(201, call(app, "POST", "/api/v1/agents", { body = { name = "t", model = "mock:echo",
                                                                   tools = { "two" } } }).status_code)
    local app2 = fake.app{}
    assert.equal(1, tools.load(app2, dir .. "/a.lua"))
  end)

  it("refuses a bad tools file naming it, and registers nothing", function()
    local dir = scope.tmpdir()
    files.write(dir .. "/a.lua", TOOL:format("one"))
    files.write(dir .. "/b.lua", TOOL:format("one"))
    local app = fake.app{}
    local n, err = tools.load(app, dir)
    assert.is_nil(n)
    assert.matches("b.lua: tool 'one' is defined in .*a.lua too", err)
    assert.is_nil(next(app.tools))
    files.write(dir .. "/b.lua", "return 42")
    assert.matches("b.lua: returned number", select(2, tools.load(app, dir)))
    files.write(dir .. "/b.lua", "return { { name = 'x y' } }")
    assert.matches("b.lua: tool 1:", select(2, tools.load(app, dir)))
    files.write(dir .. "/b.lua", "error('boom')")
    assert.matches("b.lua:1: boom", select(2, tools.load(app, dir)))
    assert.matches("no such file", select(2, tools.load(app, dir .. "/missing.lua")):lower())
  end)
end)
