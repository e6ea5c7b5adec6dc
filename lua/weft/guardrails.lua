--- weft.guardrails — a guardrails configuration as an operator writes it
-- once (the "Guardrails Implementation" shape of the platform design:
-- input_validation / execution_limits / output_filtering / compliance, as
-- a Lua table or a JSON file) made into a policy: the guards by stage, the
-- network policy and the budget of runs, the rate limit of `weft serve`
-- and the compliance settings. `load(tbl_or_path)` raises on an unknown
-- key or a bad value, naming its path ("input_validation.max_input_size:
-- ..."); what weft cannot enforce is refused or reported in
-- policy.warnings (see docs/guardrails.md, "Configuration").
-- Uses weft.guard (guards, sizes), weft.json, weft.check (messages).
local guard = require "weft.guard"
local json = require "weft.json"
local check = require "weft.check"

local type, pairs, ipairs, tostring, error, setmetatable, getmetatable, tonumber, next =
  type, pairs, ipairs, tostring, error, setmetatable, getmetatable, tonumber, next
local sformat, concat, sort = string.format, table.concat, table.sort

local _M = {}

local Policy = {}
Policy.__index = Policy
_M.Policy = Policy

--- True when v is a policy made by load.
function _M.is_policy(v) return getmetatable(v) == Policy end

--- The guards of the policy at stage ("input", "output", "tool_call",
-- "tool_result"): a list, or nil.
function Policy:guards_for(stage)
  return self.guards[stage]
end

--- Every guard of the policy, once, in stage order (a list; the guards
-- keep their stages).
function Policy:list()
  local out, seen = {}, {}
  for _, s in ipairs(guard.STAGES) do
    for _, g in ipairs(self.guards[s] or {}) do
      if not seen[g] then
        seen[g] = true
        out[#out + 1] = g
      end
    end
  end
  return out
end

-- Raise "path: msg" (a configuration error).
local function bad(path, msg) error(path .. ": " .. msg, 0) end

-- Raise for the unknown keys of table t at path (known: a set).
local function only(t, path, known)
  if type(t) ~= "table" or (next(t) ~= nil and json.is_array(t)) then
    bad(path, "must be an object, got " .. (type(t) == "table" and "a list" or type(t)))
  end
  local names = {}
  for k in pairs(known) do names[#names + 1] = k end
  sort(names)
  for k in pairs(t) do
    if not known[k] then
      bad(path == "" and tostring(k) or (path .. "." .. tostring(k)),
        sformat("unknown key (known: %s)%s", concat(names, ", "),
          type(k) == "string" and check.did_you_mean(k, names) or ""))
    end
  end
end

-- A path below p.
local function at(p, k) return p == "" and k or (p .. "." .. k) end

-- Bytes of a size value at path.
local function bytes(v, path)
  local n, err = guard.parse_bytes(v)
  if not n then bad(path, err) end
  return n
end

local DURATION = { ms = 0.001, s = 1, sec = 1, m = 60, min = 60, h = 3600, d = 86400 }

--- Seconds from a number or a string with a unit ("5m", "30s", "1.5h",
-- "250ms", "2d"): the number, or nil and the problem.
function _M.parse_seconds(v)
  if type(v) == "number" then
    if v > 0 then return v end
    return nil, "must be a positive number of seconds"
  end
  if type(v) ~= "string" then return nil, "must be a number of seconds or a string such as \"5m\"" end
  local num, unit = v:match("^%s*([%d%.]+)%s*(%a*)%s*$")
  local n = tonumber(num)
  local m = DURATION[(unit or ""):lower() ~= "" and unit:lower() or "s"]
  if not n or not m or n <= 0 then
    return nil, sformat("must be a duration such as \"5m\" (units ms, s, m, h, d), got %q", v)
  end
  return n * m
end

local function seconds(v, path)
  local n, err = _M.parse_seconds(v)
  if not n then bad(path, err) end
  return n
end

local function boolean(v, path)
  if type(v) ~= "boolean" then bad(path, "must be true or false, got " .. check.show(v)) end
  return v
end

local function list_of_strings(v, path)
  if type(v) ~= "table" or (next(v) ~= nil and not json.is_array(v) and v[1] == nil) then
    bad(path, "must be a list of strings")
  end
  for i, s in ipairs(v) do
    if type(s) ~= "string" or s == "" then bad(sformat("%s[%d]", path, i), "must be a non-empty string") end
  end
  return v
end

-- Add guard g to the policy's list of stage.
local function add(p, stage, g)
  local l = p.guards[stage]
  if not l then l = {}; p.guards[stage] = l end
  l[#l + 1] = g
end

-- Build a guard with constructor name and opts, naming path on error.
local function make(name, opts, path)
  local ok, g = pcall(guard[name], opts)
  if not ok then bad(path, (tostring(g):gsub("^[^\n]-:%d+: ", ""))) end
  return g
end

-- ---- file types ---------------------------------------------------------------

-- Field names whose strings are file names or paths.
local FILE_FIELDS = { file = true, files = true, filename = true, file_name = true, filenames = true,
                      path = true, paths = true, filepath = true, file_path = true, attachment = true,
                      attachments = true, document = true, documents = true }

--- A guard of allowed file types: the strings of fields named like a file
-- (file, files, filename, file_name, path, paths, filepath, file_path,
-- attachment(s), document(s), or the `name` of an object in such a list)
-- must end in one of the extensions (".txt"; case-insensitive).
function _M.file_types(exts, stages)
  local set, shown = {}, {}
  for i, e in ipairs(exts) do
    if type(e) ~= "string" or not e:match("^%.?[%w_%-]+$") then
      error(sformat("file_types: extensions[%d] must be an extension such as \".txt\", got %s", i, check.show(e)), 2)
    end
    e = e:lower()
    if e:sub(1, 1) ~= "." then e = "." .. e end
    set[e] = true
    shown[#shown + 1] = e
  end
  return guard.new({ name = "file_types", stages = stages or { "input" },
    check = function(_, s, info)
      local f = info.field
      -- the last key of the path, past list indices
      local key = f:match("([%a_][%w_]*)[%[%d%]]*$")
      local parent = f:match("([%a_][%w_]*)%[%d+%]%.name$")
      if not (key and FILE_FIELDS[key:lower()]) and not parent then return nil end
      if parent and not FILE_FIELDS[parent:lower()] then return nil end
      local ext = s:match("(%.[%w_%-]+)$")
      if ext and set[ext:lower()] then return nil end
      return { action = "block", reason = sformat("file type %s is not allowed (allowed: %s)",
        ext and ext:lower() or "(none)", concat(shown, ", ")) }
    end })
end

-- ---- the sections --------------------------------------------------------------

-- The content filter names of the design and the guards they make.
local FILTERS = {
  profanity = function() return make("words", { action = "mask", stages = { "input" } },
                                     "input_validation.content_filters.profanity") end,
  pii = function() return make("pii", { action = "block", stages = { "input" } },
                               "input_validation.content_filters.pii") end,
  malicious_code = function() return make("injection", { mode = "code", action = "block", stages = { "input" } },
                                          "input_validation.content_filters.malicious_code") end,
}

-- A list of declarative guard specs at path, each added to the policy
-- (default stages: the section's).
local function specs(p, list, path, stages)
  if type(list) ~= "table" or (next(list) ~= nil and list[1] == nil) then
    bad(path, "must be a list of guard specs {\"type\": \"pii\", ...}")
  end
  for i, spec in ipairs(list) do
    local sp = sformat("%s[%d]", path, i)
    if type(spec) == "table" and spec.stages == nil and stages then
      local c = {}
      for k, v in pairs(spec) do c[k] = v end
      c.stages = stages
      spec = c
    end
    local ok, g = pcall(guard.from_spec, spec, sp)
    if not ok then error(g, 0) end
    for _, s in ipairs(g.stage_list) do add(p, s, g) end
  end
end

local function input_validation(p, t, path)
  only(t, path, { max_input_size = true, allowed_file_types = true, content_filters = true, rate_limits = true,
                  max_items = true, guards = true })
  if t.max_input_size ~= nil or t.max_items ~= nil then
    add(p, "input", make("size", { name = "max_input_size", stages = { "input" },
      max_bytes = t.max_input_size ~= nil and bytes(t.max_input_size, at(path, "max_input_size")) or nil,
      max_items = t.max_items }, path))
  end
  if t.allowed_file_types ~= nil then
    local l = list_of_strings(t.allowed_file_types, at(path, "allowed_file_types"))
    local ok, g = pcall(_M.file_types, l)
    if not ok then bad(at(path, "allowed_file_types"), (tostring(g):gsub("^[^\n]-:%d+: ", ""))) end
    add(p, "input", g)
  end
  if t.content_filters ~= nil then
    local cp = at(path, "content_filters")
    if type(t.content_filters) ~= "table" then bad(cp, "must be a list of filter names or guard specs") end
    for i, f in ipairs(t.content_filters) do
      if type(f) == "table" then
        specs(p, { f }, sformat("%s[%d]", cp, i), { "input" })
      elseif FILTERS[f] then
        add(p, "input", FILTERS[f]())
      else
        local names = { "malicious_code", "pii", "profanity" }
        bad(sformat("%s[%d]", cp, i), sformat("unknown content filter %s (known: %s, or a guard spec {\"type\": ...})%s",
          check.show(f), concat(names, ", "), type(f) == "string" and check.did_you_mean(f, names) or ""))
      end
    end
  end
  if t.rate_limits ~= nil then
    local rp = at(path, "rate_limits")
    only(t.rate_limits, rp, { requests_per_second = true, requests_per_minute = true, requests_per_hour = true,
                              burst = true })
    local per_second, burst
    for k, div in pairs({ requests_per_second = 1, requests_per_minute = 60, requests_per_hour = 3600 }) do
      local v = t.rate_limits[k]
      if v ~= nil then
        if type(v) ~= "number" or v <= 0 then bad(at(rp, k), "must be a positive number") end
        local r = v / div
        if not per_second or r < per_second then per_second = r end
        -- the burst: the smallest window's allowance
        if not burst or v < burst then burst = v end
      end
    end
    if t.rate_limits.burst ~= nil then
      local b = t.rate_limits.burst
      if type(b) ~= "number" or b < 1 then bad(at(rp, "burst"), "must be a number >= 1") end
      burst = b
    end
    if not per_second then bad(rp, "give requests_per_minute, requests_per_hour or requests_per_second") end
    p.rate_limits = { per_second = per_second, burst = math.max(1, math.floor(burst)) }
  end
  if t.guards ~= nil then specs(p, t.guards, at(path, "guards"), { "input" }) end
end

local function network(t, path)
  only(t, path, { allowed_domains = true, allowed_hosts = true, blocked_ports = true, allow_private = true })
  local n = {}
  if t.allowed_domains ~= nil and t.allowed_hosts ~= nil then
    bad(path, "give allowed_domains or allowed_hosts, not both")
  end
  local hosts = t.allowed_domains or t.allowed_hosts
  if hosts ~= nil then
    n.allow_hosts = list_of_strings(hosts, at(path, t.allowed_domains and "allowed_domains" or "allowed_hosts"))
  end
  if t.blocked_ports ~= nil then
    local bp = at(path, "blocked_ports")
    if type(t.blocked_ports) ~= "table" then bad(bp, "must be a list of port numbers") end
    n.block_ports = {}
    for i, v in ipairs(t.blocked_ports) do
      if type(v) ~= "number" or v < 1 or v > 65535 or v % 1 ~= 0 then
        bad(sformat("%s[%d]", bp, i), "must be a port number (1-65535), got " .. check.show(v))
      end
      n.block_ports[i] = v
    end
  end
  if t.allow_private ~= nil then n.allow_private = boolean(t.allow_private, at(path, "allow_private")) end
  return n
end

local function execution_limits(p, t, path)
  only(t, path, { max_execution_time = true, max_memory_usage = true, max_cpu_usage = true,
                  network_restrictions = true, max_tokens = true, max_cost = true, prices = true })
  local b = {}
  if t.max_execution_time ~= nil then b.seconds = seconds(t.max_execution_time, at(path, "max_execution_time")) end
  if t.max_tokens ~= nil then
    if type(t.max_tokens) ~= "number" or t.max_tokens < 1 or t.max_tokens % 1 ~= 0 then
      bad(at(path, "max_tokens"), "must be a positive integer")
    end
    b.tokens = t.max_tokens
  end
  if t.max_cost ~= nil then
    if type(t.max_cost) ~= "number" or t.max_cost <= 0 then bad(at(path, "max_cost"), "must be a positive number (USD)") end
    b.cost = t.max_cost
  end
  if t.prices ~= nil then
    local pp = at(path, "prices")
    if type(t.prices) ~= "table" then bad(pp, 'must be an object "provider:model": {input, output}') end
    for m, pr in pairs(t.prices) do
      local mp = sformat("%s[%q]", pp, tostring(m))
      only(pr, mp, { input = true, output = true })
      for _, k in ipairs({ "input", "output" }) do
        if type(pr[k]) ~= "number" or pr[k] < 0 then bad(at(mp, k), "must be a non-negative number (USD per 1M tokens)") end
      end
    end
    b.prices = t.prices
  end
  if b.cost and not b.prices then bad(at(path, "max_cost"), "needs execution_limits.prices (USD per 1M tokens by model)") end
  if next(b) ~= nil then p.budget = b end
  if t.max_memory_usage ~= nil then
    local n = bytes(t.max_memory_usage, at(path, "max_memory_usage"))
    p.limits.memory_bytes = n
    p.warnings[#p.warnings + 1] = at(path, "max_memory_usage") .. ": not enforced on executors, which share "
      .. "the weft process; limit the process (ulimit -v, a cgroup's memory.max); weft.sandbox commands "
      .. "have their own memory_mb"
  end
  if t.max_cpu_usage ~= nil then
    local v = t.max_cpu_usage
    local pct = type(v) == "string" and tonumber(v:match("^%s*([%d%.]+)%s*%%%s*$")) or (type(v) == "number" and v)
    if not pct or pct <= 0 or pct > 100 * 1024 then
      bad(at(path, "max_cpu_usage"), "must be a percentage such as \"80%\", got " .. check.show(v))
    end
    p.limits.cpu_percent = pct
    p.warnings[#p.warnings + 1] = at(path, "max_cpu_usage") .. ": not enforced (weft has no CPU share "
      .. "control); give the process a CPU quota (a cgroup's cpu.max, systemd CPUQuota=)"
  end
  if t.network_restrictions ~= nil then
    p.network = network(t.network_restrictions, at(path, "network_restrictions"))
  end
end

local function output_filtering(p, t, path)
  only(t, path, { pii_removal = true, sensitive_data_masking = true, format_validation = true,
                  size_limits = true, guards = true })
  local pii = t.pii_removal ~= nil and boolean(t.pii_removal, at(path, "pii_removal"))
  local sens = t.sensitive_data_masking ~= nil and boolean(t.sensitive_data_masking, at(path, "sensitive_data_masking"))
  if pii or sens then
    add(p, "output", make("pii", { action = "mask", stages = { "output" } }, at(path, pii and "pii_removal"
      or "sensitive_data_masking")))
  end
  local fv = t.format_validation
  if fv ~= nil then
    local fp = at(path, "format_validation")
    if type(fv) == "table" then
      add(p, "output", make("schema", { schema = fv, stages = { "output" } }, fp))
    elseif type(fv) ~= "boolean" then
      bad(fp, "must be true, false or a JSON schema, got " .. check.show(fv))
    end
    -- true: outputs must be JSON values, which weft always checks
  end
  if t.size_limits ~= nil then
    add(p, "output", make("size", { name = "size_limits", stages = { "output" },
      max_bytes = bytes(t.size_limits, at(path, "size_limits")) }, path))
  end
  if t.guards ~= nil then specs(p, t.guards, at(path, "guards"), { "output" }) end
end

local AUDIT_LEVELS = { DEBUG = "all", INFO = "all", WARN = "block", WARNING = "block", ERROR = "block",
                       NONE = "none", OFF = "none" }

local function compliance(p, t, path)
  only(t, path, { data_retention_days = true, audit_log_level = true, encryption_at_rest = true,
                  encryption_in_transit = true })
  local c = p.compliance
  if t.data_retention_days ~= nil then
    local d = t.data_retention_days
    if type(d) ~= "number" or d <= 0 then bad(at(path, "data_retention_days"), "must be a positive number of days") end
    c.data_retention_days = d
  end
  if t.audit_log_level ~= nil then
    local l = t.audit_log_level
    local ap = at(path, "audit_log_level")
    if type(l) ~= "string" or not AUDIT_LEVELS[l:upper()] then
      bad(ap, "must be DEBUG, INFO (every triggered guard), WARNING, ERROR (blocks only) or NONE, got "
        .. check.show(l))
    end
    c.audit_log_level = l:upper()
    c.audit = AUDIT_LEVELS[l:upper()]
  end
  local ear = t.encryption_at_rest
  if ear ~= nil then
    local ep = at(path, "encryption_at_rest")
    if ear == true then
      bad(ep, "weft's stores do not encrypt data at rest (SQLite files and redis data are plain); "
        .. "encrypt the volume or the redis deployment and write \"external\" (encryption is provided "
        .. "outside weft), or false")
    elseif ear ~= false and ear ~= "external" then
      bad(ep, "must be false or \"external\", got " .. check.show(ear))
    end
    c.encryption_at_rest = ear
  end
  if t.encryption_in_transit ~= nil then
    c.encryption_in_transit = boolean(t.encryption_in_transit, at(path, "encryption_in_transit"))
    if c.encryption_in_transit then
      p.warnings[#p.warnings + 1] = at(path, "encryption_in_transit") .. ": weft serve answers plain HTTP; "
        .. "terminate TLS in front of it (outbound https:// calls verify certificates)"
    end
  end
end

local SECTIONS = { input_validation = input_validation, execution_limits = execution_limits,
                   output_filtering = output_filtering, compliance = compliance }

--- A policy from a configuration: a table of the design's shape
-- (input_validation, execution_limits, output_filtering, compliance, and
-- `guards`, a list of guard specs at their own stages), a list of guard
-- specs, a JSON text or the path of a JSON file. Returns the policy
-- `{guards = {stage = list}, network, budget, rate_limits = {per_second,
-- burst}, compliance = {...}, limits = {...}, warnings = {...}}`; raises
-- naming the key path.
function _M.load(v, source)
  if type(v) == "string" then
    local text = v
    if not v:match("^%s*[%[{]") then
      local f, err = io.open(v, "rb")
      if not f then error(sformat("weft.guardrails: cannot read %s: %s", v, tostring(err)), 2) end
      text = f:read("*a")
      f:close()
      source = source or v
    end
    local d, derr = json.decode(text)
    if d == nil then error(sformat("weft.guardrails: %s: invalid JSON: %s", source or "config", tostring(derr)), 2) end
    v = d
  end
  if type(v) ~= "table" then error("weft.guardrails.load: expects a table, a JSON text or a file path, got " .. type(v), 2) end
  local p = setmetatable({ guards = {}, compliance = { audit = "all" }, limits = {}, warnings = {} }, Policy)
  local ok, err = pcall(function()
    if v[1] ~= nil then
      specs(p, v, "guards")
      return
    end
    for k in pairs(v) do
      if not SECTIONS[k] and k ~= "guards" then
        local names = { "compliance", "execution_limits", "guards", "input_validation", "output_filtering" }
        bad(tostring(k), sformat("unknown key (known: %s)%s", concat(names, ", "),
          type(k) == "string" and check.did_you_mean(k, names) or ""))
      end
    end
    -- a fixed order, so that guards of a stage run in the order of the design
    for _, k in ipairs({ "input_validation", "execution_limits", "output_filtering", "compliance" }) do
      if v[k] ~= nil then SECTIONS[k](p, v[k], k) end
    end
    if v.guards ~= nil then specs(p, v.guards, "guards") end
  end)
  if not ok then
    error(sformat("weft.guardrails%s: %s", source and (" (" .. source .. ")") or "", tostring(err)), 2)
  end
  return p
end

--- Make policy (a policy, a configuration as load takes it, or nil to
-- remove it) the guardrails of every run and agent of this process, before
-- their own, and its network policy that of every request of the process
-- (weft.http.configure); what `weft serve --guardrails FILE` does. Returns
-- the policy (also weft.guardrails.installed).
function _M.install(policy)
  if policy ~= nil and not _M.is_policy(policy) then policy = _M.load(policy) end
  local old = _M.installed
  require("weft.context").set_guardrails(policy)
  -- execution_limits: the budget of every run of the process
  require("weft.run").set_budget(policy and policy.budget or nil)
  if policy and policy.network then
    require("weft.http").configure{ network = policy.network }
  elseif old and old.network then
    require("weft.http").configure{ network = false }
  end
  _M.installed = policy
  return policy
end

--- The guards of a declarative `guardrails` field of one agent or
-- workflow (the design's shape or a list of guard specs): a list. Only
-- guards apply there: network, budget, rate limits and compliance are the
-- server's (weft serve --guardrails), and raise naming the key.
function _M.guards(v, what)
  local ok, p = pcall(_M.load, v)
  if not ok then error((tostring(p):gsub("^weft%.guardrails: ", "")), 0) end
  local server
  if p.network then server = "execution_limits.network_restrictions"
  elseif p.budget then server = "execution_limits"
  elseif p.rate_limits then server = "input_validation.rate_limits"
  elseif next(p.limits) then server = "execution_limits"
  elseif type(v) == "table" and v.compliance ~= nil then server = "compliance" end
  if server then
    error(sformat("%s: applies to the whole server (weft serve --guardrails FILE), not to %s", server,
      what or "one definition"), 0)
  end
  return p:list()
end

return _M
