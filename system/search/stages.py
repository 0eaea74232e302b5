"""Pipelined work of the search loop: a stage takes items, works on them, hands results back.

Every stage has a bounded input queue with an explicit drop policy:
``oldest`` drops the oldest waiting item when a new one arrives on a full
queue (newest wins: search frames go stale), ``newest`` refuses the new item.
Drops are counted, never silent.

* ``SimulatedStage`` (simulated clock): one worker in simulated time. An
  item starts when the worker is free, takes ``latency_s`` of clock time
  (or its measured compute time when ``latency_s`` is None) and its result
  is handed back once the clock passes its finish time, so a fixed latency
  makes runs deterministic and the timing of the pipeline realistic.
* ``ThreadedStage`` (real clock): a worker thread; results come back as
  they finish.

Both record the compute time (wall seconds), the queue wait and the
submit-to-result latency (clock) in histograms.
"""

from __future__ import annotations

import collections
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable

from foveate.system.clock import Clock
from foveate.system.search.stats import Histograms


@dataclass
class Done:
    """A finished item: its payload, the result and the clock times it started and finished."""

    item: Any
    result: Any
    submit_ns: int
    start_ns: int
    done_ns: int
    compute_s: float


class Stage(ABC):
    def __init__(self, name: str, fn: Callable[[Any], Any], clock: Clock, queue: int = 2, drop: str = "oldest",
                 hist: Histograms | None = None) -> None:
        if drop not in ("oldest", "newest"):
            raise ValueError(f"drop must be 'oldest' or 'newest', got {drop!r}")
        self.name = name
        self.fn = fn
        self.clock = clock
        self.maxsize = int(queue)
        self.drop = drop
        self.hist = hist if hist is not None else Histograms()
        self.submitted = 0
        self.dropped = 0
        self.completed = 0

    def _run(self, item) -> tuple[Any, float]:
        c0 = time.thread_time()
        t0 = time.perf_counter()
        result = self.fn(item)
        dt = time.perf_counter() - t0
        self.hist[f"{self.name}.compute"].record(dt)
        self.hist[f"{self.name}.cpu"].record(time.thread_time() - c0)
        return result, dt

    def _account(self, d: Done) -> Done:
        self.completed += 1
        self.hist[f"{self.name}.wait"].record((d.start_ns - d.submit_ns) * 1e-9)
        self.hist[f"{self.name}.latency"].record((d.done_ns - d.submit_ns) * 1e-9)
        return d

    @abstractmethod
    def submit(self, item) -> bool:
        """Queue an item; False when the policy refused it (counted in ``dropped``)."""

    @abstractmethod
    def poll(self) -> list[Done]:
        """Results finished by now, in submission order."""

    @abstractmethod
    def close(self) -> list[Done]:
        """Finish the running item, drop the waiting ones (counted), return what finished."""

    @property
    @abstractmethod
    def pending(self) -> int: ...

    def counters(self) -> dict:
        return {"submitted": self.submitted, "dropped": self.dropped, "completed": self.completed, "pending": self.pending,
                "parallel": getattr(self, "_pool", None) is not None or isinstance(self, ThreadedStage)}


