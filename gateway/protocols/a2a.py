"""A2A JSON shapes (no I/O): the gateway's model to and from A2A 1.0 JSON, and 1.0 to 0.3.

The one place both sides read: the A2A front (tasks it serves) and the A2A adapter (agents it calls).

Tasks are kept in 1.0 form (protobuf JSON of ``a2a.proto``: ``{"text"}``
parts, ``ROLE_*`` roles, ``TASK_STATE_*`` states); :func:`to_v03` renders any
of them for a 0.3 client (``kind`` discriminators, lower-case states,
``final`` on status updates).
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from typing import Any

from gateway.model import DataPart, FilePart, Message, Part, Role, TextPart


def normalize_state(state: Any) -> str:
    """``TASK_STATE_INPUT_REQUIRED`` and ``input-required`` both become ``input-required``."""
    return str(state or "").lower().removeprefix("task_state_").replace("_", "-")


def timestamp(seconds: float) -> str:
    """ISO 8601 in UTC with milliseconds, as A2A timestamps are written."""
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_timestamp(text: str) -> float:
    """Unix seconds of an ISO 8601 timestamp; ValueError when it is not one."""
    moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def part_json(part: Part) -> dict[str, Any]:
    if isinstance(part, TextPart):
        out: dict[str, Any] = {"text": part.text}
    elif isinstance(part, DataPart):
        out = {"data": part.data}
    else:
        out = {"url": part.uri}
        if part.media_type:
            out["mediaType"] = part.media_type
        if part.name:
            out["filename"] = part.name
    if part.metadata:
        out["metadata"] = dict(part.metadata)
    return out


def gateway_part(data: Mapping[str, Any]) -> Part | None:
    """A 1.0 or 0.3 part as the gateway's; None for a part of no known kind."""
    raw_metadata = data.get("metadata")
    metadata: dict[str, Any] = raw_metadata if isinstance(raw_metadata, dict) else {}
    if isinstance(data.get("text"), str):
        return TextPart(data["text"], metadata)
    if "data" in data:
        return DataPart(data["data"], metadata)
    if isinstance(data.get("url"), str):
        return FilePart(data["url"], str(data.get("mediaType", "")), str(data.get("filename", "")), metadata)
    if isinstance(data.get("raw"), str):
        media = str(data.get("mediaType", ""))
        return FilePart(f"data:{media};base64,{data['raw']}", media, str(data.get("filename", "")), metadata)
    file = data.get("file")
    if isinstance(file, dict):
        uri = file.get("uri") or (f"data:{file.get('mimeType', '')};base64,{file['bytes']}" if "bytes" in file else "")
        return FilePart(str(uri), str(file.get("mimeType", "")), str(file.get("name", "")), metadata)
    return None


def gateway_message(data: Mapping[str, Any]) -> Message:
    role = Role.USER if normalize_state(data.get("role")) in ("user", "role-user") else Role.AGENT
    parts = tuple(p for p in (gateway_part(x) for x in data.get("parts", []) if isinstance(x, dict)) if p)
    return Message(role, parts, {}, str(data.get("messageId", "")))


def message_json(message: Message, context_id: str, task_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "messageId": message.message_id or uuid.uuid4().hex,
        "role": "ROLE_USER" if message.role == Role.USER else "ROLE_AGENT",
        "parts": [part_json(p) for p in message.parts],
        "contextId": context_id,
        "taskId": task_id,
    }
    if message.metadata:
        out["metadata"] = dict(message.metadata)
    return out


def agent_text(text: str, context_id: str, task_id: str) -> dict[str, Any]:
    return message_json(Message.agent(text), context_id, task_id)


