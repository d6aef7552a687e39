"""One Prometheus exposition for several worker processes: the supervisor scrapes each
worker's ``/metrics`` and adds them up.

Why scraping and not prometheus_client's multiprocess mode: the breaker and bulkhead
gauges are read from live objects at scrape time (:class:`PolicyStateCollector`), and
the multiprocess mode reads only the values its metrics wrote to files (custom
collectors are not supported there); scraping keeps every worker's own registry, and
a gateway of one worker exactly as it is.

How samples combine: counters, histograms and summaries add up; so do gauges (calls
in flight, open streams, bulkhead slots: the fleet's total), except breaker states,
where the worst worker stands for all (2 open, 1 half-open, 0 closed); ``*_created``
timestamps take the earliest. Counters never go down: the last values scraped from a
worker that exited are kept and added to the others' (a restarted worker counts from
zero beside them), as the multiprocess mode keeps a dead process's counter files.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

# Gauges whose sum means nothing: the worst worker's value stands for the fleet.
WORST_OF = frozenset({"agw_circuit_breaker_state"})
MONOTONIC = frozenset({"counter", "histogram", "summary"})

SampleKey = tuple[str, tuple[tuple[str, str], ...]]


@dataclass
class Family:
    name: str
    documentation: str
    type: str
    samples: dict[SampleKey, float] = field(default_factory=dict)


Scrape = dict[str, Family]


def parse_exposition(text: str) -> Scrape:
    """A worker's ``/metrics`` text, by family name."""
    families: Scrape = {}
    for metric in text_string_to_metric_families(text):
        family = families.setdefault(metric.name, Family(metric.name, metric.documentation, metric.type))
        for sample in metric.samples:
            family.samples[(sample.name, tuple(sample.labels.items()))] = sample.value
    return families


def _combine(family: Family, current: float | None, value: float) -> float:
    if current is None:
        return value
    if family.name.endswith("_created"):
        return min(current, value)
    if family.name in WORST_OF:
        return max(current, value)
    if family.type in MONOTONIC or family.type == "gauge":
        return current + value
    return current  # info, stateset, unknown: the first worker's


def _add(into: Scrape, scrape: Scrape, only_monotonic: bool = False) -> None:
    for name, family in scrape.items():
        if only_monotonic and family.type not in MONOTONIC and not name.endswith("_created"):
            continue
        target = into.setdefault(name, Family(name, family.documentation, family.type))
        for key, value in family.samples.items():
            target.samples[key] = _combine(target, target.samples.get(key), value)


class FleetMetrics:
    """The workers' last scrapes, and what workers that exited had counted."""

    def __init__(self) -> None:
        self._last: dict[int, Scrape] = {}  # by worker pid
        self._retired: Scrape = {}
        self._gone: set[int] = set()

    def scraped(self, pid: int, text: str) -> Scrape:
        scrape = parse_exposition(text)
        if pid not in self._gone:  # a scrape answered just before its worker exited is already counted
            self._last[pid] = scrape
        return scrape

    def last(self, pid: int) -> Scrape | None:
        return self._last.get(pid)

    def retire(self, pid: int) -> None:
        """Worker ``pid`` exited: its counts stay in the totals (its gauges go)."""
        self._gone.add(pid)
        scrape = self._last.pop(pid, None)
        if scrape is not None:
            _add(self._retired, scrape, only_monotonic=True)

    def merged(self, pids: Iterable[int]) -> Scrape:
        """The fleet's metrics: the retired counts plus the last scrape of each live worker."""
        total: Scrape = {}
        _add(total, self._retired)
        for pid in pids:
            if (scrape := self._last.get(pid)) is not None:
                _add(total, scrape)
        return total


def as_metrics(families: Scrape) -> Iterator[Metric]:
    for family in families.values():
        metric = Metric(family.name, family.documentation, family.type)
        for (sample_name, labels), value in family.samples.items():
            metric.add_sample(sample_name, dict(labels), value)
        yield metric


class MergedCollector(Collector):
    """Yields a merged scrape into a registry, for ``generate_latest``."""

    def __init__(self, families: Scrape) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from as_metrics(self.families)
