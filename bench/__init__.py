"""The agent-gateway benchmark suite: ``python -m bench`` (or ``make bench``).

Every number is a ratio measured side by side in one run: the gateway against
the same upstream called directly (and against nginx as a reverse proxy), so a
result says what the hop costs on this machine, not an absolute that depends on it.
"""
