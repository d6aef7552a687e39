"""The fronts (HTTP, gRPC) and the process lifecycle: the only place that knows servers."""
