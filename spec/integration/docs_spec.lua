-- spec/integration/docs_spec.lua — the documentation runs as written.
--
-- Every fenced ```lua, ```sh, ```bash and ```shell block of README.md and
-- docs/*.md is one test, named by the file and line of its opening fence;
-- a failure shows the block's exit status, stdout and stderr. Blocks of
-- other languages (c, sql, none) are not run.
--
-- Conventions (also in docs/internals.md, "Documentation blocks"):
--   * A block that is not meant to run is a synopsis: the word "synopsis"
--     in its info string (```lua synopsis) or on the nearest non-blank line
--     above the fence. It is not run (a Lua synopsis is not even parsed).
--   * The blocks of one document run in order in one fresh temp dir, which
--     looks like a checkout: `lua`, `stdlib`, `examples`, `spec` link to the
--     sources and `build` to this build tree (so `build/weft`,
--     `build/lib/?.so` and `examples/hello.lua` work), and the build's
--     `weft` is first on PATH. Files a block writes stay for the next
--     blocks of the same document (a block defining flow.lua, the next one
--     running `weft run flow.lua`).
--   * A Lua block whose first line is `-- NAME.lua: COMMAND` is saved as
--     NAME.lua and COMMAND is run by bash; with `-- NAME.lua` alone it is
--     only saved (and parsed) for later blocks. Any other Lua block runs
--     with `weft exec`.
--   * Shell blocks run with `bash -e`.
--   * A `print(...)` line of a Lua block ending in `--> TEXT` shows what it
--     prints: stdout must have a line equal to TEXT (runs of blanks count
--     as one space), in the order of the block.
--   * The tag `serve` in the info string (```sh serve): the block talks to
--     a `weft serve` on 127.0.0.1:8080; the runner starts one (store
--     memory:) on a free loopback port in the document's dir and runs the
--     block with that port in place of 8080.
--   * Offline: the API-key variables (OPENAI_API_KEY, ...) and WEFT_MODEL
--     are removed from the environment, so models default to the mock.
--     Each block has a timeout of BLOCK_TIMEOUT seconds.
--   * In a sanitized build a block that starts a plain `luajit` is pending
--     (a plain luajit cannot load an ASan core.so; see spec/tests.cmake).
local procs = require "support.procs"
local files = require "support.files"
local h = require "helpers"

local fmt = string.format
local q = procs.quote

local BLOCK_TIMEOUT = 30
local RUN_LANGS = { lua = true, sh = true, bash = true, shell = true }
local OFFLINE_UNSET = { "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY",
  "ANTHROPIC_BASE_URL", "GEMINI_API_KEY", "GEMINI_BASE_URL", "OLLAMA_HOST", "WEFT_MODEL" }

local src = h.root ~= "" and h.root or "./"
local bin = procs.weft_bin()
local build_dir = os.getenv("WEFT_BUILD_DIR")
local sanitized = os.getenv("WEFT_SANITIZE") == "1"

--- The documents: README.md, then docs/*.md in name order.
local function documents()
  local list = { "README.md" }
  local p = assert(io.popen("ls " .. q(src .. "docs")))
  for name in p:lines() do
    if name:match("%.md$") then list[#list + 1] = "docs/" .. name end
  end
  p:close()
  return list
end

--- The fenced blocks of a markdown text: {line, lang, tags, synopsis, code}.
local function blocks_of(text)
  local out, lines = {}, {}
  for l in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
  local i = 1
  while i <= #lines do
    local indent, fence, info = lines[i]:match("^(%s*)(```+)%s*(.-)%s*$")
    if fence then
      local b = { line = i, tags = {}, body = {} }
      local words = {}
      for w in info:gmatch("%S+") do words[#words + 1] = w end
      b.lang = words[1] or ""
      for k = 2, #words do b.tags[words[k]] = true end
      local above = i - 1
      while above >= 1 and lines[above]:match("^%s*$") do above = above - 1 end
      b.synopsis = b.tags.synopsis == true
        or (above >= 1 and lines[above]:lower():find("synopsis", 1, true) ~= nil)
      i = i + 1
      while i <= #lines and not lines[i]:match("^%s*" .. fence .. "%s*$") do
        local l = lines[i]
        if l:sub(1, #indent) == indent then l = l:sub(#indent + 1) end
        b.body[#b.body + 1] = l
        i = i + 1
      end
      b.code = table.concat(b.body, "\n") .. "\n"
      out[#out + 1] = b
    end
    i = i + 1
  end
  return out
end

--- A fresh dir that looks like a checkout (links to the sources and build).
local function make_dir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. q(dir .. "/.bin")) == 0)
  local abs_src = src:sub(1, 1) == "/" and src or (os.getenv("PWD") .. "/" .. src)
  for _, d in ipairs({ "lua", "stdlib", "examples", "spec" }) do
    assert(os.execute(fmt("ln -s %s %s", q(abs_src .. d), q(dir .. "/" .. d))) == 0)
  end
  if build_dir then
    assert(os.execute(fmt("ln -s %s %s", q(build_dir), q(dir .. "/build"))) == 0)
  end
  assert(os.execute(fmt("ln -s %s %s", q(bin), q(dir .. "/.bin/weft"))) == 0)
  return dir
end

local write = files.write

--- Run argv (a list) in dir, offline, with the build's weft first on PATH
-- and a timeout; returns status, stdout, stderr.
local function run_in(dir, argv)
  local cmd = { "env" }
  for _, v in ipairs(OFFLINE_UNSET) do cmd[#cmd + 1] = "-u"; cmd[#cmd + 1] = v end
  cmd[#cmd + 1] = "PATH=" .. dir .. "/.bin:" .. (os.getenv("PATH") or "/usr/bin:/bin")
  for _, a in ipairs({ "sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", dir,
                       "timeout", "-k", "5", tostring(BLOCK_TIMEOUT) }) do
    cmd[#cmd + 1] = a
  end
  for _, a in ipairs(argv) do cmd[#cmd + 1] = a end
  return procs.run(cmd, nil, BLOCK_TIMEOUT + 10)
end

-- Start `weft serve` on a free port in dir; returns the process and port.
local function start_server(dir)
  local port = procs.free_port()
  local p = procs.spawn({ "sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", dir,
                          bin, "serve", "--port", tostring(port), "--store", "memory:" })
  for _ = 1, 1000 do
    local ok, c = pcall(require("weft.tcp").connect, "127.0.0.1", port, 0.05)
    if ok and c then c:close(); return p, port end
    require("weft").sleep(0.005)
  end
  procs.kill(p)
  error("weft serve did not listen on port " .. port)
end

--- The command a block runs ({argv}), after writing its files into dir.
local function command_of(dir, doc, b)
  local name = fmt("block_%s_%d", doc:gsub("[^%w]", "_"), b.line)
  if b.lang == "lua" then
    local first = b.body[1] or ""
    local file, command = first:match("^%-%-%s*([%w_%.%-]+%.lua):%s*(.-)%s*$")
    if not file then file = first:match("^%-%-%s*([%w_%.%-]+%.lua)%s*$") end
    local chunk, err = loadstring(b.code, "@" .. doc .. ":" .. b.line)
    if not chunk then error(fmt("%s:%d: the Lua block does not parse: %s", doc, b.line, err), 0) end
    if file then
      write(dir .. "/" .. file, b.code)
      if not command or command == "" then return nil end
      return { "bash", "-e", "-c", command }, command
    end
    write(dir .. "/" .. name .. ".lua", b.code)
    return { "weft", "exec", name .. ".lua" }, b.code
  end
  write(dir .. "/" .. name .. ".sh", b.code)
  return { "bash", "-e", name .. ".sh" }, b.code
end

-- Runs of blanks as one space, no blanks at the ends.
local function squash(s)
  return (s:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", ""))
end

--- nil if stdout shows every `print(...) --> TEXT` of a Lua block in
-- order, else a message naming the first one missing.
local function missing_output(b, out)
  local lines = {}
  for l in out:gmatch("[^\n]+") do lines[#lines + 1] = squash(l) end
  local at = 1
  for n, l in ipairs(b.body) do
    local want = l:find("print(", 1, true) and l:match("%-%->%s*(.-)%s*$")
    if want then
      want = squash(want)
      while at <= #lines and lines[at] ~= want do at = at + 1 end
      if at > #lines then
        return fmt("line %d of the block shows '%s', not printed (in that order)", n, want)
      end
      at = at + 1
    end
  end
end

describe("the docs runner", function()
  it("reads info strings, synopsis marks and indented fences", function()
    local bs = blocks_of(table.concat({
      "```lua", "print(1)", "```",
      "Synopsis:", "", "```sh", "weft runs list | show RUN", "```",
      "```lua synopsis", "f(...)", "```",
      "- item:", "  ```sh serve", "  curl -s x", "  ```",
      "````c", "```", "````",
    }, "\n"))
    assert.equal(5, #bs)
    assert.same({ 1, "lua", false, "print(1)\n" }, { bs[1].line, bs[1].lang, bs[1].synopsis, bs[1].code })
    assert.same({ "sh", true }, { bs[2].lang, bs[2].synopsis })
    assert.same({ "lua", true }, { bs[3].lang, bs[3].synopsis })
    assert.same({ "sh", true, "curl -s x\n" }, { bs[4].lang, bs[4].tags.serve, bs[4].code })
    assert.same({ "c", "```\n" }, { bs[5].lang, bs[5].code })
  end)

  it("finds runnable blocks in README.md", function()
    local n = 0
    for _, b in ipairs(blocks_of(files.read(src .. "README.md"))) do
      if RUN_LANGS[b.lang] and not b.synopsis then n = n + 1 end
    end
    assert.is_true(n >= 3, "runnable blocks in README.md: " .. n)
  end)
end)

for _, doc in ipairs(documents()) do
  local text = files.read(src .. doc)
  describe(doc, function()
    local dir
    setup(function() dir = make_dir() end)
    teardown(function() if dir then files.remove(dir) end end)

    for _, b in ipairs(blocks_of(text)) do
      if RUN_LANGS[b.lang] and not b.synopsis then
        it(fmt("%s:%d (%s) runs as written", doc, b.line, b.lang), function()
          local block = b
          local server, port
          if b.tags.serve then
            server, port = start_server(dir)
            block = setmetatable({ code = b.code:gsub("127%.0%.0%.1:8080", "127.0.0.1:" .. port) },
                                 { __index = b })
            finally(function()
              os.execute("kill -TERM " .. server.pid)
              procs.wait(server, 20)
            end)
          end
          local argv, shown = command_of(dir, doc, block)
          if not argv then return end
          if sanitized and shown:find("%f[%w]luajit%f[%s]") then
            return pending("a plain luajit cannot load the sanitized core.so")
          end
          local rc, out, err = run_in(dir, argv)
          if rc ~= 0 then
            error(fmt("%s:%d: the %s block failed (exit %d%s)\n--- stdout:\n%s--- stderr:\n%s",
              doc, b.line, b.lang, rc, rc == 124 and ", timed out" or "", out, err), 0)
          end
          local miss = b.lang == "lua" and missing_output(b, out)
          if miss then
            error(fmt("%s:%d: %s\n--- stdout:\n%s--- stderr:\n%s", doc, b.line, miss, out, err), 0)
          end
        end)
      end
    end
  end)
end
