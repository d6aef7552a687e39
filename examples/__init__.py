"""Example agents and configs (also used by the test suite)."""
