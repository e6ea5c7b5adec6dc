--- weft.host: workflows loaded from script files, reloaded when the files
-- change. `weft.host{scripts = {name = path, ...} | {path, ...}, watch =
-- true, on_event = fn}`. A change loads a new definition version; new runs
-- use it; a run in flight switches at its next superstep barrier when the
-- new graph is compatible (same executor ids and edges), otherwise it
-- finishes on the version it started with. A script that fails to load or
-- validate never replaces a working one: the error (file:line) is logged
-- and published as a `reload_failed` host event; a successful reload
-- publishes `reloaded` with the old and new hash.
-- Uses weft, weft.durable (hash), weft.core.loop, weft.core.sched.
local _M = {}

local loop = require "weft.core.loop"
local sched = require "weft.core.sched"

local type, pairs, ipairs, error, tostring, pcall, setmetatable =
  type, pairs, ipairs, error, tostring, pcall, setmetatable
local fmt = string.format

local Host = {}
Host.__index = Host

-- The content of a file, or nil.
local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

-- Load a workflow script: the built workflow and its source, or nil and
-- the error (file:line when Lua gives one).
local function load_script(path)
  local src = slurp(path)
  if not src then return nil, path .. ": cannot read the file" end
  local chunk, err = loadstring(src, "@" .. path)
  if not chunk then return nil, err end
  local ok, v = pcall(chunk)
  if not ok then return nil, tostring(v) end
  local weft = require "weft"
  if weft.is_builder(v) then
    ok, v = pcall(v.build, v)
    if not ok then return nil, tostring(v) end
  end
  if not weft.is_workflow(v) then
    return nil, path .. ": the script did not return a workflow"
  end
  return v, src
end

