--- weft.host: workflows loaded from script files, reloaded when the files
-- change. `weft.host{scripts = {name = path, ...} | {path, ...} | dir =
-- path, watch = true, on_event = fn}`. A change loads a new definition
-- version; new runs use it; a run in flight switches at its next superstep
-- barrier when the new graph is compatible (same executor ids, edges and
-- state reducers), otherwise it finishes on the version it started with
-- and a `run_stays` host event says why, once per run and new version. A
-- script that fails to load or validate never replaces a working one: the
-- error (file:line) is logged and published as a `reload_failed` host
-- event; a successful reload publishes `reloaded` with the old and new
-- hash. Scripts load through weft.script in a module namespace of the
-- host (one per directory; see new). Uses weft, weft.script, weft.durable
-- (hash), weft.reduce, weft.core.loop, weft.core.sched.
local _M = {}

local loop = require "weft.core.loop"
local sched = require "weft.core.sched"
local script = require "weft.script"

local type, pairs, ipairs, error, tostring, pcall, setmetatable =
  type, pairs, ipairs, error, tostring, pcall, setmetatable
local max = math.max

-- Host events kept for host:recent_events() (the oldest are dropped beyond
-- this).
local MAX_EVENTS = 1000

local Host = {}
Host.__index = Host

-- The content of a file, or nil.
local function slurp(path) return (script.read(path)) end

