"""The shop's send rate for broadcasts: senders are spaced evenly, whatever the number of threads."""

from __future__ import annotations

import threading

import pytest

from jobs import broadcasts
from jobs.broadcasts import Pacer


class Clock:
    """A clock that stands still: each wait's sleep is recorded, so the slots can be read off exactly."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []
        self.lock = threading.Lock()

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.slept.append(seconds)


def test_pacer_spaces_calls_by_the_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(broadcasts.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(broadcasts.time, "sleep", clock.sleep)
    pacer = Pacer(rate=20)  # 20 messages/s: one every 50 ms
    for _ in range(5):
        pacer.wait()
    # The first goes at once; each next one waits its slot, counted from the same instant.
    assert clock.slept == pytest.approx([0.05, 0.10, 0.15, 0.20])
    clock.now += 1.0  # a quiet second: no debt is carried over
    pacer.wait()
    assert clock.slept[-1] == pytest.approx(0.20)  # unchanged: this one went at once


def test_pacer_shares_slots_between_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(broadcasts.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(broadcasts.time, "sleep", clock.sleep)
    pacer = Pacer(rate=10)
    threads = [threading.Thread(target=pacer.wait) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(clock.slept) == pytest.approx([0.1, 0.2, 0.3])  # four threads, four distinct slots
