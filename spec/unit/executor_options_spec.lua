-- weft.executor(id, fn, opts) (the form the guard docs use), and the
-- policies a workflow gives every run through :defaults{} (guardrails,
-- network, budget: the run options of docs/guardrails.md).
local weft = require "weft"
local llm = require "weft.llm"
local h = require "helpers"

describe("weft.executor(id, fn, opts)", function()
  it("takes the options after the handler, guards included", function()
    local ex = weft.executor("a", function(m, ctx) ctx:yield_output(m) end,
      { guards = { weft.guard.fn("no_secret", function(v)
          if type(v) == "string" and v:find("secret", 1, true) then return { action = "block", reason = "a secret" } end
        end) }, retry = { max_attempts = 2 } })
    assert.equal(2, ex.retry.max_attempts)
    local wf = weft.workflow("w"):start(ex):build()
    assert.same({ "fine" }, wf:run("fine").outputs)
    local r = wf:run("my secret")
    assert.equal("failed", r.status)
    assert.mentions("guardrail no_secret blocked input", r.error)
  end)

  it("refuses what it cannot take, naming the executor", function()
    local fn = function() end
    assert.mentions("executor 'a': the handler is given twice",
      h.error_of(weft.executor, "a", fn, { handle = fn }))
    assert.mentions("executor 'a': a third argument comes after a handler function",
      h.error_of(weft.executor, "a", { handle = fn }, {}))
    assert.mentions("executor 'a': unknown option 'gards'", h.error_of(weft.executor, "a", fn, { gards = {} }))
  end)
end)

describe("workflow defaults", function()
  local MSG = { { role = "user", content = "one two three four five" } }
  local function calls(n)
    return weft.workflow("calls"):start(weft.executor("a", function(_, ctx)
      for _ = 1, n do
        local r, err = llm.chat { model = "mock:echo", messages = MSG }
        if not r then error(err, 0) end
      end
      ctx:yield_output("done")
    end))
  end

  it("give every run a budget, which run options replace", function()
    local wf = calls(5):defaults{ budget = { tokens = 25 } }:build()
    local r = wf:run("x")
    assert.equal("failed", r.status)
    assert.mentions("run exceeded its budget: tokens (25)", r.error)
    assert.equal("completed", wf:run("x", { budget = { tokens = 1000 } }).status)
  end)

  it("give every run a network policy", function()
    local wf = weft.workflow("net"):start(weft.executor("a", function(_, ctx)
      local _, err, code = weft.http.request { url = "http://127.0.0.1:9/" }
      ctx:yield_output({ err = err, code = code })
    end)):defaults{ network = { allow_hosts = { "example.com" } } }:build()
    local out = wf:run("x").outputs[1]
    assert.equal("policy", out.code)
  end)

  it("check the policies as run options are checked", function()
    assert.mentions("defaults: budget.tokens must be", h.error_of(function()
      calls(1):defaults{ budget = { tokens = "many" } }
    end))
  end)
end)
