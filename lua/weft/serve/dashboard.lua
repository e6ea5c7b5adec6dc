--- weft.serve.dashboard — the web dashboard of `weft serve`
-- (docs/dashboard.md): serves the page at `/` and its assets at
-- `/ui/<name>` from the files of lua/weft/serve/web/ (found beside this
-- file, so the build tree and an installed tree both work), with a strict
-- Content-Security-Policy, nosniff, ETags and revalidation. The static
-- files are public (the page holds no data); every API call the page makes
-- carries the key the person typed, and the API checks it as before.
-- The data endpoints the views need beyond the REST API are in
-- weft.serve.inspect.
-- Uses weft.sha256, weft.host (find), weft.serve.{errors, inspect}.
local errors = require "weft.serve.errors"

local type, ipairs, tostring = type, ipairs, tostring
local sub = string.sub

local _M = {}

--- The Content-Security-Policy of every dashboard response: only this
-- origin's scripts, styles and connections, no inline script or style, no
-- plugins, no framing, no base or form targets elsewhere.
_M.CSP = table.concat({
  "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
  "connect-src 'self'", "font-src 'self'", "object-src 'none'", "base-uri 'none'",
  "form-action 'self'", "frame-ancestors 'none'",
}, "; ")

--- Content types by file extension (the only files served).
_M.TYPES = {
  html = "text/html; charset=utf-8", js = "text/javascript; charset=utf-8",
  css = "text/css; charset=utf-8", svg = "image/svg+xml", png = "image/png",
  ico = "image/x-icon", json = "application/json",
}

--- The directory of the dashboard's files: web/ beside this module.
function _M.web_dir()
  local src = debug.getinfo(1, "S").source
  local dir = src:sub(1, 1) == "@" and src:sub(2):match("^(.*)/[^/]*$") or "."
  return dir .. "/web"
end

-- The files of dir that may be served: name -> path. A name is one path
-- segment of [A-Za-z0-9_-] and one extension of TYPES: nothing else (no
-- dot files, no sub-directories) can ever be asked for.
local function listing(dir)
  local out = {}
  for _, path in ipairs(require("weft.host").find(dir, "*", 1)) do
    local name = path:match("([^/]+)$")
    local ext = name:match("^[%w_%-]+%.(%w+)$")
    if ext and _M.TYPES[ext] then out[name] = path end
  end
  return out
end

-- Read file path whole: its bytes, or nil, err.
local function slurp(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("*a")
  f:close()
  return s
end

--- Set the security headers of a dashboard response on res.
function _M.headers(res)
  res:header("Content-Security-Policy", _M.CSP)
  res:header("X-Content-Type-Options", "nosniff")
  res:header("Referrer-Policy", "no-referrer")
  res:header("X-Frame-Options", "DENY")
  res:header("Cross-Origin-Opener-Policy", "same-origin")
end

-- The file a request path names (a name of files), or nil when the path
-- is not a dashboard path at all, or false when it is one but names no
-- file. The raw path is used as sent: an escape or a second segment under
-- /ui/ is never a file.
local function wanted(path, files)
  if path == "/" or path == "/index.html" then return files["index.html"] and "index.html" or false end
  if sub(path, 1, 4) ~= "/ui/" then return nil end
  local name = sub(path, 5)
  if files[name] then return name end
  return false
end

--- Install the dashboard on app: a before hook (ahead of the API key
-- check: the static files are public) answering GET and HEAD of `/`,
-- `/index.html` and `/ui/<file>`, and the data routes of
-- weft.serve.inspect. opts.dashboard = false leaves it out;
-- opts.dashboard_dir overrides the files' directory (tests).
function _M.install(app, opts)
  opts = opts or {}
  require("weft.serve.inspect").install(app, opts)
  if opts.dashboard == false then return app end
  local dir = opts.dashboard_dir or _M.web_dir()
  local files = listing(dir)
  local cache = {} -- name -> {body, etag}
  app.dashboard = { dir = dir, files = files }

  local function serve(req, res, name)
    local c = cache[name]
    if not c then
      local body, err = slurp(files[name])
      if not body then errors.throw(404, "not_found", ("dashboard file '%s' is missing: %s"):format(name, errors.scrub(tostring(err)))) end
      c = { body = body, etag = '"' .. require("weft.sha256")(body):sub(1, 32) .. '"' }
      cache[name] = c
    end
    _M.headers(res)
    res:header("Content-Type", _M.TYPES[name:match("%.(%w+)$")])
    res:header("ETag", c.etag)
    -- revalidate every time: an upgraded weft serves its new files at once
    res:header("Cache-Control", "no-cache")
    local inm = req.headers and req.headers["if-none-match"]
    if inm == c.etag then
      res:status(304)
      res:send("")
      return
    end
    res:status(200)
    res:send(req.method == "HEAD" and "" or c.body)
  end

  table.insert(app.before, 1, function(_, req, res)
    local path = req.raw_path or req.path
    if type(path) ~= "string" then return false end
    local name = wanted(path, files)
    if name == nil then return false end
    if req.method ~= "GET" and req.method ~= "HEAD" then
      local e = errors.new(405, "method_not_allowed",
        ("method %s is not allowed on %s (allowed: GET, HEAD)"):format(tostring(req.method), path),
        { allowed = { "GET", "HEAD" } })
      e.headers = { allow = "GET, HEAD" }
      error(e, 0)
    end
    if not name then
      if path == "/" or path == "/index.html" then
        errors.throw(404, "not_found", "the dashboard is not installed with this weft (web/index.html is missing)")
      end
      errors.throw(404, "not_found", ("no dashboard file named '%s'"):format(path:sub(5)))
    end
    serve(req, res, name)
    return true
  end)
  return app
end

return _M
