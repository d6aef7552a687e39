"""Thin adapters, one per framework protocol (see adapters/base.py)."""
