"""Benchmark: hindsight side by side with Evidently and NannyML on the same day of data.

    python benchmarks/peers.py                  # 500,000 reference vs 500,000 current, 15 features
    python benchmarks/peers.py --rows 50000 --repeat 1

Comparisons, one day's work each: (1) feature drift on 15 features plus prediction drift, vs
Evidently's data-drift preset and NannyML's univariate drift; (2) realized performance, vs
Evidently's classification preset and NannyML's performance calculator, for the whole day and
for every cell of three segment columns and their crosses (NannyML looped over the cells, as a
user would have to); (3) the label-free accuracy estimate, vs NannyML's CBPE, with each
estimate's error against the realized accuracy.

Each peer is installed, pinned, into its own virtual environment under ``--venvs`` on first
use (never a dependency of hindsight). Every measurement runs in a fresh process, so its peak
memory is its own; tools alternate within each repeat, so a busy machine slows all alike.
Reported: median seconds, peak MiB, the peer's time over hindsight's, and whether the numbers
agree (drift scores against scipy on the same method, realized accuracy, estimate errors).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from peer_data import NUMERIC, prepare
from scipy import stats

HERE = Path(__file__).resolve().parent
PEERS: dict[str, list[str]] = {
    # evidently 0.7 imports a pandas internal that pandas 3 removed; nannyml 0.13 imports
    # statsmodels without declaring it
    "evidently": ["evidently==0.7.23", "pandas==2.3.3"],
    "nannyml": ["nannyml==0.13.1", "pandas==2.3.3", "statsmodels==0.14.5"],
}
# name: [(tool, task)]; ratios are over the first, hindsight from the same files as the peers
# (ingest into a new store included); "from its store" reads what peer_data logged beforehand.
COMPARISONS: dict[str, list[tuple[str, str]]] = {
    "drift (15 features + prediction)": [
        ("hindsight", "hindsight-drift"), ("evidently", "evidently-drift"),
        ("nannyml", "nannyml-drift")],
    "realized performance": [
        ("hindsight", "hindsight-performance-files"), ("hindsight", "hindsight-performance"),
        ("evidently", "evidently-classification"), ("nannyml", "nannyml-performance")],
    "realized accuracy of every segment cell (c0, c1, c2 and their crosses)": [
        ("hindsight", "hindsight-performance-segments-files"),
        ("hindsight", "hindsight-performance-segments"),
        ("nannyml", "nannyml-performance-segments")],
    "label-free accuracy estimate": [
        ("hindsight", "hindsight-estimate-files"), ("hindsight", "hindsight-estimate"),
        ("nannyml", "nannyml-cbpe")],
}


def peer_python(name: str, venvs: Path) -> Path:
    """The peer's interpreter, its environment made and filled on first use."""
    home = venvs / name
    python = home / "bin" / "python"
    stamp = home / "pinned.json"
    if python.exists() and stamp.exists() and json.loads(stamp.read_text()) == PEERS[name]:
        return python
    print(f"installing {' '.join(PEERS[name])} into {home} ...", file=sys.stderr, flush=True)
    venv.create(home, with_pip=True, clear=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PEERS[name]], check=True)
    stamp.write_text(json.dumps(PEERS[name]))
    return python


