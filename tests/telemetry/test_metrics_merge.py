"""Adding up the workers' expositions: counters and histograms sum, breaker states take
the worst, created timestamps the earliest, and a worker that exited keeps its counts."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from gateway.telemetry.metrics_merge import FleetMetrics, MergedCollector


class Breakers:
    def __init__(self, state: int) -> None:
        self.state = state

    def collect(self) -> list[GaugeMetricFamily]:
        family = GaugeMetricFamily("agw_circuit_breaker_state", "Breaker state.", labels=["owner"])
        family.add_metric(["agent/a"], self.state)
        return [family]


def worker(calls: int, seconds: list[float], in_flight: int, breaker: int) -> str:
    registry = CollectorRegistry()
    Counter("agw_requests", "Calls.", ["agent"], registry=registry).labels("a").inc(calls)
    histogram = Histogram("agw_request_duration_seconds", "Latency.", ["agent"], buckets=(0.1, 1), registry=registry)
    for value in seconds:
        histogram.labels("a").observe(value)
    Gauge("agw_requests_in_flight", "In flight.", ["agent"], registry=registry).labels("a").set(in_flight)
    registry.register(Breakers(breaker))
    return generate_latest(registry).decode()


def values(fleet: FleetMetrics, pids: list[int]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MergedCollector(fleet.merged(pids)))
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_workers_add_up() -> None:
    fleet = FleetMetrics()
    fleet.scraped(10, worker(3, [0.05, 0.5, 5], in_flight=2, breaker=0))
    fleet.scraped(11, worker(4, [0.05], in_flight=1, breaker=2))
    merged = values(fleet, [10, 11])
    a = (("agent", "a"),)
    assert merged[("agw_requests_total", a)] == 7
    assert merged[("agw_request_duration_seconds_bucket", (("agent", "a"), ("le", "0.1")))] == 2
    assert merged[("agw_request_duration_seconds_bucket", (("agent", "a"), ("le", "1.0")))] == 3
    assert merged[("agw_request_duration_seconds_bucket", (("agent", "a"), ("le", "+Inf")))] == 4
    assert merged[("agw_request_duration_seconds_count", a)] == 4
    assert abs(merged[("agw_request_duration_seconds_sum", a)] - 5.6) < 1e-9
    assert merged[("agw_requests_in_flight", a)] == 3
    assert merged[("agw_circuit_breaker_state", (("owner", "agent/a"),))] == 2  # open in one worker
    created = [v for (name, _), v in merged.items() if name == "agw_requests_created"]
    assert len(created) == 1 and created[0] > 1e9  # the earliest, not a sum of timestamps


def test_a_worker_that_exited_keeps_its_counts_but_not_its_gauges() -> None:
    fleet = FleetMetrics()
    fleet.scraped(10, worker(3, [0.5], in_flight=5, breaker=2))
    fleet.scraped(11, worker(4, [0.5], in_flight=1, breaker=0))
    fleet.retire(10)
    fleet.scraped(12, worker(1, [0.5], in_flight=0, breaker=0))  # its replacement counts from zero
    fleet.scraped(10, worker(9, [], in_flight=9, breaker=2))  # a scrape that raced the exit is dropped
    assert fleet.last(10) is None
    merged = values(fleet, [11, 12])
    a = (("agent", "a"),)
    assert merged[("agw_requests_total", a)] == 8  # 3 (gone) + 4 + 1: never down
    assert merged[("agw_request_duration_seconds_count", a)] == 3
    assert merged[("agw_requests_in_flight", a)] == 1
    assert merged[("agw_circuit_breaker_state", (("owner", "agent/a"),))] == 0
