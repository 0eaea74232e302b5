"""Event HDF5 files: DSEC ``events.h5`` and the project's own recording format.

**DSEC** (``events/left/events.h5``): datasets ``/events/{x,y,t,p}`` (x, y
``u2``; t relative µs; p 0/1), ``/t_offset`` (µs, added to t to get the
sensor clock shared with images and the other camera) and ``/ms_to_idx``
(``ms_to_idx[ms]`` = first index with ``t >= ms * 1000``). Datasets are
compressed with Blosc/zstd (HDF5 filter 32001), hence ``hdf5plugin``. The
reader returns ``t + t_offset`` (pass ``add_t_offset=False`` for the raw
relative t); the sensor is 640×480 unless the file or the caller says
otherwise.

**foveate** (``*.fev.h5``, format name ``foveate``): the same layout, so DSEC
tools read it, plus root attributes ``format="foveate-events"``,
``version``, ``width``, ``height``; ``t`` is ``int64`` (no 71-minute limit)
and ``t_offset`` is the first event's millisecond. Triggers, when a source
has them, go to ``/triggers/{t,id,value}`` (absolute µs). Blosc/zstd with
byte shuffle: about 3-5 bytes per event on real recordings.

Both are indexed: ``read_time`` seeks through ``ms_to_idx``.
"""

from __future__ import annotations

import os
import queue
from typing import Any, Iterator

import numpy as np

from foveate.system.errors import EventFormatError
from foveate.system.events.base import TRIGGER_DTYPE, EventReader, EventWriter, fail
from foveate.system.types import EVENT_DTYPE

FOVEATE_FORMAT = "foveate-events"
FOVEATE_VERSION = 1
DSEC_SENSOR_SIZE = (640, 480)
H5_CHUNK = 1 << 18
#: Events per unit of work (rounded up to whole chunks): big enough to amortise the calls,
#: small enough to pack while in cache.
READ_BLOCK = 1 << 17
#: Decoding threads by default: Blosc decompression and packing release the GIL.
DEFAULT_THREADS = min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _h5():
    import h5py

    try:
        import hdf5plugin  # noqa: F401  (registers the Blosc filter DSEC uses)
    except ImportError:  # pragma: no cover - hdf5plugin is a dependency
        pass
    return h5py


def _compression() -> dict[str, Any]:
    try:
        import hdf5plugin

        return dict(hdf5plugin.Blosc(cname="zstd", clevel=1, shuffle=hdf5plugin.Blosc.SHUFFLE))
    except ImportError:  # pragma: no cover
        return {"compression": "gzip", "compression_opts": 1, "shuffle": True}


