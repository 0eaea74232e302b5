"""Shared machinery of the Prophesee RAW readers/writers (EVT 2.0 and EVT 3.0).

The file is read in blocks of words; a numba kernel decodes each block into a
preallocated output and stops early when the output is full, so memory is
bounded by the block and chunk sizes whatever the file size. Decoder state
(time base, current row, vector base) lives in a small int64 array that
carries across blocks, so chunk boundaries never change the result.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from foveate.system.events._header import MAX_HEADER_BYTES, read_percent_header
from foveate.system.events.base import TRIGGER_DTYPE, EventReader, EventWriter, fail
from foveate.system.types import EVENT_DTYPE

#: Words read from disk per block.
BLOCK_WORDS = 1 << 21

# Counter slots shared by the kernels (int64 array ``cnt``).
CNT_SKIPPED, CNT_UNKNOWN, CNT_FIRST_UNKNOWN, CNT_BEFORE_TB, CNT_PADDING = range(5)
N_COUNTERS = 5


def parse_t0(path, fields: dict[str, str]) -> int:
    """The ``% t0`` offset (µs) that faery writes when it zeroes timestamps; 0 when absent."""
    if "t0" not in fields:
        return 0
    try:
        t0 = int(fields["t0"])
    except ValueError:
        raise fail(path, "header", f"'% t0 {fields['t0']}' is not an integer (µs)") from None
    if t0 < 0:
        raise fail(path, "header", f"'% t0 {t0}' is negative")
    return t0


class RawReader(EventReader):
    """Base of the EVT readers: ``%`` header, blocked word reading, trigger collection."""

    word_dtype: np.dtype
    #: the most CD events one word can produce (output slack)
    max_events_per_word: int = 1
    evt_version: str = ""
    n_state: int = 8

    def _open(self) -> None:
        with open(self.path, "rb") as f:
            head = f.read(MAX_HEADER_BYTES)
        hdr = read_percent_header(self.path, head)
        self.header = hdr
        self.metadata = dict(hdr.fields)
        self.metadata["header_lines"] = list(hdr.lines)
        version = hdr.evt_version
        if version is not None and version != self.evt_version:
            raise fail(self.path, "header", f"file declares EVT {version}, opened as EVT {self.evt_version}")
        self._file_size = hdr.sensor_size(self.path)
        self._data_offset = hdr.data_offset
        self._t0 = parse_t0(self.path, hdr.fields)
        self._trig_parts: list[np.ndarray] | None = None

    @staticmethod
    def _kernel() -> Callable:  # pragma: no cover - overridden
        raise NotImplementedError

    def _iter_raw(self, whole: bool = False) -> Iterator[np.ndarray]:
        kernel = self._kernel()
        wsize = self.word_dtype.itemsize
        total = os.path.getsize(self.path) - self._data_offset
        n_words_total = total // wsize
        tail = total - n_words_total * wsize
        if tail:  # checked first: no decoding of a file that will be refused
            self._truncated(self._data_offset + n_words_total * wsize, tail, f"{8 * wsize}-bit word")
        state = np.zeros(self.n_state, np.int64)
        cnt = np.zeros(N_COUNTERS, np.int64)
        cnt[CNT_FIRST_UNKNOWN] = -1
        trig = np.empty(4096, TRIGGER_DTYPE)
        trig_parts: list[np.ndarray] = []
        block = n_words_total if whole else BLOCK_WORDS
        cap = (n_words_total if whole else self.chunk_events) + self.max_events_per_word
        out = np.empty(cap, EVENT_DTYPE)
        n_out = 0
        word_base = 0
        with open(self.path, "rb") as f:
            f.seek(self._data_offset)
            while word_base < n_words_total:
                count = min(block, n_words_total - word_base)
                words = np.fromfile(f, dtype=self.word_dtype, count=count)
                if len(words) < count:  # file shrank while reading
                    raise fail(self.path, f"byte offset {self._data_offset + (word_base + len(words)) * wsize}",
                               "file ended early while reading")
                i = 0
                while i < count:
                    i, n_out, n_trig = kernel(words, i, out, n_out, trig, state, cnt, word_base)
                    if n_trig:
                        part = trig[:n_trig].copy()
                        part["t"] += self._t0
                        trig_parts.append(part)
                    if n_out > cap - self.max_events_per_word and whole:  # grow: one array in the end
                        cap *= 2
                        bigger = np.empty(cap, EVENT_DTYPE)
                        bigger[:n_out] = out[:n_out]
                        out = bigger
                    elif n_out > cap - self.max_events_per_word:
                        if self._t0:
                            out["t"][:n_out] += self._t0
                        yield out[:n_out]
                        out = np.empty(cap, EVENT_DTYPE)
                        n_out = 0
                word_base += count
        if n_out:
            if self._t0:
                out["t"][:n_out] += self._t0
            yield out[:n_out]
        self.stats.skipped_words += int(cnt[CNT_SKIPPED]) + int(cnt[CNT_PADDING])
        self.stats.unknown_words += int(cnt[CNT_UNKNOWN])
        if cnt[CNT_FIRST_UNKNOWN] >= 0:
            self.stats.first_unknown_offset = self._data_offset + int(cnt[CNT_FIRST_UNKNOWN]) * wsize
        self.stats.events_before_time_base += int(cnt[CNT_BEFORE_TB])
        self._trig_parts = trig_parts
        self.stats.triggers = sum(len(p) for p in trig_parts)

    def triggers(self) -> np.ndarray:
        """External trigger events of the whole file (decodes it once if not yet read)."""
        if self._trig_parts is None:
            for _ in self._iter_raw():
                pass
        parts = self._trig_parts or []
        return np.concatenate(parts) if parts else np.zeros(0, TRIGGER_DTYPE)


class RawWriter(EventWriter):
    """Base of the EVT writers: writes an OpenEB-style header, then encoded words."""

    evt_version: str = ""
    format_name: str = ""

    def _open(self, header: dict[str, str] | None = None, **options: Any) -> None:
        if options:
            raise TypeError(f"unknown {self.format} writer option(s): {', '.join(options)}")
        w, h = self.sensor_size
        lines = [
            f"% evt {self.evt_version}",
            f"% format {self.format_name};height={h};width={w}",
            f"% geometry {w}x{h}",
            "% integrator_name foveate",
        ]
        for k, v in (header or {}).items():
            lines.append(f"% {k} {v}")
        lines.append("% end")
        self._f = open(self.path, "wb")
        self._f.write(("\n".join(lines) + "\n").encode("ascii"))
        self._state = np.zeros(8, np.int64)
        self._state[:] = -1

    def _close(self) -> None:
        self._f.close()
