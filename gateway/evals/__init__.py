"""Evaluations: checks on agent and workflow outputs, online (live traffic) and offline (datasets)."""
