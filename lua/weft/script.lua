--- weft.script: the one loader of workflow scripts — `weft run/check/graph`
-- and `weft runs`, weft.host, the server and the C embedding API
-- (weft_load) all load through script.load — and the module namespaces
-- the scripts require from. A script runs in the namespace of its
-- directory, so `require "helper"` finds helper.lua beside the script
-- whatever the current directory, without touching package.path or
-- package.loaded (other scripts never see it). Errors name the file
-- (file:line when Lua knows the line). Uses weft (is_builder,
-- is_workflow), weft.json (error objects).
local _M = {}

local type, pairs, tostring, error, pcall, xpcall, setfenv, setmetatable, getmetatable, unpack =
  type, pairs, tostring, error, pcall, xpcall, setfenv, setmetatable, getmetatable, unpack
local fmt = string.format

--- The content of the file at path, or nil and why ("cannot open PATH
-- (reason)" / "cannot read PATH (reason)").
function _M.read(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, fmt("cannot open %s (%s)", path, (tostring(err):gsub("^.-: ", ""))) end
  local s, rerr = f:read("*a")
  f:close()
  if not s then return nil, fmt("cannot read %s (%s)", path, tostring(rerr)) end
  return s
end

--- The directory of path ("." for a bare file name).
function _M.dir_of(path)
  local d = path:match("^(.*)/[^/]*$")
  if d == nil then return "." end
  return d == "" and "/" or d
end

-- The process's require; an error without a position (require is a C
-- function) is raised at the line of the script that called ns_require.
local function process_require(name)
  local ok, m = pcall(require, name)
  if ok then return m end
  if type(m) == "string" and not m:match("^[^\n:]+:%d+: ") then error(m, 3) end
  error(m, 0)
end

--- A module namespace over dir: ns.env is the environment of the scripts
-- and modules loaded in it (the process's globals, copied so reads stay
-- direct, later ones through __index; globals they set stay in it) whose
-- require finds a name in dir first (DIR/?.lua, DIR/?/init.lua), loads it
-- once per generation into ns.modules — never into package.loaded — and
-- falls back to the process's require (always for weft's own modules, so
-- a directory cannot shadow them). on_module(file, source), when given,
-- is called for each module file loaded from dir; ns:fresh() starts a new
-- generation (the next require loads the files again).
function _M.namespace(dir, on_module)
  if type(dir) ~= "string" then error("weft.script.namespace: dir must be a string", 2) end
  dir = dir:gsub("(.)/$", "%1")
  local base = dir == "/" and "" or dir
  local ns = { dir = dir, modules = {}, path = base .. "/?.lua;" .. base .. "/?/init.lua",
               fresh = function(self) self.modules = {} end }
  local gen_loading = {}
  local function ns_require(name)
    if type(name) ~= "string" then error("require: module name must be a string", 2) end
    local mods = ns.modules
    local v = mods[name]
    if v ~= nil then return v end
    local file = not name:match("^weft$") and not name:match("^weft%.") and package.searchpath(name, ns.path)
    if not file then
      local m = process_require(name) -- not a tail call: the level counts it
      return m
    end
    if gen_loading[name] == mods then
      error(fmt("require: module '%s' requires itself (%s)", name, file), 2)
    end
    local src, rerr = _M.read(file)
    if not src then error(fmt("require: module '%s': %s", name, rerr), 2) end
    if on_module then on_module(file, src) end
    local chunk, err = loadstring(src, "@" .. file)
    if not chunk then error(err, 0) end
    setfenv(chunk, ns.env)
    gen_loading[name] = mods
    local ok, res = pcall(chunk, name)
    gen_loading[name] = nil
    if not ok then error(res, 0) end
    if res == nil then res = true end
    mods[name] = res
    return res
  end
  local env = {}
  for k, val in pairs(_G) do env[k] = val end
  env._G, env.require = env, ns_require
  ns.env = setmetatable(env, { __index = _G })
  return ns
end

-- An error value as one message: strings as they are, tables with
-- __tostring through it, other tables as JSON.
local function message_of(e)
  if type(e) == "string" then return e end
  if e == nil then return "error (nil error object)" end
  local mt = getmetatable(e)
  if mt and mt.__tostring then return tostring(e) end
  local ok, s = pcall(function() return require("weft.json").encode(e) end)
  return ok and s or ("error object is a " .. type(e) .. " value")
end

-- Errors raised with a level pointing at this file (e.g. `:build()` called
-- from here) carry our position: replace it with the script's path; a
-- message without a position gets the path in front.
local function relocate(msg, path)
  msg = msg:gsub("^[^\n]-weft/script%.lua:%d+: ", "", 1)
  if not msg:match("^[^\n:]+:%d+: ") and msg:sub(1, #path + 1) ~= path .. ":" then
    msg = path .. ": " .. msg
  end
  return msg
end

--- Load the workflow script at path: run it (with opts.args, a list, as
-- its `...`) in opts.namespace (default: a fresh namespace over the
-- script's directory), build the builder it returns. The built workflow
-- and the script's source, or nil and a one-line error naming the file
-- (file:line when Lua gives one). opts.traceback(tb), when given, gets the
-- traceback of an error the script or its build raised (WEFT_DEBUG).
function _M.load(path, opts)
  if type(path) ~= "string" then error("weft.script.load: path must be a string", 2) end
  if opts ~= nil and type(opts) ~= "table" then
    error("weft.script.load: opts must be a table {args, namespace, traceback}", 2)
  end
  opts = opts or {}
  local src, rerr = _M.read(path)
  if not src then return nil, rerr end
  local chunk, err = loadstring(src, "@" .. path)
  if not chunk then return nil, err end
  local ns = opts.namespace or _M.namespace(_M.dir_of(path))
  setfenv(chunk, ns.env)
  local function handler(e)
    if opts.traceback then opts.traceback(debug.traceback("", 2)) end
    return message_of(e)
  end
  local args = opts.args or {}
  local ok, v = xpcall(function() return chunk(unpack(args, 1, #args)) end, handler)
  if not ok then return nil, relocate(v, path) end
  local weft = require "weft"
  if weft.is_builder(v) then
    local built
    ok, built = xpcall(function() return v:build() end, handler)
    if not ok then return nil, relocate(built, path) end
    v = built
  end
  if not weft.is_workflow(v) then
    local got = v == nil and "nothing (nil)" or ("a " .. type(v))
    return nil, fmt("%s: expected the script to return a workflow "
      .. "(return weft.workflow(...):build()), got %s", path, got)
  end
  return v, src
end

return _M
