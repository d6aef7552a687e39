"""Call the example echo agent through the gateway with the Python client."""

from __future__ import annotations

import asyncio

from agentgateway_client import AgentClient


async def main() -> None:
    async with AgentClient.from_env() as client:  # $AGENT_GATEWAY_GRPC, default 127.0.0.1:50051
        for agent in await client.list_agents():
            print(f"agent {agent.name:10} kind={agent.kind:5} {agent.description}")
        result = await client.invoke("echo", "hello from Python", session_id="demo-session", timeout=5)
        print("invoke ->", result.text)
        print("  the agent saw:", result.messages[0].parts[1])
        print("stream ->", end=" ")
        async for event in client.stream("echo-grpc", "streamed words arrive one by one"):
            if event.type == "delta" and event.message is not None:
                print(event.message.text, end="", flush=True)
        print()


if __name__ == "__main__":
    asyncio.run(main())
