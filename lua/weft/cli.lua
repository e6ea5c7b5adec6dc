--- weft.cli: the command line of the `weft` executable.
-- runtime/embed/main.c calls `main(args, info)` and exits with the code it returns.
-- Commands: run, check, graph, exec, version, help. Argument parsing is here,
-- small and dependency-free; `weft` itself is required lazily so that help
-- and version work even when the library cannot load.
local _M = {}

local concat = table.concat
local format, rep = string.format, string.rep
local type, tostring, tonumber = type, tostring, tonumber
local pairs, ipairs, pcall, xpcall = pairs, ipairs, pcall, xpcall
local unpack = unpack or table.unpack

local EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_IDLE = 0, 1, 2, 3
local DEFAULT_STORE = "sqlite:./.weft/weft.db"

local stdout, stderr = io.stdout, io.stderr

-- Command table: usage line, summary, options, help text. An option with
-- `arg` takes a value (`--opt VALUE` or `--opt=VALUE`).
local COMMANDS = {}
local ORDER = { "run", "runs", "serve", "worker", "check", "graph", "exec", "version", "help" }

COMMANDS.run = {
  synopsis = "run FILE.lua",
  usage = "weft run FILE.lua [--input TEXT | --input-json JSON | --input-file PATH]"
    .. " [--events pretty|jsonl] [--max-supersteps N] [--max-concurrency N] [-- ARGS...]",
  summary = "run the workflow FILE.lua returns; outputs as JSON lines on stdout",
  options = {
    { "--input", arg = "TEXT", help = "the input message, as a string" },
    { "--input-json", arg = "JSON", help = "the input message, decoded from JSON" },
    { "--input-file", arg = "PATH", help = "the input message: PATH's contents, as a string ('-' = stdin)" },
    { "--events", arg = "pretty|jsonl", values = { pretty = true, jsonl = true },
      help = "print every event on stderr: one readable line (pretty) or one JSON object (jsonl) each" },
    { "--max-supersteps", arg = "N", int = true, help = "fail the run after N supersteps (default 100)" },
    { "--max-concurrency", arg = "N", int = true, help = "at most N invocations at once (default unlimited)" },
    { "--run-id", arg = "ID", help = "the run's id (default: generated)" },
    { "--store", arg = "URL", help = "make the run durable: checkpoints in URL (sqlite:PATH, "
      .. "redis://HOST:PORT/DB; `--store default` = " .. DEFAULT_STORE .. ")" },
    { "--wait", flag = true, help = "with --store and --run-id: when another process owns that run id, "
      .. "wait until it lets go (or its lease expires) instead of refusing" },
  },
  text = [[
FILE.lua must return a workflow (weft.workflow(...):build()) or an unbuilt
builder (built here). The chunk receives the script arguments as `...`: the
extra arguments after FILE.lua, and everything after `--`.

The input is the empty string "" unless --input, --input-json or
--input-file is given (at most one of them).

Every workflow output is printed on stdout as it is produced, as one line of
compact JSON — a string output too (as a JSON string), so every line parses.

With --store the run is durable: a checkpoint at every superstep, so that
`weft runs resume RUN` continues it after a crash, and a run that pauses on
a request to a human can be answered later with `weft runs respond`.

Exit status: 0 completed; 1 the run failed or was cancelled (the error goes
to stderr as `weft: run failed: ...`); 2 usage error or script error (one
line on stderr, with file:line when known); 3 the run is paused waiting on
requests (listed on stderr with the command that answers them).]],
}

COMMANDS.runs = {
  synopsis = "runs list|show|resume|respond",
  usage = "weft runs list | show RUN | resume RUN [--from N] [--force] [--wait] | respond RUN REQUEST JSON [--wait]"
    .. " | cleanup [--keep-last N] [--ttl SECONDS] [--store URL] [--events pretty|jsonl]",
  summary = "durable runs: list, inspect, resume after a crash, answer requests",
  options = {
    { "--store", arg = "URL", help = "the store (default " .. DEFAULT_STORE .. ")" },
    { "--from", arg = "N", int = true, help = "resume: restart from checkpoint N instead of the last" },
    { "--force", flag = true, help = "resume: accept a workflow definition whose hash differs" },
    { "--wait", flag = true, help = "resume/respond: when another process owns the run, wait until "
      .. "it lets go (or its lease expires) instead of refusing" },
    { "--events", arg = "pretty|jsonl", values = { pretty = true, jsonl = true },
      help = "resume/respond: print every event on stderr" },
    { "--keep-last", arg = "N", int = true, help = "cleanup: keep the last N checkpoints of each run" },
    { "--ttl", arg = "SECONDS", int = true, help = "cleanup: delete runs that ended more than SECONDS ago" },
  },
  text = [[
  list              every run of the store: id, workflow, status, superstep
  show RUN          the run record, its checkpoints and open requests (JSON)
  resume RUN        reload the run's script and continue from the last
                    checkpoint (or --from N); invocations that had finished
                    are not run again, recorded LLM/HTTP/sandbox calls are
                    not repeated
  respond RUN REQ JSON
                    answer request REQ with the JSON value and continue the
                    run in this process (to its end or next pause)
  cleanup           --keep-last N: drop older checkpoints (the full snapshot
                    the last N need is kept); --ttl SECONDS: delete every
                    trace of runs that ended longer ago
One process at a time owns a run (a lease in the store, renewed while it
runs; WEFT_LEASE_TTL seconds, default 30): resume and respond are refused
while another process owns it (the message names the owner and when its
lease expires) unless --wait. respond stores the answer first: when the
run's owner is alive it continues the run with it (exit 0, said on
stderr).
Exit status as for `weft run`: 0 completed (also: resuming a run that
already completed or was cancelled, which changes nothing); 1 failed; 2
usage or store error, or refused (another owner, a changed definition, an
unknown or answered request: nothing was changed); 3 paused on requests.]],
}

