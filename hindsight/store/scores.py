"""A prediction's score: its own confidence column (``columns.score``), or the probability of
its predicted class among the per-class columns of ``columns.scores``.

Either way the checks read one number per prediction (drift on scores, the reference's
calibration, the label-free estimate): here for tables already read, in the engines' SQL for
the counts. Classes are matched under the identity rule (``hindsight.store.identity``): a
column mapped to class ``1`` is the probability of predictions stored as ``1``, whether the
model wrote ``1``, ``1.0`` or ``"1"``.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from hindsight.config import RESERVED_PREFIX, Config
from hindsight.store.identity import identity

# the predicted class's probability, added to a table read for the checks
PREDICTED_PROBABILITY = f"{RESERVED_PREFIX}score"


def score_column(config: Config) -> str | None:
    """The column a table read for the checks (``with_score``) holds the score in."""
    cols = config.columns
    return PREDICTED_PROBABILITY if cols.scores else cols.score


def score_inputs(config: Config) -> list[str]:
    """The stored columns a score is read from."""
    cols = config.columns
    if cols.scores:
        return list(cols.scores.values())
    return [cols.score] if cols.score else []


def with_score(table: pa.Table, config: Config) -> pa.Table:
    """``table`` (with the prediction and ``score_inputs``) and, when classes are scored one
    column each, the predicted class's probability as ``PREDICTED_PROBABILITY`` (null for a
    class without a column, or a column missing from the table).

    >>> from hindsight.config import parse_config
    >>> config = parse_config({"model": "m", "store": "/s", "columns": {
    ...     "id": "i", "timestamp": "t", "prediction": "p", "label": "y",
    ...     "scores": {1: "p1", 0: "p0"}}})
    >>> table = pa.table({"p": [1.0, 0.0], "p1": [0.9, 0.3], "p0": [0.1, 0.7]})
    >>> with_score(table, config)[PREDICTED_PROBABILITY].to_pylist()
    [0.9, 0.7]
    """
    scores = config.columns.scores
    if not scores:
        return table
    predicted = identity(table[config.columns.prediction])
    chosen = pa.nulls(table.num_rows, pa.float64())
    for name, column in scores.items():
        if column in table.column_names:
            mine = pc.fill_null(pc.equal(predicted, name), False)
            chosen = pc.if_else(mine, table[column].cast(pa.float64()), chosen)
    return table.append_column(PREDICTED_PROBABILITY, chosen)
