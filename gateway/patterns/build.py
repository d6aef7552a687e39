"""Build a workflow's pattern from its config."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.config.schema import HierarchicalWorkflow, ParallelWorkflow, SequentialWorkflow, Workflow
from gateway.patterns.hierarchical import HierarchicalPattern
from gateway.patterns.parallel import ParallelPattern
from gateway.patterns.run import Pattern
from gateway.patterns.sequential import SequentialPattern


def build_pattern(config: Workflow, descriptions: Mapping[str, str]) -> Pattern:
    if isinstance(config, SequentialWorkflow):
        return SequentialPattern(config)
    if isinstance(config, ParallelWorkflow):
        return ParallelPattern(config)
    assert isinstance(config, HierarchicalWorkflow)
    return HierarchicalPattern(config, dict(descriptions))
