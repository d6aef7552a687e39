"""The event bus: an interface, the in-process default and NATS JetStream."""
