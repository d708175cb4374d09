"""Benchmark: the daily job of 20 models in one workspace, against 20 separate processes.

Run by hand (not part of the test suite's timings):

    python benchmarks/workspace.py                       # 20 models, 400 to 40,000 a day
    python benchmarks/workspace.py --models 6 --largest 4000 --days 10 --repeat 1   # small

It writes a workspace of ``--models`` models of three tasks (a multi-class router, a binary
fraud classifier with a score, a price regression), each with columns of its own, sizes
growing geometrically from ``--smallest`` to ``--largest`` predictions a day, a reference set
each, and labels arriving over the following days. The day before the last is run for every
model (so the measured run carries counts, as a daily job does). Then, for each way of running
the last day's job for every model, it restores that store, and measures in a fresh parent
process that does nothing but start the command(s) and wait:

- ``separate``: 20 ``hindsight --model NAME run`` processes, one after the other (a crontab
  of 20 lines, or 20 configs);
- ``separate-parallel``: the same, as many at once as there are cores;
- ``workspace-N``: one ``hindsight run`` over the workspace, ``--jobs N`` (each model in a
  process forked from it);
- ``in-process``: every model one after the other in one process, nothing isolated (what a
  shared process would cost: no crash isolation).

Wall time; CPU time of all the processes; the largest single process's peak resident memory
(``getrusage(RUSAGE_CHILDREN)`` in the fresh parent, which used little itself); and the peak
of the whole process tree's proportional memory (PSS: pages shared after a fork count once),
sampled from /proc every 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
START = date(2026, 3, 1)
TASKS = ("router", "fraud", "price")
WAYS = {
    "separate": "{n} separate processes, one after the other",
    "separate-parallel": "{n} separate processes, cores at once",
    "workspace-1": "workspace command, --jobs 1",
    "workspace-2": "workspace command, --jobs 2",
    "in-process": "one process, no isolation",
}


# ---- the data ------------------------------------------------------------------------------

def model_config(task: str) -> dict[str, Any]:
    if task == "router":
        return {"task": "classification", "segments": ["language", "channel"],
                "features": ["words", "priority"],
                "columns": {"id": "ticket", "timestamp": "opened", "prediction": "queue",
                            "label": "true_queue", "label_timestamp": "routed_at"}}
    if task == "fraud":
        return {"segments": ["country", "merchant"], "features": ["amount"],
                "columns": {"id": "txn", "timestamp": "at", "prediction": "flagged",
                            "score": "p_fraud", "label": "chargeback",
                            "label_timestamp": "charged_at"}}
    return {"task": "regression", "segments": ["region", "kind"], "features": ["rooms", "area"],
            "columns": {"id": "listing", "timestamp": "listed", "prediction": "price_hat",
                        "label": "price", "label_timestamp": "sold_at"}}


def rows(task: str, n: int, day: date, seed: int, prefix: str) -> tuple[Any, Any]:
    """``n`` predictions of ``day`` and their labels (each with its arrival time)."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    midnight = np.datetime64(datetime(day.year, day.month, day.day), "us")
    at = midnight + rng.integers(0, 86_400_000_000, n).astype("timedelta64[us]")
    arrived = at + (rng.exponential(2.0, n) * 86_400e6).astype("timedelta64[us]")
    ids = np.char.add(prefix, np.arange(n).astype(str))
    stamp = pa.timestamp("us", tz="UTC")

    def pick(values: tuple[str, ...]) -> Any:
        return pa.array(np.array(values)[rng.integers(0, len(values), n)])

    if task == "router":
        queues = np.array(["billing", "tech", "sales", "legal", "hr", "it"])
        truth = rng.integers(0, len(queues), n)
        right = rng.random(n) < 0.85
        predicted = np.where(right, truth, rng.integers(0, len(queues), n))
        predictions = pa.table({"ticket": ids, "opened": pa.array(at, stamp),
                                "queue": queues[predicted], "language": pick(("de", "fr", "it")),
                                "channel": pick(("mail", "chat", "phone", "web")),
                                "words": rng.gamma(2.0, 40.0, n),
                                "priority": pick(("low", "normal", "high"))})
        labels = pa.table({"ticket": ids, "true_queue": queues[truth],
                           "routed_at": pa.array(arrived, stamp)})
    elif task == "fraud":
        score = rng.beta(1.0, 8.0, n)
        predictions = pa.table({"txn": ids, "at": pa.array(at, stamp),
                                "flagged": (score > 0.5).astype(np.int64), "p_fraud": score,
                                "country": pick(("CH", "DE", "FR", "IT", "AT", "NL")),
                                "merchant": pick(tuple(f"m{i}" for i in range(12))),
                                "amount": rng.lognormal(3.0, 1.0, n)})
        labels = pa.table({"txn": ids, "chargeback": (rng.random(n) < score).astype(np.int64),
                           "charged_at": pa.array(arrived, stamp)})
    else:
        rooms = rng.integers(1, 7, n)
        price = 300.0 * rooms + rng.normal(0, 80, n)
        predictions = pa.table({"listing": ids, "listed": pa.array(at, stamp),
                                "price_hat": price + rng.normal(0, 60, n),
                                "region": pick(("north", "south", "east", "west")),
                                "kind": pick(("flat", "house")),
                                "rooms": rooms.astype(np.float64), "area": rooms * 25.0})
        labels = pa.table({"listing": ids, "price": price, "sold_at": pa.array(arrived, stamp)})
    return predictions, labels


