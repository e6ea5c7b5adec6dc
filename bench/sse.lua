--- bench/sse.lua — throughput of weft's server-sent-events parser
-- (runtime/io/sse.c), the C code every streamed LLM reply goes through.
--
-- Run: build/weft exec bench/sse.lua [--runs N] [--quick] [--mb M]
--
-- A synthetic event stream of about M MiB (default 64) is built once: mostly
-- OpenAI-style chat chunks (`data: {json}` + blank line), with some
-- Anthropic-style named events (`event:` + `data:`), multi-line data, ids,
-- comments and retry fields, in LF and in CRLF flavours. Each figure feeds
-- the whole stream through the parser in pieces of a fixed size
-- (`weft.core.http.sse_bench(stream, chunk)`, which counts events and data
-- bytes in C, no Lua per event), and prints MiB of stream per second: the
-- median of N runs (default 7, minimum 5) after one warm-up, with min and
-- max. Every run checks the event count and data bytes against what the
-- generator produced; a mismatch raises. Timings are never asserted.
-- Uses weft.core.http, weft.clock and bench/bench_lib.lua (machine header).
local weft = require "weft"
package.path = (arg and arg[0] and arg[0]:match("^(.*/)") or "bench/") .. "?.lua;" .. package.path
local blib = require "bench_lib"
local chttp = require "weft.core.http"

local fmt, rep, concat = string.format, string.rep, table.concat

local opts = { runs = 7, mb = 64 }
do
  local a = { ... }
  if #a == 0 and type(rawget(_G, "arg")) == "table" then
    for k = 1, #_G.arg do a[k] = _G.arg[k] end
  end
  blib.parse_flags("bench/sse.lua", a, opts, { ["--runs"] = "runs", ["--mb"] = "mb" },
    function(o) o.runs = 5 end)
  if not opts.runs or opts.runs < 5 then opts.runs = 5 end
  if not opts.mb or opts.mb <= 0 then error("--mb: expected a positive number", 0) end
end

--- The synthetic stream with line end nl, about `bytes` long; returns it,
-- the number of events and the total data bytes the parser must report.
local function make_stream(bytes, nl)
  local parts, n, events, data = {}, 0, 0, 0
  local size = 0
  local words = { "Hello", " world", ",", " the", " quick", " brown", " fox", " jumps",
                  " over", " a", " lazy", " dog", ".", " Lorem", " ipsum", "\\n" }
  local i = 0
  local function add(s)
    n = n + 1
    parts[n] = s
    size = size + #s
  end
  while size < bytes do
    i = i + 1
    local r = i % 50
    if r == 0 then -- Anthropic-style named event with an id
      local d = fmt('{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"%s"}}',
        words[i % #words + 1])
      add("event: content_block_delta" .. nl .. "id: " .. i .. nl .. "data: " .. d .. nl .. nl)
      events, data = events + 1, data + #d
    elseif r == 1 then -- a comment, a retry field and a two-line event
      add(": keep-alive" .. nl .. "retry: 3000" .. nl .. "data: line one" .. nl .. "data: line two" .. nl .. nl)
      events, data = events + 1, data + #"line one\nline two"
    else -- OpenAI-style chat chunk
      local d = fmt('{"id":"chatcmpl-9abc","object":"chat.completion.chunk","created":1700000000,'
        .. '"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"%s"},'
        .. '"finish_reason":null}]}', words[i % #words + 1])
      add("data: " .. d .. nl .. nl)
      events, data = events + 1, data + #d
    end
  end
  return concat(parts), events, data
end

--- Parse s in pieces of chunk bytes `runs` times (after one warm-up);
-- returns the stats of MiB/s.
local function measure(s, chunk, events, data, runs)
  local rates = {}
  for k = 0, runs do
    collectgarbage("collect")
    local t0 = weft.clock()
    local ev, db = chttp.sse_bench(s, chunk)
    local dt = weft.clock() - t0
    if ev ~= events or db ~= data then
      error(fmt("parser reported %d events / %d data bytes, expected %d / %d (chunk %d)",
        ev, db, events, data, chunk), 0)
    end
    if k > 0 then rates[k] = #s / (1024 * 1024) / dt end
  end
  return blib.stats(rates)
end

local m = blib.machine()
print("weft SSE parser throughput (bench/sse.lua)")
print(fmt("machine: %s, %s cores, Linux %s, %s", m.cpu, m.cores, m.kernel, m.lua))
print(fmt("date: %s; load average %s; clock weft.clock(); %d runs per figure (median [min..max])",
  m.date, blib.loadavg(), opts.runs))

local bytes = math.floor(opts.mb * 1024 * 1024)
for _, flavour in ipairs { { "LF", "\n" }, { "CRLF", "\r\n" } } do
  local s, events, data = make_stream(bytes, flavour[2])
  print(fmt("stream %s: %.1f MiB, %d events (avg %.0f bytes/event)", flavour[1],
    #s / 1048576, events, #s / events))
  for _, chunk in ipairs { 65536, 16384, 1460, 64 } do
    local st = measure(s, chunk, events, data, opts.runs)
    print(fmt("  %-4s chunks of %5d B: %8.1f MiB/s  [%.1f..%.1f]  (%.1f M events/s)",
      flavour[1], chunk, st.median, st.min, st.max, st.median * 1048576 / (#s / events) / 1e6))
  end
end
