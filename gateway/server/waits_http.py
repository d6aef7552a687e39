"""Resuming waiting workflow steps over HTTP (approvals).

``GET /v1/workflow-runs/{run_id}/steps/{step}`` shows what a waiting step waits
with (its input, the digest to approve it with, its expiry);
``POST .../resume`` with ``{"digest": ..., "payload": ...}`` resumes it, as the
caller's identity, when an authorization rule lists the workflow under
``approvals``. The approval binds to that run, that step and that input digest.
"""

from __future__ import annotations

from aiohttp import web

from gateway.model import InvalidRequest
from gateway.patterns.durable import DurableWorkflows
from gateway.runs.store import check_run_id
from gateway.server.json_body import read_json
from gateway.server.request_keys import GUARD_KEY, IDENTITY_KEY

DURABLE_KEY = web.AppKey("durable", DurableWorkflows)


async def show_wait(request: web.Request) -> web.Response:
    durable = request.app[DURABLE_KEY]
    run_id = check_run_id(request.match_info["run_id"])
    pending = await durable.pending(run_id, request.match_info["step"])
    request.app[GUARD_KEY].authorize_approval(request[IDENTITY_KEY], str(pending.get("workflow", "")))
    return web.json_response(
        {
            "runId": run_id,
            "step": request.match_info["step"],
            "workflow": pending.get("workflow"),
            "digest": pending.get("digest"),
            "input": pending.get("input"),
            "expiresAt": pending.get("expires_at"),
        }
    )


async def resume_wait(request: web.Request) -> web.Response:
    durable = request.app[DURABLE_KEY]
    run_id = check_run_id(request.match_info["run_id"])
    step = request.match_info["step"]
    body = await read_json(request, "resume body")
    if not isinstance(body, dict) or not isinstance(body.get("digest"), str):
        raise InvalidRequest('the body must be {"digest": "<the waiting input\'s digest>", "payload": ...}')
    pending = await durable.pending(run_id, step)
    identity = request[IDENTITY_KEY]
    request.app[GUARD_KEY].authorize_approval(identity, str(pending.get("workflow", "")))
    await durable.resume_wait(run_id, step, body["digest"], body.get("payload"), identity.name)
    return web.json_response({"runId": run_id, "step": step, "resumed": True, "approver": identity.name})


def add_wait_routes(app: web.Application, durable: DurableWorkflows) -> None:
    app[DURABLE_KEY] = durable
    app.router.add_get("/v1/workflow-runs/{run_id}/steps/{step}", show_wait)
    app.router.add_post("/v1/workflow-runs/{run_id}/steps/{step}/resume", resume_wait)