def sizes(models: int, smallest: int, largest: int) -> list[int]:
    ratio = (largest / smallest) ** (1 / max(models - 1, 1))
    return [round(smallest * ratio ** i) for i in range(models)]


def prepare(directory: Path, models: int, smallest: int, largest: int, days: int) -> Path:
    """The workspace with its data, and the day before the last run for every model; kept
    aside as ``pristine`` (reused when the same sizes were asked for)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import yaml

    from hindsight.config import load_config
    from hindsight.monitor import Monitor

    wanted = {"models": models, "smallest": smallest, "largest": largest, "days": days}
    stamp = directory / "prepared.json"
    if stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return directory / "hindsight.yaml"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    names = [f"{TASKS[i % 3]}-{i:02d}" for i in range(models)]
    config_file = directory / "hindsight.yaml"
    config_file.write_text(yaml.safe_dump({
        "store": "store", "min_samples": 100,
        "models": {name: model_config(name.split("-")[0]) for name in names}},
        sort_keys=False))
    started = time.perf_counter()
    last = START + timedelta(days=days - 1)
    for index, (name, per_day) in enumerate(zip(names, sizes(models, smallest, largest),
                                                strict=True)):
        task = name.split("-")[0]
        label_column = model_config(task)["columns"]["label"]
        arrival_column = model_config(task)["columns"]["label_timestamp"]
        with Monitor(load_config(config_file, name)) as monitor:
            reference, truth = rows(task, min(max(per_day, 2000), 20_000),
                                    START - timedelta(days=14), index, "ref")
            monitor.log_reference(reference.append_column(label_column,
                                                          truth[label_column]))
            pending: list[Any] = []
            for offset in range(days):
                day = START + timedelta(days=offset)
                predictions, labels = rows(task, per_day, day, index * 1000 + offset,
                                           day.strftime("%m%d-"))
                monitor.log_predictions(predictions)
                pending.append(labels)
                waiting = pa.concat_tables(pending)
                end = pa.scalar(datetime(day.year, day.month, day.day, tzinfo=UTC)
                                + timedelta(days=1), waiting[arrival_column].type)
                due = pc.less(waiting[arrival_column], end)
                if pc.any(due).as_py():
                    monitor.log_labels(waiting.filter(due))
                pending = [waiting.filter(pc.invert(due))]
            monitor.run(last - timedelta(days=1))
        print(f"  prepared {name}: {per_day:,} a day", file=sys.stderr, flush=True)
    shutil.copytree(directory / "store", directory / "pristine")
    print(f"prepared {models} models in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    stamp.write_text(json.dumps(wanted))
    return config_file


# ---- one measurement, in a fresh parent ----------------------------------------------------

def commands(way: str, config_file: Path, names: list[str], as_of: date) -> list[list[str]]:
    hindsight = [sys.executable, "-m", "hindsight", "--config", str(config_file)]
    run = ["run", "--date", as_of.isoformat(), "--delivery-seconds", "0"]
    if way.startswith("separate"):
        return [[*hindsight, "--model", name, *run] for name in names]
    if way.startswith("workspace-"):
        return [[*hindsight, *run, "--jobs", way.split("-")[1]]]
    return [[sys.executable, str(HERE), "--in-process", str(config_file), as_of.isoformat()]]


def measure(way: str, config_file: Path, names: list[str], as_of: date) -> dict[str, float]:
    """In a parent that imported nothing heavy: start the commands and wait for them."""
    at_once = os.cpu_count() or 1 if way == "separate-parallel" else 1
    todo = commands(way, config_file, names, as_of)
    peak = {"pss": 0}
    done = threading.Event()
    sampler = threading.Thread(target=_sample_tree, args=(os.getpid(), peak, done))
    sampler.start()
    started = time.perf_counter()
    running: list[subprocess.Popen[bytes]] = []
    while todo or running:
        while todo and len(running) < at_once:
            running.append(subprocess.Popen(todo.pop(0), stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
        while all(p.poll() is None for p in running):
            time.sleep(0.02)
        finished = next(p for p in running if p.returncode is not None)
        running.remove(finished)
        if finished.returncode != 0:
            raise SystemExit(f"{way}: {finished.args} exited {finished.returncode}")
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "largest_process_mib": usage.ru_maxrss / 1024, "tree_pss_mib": peak["pss"] / 1024}


def _sample_tree(root: int, peak: dict[str, int], done: threading.Event) -> None:
    """The peak of the summed PSS (KiB) of ``root``'s descendants, every 50 ms."""
    while not done.wait(0.05):
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        tree, grew = {root}, True
        while grew:
            more = {pid for pid, parent in parents.items() if parent in tree} - tree
            grew = bool(more)
            tree |= more
        total = 0
        for pid in tree - {root}:
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
            except OSError:
                continue
        peak["pss"] = max(peak["pss"], total)


