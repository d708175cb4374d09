"""Performance metrics of every cell, in the long form the ``metrics/`` table stores.

Rows: day, segment, depth, metric, value, n_predictions, n_labelled, label_coverage. A value that
cannot be computed (no labelled rows yet) is null, never a made-up zero. Per-class precision and
recall are kept for the whole population and single segments; deeper crosses get accuracy and
macro-F1 (or MAE and RMSE). With a calibrated score, ``estimated_accuracy`` sits beside the
realized accuracy from the first day, before any label arrives.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hindsight.engine.base import CellCounts
from hindsight.stats.classification import f1_scores, ratio

PER_CLASS_MAX_DEPTH = 1
ESTIMATED_ACCURACY = "estimated_accuracy"
METRICS_SCHEMA = pa.schema(
    [
        ("day", pa.date32()),
        ("segment", pa.string()),
        ("depth", pa.int32()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("n_predictions", pa.int64()),
        ("n_labelled", pa.int64()),
        ("label_coverage", pa.float64()),
    ]
)


def metric_rows(counts: CellCounts, task: str) -> pa.Table:
    cells = counts.cells
    n_labelled = _floats(cells["n_labelled"])
    rows = _Rows(cells)
    parts: list[pa.Table] = []
    if task == "classification":
        parts.append(rows("accuracy", ratio(_floats(cells["n_correct"]), n_labelled)))
        if "n_scored" in cells.column_names and pc.sum(cells["n_scored"]).as_py():
            # a leading indicator from confidence, not a measurement: named so everywhere
            parts.append(rows(ESTIMATED_ACCURACY, ratio(
                _floats(cells["expected_correct"]), _floats(cells["n_scored"]))))
        if counts.classes is not None:
            parts += _class_rows(cells, counts.classes, rows)
    else:
        parts.append(rows("mae", ratio(_floats(cells["sum_abs_error"]), n_labelled)))
        parts.append(rows("rmse", np.sqrt(ratio(_floats(cells["sum_sq_error"]), n_labelled))))
    return pa.concat_tables(parts).cast(METRICS_SCHEMA)


def _class_rows(cells: pa.Table, classes: pa.Table, of_cells: _Rows) -> list[pa.Table]:
    cell = classes["cell"].to_numpy()  # each class row's row in `cells`
    f1 = f1_scores(_floats(classes["tp"]), _floats(classes["n_predicted"]),
                   _floats(classes["n_true"]))
    n_classes = np.bincount(cell, minlength=cells.num_rows)
    # a cell without a labelled row has no F1 (null), not a made-up zero
    macro = ratio(np.bincount(cell, weights=f1, minlength=cells.num_rows), n_classes)
    rows = [of_cells("macro_f1", macro)]
    shallow = pc.less_equal(classes["depth"], PER_CLASS_MAX_DEPTH)
    of_cell = pa.array(cell).filter(shallow)
    per_class = pa.table({
        "day": classes["day"].filter(shallow), "segment": classes["segment"].filter(shallow),
        "depth": classes["depth"].filter(shallow),
        "n_predictions": cells["n_predictions"].take(of_cell),
        "n_labelled": cells["n_labelled"].take(of_cell),
    })
    of_classes = _Rows(per_class)
    tp = _floats(classes["tp"].filter(shallow))
    names = classes["class"].filter(shallow)
    for name, denominator in (("precision", "n_predicted"), ("recall", "n_true")):
        metric = pc.binary_join_element_wise(name + "[", names, "]", "")
        rows.append(of_classes(metric, ratio(tp, _floats(classes[denominator].filter(shallow)))))
    return rows


class _Rows:
    """The metric rows of a table of cells: its key columns, counts and label coverage
    (computed once for all its metrics), beside each metric's values."""

    def __init__(self, cells: pa.Table) -> None:
        self.cells = cells
        coverage = ratio(_floats(cells["n_labelled"]), _floats(cells["n_predictions"]))
        self.coverage = pa.array(coverage, pa.float64(), from_pandas=True)

    def __call__(self, metric: str | pa.Array | pa.ChunkedArray,
                 values: np.ndarray) -> pa.Table:
        cells = self.cells
        names = (pa.repeat(pa.scalar(metric, pa.string()), cells.num_rows)
                 if isinstance(metric, str) else metric)
        return pa.table({
            "day": cells["day"],
            "segment": cells["segment"],
            "depth": cells["depth"],
            "metric": names,
            "value": pa.array(values, pa.float64(), from_pandas=True),
            "n_predictions": cells["n_predictions"],
            "n_labelled": cells["n_labelled"],
            "label_coverage": self.coverage,
        })


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.fill_null(column, 0).to_numpy(zero_copy_only=False), dtype=np.float64)
