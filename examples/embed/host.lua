--- examples/embed/host.lua — weft driven by a host loop that is not weft's.
--
--   LUA_PATH="lua/?.lua;lua/?/init.lua;stdlib/?.lua;;" \
--   LUA_CPATH="build/lib/?.so;;" luajit examples/embed/host.lua [runs]
--
-- The host owns the loop: each tick it does its own work, then waits with
-- poll(2) (LuaJIT FFI) on weft.fd() for at most weft.timeout() seconds and
-- calls weft.poll(), which runs whatever weft has ready and never blocks.
-- The workflow's executors sleep (weft.sleep yields the executor on a libev
-- timer), so the host keeps ticking while the runs make progress.
-- Prints one summary line: `host: runs=N completed=N ticks=N outputs=...`.
local ffi = require "ffi"
local weft = require "weft"

ffi.cdef [[
struct pollfd { int fd; short events; short revents; };
int poll(struct pollfd *fds, unsigned long nfds, int timeout);
]]
local POLLIN = 1

-- The workflow: "wait" sleeps then forwards; "done" sleeps and outputs.
local wait = weft.executor("wait", function(msg, ctx)
  weft.sleep(0.02)
  ctx:send(msg)
end)
local done = weft.executor("done", function(msg, ctx)
  weft.sleep(0.01)
  ctx:yield_output("done:" .. tostring(msg))
end)
local wf = weft.workflow("embed_host"):start(wait):edge(wait, done):build()

local nruns = tonumber(arg and arg[1]) or 3
local handles = {}
for i = 1, nruns do handles[i] = wf:spawn("job" .. i) end

local fd = assert(weft.fd())
local pfd = ffi.new("struct pollfd[1]")
pfd[0].fd = fd
pfd[0].events = POLLIN

--- True once every run has a result.
local function all_done()
  for _, h in ipairs(handles) do
    if not h:result() then return false end
  end
  return true
end

local ticks = 0
while not all_done() do
  ticks = ticks + 1 -- the host's own work for this tick goes here
  local ms = math.ceil(weft.timeout() * 1000)
  if ffi.C.poll(pfd, 1, ms) < 0 and ffi.errno() ~= 4 then -- 4: EINTR
    error("poll failed: errno " .. ffi.errno())
  end
  weft.poll()
end

local completed, outputs = 0, {}
for i, h in ipairs(handles) do
  local res = h:result()
  if res.status == "completed" then completed = completed + 1 end
  outputs[i] = table.concat(res.outputs, ",")
end
print(string.format("host: runs=%d completed=%d ticks=%d outputs=%s",
  nruns, completed, ticks, table.concat(outputs, ";")))
