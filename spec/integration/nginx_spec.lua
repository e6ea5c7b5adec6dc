-- spec/integration/nginx_spec.lua — weft inside a real nginx with its Lua
-- module (examples/nginx/nginx.conf, weft.hosts.nginx, weft.core.notify):
-- one worker runs several workflows at once, each waiting on an HTTP call
-- to the test server, while another location keeps answering. #http
local weft = require "weft"
local http = require "weft.http"
local hs = require "support.http_server"
local procs = require "support.procs"
local files = require "support.files"
local hosts = require "support.lua_hosts"

local src = os.getenv("WEFT_SOURCE_DIR") or "."
local build = os.getenv("WEFT_BUILD_DIR")

describe("examples/nginx/nginx.conf #http", function()
  local N = 4
  local srv, ng, prefix, port
  local arrived, released = 0, false
  local gate = weft.cond()

  setup(function()
    assert.is_string(build, "WEFT_BUILD_DIR")
    hosts.need("nginx", "nginx libnginx-mod-http-lua")
    -- /slow answers once released: the test releases it only after all N
    -- calls arrived, so the runs must be in flight together
    srv = hs.start{ port = 0, handler = function(req, res)
      if req.path == "/slow" then
        arrived = arrived + 1
        while not released do gate:wait(1) end
        res:send(200, { ["Content-Type"] = "text/plain" }, "slow:" .. req.query)
      else
        res:send(404, {}, "no")
      end
    end }
    prefix = files.tempdir(nil, { "logs" })
    port = procs.free_port()
    local conf = assert(files.slurp(src .. "/examples/nginx/nginx.conf"))
    conf = conf:gsub("127%.0%.0%.1:8080", "127.0.0.1:" .. port)
    local id = io.popen("id -u")
    if id:read("*l") == "0" then
      -- started by root, nginx's worker would run as nobody, who may not
      -- read the checkout (CI clones under /root)
      conf = "user root;\n" .. conf
    end
    id:close()
    files.write(prefix .. "/nginx.conf", conf)
    -- the flow: an HTTP call to /slow, then the example's agent
    files.write(prefix .. "/flow.lua", ([[
local weft = require "weft"
local http = require "weft.http"
local agent = weft.agent{ name = "answer", model = os.getenv("WEFT_MODEL") }
return weft.workflow("slow_answer"):start(weft.executor("a", function(msg, ctx)
  local res = assert(http.request{ url = %q .. msg })
  ctx:yield_output(assert(agent:run(res.body)).text)
end)):build()
]]):format(srv.url .. "/slow?"))
    ng = procs.spawn({ "nginx", "-p", prefix .. "/", "-c", "nginx.conf" },
                     hosts.env(build, { WEFT_MODEL = "mock:echo" }))
    if not procs.accepting(port) then
      error("nginx did not start: " .. (files.slurp(ng.err) or ""))
    end
  end)

  teardown(function()
    if ng then
      os.execute("kill -TERM " .. ng.pid)
      procs.wait(ng)
    end
    released = true -- a pending /slow ends, so the server can stop
    gate:signal()
    if srv then srv:stop() end
    if prefix then files.remove(prefix) end
  end)

  it("runs several slow workflows on one worker at once while /ping answers", function()
    local answers, order = {}, {}
    for i = 1, N do
      weft.go(function()
        local res, err = http.request{ method = "POST", url = "http://127.0.0.1:" .. port .. "/run",
                                       body = "r" .. i, timeout = 60 }
        answers[i] = res and (res.status .. " " .. res.body) or ("error " .. tostring(err))
        order[#order + 1] = "run"
      end)
    end
    -- all N workflows wait on /slow at the same time: one worker did not
    -- block on the first
    hosts.eventually("the test server to see " .. N .. " calls", function() return arrived == N end)
    -- another location answers while they wait
    local ping = assert(http.request{ url = "http://127.0.0.1:" .. port .. "/ping", timeout = 30 })
    order[#order + 1] = "ping"
    assert.are.equal(200, ping.status)
    assert.are.equal("pong\n", ping.body)
    released = true
    gate:signal()
    hosts.eventually("the answers", function() return #order == N + 1 end)
    assert.are.equal("ping", order[1])
    for i = 1, N do
      assert.are.equal("200 echo: slow:r" .. i .. "\n", answers[i])
    end
    -- one worker, and it never crashed
    local log = files.slurp(ng.err) or ""
    assert.is_nil(log:match("exited on signal"), log)
    assert.is_nil(log:match("%[error%]"), log)
    assert.is_nil(log:match("%[alert%]"), log)
    local _, workers = log:gsub("start worker process %d", "")
    assert.are.equal(1, workers, log)
  end)

  it("keeps the worker's signals off weft's waiter thread", function()
    local workers = procs.children(ng.pid)
    assert.are.equal(1, #workers)
    local w = workers[1]
    -- the waiter thread is named weft-notify
    local ls = assert(io.popen("ls /proc/" .. w .. "/task"))
    local others = {}
    for tid in ls:lines() do
      local comm = files.slurp(("/proc/%d/task/%s/comm"):format(w, tid)) or ""
      if comm:match("^weft%-notify") then others[#others + 1] = tid end
    end
    ls:close()
    assert.are.equal(1, #others, "no weft-notify thread in worker " .. w)
    for _, tid in ipairs(others) do
      local st = assert(files.slurp(("/proc/%d/task/%s/status"):format(w, tid)))
      -- the low 32 signals of the blocked mask (a hex string)
      local blk = tonumber(assert(st:match("SigBlk:%s*(%x+)")):sub(-8), 16)
      for _, sig in ipairs({ 1, 3, 15, 17 }) do -- SIGHUP, SIGQUIT, SIGTERM, SIGCHLD
        assert.are_not.equal(0, bit.band(blk, bit.lshift(1, sig - 1)),
                             "signal " .. sig .. " reaches thread " .. tid)
      end
    end
  end)

  it("starts a run again once the worker's driver went idle", function()
    -- the runs above ended: the driver sleeps until run() wakes it
    local res = assert(http.request{ method = "POST", url = "http://127.0.0.1:" .. port .. "/run",
                                     body = "later", timeout = 30 })
    assert.are.equal(200, res.status)
    assert.are.equal("echo: slow:later\n", res.body)
  end)
end)
