-- Replay returns exactly what was recorded: durable runs in child `weft`
-- processes (run, then `runs respond` / `runs resume` in another process)
-- against the provider test server. The journal keys calls by their
-- position among the invocation's top-level calls and checks their kind
-- and request on replay (nested I/O does not shift the slots, a changed
-- request fails clearly); failed calls are not journaled, so a resumed
-- failed run asks again. #http
local weft = require "weft"
local json = weft.json
local durable = require "weft.durable"
local procs = require "support.procs"
local files = require "support.files"
local ps = require "support.provider_server"

local bin = procs.weft_bin()

-- Fresh private dirs of the test, removed after it; tmpdir("777") when
-- others (the sandbox's user) write there.
local scratch = files.scratch("w") -- short paths: the error checked below quotes one, cut at a limit
after_each(scratch.clean)
local tmpdir = scratch.dir

-- Write a workflow script into a fresh dir; returns its path and a store URL beside it.
local function script(src)
  local dir = tmpdir()
  return files.write(dir .. "/flow.lua", src), "sqlite:" .. dir .. "/weft.db"
end

-- The lines of a file (nil if absent).
local function lines_of(path)
  local s = procs.slurp(path)
  if not s then return {} end
  local out = {}
  for l in s:gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

local last_line = procs.last_line

-- One executor: an LLM call (an HTTP call inside), a sandbox run that
-- appends to a count file, then a request to a human; the output shows
-- what each returned. WEFT_TEST_SECOND=http makes the code before the
-- request call HTTP instead of the sandbox (not deterministic).
local NESTED = [[
local weft = require "weft"
local llm = require "weft.llm"
local sandbox = require "weft.sandbox"
local http = require "weft.http"
local base, count = os.getenv("WEFT_TEST_LLM_URL"), os.getenv("WEFT_TEST_COUNT")
local ex = weft.executor("agent", function(q, ctx)
  local res, err = llm.chat{ model = "openai:replay", base_url = base .. "/v1", api_key = "test-key",
                             messages = { { role = "user", content = q } }, retries = 0 }
  if not res then error(err, 0) end
  local out
  if os.getenv("WEFT_TEST_SECOND") == "http" then
    local r = assert(http.request{ url = base .. "/echo?step=2" })
    out = "http " .. r.status
  else
    local r = assert(sandbox.run{ argv = { "sh", "-c", "echo ran >> " .. count .. "; echo sandbox" },
                                  isolation = "none" })
    out = r.stdout
  end
  local answer = ctx:request_info({ question = "ok?" })
  ctx:yield_output({ text = res.text, out = out, answer = answer })
end)
return weft.workflow("nested"):start(ex):build()
]]

-- A sequential pattern of two agents; the second's provider URL is
-- WEFT_TEST_LAST_URL (one HTTP 500 there, no retries).
local SEQUENTIAL = [[
local weft = require "weft"
local patterns = require "weft.patterns"
local function agent(name, url)
  return weft.agent{ name = name, model = "openai:seq", instructions = "be " .. name,
                     llm = { base_url = url, api_key = "test-key", retries = 0 } }
end
return patterns.sequential{ agents = { agent("first", os.getenv("WEFT_TEST_LLM_URL") .. "/v1"),
                                       agent("last", os.getenv("WEFT_TEST_LAST_URL")) } }
]]

describe("durable replay", function()
  local srv
  setup(function() srv = ps.start{ port = 0 } end)
  teardown(function() srv:stop() end)
  before_each(function() srv:reset() end)

  -- Runs the NESTED script as run_id in a child `weft run` until it waits
  -- on its request; returns the store, the env of its processes, the file
  -- its executor counts runs in, and the child's stdout and stderr.
  local function nested_idle(run_id)
    local path, store = script(NESTED)
    local count = tmpdir("777") .. "/count"
    local env = { WEFT_TEST_LLM_URL = srv.url, WEFT_TEST_COUNT = count }
    local rc, out, err = procs.run({ bin, "run", path, "--store", store, "--run-id", run_id }, env)
    assert.equal(3, rc, err) -- idle: waits on the request
    return store, env, count, out, err
  end

  it("hands each call of a re-executed invocation its own recording when an LLM call makes HTTP calls inside",
    function()
      local store, env, count, out, err = nested_idle("n1")
      assert.truthy((out .. err):find("req-0-0-1-1", 1, true), out .. err)
      assert.same({ "ran" }, lines_of(count))
      local rc2, out2, err2 = procs.run({ bin, "runs", "respond", "n1", "req-0-0-1-1", '"yes"',
                                          "--store", store }, env)
      assert.equal(0, rc2, err2)
      local got = json.decode(last_line(out2))
      assert.equal("sandbox\n", got.out)
      assert.equal("yes", got.answer)
      assert.is_string(got.text)
      -- neither the model nor the sandbox was asked again
      assert.same({ "ran" }, lines_of(count))
      assert.equal(1, srv:stats().by_path["/v1/chat/completions"])
    end)

  it("fails the run naming the executor, the position and both requests when the code before a request changes",
    function()
      local store, env = nested_idle("m1")
      env.WEFT_TEST_SECOND = "http" -- the responding process takes another branch
      local rc2, out2, err2 = procs.run({ bin, "runs", "respond", "m1", "req-0-0-1-1", '"yes"',
                                          "--store", store }, env)
      assert.are_not.equal(0, rc2, out2)
      local st = assert(weft.store.open(store))
      local rec = assert(durable.record(st, "m1"))
      st:close()
      assert.equal("failed", rec.status)
      local msg = rec.error
      assert.truthy(msg:find("executor 'agent'", 1, true), msg)
      assert.truthy(msg:find("call 2", 1, true), msg)
      assert.truthy(msg:find("sandbox run 'sh -c echo ran", 1, true), msg)
      assert.truthy(msg:find("HTTP request 'GET " .. srv.url .. "/echo", 1, true), msg)
      assert.truthy(msg:find("deterministic", 1, true), msg)
      assert.truthy(err2:find("call 2", 1, true), err2)
      -- the recorded sandbox result was not handed to the HTTP call
      assert.falsy((out2 .. err2):find('"out"', 1, true))
    end)

  it("asks again on resume an agent whose call failed (HTTP 500), and completes the run", function()
    local path, store = script(SEQUENTIAL)
    local last = srv.url .. "/_f/status=500,times=1/v1"
    local env = { WEFT_TEST_LLM_URL = srv.url, WEFT_TEST_LAST_URL = last }
    local rc, out, err = procs.run({ bin, "run", path, "--store", store, "--run-id", "s1" }, env)
    assert.are_not.equal(0, rc, out)
    assert.truthy(err:find("500", 1, true), err)
    local st = assert(weft.store.open(store))
    assert.equal("failed", assert(durable.record(st, "s1")).status)
    st:close()
    for round = 1, 2 do -- the run stays resumable: no failure is replayed
      local rc2, out2, err2 = procs.run({ bin, "runs", "resume", "s1", "--store", store }, env)
      if round == 1 then
        assert.equal(0, rc2, err2)
        local got = json.decode(last_line(out2))
        assert.equal(3, #got.messages)
        assert.equal("last", got.messages[3].name)
        assert.is_string(got.text)
      else
        assert.equal(0, rc2, err2)
        assert.truthy(err2:find("already completed", 1, true), err2)
      end
    end
    -- the first agent was asked once, the last one twice (the 500, then again)
    local by = srv:stats().by_path
    assert.equal(1, by["/v1/chat/completions"])
    assert.equal(2, by["/_f/status=500,times=1/v1/chat/completions"])
    st = assert(weft.store.open(store))
    assert.equal("completed", assert(durable.record(st, "s1")).status)
    -- nothing of the failed call was journaled
    for _, row in ipairs(assert(st:scan("journal", "s1/"))) do
      assert.falsy(row.value:find("500", 1, true), row.value)
    end
    st:close()
  end)
end)
