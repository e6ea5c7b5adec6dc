--- weft_nvim — run weft workflows inside Neovim (0.7+, whose Lua is LuaJIT),
-- driven by Neovim's own event loop (docs/embedding.md, "Neovim").
--
-- `setup()` loads weft (LUA_PATH / LUA_CPATH must reach weft's Lua modules
-- and its core.so, or pass `opts.path` / `opts.cpath`), watches `weft.fd()`
-- with a `vim.loop` poll handle (readable -> `weft.poll()`) and re-arms a
-- `vim.loop` timer from `weft.timeout()` after each poll, so runs progress
-- while the editor keeps handling keys, timers and its own I/O. `:WeftRun
-- file.lua [input]` starts a run of the workflow script and shows its
-- events and outputs in a scratch buffer.
local vim = vim -- luacheck: ignore (Neovim's global)
local M = {}

local uv = vim.loop
local weft            -- require "weft", once setup() ran
local poller, timer   -- the vim.loop handles driving weft
local runs = {}       -- live runs: handle -> {buf = n, done = fn}

-- Append lines to buffer buf (from any context: buffers change only in
-- the main loop, never inside a vim.loop callback).
local function append(buf, lines)
  vim.schedule(function()
    if vim.api.nvim_buf_is_valid(buf) then
      vim.api.nvim_buf_set_lines(buf, -1, -1, false, lines)
    end
  end)
end

-- One line of text for a value (outputs and event data).
local function show(v)
  if type(v) == "string" then return (v:gsub("\n", "\\n")) end
  if v == nil then return "" end
  local ok, s = pcall(weft.json.encode, v)
  return ok and s or tostring(v)
end

-- Report the runs that ended and forget them.
local function settle()
  for h, r in pairs(runs) do
    local res = h:result()
    if res then
      runs[h] = nil
      local lines = { "status: " .. tostring(res.status) }
      if res.error then lines[#lines + 1] = "error: " .. show(res.error) end
      for _, out in ipairs(res.outputs or {}) do lines[#lines + 1] = "output: " .. show(out) end
      append(r.buf, lines)
      if r.done then vim.schedule(function() r.done(res) end) end
    end
  end
end

--- Run whatever weft has ready, then wait for its fd or for weft.timeout().
-- Called by the poll handle, the timer and run(); never blocks.
function M.pump()
  local busy = weft.poll()
  settle()
  if busy then
    timer:start(math.ceil(weft.timeout() * 1000), 0, M.pump)
  else
    timer:stop()
  end
end

--- Load weft and hook it into Neovim's loop; defines :WeftRun. opts:
-- `path` / `cpath` prepended to package.path / package.cpath. Idempotent.
function M.setup(opts)
  if weft then return M end
  opts = opts or {}
  if opts.path then package.path = opts.path .. ";" .. package.path end
  if opts.cpath then package.cpath = opts.cpath .. ";" .. package.cpath end
  weft = require "weft"
  local fd = assert(weft.fd())
  poller = uv.new_poll(fd)
  timer = uv.new_timer()
  poller:start("r", function(err)
    if err then error("weft_nvim: watching weft.fd(): " .. err) end
    M.pump()
  end)
  vim.api.nvim_create_user_command("WeftRun", function(a)
    local file, input = a.fargs[1], table.concat(a.fargs, " ", 2)
    local ok, err = M.run(file, input)
    if not ok then vim.notify(err, vim.log.levels.ERROR) end
  end, { nargs = "+", complete = "file", desc = "Run a weft workflow script with an input" })
  return M
end

--- Start a run of the workflow script at path with input (a string) and
-- show its events and outputs in a new scratch buffer. opts.on_done(result)
-- is called when it ends. Returns the run handle and the buffer number, or
-- nil, err when the script does not load.
function M.run(path, input, opts)
  if not weft then error("weft_nvim.run: call setup() first", 2) end
  local wf, err = weft.script.load(path)
  if not wf then return nil, err end
  local buf = vim.api.nvim_create_buf(true, true)
  vim.api.nvim_buf_set_name(buf, "weft://" .. path .. "#" .. buf)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, { "run " .. path .. " " .. show(input) })
  if not (opts and opts.silent) then vim.cmd("sbuffer " .. buf) end
  local h = wf:spawn(input, {
    on_event = function(ev)
      local who = ev.executor_id and (" " .. ev.executor_id) or ""
      append(buf, { ev.type .. who .. (ev.data ~= nil and (" " .. show(ev.data)) or "") })
    end,
  })
  runs[h] = { buf = buf, done = opts and opts.on_done }
  M.pump() -- start it now: its I/O reaches the kernel, the fd can wake us
  return h, buf
end

return M
