--- spec/support/pool_fixture.lua — what the worker pool specs share
-- (pool_spec.lua, pool_windows_spec.lua): the ECHO and ASK workflows,
-- a scripts dir with them, a worker running in this process, polling an
-- execution's summary, and a fresh store per test on SQLite and Redis.
--
--     local fx = require("support.pool_fixture")(scope, { it = it, pending = pending })
--     fx.each_store(function(st) ... end)
-- scope: support/scope.lua's (the fixture undoes what it starts through it).
local weft = require "weft"
local pool = require "weft.pool"
local procs = require "support.procs"
local files = require "support.files"

local pairs, ipairs, assert, tostring = pairs, ipairs, assert, tostring

--- "up" upper-cases its message and sends it to "bang", which outputs it
-- with a "!".
local ECHO = [[
local weft = require "weft"
local up = weft.executor("up", function(m, ctx) ctx:send(m:upper()) end)
local bang = weft.executor("bang", function(m, ctx) ctx:yield_output(m .. "!") end)
return weft.workflow("echo"):start(up):edge(up, bang):build()
]]

--- "ask" asks `m?` and outputs `m: answer`.
local ASK = [[
local weft = require "weft"
local ask = weft.executor("ask", function(m, ctx)
  local a = ctx:request_info({ question = m .. "?" })
  ctx:yield_output(m .. ": " .. tostring(a))
end)
return weft.workflow("ask"):start(ask):build()
]]

return function(scope, b)
  local fx = { ECHO = ECHO, ASK = ASK, ENDED = { completed = true, failed = true, cancelled = true } }

  --- A scripts dir with ECHO and ASK; returns it and their hashes by id.
  function fx.scripts()
    local dir = scope.tmpdir()
    files.write(dir .. "/echo.lua", ECHO)
    files.write(dir .. "/ask.lua", ASK)
    local hashes = {}
    for _, id in ipairs({ "echo", "ask" }) do
      hashes[id] = weft.durable.hash(assert(weft.script.load(dir .. "/" .. id .. ".lua")))
    end
    return dir, hashes
  end

  --- A worker (name w1, lease 0.3 s, silent; opts override) on store st
  -- over dir, running in a task until the test ends.
  function fx.start_worker(st, dir, opts)
    local o = { store = st, scripts_dir = dir, name = "w1", lease_ttl = 0.3, log = function() end }
    for k, v in pairs(opts or {}) do o[k] = v end
    local w = require("weft.worker").new(o)
    local t = weft.go(function() w:run() end)
    scope.later(function() w:stop(); t:wait() end)
    return w
  end

  --- Poll the summary of id until its status is one of `want` (a set;
  -- default: ended); raises after 30 s.
  function fx.until_status(st, id, want)
    want = want or fx.ENDED
    local deadline = weft.clock() + 30
    while true do
      local d = assert(pool.get(st, id))
      if want[d.status] then return d end
      assert(weft.clock() < deadline, "execution " .. id .. " stayed " .. tostring(d.status))
      weft.sleep(0.01)
    end
  end

  --- Declare "on sqlite" and "on redis #redis" tests calling fn(store).
  function fx.each_store(fn)
    procs.each_store({ it = b.it, pending = b.pending, defer = scope.later }, scope.tmpdir, function(url)
      local st = assert(weft.store.open(url))
      scope.later(function() st:close() end)
      fn(st)
    end)
  end

  --- each_store with a scripts dir and a worker started on it (opts: the
  -- worker's): fn(store, dir, hashes, worker).
  function fx.with_worker(fn, opts)
    fx.each_store(function(st)
      local dir, hashes = fx.scripts()
      fn(st, dir, hashes, fx.start_worker(st, dir, opts))
    end)
  end

  --- each_store with a scripts dir and an execution of ECHO submitted
  -- with input (no worker yet): fn(store, dir, summary, hashes).
  function fx.with_echo(input, fn)
    fx.each_store(function(st)
      local dir, hashes = fx.scripts()
      fn(st, dir, pool.submit(st, { workflow = "echo", hash = hashes.echo, input = input }), hashes)
    end)
  end

  return fx
end
