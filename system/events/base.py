"""Reader and writer bases shared by every event file format.

A reader decodes its file in **file order**, chunk by chunk, so memory stays
bounded whatever the file size; everything else (time and count windows,
random access, conversion) is built on :meth:`EventReader.chunks`. Problems
in the data raise :class:`~foveate.system.errors.EventFormatError` naming the
file and the byte offset or event index; with ``repair=True`` the documented
repairs (drop a truncated tail, drop events outside the sensor) are applied
instead, each announced once with an :class:`EventFormatWarning`.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np

from foveate.system.errors import EventFormatError
from foveate.system.types import EVENT_DTYPE

#: External trigger events (Prophesee EXT_TRIGGER): time µs, channel id, edge (1 rising, 0 falling).
TRIGGER_DTYPE = np.dtype([("t", "<i8"), ("id", "u1"), ("value", "u1")])

#: Events decoded per chunk by default (about 13 MB of decoded events).
DEFAULT_CHUNK_EVENTS = 1 << 20


class EventFormatWarning(UserWarning):
    """A documented repair was applied to a malformed event file (``repair=True``)."""


@dataclass
class DecodeStats:
    """What a decoder met besides events; filled while the file is read."""

    events: int = 0
    triggers: int = 0
    #: words of a known type that carry no CD event (OTHERS, CONTINUED, IMU, padding)
    skipped_words: int = 0
    #: words of an undefined type: skipped and counted
    unknown_words: int = 0
    #: byte offset of the first undefined word, -1 when none
    first_unknown_offset: int = -1
    #: CD events before the first time base (TIME_HIGH): dropped, as OpenEB does
    events_before_time_base: int = 0
    #: events dropped by a repair (outside the sensor, truncated tail)
    repaired_events: int = 0
    truncated_bytes: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fail(path: Path | str, where: str, problem: str) -> EventFormatError:
    """An ``EventFormatError`` with the house message shape: ``file: where: problem``."""
    return EventFormatError(f"{path}: {where}: {problem}")


class EventReader(ABC):
    """A recorded event stream; open with :func:`foveate.system.events.open_events`.

    Attributes every format fills: ``path``, ``format`` (registry name),
    ``metadata`` (header fields), ``stats`` (:class:`DecodeStats`).
    ``sensor_size`` is ``(width, height)``: the ``sensor_size`` argument if
    given, else what the file declares, else inferred by one scan of the file
    (``sensor_size_source`` tells which).
    """

    format: ClassVar[str] = ""
    #: True when the format has an index, so ``read_time`` seeks instead of scanning
    indexed: ClassVar[bool] = False

    def __init__(
        self,
        path: str | Path,
        *,
        sensor_size: tuple[int, int] | None = None,
        repair: bool = False,
        chunk_events: int = DEFAULT_CHUNK_EVENTS,
    ) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise EventFormatError(f"{self.path}: no such file or directory")
        if chunk_events <= 0:
            raise ValueError(f"chunk_events must be > 0, got {chunk_events}")
        self.repair = bool(repair)
        self.chunk_events = int(chunk_events)
        self.metadata: dict[str, Any] = {}
        self.stats = DecodeStats()
        self._file_size: tuple[int, int] | None = None  # sensor size declared by the file
        self._user_size = None if sensor_size is None else (int(sensor_size[0]), int(sensor_size[1]))
        self._inferred_size: tuple[int, int] | None = None
        self._warned: set[str] = set()
        #: set by a decoder to the (w, h) it already checked the chunk it yields against
        self._checked_size: tuple[int, int] | None = None
        self._open()

    # -- to implement ---------------------------------------------------------
    def _open(self) -> None:
        """Parse the header and fill ``metadata`` / ``_file_size``; raise on a corrupt header."""

    @abstractmethod
    def _iter_raw(self, whole: bool = False) -> Iterator[np.ndarray]:
        """Decoded chunks in file order (``EVENT_DTYPE``), at most about ``chunk_events`` each.

        With ``whole`` the format may return everything as one chunk.
        """

    # -- metadata ---------------------------------------------------------------
    @property
    def sensor_size(self) -> tuple[int, int]:
        if self._user_size is not None:
            return self._user_size
        if self._file_size is not None:
            return self._file_size
        if self._inferred_size is None:
            w = h = 0
            for ev in self._iter_raw():
                if len(ev):
                    w = max(w, int(ev["x"].max()) + 1)
                    h = max(h, int(ev["y"].max()) + 1)
            self._inferred_size = (max(w, 1), max(h, 1))
            self.stats = DecodeStats()
        return self._inferred_size

    @property
    def sensor_size_source(self) -> str:
        if self._user_size is not None:
            return "argument"
        if self._file_size is not None:
            return "file"
        return "inferred from events"

    @property
    def n_events(self) -> int | None:
        """Event count when the file says so without decoding, else ``None``."""
        return None

    @property
    def t_range(self) -> tuple[int, int] | None:
        """``(first t, last t)`` in µs when known without decoding, else ``None``."""
        return None

    def triggers(self) -> np.ndarray:
        """External trigger events (``TRIGGER_DTYPE``); empty for formats without them."""
        return np.zeros(0, TRIGGER_DTYPE)

    # -- reading ------------------------------------------------------------------
    def chunks(self, whole: bool = False) -> Iterator[np.ndarray]:
        """Decoded events in file order, chunk by chunk, checked against the sensor size.

        Events outside the sensor raise (``repair=True``: dropped with a warning).
        The sensor is only checked when its size comes from the file or the caller.
        ``whole=True`` lets the format decode everything into one chunk (``read_all``).
        """
        from foveate.system.events._kernels import first_outside

        self.stats = DecodeStats()
        check = self._user_size or self._file_size
        index = 0
        for ev in self._iter_raw(whole):
            if check is not None and len(ev):
                # a decoder that already checked this chunk against the same size says so
                i = -1 if self._checked_size == check else first_outside(ev["x"], ev["y"], check[0], check[1])
                if i >= 0:
                    msg = f"x={int(ev['x'][i])}, y={int(ev['y'][i])} lies outside the {check[0]}x{check[1]} sensor"
                    if not self.repair:
                        raise fail(self.path, f"event {index + i}", msg + " (repair=True / --repair drops such events)")
                    bad = (ev["x"] >= check[0]) | (ev["y"] >= check[1])
                    self.stats.repaired_events += int(bad.sum())
                    self._warn_once("outside", f"{self.path}: event {index + i}: {msg}; dropping events outside the sensor")
                    index += len(ev)
                    ev = ev[~bad]
                    self.stats.events += len(ev)
                    yield ev
                    continue
            index += len(ev)
            self.stats.events += len(ev)
            yield ev

    def read_all(self) -> np.ndarray:
        """Every event in file order, in one array (mind the memory on big files)."""
        parts = list(self.chunks(whole=True))
        if not parts:
            return np.zeros(0, EVENT_DTYPE)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def read_time(self, t0_us: int, t1_us: int) -> np.ndarray:
        """Events with ``t0_us <= t < t1_us``. Indexed formats seek; others scan from the start."""
        parts = []
        for ev in self.chunks():
            t = ev["t"]
            if len(t) == 0:
                continue
            sel = (t >= t0_us) & (t < t1_us)
            if sel.any():
                parts.append(ev[sel])
        return np.concatenate(parts) if parts else np.zeros(0, EVENT_DTYPE)

    def windows(self, slicer) -> Iterator:
        """Packets of this stream cut by ``slicer`` (:class:`TimeWindows` or :class:`CountWindows`)."""
        return slicer.slices(self)

    # -- helpers --------------------------------------------------------------
    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, EventFormatWarning, stacklevel=4)

    def _truncated(self, offset: int, n_bytes: int, unit: str) -> None:
        """A partial record at the end of the file: raise, or drop it when repairing."""
        if not self.repair:
            raise fail(
                self.path,
                f"byte offset {offset}",
                f"file is truncated: {n_bytes} trailing byte(s) do not form a whole {unit} "
                "(repair=True / --repair drops the partial record)",
            )
        self.stats.truncated_bytes += n_bytes
        self._warn_once("truncated", f"{self.path}: truncated at byte offset {offset}: dropped {n_bytes} trailing byte(s)")

    def close(self) -> None:
        """Release file handles (readers open files per pass, so this is usually a no-op)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.format} {self.path}>"