COMMANDS.serve = {
  synopsis = "serve",
  usage = "weft serve [--host HOST] [--port PORT] [--store URL] [--scripts DIR] [--keys FILE] [--cors ORIGIN] "
    .. "[--workers N | --in-process] [--queue NAME] [--tools FILE_OR_DIR] [--guardrails FILE]",
  summary = "the HTTP API: agents, workflows, executions (SSE), tools, health, metrics",
  options = {
    { "--host", arg = "HOST", help = "address to listen on (default 127.0.0.1)" },
    { "--port", arg = "PORT", int = true, help = "port (default 8080)" },
    { "--store", arg = "URL", help = "where definitions and executions persist (default "
      .. DEFAULT_STORE .. "; memory: for nothing)" },
    { "--scripts", arg = "DIR", help = "serve the Lua workflows of DIR (read-only)" },
    { "--watch", arg = "DIR", help = "serve the Lua workflows of DIR and reload them when they change "
      .. "(Lua modules in its subdirectories too)" },
    { "--keys", arg = "FILE", help = "API keys (JSON [{id, key | sha256, scopes, rate}]; or env WEFT_API_KEYS)" },
    { "--cors", arg = "ORIGIN", help = "allow browser calls from ORIGIN (or *)" },
    { "--workers", arg = "N", int = true, min = 0, help = "run executions in N worker processes through the store's "
      .. "queue (default: one per CPU; 0: only queue them, for workers started elsewhere; docs/scale.md)" },
    { "--in-process", flag = true, help = "run executions in this process, without workers (the default "
      .. "with --store memory:, which worker processes cannot share)" },
    { "--queue", arg = "NAME", help = "with --workers: the queue's name (default weft)" },
    { "--tools", arg = "FILE_OR_DIR", help = "register the tools of a Lua file, or of the *.lua files of a "
      .. "directory (each returns a weft.tool or a list of tools) for agents created over REST" },
    { "--guardrails", arg = "FILE", help = "guardrails of every run and agent (JSON: input_validation, "
      .. "execution_limits, output_filtering, compliance; docs/guardrails.md), in this process and its workers" },
  },
  text = [[
Serves the REST API under /api/v1 (docs/server.md): agents, workflows
(declarative JSON or the Lua files of --scripts), executions (sync or async,
events as server-sent events, answers to requests), tools, /api/v1/health
and /metrics. SIGTERM or SIGINT stops accepting, lets requests in flight
finish (30 s at most) and exits 0. Without API keys (--keys FILE or env
WEFT_API_KEYS) the server is open and refuses to listen on anything but a
loopback address; with keys, requests need `Authorization: Bearer KEY`
(scopes read, run, admin), mutating calls are audited (/api/v1/audit).
/v1/models and /v1/chat/completions answer OpenAI clients.]],
}

COMMANDS.worker = {
  synopsis = "worker",
  usage = "weft worker --store URL [--scripts DIR | --watch DIR] [--concurrency N] [--name NAME] "
    .. "[--queue NAME] [--processes N] [--block-limit SECONDS] [--guardrails FILE [--audit]]",
  summary = "take executions from the store's queue and run them (docs/scale.md)",
  options = {
    { "--store", arg = "URL", help = "the store the queue is in (redis://HOST:PORT/DB, or sqlite:PATH "
      .. "for workers on this machine; default " .. DEFAULT_STORE .. ")" },
    { "--scripts", arg = "DIR", help = "the Lua workflows of DIR (as weft serve --scripts)" },
    { "--watch", arg = "DIR", help = "the Lua workflows of DIR, reloaded when they change" },
    { "--concurrency", arg = "N", int = true, help = "at most N executions at once per process (default 1000)" },
    { "--name", arg = "NAME", help = "this worker's name (default HOST:PID); processes add -1, -2, ..." },
    { "--queue", arg = "NAME", help = "the queue to take from (default weft)" },
    { "--processes", arg = "N", int = true, help = "worker processes to start and supervise (default 1)" },
    { "--block-limit", arg = "SECONDS", int = true, help = "kill a worker process whose executor did not "
      .. "yield for SECONDS (default 20); its execution is retried elsewhere once, then failed" },
    { "--guardrails", arg = "FILE", help = "guardrails of every run (as weft serve --guardrails; weft serve "
      .. "passes its own to its workers)" },
    { "--audit", flag = true, help = "with --guardrails: write guardrail events to the store's audit log "
      .. "(as weft serve does when API keys are configured)" },
    { "--child", flag = true, help = "(internal) be one worker process of a supervisor" },
  },
  text = [[
Takes executions from the queue of the store (put there by `weft serve` or
by Lua with weft.pool.submit) and runs them durably: checkpoints, the I/O
journal and the run's lease in the store, its events in the store for the
API to stream. `weft worker` supervises --processes worker processes: one
whose executor blocks its loop (never yields) for --block-limit seconds is
killed by its watchdog and replaced; the execution continues on another
worker from its last checkpoint (at most twice, then it fails naming the
executor). A worker killed in any way loses nothing: its executions are
reclaimed by other workers once nobody touched them for a lease's time
(30 s, WEFT_LEASE_TTL). SIGTERM or SIGINT stops the processes; their running
executions are left to their checkpoints and continue elsewhere.]],
}

COMMANDS.check = {
  synopsis = "check FILE.lua",
  usage = "weft check FILE.lua [-- ARGS...]",
  summary = "load and validate the workflow, print a summary",
  options = {},
  text = [[
Loads FILE.lua and builds the workflow it returns, then prints
  ok: workflow '<name>': N executors, M edges
Exit status: 0 valid; 2 usage or script error (one line on stderr: the load
error or the build validation error, with file:line when known).]],
}

COMMANDS.graph = {
  synopsis = "graph FILE.lua",
  usage = "weft graph FILE.lua [--format mermaid|dot|svg] [-- ARGS...]",
  summary = "print the workflow graph (Mermaid, Graphviz dot or SVG)",
  options = {
    { "--format", arg = "mermaid|dot|svg", values = { mermaid = true, dot = true, svg = true },
      help = "output format (default mermaid)" },
  },
  text = [[
Prints the graph of the workflow FILE.lua returns on stdout. Edge labels
name the kind: a conditional edge shows its name (or "when"), switch cases
"case N: name" and "default", fan-out edges "fan-out" (or "select" when a
selector picks the targets), fan-in edges "fan-in". The start executor is
drawn as a rounded node; validators and orchestrators have their own shapes.
mermaid and dot print the source (render it with any Mermaid viewer or
`dot -Tsvg`); svg lays the graph out with Graphviz's dot engine (built in)
and prints an SVG drawing to inline in a web page: no XML prolog, scales to
its container, each executor a <g class="node" data-executor="ID">.
Exit status: 0 printed; 1 the layout failed (e.g. a graph over Graphviz's
size limits); 2 usage or script error.]],
}

