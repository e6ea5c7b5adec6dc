--- weft.llm.stream — assembles a streamed LLM response from its deltas:
-- text pieces, tool-call fragments (by index, with JSON arguments arriving
-- in pieces, or whole calls), usage and the finish reason. Every delta
-- that carries something is passed on as a normalised chunk ({text = ...}
-- or {tool_call_delta = {index, id, name, arguments}}) to an emit function.
-- The provider decoders (weft.llm.<provider>.stream_event) drive it; the
-- result has the same shape as a non-streamed response.
--
-- Everything here comes from the wire, so it is bounded: a tool-call index
-- must be an integer below common.MAX_TOOL_CALLS (a reply has at most that
-- many calls), and the text and arguments kept are capped at max_bytes
-- (the caller also caps the bytes received); the methods return an error
-- text when a limit is passed, and `too_large` is then set. Uses
-- weft.llm.common and weft.json.
local common = require "weft.llm.common"
local json = require "weft.json"

local setmetatable, type, tostring, concat, sformat, floor =
  setmetatable, type, tostring, table.concat, string.format, math.floor

local _M = {}

local A = {}
A.__index = A

--- The default cap on the text and tool-call arguments kept (bytes).
_M.MAX_BYTES = 16 * 1024 * 1024

--- A new assembler for provider (a name, for errors); emit(chunk) receives
-- each normalised chunk (it may be nil: nothing is passed on); max_bytes
-- caps the text and arguments kept (default MAX_BYTES).
function _M.new(provider, emit, max_bytes)
  return setmetatable({
    provider = provider, emit = emit, max_bytes = max_bytes or _M.MAX_BYTES, bytes = 0,
    too_large = false,
    parts = {}, calls = {}, ncalls = 0,
    usage_in = nil, usage_out = nil, usage_total = nil,
    finish_reason = nil, terminated = false, raw = nil, delivered = false,
  }, A)
end

-- Pass a chunk on.
function A:_out(chunk)
  if self.emit then
    self.delivered = true
    self.emit(chunk)
  end
end

-- Count n more bytes kept; an error text and "too_large" past max_bytes.
function A:_keep(n)
  self.bytes = self.bytes + n
  if self.bytes > self.max_bytes then
    self.too_large = true
    return sformat("%s: streamed reply exceeds max_bytes (%d bytes of text and tool-call arguments)",
                   self.provider, self.max_bytes), "too_large"
  end
end

--- A text delta (empty and nil deltas are ignored); an error text and
-- code when the reply passes max_bytes.
function A:text(delta)
  if type(delta) ~= "string" or delta == "" then return end
  local err, code = self:_keep(#delta)
  if err then return err, code end
  self.parts[#self.parts + 1] = delta
  self:_out({ text = delta })
end

-- The call at index i (1-based), created on first use; nil, err for an
-- index that is not an integer from 1 to MAX_TOOL_CALLS.
function A:_call(i)
  local max = common.MAX_TOOL_CALLS
  if type(i) ~= "number" or i < 1 or i > max or floor(i) ~= i then
    return nil, sformat("%s: tool call index %s out of range (a reply has at most %d tool calls)",
                        self.provider, tostring(i), max)
  end
  local c = self.calls[i]
  if not c then
    c = { args = {} }
    self.calls[i] = c
    if i > self.ncalls then self.ncalls = i end
  end
  return c
end

--- A tool-call fragment: index (1-based) identifies the call; id and name
-- are set once known; args is the next piece of its JSON arguments.
-- Returns an error text and code ("protocol" for a bad index,
-- "too_large" past max_bytes).
function A:tool_delta(index, id, name, args)
  local c, err = self:_call(index)
  if not c then return err, "protocol" end
  id, name, args = common.str(id), common.str(name), common.str(args)
  if args and args ~= "" then
    local kerr, code = self:_keep(#args)
    if kerr then return kerr, code end
  end
  if id == "" then id = nil end
  if name == "" then name = nil end
  if id then c.id = id end
  if name then c.name = name end
  if args and args ~= "" then c.args[#c.args + 1] = args end
  if id or name or (args and args ~= "") then
    self:_out({ tool_call_delta = { index = index, id = id, name = name, arguments = args or "" } })
  end
end

--- A whole tool call (arguments already a table), appended after the calls
-- seen so far; a missing id becomes "call_<index>". Returns an error text
-- and code past MAX_TOOL_CALLS calls ("protocol") or max_bytes
-- ("too_large").
function A:tool_call(id, name, arguments)
  local i = self.ncalls + 1
  local c, err = self:_call(i)
  if not c then return err, "protocol" end
  c.id, c.name = common.str(id), common.str(name)
  if c.id == "" then c.id = nil end
  if type(arguments) ~= "table" then arguments = {} end
  local encoded = common.encode_args(arguments)
  local kerr, code = self:_keep(#encoded)
  if kerr then return kerr, code end
  c.parsed = arguments
  self:_out({ tool_call_delta = { index = i, id = c.id or ("call_" .. i), name = c.name,
                                  arguments = encoded } })
end

--- Record usage counts (nil leaves a count unchanged).
function A:set_usage(input, output, total)
  if type(input) == "number" then self.usage_in = input end
  if type(output) == "number" then self.usage_out = output end
  if type(total) == "number" then self.usage_total = total end
end

--- Record the (normalised) finish reason.
function A:finish(reason)
  if type(reason) == "string" then self.finish_reason = reason end
end

--- Mark that the stream's terminal event arrived.
function A:terminate() self.terminated = true end

--- The assembled response {text, tool_calls, usage, finish_reason}, or
-- nil, err when a tool call's arguments are not valid JSON.
function A:result()
  local calls = json.array()
  for i = 1, self.ncalls do
    local c = self.calls[i]
    if c then
      local args = c.parsed
      if not args then
        local err
        args, err = common.decode_args(self.provider, c.name, concat(c.args))
        if not args then return nil, err end
      end
      calls[#calls + 1] = { id = c.id or ("call_" .. i), name = c.name or "", arguments = args }
    end
  end
  local fr = self.finish_reason
  if #calls > 0 and (fr == nil or fr == "stop") then fr = "tool_calls" end
  return {
    text = concat(self.parts),
    tool_calls = calls,
    usage = common.usage(self.usage_in, self.usage_out, self.usage_total),
    finish_reason = fr or "stop",
  }
end

--- The error for a stream that ended before its terminal event.
function A:truncated(what)
  return sformat("%s: stream ended before %s", self.provider, what)
end

return _M
