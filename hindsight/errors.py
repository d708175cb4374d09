"""The errors hindsight raises. Every one of them is a ``HindsightError``::

    HindsightError
    ├── ConfigError     hindsight.yaml (or a setting) is missing, malformed or inconsistent
    ├── InputError      a file or batch does not fit the config; nothing was stored
    └── StoreError      the store cannot be read or written as expected

Interfaces map them to exit codes (see ``EXIT_CODES``) and HTTP statuses.
"""

from __future__ import annotations


class HindsightError(Exception):
    """Base of every error hindsight raises on purpose."""


class ConfigError(HindsightError):
    """The configuration is missing, malformed or names something that does not exist."""


class InputError(HindsightError):
    """Input that does not fit the config. Raised before anything is written."""


class StoreError(HindsightError):
    """The store holds something unexpected, or an I/O operation on it failed."""


EXIT_CODES: dict[type[HindsightError], int] = {
    ConfigError: 2,
    InputError: 3,
    StoreError: 4,
    HindsightError: 1,
}


def exit_code(error: HindsightError) -> int:
    """The process exit code for an error: the most specific class listed wins.

    >>> exit_code(InputError("bad row"))
    3
    """
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return 1