COMMANDS.exec = {
  synopsis = "exec SCRIPT.lua",
  usage = "weft exec SCRIPT.lua [ARGS...]",
  summary = "run a plain Lua script with weft on the path (e.g. busted)",
  options = {},
  text = [[
Runs SCRIPT.lua like `luajit SCRIPT.lua ARGS...` would, inside the weft
executable: `require "weft"` works, the global `arg` holds arg[0] = SCRIPT.lua
and arg[1..] = ARGS, and the chunk also gets ARGS as `...`. A first line
starting with `#!` is skipped. Every argument after SCRIPT.lua is passed on
untouched, options included. Example: weft exec /usr/bin/busted spec/unit
Exit status: 0 when the script returns; 1 when it raises (message and
traceback on stderr); 2 when it cannot be loaded; os.exit(n) exits with n.]],
}

COMMANDS.version = {
  synopsis = "version",
  usage = "weft version",
  summary = "print the version",
  options = {},
  text = "Prints `weft <version> (<LuaJIT version>)`. Also: weft --version.",
}

COMMANDS.help = {
  synopsis = "help [COMMAND]",
  usage = "weft help [COMMAND]",
  summary = "this text, or the options of COMMAND",
  options = {},
  text = "Also: weft --help, weft COMMAND --help.",
}

local HELP_TAIL = [[
Exit status: 0 success; 1 the run failed or was cancelled; 3 the run is
paused waiting on requests; 2 usage error or script error (file missing, syntax error, error
while loading, no workflow returned, build validation failed); 70 internal
error of the CLI.

Environment:
  WEFT_PATH   directory holding lua/ and stdlib/ (default: next to the
              executable, then <prefix>/share/weft, then the source tree)
  WEFT_DEBUG  set to 1 to add the Lua traceback to script errors]]

---------------------------------------------------------------------------
-- Output helpers

local function say(fh, ...)
  fh:write(...)
  fh:write("\n")
end

local function fail(code, msg)
  say(stderr, "weft: ", msg)
  return code
end

local function usage_error(cmd, msg)
  say(stderr, "weft: ", msg)
  if cmd and COMMANDS[cmd] then
    say(stderr, "usage: ", COMMANDS[cmd].usage)
    say(stderr, "(see 'weft help ", cmd, "')")
  else
    say(stderr, "usage: weft COMMAND [ARGS...]   (commands: ", concat(ORDER, ", "), "; see 'weft --help')")
  end
  return EXIT_USAGE
end

