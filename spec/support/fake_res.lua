--- spec/support/fake_res.lua — a fake weft.server response object for
-- testing request handlers without a server: it records the status, the
-- headers (lower-case names), the body, and for streams every chunk
-- written and whether the stream was closed. `fake_res.new{fail_after = n}`
-- makes the stream's writes fail with nil, "closed" after n chunks (a
-- client that left). `res:decoded()` is the JSON body decoded.
-- `fake_res.request(method, path, {body, query, headers})` builds a req;
-- `fake_res.app(opts)` makes the app to serve it on a memory store.
local json = require "weft.json"

local _M = {}

local Res = {}
Res.__index = Res

--- A new fake response.
function _M.new(opts)
  opts = opts or {}
  return setmetatable({ headers = {}, chunks = {}, sent = 0, fail_after = opts.fail_after }, Res)
end

--- res:status(code)
function Res:status(code) self.status_code = code end

--- res:header(name, value)
function Res:header(name, value) self.headers[name:lower()] = value end

--- res:send(body): the complete response (once).
function Res:send(body)
  assert(self.sent == 0, "fake_res: response sent twice")
  self.sent = self.sent + 1
  self.status_code = self.status_code or 200
  self.body = body or ""
end

--- res:json(code, value)
function Res:json(code, value)
  self.status_code = code
  self.headers["content-type"] = "application/json"
  self:send(json.encode(value))
end

--- res:stream(code, headers) -> writer {write, close}
function Res:stream(code, headers)
  assert(self.sent == 0, "fake_res: stream after a response")
  self.sent = self.sent + 1
  self.status_code = code
  for k, v in pairs(headers or {}) do self.headers[k:lower()] = v end
  local res = self
  return {
    write = function(_, chunk)
      assert(not res.closed, "fake_res: write after close")
      if res.fail_after and #res.chunks >= res.fail_after then return nil, "closed" end
      res.chunks[#res.chunks + 1] = chunk
      return true
    end,
    close = function() res.closed = true end,
  }
end

--- The JSON body decoded (raises when it is not JSON).
function Res:decoded()
  local v, err = json.decode(self.body or "")
  assert(v ~= nil, "fake_res: body is not JSON: " .. tostring(err) .. ": " .. tostring(self.body))
  return v
end

--- Everything written to the stream, concatenated.
function Res:text() return table.concat(self.chunks) end

--- The server-sent events of the stream: list of {id, event, data (decoded)}.
function Res:events()
  local out = {}
  for block in (self:text()):gmatch("(.-)\n\n") do
    local ev = {}
    for line in block:gmatch("[^\n]+") do
      local k, v = line:match("^(%w+): ?(.*)$")
      if k == "data" then ev.data = json.decode(v) elseif k then ev[k] = v end
    end
    out[#out + 1] = ev
  end
  return out
end

--- A request table as weft.server gives it (path is the raw path, as sent:
-- req.raw_path; req.path is it decoded once); a table body is JSON-encoded
-- (content-type application/json unless headers say otherwise).
function _M.request(method, path, opts)
  opts = opts or {}
  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[k:lower()] = v end
  local body = opts.body
  if type(body) == "table" then
    body = json.encode(body)
    headers["content-type"] = headers["content-type"] or "application/json"
  elseif body ~= nil and headers["content-type"] == nil then
    headers["content-type"] = "application/json"
  end
  return { method = method, path = require("weft.server").decode_path(path), raw_path = path,
           query = opts.query or {}, raw_query = "", headers = headers, body = body }
end

--- Serve one request with app in a task of its own (as weft.server does);
-- returns the fake res (opts.res: options of the fake).
function _M.call(app, method, path, opts)
  local res = _M.new(opts and opts.res)
  require("weft").go(function() app:handle(_M.request(method, path, opts), res) end):wait()
  return res
end

--- The decoded `{error = {code, message, details}}` of res after checking
-- its status and shape (details is required unless loose).
function _M.err_of(res, status, loose)
  local assert = require "luassert"
  assert.equal(status, res.status_code, res.body)
  local e = res:decoded().error
  assert.is_table(e)
  assert.is_string(e.code)
  assert.is_string(e.message)
  if not loose then assert.is_not_nil(e.details) end
  return e
end

--- A weft serve app (weft.serve.app.new(opts)) on opts.store, a fresh
-- memory: store when absent; returns app, store.
function _M.app(opts)
  opts = opts or {}
  opts.store = opts.store or assert(require("weft").store.open("memory:"))
  return require("weft.serve.app").new(opts), opts.store
end

return _M
