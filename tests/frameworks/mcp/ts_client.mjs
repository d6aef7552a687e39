// The official TypeScript MCP SDK client, pointed at the gateway's MCP front:
// node ts_client.mjs <mcp url> <tool> <json arguments>
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, tool, args] = process.argv.slice(2);
const client = new Client({ name: "ts-sdk-through-gateway", version: "1.0.0" });
const transport = new StreamableHTTPClientTransport(new URL(url));
await client.connect(transport);
const tools = await client.listTools();
const progress = [];
const result = await client.callTool({ name: tool, arguments: JSON.parse(args) }, undefined, {
  onprogress: (p) => progress.push(p.progress),
});
console.log(JSON.stringify({
  version: transport.protocolVersion ?? null,
  session: transport.sessionId ?? null,
  tools: tools.tools.map((t) => t.name),
  result,
  progress,
}));
await transport.terminateSession();
await client.close();
