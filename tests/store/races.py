"""Forcing an interleaving between a store step and another one, without timed sleeps."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import pytest

from hindsight.store.partitions import Store


class Beside:
    """``work`` run in a thread beside the test's own step: ``start`` returns once the work has
    finished, or once it asks for the store lock ``blocks_on`` (which the test's step holds,
    so it waits there until the step lets go)."""

    def __init__(self, work: Callable[[], object], blocks_on: str,
                 monkeypatch: pytest.MonkeyPatch) -> None:
        self._work = work
        self._blocks_on = blocks_on
        self._settled = threading.Event()
        self._failure: BaseException | None = None
        self.waited = False  # whether the work asked for the lock before it finished
        self._thread = threading.Thread(target=self._run, daemon=True)
        lock = Store.lock

        @contextlib.contextmanager
        def noticed(store: Store, name: str) -> Iterator[None]:
            if threading.current_thread() is self._thread and name == self._blocks_on:
                self.waited = True
                self._settled.set()
            with lock(store, name):
                yield

        monkeypatch.setattr(Store, "lock", noticed)

    def _run(self) -> None:
        try:
            self._work()
        except BaseException as exc:  # re-raised in the test by join
            self._failure = exc
        finally:
            self._settled.set()

    def start(self) -> None:
        self._thread.start()
        self._settled.wait()

    def join(self) -> None:
        self._thread.join()
        if self._failure is not None:
            raise self._failure
