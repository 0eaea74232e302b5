"""Prophesee DAT (decoded CD events).

``%`` text header (``% Version 2``, optional ``% Width``/``% Height``), then two
bytes (event type, event size), then 8-byte records: ``u32 t`` (µs) and a
``u32`` with x in bits 0..13, y in bits 14..27 and polarity in bit 28. A file
without a header is the legacy layout (type 0, size 8). Accepted types: 0
(Event2D, written by OpenEB and expelliarmus) and 12 (EventCD, faery).

The 32-bit timestamp wraps after 71.6 minutes: a drop of more than 2^31 µs
adds ``1 << 32``, so long recordings decode monotonically. The writer stores
``t mod 2^32`` in the same way and refuses a gap of 2^31 µs (35.8 min) or
more between consecutive events, which no DAT reader could unwrap.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any, Iterator

import numpy as np
from numba import njit

from foveate.system.events._header import MAX_HEADER_BYTES, read_percent_header
from foveate.system.events._raw import parse_t0
from foveate.system.errors import EventFormatError
from foveate.system.events.base import EventReader, EventWriter, fail
from foveate.system.types import EVENT_DTYPE

CD_TYPES = {0: "Event2D", 12: "EventCD"}
OTHER_TYPES = {14: "EventExtTrigger", 40: "optical flow"}
BLOCK_RECORDS = 1 << 20


@njit(cache=True, nogil=True)
def _decode(rec, out, st):  # pragma: no cover - compiled
    """``rec``: (N, 2) u32 records; ``st`` = [last raw t, wraps, started]."""
    ox = out["x"]
    oy = out["y"]
    ot = out["t"]
    op = out["p"]
    last = st[0]
    wraps = st[1]
    started = st[2]
    for i in range(rec.shape[0]):
        t = np.int64(rec[i, 0])
        w = np.int64(rec[i, 1])
        if started and t < last - (np.int64(1) << 31):
            wraps += 1
        last = t
        started = 1
        ot[i] = (wraps << 32) | t
        ox[i] = w & 0x3FFF
        oy[i] = (w >> 14) & 0x3FFF
        op[i] = (w >> 28) & 1
    st[0] = last
    st[1] = wraps
    st[2] = started


class DatReader(EventReader):
    """Reader of Prophesee ``.dat`` CD files."""

    format = "dat"

    def _open(self) -> None:
        with open(self.path, "rb") as f:
            head = f.read(MAX_HEADER_BYTES)
        hdr = read_percent_header(self.path, head)
        self.metadata = dict(hdr.fields)
        self.metadata["header_lines"] = list(hdr.lines)
        offset = hdr.data_offset
        if hdr.lines:
            if len(head) < offset + 2:
                raise fail(self.path, f"byte offset {offset}", "file ends before the event type/size bytes")
            ev_type, ev_size = head[offset], head[offset + 1]
            offset += 2
        else:
            ev_type, ev_size = 0, 8
        if ev_type not in CD_TYPES:
            what = OTHER_TYPES.get(ev_type, "unknown")
            raise fail(self.path, f"byte offset {offset - 2}",
                       f"DAT event type {ev_type} ({what}) holds no CD events (expected 0 or 12)")
        if ev_size != 8:
            raise fail(self.path, f"byte offset {offset - 1}", f"DAT event size {ev_size}, expected 8")
        self.metadata["event_type"] = CD_TYPES[ev_type]
        self._t0 = parse_t0(self.path, hdr.fields)
        size = hdr.sensor_size(self.path)
        self._file_size = size
        self._data_offset = offset
        total = os.path.getsize(self.path) - offset
        self._n = total // 8
        self._tail = total - self._n * 8

    @property
    def n_events(self) -> int:
        return self._n

    def _iter_raw(self, whole: bool = False) -> Iterator[np.ndarray]:
        if self._tail:  # checked first: no decoding of a file that will be refused
            self._truncated(self._data_offset + self._n * 8, self._tail, "8-byte record")
        st = np.zeros(3, np.int64)
        step = max(self._n, 1) if whole else min(self.chunk_events, BLOCK_RECORDS)
        with open(self.path, "rb") as f:
            f.seek(self._data_offset)
            done = 0
            while done < self._n:
                count = min(step, self._n - done)
                rec = np.fromfile(f, dtype="<u4", count=2 * count)
                if len(rec) < 2 * count:
                    raise fail(self.path, f"byte offset {self._data_offset + done * 8 + len(rec) * 4}",
                               "file ended early while reading")
                out = np.empty(count, EVENT_DTYPE)
                _decode(rec.reshape(count, 2), out, st)
                if self._t0:
                    out["t"] += self._t0
                done += count
                yield out


class DatWriter(EventWriter):
    """Writer of ``.dat`` CD files (``% Version 2``, size 8).

    The event type byte is 12 (EventCD) by default, which every reader tested
    accepts (faery reads only 12); ``event_type=0`` writes the older Event2D tag.
    """

    format = "dat"

    def _open(self, event_type: int = 12, **options: Any) -> None:
        if options:
            raise TypeError(f"unknown dat writer option(s): {', '.join(options)}")
        if event_type not in CD_TYPES:
            raise ValueError(f"DAT event_type must be one of {sorted(CD_TYPES)}, got {event_type}")
        w, h = self.sensor_size
        if w > 1 << 14 or h > 1 << 14:
            raise ValueError(f"DAT stores 14-bit coordinates; sensor {w}x{h} is too large")
        date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        header = f"% Data file containing CD events.\n% Version 2\n% Date {date}\n% Height {h}\n% Width {w}\n"
        self._f = open(self.path, "wb")
        self._f.write(header.encode("ascii") + bytes([event_type, 8]))

    def _write(self, events: np.ndarray) -> None:
        t = events["t"]
        gaps = np.diff(t, prepend=t[0] if self._last_t is None else self._last_t)
        if len(gaps) and int(gaps.max()) >= 1 << 31:
            i = int(np.argmax(gaps >= 1 << 31))
            raise EventFormatError(
                f"{self.path}: event {self.n_written + i} comes {int(gaps[i])} µs after the previous one; DAT's "
                "32-bit time can only carry gaps under 2^31 µs (35.8 min): write another format"
            )
        rec = np.empty((len(events), 2), np.uint32)
        rec[:, 0] = (events["t"] & 0xFFFFFFFF).astype(np.uint32)
        rec[:, 1] = (
            events["x"].astype(np.uint32)
            | (events["y"].astype(np.uint32) << 14)
            | (events["p"].astype(np.uint32) << 28)
        )
        rec.tofile(self._f)

    def _close(self) -> None:
        self._f.close()
