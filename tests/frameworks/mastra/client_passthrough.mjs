// Mastra's own client SDK, pointed at the gateway's passthrough instead of the Mastra server:
// node client_passthrough.mjs <base url> <traceparent>
import { MastraClient } from "@mastra/client-js";

const [baseUrl, traceparent] = process.argv.slice(2);
const client = new MastraClient({ baseUrl, headers: { traceparent } });
const agents = await client.listAgents();
const answer = await client.getAgent("echo").generate("via the mastra client");
console.log(JSON.stringify({ agents: Object.keys(agents), text: answer.text }));