class EventWriter(ABC):
    """Streams time-sorted event chunks to a file; use as a context manager."""

    format: ClassVar[str] = ""
    #: True when the format needs non-decreasing timestamps (index or delta coding)
    needs_sorted: ClassVar[bool] = True
    #: True when the format can store timestamps before 0 µs
    allows_negative_t: ClassVar[bool] = False

    def __init__(self, path: str | Path, sensor_size: tuple[int, int], **options: Any) -> None:
        self.path = Path(path)
        w, h = int(sensor_size[0]), int(sensor_size[1])
        if w <= 0 or h <= 0:
            raise ValueError(f"sensor size must be positive, got {w}x{h}")
        self.sensor_size = (w, h)
        self.n_written = 0
        self._last_t: int | None = None
        self._closed = False
        self._open(**options)

    @abstractmethod
    def _open(self, **options: Any) -> None: ...

    @abstractmethod
    def _write(self, events: np.ndarray) -> None: ...

    @abstractmethod
    def _close(self) -> None: ...

    def write(self, events: np.ndarray) -> None:
        """Append events (``EVENT_DTYPE``); checks sensor bounds, polarity and time order."""
        if self._closed:
            raise ValueError(f"{self.path}: writer is closed")
        if events.dtype != EVENT_DTYPE:
            raise TypeError(f"events must have dtype {EVENT_DTYPE}, got {events.dtype}")
        if len(events) == 0:
            return
        from foveate.system.events._kernels import check_for_writer

        w, h = self.sensor_size
        last = -(1 << 62) if self._last_t is None else self._last_t
        code, i = check_for_writer(events["x"], events["y"], events["t"], events["p"], w, h, last, self.needs_sorted,
                                   self.allows_negative_t)
        if code:
            e = events[i]
            what = {
                1: f"at x={e['x']}, y={e['y']} lies outside the {w}x{h} sensor",
                2: f"has polarity {e['p']} (expected 0/1)",
                3: f"goes back in time (t={int(e['t'])} µs); the {self.format} writer needs time-sorted events",
                4: f"has a negative timestamp {int(e['t'])} µs",
            }[code]
            raise EventFormatError(f"{self.path}: event {self.n_written + i} {what}")
        t = events["t"]
        self._write(events)
        self._last_t = int(t[-1]) if self._last_t is None else max(self._last_t, int(t[-1]))
        self.n_written += len(events)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close()
