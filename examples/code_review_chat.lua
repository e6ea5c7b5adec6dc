-- examples/code_review_chat.lua — a code review as a group chat: a coder
-- and a reviewer take turns (round robin) on one conversation until the
-- reviewer says APPROVED, or six turns have passed.
--
--   weft run examples/code_review_chat.lua                       # offline
--   weft run examples/code_review_chat.lua --events pretty
--   weft run examples/code_review_chat.lua -- openai:gpt-4o-mini  # a real model
--
-- Offline, the mock models "review_coder" and "review_reviewer" are
-- scripted: the coder's first version of is_palindrome ignores case and
-- punctuation, the reviewer asks for both (and for argument checking), the
-- second version is approved. Output (weft.patterns.group_chat):
-- {messages, rounds, reason, speakers}; each turn also shows as a
-- "speaker_selected" custom event.
local llm = require "weft.llm"
local agents = require "weft.agents"
local patterns = require "weft.patterns"

local MODEL = ... -- an optional "provider:model" for both agents
local TASK = "Write a Lua function is_palindrome(s) that tells whether a sentence reads "
  .. "the same backwards, with tests."

local V1 = [[
```lua
--- True when s reads the same backwards.
local function is_palindrome(s)
  return s == s:reverse()
end

assert(is_palindrome("level"))
assert(not is_palindrome("lua"))
```
Compares the string with its reverse.]]

local V2 = [[
```lua
--- True when s reads the same backwards, ignoring case, spaces and punctuation.
local function is_palindrome(s)
  if type(s) ~= "string" then
    error("is_palindrome: expects a string, got " .. type(s), 2)
  end
  local letters = s:lower():gsub("[^%w]", "")
  return letters == letters:reverse()
end

assert(is_palindrome("level"))
assert(is_palindrome("Level"))
assert(is_palindrome("A man, a plan, a canal: Panama"))
assert(not is_palindrome("lua"))
assert(not pcall(is_palindrome, 42))
```
Keeps only the lower-cased letters and digits before comparing; rejects non-strings.]]

-- The reviewer's feedback in the conversation so far, or nil.
local function feedback(messages)
  for i = #messages, 1, -1 do
    local m = messages[i]
    if m.name == "reviewer" and type(m.content) == "string" and m.content:find("^REVISE:") then
      return m.content
    end
  end
end

-- The last code the coder posted, or "".
local function last_code(messages)
  for i = #messages, 1, -1 do
    local m = messages[i]
    if m.name == "coder" then return m.content or "" end
  end
  return ""
end

llm.mock.register("review_coder", {
  { reply = function(messages) return feedback(messages) and V2 or V1 end },
})
llm.mock.register("review_reviewer", {
  { reply = function(messages)
      local code = last_code(messages)
      if code:find("s:lower()", 1, true) and code:find("type(s)", 1, true) then
        return "APPROVED Case, punctuation and bad arguments are handled, and the tests cover them."
      end
      return "REVISE: 1. is_palindrome(\"Level\") and is_palindrome(\"A man, a plan, a canal: Panama\") "
        .. "return false: compare the lower-cased letters only. 2. Raise a clear error when s is not "
        .. "a string. 3. Add tests for both."
    end },
})

local coder = agents.coder{ model = MODEL or "mock:review_coder", language = "Lua" }
local reviewer = agents.reviewer{
  model = MODEL or "mock:review_reviewer",
  criteria = {
    "correctness: the code does what the task asks, on every input",
    "edge cases: empty strings, case, punctuation, wrong argument types",
    "tests: each behaviour is tested",
    "readability: clear names and a doc comment",
  },
}

local sel, term = patterns.selectors, patterns.terminations
local wf = patterns.group_chat{
  name = "code_review_chat",
  agents = { coder, reviewer },
  selector = sel.round_robin(),
  termination = term.any{ term.keyword("APPROVED"), term.max_rounds(6) },
  max_iterations = 8,
}

-- `weft run` without --input gives "": use the sample task then.
return wf:set_defaults{ input = TASK }
