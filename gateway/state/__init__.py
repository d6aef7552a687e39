"""Shared state: scoped, versioned keys for agents (SQLite by default, Redis to share)."""
