"""After start, a serving process collects its start-up garbage, freezes what survives and
trims the heap (in a fresh interpreter: freezing is for the whole process)."""

from __future__ import annotations

import subprocess
import sys


def test_settle_heap_freezes_the_survivors_and_trims() -> None:
    script = """
import gc
from gateway.server.heap import _malloc_trim, settle_heap
cycle = []
cycle.append(cycle)
del cycle  # garbage only the cyclic collector frees
assert gc.get_freeze_count() == 0
settle_heap()
assert gc.get_count()[0] < 50  # collected just now
assert gc.get_freeze_count() > 1000  # the modules' objects, out of later collections
assert _malloc_trim() is not None  # glibc: the freed pages go back
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
