-- The dashboard's static files as `weft serve` serves them (no browser):
-- public page and assets with a strict Content-Security-Policy, nosniff,
-- content types and ETags; nothing outside web/ can be named (traversal
-- sent byte for byte over a raw socket, so no client normalises it); the
-- API behind it still needs a key. A real `weft serve` process with keys.
local weft = require "weft"
local json = weft.json
local procs = require "support.procs"
local files = require "support.files"

local bin = procs.weft_bin()
local scope = require("support.scope")(after_each)

local ADMIN = "dash-admin-secret-1"

-- Start weft serve with one admin key; returns port.
local function serve()
  local dir = scope.tmpdir()
  files.write(dir .. "/keys.json", json.encode({ { id = "admin", key = ADMIN, scopes = { "admin" } } }))
  local port = procs.free_port()
  local p = procs.spawn({ bin, "serve", "--port", tostring(port), "--store", "memory:", "--keys", dir .. "/keys.json" })
  scope.later(function() procs.kill(p); procs.wait(p, 20) end)
  procs.wait_port(port)
  return port
end

-- Send a raw request (target exactly as given) and read the whole
-- answer: status, headers (lower-case names), body.
local function raw(port, method, target, headers)
  local c = assert(weft.tcp.connect("127.0.0.1", port, 5))
  local lines = { ("%s %s HTTP/1.1"):format(method, target), "Host: 127.0.0.1", "Connection: close" }
  for k, v in pairs(headers or {}) do lines[#lines + 1] = k .. ": " .. v end
  assert(c:send(table.concat(lines, "\r\n") .. "\r\n\r\n"))
  local data, err, partial = c:receive("*a", 10)
  c:close()
  data = data or partial
  assert(data and #data > 0, "no answer: " .. tostring(err))
  local head, body = data:match("^(.-)\r\n\r\n(.*)$")
  local status = tonumber(head:match("^HTTP/1%.%d (%d%d%d)"))
  local hs = {}
  for k, v in head:gmatch("\r\n([^:\r\n]+):%s*([^\r\n]*)") do hs[k:lower()] = v end
  if (hs["transfer-encoding"] or ""):lower() == "chunked" then
    local out, rest = {}, body
    while true do
      local size, after = rest:match("^(%x+)\r\n(.*)$")
      size = tonumber(size, 16)
      if not size or size == 0 then break end
      out[#out + 1] = after:sub(1, size)
      rest = after:sub(size + 3)
    end
    body = table.concat(out)
  end
  return status, hs, body
end

describe("the dashboard's static files", function()
  it("says the dashboard is not installed when its files are missing (404, no server path)", function()
    local fake = require "support.fake_res"
    local app = fake.app{ dashboard_dir = scope.tmpdir() .. "/none" }
    local res = fake.call(app, "GET", "/")
    local e = fake.err_of(res, 404)
    assert.matches("dashboard is not installed", e.message)
    assert.falsy(e.message:find("/tmp", 1, true))
  end)

  it("serves the page publicly with a strict CSP, nosniff, a content type and an ETag", function()
    local port = serve()
    local st, hs, body = raw(port, "GET", "/")
    assert.equal(200, st, body)
    assert.matches("^text/html", hs["content-type"])
    local csp = assert(hs["content-security-policy"], "no CSP header")
    assert.truthy(csp:find("default-src 'self'", 1, true), csp)
    assert.truthy(csp:find("script-src 'self'", 1, true), csp)
    assert.truthy(csp:find("frame-ancestors 'none'", 1, true), csp)
    assert.falsy(csp:find("unsafe-inline", 1, true), csp)
    assert.falsy(csp:find("unsafe-eval", 1, true), csp)
    assert.equal("nosniff", hs["x-content-type-options"])
    assert.truthy(body:find('<script type="module" src="/ui/app.js"></script>', 1, true))
    -- no inline script or style in the page itself
    for tag in body:gmatch("<script[^>]*>") do assert.truthy(tag:find("src=", 1, true), tag) end
    assert.falsy(body:find("style=", 1, true))
    assert.falsy(body:find("<style", 1, true))
    local etag = assert(hs.etag)
    local st2, hs2, body2 = raw(port, "GET", "/", { ["If-None-Match"] = etag })
    assert.equal(304, st2)
    assert.equal("", body2)
    assert.equal(etag, hs2.etag)
  end)

  it("serves each asset with its content type, and HEAD without a body", function()
    local port = serve()
    local want = { ["/ui/app.js"] = "^text/javascript", ["/ui/app.css"] = "^text/css",
                   ["/ui/favicon.svg"] = "^image/svg%+xml", ["/ui/dom.js"] = "^text/javascript" }
    for path, ct in pairs(want) do
      local st, hs, body = raw(port, "GET", path)
      assert.equal(200, st, path)
      assert.matches(ct, hs["content-type"], 1, path)
      assert.equal("nosniff", hs["x-content-type-options"])
      assert.truthy(#body > 0)
    end
    local st, hs, body = raw(port, "HEAD", "/ui/app.js")
    assert.equal(200, st)
    assert.matches("^text/javascript", hs["content-type"])
    assert.equal("", body)
  end)

  it("refuses every path outside the dashboard's files (traversal, other files, other methods)", function()
    local port = serve()
    for _, target in ipairs({
      "/ui/../dashboard.lua", "/ui/%2e%2e/dashboard.lua", "/ui/..%2fdashboard.lua", "/ui/%2E%2E%2Fapp.lua",
      "/ui/..%5cdashboard.lua", "/ui/dashboard.lua", "/ui/.gitignore", "/ui/", "/ui/web/index.html",
      "/ui//etc/passwd", "/ui/%2fetc%2fpasswd", "/ui/app.js%00.html", "/ui/app.js/", "/ui/APP.JS",
    }) do
      local st, _, body = raw(port, "GET", target)
      assert.is_true(st == 404 or st == 400, target .. " -> " .. tostring(st))
      assert.falsy(body:find("local _M", 1, true), target)
      assert.falsy(body:find("root:", 1, true), target)
    end
    local st, hs = raw(port, "POST", "/ui/app.js")
    assert.equal(405, st)
    assert.equal("GET, HEAD", hs.allow)
  end)

  it("leaves the API behind its keys: data needs the key, the page does not", function()
    local port = serve()
    for _, path in ipairs({ "/api/v1/workflows", "/api/v1/executions", "/api/v1/workflows/x/graph",
                            "/api/v1/executions/x/checkpoints", "/metrics" }) do
      local st = raw(port, "GET", path)
      assert.equal(401, st, path)
    end
    local st, _, body = raw(port, "GET", "/api/v1/workflows", { Authorization = "Bearer " .. ADMIN })
    assert.equal(200, st, body)
    st = raw(port, "GET", "/ui/app.js")
    assert.equal(200, st)
  end)
end)
