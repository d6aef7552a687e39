// A plain TypeScript agent serving the gateway's own proto with @grpc/grpc-js, built on the
// TypeScript stubs generated beside the Python ones (proto/agentgateway/v1/*_pb.ts, protoc-gen-es),
// so it can sit behind the gateway's `grpc` adapter. It echoes what it is sent and reports the
// context metadata it received (traceparent, ids, the deadline) as a data part, so tests can check
// what crossed the hop.
// Usage: node grpc_agent.ts <port>   (the stubs are copied into ./gen/ by the test launcher, next to
// this project's node_modules, where their @bufbuild/protobuf import resolves)
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import type { GenService } from "@bufbuild/protobuf/codegenv2";
import {
  AgentGatewayService,
  InvokeResponseSchema,
  InvokeStreamResponseSchema,
  ListAgentsResponseSchema,
  Role,
} from "./gen/agentgateway/v1/gateway_pb.ts";
import type { InvokeRequest, Part } from "./gen/agentgateway/v1/gateway_pb.ts";

const port = Number(process.argv[2] ?? 50061);
const CONTEXT_KEYS = ["traceparent", "tracestate", "baggage", "x-session-id", "x-thread-id", "x-user-id", "x-request-id"];

// Structured data crosses the wire as JSON text (the `*_json` fields): integers stay integers.
type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

// A grpc-js service definition from a generated service: each method (de)serialized by its schema.
function serviceDefinition(service: GenService<any>): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<any, any>> = {};
  for (const method of service.methods) {
    definition[method.name] = {
      path: `/${service.typeName}/${method.name}`,
      originalName: method.name,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: (message: any) => Buffer.from(toBinary(method.input, message)),
      requestDeserialize: (bytes: Buffer) => fromBinary(method.input, bytes),
      responseSerialize: (message: any) => Buffer.from(toBinary(method.output, message)),
      responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
    };
  }
  return definition;
}

function lastUserParts(request: InvokeRequest): Part[] {
  const users = request.messages.filter((m) => m.role === Role.USER);
  return users[users.length - 1]?.parts ?? [];
}

function textOf(request: InvokeRequest): string {
  return lastUserParts(request)
    .map((p) => (p.kind.case === "text" ? p.kind.value : ""))
    .join("");
}

type PartInit = { kind: { case: "text"; value: string } | { case: "dataJson"; value: string } };

const agentMessage = (parts: PartInit[]) => ({ role: Role.AGENT, parts });
const text = (value: string): PartInit => ({ kind: { case: "text", value } });
const data = (value: string): PartInit => ({ kind: { case: "dataJson", value } });

// The caller's data parts, echoed as the JSON text that arrived (never re-encoded, so exact).
function echoedData(request: InvokeRequest) {
  const parts = lastUserParts(request).flatMap((p) => (p.kind.case === "dataJson" ? [data(p.kind.value)] : []));
  return parts.length > 0 ? [agentMessage(parts)] : [];
}

function seen(call: grpc.ServerUnaryCall<InvokeRequest, any> | grpc.ServerWritableStream<InvokeRequest, any>): { [key: string]: Json } {
  const headers: { [key: string]: Json } = {};
  for (const key of CONTEXT_KEYS) {
    const values = call.metadata.get(key);
    if (values.length > 0) headers[key] = String(values[0]);
  }
  const deadline = call.getDeadline();
  const remaining = deadline instanceof Date ? deadline.getTime() - Date.now() : Number.isFinite(deadline) ? Number(deadline) - Date.now() : null;
  const context = call.request.context;
  return {
    type: "context",
    runtime: `node ${process.version}`,
    headers,
    context: { session_id: context?.sessionId ?? "", thread_id: context?.threadId ?? "", user_id: context?.userId ?? "" },
    deadline_ms: remaining === null ? null : Math.max(0, Math.round(remaining)),
  };
}

// Text the agent refuses, by the status it answers with (for the error-classification tests).
function refusal(value: string): grpc.StatusObject | null {
  if (value.startsWith("invalid")) return { code: grpc.status.INVALID_ARGUMENT, details: `cannot handle: ${value}`, metadata: new grpc.Metadata() };
  if (value.startsWith("busy")) return { code: grpc.status.UNAVAILABLE, details: "agent busy, try again", metadata: new grpc.Metadata() };
  return null;
}

function reply<Desc extends DescMessage>(schema: Desc, init: object): MessageShape<Desc> {
  return create(schema, init as any);
}

const handlers: grpc.UntypedServiceImplementation = {
  Invoke(call: grpc.ServerUnaryCall<InvokeRequest, any>, callback: grpc.sendUnaryData<any>) {
    const said = textOf(call.request);
    const refused = refusal(said);
    if (refused) return callback(refused);
    callback(
      null,
      reply(InvokeResponseSchema, {
        agent: call.request.agent,
        messages: [agentMessage([text(`ts echo: ${said}`)]), agentMessage([data(JSON.stringify(seen(call)))]), ...echoedData(call.request)],
        metadataJson: JSON.stringify({ runtime: "grpc-js" }),
      }),
    );
  },
  async InvokeStream(call: grpc.ServerWritableStream<InvokeRequest, any>) {
    const said = textOf(call.request);
    const refused = refusal(said);
    if (refused) return call.emit("error", refused);
    const words = `ts echo: ${said}`.split(/(?<= )/);
    let sequence = 0;
    for (const word of words) {
      if (call.cancelled) return;
      call.write(reply(InvokeStreamResponseSchema, { kind: { case: "event", value: { type: "delta", message: agentMessage([text(word)]), sequence: BigInt(++sequence) } } }));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const status = { type: "data", dataJson: JSON.stringify(seen(call)), sequence: BigInt(++sequence) };
    call.write(reply(InvokeStreamResponseSchema, { kind: { case: "event", value: status } }));
    const result = { agent: call.request.agent, messages: [agentMessage([text(words.join(""))])] };
    call.write(reply(InvokeStreamResponseSchema, { kind: { case: "result", value: result } }));
    call.end();
  },
  ListAgents(_call: grpc.ServerUnaryCall<any, any>, callback: grpc.sendUnaryData<any>) {
    callback(null, reply(ListAgentsResponseSchema, { agents: [{ name: "ts-echo", kind: "grpc-js", streaming: true }] }));
  },
};

const server = new grpc.Server();
server.addService(serviceDefinition(AgentGatewayService), handlers);
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (error, bound) => {
  if (error) {
    console.error(error);
    process.exit(1);
  }
  console.log(`grpc-js agent on 127.0.0.1:${bound}`);
});
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => server.tryShutdown(() => process.exit(0)));
}
