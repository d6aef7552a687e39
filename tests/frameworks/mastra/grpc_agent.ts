// A plain TypeScript agent serving the gateway's own proto with @grpc/grpc-js,
// so it can sit behind the gateway's `grpc` adapter. It echoes what it is
// sent and reports the context metadata it received (traceparent, ids, the
// deadline) as a data part, so tests can check what crossed the hop.
// Usage: node grpc_agent.ts <port> <path to proto/>
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const port = Number(process.argv[2] ?? 50061);
const protoRoot = process.argv[3] ?? "../../../proto";
const CONTEXT_KEYS = ["traceparent", "tracestate", "baggage", "x-session-id", "x-thread-id", "x-user-id", "x-request-id"];

const definition = protoLoader.loadSync("agentgateway/v1/gateway.proto", {
  includeDirs: [protoRoot],
  keepCase: true,
  enums: String,
  defaults: true,
  oneofs: true,
});
const loaded = grpc.loadPackageDefinition(definition) as any;
const service = loaded.agentgateway.v1.AgentGateway.service;

// Structured data crosses the wire as JSON text (the `*_json` fields): integers stay integers.
type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function lastUserParts(request: any): any[] {
  const users = (request.messages ?? []).filter((m: any) => m.role === "ROLE_USER");
  return users[users.length - 1]?.parts ?? [];
}

function textOf(request: any): string {
  return lastUserParts(request).map((p: any) => p.text ?? "").join("");
}

// The caller's data parts, echoed as the JSON text that arrived (never re-encoded, so exact).
function echoedData(request: any): object[] {
  const parts = lastUserParts(request).filter((p: any) => p.kind === "data_json");
  return parts.length > 0 ? [agentMessage(parts.map((p: any) => ({ data_json: p.data_json })))] : [];
}

function seen(call: grpc.ServerUnaryCall<any, any> | grpc.ServerWritableStream<any, any>): { [key: string]: Json } {
  const headers: { [key: string]: Json } = {};
  for (const key of CONTEXT_KEYS) {
    const values = call.metadata.get(key);
    if (values.length > 0) headers[key] = String(values[0]);
  }
  const deadline = call.getDeadline();
  const remaining = deadline instanceof Date ? deadline.getTime() - Date.now() : Number.isFinite(deadline) ? Number(deadline) - Date.now() : null;
  const context = call.request.context ?? {};
  return {
    type: "context",
    runtime: `node ${process.version}`,
    headers,
    context: { session_id: context.session_id ?? "", thread_id: context.thread_id ?? "", user_id: context.user_id ?? "" },
    deadline_ms: remaining === null ? null : Math.max(0, Math.round(remaining)),
  };
}

// Text the agent refuses, by the status it answers with (for the error-classification tests).
function refusal(text: string): grpc.StatusObject | null {
  if (text.startsWith("invalid")) return { code: grpc.status.INVALID_ARGUMENT, details: `cannot handle: ${text}`, metadata: new grpc.Metadata() };
  if (text.startsWith("busy")) return { code: grpc.status.UNAVAILABLE, details: "agent busy, try again", metadata: new grpc.Metadata() };
  return null;
}

const agentMessage = (parts: object[]) => ({ role: "ROLE_AGENT", parts });

const handlers = {
  Invoke(call: grpc.ServerUnaryCall<any, any>, callback: grpc.sendUnaryData<any>) {
    const text = textOf(call.request);
    const refused = refusal(text);
    if (refused) return callback(refused);
    callback(null, {
      agent: call.request.agent,
      messages: [
        agentMessage([{ text: `ts echo: ${text}` }]),
        agentMessage([{ data_json: JSON.stringify(seen(call)) }]),
        ...echoedData(call.request),
      ],
      metadata_json: JSON.stringify({ runtime: "grpc-js" }),
    });
  },
  async InvokeStream(call: grpc.ServerWritableStream<any, any>) {
    const text = textOf(call.request);
    const refused = refusal(text);
    if (refused) return call.emit("error", refused);
    const words = `ts echo: ${text}`.split(/(?<= )/);
    let sequence = 0;
    for (const word of words) {
      if (call.cancelled) return;
      call.write({ event: { type: "delta", message: agentMessage([{ text: word }]), sequence: ++sequence } });
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    call.write({ event: { type: "data", data_json: JSON.stringify(seen(call)), sequence: ++sequence } });
    call.write({ result: { agent: call.request.agent, messages: [agentMessage([{ text: words.join("") }])] } });
    call.end();
  },
  ListAgents(_call: grpc.ServerUnaryCall<any, any>, callback: grpc.sendUnaryData<any>) {
    callback(null, { agents: [{ name: "ts-echo", kind: "grpc-js", streaming: true }] });
  },
};

const server = new grpc.Server();
server.addService(service, handlers);
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
