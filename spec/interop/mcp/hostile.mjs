// A misbehaving MCP stdio server for spec/integration/mcp_spec.lua:
// node hostile.mjs MODE, MODE one of garbage (log lines and broken JSON
// before each answer), huge (a tools/call answer of 2 MiB on one line),
// silent (never answers tools/call), exit (exits at its first tools/call),
// count (appends a line to ./calls at each tools/call, answers "pong N").
// It answers initialize and tools/list (one tool, "poke") correctly.
import { createInterface } from "node:readline";
import { appendFileSync, readFileSync } from "node:fs";

const mode = process.argv[2];
const send = (m) => process.stdout.write(JSON.stringify(m) + "\n");
createInterface({ input: process.stdin }).on("line", (line) => {
  const m = JSON.parse(line);
  if (m.id === undefined) return;
  if (mode === "garbage") process.stdout.write("starting up...\n{not json\n[1,2]\n" + JSON.stringify({ jsonrpc: "2.0", id: 999999, result: {} }) + "\n");
  if (m.method === "initialize") {
    send({ jsonrpc: "2.0", id: m.id, result: { protocolVersion: m.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: "hostile-" + mode, version: "0" } } });
  } else if (m.method === "tools/list") {
    send({ jsonrpc: "2.0", id: m.id, result: { tools: [{ name: "poke", description: "answers pong", inputSchema: { type: "object", properties: {} } }] } });
  } else if (m.method === "tools/call") {
    if (mode === "silent") return;
    if (mode === "exit") process.exit(3);
    let text = mode === "huge" ? "x".repeat(2 * 1024 * 1024) : "pong";
    if (mode === "count") {
      appendFileSync("calls", "called\n");
      text = "pong " + readFileSync("calls", "utf8").trim().split("\n").length;
    }
    send({ jsonrpc: "2.0", id: m.id, result: { content: [{ type: "text", text }] } });
  } else {
    send({ jsonrpc: "2.0", id: m.id, error: { code: -32601, message: "no such method" } });
  }
});
