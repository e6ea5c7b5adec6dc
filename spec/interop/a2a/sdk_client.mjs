// The official A2A client (@a2a-js/sdk ClientFactory, JSON-RPC transport,
// protocol 1.0) against `weft serve`, for spec/integration/a2a_spec.lua.
// Env: WEFT_URL (the server), WEFT_KEY (an API key for everything),
// WEFT_READ_KEY (a read-only key), AGENT (an agent's id), ASK (a workflow
// that asks with ctx:request_info, then outputs "hello, <answer>"), MANY (a
// workflow with two outputs). Prints one JSON object of what it saw; the
// spec checks it.
import { SendMessageRequest, TaskState, taskStateToJSON } from "@a2a-js/sdk";
import { ClientFactory, ClientFactoryOptions, DefaultAgentCardResolver, JsonRpcTransportFactory } from "@a2a-js/sdk/client";

const { WEFT_URL, WEFT_KEY, WEFT_READ_KEY, AGENT, ASK, MANY } = process.env;

const withKey = (key) => (url, init = {}) =>
  fetch(url, { ...init, headers: { ...(init.headers || {}), Authorization: `Bearer ${key}` } });

async function client(id, key = WEFT_KEY) {
  const fetchImpl = withKey(key);
  const factory = new ClientFactory(ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
    transports: [new JsonRpcTransportFactory({ fetchImpl })],
    cardResolver: new DefaultAgentCardResolver({ fetchImpl }),
  }));
  return factory.createFromUrl(`${WEFT_URL}/a2a/${id}/`);
}

let n = 0;
const send = (t, extra = {}) => SendMessageRequest.fromJSON({
  message: { messageId: `msg-${++n}`, role: "ROLE_USER", parts: [{ text: t }], ...extra },
});
const textOf = (parts) => (parts || []).map((p) => (p.content && p.content.$case === "text" ? p.content.value : JSON.stringify(p.content && p.content.value))).join("");
const state = (task) => taskStateToJSON(task.status.state);
const err = async (f) => { try { await f(); return null; } catch (e) { return { message: String(e.message), name: e.name !== "Error" ? e.name : e.constructor.name }; } };

const out = {};

// the card
const agent = await client(AGENT);
const card = agent.agentCard;
out.card = { name: card.name, streaming: card.capabilities?.streaming, url: card.supportedInterfaces?.[0]?.url,
             schemes: Object.keys(card.securitySchemes || {}).sort(), skills: (card.skills || []).map((s) => s.id) };

// an agent: send, stream, get, a follow-up in the same context
const t1 = await agent.sendMessage(send("hello agent"));
out.send = { state: state(t1), text: t1.artifacts.map((a) => textOf(a.parts)).join("\n"), id: t1.id, context: t1.contextId };
const t2 = await agent.sendMessage(send("second", { contextId: t1.contextId }));
out.followup = { state: state(t2), context: t2.contextId, text: t2.artifacts.map((a) => textOf(a.parts)).join("\n") };
const kinds = [];
let streamed = "";
for await (const ev of agent.sendMessageStream(send("streamed words"))) {
  kinds.push(ev.payload.$case);
  if (ev.payload.$case === "artifactUpdate") streamed += textOf(ev.payload.value.artifact.parts);
  if (ev.payload.$case === "statusUpdate") kinds.push(taskStateToJSON(ev.payload.value.status.state));
}
out.stream = { kinds, text: streamed };
const got = await agent.getTask({ id: t1.id, historyLength: 1 });
out.get = { state: state(got), id: got.id, history: got.history.length };
out.get_unknown = await err(() => agent.getTask({ id: "no-such-task" }));
out.cancel_done = await err(() => agent.cancelTask({ id: t1.id }));

// a workflow that asks: input-required, answered by a message on the task
const ask = await client(ASK);
const q = await ask.sendMessage(send("visitor"));
out.ask = { state: state(q), question: textOf(q.status.message?.parts) };
const a = await ask.sendMessage(send("Ada", { taskId: q.id, contextId: q.contextId }));
out.answer = { state: state(a), text: a.artifacts.map((x) => textOf(x.parts)).join("\n"), same: a.id === q.id };
const askKinds = [];
for await (const ev of ask.sendMessageStream(send("streamer"))) {
  askKinds.push(ev.payload.$case === "statusUpdate" ? taskStateToJSON(ev.payload.value.status.state) : ev.payload.$case);
}
out.ask_stream = askKinds;
// cancel a task waiting for input
const w = await ask.sendMessage(send("to cancel"));
const c = await ask.cancelTask({ id: w.id });
out.cancel = { before: state(w), after: state(c), get: state(await ask.getTask({ id: w.id })) };

// a workflow with two outputs: two artifacts
const many = await client(MANY);
const m = await many.sendMessage(send("x"));
out.many = { state: state(m), artifacts: m.artifacts.map((x) => textOf(x.parts)) };

// a read-only key cannot send; a wrong key gets nothing (no card, or no task
// where cards are public)
const ro = await client(AGENT, WEFT_READ_KEY);
out.read_get = await ro.getTask({ id: t1.id }).then((t) => state(t), (e) => ({ message: String(e.message) }));
out.read_send = await err(() => ro.sendMessage(send("nope")));
out.no_key = await err(async () => { const c = await client(AGENT, "wrong-key-123"); await c.getTask({ id: t1.id }); });

process.stdout.write(JSON.stringify(out) + "\n");
