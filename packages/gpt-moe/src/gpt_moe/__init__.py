"""Mixture of experts: routers, token dispatchers, experts, load-balancing losses."""

__version__ = "0.1.0"
