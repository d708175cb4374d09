from __future__ import annotations

from hindsight.alerts.headline import choose
from tests.alerts.test_rules import days_of, run

CH = '{"country":"CH"}'


def summed(segment: str, *parts: list[tuple[int | None, str, int, int, int]]
           ) -> list[tuple[int | None, str, int, int, int]]:
    return [(rows[0][0], segment, sum(r[2] for r in rows), sum(r[3] for r in rows),
             sum(r[4] for r in rows)) for rows in zip(*parts, strict=True)]


def test_a_cell_collapsing_alone_under_a_flat_aggregate_is_named_as_itself() -> None:
    child = days_of('{"country":"CH","merchant":"restaurants"}', 250, 0.94, 6, drop_from=12)
    healthy = days_of('{"country":"DE","merchant":"restaurants"}', 250, 0.94, 7)
    rest = days_of('{"country":"CH","merchant":"food"}', 250, 0.94, 8)
    result = run(child + healthy + rest + summed('{"merchant":"restaurants"}', child, healthy)
                 + summed(CH, child, rest))
    [head] = [a for a in result.alerts if a.headline]
    assert head.segment == {"country": "CH", "merchant": "restaurants"}
    assert "Headline of its incident: carries" in head.message


def test_a_drop_spread_over_a_values_crosses_is_named_by_the_value_over_the_cross_alerted(
) -> None:
    small = days_of('{"country":"CH","tier":"gold"}', 300, 0.94, 1, drop_from=15, dropped=0.6)
    large = days_of('{"country":"CH","tier":"free"}', 3000, 0.94, 2, drop_from=15,
                    dropped=0.905)
    result = run(small + large + summed(CH, small, large))
    [head] = [a for a in result.alerts if a.headline]
    assert head.segment == {"country": "CH"}
    assert "country=CH × tier=gold" in head.explains
    assert {CH, '{"country":"CH","tier":"gold"}'} <= result.failing


def test_the_most_general_cell_carrying_most_of_the_excess_is_chosen() -> None:
    cells = [{"tier": "free"}, {"country": "CH"}, {"country": "CH", "tier": "free"}]
    assert choose(cells, [60.0, 100.0, 55.0], [900, 400, 200]) == 1
    assert choose(cells, [95.0, 100.0, 94.0], [900, 400, 200]) == 2  # the cross alone
    assert choose(cells, [-1.0, -2.0, -3.0], [900, 400, 200]) == 0  # none worse: largest
