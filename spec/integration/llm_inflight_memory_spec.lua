-- The Lua heap a run holds while its executor waits on a model call
-- (issue 14: memory per run in flight). The call path (llm.chat ->
-- retries -> attempt -> weft.http) is kept shallow enough that the run's
-- coroutine stack stays in LuaJIT's 102-slot size class (0.8 KiB); one
-- frame too many on the way doubles it to 212 slots (+0.9 KiB a run, what
-- this spec catches). Memory, not time: the heap after a full collection,
-- 200 runs in flight against the provider test server (a separate
-- process, so that its own allocations do not count). #http
--
-- busted keeps ONE `finally` per test (a second call replaces the first):
-- the server is stopped and the pool size restored by a single one. With
-- two, the kill was dropped, the server outlived busted, and the shell
-- that waits for it kept ctest's output pipe open: ctest waited until its
-- timeout although busted had printed its results and exited.
local weft = require "weft"
local http = require "weft.http"
local llm = require "weft.llm"
local procs = require "support.procs"

local root = os.getenv("WEFT_SOURCE_DIR") or "."

describe("a run in flight on a model call", function()
  local server_pid
  it("holds at most 3.3 KiB of Lua heap (its coroutine stack in the 102-slot class)", function()
    local port = procs.free_port()
    local srv = procs.spawn({ procs.weft_bin(), "exec", root .. "/spec/support/provider_server.lua",
                              "--port", tostring(port) })
    server_pid = srv.pid
    require("weft.tcp").raise_nofile()
    http.configure{ max_per_host = 200 } -- every call in flight at once
    finally(function()
      http.configure{ max_per_host = 64 }
      procs.kill(srv); procs.wait(srv, 20)
    end)
    procs.wait_port(port)
    local base = ("http://127.0.0.1:%d/_f/latency=2000/v1"):format(port)
    local wf = weft.workflow("inflight"):start(weft.executor("ask", function(msg, ctx)
      local res, err = llm.chat{ model = "openai:m", base_url = base, api_key = "k",
                                 messages = { { role = "user", content = msg } }, retries = 0 }
      if not res then error(err, 0) end
      ctx:yield_output(res.text)
    end)):build()
    -- warm up: modules loaded, code compiled, a pool of tasks
    local warm = {}
    for i = 1, 50 do warm[i] = wf:spawn("w") end
    for i = 1, 50 do assert.equal("completed", warm[i]:wait().status) end
    local n = 200
    collectgarbage(); collectgarbage()
    local before = collectgarbage("count")
    local hs = {}
    for i = 1, n do hs[i] = wf:spawn("hi") end
    -- until every run waits on its call (running or queued in weft.http);
    -- a run that ended meanwhile (its call failed) is reported, not waited for
    local s = http.stats()
    for _ = 1, 3000 do
      if s.running + s.queued >= n then break end
      for i = 1, n do
        local st = hs[i]:status()
        assert(st == "running" or st == "pending", "a run ended before the measure: "
          .. tostring(st) .. " " .. tostring((hs[i]:result() or {}).error))
      end
      weft.sleep(0.01)
      s = http.stats()
    end
    assert.equal(n, s.running + s.queued)
    collectgarbage(); collectgarbage()
    local per_run = (collectgarbage("count") - before) / n
    for i = 1, n do assert.equal("completed", hs[i]:wait().status) end
    io.stderr:write(("llm_inflight_memory: %.2f KiB of Lua heap per run in flight\n"):format(per_run))
    assert.is_true(per_run <= 3.3, ("%.2f KiB of Lua heap per run in flight"):format(per_run))
  end)

  it("leaves no test server running once measured", function()
    assert.is_number(server_pid)
    assert.is_false(os.execute("kill -0 " .. server_pid .. " 2>/dev/null") == 0,
      "the provider server " .. server_pid .. " outlived its test")
  end)
end)
