"""The process lifecycle: start both fronts, serve, drain on SIGTERM, stop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import grpc
from aiohttp import web
from grpc_health.v1 import health
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer

from gateway.config.schema import AdminListener, GatewayConfig, GrpcListener, HttpListener
from gateway.http1 import Http1Client
from gateway.patterns.durable import DurableWorkflows, wait_subjects
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
from gateway.server.a2a import A2A_GRPC_SERVICE, A2AFront, add_a2a_routes
from gateway.server.a2a_operations import A2AOperations
from gateway.server.a2a_rest import A2ARestBinding
from gateway.server.admin import AdminApi, build_admin_app
from gateway.server.connections import ListenError, ListenerSite, bind_failure, protocol_log
from gateway.server.cors import CorsRules
from gateway.server.drain import Drain
from gateway.server.events_grpc import EVENTS_SERVICE_NAME, EventsServicer, events_method_handlers
from gateway.server.events_http import add_event_routes
from gateway.server.grpc import build_grpc_server, mark_serving
from gateway.server.grpc_lazy import Handlers
from gateway.server.http import build_http_app, expectations_checked
from gateway.server.http_native import NativeFront
from gateway.server.passthrough import Passthrough
from gateway.server.ports import WorkerBinding
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
from gateway.transport import AdapterResources, lean_transports
from gateway.triggers import EventRuntime

if TYPE_CHECKING:
    from gateway.federation import Federation

log = logging.getLogger("agent_gateway")

# After the drain deadline, the time the fronts have to write the UNAVAILABLE answers.
ANSWER_TIME = 0.5


def _a2a_grpc_handlers(a2a: A2AFront, guard: ListenerGuard, listener: GrpcListener) -> Handlers:
    # Here, not at the top: the A2A gRPC binding (a2a-sdk's messages) loads at its first call.
    from gateway.server.a2a_grpc import A2AGrpcServicer, a2a_method_handlers

    return a2a_method_handlers(A2AGrpcServicer(a2a, guard, listener))


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _address(bound: tuple[str, int]) -> str:
    return f"{bound[0]}:{bound[1]}" if ":" not in bound[0] else f"[{bound[0]}]:{bound[1]}"


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
        worker: WorkerBinding | None = None,
    ) -> None:
        self.config = config
        # One worker of several (``server.workers``): the supervisor's ports, joined with
        # SO_REUSEPORT, and a private admin socket; None: the listeners as configured.
        self.worker = worker
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
        # One limiter and one set of budgets for both fronts: an identity's allowance is the same
        # whichever door it uses.
        self._limiter = RateLimiter(config.security.rate_limits)
        self._budgets = TokenBudgets(config.security.token_budgets)
        # Every start step pushes its cleanup here, so stop() undoes exactly what started, in
        # reverse, also after a start that failed halfway.
        self._stack = contextlib.AsyncExitStack()
        # The fronts' drains and the runs', run side by side within the drain deadline.
        self._drains: list[Callable[[], Awaitable[object]]] = []
        self._deadline = 0.0
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
        # A2A tasks beside the runs executing their turns (in memory without a state backend).
        self.task_store: TaskStore = build_task_store(config.state, config.runs)
        self.a2a_runs: RunManager | None = None
        self.tasks: TaskService | None = None
        self.federation: Federation | None = None

    async def start(self) -> BoundAddresses:
        """Open the stores, then the runtime, the admin listener and the fronts; raises
        ListenError when a listener cannot bind (call :meth:`stop` then, to close what did open)."""
        stack = self._stack
        tracer = self.tracer_provider.get_tracer(TRACER_NAME)
        if self._owns_provider:
            stack.callback(self.tracer_provider.shutdown)
        stack.callback(self.drain.close)
        await self._open_stores(stack)
        gateway = await self._start_runtime(stack, tracer)
        admin_address = await self._start_admin(stack, gateway)
        # Pushed before the fronts start, so a front that did start is drained even when a later one fails.
        stack.push_async_callback(self._drain_all)
        a2a = A2AFront(
            gateway,
            A2AOperations(gateway, self.tasks_service),
            self.config.listeners.http,
        )
        http_address = await self._start_http(stack, gateway, a2a, tracer)
        grpc_address = await self._start_grpc(gateway, a2a)
        listeners = self.config.listeners
        if grpc_address and listeners.grpc is not None:
            a2a.grpc_url = f"{'https' if listeners.grpc.tls else 'http'}://{grpc_address}"
        if http_address and listeners.http is not None:
            a2a.http_origin = f"{'https' if listeners.http.tls else 'http'}://{http_address}"
        self.addresses = BoundAddresses(http_address, grpc_address, admin_address)
        self.serving = True
        log.info("agent-gateway listening: http=%s grpc=%s admin=%s", http_address, grpc_address, admin_address)
        return self.addresses

    @property
    def tasks_service(self) -> TaskService:
        assert self.tasks is not None, "the runtime starts before the fronts"
        return self.tasks

    async def _open_stores(self, stack: contextlib.AsyncExitStack) -> None:
        # The state first, so an unreachable Redis fails the start before anything is listening.
        for store in (self.state, self.run_store, self.task_store):
            if store is not None:
                await store.open()
                stack.push_async_callback(store.close)
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True)
        self.http_session = aiohttp.ClientSession(connector=connector)
        stack.push_async_callback(self.http_session.close)
        # Passthrough must not decompress: bodies go through byte for byte.
        self.passthrough_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)
        stack.push_async_callback(self.passthrough_session.close)
        if self.config.server.upstream_client == "lean":
            self.upstream_client = Http1Client()
            stack.push_async_callback(self.upstream_client.close)

    async def _start_runtime(self, stack: contextlib.AsyncExitStack, tracer: Tracer) -> Gateway:
        """The gateway, its event runtime, durable workflows, background runs and A2A tasks."""
        assert self.http_session is not None
        config = self.config
        resources = AdapterResources(http=self.http_session)
        if self.upstream_client is not None:
            resources = AdapterResources(self.http_session, transports=lean_transports(self.upstream_client))
        self.gateway = gateway = Gateway(config, resources, tracer)
        stack.push_async_callback(gateway.aclose)
        self.events = events = EventRuntime(config, gateway, tracer)
        gateway.publish_completion = events.publish_completion
        await events.start()
        # After the fronts, whose calls may still publish; its handlers get what is left of the drain.
        stack.push_async_callback(lambda: events.aclose(self._time_left()))
        if config.state is not None and any(w.durable for w in config.workflows.values()):
            journal = build_journal(config.state, config.runs)
            self.durable = durable = DurableWorkflows(journal, config.runs.lease, lambda: gateway.workflows)
            gateway.durable_workflows = durable
            await durable.start()  # takes over runs left by a gateway that died
            # Durable workflow runs not done within the grace are suspended for another gateway.
            self._drains.append(lambda: durable.aclose(config.server.drain_timeout))
            await durable.listen(events.bus, wait_subjects(config))
        webhooks = WebhookSender(config.runs.webhooks, self.http_session, self._own_listeners)
        if self.run_store is not None:
            self.runs = a2a_runs = RunManager(self.run_store, gateway, config.runs, webhooks, events.publisher)
        else:
            # No state backend: A2A tasks and their runs live as long as the process.
            memory = SqliteRunStore(":memory:", config.runs.retention)
            await memory.open()
            stack.push_async_callback(memory.close)
            a2a_runs = RunManager(memory, gateway, config.runs, webhooks)
        await a2a_runs.start()
        self.a2a_runs = a2a_runs
        # Alongside the fronts: followers of a run end when it does.
        self._drains.append(lambda: a2a_runs.aclose(config.server.drain_timeout))
        self.tasks = tasks = TaskService(
            self.task_store, a2a_runs, webhooks, bool(config.runs.webhooks.allowed_prefixes)
        )
        if config.security.token_budgets:
            gateway.observer.on_finished.append(self._budgets.spent_by)
        stack.push_async_callback(tasks.aclose)
        return gateway

    async def _start_http(
        self, stack: contextlib.AsyncExitStack, gateway: Gateway, a2a: A2AFront, tracer: Tracer
    ) -> str | None:
        http = self.config.listeners.http
        if http is None:
            return None
        assert self.passthrough_session is not None
        assert self.events is not None
        config, security = self.config, self.config.security
        passthrough = Passthrough(gateway, self.passthrough_session, tracer, self.upstream_client)
        guard = ListenerGuard(http, security, self._limiter, self._budgets)
        app = build_http_app(gateway, passthrough, http, guard, self.drain)
        if self.state is not None and self.state_access is not None:
            add_state_routes(app, self.state, self.state_access)
        add_event_routes(app, self.events)
        if config.mcp.virtual_servers:
            self._start_mcp(stack, app, gateway, http, tracer)
        if self.runs is not None:
            add_run_routes(app, self.runs, http.sse_keepalive)
        if self.durable is not None:
            add_wait_routes(app, self.durable)
        add_a2a_routes(app, a2a)
        rest = A2ARestBinding(a2a)
        rest.add_routes(app, "/a2a/{agent}/rest")
        if config.a2a.default_agent is not None:
            rest.add_routes(app, "")  # the origin is the default agent's REST interface too
        # Calls end by the drain deadline (answered 503 if need be); the rest is for writing the answers.
        runner = web.AppRunner(app, shutdown_timeout=config.server.drain_timeout + ANSWER_TIME, handle_signals=False)
        await runner.setup()
        self.runner = runner
        self._drains.append(runner.cleanup)
        assert runner.server is not None
        runner.server.request_handler = expectations_checked(runner.server.request_handler)
        ssl_context = None
        if http.tls is not None:
            ssl_context = server_ssl_context(http.tls)
            self.cert_reloader = reloader = HttpCertificateReloader(http.tls, ssl_context)
            reloader.start()
            stack.push_async_callback(reloader.stop)
        host, port = _split(self.worker.http if self.worker and self.worker.http else http.address)
        router = None
        if config.server.http_server == "native":
            cors = CorsRules(http.cors) if http.cors is not None else None
            scheme = "https" if ssl_context is not None else "http"
            router = NativeFront(gateway, http, guard, self.drain, cors, scheme).route
        site = ListenerSite(
            runner,
            host,
            port,
            http,
            ssl_context,
            reuse_port=self.worker is not None,
            router=router,
            shutdown_timeout=config.server.drain_timeout + ANSWER_TIME,
        )
        await site.start()
        return _address(runner.addresses[0])

    def _start_mcp(
        self,
        stack: contextlib.AsyncExitStack,
        app: web.Application,
        gateway: Gateway,
        http: HttpListener,
        tracer: Tracer,
    ) -> None:
        # Here, not at the top: the MCP front and its federation load only with a virtual server.
        from gateway.federation import Federation
        from gateway.server.mcp import McpFront, add_mcp_routes

        assert self.http_session is not None
        config = self.config
        self.federation = federation = Federation(config.mcp, gateway, self.http_session, tracer)
        stack.push_async_callback(federation.aclose)
        origins = http.cors.allow_origins if http.cors is not None else []
        front = McpFront(
            federation, tracer, http.sse_keepalive, origins, config.mcp.authorization_servers, config.mcp.streams
        )
        add_mcp_routes(app, front)
        if self.reloader is not None:  # started before the fronts: from now on it reloads `mcp:` too
            self.reloader.appliers["mcp"] = front.reload

    async def _start_grpc(self, gateway: Gateway, a2a: A2AFront) -> str | None:
        listener = self.config.listeners.grpc
        if listener is None:
            return None
        if self.worker is not None:
            listener = listener.model_copy(update={"so_reuseport": True})
        assert self.events is not None
        guard = ListenerGuard(listener, self.config.security, self._limiter, self._budgets)
        extra = {EVENTS_SERVICE_NAME: events_method_handlers(EventsServicer(self.events, guard))}
        if self.state is not None and self.state_access is not None:
            extra[STATE_SERVICE_NAME] = state_method_handlers(
                StateServicer(self.state, self.state_access, guard, listener.max_json_depth)
            )
        if self.runs is not None:
            extra[RUN_SERVICE_NAME] = run_method_handlers(RunServicer(self.runs, gateway, guard))
        a2a_binding = functools.partial(_a2a_grpc_handlers, a2a, guard, listener)
        server, self.health = build_grpc_server(
            gateway, listener, guard, self.drain, extra, {A2A_GRPC_SERVICE: a2a_binding}
        )
        self.grpc_server = server
        self._drains.append(lambda: server.stop(self.config.server.drain_timeout + ANSWER_TIME))
        host, port = _split(self.worker.grpc if self.worker and self.worker.grpc else listener.address)
        target = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        # Tried first, so a port in use is one clear line rather than gRPC's own log of it.
        failure = bind_failure(host, port) if port and not listener.so_reuseport else None
        if failure is not None:
            raise ListenError(listener.address, failure)
        try:
            if listener.tls is not None:
                bound_port = server.add_secure_port(target, grpc_server_credentials(listener.tls))
            else:
                bound_port = server.add_insecure_port(target)
        except RuntimeError:
            raise ListenError(listener.address, bind_failure(host, port) or "gRPC could not bind it") from None
        await server.start()
        await mark_serving(self.health, True)
        return f"{host}:{bound_port}" if ":" not in host else f"[{host}]:{bound_port}"

    def _own_listeners(self) -> list[str]:
        """The gateway's listener addresses, configured and bound: outbound calls never go there."""
        listeners = self.config.listeners
        configured = [listeners.http, listeners.grpc, self.config.admin]
        bound = [self.addresses.http, self.addresses.grpc, self.addresses.admin]
        return [a for a in (*(c.address for c in configured if c is not None), *bound) if a]

    async def _start_admin(self, stack: contextlib.AsyncExitStack, gateway: Gateway) -> str | None:
        """The config watcher and the admin listener: up before the fronts, down after their drain,
        so readiness and metrics answer all along."""
        if self.config_path is not None:
            # The worker count is the process's for its life (it may come from --workers): reloads keep it.
            workers: dict[tuple[str, ...], object] = {("server", "workers"): self.config.server.workers}
            self.reloader = reloader = ConfigReloader(
                self.config_path, gateway, self.config.server.drain_timeout, workers
            )
            reloader.start(self.config.server.config_watch)
            stack.push_async_callback(reloader.stop)
        if self.config.admin is None and self.worker is None:
            return None
        api = AdminApi(gateway, self.config.admin or AdminListener(), lambda: self.serving, self.reloader)
        runner = web.AppRunner(build_admin_app(api), access_log=None, handle_signals=False, logger=protocol_log())
        await runner.setup()
        self.admin_runner = runner
        stack.push_async_callback(runner.cleanup)
        assert runner.server is not None
        runner.server.request_handler = expectations_checked(runner.server.request_handler)
        if self.worker is not None:
            # One worker of several: the supervisor serves the admin listener and reads this
            # worker's through a private socket.
            path = self.worker.admin_socket
            try:
                await web.UnixSite(runner, path).start()
            except OSError as exc:
                raise ListenError.from_os_error(path, exc) from None
            return f"unix:{path}"
        assert self.config.admin is not None
        host, port = _split(self.config.admin.address)
        try:
            await web.TCPSite(runner, host, port, reuse_address=True).start()
        except OSError as exc:
            raise ListenError.from_os_error(self.config.admin.address, exc) from None
        return _address(runner.addresses[0])

    async def _drain_all(self) -> None:
        await asyncio.gather(*(drain() for drain in self._drains), return_exceptions=True)

    def _time_left(self) -> float:
        return max(0.0, self._deadline - asyncio.get_running_loop().time())

    async def stop(self) -> None:
        """Drain: report NOT_SERVING, stop accepting, let in-flight calls run until
        ``server.drain_timeout``, answer the ones still running UNAVAILABLE, then close the
        rest, in the reverse order of their start. Safe after a start that failed halfway."""
        grace = self.config.server.drain_timeout
        self._deadline = asyncio.get_running_loop().time() + grace
        self.drain.begin(grace)
        self.serving = False  # readiness fails first, so load balancers stop sending
        if self.durable is not None:
            self.durable.begin_drain()  # durable runs the fronts cancel now are suspended, not undone
        if self.health is not None:
            await self.health.enter_graceful_shutdown()
        await self._stack.aclose()

    async def __aenter__(self) -> GatewayServer:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
