-- The dashboard in a real browser: `weft serve` (a real process, a
-- SQLite store so that runs are durable, an admin key) and headless
-- Chromium driven by spec/browser/dashboard.mjs (puppeteer-core from npm,
-- installed by scripts/deps.sh). Each view loads without a console error;
-- a run started over the API appears and its executors light up as its
-- events arrive; answering a request in the inbox continues the run; the
-- playground chats (streamed) and the builder proposes then applies; HTML
-- and JS in executor ids and outputs stay inert text. Screenshots of each
-- view go to $WEFT_BUILD_DIR/dashboard-screens/. #browser
local weft = require "weft"
local json = weft.json
local procs = require "support.procs"
local files = require "support.files"

local bin = procs.weft_bin()
local scope = require("support.scope")(after_each)
local src = os.getenv("WEFT_SOURCE_DIR") or "."
local build = os.getenv("WEFT_BUILD_DIR") or "."

local KEY = "dash-browser-admin-1"

-- Asks a human (the request carries a JSON schema), then books.
local ASK = [[
local weft = require "weft"
local draft = weft.executor("draft", function(m, ctx) ctx:set_state("item", m); ctx:send(m) end)
local approve = weft.executor("approve", function(m, ctx)
  local a = ctx:request_info({ question = "Approve " .. tostring(m) .. "?", schema = {
    type = "object", required = { "by" },
    properties = { by = { type = "string", title = "Approved by" }, approved = { type = "boolean" } } } })
  ctx:set_state("approved_by", a.by)
  ctx:send({ item = m, by = a.by })
end)
local book = weft.executor("book", function(d, ctx) ctx:yield_output("booked " .. d.item .. " by " .. d.by) end)
return weft.workflow("ask"):start(draft):edge(draft, approve):edge(approve, book):build()
]]

-- Executor ids, names, logs and outputs carrying HTML and JS.
local XSS = [[
local weft = require "weft"
local P = '<img src=x onerror="window.__xss=1;alert(1)">'
local bad = weft.executor(P, function(m, ctx)
  ctx:log("info", "<script>window.__xss=2;alert(2)</script>")
  ctx:emit("<b onmouseover=alert(5)>x</b>", { html = P })
  ctx:yield_output(m)
  ctx:send({ html = "<script>window.__xss=3;alert(3)</script>", img = P })
end)
local two = weft.executor("<svg onload=alert(4)>", function(m, ctx) ctx:yield_output(m) end)
return weft.workflow("xss<script>alert(6)</script>"):start(bad):edge(bad, two):build()
]]

-- An agent's streamed reply (live agent_update events).
local TALK = [[
local weft = require "weft"
local a = weft.agent{ name = "writer", model = "mock:echo", instructions = "Write." }
return weft.workflow("talk"):start(weft.executor("writer", function(m, ctx)
  local res = assert(a:stream(m, function() end))
  ctx:yield_output(res.text)
end)):build()
]]

-- the flaky workflow of spec/fixtures/flaky.lua (c fails once)
local FLAKY = assert(files.slurp(os.getenv("WEFT_SOURCE_DIR") .. "/spec/fixtures/flaky.lua"))

-- A workflow a --watch server reloads (the spec breaks it on disk).
local EDIT = [[
local weft = require "weft"
return weft.workflow("edit"):start(weft.executor("e", function(m, ctx) ctx:yield_output(m) end)):build()
]]

