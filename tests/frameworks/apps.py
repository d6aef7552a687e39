"""How each framework's test server is launched (by the fixtures, or early at collection time)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from tests.frameworks import envs
from tests.frameworks.servers import ServerProcess, base_env, free_port, launch_server

FRAMEWORKS_DIR = Path(__file__).parent
CREW_TOKEN = "crew-test-token"


def launch_langgraph(workdir: Path, log_path: Path) -> ServerProcess:
    # Run from a copy: `langgraph dev` resolves graph paths and keeps its state in its working directory.
    for name in ("graph.py", "langgraph.json"):
        shutil.copy(FRAMEWORKS_DIR / "langgraph" / name, workdir / name)
    port = free_port()
    env = base_env(
        workdir / "home",
        LANGSMITH_TRACING="false",
        LANGGRAPH_NO_VERSION_CHECK="true",
        LANGGRAPH_CLI_NO_ANALYTICS="1",
    )
    argv = [str(envs.env_bin("langgraph", "langgraph")), "dev", "--no-browser", "--no-reload"]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    return launch_server(argv, port=port, cwd=workdir, env=env, ready_path="/ok", log_path=log_path)


def launch_crewai(workdir: Path, log_path: Path) -> ServerProcess:
    env = base_env(
        workdir,  # HOME: CrewAI writes its storage and keys there
        PYTHONPATH=str(envs.REPO_ROOT),  # the host module comes from this checkout
        CREWAI_DISABLE_TELEMETRY="true",
        CREWAI_TRACING_ENABLED="false",
        OTEL_SDK_DISABLED="true",
        CREWAI_STORAGE_DIR="agent-gateway-tests",
    )
    port = free_port()
    argv = [str(envs.env_bin("crewai", "python")), str(FRAMEWORKS_DIR / "crewai" / "crew_app.py"), str(port)]
    argv.append(CREW_TOKEN)
    return launch_server(argv, port=port, cwd=workdir, env=env, ready_path="/health", log_path=log_path)


def launch_a2a(workdir: Path, log_path: Path) -> ServerProcess:
    port = free_port()
    argv = [sys.executable, str(FRAMEWORKS_DIR / "a2a" / "server.py"), str(port)]
    return launch_server(
        argv,
        port=port,
        cwd=workdir,
        env=base_env(workdir),
        ready_path="/.well-known/agent-card.json",
        log_path=log_path,
    )


def launch_pydantic_ai(workdir: Path, log_path: Path) -> ServerProcess:
    port = free_port()
    # Pydantic AI reports nothing by itself; Logfire (its optional telemetry) is not installed.
    env = base_env(workdir, OTEL_SDK_DISABLED="true", LOGFIRE_SEND_TO_LOGFIRE="false")
    argv = [str(envs.env_bin("pydantic_ai", "python")), str(FRAMEWORKS_DIR / "pydantic_ai" / "agent_app.py"), str(port)]
    return launch_server(
        argv, port=port, cwd=workdir, env=env, ready_path="/.well-known/agent-card.json", log_path=log_path
    )


def launch_adk(workdir: Path, log_path: Path) -> ServerProcess:
    port = free_port()
    env = base_env(
        workdir,
        OTEL_SDK_DISABLED="true",  # ADK exports nothing then; the trace context still propagates (the API)
        GOOGLE_GENAI_USE_VERTEXAI="false",
        PYTHONWARNINGS="ignore",  # ADK warns on every request that its A2A support is experimental
    )
    argv = [str(envs.env_bin("adk", "python")), str(FRAMEWORKS_DIR / "adk" / "agent_app.py"), str(port)]
    return launch_server(
        argv, port=port, cwd=workdir, env=env, ready_path="/.well-known/agent-card.json", log_path=log_path
    )


def launch_mastra(workdir: Path, log_path: Path) -> ServerProcess:
    # Runs in place: server.ts resolves its packages from the project's node_modules.
    env = base_env(workdir, MASTRA_TELEMETRY_DISABLED="1", NODE_ENV="test", OTEL_SDK_DISABLED="true")
    port = free_port()
    argv = [str(envs.node_bin("mastra")), str(FRAMEWORKS_DIR / "mastra" / "server.ts"), str(port)]
    return launch_server(argv, port=port, cwd=FRAMEWORKS_DIR / "mastra", env=env, ready_path="/health", log_path=log_path)


def launch_grpc_js(workdir: Path, log_path: Path) -> ServerProcess:
    port = free_port()
    # The committed TypeScript stubs, next to the project's node_modules so their imports resolve.
    stubs = FRAMEWORKS_DIR / "mastra" / "gen" / "agentgateway" / "v1"
    stubs.mkdir(parents=True, exist_ok=True)
    for stub in (envs.REPO_ROOT / "proto" / "agentgateway" / "v1").glob("*_pb.ts"):
        shutil.copyfile(stub, stubs / stub.name)
    # Type stripping alone cannot run the stubs' enums: transform them.
    node = [str(envs.node_bin("mastra")), "--experimental-transform-types", "--no-warnings=ExperimentalWarning"]
    argv = [*node, str(FRAMEWORKS_DIR / "mastra" / "grpc_agent.ts"), str(port)]
    return launch_server(
        argv, port=port, cwd=FRAMEWORKS_DIR / "mastra", env=base_env(workdir), ready_path=None, log_path=log_path
    )


Launcher = Callable[[Path, Path], ServerProcess]
# Server name -> (the environment it needs, or None for the dev extra; its launcher).
SERVERS: dict[str, tuple[str | None, Launcher]] = {
    "langgraph": ("langgraph", launch_langgraph),
    "langgraph-killable": ("langgraph", launch_langgraph),  # a second one, for the server-killed test
    "crewai": ("crewai", launch_crewai),
    "a2a": (None, launch_a2a),
    "pydantic_ai": ("pydantic_ai", launch_pydantic_ai),
    "pydantic_ai-killable": ("pydantic_ai", launch_pydantic_ai),
    "adk": ("adk", launch_adk),
    "adk-killable": ("adk", launch_adk),
    "mastra": ("mastra", launch_mastra),
    "mastra-killable": ("mastra", launch_mastra),
    "grpc-js": ("mastra", launch_grpc_js),  # the same npm project
}
# Test module -> the servers it uses.
MODULE_SERVERS = {
    "test_langgraph": ("langgraph", "langgraph-killable"),
    "test_crewai": ("crewai",),
    "test_a2a": ("a2a",),
    "test_a2a_peers": ("pydantic_ai", "adk"),
    "test_mixed": ("langgraph", "crewai", "mastra"),
    "test_mastra": ("mastra", "mastra-killable"),
    "test_grpc_js": ("grpc-js",),
    "test_cross_framework_trace": ("langgraph", "mastra"),
}
