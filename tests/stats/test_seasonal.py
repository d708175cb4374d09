from __future__ import annotations

from hindsight.stats.seasonal import MIN_HISTORY, volume


def test_one_low_day_in_the_history_barely_moves_the_usual_level() -> None:
    judged = volume(100, [100, 104, 30, 98, 101], 0.2)
    assert judged is not None and judged.usual == 100 and not judged.low


def test_a_stopped_feed_is_low_and_a_noisy_history_is_not_alarmed_by_a_dip() -> None:
    stopped = volume(0, [90, 100, 110], 0.2)
    assert stopped is not None and stopped.low and stopped.share == 0
    noisy = volume(15, [100, 5, 120, 3, 90], 0.2)  # usual 90, but it often falls this low
    assert noisy is not None and not noisy.low


def test_too_little_history_or_a_usual_level_of_zero_is_not_judged() -> None:
    assert volume(0, [100] * (MIN_HISTORY - 1), 0.2) is None
    assert volume(0, [0, 0, 0, 5], 0.2) is None
