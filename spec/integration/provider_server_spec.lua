-- The provider test server (spec/support/provider_server.lua), spoken to
-- with raw TCP cosockets: plain endpoints, HTTP/1.1 framing (chunked
-- streams, keep-alive, 100-continue, 400s), every provider's wire format
-- and the injected faults; and the process mode.
local weft = require "weft"
local tcp = require "weft.tcp"
local json = require "weft.json"
local ps = require "support.provider_server"

local concat = table.concat

-- Raw HTTP client ------------------------------------------------------

-- Send a request on c. headers: list or map; Host and Content-Length added.
local function send_request(c, method, path, headers, body)
  local lines = { method .. " " .. path .. " HTTP/1.1", "Host: 127.0.0.1" }
  for k, v in pairs(headers or {}) do lines[#lines + 1] = k .. ": " .. v end
  if body then lines[#lines + 1] = "Content-Length: " .. #body end
  assert(c:send(concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")))
end

-- Read one response: {status, headers, body, chunks (list when chunked),
-- chunked}. On a cut: nil, err, the partial response table.
local function read_response(c, timeout)
  timeout = timeout or 10
  local line, err = c:receive("*l", timeout)
  if not line then return nil, err end
  local r = { headers = {}, chunks = {} }
  r.status = tonumber(line:match("^HTTP/1%.1 (%d%d%d) "))
  assert(r.status, "bad status line: " .. line)
  while true do
    line = assert(c:receive("*l", timeout))
    if line == "" then break end
    local k, v = line:match("^([^:]+):%s*(.*)$")
    r.headers[k:lower()] = v
  end
  if r.headers["transfer-encoding"] == "chunked" then
    r.chunked = true
    while true do
      local size_line, serr = c:receive("*l", timeout)
      if not size_line then r.body = concat(r.chunks); return nil, serr, r end
      local size = tonumber(size_line, 16)
      if size == 0 then assert(c:receive("*l", timeout) == "") break end
      local data, derr, partial = c:receive(size + 2, timeout)
      if not data then
        r.chunks[#r.chunks + 1] = partial
        r.body = concat(r.chunks)
        return nil, derr, r
      end
      r.chunks[#r.chunks + 1] = data:sub(1, -3)
    end
    r.body = concat(r.chunks)
  elseif r.headers["content-length"] then
    local data, derr, partial = c:receive(tonumber(r.headers["content-length"]), timeout)
    if not data then r.body = partial; return nil, derr, r end
    r.body = data
  else
    r.body = ""
  end
  return r
end

-- One request on a fresh connection; returns the response (and the socket).
local function fetch(srv, method, path, headers, body)
  local c = assert(tcp.connect("127.0.0.1", srv.port, 10))
  send_request(c, method, path, headers, body)
  local r, err, partial = read_response(c)
  c:close()
  return r, err, partial
end

local function post_json(srv, path, headers, t)
  local h = { ["Content-Type"] = "application/json" }
  for k, v in pairs(headers or {}) do h[k] = v end
  return fetch(srv, "POST", path, h, json.encode(t))
end

-- SSE events of a body: list of {event, data, id}; the separator is \n\n
-- or \r\n\r\n (given).
local function sse_events(body, nl)
  nl = nl or "\n"
  local out = {}
  for block in (body):gmatch("(.-)" .. nl .. nl) do
    local ev = {}
    for line in (block .. nl):gmatch("(.-)" .. nl) do
      local k, v = line:match("^(%a+): ?(.*)$")
      if k == "data" then ev.data = ev.data and (ev.data .. "\n" .. v) or v
      elseif k then ev[k] = v end
    end
    out[#out + 1] = ev
  end
  return out
end

local function ndjson_lines(body)
  local out = {}
  for line in body:gmatch("([^\n]*)\n") do out[#out + 1] = line end
  return out
end

local OPENAI = { Authorization = "Bearer test-key" }
local ANTHROPIC = { ["x-api-key"] = "test-key", ["anthropic-version"] = "2023-06-01" }
local GEMINI = { ["x-goog-api-key"] = "test-key" }

describe("provider test server", function()
  local srv
  before_each(function() srv = ps.start{ port = 0 } end)
  after_each(function() srv:stop() end)

  describe("plain endpoints", function()
    it("echoes method, path, query, headers and body as JSON", function()
      local r = fetch(srv, "POST", "/echo?a=1&b=x%20y", { ["X-Test"] = "yes" }, "payload")
      assert.equal(200, r.status)
      assert.equal("application/json", r.headers["content-type"])
      local e = json.decode(r.body)
      assert.equal("POST", e.method)
      assert.equal("/echo", e.path)
      assert.same({ a = "1", b = "x y" }, e.query)
      assert.equal("yes", e.headers["x-test"])
      assert.equal("payload", e.body)
      assert.equal(srv.url, "http://127.0.0.1:" .. srv.port)
    end)

    it("answers /status/CODE with that status and an optional retry-after", function()
      local r = fetch(srv, "GET", "/status/503?retry_after=7")
      assert.equal(503, r.status)
      assert.equal("7", r.headers["retry-after"])
      assert.same({ status = 503 }, json.decode(r.body))
    end)

    it("answers /sleep/MS", function()
      local r = fetch(srv, "GET", "/sleep/5")
      assert.equal(200, r.status)
      assert.same({ slept_ms = 5 }, json.decode(r.body))
    end)

    it("streams /sse/N as N chunked events", function()
      local r = fetch(srv, "GET", "/sse/3")
      assert.equal("text/event-stream", r.headers["content-type"])
      assert.is_true(r.chunked)
      assert.is_nil(r.headers["content-length"])
      assert.same({ 'id: 1\ndata: {"i":1}\n\n', 'id: 2\ndata: {"i":2}\n\n',
                    'id: 3\ndata: {"i":3}\n\n' }, r.chunks)
    end)

    it("streams /ndjson/N and /chunks/N one item per chunk", function()
      local r = fetch(srv, "GET", "/ndjson/2")
      assert.equal("application/x-ndjson", r.headers["content-type"])
      assert.same({ '{"i":1}\n', '{"i":2}\n' }, r.chunks)
      r = fetch(srv, "GET", "/chunks/3")
      assert.same({ "chunk 1\n", "chunk 2\n", "chunk 3\n" }, r.chunks)
    end)

    it("sends /bytes/N with a Content-Length", function()
      local r = fetch(srv, "GET", "/bytes/100000")
      assert.equal("100000", r.headers["content-length"])
      assert.equal(100000, #r.body)
      assert.equal(ps.bytes_body(100000), r.body)
      assert.equal("0123456789abcdef0123", r.body:sub(1, 20))
    end)

    it("never answers /hang", function()
      local c = assert(tcp.connect("127.0.0.1", srv.port))
      send_request(c, "GET", "/hang")
      local d, err = c:receive("*l", 0.05)
      assert.is_nil(d)
      assert.equal("timeout", err)
      c:close()
      assert.equal(1, srv:stats().by_path["/hang"])
    end)

    it("closes /close without a response", function()
      local c = assert(tcp.connect("127.0.0.1", srv.port))
      send_request(c, "GET", "/close")
      assert.equal("", c:receive("*a", 5))
    end)

    it("counts connections and requests per path, in /stats and srv:stats()", function()
      fetch(srv, "GET", "/echo")
      fetch(srv, "GET", "/echo")
      fetch(srv, "GET", "/status/200")
      local r = fetch(srv, "GET", "/stats")
      local st = json.decode(r.body)
      assert.equal(4, st.requests)
      assert.equal(4, st.connections)
      assert.equal(2, st.by_path["/echo"])
      assert.equal(1, st.by_path["/stats"])
      assert.same(srv:stats().by_path, st.by_path)
      srv:reset()
      assert.equal(0, srv:stats().requests)
    end)

    it("keeps the last requests for srv:last_request", function()
      post_json(srv, "/v1/chat/completions", OPENAI, { model = "m1",
        messages = { { role = "user", content = "x" } } })
      fetch(srv, "GET", "/echo")
      local r = srv:last_request("/v1/chat/completions")
      assert.equal("POST", r.method)
      assert.equal("Bearer test-key", r.headers.authorization)
      assert.equal("m1", r.json.model)
      assert.equal("/echo", srv:last_request().path)
      assert.is_nil(srv:last_request("/never"))
    end)

    it("answers an unknown path with 404", function()
      local r = fetch(srv, "GET", "/nope")
      assert.equal(404, r.status)
      assert.truthy(json.decode(r.body).error.message:find("/nope", 1, true))
    end)
  end)

  describe("HTTP/1.1", function()
    it("keeps a connection alive for two requests", function()
      local c = assert(tcp.connect("127.0.0.1", srv.port))
      send_request(c, "GET", "/echo?n=1")
      local r1 = assert(read_response(c))
      send_request(c, "POST", "/echo?n=2", nil, "second")
      local r2 = assert(read_response(c))
      assert.equal("1", json.decode(r1.body).query.n)
      assert.equal("second", json.decode(r2.body).body)
      -- and a stream in between does not break the framing
      send_request(c, "GET", "/sse/2")
      assert.equal(2, #assert(read_response(c)).chunks)
      send_request(c, "GET", "/status/204")
      assert.equal(204, assert(read_response(c)).status)
      c:close()
      local st = srv:stats()
      assert.equal(1, st.connections)
      assert.equal(4, st.requests)
    end)

    it("closes after a response when the client sends Connection: close", function()
      local c = assert(tcp.connect("127.0.0.1", srv.port))
      send_request(c, "GET", "/echo", { Connection = "close" })
      local r = assert(read_response(c))
      assert.equal("close", r.headers.connection)
      assert.equal("", c:receive("*a", 5))
    end)

    it("closes after an HTTP/1.0 response", function()
      local c = assert(tcp.connect("127.0.0.1", srv.port))
      c:send("GET /echo HTTP/1.0\r\n\r\n")
      local r = assert(read_response(c))
      assert.equal(200, r.status)
      assert.equal("", c:receive("*a", 5))
    end)

    it("answers Expect: 100-continue before reading the body", function()
      local c = assert(tcp.connect("127.0.0.1", srv.port))
      c:send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
      assert.equal("HTTP/1.1 100 Continue", c:receive("*l", 5))
      assert.equal("", c:receive("*l", 5))
      c:send("hello")
      local r = assert(read_response(c))
      assert.equal("hello", json.decode(r.body).body)
      c:close()
    end)

    it("reads a chunked request body", function()
      local c = assert(tcp.connect("127.0.0.1", srv.port))
      c:send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        .. "3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\n\r\n")
      local r = assert(read_response(c))
      assert.equal("abcdefg", json.decode(r.body).body)
      c:close()
    end)

    for _, case in ipairs({
      { "a malformed request line", "GARBAGE\r\n\r\n", 400 },
      { "a lower-case method", "get / HTTP/1.1\r\nHost: x\r\n\r\n", 400 },
      { "a malformed header", "GET /echo HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n", 400 },
      { "a missing Host", "GET /echo HTTP/1.1\r\n\r\n", 400 },
      { "a bad Content-Length", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n", 400 },
      { "both body framings", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
          .. "Transfer-Encoding: chunked\r\n\r\n", 400 },
      { "a bad chunk size", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400 },
      { "HTTP/2.0", "GET /echo HTTP/2.0\r\nHost: x\r\n\r\n", 505 },
    }) do
      it("rejects " .. case[1] .. " with " .. case[3] .. " and closes", function()
        local c = assert(tcp.connect("127.0.0.1", srv.port))
        c:send(case[2])
        local r = assert(read_response(c))
        assert.equal(case[3], r.status)
        assert.equal("close", r.headers.connection)
        assert.equal("", c:receive("*a", 5))
      end)
    end
  end)

  describe("OpenAI chat completions", function()
    local P = "/v1/chat/completions"

    it("answers with a chat.completion echoing the last user message", function()
      local r = post_json(srv, P, OPENAI, { model = "gpt-test", messages = {
        { role = "system", content = "be brief" },
        { role = "user", content = "hello big world" } } })
      assert.equal(200, r.status)
      local b = json.decode(r.body)
      assert.equal("chat.completion", b.object)
      assert.equal("gpt-test", b.model)
      assert.is_string(b.id)
      assert.is_number(b.created)
      local ch = b.choices[1]
      assert.equal(0, ch.index)
      assert.equal("assistant", ch.message.role)
      assert.equal("echo: hello big world", ch.message.content)
      assert.equal("stop", ch.finish_reason)
      assert.same({ 5, 4, 9 }, { b.usage.prompt_tokens, b.usage.completion_tokens,
                                 b.usage.total_tokens })
    end)

    it("reads content given as parts", function()
      local r = post_json(srv, P, OPENAI, { model = "m", messages = {
        { role = "user", content = { { type = "text", text = "from parts" } } } } })
      assert.equal("echo: from parts", json.decode(r.body).choices[1].message.content)
    end)

    it("calls an offered tool with the arguments as a JSON string", function()
      local r = post_json(srv, P, OPENAI, { model = "m",
        tools = { { type = "function", ["function"] = { name = "add", parameters = { type = "object" } } } },
        messages = { { role = "user", content = 'please call add {"a": 2, "b": 3}' } } })
      local ch = json.decode(r.body).choices[1]
      assert.equal("tool_calls", ch.finish_reason)
      assert.equal(json.null, ch.message.content)
      local tc = ch.message.tool_calls[1]
      assert.equal("function", tc.type)
      assert.is_string(tc.id)
      assert.equal("add", tc["function"].name)
      assert.is_string(tc["function"].arguments)
      assert.same({ a = 2, b = 3 }, json.decode(tc["function"].arguments))
    end)

    it("does not call a tool that is not offered, nor with tool_choice none", function()
      local r = post_json(srv, P, OPENAI, { model = "m", messages = {
        { role = "user", content = "call add" } } })
      assert.equal("echo: call add", json.decode(r.body).choices[1].message.content)
      r = post_json(srv, P, OPENAI, { model = "m", tool_choice = "none",
        tools = { { type = "function", ["function"] = { name = "add" } } },
        messages = { { role = "user", content = "call add" } } })
      assert.equal("stop", json.decode(r.body).choices[1].finish_reason)
    end)

    it("answers a tool result with 'tool said: ...'", function()
      local r = post_json(srv, P, OPENAI, { model = "m",
        tools = { { type = "function", ["function"] = { name = "add" } } },
        messages = {
          { role = "user", content = "call add {\"a\":1}" },
          { role = "assistant", content = json.null, tool_calls = { { id = "call_1", type = "function",
            ["function"] = { name = "add", arguments = '{"a":1}' } } } },
          { role = "tool", tool_call_id = "call_1", content = "42" } } })
      local ch = json.decode(r.body).choices[1]
      assert.equal("tool said: 42", ch.message.content)
      assert.equal("stop", ch.finish_reason)
    end)

    it("truncates at max_tokens with finish_reason 'length'", function()
      local r = post_json(srv, P, OPENAI, { model = "m", max_tokens = 2,
        messages = { { role = "user", content = "one two three" } } })
      local ch = json.decode(r.body).choices[1]
      assert.equal("echo: one", ch.message.content)
      assert.equal("length", ch.finish_reason)
    end)

    it("streams chat.completion.chunk deltas, a usage chunk and [DONE]", function()
      local r = post_json(srv, P, OPENAI, { model = "m", stream = true,
        stream_options = { include_usage = true },
        messages = { { role = "user", content = "a b c" } } })
      assert.equal("text/event-stream; charset=utf-8", r.headers["content-type"])
      assert.is_true(r.chunked)
      local evs = sse_events(r.body)
      assert.equal("[DONE]", evs[#evs].data)
      local text, deltas, finish, usage = {}, 0, nil, nil
      for i = 1, #evs - 1 do
        local c = json.decode(evs[i].data)
        assert.equal("chat.completion.chunk", c.object)
        if #c.choices == 0 then
          usage = c.usage
        else
          local d = c.choices[1].delta
          if i == 1 then assert.equal("assistant", d.role) end
          if d.content and d.content ~= json.null and d.content ~= "" then
            text[#text + 1] = d.content
            deltas = deltas + 1
          end
          if c.choices[1].finish_reason ~= json.null then finish = c.choices[1].finish_reason end
        end
      end
      assert.equal("echo: a b c", concat(text))
      assert.equal(4, deltas)
      assert.equal("stop", finish)
      assert.same({ 3, 4, 7 }, { usage.prompt_tokens, usage.completion_tokens, usage.total_tokens })
      assert.equal(#evs, #r.chunks) -- one event per chunk
    end)

    it("streams tool calls as index/id/name then argument fragments", function()
      local r = post_json(srv, P, OPENAI, { model = "m", stream = true,
        tools = { { type = "function", ["function"] = { name = "add" } },
                  { type = "function", ["function"] = { name = "mul" } } },
        messages = { { role = "user", content = 'call add {"a": 1, "b": 2} and call mul {"x": 10}' } } })
      local evs = sse_events(r.body)
      local calls, frags, finish = {}, 0, nil
      for i = 1, #evs - 1 do
        local c = json.decode(evs[i].data)
        assert.is_nil(c.usage) -- no include_usage: no usage field
        local d = c.choices[1].delta
        for _, tc in ipairs(d.tool_calls or {}) do
          local k = tc.index + 1
          calls[k] = calls[k] or { args = {} }
          if tc.id then calls[k].id, calls[k].name = tc.id, tc["function"].name end
          if tc["function"].arguments and tc["function"].arguments ~= "" then
            frags = frags + 1
            calls[k].args[#calls[k].args + 1] = tc["function"].arguments
          end
        end
        if c.choices[1].finish_reason ~= json.null then finish = c.choices[1].finish_reason end
      end
      assert.equal("tool_calls", finish)
      assert.equal(2, #calls)
      assert.equal("add", calls[1].name)
      assert.equal("mul", calls[2].name)
      assert.are_not.equal(calls[1].id, calls[2].id)
      assert.same({ a = 1, b = 2 }, json.decode(concat(calls[1].args)))
      assert.same({ x = 10 }, json.decode(concat(calls[2].args)))
      assert.is_true(frags > 2)
    end)

    it("rejects a request without a key, with bad JSON, or without messages", function()
      local r = post_json(srv, P, {}, { model = "m", messages = { { role = "user", content = "x" } } })
      assert.equal(401, r.status)
      assert.equal("invalid_request_error", json.decode(r.body).error.type)
      r = post_json(srv, P, { Authorization = "Bearer invalid" }, { model = "m", messages = {} })
      assert.equal("invalid_api_key", json.decode(r.body).error.code)
      r = fetch(srv, "POST", P, OPENAI, "{not json")
      assert.equal(400, r.status)
      assert.truthy(json.decode(r.body).error.message:find("parse the JSON", 1, true))
      r = post_json(srv, P, OPENAI, { model = "m" })
      assert.equal(400, r.status)
      r = fetch(srv, "GET", P, OPENAI)
      assert.equal(405, r.status)
    end)
  end)

  describe("Anthropic messages", function()
    local P = "/v1/messages"

    it("answers with a message of text blocks", function()
      local r = post_json(srv, P, ANTHROPIC, { model = "claude-test", max_tokens = 100,
        system = "be nice", messages = { { role = "user", content = "hi there" } } })
      assert.equal(200, r.status)
      local b = json.decode(r.body)
      assert.equal("message", b.type)
      assert.equal("assistant", b.role)
      assert.equal("claude-test", b.model)
      assert.same({ { type = "text", text = "echo: hi there" } }, b.content)
      assert.equal("end_turn", b.stop_reason)
      assert.equal(4, b.usage.input_tokens)
      assert.equal(3, b.usage.output_tokens)
    end)

    it("calls a tool with a tool_use block and answers its tool_result", function()
      local tools = { { name = "get", description = "d", input_schema = { type = "object" } } }
      local r = post_json(srv, P, ANTHROPIC, { model = "c", max_tokens = 100, tools = tools,
        messages = { { role = "user", content = { { type = "text", text = 'call get {"k": "v"}' } } } } })
      local b = json.decode(r.body)
      assert.equal("tool_use", b.stop_reason)
      local tu = b.content[1]
      assert.equal("tool_use", tu.type)
      assert.equal("get", tu.name)
      assert.same({ k = "v" }, tu.input)
      r = post_json(srv, P, ANTHROPIC, { model = "c", max_tokens = 100, tools = tools,
        messages = {
          { role = "user", content = 'call get {"k": "v"}' },
          { role = "assistant", content = { tu } },
          { role = "user", content = { { type = "tool_result", tool_use_id = tu.id,
            content = { { type = "text", text = "value" } } } } } } })
      b = json.decode(r.body)
      assert.equal("tool said: value", b.content[1].text)
      assert.equal("end_turn", b.stop_reason)
    end)

    it("streams the event sequence with a ping and text deltas", function()
      local r = post_json(srv, P, ANTHROPIC, { model = "c", max_tokens = 100, stream = true,
        messages = { { role = "user", content = "x y" } } })
      assert.equal("text/event-stream; charset=utf-8", r.headers["content-type"])
      local evs = sse_events(r.body)
      local names, text = {}, {}
      for i, e in ipairs(evs) do
        names[i] = e.event
        local d = json.decode(e.data)
        assert.equal(e.event, d.type)
        if e.event == "content_block_delta" then
          assert.equal("text_delta", d.delta.type)
          text[#text + 1] = d.delta.text
        elseif e.event == "message_start" then
          assert.equal(2, d.message.usage.input_tokens)
          assert.same({}, d.message.content)
        elseif e.event == "message_delta" then
          assert.equal("end_turn", d.delta.stop_reason)
          assert.equal(3, d.usage.output_tokens)
        end
      end
      assert.same({ "message_start", "content_block_start", "ping", "content_block_delta",
        "content_block_delta", "content_block_delta", "content_block_stop", "message_delta",
        "message_stop" }, names)
      assert.equal("echo: x y", concat(text))
    end)

    it("streams tool input as input_json_delta fragments", function()
      local r = post_json(srv, P, ANTHROPIC, { model = "c", max_tokens = 100, stream = true,
        tools = { { name = "get", input_schema = { type = "object" } } },
        messages = { { role = "user", content = 'call get {"key": "value"}' } } })
      local parts, start, stop = {}, nil, nil
      for _, e in ipairs(sse_events(r.body)) do
        local d = json.decode(e.data)
        if e.event == "content_block_start" then start = d.content_block end
        if e.event == "content_block_delta" then
          assert.equal("input_json_delta", d.delta.type)
          parts[#parts + 1] = d.delta.partial_json
        end
        if e.event == "message_delta" then stop = d.delta.stop_reason end
      end
      assert.equal("tool_use", start.type)
      assert.equal("get", start.name)
      assert.is_true(#parts > 2)
      assert.same({ key = "value" }, json.decode(concat(parts)))
      assert.equal("tool_use", stop)
    end)

    it("requires x-api-key, anthropic-version and max_tokens", function()
      local msgs = { { role = "user", content = "x" } }
      local r = post_json(srv, P, {}, { model = "c", max_tokens = 5, messages = msgs })
      assert.equal(401, r.status)
      local b = json.decode(r.body)
      assert.equal("error", b.type)
      assert.equal("authentication_error", b.error.type)
      r = post_json(srv, P, { ["x-api-key"] = "k" }, { model = "c", max_tokens = 5, messages = msgs })
      assert.equal(400, r.status)
      r = post_json(srv, P, ANTHROPIC, { model = "c", messages = msgs })
      assert.equal(400, r.status)
      assert.equal("invalid_request_error", json.decode(r.body).error.type)
    end)
  end)

  describe("Gemini", function()
    local base = "/v1beta/models/gemini-test"

    it("answers generateContent with candidates and usageMetadata", function()
      local r = post_json(srv, base .. ":generateContent", GEMINI, {
        systemInstruction = { parts = { { text = "sys" } } },
        contents = { { role = "user", parts = { { text = "good day" } } } } })
      assert.equal(200, r.status)
      local b = json.decode(r.body)
      local cand = b.candidates[1]
      assert.equal("model", cand.content.role)
      assert.same({ { text = "echo: good day" } }, cand.content.parts)
      assert.equal("STOP", cand.finishReason)
      assert.equal(3, b.usageMetadata.promptTokenCount)
      assert.equal(3, b.usageMetadata.candidatesTokenCount)
      assert.equal(6, b.usageMetadata.totalTokenCount)
      assert.equal("gemini-test", b.modelVersion)
    end)

    it("calls a function and answers its functionResponse", function()
      local tools = { { functionDeclarations = { { name = "lookup", parameters = { type = "object" } } } } }
      local r = post_json(srv, base .. ":generateContent?key=k", {}, { tools = tools,
        contents = { { role = "user", parts = { { text = 'call lookup {"q": [1, 2]}' } } } } })
      local part = json.decode(r.body).candidates[1].content.parts[1]
      assert.equal("lookup", part.functionCall.name)
      assert.same({ q = { 1, 2 } }, part.functionCall.args)
      r = post_json(srv, base .. ":generateContent", GEMINI, { tools = tools, contents = {
        { role = "user", parts = { { text = "call lookup" } } },
        { role = "model", parts = { part } },
        { role = "user", parts = { { functionResponse = { name = "lookup",
          response = { result = "found" } } } } } } })
      assert.equal("tool said: found", json.decode(r.body).candidates[1].content.parts[1].text)
    end)

    it("streams with alt=sse: CRLF-framed data events, usage growing to the total", function()
      local r = post_json(srv, base .. ":streamGenerateContent?alt=sse", GEMINI, {
        contents = { { role = "user", parts = { { text = "p q r" } } } } })
      assert.equal("text/event-stream", r.headers["content-type"])
      assert.truthy(r.body:find("\r\n\r\n", 1, true))
      local evs = sse_events(r.body, "\r\n")
      assert.equal(4, #evs)
      local text, last = {}, nil
      for i, e in ipairs(evs) do
        last = json.decode(e.data)
        local cand = last.candidates[1]
        text[#text + 1] = cand.content.parts[1].text
        if i < #evs then assert.is_nil(cand.finishReason) end
      end
      assert.equal("echo: p q r", concat(text))
      assert.equal("STOP", last.candidates[1].finishReason)
      assert.equal(4, last.usageMetadata.candidatesTokenCount)
    end)

    it("requires an API key", function()
      local r = post_json(srv, base .. ":generateContent", {}, {
        contents = { { role = "user", parts = { { text = "x" } } } } })
      assert.equal(403, r.status)
      assert.equal("PERMISSION_DENIED", json.decode(r.body).error.status)
    end)
  end)

  describe("Ollama /api/chat", function()
    it("streams NDJSON by default, ending with done true and the counts", function()
      local r = post_json(srv, "/api/chat", nil, { model = "llama-test",
        messages = { { role = "user", content = "u v" } } })
      assert.equal("application/x-ndjson", r.headers["content-type"])
      local lines = ndjson_lines(r.body)
      local text = {}
      for i, l in ipairs(lines) do
        local o = json.decode(l)
        assert.equal("llama-test", o.model)
        assert.is_string(o.created_at)
        if i < #lines then
          assert.is_false(o.done)
          text[#text + 1] = o.message.content
        else
          assert.is_true(o.done)
          assert.equal("stop", o.done_reason)
          assert.equal(2, o.prompt_eval_count)
          assert.equal(3, o.eval_count)
        end
      end
      assert.equal("echo: u v", concat(text))
      assert.equal(#lines, #r.chunks)
    end)

    it("answers JSON with stream false, tool calls with object arguments", function()
      local tools = { { type = "function", ["function"] = { name = "t", parameters = {} } } }
      local r = post_json(srv, "/api/chat", nil, { model = "l", stream = false, tools = tools,
        messages = { { role = "user", content = 'call t {"n": 3}' } } })
      local b = json.decode(r.body)
      assert.is_true(b.done)
      assert.equal("t", b.message.tool_calls[1]["function"].name)
      assert.same({ n = 3 }, b.message.tool_calls[1]["function"].arguments)
      r = post_json(srv, "/api/chat", nil, { model = "l", stream = false, tools = tools,
        messages = { { role = "user", content = "call t" },
                     { role = "assistant", content = "", tool_calls = b.message.tool_calls },
                     { role = "tool", content = "done!" } } })
      assert.equal("tool said: done!", json.decode(r.body).message.content)
    end)

    it("rejects a request without a model", function()
      local r = post_json(srv, "/api/chat", nil, { messages = {} })
      assert.equal(400, r.status)
      assert.equal("model is required", json.decode(r.body).error)
    end)
  end)

  describe("faults", function()
    local P = "/v1/chat/completions"
    local body = { model = "m", messages = { { role = "user", content = "x" } } }

    it("fails the first `times` requests with the status and retry-after", function()
      local path = "/_f/status=429,times=2,retry_after=3" .. P
      for _ = 1, 2 do
        local r = post_json(srv, path, OPENAI, body)
        assert.equal(429, r.status)
        assert.equal("3", r.headers["retry-after"])
        local e = json.decode(r.body).error
        assert.equal("rate_limit_exceeded", e.code)
      end
      local r = post_json(srv, path, OPENAI, body)
      assert.equal(200, r.status)
      assert.equal("echo: x", json.decode(r.body).choices[1].message.content)
      assert.equal(3, srv:stats().by_path[path])
      -- reset forgets the count
      srv:reset()
      assert.equal(429, post_json(srv, path, OPENAI, body).status)
    end)

    it("fails always without times, in the provider's error format", function()
      local path = "/_f/status=529/v1/messages"
      for _ = 1, 3 do
        local r = post_json(srv, path, ANTHROPIC, { model = "c", max_tokens = 1, messages = {} })
        assert.equal(529, r.status)
        assert.equal("overloaded_error", json.decode(r.body).error.type)
      end
    end)

    it("delays the response with latency", function()
      -- a delayed request started first finishes after an immediate one
      local order = {}
      local t = weft.go(function()
        fetch(srv, "GET", "/_f/latency=300/echo")
        order[#order + 1] = "slow"
      end)
      weft.sleep(0)
      fetch(srv, "GET", "/echo")
      order[#order + 1] = "fast"
      t:wait()
      assert.same({ "fast", "slow" }, order)
    end)

    it("cuts a stream after N events, without the final chunk", function()
      local r, err, partial = fetch(srv, "GET", "/_f/cut=2/sse/5")
      assert.is_nil(r)
      assert.equal("closed", err)
      assert.same({ 'id: 1\ndata: {"i":1}\n\n', 'id: 2\ndata: {"i":2}\n\n' }, partial.chunks)
    end)

    it("cuts a provider stream too", function()
      local r, err, partial = post_json(srv, "/_f/cut=3" .. P, OPENAI,
        { model = "m", stream = true, messages = { { role = "user", content = "a b c d" } } })
      assert.is_nil(r)
      assert.equal("closed", err)
      assert.equal(3, #sse_events(partial.body))
    end)

    it("cuts a JSON body after N bytes", function()
      local r, err, partial = fetch(srv, "GET", "/_f/cut=5/bytes/100")
      assert.is_nil(r)
      assert.equal("closed", err)
      assert.equal("01234", partial.body)
    end)

    it("makes the Nth event's data not JSON", function()
      local r = fetch(srv, "GET", "/_f/malformed=2/ndjson/3")
      local lines = ndjson_lines(r.body)
      assert.equal(3, #lines)
      assert.truthy(json.decode(lines[1]))
      assert.is_nil(json.decode(lines[2]))
      assert.truthy(json.decode(lines[3]))
      r = post_json(srv, "/_f/malformed=1" .. P, OPENAI, body)
      assert.equal(200, r.status)
      assert.is_nil(json.decode(r.body))
    end)

    it("keeps the bytes identical with bytewise and chunk_delay", function()
      local plain = fetch(srv, "GET", "/sse/3")
      local bw = fetch(srv, "GET", "/_f/bytewise/sse/3")
      local slow = fetch(srv, "GET", "/_f/chunk_delay=5,bytewise/sse/3")
      assert.equal(plain.body, bw.body)
      assert.same(plain.chunks, bw.chunks)
      assert.equal(plain.body, slow.body)
      local r = post_json(srv, "/_f/bytewise" .. P, OPENAI, body)
      assert.equal("echo: x", json.decode(r.body).choices[1].message.content)
    end)

    it("applies to plain endpoints", function()
      assert.equal(418, fetch(srv, "GET", "/_f/status=418/echo").status)
    end)

    it("rejects an unknown fault with 400 naming it", function()
      local r = fetch(srv, "GET", "/_f/explode=1/echo")
      assert.equal(400, r.status)
      assert.truthy(r.body:find("explode=1", 1, true))
    end)
  end)

  describe("stop", function()
    it("ends hanging, sleeping and streaming connections", function()
      local s2 = ps.start{}
      local cs = {}
      for i, path in ipairs({ "/hang", "/sleep/600000", "/_f/chunk_delay=600000/sse/3" }) do
        cs[i] = assert(tcp.connect("127.0.0.1", s2.port))
        send_request(cs[i], "GET", path)
      end
      while s2:stats().requests < 3 do weft.sleep(0.001) end -- all three are being served
      assert.equal(3, s2:stats().open)
      s2:stop()
      assert.equal(0, s2:stats().open)
      for _, c in ipairs(cs) do
        c:receive("*a", 5)
        c:close()
      end
      assert.is_nil(tcp.connect("127.0.0.1", s2.port, 5))
    end)
  end)
end)

describe("provider test server as a process", function()
  local BIN = os.getenv("WEFT_BIN") or "build/weft"

  it("prints 'listening PORT' and serves 1000 concurrent keep-alive clients", function()
    local fh = assert(io.popen("echo $$; exec " .. BIN .. " exec spec/support/provider_server.lua"
      .. " --port 0 2>&1", "r"))
    local pid = fh:read("*l")
    local first = fh:read("*l")
    local port = tonumber(first:match("^listening (%d+)$"))
    assert.is_number(port, first)
    local n, ok, ts = 1000, 0, {}
    for i = 1, n do
      ts[i] = weft.go(function()
        local c = assert(tcp.connect("127.0.0.1", port, 30))
        for k = 1, 2 do
          send_request(c, "GET", "/echo?i=" .. i .. "&k=" .. k)
          local r = read_response(c, 30)
          if r and json.decode(r.body).query.i == tostring(i) then ok = ok + 1 end
        end
        c:close()
      end)
    end
    for i = 1, n do ts[i]:wait() end
    os.execute("kill " .. pid)
    fh:close()
    assert.equal(2 * n, ok)
  end)
end)