def a2a_part(part: Part, version: str) -> dict[str, Any]:
    """A part of a request to an upstream agent, in its version: unlike :func:`part_json` (the tasks the
    gateway serves) data is always an object (a 0.3 DataPart's must be) and part metadata stays here."""
    if isinstance(part, TextPart):
        return {"text": part.text} if version == "1.0" else {"kind": "text", "text": part.text}
    if isinstance(part, DataPart):
        data = part.data if isinstance(part.data, dict) else {"value": part.data}
        return {"data": data} if version == "1.0" else {"kind": "data", "data": data}
    if version == "1.0":
        return {"url": part.uri, "mediaType": part.media_type, "filename": part.name}
    return {"kind": "file", "file": {"uri": part.uri, "mimeType": part.media_type, "name": part.name}}


def artifact_json(artifact_id: str, parts: list[dict[str, Any]], name: str = "response") -> dict[str, Any]:
    return {"artifactId": artifact_id, "name": name, "parts": parts}


def frame_kind(result: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """(kind, payload) of a result or stream frame, for both protocol versions."""
    for key, kind in (
        ("task", "task"),
        ("message", "message"),
        ("statusUpdate", "status-update"),
        ("artifactUpdate", "artifact-update"),
    ):
        if isinstance(result.get(key), dict):
            return kind, result[key]
    kind = str(result.get("kind", ""))
    if kind:
        return kind, result
    return ("task", result) if "status" in result and "id" in result else ("message", result)


# -- 0.3 rendering -----------------------------------------------------------

_ROLES_V03 = {"ROLE_USER": "user", "ROLE_AGENT": "agent"}


def state_from_v03(state: str) -> str:
    """``input-required`` -> ``TASK_STATE_INPUT_REQUIRED`` (a 1.0 name is kept)."""
    if state.startswith("TASK_STATE_"):
        return state
    return "TASK_STATE_" + state.upper().replace("-", "_")


def part_v03(part: Mapping[str, Any]) -> dict[str, Any]:
    metadata = {"metadata": part["metadata"]} if "metadata" in part else {}
    if "text" in part:
        return {"kind": "text", "text": part["text"], **metadata}
    if "data" in part:
        return {"kind": "data", "data": part["data"], **metadata}
    file = {"uri": part.get("url", ""), "mimeType": part.get("mediaType", ""), "name": part.get("filename", "")}
    return {"kind": "file", "file": file, **metadata}


def message_v03(message: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in message.items() if k not in ("role", "parts")}
    out.update(kind="message", role=_ROLES_V03.get(str(message.get("role")), "agent"))
    out["parts"] = [part_v03(p) for p in message.get("parts", [])]
    return out


def _status_v03(status: Mapping[str, Any]) -> dict[str, Any]:
    out = {**status, "state": normalize_state(status.get("state", ""))}
    if isinstance(status.get("message"), dict):
        out["message"] = message_v03(status["message"])
    return out


def task_v03(task: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {**task, "kind": "task", "status": _status_v03(task["status"])}
    if "history" in task:
        out["history"] = [message_v03(m) for m in task["history"]]
    if "artifacts" in task:
        out["artifacts"] = [{**a, "parts": [part_v03(p) for p in a.get("parts", [])]} for a in task["artifacts"]]
    return out


def stream_v03(frame: Mapping[str, Any]) -> dict[str, Any]:
    """A 1.0 StreamResponse (``{"task"|"message"|"statusUpdate"|"artifactUpdate": ...}``) for 0.3."""
    if "task" in frame:
        return task_v03(frame["task"])
    if "message" in frame:
        return message_v03(frame["message"])
    if "statusUpdate" in frame:
        update = frame["statusUpdate"]
        final = state_from_v03(str(update["status"].get("state"))) in _FINAL
        return {**update, "kind": "status-update", "status": _status_v03(update["status"]), "final": final}
    update = frame["artifactUpdate"]
    artifact = update["artifact"]
    return {
        **update,
        "kind": "artifact-update",
        "artifact": {**artifact, "parts": [part_v03(p) for p in artifact.get("parts", [])]},
    }


_FINAL = {
    "TASK_STATE_COMPLETED",
    "TASK_STATE_FAILED",
    "TASK_STATE_CANCELED",
    "TASK_STATE_REJECTED",
    "TASK_STATE_INPUT_REQUIRED",
    "TASK_STATE_AUTH_REQUIRED",
}
