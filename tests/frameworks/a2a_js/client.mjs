// Drives agent-gateway's A2A front with the official TypeScript SDK (@a2a-js/sdk, pinned).
// Usage: node client.mjs <agent base URL> <JSONRPC|HTTP+JSON>
// Prints one JSON line per step: send, stream, get, list, cancel (of a slow task), subscribe.
import { ListTasksResponse, Role, StreamResponse, Task } from "@a2a-js/sdk";
import { ClientFactory, ClientFactoryOptions } from "@a2a-js/sdk/client";

const [base, binding] = process.argv.slice(2);
const factory = new ClientFactory(
  ClientFactoryOptions.createFrom(ClientFactoryOptions.default, { preferredTransports: [binding] }),
);
const client = await factory.createFromUrl(`${base}/.well-known/agent-card.json`, "");
// Results are the SDK's objects; printed as their protobuf JSON.
const out = (step, value) => console.log(JSON.stringify({ step, value }));
const task = (result) => Task.toJSON(result.task ?? result);
const message = (text, extra = {}) => ({
  message: { messageId: crypto.randomUUID(), role: Role.ROLE_USER, parts: [{ content: { $case: "text", value: text } }], ...extra },
});

const sent = task(await client.sendMessage(message("hello from js")));
out("send", sent);
const frames = [];
for await (const frame of client.sendMessageStream(message("stream from js"))) frames.push(StreamResponse.toJSON(frame));
out("stream", frames);
out("get", Task.toJSON(await client.getTask({ id: sent.id, historyLength: 1 })));
out("list", ListTasksResponse.toJSON(await client.listTasks({ contextId: sent.contextId })));
const slow = task(await client.sendMessage({ ...message("hold"), configuration: { returnImmediately: true } }));
const followed = [];
const follower = (async () => {
  for await (const frame of client.resubscribeTask({ id: slow.id })) followed.push(StreamResponse.toJSON(frame));
})();
await new Promise((resolve) => setTimeout(resolve, 300));
out("cancel", Task.toJSON(await client.cancelTask({ id: slow.id })));
await follower;
out("subscribe", followed);
