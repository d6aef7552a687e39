"""Hosts: small servers that give a framework's own agent the API the gateway's adapter speaks.

A host runs inside the agent's environment (its framework's virtualenv), not the gateway's: it
imports the standard library, aiohttp and, lazily, its framework, and nothing else of the gateway.
"""
