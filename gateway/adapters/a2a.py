"""A2A (Agent2Agent) adapter: JSON-RPC ``SendMessage``/``SendStreamingMessage``.

Speaks A2A 1.0 (``A2A-Version: 1.0``, the protobuf JSON shapes: ``{"text"}``
parts, ``TASK_STATE_*`` states, ``{"task"|"message"|"statusUpdate"|
"artifactUpdate"}`` stream frames) and reads the 0.3 shapes too (``kind``
discriminators, lower-case states), since servers in the wild mix them.
The JSON-RPC endpoint comes from the agent card
(``/.well-known/agent-card.json``) unless ``rpc_url`` is set. The card only
chooses a path: a card URL on another origin (scheme, host, port) than the
configured endpoint is called on the endpoint's origin, unless
``follow_card_url`` is on; and the configured ``headers`` (credentials) go
only to the configured origins, never to one a card named. The gateway's
thread (or session) id maps to the A2A ``contextId``. A stream abandoned
before its task ended (the caller went away, the deadline passed) cancels the
task upstream (``CancelTask`` / ``tasks/cancel``), best effort.

Servers differ in two ways the adapter absorbs: one that answers
``SendMessage`` with a task still submitted or working (FastA2A, which serves
Pydantic AI, never blocks), or closes its stream so (an a2a-sdk executor that
returned early), is polled with ``GetTask`` until the task ends or waits for
the client; and a stream that sends an artifact in chunks and then
the whole artifact again (``append`` false, the same ``artifactId``: a
replacement) yields only the text the chunks had not already given.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from yarl import URL

from gateway.adapters.a2a_grpc import A2AGrpcUpstream
from gateway.adapters.a2a_options import (
    CANCEL_METHOD,
    FAILED,
    GET_METHOD,
    METHODS,
    PENDING,
    POLL_FIRST,
    POLL_MAX,
    REJECTED,
    TERMINAL,
    WAITING,
    A2AOptions,
    origin_of,
)
from gateway.adapters.base import Adapter, AdapterResources
from gateway.adapters.kit import conversation_id, send_cancel, sse_json, upstream_uuid
from gateway.adapters.usage import token_usage
from gateway.model import (
    JSON,
    AgentSpec,
    Attempt,
    DataPart,
    Event,
    GatewayError,
    Message,
    Result,
    Role,
    TextPart,
    UpstreamError,
    UpstreamRejected,
    UpstreamTls,
)
from gateway.protocols.a2a import a2a_part, frame_kind, gateway_message, gateway_part, normalize_state
from gateway.transport import HttpTransport

CONTEXT_NAMESPACE = uuid.UUID("b3c1d7e2-5a4f-5b6c-8d9e-0f1a2b3c4d5e")


class _NotStreamed(Exception):
    """The agent refused the stream a unary call was sent as."""


class A2AAdapter(Adapter):
    kind = "a2a"
    Options = A2AOptions

    def __init__(self, spec: AgentSpec, resources: AdapterResources) -> None:
        super().__init__(spec, resources)
        self.options: A2AOptions
        protocol = {"a2a-version": "1.0"} if self.options.protocol_version == "1.0" else {}
        self.transport = resources.transports(
            resources.http, spec.name, spec.endpoint, {**self.options.headers, **protocol}, tls=spec.tls
        )
        # For a card URL on another origin (follow_card_url): no configured headers, no client
        # certificate, no server-name override; the configured CA still verifies it.
        foreign_tls = UpstreamTls(ca_file=spec.tls.ca_file) if spec.tls is not None and spec.tls.ca_file else None
        self.foreign = resources.transports(resources.http, spec.name, spec.endpoint, protocol, tls=foreign_tls)
        self.endpoint = URL(spec.endpoint)
        self.trusted = {origin_of(self.endpoint)}
        if self.options.rpc_url:
            self.trusted.add(origin_of(URL(self.options.rpc_url)))
        self._rpc_url: str = self.options.rpc_url
        self._grpc: A2AGrpcUpstream | None = None
        # Set once the agent refused to stream: unary calls are then sent as such.
        self._unary_only = False
        # HTTP+JSON: rpc_url is the REST base (``{base}/message:send``...).
        self._rest = self.options.binding == "HTTP+JSON"
        if self.options.binding == "GRPC" and self.options.grpc_target:
            self._grpc = self._grpc_upstream(self.options.grpc_target, self.options.grpc_tenant)

    def _grpc_upstream(self, target: str, tenant: str) -> A2AGrpcUpstream:
        host = target.rpartition(":")[0].strip("[]").lower()
        # Credentials (headers, the client certificate) only to the endpoint's host or a configured target.
        trusted = host == (self.endpoint.host or "").lower() or target == self.options.grpc_target
        metadata = {**self.options.headers, "a2a-version": "1.0"} if trusted else {"a2a-version": "1.0"}
        return A2AGrpcUpstream(self.spec.name, target, tenant, metadata, self.spec.tls if trusted else None)

    def transport_for(self, url: str) -> HttpTransport:
        """The configured transport (credentials included) on a configured origin, else the bare one."""
        return self.transport if origin_of(URL(url)) in self.trusted else self.foreign

    def _card_target(self, named: str) -> str:
        url = self.endpoint.join(URL(named))  # a relative card URL is relative to the endpoint
        if url.scheme not in ("http", "https"):
            raise ValueError(named)
        if origin_of(url) in self.trusted or self.options.follow_card_url:
            return str(url)
        return str(self.endpoint.origin().join(URL(url.raw_path_qs, encoded=True)))

    async def rpc_url(self, call: Attempt) -> str:
        """The JSON-RPC endpoint, from the agent card on first use ("" once the card chose gRPC)."""
        if self._rpc_url or self._grpc is not None:
            return self._rpc_url
        _, card = await self.transport.request_json(call, "GET", self.options.card_path)
        if not isinstance(card, dict):
            raise UpstreamError("the agent card is not a JSON object", agent=self.spec.name)
        found: dict[str, Mapping[str, Any]] = {}
        for interface in card.get("supportedInterfaces") or card.get("additionalInterfaces") or []:
            binding = str(interface.get("protocolBinding") or interface.get("transport") or "").upper()
            if interface.get("url") and binding not in found:
                found[binding] = interface
        wanted = self.options.binding
        if wanted == "auto":
            wanted = next((b for b in ("JSONRPC", "HTTP+JSON", "GRPC") if b in found), "JSONRPC")
        self._rest = wanted == "HTTP+JSON"
        named = str(found[wanted]["url"]) if wanted in found and wanted != "GRPC" else ""
        grpc_interface = found.get("GRPC") if wanted == "GRPC" else None
        if not named and isinstance(card.get("url"), str) and wanted == "JSONRPC":
            named = card["url"]
        if grpc_interface is not None:
            self._grpc = self._grpc_upstream(
                self._grpc_target(str(grpc_interface["url"])), str(grpc_interface.get("tenant") or "")
            )
            return ""
        if not named:
            raise UpstreamError(f"the agent card names no {wanted} interface", agent=self.spec.name)
        try:
            self._rpc_url = self._card_target(named)
        except ValueError:
            raise UpstreamError(
                f"the agent card's URL {named[:200]!r} is not an http(s) URL", agent=self.spec.name
            ) from None
        return self._rpc_url

    def _grpc_target(self, named: str) -> str:
        """A card's gRPC target; on another host than the endpoint's only with follow_card_url."""
        # Cards write it as a URL (http(s)://host:port, as the spec's example) or a bare host:port.
        if "://" in named:
            url = URL(named)
            raw_host = url.raw_host or ""
            target = f"[{raw_host}]:{url.port}" if ":" in raw_host else f"{raw_host}:{url.port}"
        else:
            target = named.rstrip("/")
        host, _, port = target.rpartition(":")
        if host.strip("[]").lower() == (self.endpoint.host or "").lower() or self.options.follow_card_url:
            return target
        endpoint_host = self.endpoint.host or ""
        return f"[{endpoint_host}]:{port}" if ":" in endpoint_host else f"{endpoint_host}:{port}"

    def _request(self, call: Attempt, streaming: bool) -> dict[str, Any]:
        method = METHODS[self.options.protocol_version][1 if streaming else 0]
        return {"jsonrpc": "2.0", "id": uuid.uuid4().hex, "method": method, "params": self._params(call)}

    def _params(self, call: Attempt) -> dict[str, Any]:
        """The ``SendMessageRequest`` (JSON-RPC ``params``; over gRPC always in 1.0 shapes)."""
        version = "1.0" if self._grpc is not None or self._rest else self.options.protocol_version
        source = call.invocation.messages[-1]
        message: dict[str, Any] = {
            "role": "ROLE_USER" if version == "1.0" else "user",
            "parts": [a2a_part(p, version) for p in source.parts],
            "messageId": source.message_id or uuid.uuid4().hex,
        }
        if version == "0.3":
            message["kind"] = "message"
        if conversation := conversation_id(call.context):
            message["contextId"] = upstream_uuid(CONTEXT_NAMESPACE, self.spec.name, conversation)
        params: dict[str, Any] = {"message": message}
        extra = call.invocation.options.params
        if isinstance(extra.get("configuration"), dict):
            params["configuration"] = extra["configuration"]
        if isinstance(extra.get("metadata"), dict):
            params["metadata"] = extra["metadata"]
        return params

    def _result(self, envelope: Any) -> Mapping[str, Any]:
        if not isinstance(envelope, dict):
            raise UpstreamError("the agent sent a malformed JSON-RPC response", agent=self.spec.name)
        if isinstance(envelope.get("error"), dict):
            error = envelope["error"]
            code = error.get("code")
            message = f"A2A error {code}: {error.get('message', '')}"
            details: dict[str, JSON] = {"a2a_error_code": code}
            if code == -32603:
                raise UpstreamError(message, agent=self.spec.name, details=details)
            raise UpstreamRejected(message, agent=self.spec.name, details=details)
        result = envelope.get("result")
        if not isinstance(result, dict):
            raise UpstreamError("the JSON-RPC response has no result", agent=self.spec.name)
        return result

    def _rest_result(self, answer: Any) -> Mapping[str, Any]:
        """An HTTP+JSON answer or stream frame; an error body (google.rpc.Status) is the agent's refusal."""
        if not isinstance(answer, dict):
            raise UpstreamError("the agent sent a malformed HTTP+JSON answer", agent=self.spec.name)
        if isinstance(answer.get("error"), dict):
            error = answer["error"]
            raise UpstreamRejected(
                f"A2A error {error.get('status', '')}: {error.get('message', '')}", agent=self.spec.name
            )
        return answer

    def _check_state(self, state: str, task: Mapping[str, Any]) -> None:
        if state in FAILED | REJECTED:
            status_message = task.get("status", {}).get("message") if isinstance(task.get("status"), dict) else None
            reason = gateway_message(status_message).text if isinstance(status_message, dict) else ""
            error = UpstreamRejected if state in REJECTED else UpstreamError
            raise error(
                f"the A2A task ended {state}{': ' + reason if reason else ''}",
                agent=self.spec.name,
                details={"a2a_task_id": task.get("id") or task.get("taskId"), "a2a_state": state},
            )

    async def invoke(self, call: Attempt) -> Result:
        url = await self.rpc_url(call)
        if self.options.invoke_by_stream and not self._unary_only:
            try:
                reply = await self._assembled(call, url)
            except _NotStreamed:
                # The agent does not stream (UnsupportedOperation, a plain JSON answer): ask it plainly from now on.
                self._unary_only = True
                reply = await self._unary(call, url)
        else:
            reply = await self._unary(call, url)
        kind, payload = frame_kind(reply)
        if kind == "message":
            return Result(self.spec.name, (gateway_message(payload),))
        if normalize_state(payload.get("status", {}).get("state")) in PENDING:
            payload = await self._settled(call, url, payload)
        state = normalize_state(payload.get("status", {}).get("state"))
        self._check_state(state, payload)
        messages = [
            Message(
                Role.AGENT,
                tuple(p for p in (gateway_part(x) for x in artifact.get("parts", [])) if p),
                {"artifact": artifact.get("name") or artifact.get("artifactId", "")},
            )
            for artifact in payload.get("artifacts", [])
            if isinstance(artifact, dict)
        ]
        status_message = payload.get("status", {}).get("message")
        if not messages and isinstance(status_message, dict):
            messages.append(gateway_message(status_message))
        metadata: dict[str, JSON] = {
            "a2a_task_id": payload.get("id"),
            "a2a_context_id": payload.get("contextId"),
            "a2a_state": state,
        }
        # A2A has no usage field of its own; agents that report one put it in the task's metadata.
        task_metadata = payload.get("metadata")
        usage = token_usage(task_metadata.get("usage")) if isinstance(task_metadata, dict) else None
        return Result(self.spec.name, tuple(messages), metadata, usage)

    async def _settled(self, call: Attempt, url: str, task: Mapping[str, Any]) -> Mapping[str, Any]:
        """The task polled with ``GetTask`` until it ends or waits for the client (within the call's
        deadline); given up on (deadline, caller gone, failure), it is cancelled upstream."""
        task_id = str(task.get("id") or "")
        if not task_id:
            return task
        self._answered(call, task)
        delay = POLL_FIRST
        settled = False
        try:
            while normalize_state(task.get("status", {}).get("state")) in PENDING:
                await asyncio.sleep(delay)
                delay = min(delay * 2, POLL_MAX)
                task = await self._get_task(call, url, task_id)
            settled = True
        finally:
            if not settled:
                self.cancel_abandoned(call, {"task_id": task_id, "rpc_url": url})
        return task

    def _answered(self, call: Attempt, task: Mapping[str, Any]) -> None:
        """Tell a caller listening (``CallRecord.on_answer``) that the agent answered its call with
        the task working: its turn is over there, though the task goes on."""
        report = call.invocation.record.on_answer
        state = normalize_state(task.get("status", {}).get("state"))
        # A submitted task is an agent that does not block at all (FastA2A): nothing to mirror.
        if report is None or not self.options.mirror_blocking or state != "working":
            return
        data = {"state": state, "task_id": task.get("id"), "context_id": task.get("contextId"), "answered": True}
        report(Event("status", data=data))

    async def _get_task(self, call: Attempt, url: str, task_id: str) -> Mapping[str, Any]:
        if self._grpc is not None:
            return await self._grpc.get(call, task_id)
        if self._rest:
            _, answer = await self.transport_for(url).request_json(call, "GET", f"{url}/tasks/{task_id}")
            return frame_kind(self._rest_result(answer))[1]
        body = {
            "jsonrpc": "2.0",
            "id": uuid.uuid4().hex,
            "method": GET_METHOD[self.options.protocol_version],
            "params": {"id": task_id},
        }
        _, envelope = await self.transport_for(url).request_json(call, "POST", url, body)
        return frame_kind(self._result(envelope))[1]

    async def stream(self, call: Attempt) -> AsyncIterator[Event]:
        url = await self.rpc_url(call)
        task_id = ""
        state = ""
        ended = False  # the upstream closed the stream itself (even in input-required: the task waits)
        streamed: dict[str, str] = {}  # artifactId -> the text its chunks gave so far
        try:
            async for frame in self._frames(call, url):
                kind, payload = frame_kind(frame)
                if kind != "message":
                    task_id = str(payload.get("id") if kind == "task" else payload.get("taskId") or task_id)
                if isinstance(payload.get("status"), dict):
                    state = normalize_state(payload["status"].get("state"))
                for event in self._events(kind, payload, streamed):
                    yield event
            ended = True
        finally:
            if task_id and not ended and state not in TERMINAL:
                self.cancel_abandoned(call, {"task_id": task_id, "rpc_url": url})
        if task_id and state in PENDING:
            # The agent closed its stream with the task still open (an a2a-sdk executor that returned
            # early): followed with GetTask until it ends or waits, as a unary call's task is.
            task = await self._settled(call, url, {"id": task_id, "status": {"state": state}})
            for artifact in task.get("artifacts") or []:
                for event in self._events("artifact-update", {"artifact": artifact}, streamed):
                    yield event
            for event in self._events("status-update", task, streamed):
                yield event

    async def _unary(self, call: Attempt, url: str) -> Mapping[str, Any]:
        """``SendMessage`` on the binding in use: the task (or message) it answers."""
        if self._grpc is not None:
            return await self._grpc.send(call, self._params(call))
        if self._rest:
            _, answer = await self.transport_for(url).request_json(
                call, "POST", f"{url}/message:send", self._params(call)
            )
            return self._rest_result(answer)
        _, envelope = await self.transport_for(url).request_json(call, "POST", url, self._request(call, False))
        return self._result(envelope)

    async def _assembled(self, call: Attempt, url: str) -> Mapping[str, Any]:
        """The stream's frames assembled as the unary answer would be (the task, its artifacts with
        appended parts joined); an abandoned stream cancels the task upstream."""
        task: dict[str, Any] = {}
        artifacts: dict[str, dict[str, Any]] = {}
        task_id = state = ""
        ended = received = False
        try:
            async for frame in self._frames(call, url):
                received = True
                kind, payload = frame_kind(frame)
                if kind == "message":
                    ended = True
                    return {"message": payload}
                if kind == "task":
                    task = dict(payload)
                    task_id = str(payload.get("id") or "")
                    for artifact in payload.get("artifacts") or []:
                        artifacts[str(artifact.get("artifactId"))] = {
                            **artifact,
                            "parts": list(artifact.get("parts", [])),
                        }
                elif kind == "artifact-update":
                    artifact = payload.get("artifact") or {}
                    key = str(artifact.get("artifactId"))
                    if payload.get("append") and key in artifacts:
                        artifacts[key]["parts"] += list(artifact.get("parts", []))
                    else:
                        artifacts[key] = {**artifact, "parts": list(artifact.get("parts", []))}
                task_id = task_id or str(payload.get("taskId") or "")
                if isinstance(payload.get("status"), dict):
                    task["status"] = payload["status"]
                    state = normalize_state(payload["status"].get("state"))
                task.setdefault("id", task_id)
                task.setdefault("contextId", payload.get("contextId"))
            ended = True
        except (UpstreamError, UpstreamRejected) as exc:
            # Refused before any frame, and not for being unreachable or slow: it does not stream.
            if received or type(exc) not in (UpstreamError, UpstreamRejected):
                raise
            raise _NotStreamed from exc
        finally:
            if task_id and not ended and state not in TERMINAL:
                self.cancel_abandoned(call, {"task_id": task_id, "rpc_url": url})
        task["artifacts"] = list(artifacts.values())
        return {"task": task}

    async def _frames(self, call: Attempt, url: str) -> AsyncIterator[Mapping[str, Any]]:
        """The stream's results (StreamResponse JSON), whichever binding carries them."""
        if self._grpc is not None:
            async for frame in self._grpc.stream(call, self._params(call)):
                yield frame
            return
        if self._rest:
            transport = self.transport_for(url)
            async for sse in transport.stream_sse(call, "POST", f"{url}/message:stream", self._params(call)):
                yield self._rest_result(sse_json(sse, self.spec.name, "A2A"))
            return
        async for sse in self.transport_for(url).stream_sse(call, "POST", url, self._request(call, True)):
            yield self._result(sse_json(sse, self.spec.name, "A2A"))

    async def cancel(self, call: Attempt, upstream: Mapping[str, str]) -> None:
        """``CancelTask`` (``tasks/cancel`` in 0.3) for the task the stream was following."""
        if self._grpc is not None:
            await self._grpc.cancel(call, upstream["task_id"])
            return
        url = upstream["rpc_url"]
        if self._rest:
            path, body = f"{url}/tasks/{upstream['task_id']}:cancel", {}
        else:
            path = url
            body = {
                "jsonrpc": "2.0",
                "id": uuid.uuid4().hex,
                "method": CANCEL_METHOD[self.options.protocol_version],
                "params": {"id": upstream["task_id"]},
            }
        # Through the transport the task was followed on (its CA, client certificate and server
        # name); best effort, so what the agent answers does not matter.
        with contextlib.suppress(GatewayError):
            await send_cancel(self.transport_for(url), call, path, body)

    async def aclose(self) -> None:
        await super().aclose()
        if self._grpc is not None:
            await self._grpc.aclose()

    def _events(self, kind: str, payload: Mapping[str, Any], streamed: dict[str, str]) -> list[Event]:
        if kind == "message":
            return [Event("message", message=gateway_message(payload))]
        if kind == "artifact-update":
            artifact = payload.get("artifact") or {}
            parts = [p for p in (gateway_part(x) for x in artifact.get("parts", [])) if p]
            texts = [p for p in parts if isinstance(p, TextPart)]
            artifact_id = str(artifact.get("artifactId") or "")
            text = "".join(p.text for p in texts)
            before = streamed.get(artifact_id, "")
            if payload.get("append") or not before:
                streamed[artifact_id] = before + text
            elif text.startswith(before):
                # The whole artifact after its chunks (a replacement): only what they had not given.
                streamed[artifact_id] = text
                texts = [TextPart(text[len(before) :])] if len(text) > len(before) else []
            events = [Event("delta", message=Message(Role.AGENT, (p,))) for p in texts]
            events += [Event("data", data=p.data) for p in parts if isinstance(p, DataPart)]
            return events
        state = normalize_state(payload.get("status", {}).get("state"))
        self._check_state(state, payload)
        events = []
        status_message = payload.get("status", {}).get("message")
        if state in WAITING and isinstance(status_message, dict):
            # What the agent asks the client (the answer continues the task): part of the reply.
            events.append(Event("message", message=gateway_message(status_message)))
        events.append(
            Event(
                "status",
                data={
                    "state": state,
                    "task_id": payload.get("id") or payload.get("taskId"),
                    "context_id": payload.get("contextId"),
                },
            )
        )
        return events
