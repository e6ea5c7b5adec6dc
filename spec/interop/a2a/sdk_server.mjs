// An A2A server made with the official SDK (@a2a-js/sdk, JSON-RPC
// binding, protocol 1.0), for spec/integration/a2a_spec.lua: weft's
// RemoteAgent talks to it. Listens on 127.0.0.1, port $PORT (default: any
// free one), and prints "PORT <n>". Agents, each at /<name> (card at
// /<name>/.well-known/agent-card.json):
//   echo   a task: working, the reply "echo[<n>]: <text>" streamed as
//          artifact chunks (n: messages seen in this context), completed
//   ask    input-required "What is your name?", then "hello, <answer>"
//   slow   a working task that runs until it is cancelled
//   msg    a direct message (no task)
//   secure echo, only with "Authorization: Bearer s3cret"
// And hostile endpoints that are not the SDK's (a card pointing at a JSON-RPC
// URL whose stream misbehaves): /huge (one 2 MB event), /badparts (an
// artifact whose parts are not a list), /garbage (events
// that are not JSON-RPC), /flood (endless valid status events), /badcard
// (a card that is not JSON), /nointerface (a card without interfaces).
import express from "express";
import { Message, Task, Artifact, TaskState } from "@a2a-js/sdk";
import { DefaultRequestHandler, InMemoryTaskStore, AgentEvent } from "@a2a-js/sdk/server";
import { agentCardHandler, jsonRpcHandler, UserBuilder } from "@a2a-js/sdk/server/express";

const app = express();
const server = app.listen(Number(process.env.PORT || 0), "127.0.0.1", () => {
  const port = server.address().port;
  const base = `http://127.0.0.1:${port}`;
  mount(base);
  process.stdout.write(`PORT ${port}\n`);
});

const text = (m) => (m.parts || []).map((p) => (p.content && p.content.$case === "text" ? p.content.value : "")).join("\n");
const agentMsg = (taskId, contextId, t) =>
  Message.fromJSON({ messageId: `m-${Math.random().toString(16).slice(2)}`, role: "ROLE_AGENT", taskId, contextId,
                     parts: [{ text: t }] });
const status = (taskId, contextId, state, t) =>
  AgentEvent.statusUpdate({ taskId, contextId,
    status: { state, message: t === undefined ? undefined : agentMsg(taskId, contextId, t), timestamp: new Date().toISOString() } });
const seen = new Map(); // contextId -> messages seen
const running = new Map(); // taskId -> resolve of a slow task

const executors = {
  echo: {
    async execute(ctx, bus) {
      const { taskId, contextId } = ctx;
      const n = (seen.get(contextId) || 0) + 1;
      seen.set(contextId, n);
      bus.publish(AgentEvent.task(Task.fromJSON({ id: taskId, contextId, status: { state: "TASK_STATE_WORKING" } })));
      const reply = `echo[${n}]: ${text(ctx.userMessage)}`;
      const pieces = [reply.slice(0, 6), reply.slice(6)];
      pieces.forEach((p, i) => bus.publish(AgentEvent.artifactUpdate({ taskId, contextId, append: i > 0,
        lastChunk: i === pieces.length - 1, artifact: Artifact.fromJSON({ artifactId: "reply", parts: [{ text: p }] }) })));
      bus.publish(status(taskId, contextId, TaskState.TASK_STATE_COMPLETED));
      bus.finished();
    },
    async cancelTask() {},
  },
  ask: {
    async execute(ctx, bus) {
      const { taskId, contextId } = ctx;
      if (!ctx.task) {
        bus.publish(AgentEvent.task(Task.fromJSON({ id: taskId, contextId, status: { state: "TASK_STATE_SUBMITTED" } })));
        bus.publish(status(taskId, contextId, TaskState.TASK_STATE_INPUT_REQUIRED, "What is your name?"));
      } else {
        bus.publish(AgentEvent.task(ctx.task));
        bus.publish(AgentEvent.artifactUpdate({ taskId, contextId, append: false, lastChunk: true,
          artifact: Artifact.fromJSON({ artifactId: "greeting", parts: [{ text: `hello, ${text(ctx.userMessage)}` }] }) }));
        bus.publish(status(taskId, contextId, TaskState.TASK_STATE_COMPLETED));
      }
      bus.finished();
    },
    async cancelTask() {},
  },
  slow: {
    async execute(ctx, bus) {
      const { taskId, contextId } = ctx;
      bus.publish(AgentEvent.task(Task.fromJSON({ id: taskId, contextId, status: { state: "TASK_STATE_WORKING" } })));
      bus.publish(status(taskId, contextId, TaskState.TASK_STATE_WORKING, "working"));
      await new Promise((resolve) => running.set(taskId, resolve));
      bus.publish(status(taskId, contextId, TaskState.TASK_STATE_CANCELED, "cancelled"));
      bus.finished();
    },
    async cancelTask(taskId) {
      const resolve = running.get(taskId);
      if (resolve) { running.delete(taskId); resolve(); }
    },
  },
  msg: {
    async execute(ctx, bus) {
      bus.publish(AgentEvent.message(Message.fromJSON({ messageId: "reply-1", role: "ROLE_AGENT",
        contextId: ctx.contextId, parts: [{ text: `direct: ${text(ctx.userMessage)}` }] })));
      bus.finished();
    },
    async cancelTask() {},
  },
};
executors.secure = executors.echo;

