--- weft.hosts.nginx — weft inside nginx's Lua module (lua-nginx-module),
-- driven by nginx's own event loop (docs/embedding.md, "nginx").
--
-- nginx runs every handler and timer in a coroutine of its own and can
-- only wait on sockets it connects to, so weft's loop cannot be driven the
-- usual way (a watcher on weft.fd()). Instead one driver per worker (a
-- light thread started from init_worker_by_lua by `start()`) loops:
-- run what is ready (weft.core.notify.poll), then wait for weft's I/O on a
-- cosocket connected to a weft.core.notify waiter (a thread that polls
-- weft.fd() for at most weft.timeout() and writes one line back), so the
-- worker keeps serving other requests meanwhile. When no run is in flight
-- the driver sleeps on a semaphore that `run()` posts. A handler calls
-- `run(wf, input)`: it starts the run and waits on a semaphore of its own,
-- posted by the driver when the run ends.
--
--     init_worker_by_lua_block { require("weft.hosts.nginx").start() }
--     content_by_lua_block {
--       local res = require("weft.hosts.nginx").run(wf, ngx.req.get_body_data())
--     }
local weft = require "weft"
local notify = require "weft.core.notify"

local ngx = ngx -- luacheck: ignore (nginx's global)
local pairs, error, tostring, ceil, type = pairs, error, tostring, math.ceil, type

local _M = {}

local state = {
  started = false,
  waiting = {},   -- run handle -> semaphore of the handler waiting on it
  idle = nil,     -- semaphore the idle driver waits on
  sleeping = false,
  err = nil,      -- why the driver stopped, if it did
}

-- Post the semaphore of every finished run.
local function settle()
  for h, sema in pairs(state.waiting) do
    if h:result() then
      state.waiting[h] = nil
      sema:post(1)
    end
  end
end

-- Wake every waiting handler (the driver stopped: their runs cannot end).
local function fail_all(err)
  state.err = err
  for h, sema in pairs(state.waiting) do
    state.waiting[h] = nil
    sema:post(1)
  end
end

-- The driver: poll weft, then wait on the notifier (runs in flight) or on
-- the idle semaphore (none), until the worker exits.
local function drive(premature)
  if premature then return end
  local n, err = notify.open()
  if not n then return fail_all("weft.hosts.nginx: " .. tostring(err)) end
  local sock = ngx.socket.tcp()
  local ok, cerr = sock:connect("unix:" .. n:path())
  n:unlink()
  if not ok then
    n:close()
    return fail_all("weft.hosts.nginx: connect to the notifier: " .. tostring(cerr))
  end
  while not ngx.worker.exiting() do
    local busy = notify.poll()
    settle()
    if busy or next(state.waiting) ~= nil then
      local ms = ceil(weft.timeout() * 1000)
      sock:settimeout(ms + 5000)
      local _, serr = sock:send(ms .. "\n")
      local line
      if not serr then line, serr = sock:receive("*l") end
      if not line then
        n:close()
        return fail_all("weft.hosts.nginx: the notifier failed: " .. tostring(serr))
      end
    else
      -- nothing in flight: sleep until run() starts one (the 1 s limit
      -- only lets a shutting-down worker notice ngx.worker.exiting())
      state.sleeping = true
      state.idle:wait(1)
      state.sleeping = false
    end
  end
  sock:close()
  n:close()
end

--- Start the worker's driver (call once per worker, from
-- init_worker_by_lua*). true, or nil, err.
function _M.start()
  if state.started then return true end
  -- weft's tasks must be plain coroutines, not look like nginx's (see
  -- weft.core.notify.detach)
  notify.detach()
  state.idle = require("ngx.semaphore").new()
  local ok, err = ngx.timer.at(0, drive)
  if not ok then return nil, "weft.hosts.nginx: cannot start the driver: " .. tostring(err) end
  state.started = true
  return true
end

--- Run workflow wf with input from a request handler without blocking the
-- worker: the handler's coroutine waits (other requests proceed) until the
-- run ends. Returns the run's result table ({status, outputs, error, ...}),
-- or nil, err when the run could not finish (timeout: seconds, default 300).
function _M.run(wf, input, opts, timeout)
  if not state.started then
    error("weft.hosts.nginx.run: call start() from init_worker_by_lua first", 2)
  end
  if type(wf) ~= "table" or type(wf.spawn) ~= "function" then
    error("weft.hosts.nginx.run: expected a workflow, got " .. type(wf), 2)
  end
  if state.err then return nil, state.err end
  local sema = require("ngx.semaphore").new()
  local h = wf:spawn(input, opts)
  state.waiting[h] = sema
  -- start the run now (its I/O then reaches the kernel) rather than at the
  -- driver's next turn
  notify.poll()
  settle()
  if state.sleeping then state.idle:post(1) end
  local ok, err = sema:wait(timeout or 300)
  if not ok then
    state.waiting[h] = nil
    h:cancel()
    return nil, "weft.hosts.nginx.run: " .. tostring(err)
  end
  return h:result() or nil, state.err
end

return _M
