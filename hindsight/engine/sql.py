"""Quoting for the few user strings (column names) that must appear inside SQL text.

Values never do: they travel as bound parameters.
"""

from __future__ import annotations


def ident(name: str) -> str:
    """A quoted SQL identifier.

    >>> ident('country')
    '"country"'
    >>> ident('a"b')
    '"a""b"'
    """
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A quoted SQL string literal.

    >>> literal("it's")
    "'it''s'"
    """
    return "'" + text.replace("'", "''") + "'"
