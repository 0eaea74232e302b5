"""Streaming slicers: time windows aligned to a declared origin, and count windows.

Slicers are frozen dataclasses behind the :class:`Slicer` protocol; each turns
a reader into :class:`~foveate.system.types.EventPacket` s, reading chunk by
chunk (bounded memory) and cutting exactly at window boundaries whatever the
chunking of the file.

Time order. Decoders return events in file order; a few formats allow small
steps back in time (EVT 3.0 TIME_LOW is monotonic only per source). Events
up to ``reorder_us`` late are sorted into place (stable, so equal times keep
file order); an event later than that raises ``EventFormatError`` naming its
index, or with ``reader.repair`` is dropped with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Protocol, runtime_checkable

import numpy as np

from foveate.system.events.base import fail
from foveate.system.types import EVENT_DTYPE, EventPacket

if TYPE_CHECKING:
    from foveate.system.events.base import EventReader

#: Default tolerance for events that arrive late in file order (µs).
DEFAULT_REORDER_US = 1000


def ordered_chunks(reader: "EventReader", reorder_us: int = DEFAULT_REORDER_US) -> Iterator[np.ndarray]:
    """The reader's chunks with non-decreasing timestamps across the whole stream.

    Events are held back until no event within ``reorder_us`` can still come
    before them; the buffer is at most one chunk plus ``reorder_us`` of events.
    """
    from foveate.system.events._kernels import first_descent  # numba: imported on first use

    if reorder_us < 0:
        raise ValueError(f"reorder_us must be >= 0, got {reorder_us}")
    buf = np.zeros(0, EVENT_DTYPE)
    released_until: int | None = None  # every released event has t < released_until
    max_seen: int | None = None
    index = 0
    for c in reader.chunks():
        n = len(c)
        if n == 0:
            continue
        t = c["t"]
        if released_until is not None:
            late = t < released_until
            if late.any():
                i = int(np.argmax(late))
                msg = (f"timestamp {int(t[i])} µs goes back in time, more than the {reorder_us} µs reordering "
                       f"tolerance before events already seen (up to {max_seen} µs)")
                if not reader.repair:
                    raise fail(reader.path, f"event {index + i}", msg + " (repair=True / --repair drops such events)")
                reader.stats.repaired_events += int(late.sum())
                reader._warn_once("late", f"{reader.path}: event {index + i}: {msg}; dropping late events")
                c = c[~late]
                t = c["t"]
                if len(c) == 0:
                    index += n
                    continue
        index += n
        sorted_chunk = first_descent(t) < 0
        cmax = int(t[-1]) if sorted_chunk else int(t.max())
        max_seen = cmax if max_seen is None else max(max_seen, cmax)
        boundary = max_seen - reorder_us
        if sorted_chunk and (len(buf) == 0 or t[0] >= buf["t"][-1]):
            if len(buf) and buf["t"][-1] < boundary:
                yield buf
                buf = np.zeros(0, EVENT_DTYPE)
            if len(buf) == 0:
                k = int(np.searchsorted(t, boundary, side="left"))
                if k:
                    yield c[:k]
                buf = c[k:]
                released_until = boundary if released_until is None else max(released_until, boundary)
                continue
            merged = np.concatenate([buf, c])
        else:
            merged = np.concatenate([buf, c])
            merged = merged[np.argsort(merged["t"], kind="stable")]
        k = int(np.searchsorted(merged["t"], boundary, side="left"))
        if k:
            yield merged[:k]
        buf = merged[k:]
        released_until = boundary if released_until is None else max(released_until, boundary)
    if len(buf):
        yield buf


class TimeCursor:
    """Pull time-ordered events up to a time: the core of time windows and replay."""

    def __init__(self, reader: "EventReader", reorder_us: int = DEFAULT_REORDER_US) -> None:
        self._it = ordered_chunks(reader, reorder_us)
        self._head = np.zeros(0, EVENT_DTYPE)
        self.exhausted = False

    def _fill(self) -> bool:
        while not self.exhausted and len(self._head) == 0:
            try:
                self._head = next(self._it)
            except StopIteration:
                self.exhausted = True
        return len(self._head) > 0

    def first_t(self) -> int | None:
        """Time of the next event, or None at the end of the stream."""
        return int(self._head["t"][0]) if self._fill() else None

    def take_until(self, t_end_us: int) -> np.ndarray:
        """Every remaining event with ``t < t_end_us`` (possibly none)."""
        parts = []
        while self._fill():
            t = self._head["t"]
            k = int(np.searchsorted(t, t_end_us, side="left"))
            if k == 0:
                break
            parts.append(self._head[:k])
            self._head = self._head[k:]
            if len(self._head):
                break
        if not parts:
            return np.zeros(0, EVENT_DTYPE)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def skip_until(self, t_us: int) -> None:
        """Drop events with ``t < t_us`` without collecting them."""
        while self._fill():
            t = self._head["t"]
            k = int(np.searchsorted(t, t_us, side="left"))
            self._head = self._head[k:]
            if len(self._head):
                return


@runtime_checkable
class Slicer(Protocol):
    """Cuts a reader's stream into packets."""

    def slices(self, reader: "EventReader") -> Iterator[EventPacket]: ...


