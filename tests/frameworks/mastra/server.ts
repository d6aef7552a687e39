// A real Mastra agent server for the gateway's tests: Mastra's own HTTP API
// (@mastra/hono's MastraServer on @hono/node-server), one agent with in-memory
// memory, and a deterministic mock model from the AI SDK's test helpers, so it
// runs offline. Usage: node server.ts <port>
import { serve } from "@hono/node-server";
import { Agent } from "@mastra/core/agent";
import { Mastra } from "@mastra/core/mastra";
import type { RequestContext } from "@mastra/core/request-context";
import { InMemoryStore } from "@mastra/core/storage";
import { createTool } from "@mastra/core/tools";
import { MastraServer } from "@mastra/hono";
import { Memory } from "@mastra/memory";
import { simulateReadableStream } from "ai";
import { MockLanguageModelV2 } from "ai/test";
import { Hono } from "hono";
import { z } from "zod";

// Headers the agent reports back, so tests can check what reached it.
const CONTEXT_HEADERS = ["traceparent", "x-session-id", "x-request-id", "x-user-id"];
const usage = { inputTokens: 3, outputTokens: 5, totalTokens: 8 };

type Prompt = Array<{ role: string; content: unknown }>;

function textOf(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content.map((part) => (part?.type === "text" ? String(part.text) : "")).join("");
}

// The reply the fake model gives to a prompt: the last user text, the turn
// number (user messages in the prompt: memory adds earlier turns), or a tool
// call / the tool's result.
function plan(prompt: Prompt): { text?: string; tool?: string; fail?: string } {
  const last = prompt[prompt.length - 1];
  if (last?.role === "tool") {
    const parts = Array.isArray(last.content) ? last.content : [];
    const output = parts[0]?.output ?? parts[0]?.result;
    const value = output?.value ?? output;
    return { text: `the tool said ${JSON.stringify(value)}` };
  }
  const users = prompt.filter((m) => m.role === "user");
  const said = textOf(users[users.length - 1]?.content);
  if (said.startsWith("fail")) return { fail: `model refused: ${said}` };
  if (said.startsWith("weather")) return { tool: said.slice("weather".length).trim() || "nowhere" };
  return { text: `you said ${said} (turn ${users.length})` };
}

function seenContext(requestContext: RequestContext): Record<string, string> {
  const seen: Record<string, string> = {};
  for (const name of CONTEXT_HEADERS) {
    const value = requestContext.get(`header:${name}`);
    if (typeof value === "string") seen[name] = value;
  }
  return seen;
}

function mockModel(requestContext: RequestContext): MockLanguageModelV2 {
  const providerMetadata = { agentGatewayTest: { seenHeaders: seenContext(requestContext) } };
  return new MockLanguageModelV2({
    provider: "agent-gateway-test",
    modelId: "echo",
    doGenerate: async ({ prompt }) => {
      const step = plan(prompt as Prompt);
      if (step.fail) throw new Error(step.fail);
      if (step.tool) {
        return {
          content: [{ type: "tool-call", toolCallId: "call-1", toolName: "weather", input: JSON.stringify({ city: step.tool }) }],
          finishReason: "tool-calls",
          usage,
          warnings: [],
        };
      }
      return { content: [{ type: "text", text: step.text ?? "" }], finishReason: "stop", usage, providerMetadata, warnings: [] };
    },
    doStream: async ({ prompt }) => {
      const step = plan(prompt as Prompt);
      if (step.fail) throw new Error(step.fail);
      const chunks: unknown[] = [{ type: "stream-start", warnings: [] }];
      if (step.tool) {
        chunks.push({ type: "tool-call", toolCallId: "call-1", toolName: "weather", input: JSON.stringify({ city: step.tool }) });
        chunks.push({ type: "finish", finishReason: "tool-calls", usage });
      } else {
        chunks.push({ type: "text-start", id: "t1" });
        for (const word of (step.text ?? "").split(/(?<= )/)) chunks.push({ type: "text-delta", id: "t1", delta: word });
        chunks.push({ type: "text-end", id: "t1" });
        chunks.push({ type: "finish", finishReason: "stop", usage, providerMetadata });
      }
      // A few milliseconds apart: the chunks really arrive one by one.
      return { stream: simulateReadableStream({ chunks: chunks as never[], chunkDelayInMs: 5 }) };
    },
  });
}

const weather = createTool({
  id: "weather",
  description: "The weather in a city (always sunny here).",
  inputSchema: z.object({ city: z.string() }),
  execute: async ({ city }) => ({ city, forecast: "sunny" }),
});

const echo = new Agent({
  id: "echo",
  name: "Echo",
  instructions: "Repeat what the user said.",
  model: ({ requestContext }) => mockModel(requestContext),
  tools: { weather },
  memory: new Memory({ options: { lastMessages: 20 } }),
});

const mastra = new Mastra({
  agents: { echo },
  storage: new InMemoryStore(), // memory threads live for the server's lifetime

  server: {
    // Copy the context headers into the request context, where the model reads them.
    middleware: [
      {
        path: "/api/*",
        handler: async (c, next) => {
          const requestContext = c.get("requestContext");
          for (const name of CONTEXT_HEADERS) {
            const value = c.req.header(name);
            if (value) requestContext.set(`header:${name}`, value);
          }
          await next();
        },
      },
    ],
  },
});

const app = new Hono();
app.get("/health", (c) => c.json({ ok: true }));
const server = new MastraServer({ app, mastra, prefix: "/api" });
await server.init();

const port = Number(process.argv[2] ?? 4111);
const listener = serve({ fetch: app.fetch, port, hostname: "127.0.0.1" }, () => {
  console.log(`mastra test server on http://127.0.0.1:${port}`);
});
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => listener.close(() => process.exit(0)));
}
