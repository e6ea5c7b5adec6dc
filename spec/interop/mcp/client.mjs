// The official MCP TypeScript SDK as a client of `weft serve`
// (spec/integration/mcp_serve_spec.lua): node client.mjs URL KEY
// [TOOL ARGS_JSON]... connects with the streamable HTTP transport and a
// bearer key, lists the tools, calls each TOOL with its arguments, and
// prints one JSON object {tools, calls} (or {error}) on stdout.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, key, ...rest] = process.argv.slice(2);
const out = { calls: [] };
try {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: key ? { Authorization: `Bearer ${key}` } : {} },
  });
  const client = new Client({ name: "weft-interop", version: "1.0.0" });
  await client.connect(transport);
  out.server = client.getServerVersion();
  out.session = transport.sessionId ? true : false;
  out.tools = (await client.listTools()).tools;
  for (let i = 0; i + 1 < rest.length; i += 2) {
    try {
      out.calls.push(await client.callTool({ name: rest[i], arguments: JSON.parse(rest[i + 1]) }));
    } catch (e) {
      out.calls.push({ thrown: String(e && e.message || e) });
    }
  }
  await transport.terminateSession();
  await client.close();
} catch (e) {
  out.error = String(e && e.message || e);
}
process.stdout.write(JSON.stringify(out) + "\n");
