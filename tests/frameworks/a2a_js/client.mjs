// Drives agent-gateway's A2A front with the official TypeScript SDK (@a2a-js/sdk, pinned).
// Usage: node client.mjs <agent base URL> <JSONRPC|HTTP+JSON|GRPC> <API key> <push URL>
// Prints one JSON line per step: send, stream, get, list, the push-notification configs of a slow
// task (pushCreate, pushGet, pushList, pushDeleted), cancel (of that task), subscribe, extendedCard.
import { AgentCard, CancelTaskRequest, DeleteTaskPushNotificationConfigRequest, GetTaskPushNotificationConfigRequest,
  GetTaskRequest, ListTaskPushNotificationConfigsRequest, ListTaskPushNotificationConfigsResponse, ListTasksRequest,
  ListTasksResponse, SendMessageRequest, StreamResponse, SubscribeToTaskRequest, Task,
  TaskPushNotificationConfig } from "@a2a-js/sdk";
import { ClientFactory, ClientFactoryOptions, DefaultAgentCardResolver } from "@a2a-js/sdk/client";
import { GrpcTransportFactory } from "@a2a-js/sdk/client/grpc";

const [base, binding, apiKey, pushUrl] = process.argv.slice(2);
// The card names the gRPC endpoint as a URL (http://host:port); @grpc/grpc-js takes host:port.
const grpcFactory = new GrpcTransportFactory();
const grpcTransport = {
  get protocolName() { return grpcFactory.protocolName; },
  create: (url, card) => grpcFactory.create(url.replace(/^https?:\/\//, ""), card),
};
const factory = new ClientFactory(
  ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
    transports: [grpcTransport],
    preferredTransports: [binding],
    // The gateway's cards are behind its listener's authentication too.
    cardResolver: new DefaultAgentCardResolver({
      fetchImpl: (url, init) => fetch(url, { ...init, headers: { ...init?.headers, "x-api-key": apiKey } }),
    }),
    // The API key on every call: HTTP headers, or gRPC metadata.
    clientConfig: {
      interceptors: [{
        before: async (args) => {
          args.options = { ...args.options, serviceParameters: { ...args.options?.serviceParameters, "x-api-key": apiKey } };
        },
        after: async () => {},
      }],
    },
  }),
);
const client = await factory.createFromUrl(`${base}/.well-known/agent-card.json`, "");
// Results are the SDK's objects; printed as their protobuf JSON.
const out = (step, value) => console.log(JSON.stringify({ step, value }));
out("transport", client.transport.protocolName);
const task = (result) => Task.toJSON(result.task ?? result);
// Requests built from their protobuf JSON: complete messages, as the gRPC transport encodes them.
const message = (text, extra = {}) =>
  SendMessageRequest.fromJSON({ message: { messageId: crypto.randomUUID(), role: "ROLE_USER", parts: [{ text }] }, ...extra });

const sent = task(await client.sendMessage(message("hello from js")));
out("send", sent);
const frames = [];
for await (const frame of client.sendMessageStream(message("stream from js"))) frames.push(StreamResponse.toJSON(frame));
out("stream", frames);
out("get", Task.toJSON(await client.getTask(GetTaskRequest.fromJSON({ id: sent.id, historyLength: 1 }))));
out("list", ListTasksResponse.toJSON(await client.listTasks(ListTasksRequest.fromJSON({ contextId: sent.contextId }))));
const slow = task(await client.sendMessage(message("hold", { configuration: { returnImmediately: true } })));
const config = TaskPushNotificationConfig.toJSON(
  await client.createTaskPushNotificationConfig(
    TaskPushNotificationConfig.fromJSON({ taskId: slow.id, url: pushUrl, token: "js-token" }),
  ),
);
out("pushCreate", config);
const configRequest = { taskId: slow.id, id: config.id };
out("pushGet", TaskPushNotificationConfig.toJSON(
  await client.getTaskPushNotificationConfig(GetTaskPushNotificationConfigRequest.fromJSON(configRequest)),
));
const listConfigs = async () => ListTaskPushNotificationConfigsResponse.toJSON(
  await client.listTaskPushNotificationConfig(ListTaskPushNotificationConfigsRequest.fromJSON({ taskId: slow.id })),
);
out("pushList", await listConfigs());
await client.deleteTaskPushNotificationConfig(DeleteTaskPushNotificationConfigRequest.fromJSON(configRequest));
out("pushDeleted", await listConfigs());
const followed = [];
const follower = (async () => {
  for await (const frame of client.resubscribeTask(SubscribeToTaskRequest.fromJSON({ id: slow.id }))) {
    followed.push(StreamResponse.toJSON(frame));
  }
})();
await new Promise((resolve) => setTimeout(resolve, 300));
out("cancel", Task.toJSON(await client.cancelTask(CancelTaskRequest.fromJSON({ id: slow.id }))));
await follower;
out("subscribe", followed);
out("extendedCard", AgentCard.toJSON(await client.getAgentCard()));
