"""The service's intra-day prediction drift checks, on schedule.

A thread runs the check of each instant ``k * drift.every`` after UTC midnight, ``settle``
after it (so predictions made just before the instant and still in flight are in), delivers
what the sinks have pending (what the check opened or resolved, and what a run or a sink that
was down left), for at most ``RUN_DELIVERY_SECONDS`` and not while another delivery sends, and
keeps the check's measurements for ``/metrics``. It has
its own monitor, hence its own engine: a check never waits for the ingest writer, nor the
writer for a check. Instants missed while the service was down are not run late: ``hindsight
backfill --every`` replays them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hindsight.config import Config
from hindsight.jobs.intraday import CheckResult, Schedule
from hindsight.monitor import Monitor

log = logging.getLogger(__name__)
SETTLE = timedelta(seconds=30)


class DriftWatch:
    def __init__(self, config: Config, clock: Callable[[], datetime] | None = None,
                 settle: timedelta = SETTLE) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._monitor = Monitor(config, clock=self._clock)
        self.schedule = Schedule.of(config)
        self._settle = settle
        self._next = self.schedule.last_before(self._clock() - settle) + self.schedule.every
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._checked = threading.Condition()
        self._thread: threading.Thread | None = None
        self.latest: CheckResult | None = None
        self.failures = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="drift-checks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self._monitor.close()

    def poke(self) -> None:
        """Look at the clock now (it may have moved on faster than the thread's wait)."""
        self._wake.set()

    def wait_for(self, at: datetime, timeout: float) -> bool:
        """Until the check of ``at`` (or a later one) is done; False on timeout."""
        with self._checked:
            return self._checked.wait_for(
                lambda: self.latest is not None and self.latest.at >= at, timeout)

    def run_due(self) -> None:
        """Every check whose instant (plus the settling time) has passed, in order; after a
        long stall (a suspended process), only the latest of them."""
        now = self._clock() - self._settle
        latest_due = self.schedule.last_before(now)
        if latest_due - self._next > self.schedule.every:
            self._next = latest_due
        while self._next <= now:
            at, self._next = self._next, self._next + self.schedule.every
            if at.hour == at.minute == at.second == 0:
                continue  # midnight is the daily run's
            result = self._monitor.check_drift(at)
            if self._monitor.config.sinks:
                self._deliver()
            with self._checked:
                if result is not None:
                    self.latest = result
                self._checked.notify_all()

    def _deliver(self) -> None:
        from hindsight.alerts.delivery import RUN_DELIVERY_SECONDS

        report = self._monitor.deliver(within=RUN_DELIVERY_SECONDS, wait=False)
        if report.errors or report.note:
            log.warning("alert delivery: %d delivered, %d pending; %s", report.delivered,
                        report.pending, "; ".join(filter(None, [report.note, *report.errors[-1:]])))

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_due()
            except Exception:  # a failed check must not take the server down
                self.failures += 1
                log.exception("an intra-day drift check failed; the next one runs on time")
                self._next = self.schedule.last_before(self._clock()) + self.schedule.every
            pause = (self._next + self._settle - self._clock()).total_seconds()
            self._wake.wait(timeout=max(pause, 0.01))
            self._wake.clear()
