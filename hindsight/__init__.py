"""hindsight: catch machine-learning models that fail silently."""

from hindsight.alerts.model import Alert
from hindsight.config import Config, load_config
from hindsight.errors import ConfigError, HindsightError, InputError, StoreError
from hindsight.monitor import Monitor

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
