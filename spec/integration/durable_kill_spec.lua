-- A checkpoint that returned survives the process being SIGKILLed (the
-- promise of docs/durability.md "What survives what"): a child `weft exec`
-- runs a durable loop on a SQLite store and kills itself with SIGKILL from
-- inside superstep K, once the checkpoints of supersteps 0..K-1 returned and
-- before anything closed the store; the parent then finds every one of
-- them in the file (read back from the WAL) and resumes the run to the
-- uninterrupted result. No timing: the child kills itself at a known point.
local weft = require "weft"
local json = weft.json
local durable = require "weft.durable"
local files = require "support.files"
local procs = require "support.procs"

local scratch = files.scratch()
after_each(scratch.clean)

-- The loop a -> b -> a ... of `steps` supersteps (input i in superstep
-- i - 1, state n = i); with kill_at, superstep kill_at - 1 SIGKILLs the
-- process after its state write, before it sends. Shared by child and
-- parent (the same definition hash).
local LOOP = [[
local weft = require "weft"
local steps, kill_at = ...
local function step(id)
  return weft.executor(id, function(i, ctx)
    ctx:set_state("n", i)
    if i == kill_at then
      local f = assert(io.open("/proc/self/stat"))
      local pid = f:read("*l"):match("^(%d+)")
      f:close()
      os.execute("kill -9 " .. pid)
      error("still alive after kill -9", 0)
    end
    if i < steps then ctx:send(i + 1) else ctx:yield_output(i) end
  end)
end
local a, b = step("a"), step("b")
return weft.workflow("killed_loop"):start(a):edge(a, b):edge(b, a)
  :defaults{ max_supersteps = steps + 10 }:build()
]]

describe("a durable run killed with SIGKILL", function()
  it("keeps every checkpoint that returned before the kill, and resumes to the full result", function()
    local dir = scratch.dir()
    local url = "sqlite:" .. dir .. "/weft.db"
    local loop_file = dir .. "/loop.lua"
    files.write(loop_file, LOOP)
    local child = dir .. "/child.lua"
    files.write(child, ([[
local wf = assert(loadfile(%q))(60, 40)
wf:run(1, { store = %q, run_id = "killed" })
print("not killed")
]]):format(loop_file, url))
    -- a short lease: the resume below waits for the killed owner's to expire
    local rc, out = procs.run({ procs.weft_bin(), "exec", child }, { WEFT_LEASE_TTL = "0.5" }, 60)
    assert.equal(137, rc) -- 128 + SIGKILL
    assert.is_nil(out:find("not killed", 1, true))

    local store = assert(weft.store.open(url))
    local rec = assert(durable.record(store, "killed"))
    assert.equal("running", rec.status) -- nothing ran after the kill
    -- supersteps 0..38 ran and were checkpointed; 39 (input 40) died
    local rows = assert(store:range("ckpt", "killed"))
    assert.equal(39, #rows)
    for i, row in ipairs(rows) do
      assert.equal(i, row.seq)
      local entry = json.decode(row.value)
      assert.equal(i, entry.supersteps)
      assert.same({ { "n", i } }, entry.writes)
    end

    local wf = assert(loadfile(loop_file))(60, nil)
    local res = wf:resume("killed", { store = store, lease = { wait = true } }):wait()
    assert.equal("completed", res.status, res.error)
    assert.same({ 60 }, res.outputs)
    assert.equal(60, #assert(store:range("ckpt", "killed")))
    store:close()
  end)
end)
