"""Configuration: ``get_cfg()`` (original YAML keys and defaults) and ``configurable``."""

from mask2former.config.configurable import configurable

__all__ = ["configurable"]
