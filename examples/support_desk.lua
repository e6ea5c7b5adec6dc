-- examples/support_desk.lua — a support desk as a handoff mesh: a triage
-- agent reads the customer's message and hands the conversation to the
-- billing or the technical specialist (through the generated
-- handoff_to_<name> tools), or answers itself; each specialist has its
-- own tool (an invoice lookup, a service status check).
--
--   weft run examples/support_desk.lua                           # billing
--   weft run examples/support_desk.lua --input "The app crashes with error E42 when I log in"
--   weft run examples/support_desk.lua --input "What are your opening hours?"
--   weft run examples/support_desk.lua -- openai:gpt-4o-mini      # a real model
--
-- Offline, the mock models "desk_triage", "desk_billing" and "desk_tech"
-- are scripted by keywords; the tools answer from small tables. Output
-- (weft.patterns.handoff): {messages, text, agent (who answered), path};
-- each handoff also shows as a "handoff" custom event {from, to, count}.
local weft = require "weft"
local llm = require "weft.llm"
local patterns = require "weft.patterns"

local MODEL = ... -- an optional "provider:model" for every agent
local DEFAULT_MESSAGE = "Hello, I was charged twice for invoice INV-1001 this month. Can I get my money back?"

-- The "databases" behind the tools.
local INVOICES = {
  ["INV-1001"] = { amount = "49.00 EUR", charges = 2, status = "paid" },
  ["INV-1002"] = { amount = "19.00 EUR", charges = 1, status = "paid" },
}
local ERRORS = {
  E42 = "login service: a stale session token is rejected after the 3.2 update; signing out and in again clears it",
  E17 = "sync service: degraded, a fix is being deployed",
}

local lookup_invoice = weft.tool{
  name = "lookup_invoice",
  description = "Look an invoice up by its number (INV-nnnn): amount, number of charges, status.",
  parameters = { type = "object", properties = { invoice = { type = "string" } }, required = { "invoice" } },
  handler = function(args)
    local inv = INVOICES[args.invoice]
    if not inv then return { error = "no invoice " .. args.invoice } end
    return { invoice = args.invoice, amount = inv.amount, charges = inv.charges, status = inv.status }
  end,
}

local check_error = weft.tool{
  name = "check_error",
  description = "What an application error code (Ennn) means and whether an incident is open.",
  parameters = { type = "object", properties = { code = { type = "string" } }, required = { "code" } },
  handler = function(args) return ERRORS[args.code] or ("unknown error code " .. args.code) end,
}

-- The customer's first message, the last tool result, and whether the last
-- message is a tool result.
local function customer(messages)
  for _, m in ipairs(messages) do
    if m.role == "user" then return m.content or "" end
  end
  return ""
end
local function tool_result(messages)
  local last = messages[#messages]
  return last and last.role == "tool" and last.content or nil
end

llm.mock.register("desk_triage", {
  -- after a handoff tool answered: tell the customer
  { when = tool_result, reply = function(messages)
      local peer = tool_result(messages):match("'(.-)'")
      return ("Thanks, I am passing you to our %s specialist, who will take it from here."):format(
        peer == "tech" and "technical" or tostring(peer))
    end },
  { when = function(m) local t = customer(m):lower() return t:find("charged") or t:find("invoice") or t:find("refund") end,
    tool_calls = { { name = "handoff_to_billing", arguments = { reason = "a billing question" } } } },
  { when = function(m) local t = customer(m):lower() return t:find("error") or t:find("crash") or t:find("log in") end,
    tool_calls = { { name = "handoff_to_tech", arguments = { reason = "a technical problem" } } } },
  { reply = "We are open Monday to Friday, 9:00 to 18:00 (CET); this chat answers around the clock." },
})

llm.mock.register("desk_billing", {
  { when = tool_result, reply = function(messages)
      local r = weft.json.decode(tool_result(messages))
      if type(r) ~= "table" or r.error then return "I could not find that invoice; could you check its number?" end
      if r.charges > 1 then
        local extra = r.charges - 1
        return ("Invoice %s (%s) was charged %d times. I have refunded the %d extra charge%s of %s; "
          .. "you will see the money within 5 business days."):format(
          r.invoice, r.amount, r.charges, extra, extra == 1 and "" or "s", r.amount)
      end
      return ("Invoice %s (%s) was charged once and is %s: nothing to refund."):format(r.invoice, r.amount, r.status)
    end },
  { tool_calls = function(messages)
      return { { name = "lookup_invoice", arguments = { invoice = customer(messages):match("INV%-%d+") or "unknown" } } }
    end },
})

llm.mock.register("desk_tech", {
  { when = tool_result, reply = function(messages)
      return "Here is what I found: " .. tool_result(messages)
        .. ". If it happens again, reply with the time it occurred."
    end },
  { tool_calls = function(messages)
      return { { name = "check_error", arguments = { code = customer(messages):match("E%d+") or "none" } } }
    end },
})

local triage = weft.agent{
  name = "triage",
  description = "first contact: routes billing and technical questions, answers general ones",
  instructions = "You are the first contact of a software company's support desk. Hand billing "
    .. "questions (charges, invoices, refunds) to billing and technical problems (errors, crashes, "
    .. "log-in trouble) to tech, with the handoff tools. Answer general questions (opening hours, "
    .. "contact) yourself, briefly and politely.",
  model = MODEL or "mock:desk_triage",
}
local billing = weft.agent{
  name = "billing",
  description = "invoices, charges and refunds",
  instructions = "You are the billing specialist. Look invoices up with lookup_invoice before you "
    .. "answer; refund duplicate charges; state amounts exactly. Hand technical problems to tech.",
  model = MODEL or "mock:desk_billing",
  tools = { lookup_invoice },
}
local tech = weft.agent{
  name = "tech",
  description = "application errors, crashes and log-in problems",
  instructions = "You are the technical support specialist. Check error codes with check_error "
    .. "before you answer; give the customer concrete steps. Hand billing questions to billing.",
  model = MODEL or "mock:desk_tech",
  tools = { check_error },
}

local wf = patterns.handoff{
  name = "support_desk",
  agents = { triage, billing, tech },
  start = "triage",
  max_handoffs = 4,
}

-- `weft run` without --input gives "": use the sample task then.
return wf:set_defaults{ input = DEFAULT_MESSAGE }
