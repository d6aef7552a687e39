"""Telemetry: traces (OTLP), and later metrics and structured logs."""
