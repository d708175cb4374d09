"""Is a day's volume far below its usual level? Usual is the same weekday's, so that a weekly
cycle is no news; robust (median and MAD), so that one holiday in the history moves it little.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median

MAD_TO_SD = 1.4826  # a normal distribution's sd is its MAD times this
SPREADS = 3.0  # how far below the usual level, in robust sds, a day must also be
MIN_HISTORY = 3  # same weekdays needed before a day is judged


@dataclass(frozen=True, slots=True)
class Volume:
    """A day's count against its usual level (the median of the same weekdays before it)."""

    count: float
    usual: float
    spread: float  # robust sd of the history
    history: int  # how many days the usual level is the median of
    low: bool  # below ``min_share`` of usual and ``SPREADS`` robust sds below it

    @property
    def share(self) -> float:
        return self.count / self.usual


def volume(count: float, history: Sequence[float], min_share: float) -> Volume | None:
    """``count`` judged against ``history`` (the same weekdays of the weeks before); None
    with fewer than ``MIN_HISTORY`` of them, or a usual level of zero (nothing to fall from).

    >>> volume(0, [100, 110, 95, 105], 0.2).low
    True
    >>> volume(40, [100, 110, 95, 105], 0.2).low   # a holiday: 40% of a usual day
    False
    >>> volume(0, [0, 0, 100], 0.2) is None   # usually nothing on this weekday
    True
    """
    if len(history) < MIN_HISTORY:
        return None
    usual = float(median(history))
    if usual <= 0:
        return None
    spread = MAD_TO_SD * float(median([abs(h - usual) for h in history]))
    low = count < min_share * usual and count < usual - SPREADS * spread
    return Volume(float(count), usual, spread, len(history), low)
