-- GET /api/v1/executions: the listing answers exactly what reading and
-- decoding every stored summary, then sorting them all, answered (the
-- reference below is that former implementation), for every filter and
-- at the paging boundaries, while it decodes each stored summary once and
-- only the page's items in full. On the REST app in process
-- (spec/support/fake_res.lua) over a memory and a SQLite store.
local weft = require "weft"
local json = weft.json
local fake = require "support.fake_res"
local files = require "support.files"
local executions = require "weft.serve.executions"

local call = fake.call
local scope = require("support.scope")(after_each)

local ASK = [[
local weft = require "weft"
return weft.workflow("ask"):start(weft.executor("ask", function(m, ctx)
  ctx:yield_output(m .. ": " .. tostring(ctx:request_info({ question = m })))
end)):build()
]]

-- The former listing: every summary decoded, filtered, sorted; a page.
local function reference(app, q, limit, offset)
  local list = {}
  for _, r in ipairs(assert(app.store:scan("executions"))) do
    local live = app.executions[r.key]
    local ok, d = true, nil
    if live then d = executions.summary(live) else ok, d = pcall(json.decode, r.value) end
    -- (a stored JSON value without an id made the former sort raise: it
    -- is not a summary, and not listed now)
    if ok and type(d) == "table" and type(d.id) == "string" and (q.workflow == nil or d.workflow == q.workflow)
       and (q.status == nil or d.status == q.status) then
      d.outputs = nil
      list[#list + 1] = d
    end
  end
  table.sort(list, function(a, b)
    if a.created_at ~= b.created_at then return (a.created_at or 0) > (b.created_at or 0) end
    return a.id > b.id
  end)
  local ids = {}
  for i = offset + 1, math.min(#list, offset + limit) do ids[#ids + 1] = list[i].id end
  return ids, #list
end

-- An app on store url with 120 stored summaries (ties in created_at, one
-- without it, four workflows, five statuses), three values that are not
-- summaries (not JSON, an array, a string), and two executions of this
-- process (one changed in memory).
local function setup(url)
  local dir = scope.tmpdir()
  files.write(dir .. "/ask.lua", ASK)
  local st = assert(weft.store.open(url == "sqlite" and "sqlite:" .. dir .. "/w.db" or "memory:"))
  scope.later(function() st:close() end)
  local a = fake.app{ store = st, scripts_dir = dir, durable = false }
  local statuses = { "completed", "failed", "idle", "cancelled", "running" }
  for i = 1, 120 do
    local d = { id = ("exec-%x-%04d"):format(1790000000 + math.floor(i / 3), (i * 37) % 1000), workflow = "wf" .. (i % 4),
                status = statuses[i % 5 + 1], created_at = 1790000000 + math.floor(i / 3) + (i % 3 == 0 and 0.5 or 0),
                outputs = { "o" .. i } }
    if i == 60 then d.created_at = nil end
    assert(st:put("executions", d.id, json.encode(d)))
  end
  assert(st:put("executions", "exec-junk-1", "not json"))
  assert(st:put("executions", "exec-junk-2", "[1, 2]"))
  assert(st:put("executions", "exec-junk-3", '"a string"'))
  for _, input in ipairs({ "one", "two" }) do
    local res = call(a, "POST", "/api/v1/workflows/ask/execute", { body = { input = input } })
    assert.equal(200, res.status_code, res.body)
  end
  for _, x in pairs(a.executions) do
    if x.requests and x.requests[1] and x.requests[1].data and x.requests[1].data.question == "two" then
      x.status = "running" -- in memory only: the listing shows it as it is now
    end
  end
  return a
end

-- The listing's ids and total for query q.
local function listed(a, q)
  local res = call(a, "GET", "/api/v1/executions", { query = q })
  assert.equal(200, res.status_code, res.body)
  local d = res:decoded()
  local ids = {}
  for i, it in ipairs(d.items) do
    ids[i] = it.id
    assert.is_nil(it.outputs)
  end
  return ids, d.total, d
end

for _, url in ipairs({ "memory", "sqlite" }) do
  describe("GET /api/v1/executions on " .. url, function()
    it("answers the same pages as decoding and sorting every summary, for every filter and boundary", function()
      local a = setup(url)
      local total = select(2, reference(a, {}, 0, 0))
      assert.equal(122, total) -- 120 stored and 2 of this process
      local queries = { {}, { status = "idle" }, { status = "running" }, { workflow = "wf1" },
                        { workflow = "wf2", status = "failed" }, { workflow = "ask" }, { workflow = "none" } }
      for _, q in ipairs(queries) do
        local n = select(2, reference(a, q, 0, 0))
        for _, p in ipairs({ { 50, 0 }, { 1, 0 }, { 0, 0 }, { 7, 3 }, { 50, 50 }, { 50, 100 }, { 200, 0 },
                             { 1, n - 1 }, { 2, n - 1 }, { 10, n }, { 10, n + 5 }, { n, 0 }, { 31, 29 } }) do
          local limit, offset = p[1], math.max(0, p[2])
          local want, wtotal = reference(a, q, limit, offset)
          local got, gtotal = listed(a, { workflow = q.workflow, status = q.status, limit = tostring(limit),
                                          offset = tostring(offset) })
          local what = ("%s limit %d offset %d"):format(json.encode(q), limit, offset)
          assert.equal(wtotal, gtotal, what)
          assert.same(want, got, what)
        end
      end
      -- walking the pages meets every execution once, in order
      local all, seen = reference(a, {}, 1000, 0), {}
      for off = 0, total - 1, 9 do
        for _, id in ipairs((listed(a, { limit = "9", offset = tostring(off) }))) do seen[#seen + 1] = id end
      end
      assert.same(all, seen)
    end)

    it("shows a summary rewritten since the last page, and stays right past its index's bound", function()
      local a = setup(url)
      listed(a, {})
      local rows = assert(a.store:scan("executions", "exec-6a"))
      local d = json.decode(rows[1].value)
      d.status, d.created_at = "failed", 1890000000
      assert(a.store:put("executions", d.id, json.encode(d)))
      local ids, _, page = listed(a, { status = "failed", limit = "1" })
      assert.same({ d.id }, ids)
      assert.equal("failed", page.items[1].status)
      local saved = executions.MAX_INDEXED
      executions.MAX_INDEXED = 5
      local ok, err = pcall(function()
        for _, q in ipairs({ {}, { status = "idle" } }) do
          assert.same((reference(a, q, 50, 10)), (listed(a, { status = q.status, limit = "50", offset = "10" })))
        end
      end)
      executions.MAX_INDEXED = saved
      assert(ok, err)
    end)
  end)
end
