"""``system/events/_share.py``: work shared with helper threads, taken over from helpers that stall."""

from __future__ import annotations

import threading
import time

import pytest

from foveate.system.events._share import share


def _on_helper() -> bool:
    return threading.current_thread().name.startswith("foveate-share")


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_results_in_order_and_each_item_finished_once(threads):
    finished: list[int] = []
    lock = threading.Lock()

    def finish(k, data):
        with lock:
            finished.append(k)
        return data * 10

    out = share(lambda k: k + 1, finish, lambda data: None, 50, threads)
    assert out == [(k + 1) * 10 for k in range(50)]
    assert sorted(finished) == list(range(50))


def test_a_stalled_helper_is_taken_over_and_its_fill_discarded():
    release = threading.Event()
    discarded: list[int] = []
    finished_on: dict[int, str] = {}

    def fill(k):
        if _on_helper():
            release.wait(5.0)  # a helper that gets no core for a long time
        else:
            time.sleep(0.05)  # the caller's fills take a while: the helper surely takes an item meanwhile
        return k

    def finish(k, data):
        finished_on[k] = threading.current_thread().name
        return data

    try:
        t0 = time.perf_counter()
        out = share(fill, finish, discarded.append, 6, 2)
        elapsed = time.perf_counter() - t0
    finally:
        release.set()
    assert out == list(range(6))
    assert elapsed < 2.0  # did not wait for the stalled helper
    assert all(not name.startswith("foveate-share") for name in finished_on.values())
    for _ in range(100):  # the helper wakes up, finds its item taken over and hands its data back
        if discarded:
            break
        time.sleep(0.01)
    assert len(discarded) == 1


@pytest.mark.parametrize("bad", [0, 3, 7])
def test_fill_errors_are_raised_in_the_caller(bad):
    def fill(k):
        if k == bad:
            raise ValueError(f"item {k} is corrupt")
        return k

    with pytest.raises(ValueError, match=f"item {bad} is corrupt"):
        share(fill, lambda k, d: d, lambda d: None, 8, 2)


def test_finish_errors_are_raised_in_the_caller():
    def finish(k, d):
        if k == 5:
            raise RuntimeError("cannot write item 5")
        return d

    with pytest.raises(RuntimeError, match="cannot write item 5"):
        share(lambda k: k, finish, lambda d: None, 8, 2)
