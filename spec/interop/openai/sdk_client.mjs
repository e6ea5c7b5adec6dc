// spec/interop/openai/sdk_client.mjs — the official `openai` SDK (pinned in
// package.json) as the client of `weft serve`, run by
// spec/integration/serve_openai_sdk_spec.lua: `node sdk_client.mjs BASE
// SCENARIO` runs one scenario against BASE (http://127.0.0.1:PORT) and
// prints its findings as one JSON line; SDK errors are caught and printed
// as {error: {name, status, message}}.
import OpenAI from "openai";

const [base, scenario] = process.argv.slice(2);
const client = new OpenAI({ baseURL: base + "/v1", apiKey: "unused" });

// POST a JSON body to weft's REST API (the scenarios' setup).
async function rest(path, body) {
  const r = await fetch(base + path, { method: "POST", headers: { "content-type": "application/json" },
                                       body: JSON.stringify(body) });
  return r.status;
}

// The error of a failed SDK call, as data.
function failure(e) {
  return { name: e.constructor.name, status: e.status, message: e.message,
           bad_request: e instanceof OpenAI.BadRequestError };
}

const WEATHER = [{ type: "function", name: "get_weather", description: "the weather of a city",
                   parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } }];

const scenarios = {
  async setup() {
    return {
      writer: await rest("/api/v1/agents", { id: "writer", name: "writer", model: "mock:echo", instructions: "You write." }),
      bad: await rest("/api/v1/agents", { id: "bad", name: "bad", model: "openai:gpt-test" }),
      calc: await rest("/api/v1/agents", { id: "calc", name: "calc", model: "mock:echo", tools: ["add"] }),
    };
  },

  async models() {
    const list = await client.models.list();
    const ids = [];
    for await (const m of list) ids.push(m.id);
    const agent = await client.models.retrieve("agent:writer");
    const wf = await client.models.retrieve("workflow:ask");
    let missing;
    try { await client.models.retrieve("agent:nope"); } catch (e) { missing = failure(e); }
    return { ids, agent, workflow: wf.id, missing };
  },

  async create() {
    const r = await client.responses.create({ model: "agent:writer", input: "hello sdk", instructions: "Be brief." });
    const again = await client.responses.retrieve(r.id);
    return { id: r.id, status: r.status, text: r.output_text, again: again.output_text, usage: r.usage };
  },

  async stream() {
    const s = client.responses.stream({ model: "agent:writer", input: "stream sdk" });
    const types = [];
    let deltas = "";
    for await (const ev of s) {
      types.push(ev.type);
      if (ev.type === "response.output_text.delta") deltas += ev.delta;
    }
    const final = await s.finalResponse();
    return { types, deltas, text: final.output_text, status: final.status };
  },

  async conversation() {
    const r1 = await client.responses.create({ model: "agent:writer", input: "first turn" });
    const r2 = await client.responses.create({ model: "agent:writer", input: "second turn", previous_response_id: r1.id });
    let bad;
    try {
      await client.responses.create({ model: "agent:writer", input: "x", previous_response_id: "resp_missing" });
    } catch (e) { bad = failure(e); }
    return { text: r2.output_text, previous: r2.previous_response_id === r1.id,
             grew: r2.usage.input_tokens > r1.usage.input_tokens, bad };
  },

  async tools() {
    const r1 = await client.responses.create({ model: "agent:writer", tools: WEATHER,
                                               input: 'call get_weather {"city": "Paris"}' });
    const call = r1.output.find((o) => o.type === "function_call");
    const r2 = await client.responses.create({ model: "agent:writer", tools: WEATHER, previous_response_id: r1.id,
      input: [{ type: "function_call_output", call_id: call.call_id, output: "sunny, 21 C" }] });
    return { name: call.name, args: JSON.parse(call.arguments), text: r2.output_text, status: r2.status };
  },

  async background() {
    const r = await client.responses.create({ model: "agent:writer", input: "in the background", background: true });
    let cur = r;
    while (cur.status === "queued" || cur.status === "in_progress") cur = await client.responses.retrieve(r.id);
    const raw = await client.responses.retrieve(r.id, { stream: true, starting_after: 2 });
    const seqs = [];
    for await (const ev of raw) seqs.push(ev.sequence_number);
    const helper = client.responses.stream({ response_id: r.id, starting_after: 2 });
    const helperTypes = [];
    for await (const ev of helper) helperTypes.push(ev.sequence_number);
    const final = await helper.finalResponse();
    // a slow one (the mock's "slow" rule) is cancelled while it runs
    const slow = await client.responses.create({ model: "agent:writer", input: "slow please", background: true });
    const cancelled = await client.responses.cancel(slow.id);
    const after = await client.responses.retrieve(slow.id);
    return { first: r.status, background: r.background, status: cur.status, text: cur.output_text, seqs,
             helper: helperTypes, helper_text: final.output_text, slow: slow.status,
             cancelled: cancelled.status, after: after.status };
  },

  async paused() {
    const messages = [{ role: "user", content: "expense" }];
    const c1 = await client.chat.completions.create({ model: "workflow:ask", messages });
    const tc = c1.choices[0].message.tool_calls[0];
    const c2 = await client.chat.completions.create({ model: "workflow:ask", messages: [...messages,
      c1.choices[0].message, { role: "tool", tool_call_id: tc.id, content: JSON.stringify({ answer: "approved" }) }] });
    const r1 = await client.responses.create({ model: "workflow:ask", input: "trip" });
    const fc = r1.output.find((o) => o.type === "function_call");
    const r2 = await client.responses.create({ model: "workflow:ask", previous_response_id: r1.id,
      input: [{ type: "function_call_output", call_id: fc.call_id, output: '"yes"' }] });
    return { finish: c1.choices[0].finish_reason, tool: tc.function.name, request: JSON.parse(tc.function.arguments),
             chat_text: c2.choices[0].message.content, fc: fc.name, text: r2.output_text };
  },

  async tools_dir() {
    const tools = await (await fetch(base + "/api/v1/tools")).json();
    const c = await client.chat.completions.create({ model: "agent:calc",
      messages: [{ role: "user", content: 'call add {"a": 2, "b": 3}' }] });
    return { listed: tools.items.map((t) => t.name), text: c.choices[0].message.content };
  },

  async provider_error() {
    const out = {};
    try {
      await client.chat.completions.create({ model: "agent:bad", messages: [{ role: "user", content: "x" }] });
    } catch (e) { out.chat = failure(e); }
    try {
      await client.responses.create({ model: "agent:bad", input: "x" });
    } catch (e) { out.responses = failure(e); }
    return out;
  },
};

try {
  console.log(JSON.stringify(await scenarios[scenario]()));
} catch (e) {
  console.log(JSON.stringify({ error: failure(e), stack: String(e.stack) }));
  process.exitCode = 1;
}
