"""Memory-mapped layouts: ``.npy`` structured arrays and the DDD17/ESS ``events.dat.*`` pair.

**npy** (format ``npy``): one structured array with fields ``x, y, t, p``
(the project's ``x:u2, y:u2, t:i8 µs, p:u1``; other integer field types are
converted on read), in file order. The file carries no sensor size: it is
inferred from the events unless given. The writer streams: it reserves a
fixed-size header and fills in the count on close.

**ESS / DDD17** (format ``ess``; uzh-rpg/ess re-release of DDD17): a folder
with ``events.dat.t`` (``int64`` ns, N×1) and ``events.dat.xyp`` (``int16``
N×3: x, y, p in {0, 1}), raw memmaps without header, sensor DAVIS346
(346×260). Times are read as µs (``t_ns // 1000``) and written as
``t_us * 1000``. The ``index/index_*ms.npy`` files of the release map image
times to event indices; they belong to the dataset's images and are neither
needed nor written here.

Both are sorted by time in practice and are read by seeking: ``read_time``
binary-searches the memory-mapped timestamps.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from foveate.system.events.base import EventReader, EventWriter, fail
from foveate.system.types import EVENT_DTYPE

ESS_SENSOR_SIZE = (346, 260)
NPY_MAGIC = b"\x93NUMPY"
_NPY_HEADER_LEN = 128  # total header bytes reserved by the streaming writer


class _MemmapReader(EventReader):
    indexed = True
    _t: np.ndarray  # memory-mapped timestamps (native units)

    def _convert(self, i0: int, i1: int) -> np.ndarray:
        raise NotImplementedError

    @property
    def n_events(self) -> int:
        return int(self._t.shape[0])

    def _iter_raw(self, whole: bool = False) -> Iterator[np.ndarray]:
        step = max(self.n_events, 1) if whole else self.chunk_events
        for a in range(0, self.n_events, step):
            yield self._convert(a, min(a + step, self.n_events))

    def _t_us(self, i: int) -> int:
        raise NotImplementedError

    @property
    def t_range(self) -> tuple[int, int] | None:
        n = self.n_events
        return None if n == 0 else (self._t_us(0), self._t_us(n - 1))

    def _search(self, t_us: int) -> int:
        lo, hi = 0, self.n_events
        while lo < hi:
            mid = (lo + hi) // 2
            if self._t_us(mid) < t_us:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def read_time(self, t0_us: int, t1_us: int) -> np.ndarray:
        if t1_us <= t0_us:
            return np.zeros(0, EVENT_DTYPE)
        i0, i1 = self._search(int(t0_us)), self._search(int(t1_us))
        return self._convert(i0, i1) if i1 > i0 else np.zeros(0, EVENT_DTYPE)


class NpyReader(_MemmapReader):
    """Reader of ``.npy`` structured event arrays (memory-mapped)."""

    format = "npy"

    def _open(self) -> None:
        try:
            arr = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - a damaged header raises ValueError, SyntaxError, TokenError, ...
            why = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise fail(self.path, "npy header", f"cannot read: {why}") from None
        names = arr.dtype.names or ()
        missing = [k for k in ("x", "y", "t", "p") if k not in names]
        if arr.ndim != 1 or missing:
            raise fail(self.path, "npy header",
                       f"expected a 1-D structured array with fields x, y, t, p; got dtype {arr.dtype}, shape {arr.shape}")
        for k in ("x", "y", "t", "p"):
            if arr.dtype[k].kind not in "iub":
                raise fail(self.path, "npy header", f"field {k} has non-integer type {arr.dtype[k]}")
        self._a = arr
        self._t = arr["t"]
        self.metadata = {"dtype": str(arr.dtype)}

    def _t_us(self, i: int) -> int:
        return int(self._t[i])

    def _convert(self, i0: int, i1: int) -> np.ndarray:
        a = self._a[i0:i1]
        if a.dtype == EVENT_DTYPE:
            return np.array(a)
        out = np.empty(len(a), EVENT_DTYPE)
        for k in ("x", "y", "p"):
            v = a[k]
            if v.dtype.kind == "i" and len(v) and int(v.min()) < 0:
                if k == "p" and int(v.min()) == -1 and int(v.max()) <= 1:
                    v = (v > 0)  # polarity stored as -1/+1
                else:
                    i = int(np.argmax(v < 0))
                    raise fail(self.path, f"event {i0 + i}", f"negative {k} = {int(v[i])}")
            if k == "p" and len(v) and int(v.max()) > 1:
                i = int(np.argmax(v > 1))
                raise fail(self.path, f"event {i0 + i}", f"polarity {int(v[i])} (expected 0/1)")
            out[k] = v
        out["t"] = a["t"]
        return out


class NpyWriter(EventWriter):
    """Streaming writer of ``.npy`` arrays in the project dtype, in the order written."""

    format = "npy"
    needs_sorted = False
    allows_negative_t = True

    def _open(self, **options: Any) -> None:
        if options:
            raise TypeError(f"unknown npy writer option(s): {', '.join(options)}")
        self._f = open(self.path, "wb")
        self._f.write(self._header(0))

    @staticmethod
    def _header(n: int) -> bytes:
        d = "{'descr': %r, 'fortran_order': False, 'shape': (%d,), }" % (np.lib.format.dtype_to_descr(EVENT_DTYPE), n)
        body = d.encode("latin1")
        pad = _NPY_HEADER_LEN - 10 - len(body) - 1
        if pad < 0:  # pragma: no cover - the count would need > 30 digits
            raise ValueError("npy header too long")
        return NPY_MAGIC + b"\x01\x00" + (_NPY_HEADER_LEN - 10).to_bytes(2, "little") + body + b" " * pad + b"\n"

    def _write(self, events: np.ndarray) -> None:
        np.ascontiguousarray(events).tofile(self._f)

    def _close(self) -> None:
        self._f.seek(0)
        self._f.write(self._header(self.n_written))
        self._f.close()


def _ess_paths(path: Path) -> tuple[Path, Path]:
    if path.is_dir():
        return path / "events.dat.t", path / "events.dat.xyp"
    base = str(path)
    for suffix in (".t", ".xyp"):
        if base.endswith(".dat" + suffix):
            stem = base[: -len(suffix)]
            return Path(stem + ".t"), Path(stem + ".xyp")
    return path / "events.dat.t", path / "events.dat.xyp"


class EssReader(_MemmapReader):
    """Reader of the DDD17/ESS memmap pair ``events.dat.t`` + ``events.dat.xyp``."""

    format = "ess"

    def _open(self) -> None:
        tp, xp = _ess_paths(self.path)
        for p in (tp, xp):
            if not p.exists():
                raise fail(self.path, "layout", f"missing {p.name} (an ESS folder holds events.dat.t and events.dat.xyp)")
        st, sx = os.path.getsize(tp), os.path.getsize(xp)
        n = st // 8
        if st % 8:
            self._truncated(n * 8, st % 8, "int64 timestamp in events.dat.t")
        if sx // 6 != n:
            nx = sx // 6
            if not self.repair:
                raise fail(xp, f"byte offset {min(n, nx) * 6}",
                           f"{nx} xyp rows but {n} timestamps in events.dat.t (truncated? repair=True keeps the common part)")
            self._truncated(min(n, nx) * 6, abs(sx - min(n, nx) * 6) + abs(st - min(n, nx) * 8), "event row")
            n = min(n, nx)
        self._t = np.memmap(tp, dtype="<i8", mode="r", shape=(n,)) if n else np.zeros(0, "<i8")
        self._xyp = np.memmap(xp, dtype="<i2", mode="r", shape=(n, 3)) if n else np.zeros((0, 3), "<i2")
        self._file_size = ESS_SENSOR_SIZE
        self.metadata = {"t_file": str(tp), "xyp_file": str(xp), "t_unit_in_file": "ns"}

    def _t_us(self, i: int) -> int:
        return int(self._t[i]) // 1000

    def _convert(self, i0: int, i1: int) -> np.ndarray:
        xyp = np.asarray(self._xyp[i0:i1])
        out = np.empty(i1 - i0, EVENT_DTYPE)
        if len(xyp):
            bad = (xyp[:, 0] < 0) | (xyp[:, 1] < 0) | (xyp[:, 2] < 0) | (xyp[:, 2] > 1)
            if bad.any():
                i = int(np.argmax(bad))
                raise fail(self.path, f"event {i0 + i}", f"x, y, p = {tuple(int(v) for v in xyp[i])}: expected x, y >= 0 and p in {{0, 1}}")
        out["x"] = xyp[:, 0]
        out["y"] = xyp[:, 1]
        out["p"] = xyp[:, 2]
        out["t"] = np.floor_divide(self._t[i0:i1], 1000)
        return out


class EssWriter(EventWriter):
    """Writer of the ESS memmap pair into a folder (created if needed)."""

    format = "ess"

    def _open(self, **options: Any) -> None:
        if options:
            raise TypeError(f"unknown ess writer option(s): {', '.join(options)}")
        w, h = self.sensor_size
        if w > 32767 or h > 32767:
            raise ValueError(f"ESS stores int16 coordinates; sensor {w}x{h} is too large")
        self.path.mkdir(parents=True, exist_ok=True)
        tp, xp = _ess_paths(self.path)
        self._ft = open(tp, "wb")
        self._fx = open(xp, "wb")

    def _write(self, events: np.ndarray) -> None:
        (events["t"].astype("<i8") * 1000).tofile(self._ft)
        xyp = np.empty((len(events), 3), "<i2")
        xyp[:, 0] = events["x"]
        xyp[:, 1] = events["y"]
        xyp[:, 2] = events["p"]
        xyp.tofile(self._fx)

    def _close(self) -> None:
        self._ft.close()
        self._fx.close()


def npy_header_ok(head: bytes) -> bool:
    """True when ``head`` starts an .npy file whose dict names the event fields (cheap sniff)."""
    if not head.startswith(NPY_MAGIC):
        return False
    try:
        hlen = int.from_bytes(head[8:10], "little") if head[6] == 1 else int.from_bytes(head[8:12], "little")
        start = 10 if head[6] == 1 else 12
        d = ast.literal_eval(head[start : start + hlen].decode("latin1"))
        names = [f[0] for f in d["descr"]] if isinstance(d.get("descr"), list) else []
        return all(k in names for k in ("x", "y", "t", "p"))
    except Exception:
        return False