--- The paths of the files matching `-name pattern` (a glob: `*`, `?`)
-- under dir (sorted, as `find DIR -type f -name PATTERN | sort`); maxdepth
-- 1 for the top level only, nil for every level. Reads the directories in
-- this process (no `find`, no fork: it runs on request paths).
function _M.find(dir, pattern, maxdepth)
  local listdir = require("weft.core.proc").listdir
  local lp = "^" .. pattern:gsub("[%^%$%(%)%%%.%[%]%+%-]", "%%%0"):gsub("%*", ".*"):gsub("%?", ".") .. "$"
  local out = {}
  local function walk(d, depth)
    local files, dirs = listdir(d)
    if not files then return end
    for _, f in ipairs(files) do
      if f:match(lp) then out[#out + 1] = d .. "/" .. f end
    end
    if not maxdepth or depth < maxdepth then
      for _, sub in ipairs(dirs) do walk(d .. "/" .. sub, depth + 1) end
    end
  end
  walk(dir, 1)
  table.sort(out)
  return out
end

-- The module namespace (weft.script.namespace) of host self for a script
-- at path: the host's dir in dir mode, else the script's directory; one
-- per directory and host. The modules it loads are remembered by content
-- and watched when the host watches.
local function namespace_of(self, path)
  local dir = self.dir or script.dir_of(path)
  local ns = self.namespaces[dir]
  if not ns then
    ns = script.namespace(dir, function(file, src)
      self.module_seen[file] = src
      if self.watching then self:watch_module(file) end
    end)
    self.namespaces[dir] = ns
  end
  return ns
end

-- Load script path in its namespace (fresh modules unless keep_modules):
-- the built workflow and its source, or nil and the error (file:line).
local function load_script(self, path, keep_modules)
  local ns = namespace_of(self, path)
  if not keep_modules then ns:fresh() end
  return script.load(path, { namespace = ns })
end

--- Create a host over scripts (a table name -> path, or a list of paths
-- named by their file name without ".lua"), or over a directory: `dir =
-- path` takes its top-level *.lua files as the scripts. A script's require
-- finds the Lua modules of its directory (the host's dir in dir mode)
-- first (DIR/?.lua, DIR/?/init.lua), loaded once per host and never into
-- the process's package.loaded, and falls back to the process's require.
-- With watch, every module file in the dir's subdirectories and every
-- module the scripts load is watched: a changed module reloads every
-- script with fresh modules.
function _M.new(opts)
  if type(opts) ~= "table" or (type(opts.scripts) ~= "table" and type(opts.dir) ~= "string") then
    error("weft.host: expects {scripts = {name = path, ...} or dir = path, watch = bool, on_event = fn}", 2)
  end
  local self = setmetatable({ _scripts = {}, runs = {}, watchers = {}, on_event = opts.on_event,
                              interval = opts.interval or 0.1, _events = {}, namespaces = {},
                              module_seen = {}, watching = opts.watch and true or false }, Host)
  local scripts = opts.scripts
  if type(opts.dir) == "string" then
    self.dir = opts.dir:gsub("(.)/$", "%1")
    scripts = {}
    for _, f in ipairs(_M.find(self.dir, "*.lua", 1)) do
      local name = f:match("([^/]+)%.lua$")
      if name and name:match("^[%w_.-]+$") then scripts[name] = f end
    end
  end
  for k, path in pairs(scripts) do
    local name = type(k) == "string" and k or path:match("([^/]+)%.lua$") or path
    local ok, err = self:add(name, path)
    if not ok then
      self:close()
      error("weft.host: " .. err, 2)
    end
  end
  if opts.watch then
    if self.dir then
      local top = "^" .. self.dir:gsub("%p", "%%%0") .. "/[^/]+$"
      for _, f in ipairs(_M.find(self.dir, "*.lua")) do
        if not f:match(top) then self:watch_module(f) end
      end
    end
  end
  return self
end

--- Add script name from path (in the host's module namespace of its
-- directory, watched when the host watches): true, or nil and the error
-- (file:line) when it does not load; raises when name is taken.
function Host:add(name, path)
  if type(name) ~= "string" or type(path) ~= "string" then
    error("host:add: expects a script name and a path", 2)
  end
  if self._scripts[name] then error("host:add: script '" .. name .. "' exists already", 2) end
  local wf, src = load_script(self, path, true)
  if not wf then return nil, src end
  self._scripts[name] = { wf = wf, path = path, version = 1, hash = require("weft.durable").hash(wf),
                          source = src }
  if self.watching then self:watch(name) end
  return true
end

-- Publish a host event {type, script, ...} to the subscriber and the list
-- (the last MAX_EVENTS are kept).
function Host:emit(ev)
  ev.ts = require("weft").now()
  local evs = self._events
  evs[#evs + 1] = ev
  if #evs >= 2 * MAX_EVENTS then
    local n = #evs
    for i = 1, MAX_EVENTS do evs[i] = evs[n - MAX_EVENTS + i] end
    for i = n, MAX_EVENTS + 1, -1 do evs[i] = nil end
  end
  if self.on_event then
    local ok, err = pcall(self.on_event, ev)
    if not ok then io.stderr:write("weft.host: on_event failed: ", tostring(err), "\n") end
  end
end

-- Reload script name; keep_modules: use the current module generation
-- (the caller just started a fresh one).
local function reload(self, name, keep_modules)
  local cur = self._scripts[name]
  local wf, src = load_script(self, cur.path, keep_modules)
  if not wf then
    local err = src
    cur.error = err
    io.stderr:write("weft.host: reload of ", name, " failed: ", err, "\n")
    cur.failed_source = slurp(cur.path)
    self:emit({ type = "reload_failed", script = name, path = cur.path, error = err })
    return nil, err
  end
  local hash = require("weft.durable").hash(wf)
  self._scripts[name] = { wf = wf, path = cur.path, version = cur.version + 1, hash = hash,
                          source = src, error = nil }
  self:emit({ type = "reloaded", script = name, path = cur.path, old_hash = cur.hash, new_hash = hash,
              version = cur.version + 1 })
  return true
end

--- Reload script name from its file now (with fresh modules in dir mode):
-- true when a new version was installed (handlers may change without the
-- graph's hash changing), nil and the error when it failed (the working
-- version stays).
function Host:reload(name)
  if not self._scripts[name] then error("host:reload: unknown script '" .. tostring(name) .. "'", 2) end
  return reload(self, name)
end

-- Watch path in a task (self.watchers[key]): whenever its content (false
-- when absent) is not seen(content), call change(content). The content is
-- compared on every ev_stat change and at least every 0.25 s, so an edit
-- ev_stat misses (same size within the same second) or one made before
-- the watch started is still noticed.
local function follow(self, key, path, seen, change)
  if self.watchers[key] then return end
  local w = { stop = false }
  self.watchers[key] = w
  w.task = require("weft.task").go_detached(function()
    while not w.stop do
      local now = slurp(path) or false
      if not seen(now) then
        change(now)
      else
        local changed = loop.watch_file(path, self.interval, 0.25)
        if w.stop then break end
        -- editors write in steps (truncate + write, or write + rename):
        -- let the file settle before reading it
        if changed then loop.sleep(0.02) end
      end
    end
  end)
end

--- Watch script name's file: every change reloads it (in a task).
function Host:watch(name)
  local path = self._scripts[name].path
  follow(self, name, path, function(now)
    local v = self._scripts[name]
    return now == (v.source or false) or now == (v.failed_source or false)
  end, function() reload(self, name) end)
end

--- Watch a Lua module file of the host's dir: when its content differs
-- from what the host last loaded (or saw) there, the host's modules are
-- forgotten and every script reloads with fresh ones.
function Host:watch_module(path)
  if self.module_seen[path] == nil then self.module_seen[path] = slurp(path) or false end
  follow(self, path, path, function(now) return now == self.module_seen[path] end, function(now)
    self.module_seen[path] = now
    for _, ns in pairs(self.namespaces) do ns:fresh() end
    self:emit({ type = "module_changed", path = path })
    for name in pairs(self._scripts) do reload(self, name, true) end
  end)
end

--- The current workflow of script name.
function Host:workflow(name)
  local cur = self._scripts[name]
  if not cur then error("host:workflow: unknown script '" .. tostring(name) .. "'", 2) end
  return cur.wf
end

--- The current version number of script name.
function Host:version(name) return self._scripts[name] and self._scripts[name].version end

--- True when the host has a script named name.
function Host:has(name) return self._scripts[name] ~= nil end

--- What the host knows of script name: {version, hash, path, error (of
-- the last failed reload, nil when the current version is the latest
-- file)}, a copy; nil for an unknown name.
function Host:info(name)
  local cur = self._scripts[name]
  if not cur then return nil end
  return { version = cur.version, hash = cur.hash, path = cur.path, error = cur.error }
end

--- The last host events (at most 1,000), oldest first: a new list.
function Host:recent_events()
  local evs, out, n = self._events, {}, #self._events
  for i = max(1, n - MAX_EVENTS + 1), n do out[#out + 1] = evs[i] end
  return out
end

-- At each barrier of a host run: switch to the current version when it is
-- compatible (else publish run_stays once per run and version), record
-- which version runs the next superstep (also in the durable run record),
-- then write the checkpoint of a durable run or let the run go on.
local function barrier(host, name, r, inner)
  local cur = host._scripts[name]
  if r.host_version ~= cur.version and r.host_kept ~= cur.version then
    local ok, why = sched.swap_graph(r.c, cur.wf._graph)
    if ok then
      r.wf, r.host_version = cur.wf, cur.version
    else
      r.host_kept = cur.version
      host:emit({ type = "run_stays", script = name, run_id = r.id, version = r.host_version,
                  latest = cur.version, reason = tostring(why) })
    end
  end
  r.versions[#r.versions + 1] = r.host_version
  if inner then
    local rec = r.durable and r.durable.record
    if rec then
      rec.versions = require("weft.json").array(r.versions)
      rec.script_hash = host._scripts[name].hash
    end
    return inner(r)
  end
  sched.checkpoint_done(r.c, true)
end

--- Start a run of script name's current version; returns its handle.
-- handle.versions[i] is the version chosen for superstep i - 1 (the last
-- entry may name a superstep that never ran: the run had ended).
function Host:spawn(name, input, opts)
  local cur = self._scripts[name]
  if not cur then error("host:spawn: unknown script '" .. tostring(name) .. "'", 2) end
  local run = require "weft.run"
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  local h = run.start(cur.wf, input, o, 2, nil, nil, true)
  h.host_version, h.versions = cur.version, { cur.version }
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
  self.watching = false
  for _, w in pairs(self.watchers) do w.stop = true end
  self.watchers = {}
end

-- weft.host{...} is weft.host.new{...}
return setmetatable(_M, { __call = function(_, opts) return _M.new(opts) end })