def in_process(config_file: Path, as_of: date) -> None:
    """Every model of the workspace, one after the other, in this process."""
    from hindsight.cli import spare_pandas_probe
    from hindsight.monitor import Monitor
    from hindsight.workspace import load_workspace

    spare_pandas_probe()
    for config in load_workspace(config_file):
        with Monitor(config) as monitor:
            monitor.run(as_of)


def restore(directory: Path) -> None:
    shutil.rmtree(directory / "store", ignore_errors=True)
    shutil.copytree(directory / "pristine", directory / "store")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--smallest", type=int, default=400, help="Predictions a day.")
    parser.add_argument("--largest", type=int, default=40_000, help="Predictions a day.")
    parser.add_argument("--days", type=int, default=21)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--ways", default=",".join(WAYS))
    parser.add_argument("--dir", type=Path, default=Path("benchmarks/.data/workspace"))
    parser.add_argument("--measure", choices=list(WAYS), help=argparse.SUPPRESS)
    parser.add_argument("--in-process", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_process:
        in_process(Path(args.in_process[0]), date.fromisoformat(args.in_process[1]))
        return
    directory = args.dir.resolve()
    as_of = START + timedelta(days=args.days - 1)
    names = [f"{TASKS[i % 3]}-{i:02d}" for i in range(args.models)]
    if args.measure:
        print(json.dumps(measure(args.measure, directory / "hindsight.yaml", names, as_of)))
        return
    prepare(directory, args.models, args.smallest, args.largest, args.days)
    ways = args.ways.split(",")
    results: dict[str, list[dict[str, float]]] = {way: [] for way in ways}
    for _ in range(args.repeat):
        for way in ways:  # alternate, so drift on a shared machine hits all alike
            restore(directory)
            done = subprocess.run([sys.executable, str(HERE), "--measure", way, "--dir",
                                   str(directory), "--models", str(args.models),
                                   "--days", str(args.days)],
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"{way} failed:\n{done.stdout}\n{done.stderr}")
            results[way].append(json.loads(done.stdout))
    per_day = sizes(args.models, args.smallest, args.largest)
    print(f"the daily job of {args.models} models ({min(per_day):,} to {max(per_day):,} "
          f"predictions a day, {sum(per_day):,} in all), {os.cpu_count()} cores, median of "
          f"{args.repeat}:")
    print(f"  {'':44} {'wall s':>7} {'cpu s':>7} {'largest process':>16} {'tree PSS':>10}")
    for way in ways:
        found = results[way]
        label = WAYS[way].format(n=args.models)
        print(f"  {label:44} {statistics.median(r['seconds'] for r in found):7.2f} "
              f"{statistics.median(r['cpu_seconds'] for r in found):7.2f} "
              f"{max(r['largest_process_mib'] for r in found):12.0f} MiB "
              f"{max(r['tree_pss_mib'] for r in found):6.0f} MiB")


if __name__ == "__main__":
    main()