class SimulatedStage(Stage):
    """See the module docstring. ``parallel`` (needs a fixed ``latency_s``): the work runs in a worker
    thread from its start time and is collected at its finish time, so the loop and the model use two
    cores while results still arrive at the same simulated times (deterministic for pure models)."""

    def __init__(self, *args, latency_s: float | None = None, parallel: bool = False, **kw) -> None:
        super().__init__(*args, **kw)
        self.latency_s = latency_s
        self._pool = None
        if parallel and latency_s is not None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"stage-{self.name}")
        self._queue: collections.deque = collections.deque()
        self._running: Done | None = None
        self._free_ns = 0
        self._ready: list[Done] = []

    @property
    def pending(self) -> int:
        return len(self._queue) + (self._running is not None)

    def submit(self, item) -> bool:
        now = self.clock.now_ns()
        self._advance(now)  # start (and finish) what can before judging the queue
        self.submitted += 1
        if len(self._queue) >= self.maxsize:
            self.dropped += 1
            if self.drop == "newest":
                return False
            self._queue.popleft()
        self._queue.append((item, now))
        return True

    def _advance(self, now: int) -> None:
        out = self._ready
        while True:
            if self._running is not None:
                if self._running.done_ns > now:
                    break
                self._resolve(self._running)
                out.append(self._account(self._running))
                self._free_ns = self._running.done_ns
                self._running = None
            if not self._queue:
                break
            item, sub = self._queue[0]
            start = max(sub, self._free_ns)
            if start > now:
                break
            self._queue.popleft()
            if self._pool is not None:
                fut = self._pool.submit(self._run, item)
                self._running = Done(item, fut, sub, start, start + int(round(self.latency_s * 1e9)), 0.0)
                continue
            result, dt = self._run(item)
            lat = dt if self.latency_s is None else self.latency_s
            self._running = Done(item, result, sub, start, start + int(round(lat * 1e9)), dt)

    def _resolve(self, d: Done) -> None:
        """Wait for a parallel item's result (it is due now on the simulated clock)."""
        if self._pool is not None and hasattr(d.result, "result"):
            d.result, d.compute_s = d.result.result()

    def poll(self) -> list[Done]:
        self._advance(self.clock.now_ns())
        out, self._ready = self._ready, []
        return out

    def close(self) -> list[Done]:
        out = self.poll()
        if self._running is not None:
            self._resolve(self._running)
            out.append(self._account(self._running))
            self._running = None
        self.dropped += len(self._queue)
        self._queue.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        return out


class ThreadedStage(Stage):
    def __init__(self, *args, **kw) -> None:
        kw.pop("latency_s", None)
        super().__init__(*args, **kw)
        self._queue: collections.deque = collections.deque()
        self._done: list[Done] = []
        self._busy = False
        self._cv = threading.Condition()
        self._stop = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._worker, name=f"stage-{self.name}", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        with self._cv:
            return len(self._queue) + int(self._busy)

    def submit(self, item) -> bool:
        with self._cv:
            if self._error is not None:
                raise self._error
            self.submitted += 1
            if len(self._queue) >= self.maxsize:
                self.dropped += 1
                if self.drop == "newest":
                    return False
                self._queue.popleft()
            self._queue.append((item, self.clock.now_ns()))
            self._cv.notify()
        return True

    def _worker(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._stop:
                    self._cv.wait()
                if self._stop and not self._queue:
                    return
                item, sub = self._queue.popleft()
                self._busy = True
            start = self.clock.now_ns()
            try:
                result, dt = self._run(item)
            except BaseException as exc:  # noqa: BLE001 - handed to the loop on its next poll
                with self._cv:
                    self._error = exc
                    self._busy = False
                return
            with self._cv:
                self._done.append(Done(item, result, sub, start, self.clock.now_ns(), dt))
                self._busy = False

    def poll(self) -> list[Done]:
        with self._cv:
            if self._error is not None:
                raise self._error
            out, self._done = self._done, []
        return [self._account(d) for d in out]

    def close(self) -> list[Done]:
        with self._cv:
            self.dropped += len(self._queue)
            self._queue.clear()
            self._stop = True
            self._cv.notify()
        self._thread.join(timeout=5.0)
        return self.poll()


def make_stage(name: str, fn, clock: Clock, settings, hist: Histograms) -> Stage:
    """Simulated-time stage on a simulated clock, a worker thread on a real one."""
    if clock.simulated:
        return SimulatedStage(name, fn, clock, queue=settings.queue, drop=settings.drop, hist=hist,
                              latency_s=settings.latency_s, parallel=settings.parallel)
    return ThreadedStage(name, fn, clock, queue=settings.queue, drop=settings.drop, hist=hist)
