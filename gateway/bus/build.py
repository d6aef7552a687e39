"""Build the configured event bus."""

from __future__ import annotations

from gateway.bus.base import EventBus
from gateway.bus.memory import MemoryBus
from gateway.config.schema import Bus


def build_bus(config: Bus) -> EventBus:
    if config.backend == "nats":
        from gateway.bus.nats import NatsBus  # lazy: the memory bus needs no NATS client

        return NatsBus(
            config.url,
            config.prefixes,
            config.dead_letter_prefix,
            stream_prefix=config.stream_prefix,
            max_deliver=config.redelivery.max_deliver,
            ack_wait=config.ack_wait,
            duplicate_window=config.duplicate_window,
            processed_ttl=config.processed_ttl,
            connect_timeout=config.connect_timeout,
        )
    return MemoryBus(
        config.prefixes,
        config.dead_letter_prefix,
        max_pending=config.max_pending,
        duplicate_window=config.duplicate_window,
        processed_max=config.processed_max,
        processed_ttl=config.processed_ttl,
    )
