// The official TypeScript MCP SDK's v2 client (@modelcontextprotocol/client), pinned to the
// 2026-07-28 revision, pointed at the gateway's MCP front:
// node ts_client_modern.mjs <mcp url> <tool> <json arguments>
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";

const [url, tool, args] = process.argv.slice(2);
const client = new Client(
  { name: "ts-sdk-v2-through-gateway", version: "1.0.0" },
  { versionNegotiation: { mode: { pin: "2026-07-28" } } },
);
const transport = new StreamableHTTPClientTransport(new URL(url));
await client.connect(transport);
const tools = await client.listTools();
const progress = [];
const result = await client.callTool({ name: tool, arguments: JSON.parse(args) }, {
  onprogress: (p) => progress.push(p.progress),
});
console.log(JSON.stringify({
  era: client.getProtocolEra() ?? null,
  version: client.getNegotiatedProtocolVersion() ?? null,
  supported: client.getDiscoverResult()?.supportedVersions ?? null,
  session: transport.sessionId ?? null,
  tools: tools.tools.map((t) => t.name),
  result,
  progress,
}));
await client.close();