class DsecReader(EventReader):
    """Reader of DSEC-layout event HDF5 files."""

    format = "dsec"
    indexed = True

    def __init__(self, path, *, add_t_offset: bool = True, threads: int | None = None, **kw) -> None:
        self.add_t_offset = bool(add_t_offset)
        if threads is not None and int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        #: decoding threads (Blosc decompression + packing run outside the GIL)
        self.threads = DEFAULT_THREADS if threads is None else int(threads)
        super().__init__(path, **kw)

    def _open(self) -> None:
        h5py = _h5()
        try:
            f = h5py.File(self.path, "r", rdcc_nbytes=32 << 20)  # keeps decompressed chunks for small reads
        except OSError as exc:
            raise fail(self.path, "HDF5", f"cannot open: {exc}") from None
        self._f = f
        # every object looked up once (an h5py lookup costs tens of µs; opening is part of every decode)
        g = f.get("events")
        objs = {k: g.get(k) for k in ("x", "y", "t", "p")} if isinstance(g, h5py.Group) else {}
        missing = [k for k in ("x", "y", "t", "p") if not isinstance(objs.get(k), h5py.Dataset)]
        if missing:
            raise fail(self.path, "HDF5", f"missing dataset(s) {', '.join('/events/' + k for k in missing)}")
        self._ds = objs
        n = {d.shape[0] if d.ndim == 1 else -1 for d in self._ds.values()}
        if len(n) != 1 or -1 in n:
            shapes = {k: d.shape for k, d in self._ds.items()}
            raise fail(self.path, "/events", f"datasets must be 1-D and of equal length, got {shapes}")
        self._n = n.pop()
        t_offset = f.get("t_offset")
        self._t_offset = int(t_offset[()]) if t_offset is not None else 0
        self._ms = f.get("ms_to_idx")
        attrs = dict(f.attrs)
        self.metadata = {k: (v.item() if hasattr(v, "item") else v) for k, v in attrs.items()}
        self.metadata.update({"t_offset": self._t_offset, "t_dtype": str(self._ds["t"].dtype)})
        if "width" in attrs and "height" in attrs:
            self._file_size = (int(attrs["width"]), int(attrs["height"]))
        elif self.format == "dsec":
            self._file_size = DSEC_SENSOR_SIZE
        try:
            if self._n:
                self._ds["t"][:1]
        except OSError as exc:
            raise fail(self.path, "/events/t", f"cannot read ({exc}); compressed DSEC files need hdf5plugin") from None

    @property
    def n_events(self) -> int:
        return self._n

    @property
    def _offset(self) -> int:
        return self._t_offset if self.add_t_offset else 0

    @property
    def t_range(self) -> tuple[int, int] | None:
        if self._n == 0:
            return None
        t = self._ds["t"]
        return int(t[0]) + self._offset, int(t[self._n - 1]) + self._offset

    def _fields(self) -> list[tuple[Any, Any, np.dtype]]:
        """Per field ``(dataset, BloscField or None, buffer dtype)``; dtypes checked once."""
        if getattr(self, "_field_plan", None) is None:
            from foveate.system.events._blosc import BloscField

            dts = {k: d.dtype for k, d in self._ds.items()}
            if any(dts[k].kind not in ("iub" if k == "p" else "iu") for k in dts):
                raise fail(self.path, "/events", f"non-integer datasets ({', '.join(f'{k} {v}' for k, v in dts.items())})")
            plan = []
            for k in ("x", "y", "t", "p"):
                d = self._ds[k]
                native = dts[k].newbyteorder("=")
                direct = BloscField(d) if dts[k] == native and BloscField.usable(d) else None
                plan.append((d, direct, native))
            self._field_plan = plan
            chunks = [d.chunks[0] for d, _, _ in plan if d.chunks is not None] or [1]
            c = max(chunks)
            self._unit = c * -(-READ_BLOCK // c)  # events per unit of work: whole chunks of the largest field
            self._pad = c  # room for a whole last chunk at the end of a unit buffer
            self._buf_pool: queue.SimpleQueue = queue.SimpleQueue()
        return self._field_plan

    def _take_buffers(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """One set of per-field ``(unit buffer, chunk scratch)``, reused across units and threads."""
        try:
            return self._buf_pool.get_nowait()
        except queue.Empty:
            return [
                (np.empty(self._unit + self._pad, dt), np.empty(d.chunks[0] if d.chunks else 1, dt))
                for d, _, dt in self._field_plan
            ]

    def _read(self, i0: int, i1: int) -> np.ndarray:
        """Events ``i0..i1`` in units of whole chunks: each unit's fields are decompressed into
        cache-sized buffers (straight from the Blosc chunks when possible, see ``_blosc``, else by
        HDF5) and packed at once (record dtype, ``t_offset`` added, sensor bounds and polarity
        checked) in one numba pass; units run on ``threads`` threads (``_share``: the calling thread
        takes over a unit a helper thread has not finished in time, so a helper that gets no core
        costs little)."""
        from foveate.system.events._kernels import pack
        from foveate.system.events._share import share

        out = np.empty(i1 - i0, EVENT_DTYPE)
        if i1 <= i0:
            return out
        w, h = self._user_size or self._file_size or (1 << 16, 1 << 16)
        plan = self._fields()
        u = self._unit
        starts = [i0] + list(range((i0 // u + 1) * u, i1, u))
        units = list(zip(starts, starts[1:] + [i1]))
        offset = self._offset

        def fill(k: int) -> list[tuple[np.ndarray, np.ndarray]]:
            a, b = units[k]
            bufs = self._take_buffers()
            try:
                for (d, direct, _), (buf, scratch) in zip(plan, bufs):
                    if direct is None or not direct.read_into(buf, a, b, scratch):
                        d.read_direct(buf, np.s_[a:b], np.s_[0:b - a])
            except OSError as exc:
                self._buf_pool.put(bufs)
                raise fail(self.path, f"events {a}..{b}", f"HDF5 read failed: {exc}") from None
            except BaseException:
                self._buf_pool.put(bufs)
                raise
            return bufs

        def finish(k: int, bufs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[int, int]:
            a, b = units[k]
            try:
                v = [buf[: b - a] for buf, _ in bufs]
                v = [x.view(np.int64) if x.dtype == np.uint64 else x.view(np.uint8) if x.dtype == bool else x for x in v]
                return pack(out[a - i0 : b - i0], v[0], v[1], v[2], v[3], offset, w, h)
            finally:
                self._buf_pool.put(bufs)

        results = share(fill, finish, self._buf_pool.put, len(units), self.threads)
        outside = next((a - i0 + o for (a, _), (o, _) in zip(units, results) if o >= 0), -1)
        bad_p = next((a - i0 + bp for (a, _), (_, bp) in zip(units, results) if bp >= 0), -1)
        if bad_p >= 0:
            raise fail(self.path, f"event {i0 + bad_p}", f"polarity {int(out['p'][bad_p])} (expected 0/1)")
        # the bounds were checked while packing: the generic pass is not needed for this chunk
        self._checked_size = (w, h) if outside < 0 else None
        return out

    def _iter_range(self, i0: int, i1: int, step: int | None = None) -> Iterator[np.ndarray]:
        step = step or self.chunk_events
        block = max(step, 1 << 16)  # HDF5 reads have a fixed cost: read blocks, hand out chunks
        for a in range(i0, i1, block):
            ev = self._read(a, min(a + block, i1))
            for j in range(0, len(ev), step):
                yield ev[j : j + step]

    def _iter_raw(self, whole: bool = False) -> Iterator[np.ndarray]:
        return self._iter_range(0, self._n, max(self._n, 1) if whole else None)

    def _index_of(self, t_us: int) -> int:
        """First index with t >= t_us, using ms_to_idx to narrow the search."""
        rel = t_us - self._offset
        tds = self._ds["t"]
        lo, hi = 0, self._n
        if self._ms is not None and len(self._ms):
            ms = rel // 1000
            m = len(self._ms)
            if ms >= 0:
                lo = int(self._ms[min(ms, m - 1)]) if ms < m else int(self._ms[m - 1])
                hi = int(self._ms[ms + 1]) if ms + 1 < m else self._n
            else:
                hi = int(self._ms[0])
            lo, hi = min(lo, self._n), min(max(hi, lo), self._n)
        # binary search over [lo, hi) in blocks
        while hi - lo > 1 << 16:
            mid = (lo + hi) // 2
            if int(tds[mid]) < rel:
                lo = mid + 1
            else:
                hi = mid
        t = tds[lo:hi]
        return lo + int(np.searchsorted(t, rel, side="left"))

    def read_time(self, t0_us: int, t1_us: int) -> np.ndarray:
        if t1_us <= t0_us or self._n == 0:
            return np.zeros(0, EVENT_DTYPE)
        i0, i1 = self._index_of(int(t0_us)), self._index_of(int(t1_us))
        return self._read(i0, i1) if i1 > i0 else np.zeros(0, EVENT_DTYPE)

    def close(self) -> None:
        f = getattr(self, "_f", None)
        if f is not None:
            f.close()
            self._f = None


class FoveateH5Reader(DsecReader):
    """Reader of the project's own ``.fev.h5`` recordings (DSEC layout + attributes)."""

    format = "foveate"

    def _open(self) -> None:
        super()._open()
        fmt = self.metadata.get("format")
        if isinstance(fmt, bytes):
            fmt = fmt.decode()
        if fmt != FOVEATE_FORMAT:
            raise fail(self.path, "attrs", f"format attribute is {fmt!r}, expected {FOVEATE_FORMAT!r}")
        if int(self.metadata.get("version", 0)) > FOVEATE_VERSION:
            raise fail(self.path, "attrs", f"format version {self.metadata['version']} is newer than this reader ({FOVEATE_VERSION})")
        if self._file_size is None:
            raise fail(self.path, "attrs", "missing width/height attributes")

    def triggers(self) -> np.ndarray:
        if "triggers" not in self._f:
            return np.zeros(0, TRIGGER_DTYPE)
        g = self._f["triggers"]
        out = np.empty(g["t"].shape[0], TRIGGER_DTYPE)
        for k in ("t", "id", "value"):
            out[k] = g[k][:]
        return out


class _H5Writer(EventWriter):
    """DSEC-layout writer; subclasses pick the t dtype and root attributes."""

    t_dtype = "<i8"

    def _open(self, **options: Any) -> None:
        if options:
            raise TypeError(f"unknown {self.format} writer option(s): {', '.join(options)}")
        h5py = _h5()
        self._f = h5py.File(self.path, "w")
        g = self._f.create_group("events")
        comp = _compression()
        self._ds = {}
        for k, dt in (("x", "<u2"), ("y", "<u2"), ("t", self.t_dtype), ("p", "u1")):
            self._ds[k] = g.create_dataset(k, shape=(0,), maxshape=(None,), dtype=dt, chunks=(H5_CHUNK,), **comp)
        self._ms = self._f.create_dataset("ms_to_idx", shape=(0,), maxshape=(None,), dtype="<u8", chunks=(1 << 14,))
        self._t_offset: int | None = None
        self._next_ms = 0
        self._attrs()

    def _attrs(self) -> None:
        # extra attributes DSEC tools ignore; our reader takes the sensor size from them
        self._f.attrs["width"], self._f.attrs["height"] = self.sensor_size

    def _write(self, events: np.ndarray) -> None:
        t = events["t"]
        if self._t_offset is None:
            self._t_offset = (int(t[0]) // 1000) * 1000
            self._f.create_dataset("t_offset", data=np.int64(self._t_offset))
        rel = t - self._t_offset
        if self.t_dtype == "<u4" and int(rel[-1]) > 0xFFFFFFFF:
            raise EventFormatError(
                f"{self.path}: DSEC stores t as u4 µs after t_offset; event {self.n_written + len(t) - 1} is "
                f"{int(rel[-1])} µs after it (over 71 minutes): write the foveate format instead"
            )
        n0 = self.n_written
        n1 = n0 + len(events)
        for k in ("x", "y", "p"):
            self._ds[k].resize((n1,))
            self._ds[k][n0:n1] = events[k]
        self._ds["t"].resize((n1,))
        self._ds["t"][n0:n1] = rel
        # ms_to_idx[ms] = first global index with rel t >= ms*1000: final once a later event is seen
        last_ms = int(rel[-1]) // 1000
        if last_ms >= self._next_ms:
            ms = np.arange(self._next_ms, last_ms + 1, dtype=np.int64)
            idx = n0 + np.searchsorted(rel, ms * 1000, side="left")
            m0 = self._ms.shape[0]
            self._ms.resize((m0 + len(ms),))
            self._ms[m0:] = idx
            self._next_ms = last_ms + 1

    def write_triggers(self, triggers: np.ndarray) -> None:
        """Store external triggers (``TRIGGER_DTYPE``, absolute µs) under ``/triggers``."""
        if len(triggers) == 0:
            return
        g = self._f.require_group("triggers")
        for k in ("t", "id", "value"):
            if k not in g:
                g.create_dataset(k, shape=(0,), maxshape=(None,), dtype=TRIGGER_DTYPE[k], chunks=(4096,))
            d = g[k]
            n0 = d.shape[0]
            d.resize((n0 + len(triggers),))
            d[n0:] = triggers[k]

    def _close(self) -> None:
        if self._t_offset is None:
            self._f.create_dataset("t_offset", data=np.int64(0))
        self._f.close()


class DsecWriter(_H5Writer):
    """Writer of DSEC-layout ``events.h5`` (t as ``u4`` µs after ``t_offset``; ``width``/``height`` attributes)."""

    format = "dsec"
    t_dtype = "<u4"


class FoveateH5Writer(_H5Writer):
    """Writer of the project's ``.fev.h5`` recording format."""

    format = "foveate"
    t_dtype = "<i8"

    def _attrs(self) -> None:
        super()._attrs()
        a = self._f.attrs
        a["format"] = FOVEATE_FORMAT
        a["version"] = FOVEATE_VERSION
        a["t_unit"] = "us"