def _floor_div(a: int, b: int) -> int:
    return a // b  # Python floors for negatives too


@dataclass(frozen=True)
class TimeWindows:
    """Half-open windows ``[origin + k·duration, origin + (k+1)·duration)`` on the sensor clock.

    Windows are aligned to ``origin_us``, not to the first event, so they line
    up with other sensors. They cover ``[start_us, end_us)`` (defaults: the
    first and last event), starting with the window that contains
    ``start_us``; windows without events are yielded empty. With an explicit
    ``start_us``/``end_us`` the first/last packet is clipped to it.
    """

    duration_us: int
    origin_us: int = 0
    start_us: int | None = None
    end_us: int | None = None
    reorder_us: int = DEFAULT_REORDER_US

    def __post_init__(self) -> None:
        if int(self.duration_us) <= 0:
            raise ValueError(f"duration_us must be > 0, got {self.duration_us}")
        if self.start_us is not None and self.end_us is not None and self.end_us < self.start_us:
            raise ValueError(f"end_us ({self.end_us}) < start_us ({self.start_us})")

    def window_index(self, t_us: int) -> int:
        """Index k of the window that contains ``t_us``."""
        return _floor_div(int(t_us) - self.origin_us, self.duration_us)

    def bounds(self, k: int) -> tuple[int, int]:
        a = self.origin_us + k * self.duration_us
        return a, a + self.duration_us

    def slices(self, reader: "EventReader") -> Iterator[EventPacket]:
        cur = TimeCursor(reader, self.reorder_us)
        size = reader.sensor_size
        src = str(reader.path)
        start = self.start_us if self.start_us is not None else cur.first_t()
        if start is None:
            if self.end_us is None:
                return
            start = self.end_us
        if self.start_us is not None:
            cur.skip_until(self.start_us)
        k = self.window_index(start)
        end = self.end_us
        while True:
            a, b = self.bounds(k)
            if end is not None and a >= end:
                return
            lo = a if self.start_us is None else max(a, self.start_us)
            hi = b if end is None else min(b, end)
            ev = cur.take_until(hi)
            if end is None and len(ev) == 0 and cur.first_t() is None:
                return
            yield EventPacket(ev, size, lo, hi, src)
            k += 1


@dataclass(frozen=True)
class CountWindows:
    """Consecutive windows of ``n_events`` events (the last one may be shorter unless ``drop_last``).

    A packet covers ``[t of its first event, t of its last event + 1)``.
    """

    n_events: int
    drop_last: bool = False
    reorder_us: int = DEFAULT_REORDER_US

    def __post_init__(self) -> None:
        if int(self.n_events) <= 0:
            raise ValueError(f"n_events must be > 0, got {self.n_events}")

    def slices(self, reader: "EventReader") -> Iterator[EventPacket]:
        n = int(self.n_events)
        size = reader.sensor_size
        src = str(reader.path)
        pending: list[np.ndarray] = []
        have = 0
        for c in ordered_chunks(reader, self.reorder_us):
            while len(c):
                take = min(n - have, len(c))
                pending.append(c[:take])
                have += take
                c = c[take:]
                if have == n:
                    ev = pending[0] if len(pending) == 1 else np.concatenate(pending)
                    yield EventPacket(ev, size, int(ev["t"][0]), int(ev["t"][-1]) + 1, src)
                    pending, have = [], 0
        if have and not self.drop_last:
            ev = pending[0] if len(pending) == 1 else np.concatenate(pending)
            yield EventPacket(ev, size, int(ev["t"][0]), int(ev["t"][-1]) + 1, src)
