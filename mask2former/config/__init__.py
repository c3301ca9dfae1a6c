"""Configuration: ``get_cfg()`` (original YAML keys and defaults) and ``configurable``."""

from mask2former.config.config import CfgNode, ConfigError, ConfigKeyError, UnsafeConfigTagError
from mask2former.config.configurable import configurable
from mask2former.config.defaults import get_cfg

__all__ = [
    "CfgNode",
    "ConfigError",
    "ConfigKeyError",
    "UnsafeConfigTagError",
    "configurable",
    "get_cfg",
]
