"""Thin adapters, one per framework protocol (see gateway/adapters/base.py)."""
