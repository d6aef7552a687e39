"""The Python client distribution (clients/python)."""
