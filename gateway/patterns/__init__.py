"""Multi-agent workflow patterns, run by the gateway as callers of the ordinary
routed invocation: sequential (saga), parallel (quorum), hierarchical, events."""