local function option_lines(spec)
  local rows, width = {}, 0
  for _, o in ipairs(spec.options) do
    local left = o[1] .. (o.arg and (" " .. o.arg) or "")
    rows[#rows + 1] = { left, o.help }
    if #left > width then width = #left end
  end
  rows[#rows + 1] = { "-h, --help", "show this help" }
  if #"-h, --help" > width then width = #"-h, --help" end
  local out = {}
  for _, r in ipairs(rows) do
    out[#out + 1] = "  " .. r[1] .. rep(" ", width - #r[1] + 2) .. r[2]
  end
  return concat(out, "\n")
end

--- The help text of one command (nil if unknown), or the general help.
function _M.help_text(cmd)
  if cmd then
    local spec = COMMANDS[cmd]
    if not spec then return nil end
    return format("usage: %s\n\n%s\n\noptions:\n%s\n\n%s\n",
      spec.usage, spec.summary, option_lines(spec), spec.text)
  end
  local lines = {
    "weft — a Lua-scriptable workflow runtime (LuaJIT + libev)",
    "",
    "usage: weft COMMAND [ARGS...]",
    "",
    "commands:",
  }
  for _, name in ipairs(ORDER) do
    lines[#lines + 1] = format("  %-18s %s", COMMANDS[name].synopsis, COMMANDS[name].summary)
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "Run 'weft help COMMAND' (or 'weft COMMAND --help') for its options."
  lines[#lines + 1] = ""
  lines[#lines + 1] = HELP_TAIL
  return concat(lines, "\n") .. "\n"
end

---------------------------------------------------------------------------
-- Argument parsing

local function find_option(spec, name)
  for _, o in ipairs(spec.options) do
    if o[1] == name then return o end
  end
end

--- Parse args[first..] for command `cmd`: returns {opts = {name = value},
-- positional = {...}, rest = {... after "--"}, help = bool}, or nil, err.
function _M.parse(cmd, args, first)
  local spec = assert(COMMANDS[cmd], cmd)
  local res = { opts = {}, positional = {}, rest = {}, help = false }
  local i = first or 1
  while i <= #args do
    local a = args[i]
    if a == "--" then
      for j = i + 1, #args do res.rest[#res.rest + 1] = args[j] end
      break
    elseif a == "-h" or a == "--help" then
      res.help = true
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      local name, value = a:match("^(%-%-[^=]+)=(.*)$")
      name = name or a
      local o = find_option(spec, name)
      if not o then return nil, format("unknown option '%s' for '%s'", name, cmd) end
      if o.flag then
        value = true
      elseif value == nil then
        i = i + 1
        value = args[i]
        if value == nil then return nil, format("option %s needs a value (%s)", name, o.arg) end
      end
      if o.values and not o.values[value] then
        return nil, format("option %s: '%s' is not one of %s", name, value, o.arg)
      end
      if o.int then
        local n, least = tonumber(value), o.min or 1
        if not n or n ~= math.floor(n) or n < least then
          return nil, format("option %s: '%s' is not an integer >= %d", name, value, least)
        end
        value = n
      end
      if res.opts[name] ~= nil then return nil, format("option %s given twice", name) end
      res.opts[name] = value
    else
      res.positional[#res.positional + 1] = a
    end
    i = i + 1
  end
  return res
end

---------------------------------------------------------------------------
-- Loading a workflow script

local function debug_on()
  local v = os.getenv("WEFT_DEBUG")
  return v ~= nil and v ~= "" and v ~= "0"
end

-- Message handler: keep the message, remember the traceback for WEFT_DEBUG.
local last_traceback
local function handler(e)
  last_traceback = debug.traceback("", 2)
  if type(e) == "string" then return e end
  if e == nil then return "error (nil error object)" end
  local mt = getmetatable(e)
  if mt and mt.__tostring then return tostring(e) end
  local ok, s = pcall(function() return require("weft").json.encode(e) end)
  return ok and s or ("error object is a " .. type(e) .. " value")
end

local function script_error(msg)
  say(stderr, "weft: ", msg)
  if debug_on() and last_traceback then say(stderr, last_traceback) end
  return EXIT_USAGE
end

--- Load FILE (weft.script.load, with the script's arguments): the built
-- workflow, or nil and a one-line error (file:line when Lua gives one);
-- the traceback is kept for WEFT_DEBUG.
function _M.load_workflow(path, script_args)
  last_traceback = nil
  return require("weft.script").load(path, { args = script_args, traceback = function(tb) last_traceback = tb end })
end

-- The common front of run/check/graph: FILE plus script arguments.
local function load_from(cmd, parsed)
  local path = parsed.positional[1]
  if not path then return nil, usage_error(cmd, "missing FILE.lua") end
  local script_args = {}
  for i = 2, #parsed.positional do script_args[#script_args + 1] = parsed.positional[i] end
  for _, a in ipairs(parsed.rest) do script_args[#script_args + 1] = a end
  local wf, err = _M.load_workflow(path, script_args)
  if not wf then return nil, script_error(err) end
  return wf
end

---------------------------------------------------------------------------
-- Events

local function json_or(v, fallback)
  local ok, s = pcall(require("weft").json.encode, v)
  if ok then return s end
  return fallback or ("<" .. type(v) .. ">")
end

local function one_line(s, max)
  s = tostring(s):gsub("\r?\n", " | ")
  max = max or 160
  if #s > max then s = s:sub(1, max - 3) .. "..." end
  return s
end

local function data_of(ev)
  return type(ev.data) == "table" and ev.data or {}
end

-- Per event type: the interesting data, as text after the executor id.
local PRETTY = {
  workflow_started = function(ev)
    return format("workflow=%s run=%s", tostring(data_of(ev).workflow), tostring(ev.run_id))
  end,
  executor_invoked = function(ev)
    local a = data_of(ev).attempt
    return a and a > 1 and ("attempt=" .. a) or ""
  end,
  executor_failed = function(ev)
    local d = data_of(ev)
    local parts = { "attempt=" .. tostring(d.attempt or 1) }
    if d.timed_out then parts[#parts + 1] = "timed out" end
    if d.retrying then parts[#parts + 1] = "retrying" end
    if d.continued then parts[#parts + 1] = "continued" end
    parts[#parts + 1] = "error=" .. one_line(d.error or "?", 300)
    return concat(parts, " ")
  end,
  output = function(ev) return one_line(json_or(ev.data)) end,
  custom = function(ev)
    return tostring(ev.name or "?") .. (ev.data ~= nil and (" " .. one_line(json_or(ev.data))) or "")
  end,
  -- a message no edge accepted (run option on_undelivered)
  message_undelivered = function(ev)
    local d = data_of(ev)
    return format("no edge accepted it: %s%s  message=%s", concat(d.edges or {}, "; "),
      d.target and (" (sent to " .. tostring(d.target) .. ")") or "", one_line(json_or(d.message), 200))
  end,
  log = function(ev)
    local d = data_of(ev)
    return format("[%s] %s", tostring(d.level or "info"), one_line(d.message or "", 300))
  end,
  state_conflict = function(ev)
    local d = data_of(ev)
    local writers = type(d.writers) == "table" and concat(d.writers, ",") or "?"
    return format("key=%s writers=%s", tostring(d.key), writers)
  end,
  workflow_failed = function(ev) return "error=" .. one_line(data_of(ev).error or "?", 300) end,
}
PRETTY.executor_completed = PRETTY.executor_invoked

--- One readable line for an event: `[ss 2] executor_completed  writer ...`.
function _M.pretty_event(ev)
  local ss = ev.superstep ~= nil and tostring(ev.superstep) or "-"
  local fmt = PRETTY[ev.type]
  local detail
  if fmt then
    detail = fmt(ev)
  elseif ev.data ~= nil then
    detail = one_line(json_or(ev.data))
  else
    detail = ""
  end
  local parts = {}
  if ev.executor_id ~= nil then parts[#parts + 1] = tostring(ev.executor_id) end
  if detail ~= "" then parts[#parts + 1] = detail end
  return (format("[ss %s] %-19s %s", ss, tostring(ev.type), concat(parts, "  "))
    :gsub("%s+$", ""))
end

--- One JSON object for an event (never raises; unencodable data is replaced
-- by a description).
function _M.jsonl_event(ev)
  -- invalid UTF-8 (a log line, an error message) prints as U+FFFD: stdout
  -- and stderr lines are always valid JSON
  local ok, s = pcall(require("weft").json.encode, ev, { invalid_utf8 = "replace" })
  if ok then return s end
  local copy = {}
  for k, v in pairs(ev) do copy[k] = v end
  copy.data = "<not JSON-serialisable: " .. tostring(s) .. ">"
  return json_or(copy, '{"type":"' .. tostring(ev.type) .. '"}')
end

---------------------------------------------------------------------------
-- Commands

local function read_input(opts)
  local given = {}
  for _, k in ipairs({ "--input", "--input-json", "--input-file" }) do
    if opts[k] ~= nil then given[#given + 1] = k end
  end
  if #given > 1 then
    return nil, "usage", format("options %s are exclusive: give at most one", concat(given, " and "))
  end
  if opts["--input"] ~= nil then return opts["--input"] end
  if opts["--input-json"] ~= nil then
    local json = require("weft").json
    local ok, v, err = pcall(json.decode, opts["--input-json"])
    if not ok or (v == nil and err) then
      return nil, "script", "--input-json: invalid JSON: " .. one_line(ok and err or v)
    end
    if v == nil then v = json.null end
    return v
  end
  local path = opts["--input-file"]
  if path ~= nil then
    local fh, err
    if path == "-" then fh = io.stdin else fh, err = io.open(path, "rb") end
    if not fh then return nil, "script", "--input-file: " .. err end
    local text = fh:read("*a")
    if fh ~= io.stdin then fh:close() end
    if not text then return nil, "script", "--input-file: cannot read " .. path end
    return text
  end
  return ""
end

-- The store URL of --store (default: DEFAULT_STORE).
local function store_url(opts)
  local u = opts["--store"]
  if u == nil or u == "default" then return DEFAULT_STORE end
  return u
end

-- Print the paused run's open requests and how to answer them.
local function report_idle(res, durable)
  local json = require("weft").json
  for _, q in ipairs(res.requests or {}) do
    say(stderr, format("weft: run %s waits on request %s from '%s': %s", res.run_id,
      q.request_id, q.executor_id, one_line(json_or(q.request), 400)))
    if durable then
      say(stderr, format("weft:   answer with: weft runs respond %s %s '<json>'", res.run_id, q.request_id))
    end
  end
  return EXIT_IDLE
end

-- A message without the positions of weft's own Lua files
-- (".../lua/weft/cli.lua:547: "): they say nothing to the user.
local function clean(msg)
  return (tostring(msg):gsub("[^%s:]*lua/weft/[%w_/]+%.lua:%d+: ", ""))
end
_M.clean_message = clean

-- Run start(opts) -> handle with the CLI's output: outputs on stdout as
-- they are committed, events on stderr when asked; returns the exit status.
-- start may return nil, code, message instead of a handle: nothing ran
-- (refused); that message is printed and code returned.
local function execute(start, opts, durable)
  local weft = require("weft")
  local encode = weft.json.encode
  local events = opts["--events"]
  local function on_event(ev)
    if ev.type == "output" then
      local ok, line = pcall(encode, ev.data)
      if not ok then line = encode("<output not JSON-serialisable: " .. tostring(line) .. ">") end
      stdout:write(line, "\n")
      stdout:flush()
    end
    if events == "jsonl" then
      stderr:write(_M.jsonl_event(ev), "\n")
    elseif events == "pretty" then
      stderr:write(_M.pretty_event(ev), "\n")
    end
    if ev.type == "executor_failed" and debug_on() and type(ev.data) == "table" and ev.data.traceback then
      -- WEFT_DEBUG=1: the executor's traceback, not only in jsonl events
      stderr:write(format("weft: executor '%s' (superstep %s, attempt %s): %s\n", tostring(ev.executor_id),
        tostring(ev.superstep), tostring(ev.data.attempt), tostring(ev.data.traceback)))
    end
  end
  local run_opts = {
    on_event = on_event,
    max_supersteps = opts["--max-supersteps"],
    max_concurrency = opts["--max-concurrency"],
    events = false, -- the CLI streams; no need to keep the log
  }
  local refused, rmsg, handle
  local ok, res = xpcall(function()
    local h, code, msg = start(run_opts)
    if not h then
      refused, rmsg = code, msg
      return nil
    end
    handle = h
    return h:wait()
  end, handler)
  stdout:flush()
  if ok and refused then return fail(refused, one_line(clean(rmsg), 2000)) end
  if not ok then return fail(EXIT_FAILED, "run failed: " .. one_line(clean(res), 2000)) end
  if res.status == "completed" then return EXIT_OK end
  if res.status == "cancelled" then return fail(EXIT_FAILED, "run failed: cancelled") end
  if res.status == "idle" then
    local handed = handle and handle.durable and handle.durable.handed
    if handed then
      -- answers arrived for the paused run while another process took it
      say(stderr, format("weft: run %s continues in another process (%s)", res.run_id, one_line(clean(handed), 400)))
      return EXIT_OK
    end
    return report_idle(res, durable)
  end
  return fail(EXIT_FAILED, "run failed: " .. one_line(clean(res.error or res.status or "unknown error"), 2000))
end

local function cmd_run(parsed)
  local opts = parsed.opts
  local input, kind, err = read_input(opts)
  if kind == "usage" then return usage_error("run", err) end
  if kind then return script_error(err) end

  local wf, code = load_from("run", parsed)
  if not wf then return code end
  local durable = opts["--store"] ~= nil
  return execute(function(run_opts)
    run_opts.run_id = opts["--run-id"]
    if not durable then return wf:spawn(input, run_opts) end
    run_opts.store = store_url(opts)
    run_opts.script = _M.script_record(parsed)
    if opts["--wait"] then run_opts.lease = { wait = true } end
    -- the run id's lease and record are written before anything runs: a
    -- refusal (an id in use, the store down) is a store error
    local ok, h = pcall(wf.spawn, wf, input, run_opts)
    if not ok then return nil, EXIT_USAGE, h end
    return h
  end, opts, durable)
end

--- What a durable run records of its script, to reload it on resume:
-- {path (absolute), args}.
function _M.script_record(parsed)
  local path = parsed.positional[1]
  local ok, proc = pcall(require, "weft.core.proc")
  local abs = ok and proc.realpath and proc.realpath(path) or path
  local args = {}
  for i = 2, #parsed.positional do args[#args + 1] = parsed.positional[i] end
  for _, a in ipairs(parsed.rest) do args[#args + 1] = a end
  return { path = abs, args = args }
end

-- Open the store of `weft runs`; nil and the exit status on failure.
local function open_store(opts)
  local url = store_url(opts)
  local ok, store, err = pcall(require("weft.store").open, url)
  if not ok or not store then
    return nil, fail(EXIT_USAGE, "store " .. url .. ": " .. one_line(ok and err or store, 400))
  end
  return store
end

-- The workflow of a durable run's record, reloaded from its script.
local function workflow_of(rec)
  local sc = rec.script
  if type(sc) ~= "table" or type(sc.path) ~= "string" then
    return nil, script_error(format("run %s has no recorded script (it was not started by weft run)", rec.run_id))
  end
  local wf, err = _M.load_workflow(sc.path, sc.args or {})
  if not wf then return nil, script_error(err) end
  return wf
end

local function cmd_runs(parsed)
  local sub, opts = parsed.positional[1], parsed.opts
  local pos = parsed.positional
  local durable = require("weft.durable")
  local json = require("weft").json
  local SUBS = { list = 1, show = 2, resume = 2, respond = 4, cleanup = 1 }
  if not SUBS[sub] then
    return usage_error("runs", sub and ("unknown subcommand '" .. sub .. "'") or "missing subcommand")
  end
  if #pos ~= SUBS[sub] then
    return usage_error("runs", format("'runs %s' takes %d argument(s)", sub, SUBS[sub] - 1))
  end
  local store, code = open_store(opts)
  if not store then return code end
  if sub == "cleanup" then
    if not opts["--keep-last"] and not opts["--ttl"] then
      return usage_error("runs", "cleanup needs --keep-last N and/or --ttl SECONDS")
    end
    local ok, res = pcall(durable.cleanup, store, { keep_last = opts["--keep-last"], ttl = opts["--ttl"] })
    if not ok then return fail(EXIT_USAGE, "cleanup: " .. one_line(res, 400)) end
    say(stdout, format("deleted %d run(s), dropped %d checkpoint(s)", res.runs_deleted,
      res.checkpoints_dropped))
    return EXIT_OK
  end
  if sub == "list" then
    local rows, err = store:scan("runs", "")
    if not rows then return fail(EXIT_USAGE, "store: " .. one_line(err, 400)) end
    say(stdout, format("%-28s %-20s %-10s %s", "RUN", "WORKFLOW", "STATUS", "SUPERSTEP"))
    for _, row in ipairs(rows) do
      local ok, rec = pcall(json.decode, row.value)
      if ok and type(rec) == "table" then
        say(stdout, format("%-28s %-20s %-10s %s", row.key, tostring(rec.workflow),
          tostring(rec.status), tostring(rec.superstep)))
      else
        say(stdout, format("%-28s (corrupt record)", row.key))
      end
    end
    return EXIT_OK
  end
  local ok, rec, err = pcall(durable.record, store, pos[2])
  if not ok then return fail(EXIT_USAGE, one_line(rec, 400)) end
  if not rec then return fail(EXIT_USAGE, one_line(err, 400)) end
  if sub == "show" then
    rec.open_requests = json.array(durable.open_requests(store, pos[2]))
    say(stdout, json.encode(rec, { pretty = true }))
    return EXIT_OK
  end
  if sub == "resume" and (rec.status == "completed" or rec.status == "cancelled") then
    say(stderr, format("weft: run %s already %s; nothing to resume", pos[2], rec.status))
    return EXIT_OK
  end
  local v, derr
  if sub == "respond" then
    v, derr = json.decode(pos[4])
    if v == nil and derr then return usage_error("runs", "respond: invalid JSON: " .. one_line(derr)) end
    if v == json.null then v = nil end
  end
  local wf, wcode = workflow_of(rec)
  if not wf then return wcode end
  local lease_opts = opts["--wait"] and { wait = true } or nil
  if sub == "resume" then
    return execute(function(run_opts)
      run_opts.store, run_opts.from, run_opts.force, run_opts.lease = store, opts["--from"], opts["--force"], lease_opts
      local ok, h = pcall(wf.resume, wf, pos[2], run_opts)
      if not ok then return nil, EXIT_USAGE, h end
      return h
    end, opts, true)
  end
  local rok, lease, holder = pcall(durable.respond, wf, pos[2], pos[3], v, { store = store, lease = lease_opts })
  if not rok then return fail(EXIT_USAGE, "respond: " .. one_line(clean(lease), 400)) end
  if not lease then
    say(stderr, format("weft: answer to %s stored; run %s is owned by %s, which continues it with the answer "
      .. "(if that process is gone, `weft runs resume %s` continues it once the lease expires)",
      pos[3], pos[2], require("weft.store").describe_lease(holder), pos[2]))
    return EXIT_OK
  end
  return execute(function(run_opts)
    run_opts.store, run_opts._lease = store, lease
    local ok, h = pcall(wf.resume, wf, pos[2], run_opts)
    if not ok then return nil, EXIT_USAGE, h end
    return h
  end, opts, true)
end

local function plural(n, word)
  return format("%d %s%s", n, word, n == 1 and "" or "s")
end

local function cmd_check(parsed)
  local wf, code = load_from("check", parsed)
  if not wf then return code end
  local desc = wf:describe()
  say(stdout, format("ok: workflow '%s': %s, %s", tostring(desc.name),
    plural(#desc.executors, "executor"), plural(#desc.edges, "edge")))
  return EXIT_OK
end

local function cmd_graph(parsed)
  local wf, code = load_from("graph", parsed)
  if not wf then return code end
  local graphviz = require("weft.graphviz")
  local render = graphviz[parsed.opts["--format"] or "mermaid"]
  local text, err = render(wf:describe())
  if not text then return fail(EXIT_FAILED, err) end
  stdout:write(text)
  return EXIT_OK
end

local function cmd_exec(args, info)
  local script = args[2]
  if script == nil then return usage_error("exec", "missing SCRIPT.lua") end
  if script == "-h" or script == "--help" then
    stdout:write(_M.help_text("exec"))
    return EXIT_OK
  end
  local script_args = {}
  local argt = { [-2] = info and info.exe or "weft", [-1] = "exec", [0] = script }
  for i = 3, #args do
    script_args[#script_args + 1] = args[i]
    argt[i - 2] = args[i]
  end
  local chunk, err = loadfile(script)
  if not chunk then return fail(EXIT_USAGE, err) end
  rawset(_G, "arg", argt)
  local ok, e = xpcall(function() return chunk(unpack(script_args, 1, #script_args)) end,
    function(e)
      if e == nil then return nil end -- busted's error(): failures already reported
      return debug.traceback(type(e) == "string" and e or handler(e), 2)
    end)
  stdout:flush()
  if ok then return EXIT_OK end
  if e ~= nil then say(stderr, "weft: ", e) end
  return EXIT_FAILED
end

local function cmd_version(info)
  say(stdout, format("weft %s (%s)", info and info.version or "unknown",
    jit and jit.version or _VERSION))
  return EXIT_OK
end

-- The weft executable (for the worker processes a supervisor starts).
local exe_path

-- Wait for SIGTERM or SIGINT (in tasks), then call fn.
local function on_stop_signal(fn)
  local weft = require "weft"
  local loop = require "weft.core.loop"
  for _, signo in ipairs({ 15, 2 }) do
    weft.go(function() loop.signal_wait(signo); fn(signo) end)
  end
end

-- weft serve: the REST app on weft.server until SIGTERM/SIGINT.
local function cmd_serve(parsed)
  local opts = parsed.opts
  if #parsed.positional > 0 then return usage_error("serve", "unexpected argument '" .. parsed.positional[1] .. "'") end
  local host, port = opts["--host"] or "127.0.0.1", opts["--port"] or 8080
  local security = require "weft.serve.security"
  local kok, keys = pcall(security.load, { keys_file = opts["--keys"] })
  if not kok then return fail(EXIT_USAGE, "serve: " .. tostring(keys)) end
  if not keys and host ~= "127.0.0.1" and host ~= "localhost" and host ~= "::1" then
    return fail(EXIT_USAGE, "serve: no API keys configured (--keys FILE or WEFT_API_KEYS): refusing to listen on "
      .. host .. "; use 127.0.0.1")
  end
  local weft = require "weft"
  local ok, store = pcall(weft.store.open, store_url(opts))
  if not ok or not store then return fail(EXIT_USAGE, "serve: store " .. store_url(opts) .. ": " .. tostring(store)) end
  local watch = opts["--watch"]
  if watch and opts["--scripts"] then return usage_error("serve", "give --scripts or --watch, not both") end
  local grfile = opts["--guardrails"]
  local aok, app = pcall(require("weft.serve.app").new, { store = store, scripts_dir = watch or opts["--scripts"],
    security = { keys_file = opts["--keys"], cors = opts["--cors"] }, guardrails = grfile })
  if not aok then return fail(EXIT_USAGE, "serve: " .. one_line(tostring(app), 600)) end
  if app.guardrails then
    for _, w in ipairs(app.guardrails.warnings) do say(stderr, "weft: guardrails: " .. w) end
    local days = app.guardrails.compliance.data_retention_days
    if days and app.durable then
      -- compliance.data_retention_days: weft runs cleanup --ttl, at start and daily
      weft.go(function()
        while true do
          local cok, cerr = pcall(require("weft.durable").cleanup, store, { ttl = math.floor(days * 86400) })
          if not cok then say(stderr, "weft: guardrails: retention cleanup: " .. one_line(tostring(cerr), 300)) end
          weft.sleep(86400)
        end
      end)
    end
  end
  if opts["--tools"] then
    local tok, n, terr = pcall(require("weft.serve.tools").load, app, opts["--tools"])
    if not tok or not n then return fail(EXIT_USAGE, "serve: --tools " .. one_line(tostring(tok and terr or n), 400)) end
  end
  if watch then
    local hok, host = pcall(weft.host.new, { dir = watch, watch = true, on_event = function(ev)
      if ev.type == "reloaded" then
        say(stderr, format("weft: reloaded %s (version %d, %s -> %s)", ev.script, ev.version, ev.old_hash, ev.new_hash))
      elseif ev.type == "reload_failed" then
        say(stderr, format("weft: reload of %s failed, keeping the working version: %s", ev.script, one_line(ev.error, 400)))
      end
    end })
    if not hok then return fail(EXIT_USAGE, "serve: --watch " .. watch .. ": " .. one_line(host, 400)) end
    app.host = host
  end
  local nworkers, sup = opts["--workers"], nil
  if nworkers and opts["--in-process"] then return usage_error("serve", "give --workers or --in-process, not both") end
  if nworkers == nil and not opts["--in-process"] and store.kind ~= "memory" then
    nworkers = require("weft.worker").cores()
  end
  if nworkers then
    if store.kind == "memory" then
      return usage_error("serve", "--workers needs a store that worker processes share (sqlite:PATH or redis://...)")
    end
    app.pool = { queue = opts["--queue"] or require("weft.pool").QUEUE }
    if nworkers > 0 then
      local argv = { exe_path, "worker", "--child", "--store", store_url(opts), "--queue", app.pool.queue }
      if watch then argv[#argv + 1] = "--watch"; argv[#argv + 1] = watch end
      if opts["--scripts"] then argv[#argv + 1] = "--scripts"; argv[#argv + 1] = opts["--scripts"] end
      if grfile then
        -- the workers run the executions: the same policy, and its events
        -- in the audit log that GET /api/v1/audit reads
        argv[#argv + 1] = "--guardrails"; argv[#argv + 1] = grfile
        if app.security.enabled then argv[#argv + 1] = "--audit" end
      end
      local me = require("weft.store").owner()
      app.pool.notices = require("weft.pool").notices()
      sup = require("weft.worker").supervise{ processes = nworkers, argv = argv, store = store,
        name = me.host .. ":" .. me.pid .. "/worker", notices = app.pool.notices }
      app.pool.wake = sup.wake
    end
  end
  local rok, nres, rfailed, nwait = true, 0, {}, 0
  if not nworkers then
    rok, nres, rfailed, nwait = pcall(require("weft.serve.executions").resume_running, app)
  end
  if not rok then return fail(EXIT_USAGE, "serve: resuming executions: " .. tostring(nres)) end
  if nres > 0 then say(stderr, format("weft: resumed %d execution(s) left running", nres)) end
  if (nwait or 0) > 0 then
    say(stderr, format("weft: %d of them wait for the lease of the server that ran them (killed mid-run); "
      .. "they continue when it expires", nwait))
  end
  for _, f in ipairs(rfailed) do
    say(stderr, format("weft: could not resume execution %s: %s", f.id, one_line(f.error, 300)))
  end
  local srv, err = weft.server.listen{
    host = host, port = port,
    handler = function(req, res) app:handle(req, res) end,
  }
  if not srv then return fail(EXIT_USAGE, "serve: " .. tostring(err)) end
  if keys then
    say(stderr, format("weft: serving http://%s:%d/api/v1 (store %s); %d API key(s)%s", host, srv.port,
      store_url(opts), #keys, opts["--cors"] and ("; CORS " .. opts["--cors"]) or ""))
  else
    say(stderr, format("weft: serving http://%s:%d/api/v1 (store %s); no API keys configured: "
      .. "listening on %s only", host, srv.port, store_url(opts), host))
  end
  stderr:flush()
  local stop = weft.cond()
  on_stop_signal(function() stop:signal() end)
  stop:wait()
  say(stderr, "weft: stopping: draining requests in flight")
  srv:close()
  local drained = srv:drain(30)
  if sup then sup:stop() end
  say(stderr, drained and "weft: stopped" or "weft: stopped (requests still running were cut)")
  return EXIT_OK
end

-- weft worker --child: one worker process (a watchdog kills it when an
-- executor blocks its loop).
local function worker_child(opts, url)
  local weft = require "weft"
  if opts["--guardrails"] then
    local gok, pol = pcall(require("weft.guardrails").install, opts["--guardrails"])
    if not gok then return fail(EXIT_USAGE, "worker: --guardrails " .. one_line(tostring(pol), 600)) end
    if opts["--audit"] then
      require("weft.serve.security").observe_guards({ store = weft.store.open(url), security = { enabled = true } },
        pol.compliance.audit or "all")
    end
  elseif opts["--audit"] then
    return usage_error("worker", "--audit goes with --guardrails FILE")
  end
  local limit = opts["--block-limit"] or require("weft.worker").BLOCK_LIMIT
  local report = os.getenv("WEFT_WATCHDOG_REPORT")
  local dog = require("weft.core.watchdog").start(limit, report or "")
  local ok, w = pcall(require("weft.worker").new, {
    store = url, scripts_dir = opts["--watch"] or opts["--scripts"], watch = opts["--watch"] ~= nil,
    concurrency = opts["--concurrency"], name = os.getenv("WEFT_WORKER_NAME") or opts["--name"],
    queue = opts["--queue"], wake_file = os.getenv("WEFT_WAKE_FILE"),
    notify_port = tonumber(os.getenv("WEFT_NOTIFY_PORT") or ""),
  })
  if not ok then
    dog:stop()
    return fail(EXIT_USAGE, "worker: " .. tostring(w))
  end
  on_stop_signal(function() w:stop() end)
  w:run()
  dog:stop()
  weft.sleep(0)
  return EXIT_OK
end

-- weft worker: supervise --processes worker processes until SIGTERM/SIGINT.
local function cmd_worker(parsed)
  local opts = parsed.opts
  if #parsed.positional > 0 then return usage_error("worker", "unexpected argument '" .. parsed.positional[1] .. "'") end
  if opts["--watch"] and opts["--scripts"] then return usage_error("worker", "give --scripts or --watch, not both") end
  local url = store_url(opts)
  local weft = require "weft"
  local ok, store = pcall(weft.store.open, url)
  if not ok or not store then return fail(EXIT_USAGE, "worker: store " .. url .. ": " .. tostring(store)) end
  if store.kind == "memory" then
    return usage_error("worker", "--store memory: is private to one process: give a store the API and the workers "
      .. "share (sqlite:PATH or redis://...)")
  end
  if opts["--child"] then return worker_child(opts, url) end
  if opts["--guardrails"] then -- refused here, before starting processes that would refuse it
    local gok, gerr = pcall(require("weft.guardrails").load, opts["--guardrails"])
    if not gok then return fail(EXIT_USAGE, "worker: --guardrails " .. one_line(tostring(gerr), 600)) end
  elseif opts["--audit"] then
    return usage_error("worker", "--audit goes with --guardrails FILE")
  end
  local argv = { exe_path, "worker", "--child", "--store", url }
  for _, k in ipairs({ "--scripts", "--watch", "--concurrency", "--queue", "--block-limit", "--guardrails" }) do
    if opts[k] ~= nil then argv[#argv + 1] = k; argv[#argv + 1] = tostring(opts[k]) end
  end
  if opts["--audit"] then argv[#argv + 1] = "--audit" end
  local me = require("weft.store").owner()
  local sup = require("weft.worker").supervise{
    processes = opts["--processes"] or 1, argv = argv, store = store,
    name = opts["--name"] or (me.host .. ":" .. me.pid),
  }
  local stop = weft.cond()
  on_stop_signal(function() stop:signal() end)
  stop:wait()
  say(stderr, "weft worker: stopping the worker processes")
  sup:stop()
  return EXIT_OK
end

local HANDLERS = { run = cmd_run, runs = cmd_runs, serve = cmd_serve, worker = cmd_worker, check = cmd_check, graph = cmd_graph }

-- Commands traced when the OTEL_* variables ask for it (docs/interop.md).
local TRACED = { run = true, serve = true, worker = true }

-- Before the command returns status: export the spans weft.otel holds
-- (when a script or TRACED loaded it); a failed export is reported on
-- stderr and never changes the status.
local function flush_traces(status)
  local otel = package.loaded["weft.otel"]
  if otel then
    local ok, err = otel.shutdown()
    if not ok then say(stderr, "weft: traces: spans not exported: ", tostring(err)) end
  end
  return status
end

--- Entry point: args = the command line without the program name; info =
-- {exe, root, version} from main.c. Returns the exit status.
function _M.main(args, info)
  args = args or {}
  exe_path = info and info.exe or exe_path
  local cmd = args[1]
  if cmd == nil then
    say(stderr, "usage: weft COMMAND [ARGS...]   (commands: ", concat(ORDER, ", "), ")")
    say(stderr, "Run 'weft --help' for details.")
    return EXIT_USAGE
  end
  if cmd == "-h" or cmd == "--help" then
    stdout:write(_M.help_text())
    return EXIT_OK
  end
  if cmd == "--version" or cmd == "-v" or cmd == "version" then
    if cmd == "version" and args[2] ~= nil then
      if args[2] == "-h" or args[2] == "--help" then
        stdout:write(_M.help_text("version"))
        return EXIT_OK
      end
      return usage_error("version", "unexpected argument '" .. args[2] .. "'")
    end
    return cmd_version(info)
  end
  if cmd == "help" then
    local topic = args[2]
    if topic == nil then
      stdout:write(_M.help_text())
      return EXIT_OK
    end
    local text = _M.help_text(topic)
    if not text then return usage_error(nil, "unknown command '" .. topic .. "'") end
    stdout:write(text)
    return EXIT_OK
  end
  if cmd == "exec" then return flush_traces(cmd_exec(args, info)) end

  local handler_fn = HANDLERS[cmd]
  if not handler_fn then
    if cmd:sub(1, 1) == "-" then return usage_error(nil, "unknown option '" .. cmd .. "'") end
    return usage_error(nil, "unknown command '" .. cmd .. "'")
  end
  local parsed, err = _M.parse(cmd, args, 2)
  if not parsed then return usage_error(cmd, err) end
  if parsed.help then
    stdout:write(_M.help_text(cmd))
    return EXIT_OK
  end
  if TRACED[cmd] then
    local on, terr = require("weft.otel").setup_from_env()
    if on == nil then say(stderr, "weft: traces off: ", tostring(terr)) end
  end
  return flush_traces(handler_fn(parsed))
end

return _M
