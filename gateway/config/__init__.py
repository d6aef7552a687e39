"""Configuration: YAML in, a validated :class:`GatewayConfig` out."""

from gateway.config.loader import ConfigError, ConfigProblem, load_config, load_config_text
from gateway.config.schema import Agent, GatewayConfig, Match, Route, WeightedTarget, parse_duration

__all__ = [
    "Agent",
    "ConfigError",
    "ConfigProblem",
    "GatewayConfig",
    "Match",
    "Route",
    "WeightedTarget",
    "load_config",
    "load_config_text",
    "parse_duration",
]