-- Start weft serve (flags: the execution mode and where the scripts come
-- from) on a SQLite store with an admin key, run the browser checks
-- against it (env: more variables for dashboard.mjs); returns the
-- screenshots' directory.
local function browse(mode, watch, browser)
  local mods = src .. "/spec/browser/node_modules/puppeteer-core"
  assert(io.open(mods .. "/package.json"), "puppeteer-core is not installed: run scripts/deps.sh (npm ci in spec/browser)")
  local dir = scope.tmpdir()
  os.execute("mkdir -p " .. procs.quote(dir .. "/scripts"))
  files.write(dir .. "/scripts/ask.lua", ASK)
  files.write(dir .. "/scripts/xss.lua", XSS)
  files.write(dir .. "/scripts/edit.lua", EDIT)
  files.write(dir .. "/scripts/talk.lua", TALK)
  files.write(dir .. "/scripts/flaky.lua", FLAKY)
  -- a real example: a switch, a fan-out/fan-in, a loop, a selector
  files.write(dir .. "/scripts/branching.lua", assert(files.slurp(src .. "/examples/branching.lua")))
  files.write(dir .. "/keys.json", json.encode({ { id = "admin", key = KEY, scopes = { "admin" } } }))
  -- the builder's model (mock:builder) proposes one agent
  files.write(dir .. "/mock.json", json.encode({ builder = { { reply = json.encode({
    summary = "an agent that reviews", actions = { { op = "create_agent", id = "reviewer",
      definition = { name = "reviewer", model = "mock:echo", instructions = "Review <b>code</b>." } } } }) } } }))
  local port = procs.free_port()
  local argv = { bin, "serve", "--port", tostring(port), "--store", "sqlite:" .. dir .. "/weft.db",
    watch and "--watch" or "--scripts", dir .. "/scripts", "--keys", dir .. "/keys.json" }
  if mode == "in-process" then argv[#argv + 1] = "--in-process" else argv[#argv + 1] = "--workers"; argv[#argv + 1] = "1" end
  local p = procs.spawn(argv, { WEFT_MOCK_SCRIPT = dir .. "/mock.json" })
  scope.later(function() procs.kill(p); procs.wait(p, 20) end)
  procs.wait_port(port)
  local shots = build .. "/dashboard-screens" .. (mode == "in-process" and "" or "-" .. mode)
    .. (browser and "-" .. browser or "")
  local rc, out, err = procs.run({ "node", src .. "/spec/browser/dashboard.mjs" }, {
    WEFT_URL = ("http://127.0.0.1:%d"):format(port), WEFT_KEY = KEY, SHOTS = shots,
    CHROMIUM = os.getenv("CHROMIUM") or "/usr/bin/chromium", HOME = dir,
    WATCH_DIR = watch and (dir .. "/scripts") or nil,
    -- "resume from here" on a failed run (with workers: a "rewind" queue item)
    RESUME = mode,
    -- BROWSER=firefox (and FIREFOX=path) runs the same checks in Firefox
    BROWSER = browser or os.getenv("BROWSER"), FIREFOX = os.getenv("FIREFOX"),
  }, 300)
  assert.equal(0, rc, out .. "\n" .. err .. "\nserver stderr:\n" .. (procs.slurp(p.err) or ""))
  assert.truthy(out:find("# all checks passed", 1, true), out)
  for _, v in ipairs({ "workflows", "workflow", "executions", "execution", "execution-branching", "timeline", "state",
                       "inbox", "playground", "operations" }) do
    assert(io.open(shots .. "/dashboard-" .. v .. ".png"), "no screenshot of " .. v)
  end
  return shots
end

describe("the dashboard in headless Chromium", function()
  it("shows every view, lights a run live, answers a request and keeps hostile data inert (in process, --watch)", function()
    local shots = browse("in-process", true)
    assert(io.open(shots .. "/dashboard-reload.png"), "no screenshot of the reload error")
  end)

  it("does the same with executions in a worker process (weft serve --workers 1)", function()
    browse("workers", false)
  end)
end)

describe("the dashboard in headless Firefox", function()
  it("passes the same checks (firefox-esr, WebDriver BiDi)", function()
    assert(io.open(os.getenv("FIREFOX") or "/usr/bin/firefox-esr"),
      "no firefox-esr: scripts/deps.sh installs it")
    browse("in-process", false, "firefox")
  end)
end)
