"""Calling the HTTP front in tests: an invoke body, a POST, the headers the echo agent saw."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from multidict import CIMultiDict


def body(text: str = "hello", **fields: Any) -> dict[str, Any]:
    return {"messages": [{"role": "ROLE_USER", "parts": [{"text": text}]}], **fields}


async def post(url: str, payload: Any, headers: dict[str, str] | None = None) -> tuple[int, CIMultiDict[str], Any]:
    async with aiohttp.ClientSession() as session:
        data = payload if isinstance(payload, str | bytes) else json.dumps(payload)
        async with session.post(url, data=data, headers=headers) as response:
            return response.status, CIMultiDict(response.headers), await response.json(content_type=None)


def seen_headers(response: dict[str, Any]) -> dict[str, str]:
    parts = response["messages"][0]["parts"]
    return next(p["data"]["headers"] for p in parts if "data" in p)
