"""The default experiment (``make train``): dates."""

from configs.dates import get_config

__all__ = ["get_config"]
