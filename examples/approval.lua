-- examples/approval.lua — a human approves an expense before it is booked.
-- The "approve" executor asks with ctx:request_info; the run pauses (exit
-- status 3) until someone answers, possibly from another process:
--
--   weft run examples/approval.lua --store default \
--       --input-json '{"item": "laptop", "amount": 1200}'
--   # weft: run run-1-... waits on request req-1-0-1-1 from 'approve': ...
--   weft runs respond run-1-... req-1-0-1-1 '{"approved": true, "by": "ana"}'
--   # "booked: laptop (1200) approved by ana"
--
-- With --store, every superstep is checkpointed in ./.weft/weft.db; the
-- answer is stored and `weft runs respond` restores the run from its last
-- checkpoint and re-executes "approve", whose request_info now returns the
-- recorded answer (code before a request runs again: keep it idempotent).
local weft = require "weft"

-- Normalise the request: {item, amount}.
local draft = weft.executor("draft", function(input, ctx)
  if type(input) ~= "table" or type(input.item) ~= "string" or type(input.amount) ~= "number" then
    input = { item = "laptop", amount = 1200 }
  end
  ctx:send({ item = input.item, amount = input.amount })
end)

-- Small amounts pass; larger ones need a human.
local approve = weft.executor("approve", function(expense, ctx)
  if expense.amount < 100 then
    ctx:send({ expense = expense, approved = true, by = "policy" })
    return
  end
  local answer = ctx:request_info({
    question = ("Approve %s for %d?"):format(expense.item, expense.amount),
    expense = expense,
  })
  local ok = answer == true or (type(answer) == "table" and answer.approved == true)
  ctx:send({ expense = expense, approved = ok, by = type(answer) == "table" and answer.by or "someone" })
end)

local book = weft.executor("book", function(d, ctx)
  local e = d.expense
  if d.approved then
    ctx:yield_output(("booked: %s (%d) approved by %s"):format(e.item, e.amount, d.by))
  else
    ctx:yield_output(("rejected: %s (%d)"):format(e.item, e.amount))
  end
end)

return weft.workflow("approval")
  :start(draft)
  :edge(draft, approve)
  :edge(approve, book)
  :build()
