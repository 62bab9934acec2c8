"""Deployment files rendered from the one ``Config``: ``tapgrid config
nginx|systemd|prometheus|alerts|grafana|litestream``."""
from ._grafana import PANELS, dashboard
from ._render import KINDS, render

__all__ = ["render", "KINDS", "dashboard", "PANELS"]