function card(base, name) {
  return {
    name, description: `the ${name} agent of the weft A2A interop tests`, version: "1.0.0",
    supportedInterfaces: [{ url: `${base}/${name}`, protocolBinding: "JSONRPC", protocolVersion: "1.0" }],
    capabilities: { streaming: true, pushNotifications: false },
    defaultInputModes: ["text/plain"], defaultOutputModes: ["text/plain"],
    skills: [{ id: name, name, description: `${name} skill`, tags: ["test"] }],
  };
}

function mount(base) {
  app.use("/secure", (req, res, next) => {
    if (req.headers.authorization !== "Bearer s3cret") return res.status(401).json({ error: "unauthorized" });
    next();
  });
  for (const [name, executor] of Object.entries(executors)) {
    const handler = new DefaultRequestHandler(card(base, name), new InMemoryTaskStore(), executor);
    app.use(`/${name}/.well-known/agent-card.json`, agentCardHandler({ agentCardProvider: handler }));
    app.use(`/${name}`, jsonRpcHandler({ requestHandler: handler, userBuilder: UserBuilder.noAuthentication }));
  }
  const hostile = (name, write) => {
    app.get(`/${name}/.well-known/agent-card.json`, (req, res) => res.json(card(base, name)));
    app.post(`/${name}`, express.json(), (req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      write(req.body.id, res);
    });
  };
  hostile("huge", (id, res) => {
    res.end(`data: ${JSON.stringify({ jsonrpc: "2.0", id, result: { message: { parts: [{ text: "x".repeat(2 << 20) }] } } })}\n\n`);
  });
  hostile("badparts", (id, res) => {
    const ev = (result) => `data: ${JSON.stringify({ jsonrpc: "2.0", id, result })}\n\n`;
    res.write(ev({ artifactUpdate: { taskId: "t", contextId: "c", artifact: { artifactId: "a", parts: "not a list" } } }));
    res.write(ev({ artifactUpdate: { taskId: "t", contextId: "c", append: true, artifact: { artifactId: "a", parts: [{ text: "ok" }] } } }));
    res.end(ev({ statusUpdate: { taskId: "t", contextId: "c", status: { state: "TASK_STATE_COMPLETED" } } }));
  });
  hostile("garbage", (id, res) => { res.end("data: \u0000\u0001 not json at all\n\n"); });
  hostile("flood", (id, res) => {
    const ev = `data: ${JSON.stringify({ jsonrpc: "2.0", id, result: { statusUpdate: { taskId: "t", contextId: "c",
      status: { state: "TASK_STATE_WORKING", message: { role: "ROLE_AGENT", parts: [{ text: "y".repeat(1000) }] } } } } })}\n\n`;
    const more = () => { while (res.write(ev)) { if (res.destroyed) return; } res.once("drain", more); };
    res.on("close", () => res.removeAllListeners("drain"));
    more();
  });
  app.get("/badcard/.well-known/agent-card.json", (req, res) => res.type("json").send("{not json"));
  app.get("/nointerface/.well-known/agent-card.json", (req, res) => res.json({ name: "nointerface" }));
}
