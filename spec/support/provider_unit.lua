-- spec/support/provider_unit.lua — the plumbing the per-provider unit
-- specs (spec/unit/llm_<provider>_spec.lua) share: a normalised request
-- as weft.llm.chat builds it, a stream assembler fed from canned wire
-- events, and the check of a finished text stream.
local stream = require "weft.llm.stream"
local common = require "weft.llm.common"
local json = require "weft.json"
local luassert = require "luassert"

local M = {}

-- A function building a normalised request from `over` (common.request) on over.model or `model`.
function M.caller(model)
  return function(over)
    over = over or {}
    return common.request(over, over.model or model)
  end
end

-- A table is sent as its JSON text, a string as it is.
function M.encoded(x)
  return type(x) == "table" and json.encode(x) or x
end

-- A function feeding a list of items to a fresh assembler of provider P
-- (or of the provider given as its second argument): event_of(item) is
-- what stream_event reads. Returns the assembler and the chunks it
-- published, or nil, err, code at the first error.
function M.feeder(P, event_of)
  return function(items, prov)
    prov = prov or P
    local chunks = {}
    local asm = stream.new(prov.name, function(c) chunks[#chunks + 1] = c end)
    for _, item in ipairs(items) do
      local err, code = prov.stream_event(asm, event_of(item))
      if err then return nil, err, code end
    end
    return asm, chunks
  end
end

-- Asserts a terminated text stream: one chunk per text, the joined text,
-- the usage and (when given) the finish reason of its result.
function M.assert_text_stream(asm, chunks, texts, usage, finish)
  luassert.is_true(asm.terminated)
  local want = {}
  for i, t in ipairs(texts) do want[i] = { text = t } end
  luassert.same(want, chunks)
  local r = luassert(asm:result())
  luassert.equal(table.concat(texts), r.text)
  if finish then luassert.equal(finish, r.finish_reason) end
  luassert.same(usage, r.usage)
  return r
end

return M
