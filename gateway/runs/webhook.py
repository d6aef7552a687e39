"""Completion callbacks: a signed JSON POST to a run's webhook URL, retried with backoff.

The body is signed with HMAC-SHA256 under ``runs.webhooks.secret``; the
receiver recomputes it over the raw body and compares it with the
``x-agw-signature: sha256=<hex>`` header (in constant time). The body carries
a ``timestamp`` so a receiver can refuse old replays, and every attempt of one
callback has the same ``x-agw-delivery`` id so a receiver can drop duplicates.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
from collections.abc import Callable, Iterable, Mapping

import aiohttp
from yarl import URL

from gateway.config.schema import Webhooks
from gateway.model import JSON, InvalidRequest
from gateway.outbound import OutboundUrlPolicy

log = logging.getLogger("agent_gateway.runs")

SIGNATURE_HEADER = "x-agw-signature"
DELIVERY_HEADER = "x-agw-delivery"
RUN_ID_HEADER = "x-agw-run-id"


def sign(secret: str, body: bytes) -> str:
    """The ``x-agw-signature`` value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str) -> bool:
    """Whether ``signature`` is the gateway's signature of ``body`` (for receivers)."""
    return hmac.compare_digest(sign(secret, body), signature)


class WebhookSender:
    """Checks webhook URLs against the outbound-URL policy and delivers callbacks."""

    def __init__(
        self,
        config: Webhooks,
        session: aiohttp.ClientSession,
        own_listeners: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self.config = config
        self.session = session
        self.policy = OutboundUrlPolicy(config.allowed_prefixes, "runs.webhooks.allowed_prefixes", own_listeners)

    def check_url(self, url: str) -> str:
        """``url`` as it will be called; raises InvalidRequest unless the policy allows it."""
        return self.policy.check(url, "the webhook URL")

    def _backoff(self, retry: int) -> float:
        spec = self.config.backoff
        return random.uniform(spec.base / 2, min(spec.max, spec.base * spec.multiplier**retry))

    async def deliver(
        self, url: str, payload: dict[str, JSON], delivery_id: str, extra_headers: Mapping[str, str] | None = None
    ) -> str:
        """POST the callback until it is accepted (2xx), refused (4xx but 429) or out of attempts;
        returns what happened, for the run's ``webhookStatus``. ``extra_headers`` (an A2A push
        notification's token and credentials) never replace the signature or delivery id."""
        try:
            # Again at delivery: the gateway's listeners are all bound by now (a run may outlive a restart).
            target = URL(self.check_url(url), encoded=True)
        except InvalidRequest as exc:
            log.warning("webhook of %s not sent: %s", payload.get("runId"), exc.message)
            return f"refused by the gateway: {exc.message}"[:300]
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"content-type": "application/json", **(extra_headers or {})}
        headers.update({SIGNATURE_HEADER: sign(self.config.secret, body), DELIVERY_HEADER: delivery_id})
        if "runId" in payload:
            headers[RUN_ID_HEADER] = str(payload["runId"])
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        attempts = self.config.max_attempts
        outcome = ""
        for attempt in range(1, attempts + 1):
            try:
                async with self.session.post(
                    target, data=body, headers=headers, timeout=timeout, allow_redirects=False
                ) as response:
                    # The status says it all: the body is never read (an unread body closes the
                    # connection on release), so a huge or trickling one cannot hold a delivery.
                    if 200 <= response.status < 300:
                        return f"delivered (attempt {attempt})"
                    outcome = f"HTTP {response.status}"
                    if response.status != 429 and response.status < 500:
                        log.warning("webhook %s refused the callback of %s: %s", url, payload.get("runId"), outcome)
                        return f"refused: {outcome}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                outcome = f"{type(exc).__name__}: {exc}"[:200]
            if attempt < attempts:
                await asyncio.sleep(self._backoff(attempt - 1))
        log.warning(
            "webhook %s: gave up on the callback of %s after %d attempts (%s)",
            url,
            payload.get("runId"),
            attempts,
            outcome,
        )
        return f"failed after {attempts} attempts: {outcome}"
