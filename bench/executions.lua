--- bench/executions.lua — cost of one page of `GET /api/v1/executions`
-- (docs/server.md) with many stored executions (issue 15: "paging that
-- stays fast with 10,000 executions").
--
-- Run: build/weft exec bench/executions.lua [--count N] [--runs N] [--store URL]
--   (defaults 10,000 executions, 30 requests per case, a SQLite file in /tmp)
--
-- The REST app runs in this process (weft.serve.app, no HTTP: the figure is
-- the handler's); N execution summaries (4 workflows, 5 statuses, outputs
-- of ~200 bytes, one in 50 with an open request) are written to the store
-- first. Per case, the median, min and max of `runs` requests after one
-- untimed request: the first page (limit 50), a page at offset 5,000, the
-- first page filtered by status, and by workflow and status. Timings are
-- printed, never asserted.
-- Uses weft, weft.store, weft.json, weft.serve.app, bench/bench_lib.lua.
local weft = require "weft"
package.path = (arg and arg[0] and arg[0]:match("^(.*/)") or "bench/") .. "?.lua;" .. package.path
local blib = require "bench_lib"
local json = weft.json

local fmt = string.format
local opts = { count = 10000, runs = 30 }
blib.parse_flags("bench/executions.lua", { ... }, opts,
  { ["--count"] = "count", ["--runs"] = "runs", ["--store"] = "store" })

-- a private directory for the SQLite file (weft warns about /tmp's mode)
local tmp = os.tmpname()
os.remove(tmp)
os.execute("mkdir -m 700 " .. tmp)
local url = opts.store or ("sqlite:" .. tmp .. "/weft.db")
local store = assert(weft.store.open(url))
local app = require("weft.serve.app").new{ store = store, durable = false }

local STATUS = { "completed", "completed", "failed", "idle", "cancelled" }
local t0 = 1790000000
local b = store:batch()
for i = 1, opts.count do
  local st = STATUS[i % #STATUS + 1]
  local d = { id = fmt("exec-%x-%08x-%d", t0 + i, i * 2654435761 % 4294967296, i), workflow = "wf" .. (i % 4),
              status = st, created_at = t0 + i + (i % 7) / 10, updated_at = t0 + i + 1, supersteps = 3,
              duration_ms = 12.5, async = true, durable = true,
              outputs = json.array({ string.rep("output text ", 16) }) }
  if st == "completed" then d.finished_at = d.updated_at end
  if st == "idle" then d.requests = json.array({ { request_id = "req-" .. i, data = { question = "ok?" } } }) end
  b:put("executions", d.id, json.encode(d))
  if i % 1000 == 0 then assert(b:commit()); b = store:batch() end
end
assert(b:commit())

-- A minimal response object: the status and the body's length.
local function res()
  local r = {}
  function r.status(_, c) r.code = c end
  function r.header() end
  function r.send(_, body) r.len = #body end
  function r.json(_, c, v) r.code, r.len = c, #json.encode(v) end
  return r
end

local function get(query)
  local rs = res()
  weft.go(function()
    app:handle({ method = "GET", path = "/api/v1/executions", raw_path = "/api/v1/executions",
                 query = query, raw_query = "", headers = {} }, rs)
  end):wait()
  assert(rs.code == 200, "GET /api/v1/executions: " .. tostring(rs.code))
  return rs
end

blib.header("GET /api/v1/executions: ms per page", fmt("%d executions on %s, %d requests per case",
  opts.count, url:match("^(%w+)"), opts.runs))
for _, case in ipairs({
  { "first page (limit 50)", {} },
  { "offset 5000", { offset = "5000" } },
  { "status=idle", { status = "idle" } },
  { "workflow=wf1&status=failed", { workflow = "wf1", status = "failed" } },
}) do
  get(case[2])
  local xs = {}
  for i = 1, opts.runs do
    local c0 = weft.clock()
    get(case[2])
    xs[i] = (weft.clock() - c0) * 1000
  end
  local s = blib.stats(xs)
  print(fmt("%-28s median %7.2f ms  (min %.2f, max %.2f)", case[1], s.median, s.min, s.max))
end
store:close()
for _, f in ipairs({ "weft.db", "weft.db-wal", "weft.db-shm" }) do os.remove(tmp .. "/" .. f) end
os.remove(tmp)
