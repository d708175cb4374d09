"""Segments as sets of ``column=value`` pairs: containment and overlap."""

from __future__ import annotations


def inside(segment: dict[str, str], other: dict[str, str]) -> bool:
    """Whether ``other`` contains ``segment`` (every pair of ``other`` is in ``segment``).

    >>> inside({"country": "CH", "tier": "free"}, {"country": "CH"})
    True
    >>> inside({"country": "CH"}, {"country": "CH", "tier": "free"})
    False
    """
    return all(segment.get(k) == v for k, v in other.items())


def compatible(segment: dict[str, str], other: dict[str, str]) -> bool:
    """Whether two segments can overlap: no column with two different values.

    >>> compatible({"country": "CH"}, {"tier": "free"})
    True
    >>> compatible({"country": "CH"}, {"country": "DE"})
    False
    """
    return all(segment.get(k, v) == v for k, v in other.items())


def describe(segment: dict[str, str]) -> str:
    """
    >>> describe({"country": "CH", "merchant": "restaurants"})
    'country=CH × merchant=restaurants'
    >>> describe({})
    'all predictions'
    """
    return " × ".join(f"{k}={v}" for k, v in segment.items()) or "all predictions"