-- The structure of a workflow that must not change for a run to switch.
local function shape(wf)
  local d = wf:describe()
  local out = {}
  for _, ex in ipairs(d.executors) do out[#out + 1] = ex.id end
  for _, e in ipairs(d.edges) do
    out[#out + 1] = e.kind .. ":" .. table.concat(e.from, ",") .. ">" .. table.concat(e.to, ",")
  end
  return table.concat(out, ";")
end

--- The paths of the files matching `-name pattern` under dir (sorted);
-- maxdepth 1 for the top level only, nil for every level.
function _M.find(dir, pattern, maxdepth)
  local q = "'" .. dir:gsub("'", "'\\''") .. "'"
  local p = io.popen(("find %s %s -type f -name '%s' 2>/dev/null | sort"):format(
    q, maxdepth and ("-maxdepth " .. maxdepth) or "", pattern))
  local out = {}
  if not p then return out end
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

-- Forget the Lua modules loaded from files under dir, so that the next
-- require loads them again.
local function forget_modules(dir)
  local prefix = dir:gsub("/$", "") .. "/"
  for name in pairs(package.loaded) do
    local file = package.searchpath and package.searchpath(name, package.path)
    if file and file:sub(1, #prefix) == prefix then package.loaded[name] = nil end
  end
end

--- Create a host over scripts (a table name -> path, or a list of paths
-- named by their file name without ".lua"), or over a directory: `dir =
-- path` takes its top-level *.lua files as the scripts and watches the Lua
-- modules in its subdirectories (required with dir on package.path): a
-- changed module reloads every script.
function _M.new(opts)
  if type(opts) == "table" and type(opts.dir) == "string" then
    local scripts = {}
    for _, f in ipairs(_M.find(opts.dir, "*.lua", 1)) do
      local name = f:match("([^/]+)%.lua$")
      if name and name:match("^[%w_.-]+$") then scripts[name] = f end
    end
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    o.scripts, o.dir = scripts, nil
    local entry = opts.dir:gsub("/$", "") .. "/?.lua;"
    if not package.path:find(entry, 1, true) then package.path = entry .. package.path end
    local ok, host = pcall(_M.new, o)
    if not ok then error(host, 2) end
    host.dir = opts.dir
    if opts.watch then
      for _, f in ipairs(_M.find(opts.dir, "*.lua")) do
        if not f:match("^" .. opts.dir:gsub("/$", ""):gsub("%p", "%%%0") .. "/[^/]+$") then
          host:watch_module(f)
        end
      end
    end
    return host
  end
  if type(opts) ~= "table" or type(opts.scripts) ~= "table" then
    error("weft.host: expects {scripts = {name = path, ...} or dir = path, watch = bool, on_event = fn}", 2)
  end
  local self = setmetatable({ versions = {}, runs = {}, watchers = {}, on_event = opts.on_event,
                              interval = opts.interval or 0.1, events = {} }, Host)
  for k, path in pairs(opts.scripts) do
    local name = type(k) == "string" and k or path:match("([^/]+)%.lua$") or path
    local wf, src = load_script(path)
    if not wf then error("weft.host: " .. src, 2) end
    self.versions[name] = { wf = wf, path = path, version = 1, hash = require("weft.durable").hash(wf),
                            shape = shape(wf), source = src }
  end
  if opts.watch then
    for name in pairs(self.versions) do self:watch(name) end
  end
  return self
end

-- Publish a host event {type, script, ...} to the subscriber and the list.
function Host:emit(ev)
  ev.ts = require("weft").now()
  self.events[#self.events + 1] = ev
  if self.on_event then
    local ok, err = pcall(self.on_event, ev)
    if not ok then io.stderr:write("weft.host: on_event failed: ", tostring(err), "\n") end
  end
end

--- Reload script name from its file now: true when a new version was
-- installed (handlers may change without the graph's hash changing), nil
-- and the error when it failed (the working version stays).
function Host:reload(name)
  local cur = self.versions[name]
  if not cur then error("host:reload: unknown script '" .. tostring(name) .. "'", 2) end
  if self.dir then forget_modules(self.dir) end
  local wf, src = load_script(cur.path)
  if not wf then
    local err = src
    cur.error = err
    io.stderr:write("weft.host: reload of ", name, " failed: ", err, "\n")
    cur.failed_source = slurp(cur.path)
    self:emit({ type = "reload_failed", script = name, path = cur.path, error = err })
    return nil, err
  end
  local hash = require("weft.durable").hash(wf)
  self.versions[name] = { wf = wf, path = cur.path, version = cur.version + 1, hash = hash,
                          shape = shape(wf), source = src, error = nil }
  self:emit({ type = "reloaded", script = name, path = cur.path, old_hash = cur.hash, new_hash = hash,
              version = cur.version + 1 })
  return true
end

--- Watch script name's file: every change reloads it (in a task).
function Host:watch(name)
  local cur = self.versions[name]
  if self.watchers[name] then return end
  local w = { stop = false }
  self.watchers[name] = w
  w.task = require("weft").go(function()
    while not w.stop do
      -- a change made before this watch started is seen by comparing the
      -- content with what was last loaded (or last failed)
      local v = self.versions[name]
      local now = slurp(v.path)
      if now ~= v.source and now ~= v.failed_source then
        self:reload(name)
      else
        -- wake up now and then to notice close()
        local changed = loop.watch_file(v.path, self.interval, 0.25)
        if w.stop then break end
        if not changed then goto continue end
        -- editors write in steps (truncate + write, or write + rename):
        -- let the file settle before reading it
        loop.sleep(0.02)
      end
      ::continue::
    end
  end)
end

--- Watch a Lua module file (under the host's dir): when it changes, the
-- modules loaded from the dir are forgotten and every script reloads.
function Host:watch_module(path)
  local w = { stop = false }
  self.watchers[path] = w
  require("weft").go(function()
    local last = slurp(path)
    while not w.stop do
      local changed = loop.watch_file(path, self.interval, 0.25)
      if w.stop then break end
      if changed then
        loop.sleep(0.02)
        local now = slurp(path)
        if now ~= last then
          last = now
          forget_modules(self.dir)
          self:emit({ type = "module_changed", path = path })
          for name in pairs(self.versions) do self:reload(name) end
        end
      end
    end
  end)
end

--- The current workflow of script name.
function Host:workflow(name)
  local cur = self.versions[name]
  if not cur then error("host:workflow: unknown script '" .. tostring(name) .. "'", 2) end
  return cur.wf
end

--- The current version number of script name.
function Host:version(name) return self.versions[name] and self.versions[name].version end

-- At each barrier of a host run: switch to the current version when it is
-- compatible, record which version runs the next superstep (also in the
-- durable run record), then write the checkpoint of a durable run or let
-- the run go on.
local function barrier(host, name, r, inner)
  local cur = host.versions[name]
  local ok, err = true, nil
  if r.host_version ~= cur.version then
    if cur.shape == r.host_shape then
      local sok, serr = sched.swap_graph(r.c, cur.wf._graph)
      if sok then
        r.wf, r.host_version = cur.wf, cur.version
      else
        err = serr
      end
    end
  end
  r.versions[#r.versions + 1] = r.host_version
  if err then io.stderr:write("weft.host: run ", r.id, " stays on its version: ", tostring(err), "\n") end
  if inner then
    local rec = r.durable and r.durable.record
    if rec then
      rec.versions = require("weft.json").array(r.versions)
      rec.script_hash = host.versions[name].hash
    end
    return inner(r)
  end
  sched.checkpoint_done(r.c, ok)
end

--- Start a run of script name's current version; returns its handle.
-- handle.versions[i] is the version chosen for superstep i - 1 (the last
-- entry may name a superstep that never ran: the run had ended).
function Host:spawn(name, input, opts)
  local cur = self.versions[name]
  if not cur then error("host:spawn: unknown script '" .. tostring(name) .. "'", 2) end
  local run = require "weft.run"
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  local h = run.start(cur.wf, input, o, 2, nil, nil, true)
  h.host_version, h.host_shape, h.versions = cur.version, cur.shape, { cur.version }
  local inner = h.durable and h.checkpoint -- a durable run's own checkpoint
  h.checkpoint = function(r) barrier(self, name, r, inner) end
  return h
end

--- Run script name to the end; returns the result.
function Host:run(name, input, opts)
  return self:spawn(name, input, opts):wait()
end

--- Stop watching the files (the watchers end within 0.25 s).
function Host:close()
  for _, w in pairs(self.watchers) do w.stop = true end
  self.watchers = {}
end

-- weft.host{...} is weft.host.new{...}
return setmetatable(_M, { __call = function(_, opts) return _M.new(opts) end })
