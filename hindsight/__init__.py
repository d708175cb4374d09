"""hindsight: catch machine-learning models that fail silently.

The names below load on first use, so that ``hindsight --help`` does not pay for the engine.
"""

import importlib as _importlib
import typing as _typing

from hindsight.errors import ConfigError, HindsightError, InputError, StoreError

if _typing.TYPE_CHECKING:
    from hindsight.alerts.model import Alert
    from hindsight.config import Config, load_config
    from hindsight.monitor import Monitor

_LAZY = {"Alert": "hindsight.alerts.model", "Config": "hindsight.config",
         "load_config": "hindsight.config", "Monitor": "hindsight.monitor"}

__all__ = [
    "Alert",
    "Config",
    "ConfigError",
    "HindsightError",
    "InputError",
    "Monitor",
    "StoreError",
    "load_config",
]


def __getattr__(name: str) -> _typing.Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'hindsight' has no attribute {name!r}")
    value = getattr(_importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
