--- examples/branching.lua — routing, parallel branches, a loop and shared
-- state, on a small text-analysis task.
--
--   weft run examples/branching.lua --input "The quick brown fox jumps over the lazy dog"
--
-- The workflow cleans up a sentence, measures it with three analysers that
-- run in parallel, drops words until at most four are left (a loop), then
-- renders the short sentence in up to three styles:
--
--            switch                 fan_out             fan_in
--   intake ──┬─ empty ──> reject
--            ├─ one_word ─────────────────────────────────────────┐
--            └─ default ─> analyse ─┬─> count_words ──┐           │
--                            ^      ├─> count_letters ┼─> report  │
--                            │      └─> count_vowels ─┘     │     │
--                            │                              │     │
--                            └─── shorten <── too_long ─────┤     │
--                                                           │     v
--                                       short_enough ───────┴─> render
--                                                                 │ fan_out + select
--                                                  upper / title / reverse
--
-- Every step is deterministic: the same input gives the same outputs, the
-- same state and the same events, however the parallel branches interleave.
local weft = require "weft"

local MAX_WORDS = 4

-- Plain Lua helpers (no weft involved).
local function words_of(text)
  local list = {}
  for w in text:gmatch("%a+") do list[#list + 1] = w end
  return list
end

local function count(text, pattern)
  local n = 0
  for _ in text:gmatch(pattern) do n = n + 1 end
  return n
end

-- intake: the start executor; it receives the run's input. Messages are
-- JSON-like values: here a table { text, words, round }.
local intake = weft.executor("intake", function(input, ctx)
  local text = table.concat(words_of(tostring(input or ""):lower()), " ")
  ctx:send({ text = text, words = #words_of(text), round = 1 })
end)

-- reject: reached only through the switch's "empty" case.
local reject = weft.executor("reject", function(_, ctx)
  ctx:yield_output("nothing to analyse")
end)

-- analyse: forwards the message; its fan-out edge copies it to all three
-- analysers, which run concurrently in the next superstep.
local analyse = weft.executor("analyse", function(msg, ctx)
  ctx:send(msg)
end)

-- An analyser counts something and sends { name, count, text, round }.
-- weft.sleep yields the coroutine: the three analysers overlap in time, and
-- the shortest sleep finishes first. The events and the fan-in list are
-- still in a fixed order (invocation order / source order).
local function analyser(id, seconds, measure)
  return weft.executor(id, function(msg, ctx)
    weft.sleep(seconds)
    ctx:send({ name = id, count = measure(msg.text), text = msg.text, round = msg.round })
  end)
end

local count_words = analyser("count_words", 0.003, function(t) return #words_of(t) end)
local count_letters = analyser("count_letters", 0.002, function(t) return count(t, "%a") end)
local count_vowels = analyser("count_vowels", 0.001, function(t) return count(t, "[aeiou]") end)

-- report: the fan-in target. It runs once all three analysers have sent,
-- and receives their messages as one list in source order (words, letters,
-- vowels) — not in the order they finished.
local report = weft.executor("report", function(results, ctx)
  local w, l, v = results[1], results[2], results[3]
  local line = string.format("round %d: %d words, %d letters, %d vowels",
                             w.round, w.count, l.count, v.count)
  -- Shared state: both keys declare reducers (see :state below), so the
  -- writes accumulate instead of overwriting each other.
  ctx:set_state("history", line)
  ctx:set_state("rounds", 1)
  ctx:log("info", line)
  -- The two conditional edges out of report decide where this goes.
  ctx:send({ text = w.text, words = w.count, round = w.round })
end)

-- shorten: drops the last word and loops back to analyse.
local shorten = weft.executor("shorten", function(msg, ctx)
  local list = words_of(msg.text)
  list[#list] = nil
  ctx:send({ text = table.concat(list, " "), words = #list, round = msg.round + 1 })
end)

-- render: its fan-out edge has a selector that picks the styles.
local render = weft.executor("render", function(msg, ctx)
  ctx:send(msg)
end)

local upper = weft.executor("upper", function(msg, ctx)
  ctx:yield_output(msg.text:upper())
end)

local title = weft.executor("title", function(msg, ctx)
  ctx:yield_output((msg.text:gsub("(%a)(%a*)", function(first, rest)
    return first:upper() .. rest
  end)))
end)

local reverse = weft.executor("reverse", function(msg, ctx)
  local list, out = words_of(msg.text), {}
  for i = #list, 1, -1 do out[#out + 1] = list[i] end
  ctx:yield_output(table.concat(out, " "))
end)

return weft.workflow("branching")
  :start(intake)
  -- switch: the first case whose `when` holds wins; `default` catches the rest.
  :switch(intake, {
    { when = function(m) return m.words == 0 end, to = reject, name = "empty" },
    { when = function(m) return m.words == 1 end, to = render, name = "one_word" },
    { default = analyse },
  })
  -- fan-out: every target gets the message.
  :fan_out(analyse, { count_words, count_letters, count_vowels })
  -- fan-in: one delivery per round, once every source has sent.
  :fan_in({ count_words, count_letters, count_vowels }, report)
  -- the loop: conditional edges with complementary conditions.
  :edge(report, shorten, { when = function(m) return m.words > MAX_WORDS end, name = "too_long" })
  :edge(report, render, { when = function(m) return m.words <= MAX_WORDS end, name = "short_enough" })
  :edge(shorten, analyse)
  -- fan-out with a selector: select(msg, n) returns 1-based target indices.
  -- A single word only gets the upper-case rendering.
  :fan_out(render, { upper, title, reverse }, {
    select = function(m, n)
      if m.words == 1 then return { 1 } end
      local all = {}
      for i = 1, n do all[i] = i end
      return all
    end,
  })
  -- reducers fold the writes of each superstep, in invocation order.
  :state{ history = weft.reduce.append, rounds = weft.reduce.sum }
  :build()
