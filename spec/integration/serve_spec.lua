-- weft serve as a process: the REST app on weft.server, over loopback,
-- stopped by SIGTERM.
local weft = require "weft"
local procs = require "support.procs"
local json = weft.json

local bin = procs.weft_bin()

-- Wait until something accepts on port.
local function wait_port(port)
  for _ = 1, 1000 do
    local ok, c = pcall(weft.tcp.connect, "127.0.0.1", port, 0.05)
    if ok and c then c:close(); return true end
    weft.sleep(0.005)
  end
  error("nothing listens on port " .. port)
end

describe("weft serve", function()
  it("serves the API until SIGTERM, then drains and exits 0", function()
    local port = procs.free_port()
    local p = procs.spawn({ bin, "serve", "--port", tostring(port), "--store", "memory:" })
    wait_port(port)
    local base = ("http://127.0.0.1:%d/api/v1"):format(port)
    local res = assert(weft.http.request{ url = base .. "/health" })
    assert.equal(200, res.status)
    assert.equal("ok", json.decode(res.body).status)
    res = assert(weft.http.request{ method = "POST", url = base .. "/workflows",
      headers = { ["content-type"] = "application/json" },
      body = { id = "w1", name = "w1", nodes = { { id = "o", builtin = "passthrough" } }, start = "o" } })
    assert.equal(201, res.status)
    res = assert(weft.http.request{ method = "POST", url = base .. "/workflows/w1/execute",
      headers = { ["content-type"] = "application/json" }, body = { input = "hi" } })
    assert.equal(200, res.status)
    assert.same({ "hi" }, json.decode(res.body).outputs)
    res = assert(weft.http.request{ url = base .. "/nope" })
    assert.equal(404, res.status)
    assert.equal("not_found", json.decode(res.body).error.code)
    os.execute("kill -TERM " .. p.pid)
    local rc, _, err = procs.wait(p, 20)
    assert.equal(0, rc, err)
    assert.truthy(err:find("listening on 127.0.0.1 only", 1, true))
    assert.truthy(err:find("weft: stopped", 1, true))
  end)

  it("refuses a non-loopback address while API keys are not implemented", function()
    local rc, _, err = procs.run({ bin, "serve", "--host", "0.0.0.0", "--port", "1", "--store", "memory:" })
    assert.equal(2, rc)
    assert.truthy(err:find("refusing to listen on 0.0.0.0", 1, true))
  end)
end)
