-- spec/integration/nvim_spec.lua — weft inside a real Neovim
-- (`nvim --headless --clean`) with the plugin of examples/nvim: `:WeftRun`
-- runs a workflow whose executor waits on an HTTP call to the test server,
-- driven by Neovim's own loop (vim.loop poll handle on weft.fd(), timer from
-- weft.timeout()), while Neovim's timers tick and its RPC answers. #http
local weft = require "weft"
local hs = require "support.http_server"
local procs = require "support.procs"
local files = require "support.files"
local hosts = require "support.lua_hosts"

local src = os.getenv("WEFT_SOURCE_DIR") or "."
local build = os.getenv("WEFT_BUILD_DIR")

-- The driver nvim runs: the plugin's setup(), a timer counting ticks
-- (read over RPC), :WeftRun, and the run's buffer written to RESULT once
-- its status line appears, then :qa!.
local DRIVER = [[
require("weft_nvim").setup()
_G.weft_ticks = 0
local tick = vim.loop.new_timer()
tick:start(5, 5, function() _G.weft_ticks = _G.weft_ticks + 1 end)
vim.cmd("WeftRun " .. vim.fn.fnameescape(FLOW) .. " hello")
local buf = vim.api.nvim_get_current_buf()
vim.api.nvim_buf_attach(buf, false, { on_lines = function()
  vim.schedule(function()
    local lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
    for _, l in ipairs(lines) do
      if l:match("^status:") then
        lines[#lines + 1] = "buffer " .. vim.api.nvim_buf_get_name(buf)
        vim.fn.writefile(lines, RESULT)
        vim.cmd("qa!")
        return
      end
    end
  end)
end })
]]

describe("examples/nvim (weft_nvim) #http", function()
  it("runs a workflow with a slow HTTP call while Neovim's timers and RPC keep going", function()
    assert.is_string(build, "WEFT_BUILD_DIR")
    hosts.need("nvim", "neovim")
    local arrived, released = 0, false
    local gate = weft.cond()
    local srv = hs.start{ port = 0, handler = function(req, res)
      if req.path ~= "/slow" then return res:send(404, {}, "no") end
      arrived = arrived + 1
      while not released do gate:wait(1) end
      res:send(200, { ["Content-Type"] = "text/plain" }, "slow:" .. req.query)
    end }
    local dir = files.tempdir()
    local nv
    finally(function()
      if nv and not files.slurp(nv.rc) then procs.kill(nv) end
      released = true -- a pending /slow ends, so the server can stop
      gate:signal()
      srv:stop()
      files.remove(dir)
    end)
    files.write(dir .. "/flow.lua", ([[
local weft = require "weft"
local http = require "weft.http"
return weft.workflow("nvim_slow"):start(weft.executor("fetch", function(msg, ctx)
  local res = assert(http.request{ url = %q .. msg })
  ctx:yield_output(res.body)
end)):build()
]]):format(srv.url .. "/slow?"))
    files.write(dir .. "/driver.lua", ("local FLOW, RESULT = %q, %q\n"):format(
      dir .. "/flow.lua", dir .. "/result") .. DRIVER)
    local sock = dir .. "/nvim.sock"
    nv = procs.spawn({ "nvim", "--headless", "--clean", "--listen", sock,
                       "--cmd", "set rtp^=" .. src .. "/examples/nvim",
                       "-c", "luafile " .. dir .. "/driver.lua" }, hosts.env(build))

    -- Neovim's tick counter, asked over its RPC socket
    local function ticks()
      local _, out, err = procs.run({ "nvim", "--headless", "--server", sock,
                                      "--remote-expr", "luaeval('_G.weft_ticks')" }, nil, 10)
      return tonumber(((out or "") .. (err or "")):match("%d+"))
    end

    hosts.eventually("the workflow's HTTP call", function() return arrived == 1 end)
    -- the call is pending: the editor answers RPC and its timer ticks on
    local t1 = assert(ticks())
    hosts.eventually("Neovim's timer to tick during the call", function()
      local t = ticks()
      return t and t >= t1 + 3
    end)
    assert.are.equal(1, arrived)
    released = true
    gate:signal()

    local rc, _, err = procs.wait(nv, 60)
    assert.are.equal(0, rc, err)
    local result = assert(files.slurp(dir .. "/result"), "no result file; stderr: " .. err)
    assert.matches("workflow_started {\"workflow\":\"nvim_slow\"}", result, 1, true)
    assert.matches("output fetch slow:hello", result, 1, true)
    assert.matches("status: completed\noutput: slow:hello\n", result, 1, true)
    assert.matches("buffer weft://", result, 1, true)
  end)
end)
