"""The process lifecycle: start both fronts, serve, drain on SIGTERM, stop."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
from aiohttp import web
from grpc_health.v1 import health
from opentelemetry.sdk.trace import TracerProvider

from gateway.adapters.base import AdapterResources
from gateway.config.schema import GatewayConfig
from gateway.federation import Federation
from gateway.http1 import Http1Client
from gateway.patterns.durable import DurableWorkflows, wait_subjects
from gateway.patterns.events import EventRuntime
from gateway.pipeline import Gateway
from gateway.runs.build import build_journal, build_run_store
from gateway.runs.manager import RunManager
from gateway.runs.sqlite import SqliteRunStore
from gateway.runs.store import RunStore
from gateway.runs.webhook import WebhookSender
from gateway.security.budgets import TokenBudgets
from gateway.security.guard import ListenerGuard
from gateway.security.ratelimit import RateLimiter
from gateway.security.tls import HttpCertificateReloader, grpc_server_credentials, server_ssl_context
from gateway.server.a2a import A2AFront, add_a2a_routes
from gateway.server.a2a_grpc import A2A_SERVICE_NAME, A2AGrpcServicer, a2a_method_handlers
from gateway.server.a2a_operations import A2AOperations
from gateway.server.a2a_rest import A2ARestBinding
from gateway.server.admin import AdminApi, build_admin_app
from gateway.server.connections import ListenError, ListenerSite, bind_failure, protocol_log
from gateway.server.drain import Drain
from gateway.server.events_grpc import EVENTS_SERVICE_NAME, EventsServicer, events_method_handlers
from gateway.server.events_http import add_event_routes
from gateway.server.grpc import build_grpc_server, mark_serving
from gateway.server.http import build_http_app, expectations_checked
from gateway.server.mcp import McpFront, add_mcp_routes
from gateway.server.passthrough import Passthrough
from gateway.server.reload import ConfigReloader
from gateway.server.runs_grpc import RUN_SERVICE_NAME, RunServicer, run_method_handlers
from gateway.server.runs_http import add_run_routes
from gateway.server.state_grpc import STATE_SERVICE_NAME, StateServicer, state_method_handlers
from gateway.server.state_http import add_state_routes
from gateway.server.waits_http import add_wait_routes
from gateway.state.access import ScopeAccess
from gateway.state.build import build_access, build_store
from gateway.state.store import StateStore
from gateway.tasks.build import build_task_store
from gateway.tasks.service import TaskService
from gateway.tasks.store import TaskStore
from gateway.telemetry.tracing import TRACER_NAME, build_tracer_provider
from gateway.transport import lean_transports

log = logging.getLogger("agent_gateway")

# After the drain deadline, the time the fronts have to write the UNAVAILABLE answers.
ANSWER_TIME = 0.5


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class BoundAddresses:
    http: str | None
    grpc: str | None
    admin: str | None = None


class GatewayServer:
    """Both fronts around one :class:`Gateway`; ``async with`` starts and stops it."""

    def __init__(
        self,
        config: GatewayConfig,
        tracer_provider: TracerProvider | None = None,
        config_path: str | Path | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.serving = False
        self.tracer_provider = tracer_provider or build_tracer_provider(config.telemetry.tracing)
        self._owns_provider = tracer_provider is None
        self.addresses = BoundAddresses(None, None)
        # The shared state service; None when the config says `state: null`.
        self.state: StateStore | None = build_store(config.state) if config.state is not None else None
        self.state_access: ScopeAccess | None = build_access(config.state) if config.state is not None else None
        # Background runs live beside the state (same SQLite file or Redis); none without it.
        self.run_store: RunStore | None = (
            build_run_store(config.state, config.runs) if config.state is not None else None
        )
        self.runs: RunManager | None = None
        # Durable workflow runs (journal and leases); only when a workflow is durable.
        self.durable: DurableWorkflows | None = None
        self.drain = Drain()
        # What start() opened, so stop() also undoes a start that failed halfway.
        self.http_session: aiohttp.ClientSession | None = None
        self.passthrough_session: aiohttp.ClientSession | None = None
        # The lean client of the adapters' and the passthrough's requests (None: aiohttp's).
        self.upstream_client: Http1Client | None = None
        self.gateway: Gateway | None = None
        self.events: EventRuntime | None = None
        self.runner: web.AppRunner | None = None
        self.cert_reloader: HttpCertificateReloader | None = None
        self.grpc_server: grpc.aio.Server | None = None
        self.health: health.aio.HealthServicer | None = None
        self.reloader: ConfigReloader | None = None
        self.admin_runner: web.AppRunner | None = None
        self._opened: list[StateStore | RunStore | TaskStore] = []
        # A2A tasks beside the runs executing their turns (in memory without a state backend).
        self.task_store: TaskStore = build_task_store(config.state, config.runs)
        self.a2a_runs: RunManager | None = None
        self.tasks: TaskService | None = None
        self.federation: Federation | None = None

    async def start(self) -> BoundAddresses:
        """Open the stores, then the fronts; raises ListenError when a listener cannot bind
        (call :meth:`stop` then, to close what did open)."""
        tracer = self.tracer_provider.get_tracer(TRACER_NAME)
        if self.state is not None:
            # First, so an unreachable Redis fails the start before anything is listening.
            await self.state.open()
            self._opened.append(self.state)
        if self.run_store is not None:
            await self.run_store.open()
            self._opened.append(self.run_store)
        await self.task_store.open()
        self._opened.append(self.task_store)
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True)
        self.http_session = aiohttp.ClientSession(connector=connector)
        # Passthrough must not decompress: bodies go through byte for byte.
        self.passthrough_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)
        resources = AdapterResources(http=self.http_session)
        if self.config.server.upstream_client == "lean":
            self.upstream_client = Http1Client()
            resources = AdapterResources(http=self.http_session, transports=lean_transports(self.upstream_client))
        self.gateway = gateway = Gateway(self.config, resources, tracer)
        self.events = events = EventRuntime(self.config, gateway, tracer)
        events.attach(gateway)
        await events.start()
        if self.config.state is not None and any(w.durable for w in self.config.workflows.values()):
            journal = build_journal(self.config.state, self.config.runs)
            self.durable = DurableWorkflows(journal, self.config.runs.lease, lambda: gateway.workflows)
            gateway.durable_workflows = self.durable
            await self.durable.start()  # takes over runs left by a gateway that died
            await self.durable.listen(events.bus, wait_subjects(self.config))
        webhooks = WebhookSender(self.config.runs.webhooks, self.http_session, self._own_listeners)
        if self.run_store is not None:
            self.runs = RunManager(self.run_store, gateway, self.config.runs, webhooks, events.publisher)
            await self.runs.start()
        self.a2a_runs = self.runs
        if self.a2a_runs is None:
            # No state backend: A2A tasks and their runs live as long as the process.
            a2a_run_store = SqliteRunStore(":memory:", self.config.runs.retention)
            await a2a_run_store.open()
            self._opened.append(a2a_run_store)
            self.a2a_runs = RunManager(a2a_run_store, gateway, self.config.runs, webhooks)
            await self.a2a_runs.start()
        self.tasks = TaskService(
            self.task_store, self.a2a_runs, webhooks, bool(self.config.runs.webhooks.allowed_prefixes)
        )
        listeners = self.config.listeners
        security = self.config.security
        # One limiter for both fronts: an identity's budget is the same whichever door it uses.
        limiter = RateLimiter(security.rate_limits)
        budgets = TokenBudgets(security.token_budgets)
        if security.token_budgets:
            self.gateway.calls.on_finished.append(budgets.spent_by)
        http_address = grpc_address = None
        a2a = A2AFront(
            gateway,
            A2AOperations(gateway, self.tasks),
            listeners.http.sse_keepalive if listeners.http is not None else None,
        )
        if listeners.http is not None:
            http = listeners.http
            passthrough = Passthrough(gateway, self.passthrough_session, tracer, self.upstream_client)
            guard = ListenerGuard(http, security, limiter, budgets)
            app = build_http_app(gateway, passthrough, http, guard, self.drain)
            if self.state is not None and self.state_access is not None:
                add_state_routes(app, self.state, self.state_access)
            add_event_routes(app, events)
            if self.config.mcp.virtual_servers:
                self.federation = Federation(self.config.mcp, gateway, self.http_session, tracer)
                origins = http.cors.allow_origins if http.cors is not None else []
                front = McpFront(
                    self.federation, tracer, http.sse_keepalive, origins, self.config.mcp.authorization_servers
                )
                add_mcp_routes(app, front)
            if self.runs is not None:
                add_run_routes(app, self.runs, http.sse_keepalive)
            if self.durable is not None:
                add_wait_routes(app, self.durable)
            add_a2a_routes(app, a2a)
            rest = A2ARestBinding(a2a)
            rest.add_routes(app, "/a2a/{agent}/rest")
            if self.config.a2a.default_agent is not None:
                rest.add_routes(app, "")  # the origin is the default agent's REST interface too
            # Calls end by the drain deadline (answered 503 if need be); the rest is for writing the answers.
            self.runner = web.AppRunner(
                app, shutdown_timeout=self.config.server.drain_timeout + ANSWER_TIME, handle_signals=False
            )
            await self.runner.setup()
            assert self.runner.server is not None
            self.runner.server.request_handler = expectations_checked(self.runner.server.request_handler)
            ssl_context = None
            if http.tls is not None:
                ssl_context = server_ssl_context(http.tls)
                self.cert_reloader = HttpCertificateReloader(http.tls, ssl_context)
                self.cert_reloader.start()
            host, port = _split(http.address)
            await ListenerSite(self.runner, host, port, http, ssl_context).start()
            bound = self.runner.addresses[0]
            http_address = f"{bound[0]}:{bound[1]}" if ":" not in bound[0] else f"[{bound[0]}]:{bound[1]}"
        if listeners.grpc is not None:
            grpc_listener = listeners.grpc
            grpc_guard = ListenerGuard(grpc_listener, security, limiter, budgets)
            extra = {}
            extra[EVENTS_SERVICE_NAME] = events_method_handlers(EventsServicer(events, grpc_guard))
            if self.state is not None and self.state_access is not None:
                extra[STATE_SERVICE_NAME] = state_method_handlers(
                    StateServicer(self.state, self.state_access, grpc_guard, grpc_listener.max_json_depth)
                )
            if self.runs is not None:
                extra[RUN_SERVICE_NAME] = run_method_handlers(RunServicer(self.runs, grpc_guard))
            extra[A2A_SERVICE_NAME] = a2a_method_handlers(A2AGrpcServicer(a2a, grpc_guard))
            self.grpc_server, self.health = build_grpc_server(gateway, grpc_listener, grpc_guard, self.drain, extra)
            host, port = _split(grpc_listener.address)
            target = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
            # Tried first, so a port in use is one clear line rather than gRPC's own log of it.
            failure = bind_failure(host, port) if port and not grpc_listener.so_reuseport else None
            if failure is not None:
                raise ListenError(grpc_listener.address, failure)
            try:
                if grpc_listener.tls is not None:
                    bound_port = self.grpc_server.add_secure_port(target, grpc_server_credentials(grpc_listener.tls))
                else:
                    bound_port = self.grpc_server.add_insecure_port(target)
            except RuntimeError:
                raise ListenError(grpc_listener.address, bind_failure(host, port) or "gRPC could not bind it") from None
            await self.grpc_server.start()
            await mark_serving(self.health, True)
            grpc_address = f"{host}:{bound_port}" if ":" not in host else f"[{host}]:{bound_port}"
        if grpc_address and listeners.grpc is not None:
            a2a.grpc_url = f"{'https' if listeners.grpc.tls else 'http'}://{grpc_address}"
        if http_address and listeners.http is not None:
            a2a.http_origin = f"{'https' if listeners.http.tls else 'http'}://{http_address}"
        admin_address = await self._start_admin(gateway)
        self.addresses = BoundAddresses(http_address, grpc_address, admin_address)
        self.serving = True
        log.info("agent-gateway listening: http=%s grpc=%s admin=%s", http_address, grpc_address, admin_address)
        return self.addresses

    def _own_listeners(self) -> list[str]:
        """The gateway's listener addresses, configured and bound: outbound calls never go there."""
        listeners = self.config.listeners
        configured = [listeners.http, listeners.grpc, self.config.admin]
        bound = [self.addresses.http, self.addresses.grpc, self.addresses.admin]
        return [a for a in (*(c.address for c in configured if c is not None), *bound) if a]

    async def _start_admin(self, gateway: Gateway) -> str | None:
        if self.config_path is not None:
            self.reloader = ConfigReloader(self.config_path, gateway, self.config.server.drain_timeout)
            self.reloader.start(self.config.server.config_watch)
        if self.config.admin is None:
            return None
        api = AdminApi(gateway, self.config.admin, lambda: self.serving, self.reloader)
        self.admin_runner = web.AppRunner(
            build_admin_app(api), access_log=None, handle_signals=False, logger=protocol_log()
        )
        await self.admin_runner.setup()
        assert self.admin_runner.server is not None
        self.admin_runner.server.request_handler = expectations_checked(self.admin_runner.server.request_handler)
        host, port = _split(self.config.admin.address)
        try:
            await web.TCPSite(self.admin_runner, host, port, reuse_address=True).start()
        except OSError as exc:
            raise ListenError.from_os_error(self.config.admin.address, exc) from None
        bound = self.admin_runner.addresses[0]
        return f"{bound[0]}:{bound[1]}" if ":" not in bound[0] else f"[{bound[0]}]:{bound[1]}"

    async def stop(self) -> None:
        """Drain: report NOT_SERVING, stop accepting, let in-flight calls run until
        ``server.drain_timeout``, answer the ones still running UNAVAILABLE, then close the
        rest. Safe after a start that failed halfway."""
        grace = self.config.server.drain_timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        self.drain.begin(grace)
        self.serving = False  # readiness fails first, so load balancers stop sending
        if self.durable is not None:
            self.durable.begin_drain()  # durable runs the fronts cancel now are suspended, not undone
        if self.health is not None:
            await self.health.enter_graceful_shutdown()
        waits = []
        if self.grpc_server is not None:
            waits.append(self.grpc_server.stop(grace + ANSWER_TIME))
        if self.runner is not None:
            waits.append(self.runner.cleanup())
        if self.a2a_runs is not None:
            # Alongside the fronts: followers of a run end when it does.
            waits.append(self.a2a_runs.aclose(grace))
        if self.durable is not None:
            # Durable workflow runs not done within the grace are suspended for another gateway.
            waits.append(self.durable.aclose(grace))
        await asyncio.gather(*waits, return_exceptions=True)
        if self.tasks is not None:
            await self.tasks.aclose()
        if self.cert_reloader is not None:
            await self.cert_reloader.stop()
        if self.events is not None:
            # After the fronts, whose calls may still publish; its handlers get what is left of the drain.
            await self.events.aclose(max(0.0, deadline - loop.time()))
        if self.reloader is not None:
            await self.reloader.stop()
        if self.federation is not None:
            await self.federation.aclose()
        if self.gateway is not None:
            await self.gateway.aclose()
        if self.admin_runner is not None:
            await self.admin_runner.cleanup()
        for store in reversed(self._opened):
            await store.close()
        for session in (self.http_session, self.passthrough_session):
            if session is not None:
                await session.close()
        if self.upstream_client is not None:
            await self.upstream_client.close()
        self.drain.close()
        if self._owns_provider:
            self.tracer_provider.shutdown()

    async def __aenter__(self) -> GatewayServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
