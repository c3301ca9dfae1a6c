"""A small `configurable` decorator in the spirit of detectron2's.

A class whose ``__init__`` is decorated can be built either with plain keyword arguments,
``Cls(a=1, b=2)``, or from a config, ``Cls(cfg, extra=3)``: in the second form the class's
``from_config(cfg, ...)`` classmethod turns the config into keyword arguments, and explicit
keyword arguments override them. Modules never keep the config object.

Functions can be decorated as well with ``@configurable(from_config=fn)``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from fvcore.common.config import CfgNode as _CfgNode


def _is_cfg(obj: Any) -> bool:
    return isinstance(obj, _CfgNode)


def _call_from_config(from_config: Callable, *args: Any, **kwargs: Any) -> dict[str, Any]:
    signature = inspect.signature(from_config)
    params = signature.parameters
    accepts_var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if accepts_var_kw:
        return from_config(*args, **kwargs)
    supported = {k: v for k, v in kwargs.items() if k in params}
    extra = {k: v for k, v in kwargs.items() if k not in params}
    result = from_config(*args, **supported)
    result.update(extra)
    return result


def configurable(init_func: Callable | None = None, *, from_config: Callable | None = None):
    """Decorate ``__init__`` (no arguments) or a function (``from_config=...``)."""
    if init_func is not None:
        if not (inspect.isfunction(init_func) and init_func.__name__ == "__init__"):
            raise TypeError("@configurable without arguments only decorates __init__")

        @functools.wraps(init_func)
        def wrapped_init(self, *args: Any, **kwargs: Any) -> None:
            from_config_fn = getattr(type(self), "from_config", None)
            if from_config_fn is None:
                raise AttributeError(f"{type(self).__name__} needs a classmethod from_config")
            if (args and _is_cfg(args[0])) or _is_cfg(kwargs.get("cfg")):
                explicit = _call_from_config(from_config_fn, *args, **kwargs)
                init_func(self, **explicit)
            else:
                init_func(self, *args, **kwargs)

        return wrapped_init

    if from_config is None:
        raise TypeError("use @configurable on __init__, or @configurable(from_config=fn)")

    def decorator(func: Callable) -> Callable:
        @functools.wraps(func)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if (args and _is_cfg(args[0])) or _is_cfg(kwargs.get("cfg")):
                return func(**_call_from_config(from_config, *args, **kwargs))
            return func(*args, **kwargs)

        wrapped.from_config = from_config  # type: ignore[attr-defined]
        return wrapped

    return decorator