def measure(python: Path, task: str, data: Path) -> dict[str, Any]:
    env = os.environ | {"NML_DISABLE_USAGE_LOGGING": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([str(python), str(HERE / "peer_tasks.py"), task, str(data)],
                          capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"{task} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=HERE / ".data" / "peers")
    parser.add_argument("--venvs", type=Path, default=HERE / ".venvs")
    parser.add_argument("--peers", default="evidently,nannyml",
                        help="comma-separated; 'none' runs hindsight alone")
    args = parser.parse_args()
    chosen = [] if args.peers == "none" else args.peers.split(",")
    unknown = set(chosen) - set(PEERS)
    if unknown:
        parser.error(f"unknown peer(s) {sorted(unknown)}; choose from {sorted(PEERS)}")
    pythons = {"hindsight": Path(sys.executable)}
    pythons |= {name: peer_python(name, args.venvs.resolve()) for name in chosen}
    data = prepare(args.dir.resolve(), args.rows)
    runs: dict[str, list[dict[str, Any]]] = {}
    for repeat in range(args.repeat):
        for comparison in COMPARISONS.values():
            for tool, task in comparison:
                if tool in pythons:
                    runs.setdefault(task, []).append(measure(pythons[tool], task, data))
                    print(f"  run {repeat + 1}: {task} {runs[task][-1]['seconds']:.2f} s",
                          file=sys.stderr, flush=True)
    print(f"{args.rows:,} reference vs {args.rows:,} current rows, 15 features, "
          f"median of {args.repeat} (seconds from reading the files to the answer; hindsight "
          "'-files': ingest into a new store included):")
    for name, comparison in COMPARISONS.items():
        print(f"\n{name}")
        ours = statistics.median(r["seconds"] for r in runs[comparison[0][1]])
        for tool, task in comparison:
            if task not in runs:
                continue
            seconds = statistics.median(r["seconds"] for r in runs[task])
            peak = max(r["peak_mib"] for r in runs[task])
            ratio = ("" if tool == "hindsight"
                     else f"   {seconds / ours:7.1f}x hindsight's time from the files")
            print(f"  {task:32}: {seconds:8.2f} s   peak {peak:6.0f} MiB{ratio}")
    print()
    lines, failures = agreement(data, {task: r[-1]["values"] for task, r in runs.items()})
    print("\n".join(lines))
    if failures:
        raise SystemExit("the tools disagree beyond the stated tolerances:\n  "
                         + "\n  ".join(failures))


# What "agree" means, per comparison: exact methods to rounding; NannyML bins large samples.
EXACT, BINNED, ESTIMATE = 1e-9, 1e-3, 0.01


def agreement(data: Path,
              values: dict[str, dict[str, float]]) -> tuple[list[str], list[str]]:
    """Do the numbers agree? Drift scores against scipy on the same method; accuracy across
    tools and against a direct count, overall and per cell (cells one side lacks counted);
    each estimate's error against realized accuracy. Returns the report and what failed its
    tolerance."""
    failures: list[str] = []

    def within(what: str, gap: float, tolerance: float) -> float:
        if not gap <= tolerance:
            failures.append(f"{what}: {gap:.2e} > {tolerance:.0e}")
        return gap

    reference = pq.read_table(data / "reference.parquet")
    current = pq.read_table(data / "current.parquet")
    ks, w, w_sd = {}, {}, {}
    for name in NUMERIC:
        a, b = reference[name].to_numpy(), current[name].to_numpy()
        ks[name] = stats.ks_2samp(a, b).statistic
        w[name] = stats.wasserstein_distance(a, b)
        w_sd[name] = w[name] / np.std(a)
    ours = values["hindsight-drift"]
    lines = ["agreement:"]

    def worst(found: dict[str, float], key: str, truth: dict[str, float]) -> float:
        return max(abs(found[key.format(name)] - truth[name]) for name in NUMERIC)

    gap = within("hindsight KS", worst(ours, "{}:ks", ks), EXACT)
    lines.append(f"  hindsight KS vs scipy.stats.ks_2samp, max |diff| over 10 features: "
                 f"{gap:.1e}")
    gap = within("hindsight Wasserstein", worst(ours, "{}:wasserstein_sd", w_sd), EXACT)
    lines.append(f"  hindsight Wasserstein/sd vs scipy.stats.wasserstein_distance/sd:    "
                 f"{gap:.1e}")
    if "evidently-drift" in values:
        key = "ValueDrift(column={},method=Wasserstein distance (normed),threshold=0.1)"
        gap = within("Evidently Wasserstein", worst(values["evidently-drift"], key, w_sd),
                     EXACT)
        lines.append(f"  Evidently Wasserstein (normed) vs scipy:                           "
                     f"{gap:.1e}")
    if "nannyml-drift" in values:
        gap = within("NannyML KS", worst(values["nannyml-drift"], "{}:kolmogorov_smirnov",
                                         ks), BINNED)
        lines.append(f"  NannyML KS vs scipy (NannyML bins large samples):                   "
                     f"{gap:.1e}")
        gap = within("NannyML Wasserstein", worst(values["nannyml-drift"], "{}:wasserstein",
                                                  w), BINNED)
        lines.append(f"  NannyML Wasserstein vs scipy (NannyML bins large samples):          "
                     f"{gap:.1e}")
    for task in ("hindsight-performance", "hindsight-estimate",
                 "hindsight-performance-segments"):
        if f"{task}-files" in values and values[f"{task}-files"] != values[task]:
            failures.append(f"{task}: from the files and from the store differ")
    lines.append("  hindsight from the files = hindsight from its store, on every value: "
                 + ("yes" if not any("differ" in f for f in failures) else "NO"))
    truth = float(np.mean(current["y_pred"].to_numpy() == current["y_true"].to_numpy()))
    accuracy = {"direct count": truth, "hindsight": values["hindsight-performance"]["accuracy"]}
    if "evidently-classification" in values:
        accuracy["evidently"] = values["evidently-classification"][
            "Accuracy(classification_name=default)"]
    if "nannyml-performance" in values:
        accuracy["nannyml"] = values["nannyml-performance"]["accuracy"]
    spread = max(accuracy.values()) - min(accuracy.values())
    within("realized accuracy", spread, EXACT)
    lines.append("  realized accuracy: " + ", ".join(f"{k} {v:.6f}" for k, v in accuracy.items())
                 + f"  (spread {spread:.1e})")
    cells = values["hindsight-performance-segments"]
    if "nannyml-performance-segments" in values:
        theirs = values["nannyml-performance-segments"]
        both = [k for k in cells if k in theirs]
        only_theirs = [k for k in theirs if k not in cells]
        if only_theirs:
            failures.append(f"{len(only_theirs)} cells NannyML has and hindsight lacks, "
                            f"e.g. {only_theirs[0]}")
        gap = within("accuracy per cell", max(abs(cells[k] - theirs[k]) for k in both), EXACT)
        lines.append(f"  accuracy per cell: hindsight {len(cells)} cells, nannyml {len(theirs)} "
                     f"({len(cells) - len(both)} without reference rows, which NannyML skips); "
                     f"max |diff| over the {len(both)} both have: {gap:.1e}")
    else:
        lines.append(f"  accuracy per cell: hindsight {len(cells)} cells")
    estimates = {"hindsight": values["hindsight-estimate"]["estimated_accuracy"]}
    if "nannyml-cbpe" in values:
        estimates["nannyml CBPE"] = values["nannyml-cbpe"]["accuracy"]
    reference_accuracy = float(np.mean(reference["y_pred"].to_numpy()
                                       == reference["y_true"].to_numpy()))
    for name, value in estimates.items():
        within(f"{name} estimate", abs(value - truth), ESTIMATE)
    lines.append(f"  accuracy estimate (realized {truth:.4f}; the reference's "
                 f"{reference_accuracy:.4f}): "
                 + ", ".join(f"{k} {v:.4f} (error {v - truth:+.4f})"
                             for k, v in estimates.items()))
    return lines, failures


if __name__ == "__main__":
    main()
