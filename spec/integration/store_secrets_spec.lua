-- Secrets never reach a store: weft.secrets (the registry and its
-- redaction), the store hook every write goes through (memory:, sqlite:, a
-- real redis-server started here), and durable runs in a child `weft run`
-- whose provider key (a recognisable fake, set in the child's environment
-- only) is echoed back by the project's provider test server, both in an
-- HTTP response (/echo returns the Authorization header) and in the LLM's
-- reply; then the raw SQLite files and the Redis append-only files are
-- searched for the key. #redis #http
local weft = require "weft"
local json = weft.json
local store = require "weft.store"
local secrets = require "weft.secrets"
local procs = require "support.procs"
local ps = require "support.provider_server"

local bin = procs.weft_bin()
local q = procs.quote

-- A fresh temp dir, removed after the test.
local function tmpdir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. q(dir)) == 0)
  finally(function() os.execute("rm -rf " .. q(dir)) end)
  return dir
end

-- Every file under dir, concatenated (raw bytes).
local function raw_files(dir)
  local p = io.popen("find " .. q(dir) .. " -type f")
  local parts = {}
  for path in p:lines() do parts[#parts + 1] = procs.slurp(path) or "" end
  p:close()
  return table.concat(parts)
end

-- A key that nothing but this spec produces.
local function fake_key(tag)
  math.randomseed(os.time() + #tag)
  return ("sk-weftfake-%s-%08x%08x"):format(tag, math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
end

describe("weft.secrets", function()
  it("ignores nil, non-strings and values shorter than 8 bytes", function()
    local n = secrets.count()
    assert.is_false(secrets.add(nil))
    assert.is_false(secrets.add(12345678))
    assert.is_false(secrets.add("short12"))
    assert.equal(n, secrets.count())
    assert.equal("short12 stays", secrets.redact("short12 stays"))
  end)

  it("replaces every occurrence, plainly, longest first", function()
    local k = fake_key("redact") .. "%.+"
    assert.is_true(secrets.add(k))
    assert.is_false(secrets.add(k)) -- once
    assert.is_true(secrets.known(k))
    assert.equal("a [redacted] b [redacted]", secrets.redact("a " .. k .. " b " .. k))
    assert.equal("no secret here", secrets.redact("no secret here"))
    local longer = k .. "-and-more"
    secrets.add(longer)
    assert.equal("<[redacted]>", secrets.redact("<" .. longer .. ">"))
    assert.is_true(secrets.contains("x" .. k))
    assert.equal(42, secrets.redact(42))
  end)

  it("registers the provider key variables of the environment at load", function()
    local key = fake_key("env")
    local script = tmpdir() .. "/env.lua"
    local f = assert(io.open(script, "wb"))
    f:write("local s = require 'weft.secrets'; print(s.redact('k=' .. os.getenv('ANTHROPIC_API_KEY')))")
    f:close()
    local rc, out, err = procs.run({ bin, "exec", script }, { ANTHROPIC_API_KEY = key })
    assert.equal(0, rc, err)
    assert.equal("k=[redacted]\n", out)
  end)
end)

-- ---- the store hook ---------------------------------------------------------

-- Write key k through every kind of write of s (values and keys).
local function write_all(s, k)
  assert(s:put("threads", "t1", json.encode({ messages = { { role = "assistant", content = "key " .. k } } })))
  assert(s:append("journal", "r1", "Authorization: Bearer " .. k))
  assert(s:batch():put("runs", "r1", '{"input":"' .. k .. '"}'):append("audit", "day", k .. k):commit())
  assert(s:put("defs", "name-" .. k, "value"))
end

-- What was written, as read back.
local function read_all(s, k)
  return {
    thread = s:get("threads", "t1"),
    journal = s:range("journal", "r1")[1].value,
    run = s:get("runs", "r1"),
    audit = s:range("audit", "day")[1].value,
    keys = s:scan("defs")[1].key,
    by_secret_key = s:get("defs", "name-" .. k),
  }
end

-- The checks common to every backend.
local function check_redacted(s, k)
  write_all(s, k)
  local got = read_all(s, k)
  assert.equal(json.encode({ messages = { { role = "assistant", content = "key [redacted]" } } }), got.thread)
  assert.equal("Authorization: Bearer [redacted]", got.journal)
  assert.equal('{"input":"[redacted]"}', got.run)
  assert.equal("[redacted][redacted]", got.audit)
  assert.equal("name-[redacted]", got.keys)
  assert.equal("value", got.by_secret_key) -- a key read is rewritten the same way
  assert(s:put("plain", "k", "nothing secret")) -- others are untouched
  assert.equal("nothing secret", s:get("plain", "k"))
end

describe("store writes", function()
  it("redact a secret registered before the store was opened (memory:)", function()
    local k = fake_key("mem")
    secrets.add(k)
    local s = assert(store.open("memory:"))
    check_redacted(s, k)
    s:close()
  end)

  it("redact a secret registered while the store is open (sqlite:), down to the raw files", function()
    local dir = tmpdir()
    local s = assert(store.open("sqlite:" .. dir .. "/w.db"))
    local k = fake_key("sqlite")
    secrets.add(k)
    check_redacted(s, k)
    -- the WAL holds the writes while the store is open
    local raw = raw_files(dir)
    assert.is_nil(raw:find(k, 1, true))
    assert.truthy(raw:find("[redacted]", 1, true))
    s:close()
    raw = raw_files(dir)
    assert.is_nil(raw:find(k, 1, true))
    assert.truthy(raw:find("[redacted]", 1, true))
  end)

  it("redact on redis, down to the append-only file #redis", function()
    local dir = tmpdir()
    local redis = procs.redis({ dir = dir, persist = true })
    if not redis then return pending("redis-server is not installed") end
    finally(function() redis.stop() end)
    local k = fake_key("redis")
    secrets.add(k)
    local s = assert(store.open(redis.url))
    check_redacted(s, k)
    s:close()
    local raw = raw_files(dir)
    assert.truthy(raw:find("[redacted]", 1, true), "the AOF holds the writes")
    assert.is_nil(raw:find(k, 1, true))
  end)
end)

-- ---- durable runs -------------------------------------------------------------

-- The workflow of the child: an HTTP call whose response echoes the
-- Authorization header (like a proxy's error body), an LLM call whose reply
-- repeats the key; both journaled, both in the state and the output.
local SCRIPT = [[
local weft = require "weft"
local http = require "weft.http"
local llm = require "weft.llm"
local key = os.getenv("OPENAI_API_KEY")
local ask = weft.executor("ask", function(input, ctx)
  local res = assert(http.request{ url = os.getenv("WEFT_TEST_URL") .. "/echo",
                                   headers = { Authorization = "Bearer " .. key } })
  ctx:set_state("proxy", res.body)
  local r, err = llm.chat{ model = "openai:echo", base_url = os.getenv("WEFT_TEST_URL") .. "/v1",
                           messages = { { role = "user", content = "repeat " .. key } } }
  if not r then error(err, 0) end
  ctx:set_state("reply", r.text)
  ctx:send(r.text)
end)
local done = weft.executor("done", function(text, ctx) ctx:yield_output(text) end)
return weft.workflow("secrets"):start(ask):edge(ask, done):build()
]]

describe("a durable run whose provider echoes the key", function()
  local srv
  setup(function() srv = ps.start{ port = 0 } end)
  teardown(function() srv:stop() end)

  -- Run SCRIPT durably on url with the key in the child's environment
  -- only; returns the key.
  local function durable_run(dir, url, tag)
    local script = dir .. "/secrets_wf.lua"
    local f = assert(io.open(script, "wb"))
    f:write(SCRIPT)
    f:close()
    local key = fake_key(tag)
    local rc, out, err = procs.run({ bin, "run", script, "--store", url, "--run-id", "s1",
                                     "--input", "please use " .. key },
      { OPENAI_API_KEY = key, WEFT_TEST_URL = srv.url }, 60)
    assert.equal(0, rc, err)
    assert.truthy(out:find("echo: repeat", 1, true), out)
    -- the server really saw (and echoed) the key
    assert.equal("Bearer " .. key, srv:last_request("/v1/chat/completions").headers["authorization"])
    os.remove(script)
    return key
  end

  -- The store holds the run (journal, checkpoints, run record), redacted.
  local function check_store(url, key)
    local s = assert(store.open(url))
    local rec = json.decode(assert(s:get("runs", "s1")))
    assert.equal("completed", rec.status)
    assert.equal("please use [redacted]", rec.input)
    local journal = assert(s:scan("journal", "s1/"))
    assert.is_true(#journal >= 2)
    local all = {}
    for _, row in ipairs(journal) do all[#all + 1] = row.value end
    for _, row in ipairs(assert(s:range("ckpt", "s1"))) do all[#all + 1] = row.value end
    all = table.concat(all, "\n")
    -- the echoed header: "Bearer [redacted]", or "[redacted]" when the
    -- whole header value is registered too
    assert.truthy(all:find('authorization\\":\\"[^"]-%[redacted%]'), "the echoed header is journaled, redacted")
    assert.truthy(all:find("echo: repeat [redacted]", 1, true), "the reply is journaled, redacted")
    assert.is_nil(all:find(key, 1, true))
    s:close()
  end

  it("leaves no key in the raw SQLite files (db, -wal)", function()
    local dir = tmpdir()
    local key = durable_run(dir, "sqlite:" .. dir .. "/weft.db", "durable-sqlite")
    local raw = raw_files(dir)
    assert.is_nil(raw:find(key, 1, true), "the key is in the store files")
    assert.truthy(raw:find("[redacted]", 1, true))
    check_store("sqlite:" .. dir .. "/weft.db", key)
  end)

  it("leaves no key in the raw Redis values #redis", function()
    local dir = tmpdir()
    local redis = procs.redis({ dir = dir, persist = true })
    if not redis then return pending("redis-server is not installed") end
    finally(function() redis.stop() end)
    local key = durable_run(dir, redis.url, "durable-redis")
    local raw = raw_files(dir)
    assert.is_nil(raw:find(key, 1, true), "the key is in Redis")
    assert.truthy(raw:find("[redacted]", 1, true))
    check_store(redis.url, key)
  end)
end)
