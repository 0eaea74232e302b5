"""iniVation AEDAT 4.0.

Layout: ``#!AER-DAT4.0\\r\\n``, an i32 length and a FlatBuffer ``IOHeader``
(``IOHE``: compression, data-table position, XML info node naming the
streams), then packets ``[i32 stream id, i32 size, body]`` up to the data
table. Each body is one LZ4 or ZSTD frame (or raw with compression NONE)
holding a size-prefixed FlatBuffer; event streams (``EVTS``) hold a vector of
16-byte structs ``{i64 t (µs), i16 x, i16 y, bool on, pad}``. The optional
``FileDataTable`` (``FTAB``) at the end gives per-packet offsets, counts and
time ranges: with it the reader knows the event count and time range without
decoding, and ``read_time`` seeks to the right packets.

The writer produces what dv-processing writes for an event-only recording:
the same ``IOHeader`` and ``EventPacket`` FlatBuffer layouts, one LZ4 (default)
or ZSTD frame per packet of at most ``packet_events`` events, stream 0
``EVTS`` with ``sizeX``/``sizeY``. It writes no data table
(``dataTablePosition = -1``, which the format allows): readers then scan the
packets. aedat, dv-processing and faery read its files back exactly.
"""

from __future__ import annotations

import os
import struct
import xml.etree.ElementTree as ET
from typing import Any, Iterator

import numpy as np

from foveate.system.events.base import EventReader, EventWriter, fail
from foveate.system.types import EVENT_DTYPE

MAGIC = b"#!AER-DAT4.0\r\n"
COMPRESSION = {0: "none", 1: "lz4", 2: "lz4_high", 3: "zstd", 4: "zstd_high"}
_AEDAT_EVENT = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1"), ("_pad", "V3")])


class _FB:
    """The few FlatBuffer reads AEDAT4 needs: table fields, strings, vectors (bounds-checked)."""

    def __init__(self, buf: bytes, where: str, path) -> None:
        self.buf = buf
        self.where = where
        self.path = path

    def _unpack(self, fmt: str, pos: int):
        if pos < 0 or pos + struct.calcsize(fmt) > len(self.buf):
            raise fail(self.path, self.where, f"corrupt FlatBuffer: offset {pos} outside a {len(self.buf)}-byte buffer")
        return struct.unpack_from(fmt, self.buf, pos)[0]

    def _u32(self, pos: int) -> int:
        return self._unpack("<I", pos)

    def root(self, base: int = 0) -> int:
        return base + self._u32(base)

    def field(self, table: int, index: int) -> int:
        """Absolute position of field ``index`` of the table at ``table`` (0 when absent)."""
        vt = table - self._unpack("<i", table)
        vt_size = self._unpack("<H", vt)
        entry = 4 + 2 * index
        if entry + 2 > vt_size:
            return 0
        off = self._unpack("<H", vt + entry)
        return table + off if off else 0

    def scalar(self, table: int, index: int, fmt: str, default):
        pos = self.field(table, index)
        return self._unpack(fmt, pos) if pos else default

    def vector(self, table: int, index: int) -> tuple[int, int]:
        """(start of elements, length) of a vector field; (0, 0) when absent."""
        pos = self.field(table, index)
        if not pos:
            return 0, 0
        vec = pos + self._u32(pos)
        return vec + 4, self._u32(vec)

    def string(self, table: int, index: int) -> str:
        start, n = self.vector(table, index)
        if start + n > len(self.buf):
            raise fail(self.path, self.where, "corrupt FlatBuffer: string outside the buffer")
        return self.buf[start : start + n].decode("utf-8", errors="replace")


def _decompressor(kind: str):
    if kind == "none":
        return lambda b: b
    if kind.startswith("lz4"):
        import lz4.frame

        return lz4.frame.decompress
    import zstandard

    dctx = zstandard.ZstdDecompressor()
    return lambda b: dctx.decompressobj().decompress(b)


class Aedat4Reader(EventReader):
    """Reader of AEDAT 4.0 files (event stream ``EVTS``; LZ4, ZSTD or uncompressed)."""

    format = "aedat4"
    indexed = True

    def __init__(self, path, *, stream: str | int | None = None, **kw) -> None:
        self._want_stream = stream
        super().__init__(path, **kw)

    def _open(self) -> None:
        size = os.path.getsize(self.path)
        with open(self.path, "rb") as f:
            head = f.read(len(MAGIC) + 4)
            if not head.startswith(MAGIC):
                raise fail(self.path, "byte offset 0", f"not an AEDAT 4.0 file (expected {MAGIC!r})")
            if len(head) < len(MAGIC) + 4:
                raise fail(self.path, f"byte offset {len(MAGIC)}", "file ends before the header length")
            (n,) = struct.unpack_from("<i", head, len(MAGIC))
            if n <= 0 or len(MAGIC) + 4 + n > size:
                raise fail(self.path, f"byte offset {len(MAGIC)}", f"header length {n} does not fit the {size}-byte file")
            buf = f.read(n)
        fb = _FB(buf, f"IOHeader at byte offset {len(MAGIC) + 4}", self.path)
        root = fb.root()
        if buf[4:8] != b"IOHE":
            raise fail(self.path, f"byte offset {len(MAGIC) + 8}", f"corrupt header: identifier {buf[4:8]!r}, expected b'IOHE'")
        comp = fb.scalar(root, 0, "<i", 0)
        if comp not in COMPRESSION:
            raise fail(self.path, fb.where, f"unknown compression type {comp}")
        self.compression = COMPRESSION[comp]
        self._table_pos = fb.scalar(root, 1, "<q", -1)
        info = fb.string(root, 2)
        self._data_start = len(MAGIC) + 4 + n
        self._data_end = self._table_pos if 0 < self._table_pos <= size else size
        self.metadata = {"compression": self.compression, "data_table_position": self._table_pos}
        self._streams = self._parse_info(info)
        self.metadata["streams"] = {k: v["type"] for k, v in self._streams.items()}
        events = [k for k, v in self._streams.items() if v["type"] == "EVTS"]
        if self._want_stream is not None:
            key = int(self._want_stream) if str(self._want_stream).isdigit() else None
            match = [k for k, v in self._streams.items() if k == key or v.get("name") == self._want_stream]
            if not match or self._streams[match[0]]["type"] != "EVTS":
                raise fail(self.path, "info node", f"no event stream '{self._want_stream}' (event streams: {events})")
            self._stream = match[0]
        elif not events:
            raise fail(self.path, "info node", f"no event stream (EVTS) in the file; streams: {self.metadata['streams']}")
        else:
            self._stream = events[0]
        s = self._streams[self._stream]
        if "sizeX" in s and "sizeY" in s:
            self._file_size = (s["sizeX"], s["sizeY"])
        self.metadata["stream"] = self._stream
        self.metadata["source"] = s.get("source", "")
        if self._table_pos >= size or self._table_pos < -1 or self._table_pos == 0:
            note = f"data table position {self._table_pos} outside the {size}-byte file: ignored"
            self.metadata.setdefault("notes", []).append(note)
        self._table = self._read_table() if 0 < self._table_pos < size else None

    def _parse_info(self, xml: str) -> dict[int, dict]:
        try:
            root = ET.fromstring(xml.rstrip("\x00"))
        except ET.ParseError as exc:
            raise fail(self.path, "info node", f"corrupt XML: {exc}") from None
        streams: dict[int, dict] = {}
        out_info = next((n for n in root.iter("node") if n.get("name") == "outInfo"), None)
        if out_info is None:
            return streams
        for node in out_info.findall("node"):
            try:
                sid = int(node.get("name", ""))
            except ValueError:
                continue
            d: dict = {"type": "", "name": ""}
            for attr in node.findall("attr"):
                if attr.get("key") == "typeIdentifier":
                    d["type"] = (attr.text or "").strip()
                elif attr.get("key") == "originalOutputName":
                    d["name"] = (attr.text or "").strip()
            info = node.find("node[@name='info']")
            if info is not None:
                for attr in info.findall("attr"):
                    k, v = attr.get("key"), (attr.text or "").strip()
                    if k in ("sizeX", "sizeY"):
                        try:
                            d[k] = int(v)
                        except ValueError:
                            raise fail(self.path, "info node", f"stream {sid}: {k}='{v}' is not an integer") from None
                    elif k == "source":
                        d["source"] = v
            streams[sid] = d
        return streams

    def _read_table(self) -> np.ndarray | None:
        """Per-packet rows (offset, size, count, t0, t1) of the event stream, or None if unreadable."""
        with open(self.path, "rb") as f:
            f.seek(self._table_pos)
            raw = f.read()
        try:
            buf = _decompressor(self.compression)(raw)
            fb = _FB(buf, f"data table at byte offset {self._table_pos}", self.path)
            if buf[8:12] != b"FTAB":
                return None
            root = fb.root(4)
            start, n = fb.vector(root, 0)
            rows = []
            for i in range(n):
                el = start + 4 * i
                el += struct.unpack_from("<I", buf, el)[0]
                pi = fb.field(el, 1)
                sid, size = struct.unpack_from("<ii", buf, pi) if pi else (-1, 0)
                if sid != self._stream:
                    continue
                rows.append((fb.scalar(el, 0, "<q", 0), size, fb.scalar(el, 2, "<q", 0),
                             fb.scalar(el, 3, "<q", 0), fb.scalar(el, 4, "<q", 0)))
        except Exception:  # a damaged table only costs the index: packets are still read in order
            self.metadata.setdefault("notes", []).append("data table unreadable; reading packets in order")
            return None
        return np.array(rows, dtype=np.int64).reshape(-1, 5)

    @property
    def n_events(self) -> int | None:
        return None if self._table is None else int(self._table[:, 2].sum())

    @property
    def t_range(self) -> tuple[int, int] | None:
        if self._table is None or len(self._table) == 0:
            return None
        return int(self._table[:, 3].min()), int(self._table[:, 4].max())

    def _packets(self, start: int) -> Iterator[tuple[int, np.ndarray]]:
        """(byte offset, decoded AEDAT events) of each event packet from ``start``."""
        decompress = _decompressor(self.compression)
        with open(self.path, "rb") as f:
            pos = start
            f.seek(pos)
            while pos < self._data_end:
                hdr = f.read(8)
                if len(hdr) < 8:
                    self._truncated(pos, len(hdr), "packet header")
                    return
                sid, size = struct.unpack("<ii", hdr)
                if size < 0:
                    raise fail(self.path, f"byte offset {pos}", f"packet of negative size {size}")
                if pos + 8 + size > self._data_end:
                    self._truncated(pos, self._data_end - pos, f"packet (declares {size} bytes)")
                    return
                if sid != self._stream:
                    f.seek(size, 1)
                    pos += 8 + size
                    continue
                body = f.read(size)
                try:
                    buf = decompress(body)
                except Exception as exc:
                    raise fail(self.path, f"byte offset {pos}", f"packet does not decompress ({self.compression}): {exc}") from None
                fb = _FB(buf, f"packet at byte offset {pos}", self.path)
                if len(buf) < 12 or buf[8:12] != b"EVTS":
                    raise fail(self.path, f"byte offset {pos}", f"event packet identifier {buf[8:12]!r}, expected b'EVTS'")
                vstart, n = fb.vector(fb.root(4), 0)
                if vstart + 16 * n > len(buf):
                    raise fail(self.path, f"byte offset {pos}", f"event vector of {n} events overruns the packet")
                yield pos, np.frombuffer(buf, _AEDAT_EVENT, count=n, offset=vstart)
                pos += 8 + size

    def _iter_from(self, start: int, cap: int | None = None) -> Iterator[np.ndarray]:
        cap = cap or self.chunk_events
        out = np.empty(cap, EVENT_DTYPE)
        k = 0
        index = 0
        for pos, ev in self._packets(start):
            n = len(ev)
            if n and (int(ev["x"].min()) < 0 or int(ev["y"].min()) < 0):
                i = int(np.argmax((ev["x"] < 0) | (ev["y"] < 0)))
                raise fail(self.path, f"event {index + i} (packet at byte offset {pos})",
                           f"negative coordinate x={ev['x'][i]}, y={ev['y'][i]}")
            index += n
            j = 0
            while j < n:
                m = min(n - j, cap - k)
                seg = ev[j : j + m]
                dst = out[k : k + m]
                dst["t"] = seg["t"]
                dst["x"] = seg["x"]
                dst["y"] = seg["y"]
                dst["p"] = seg["p"]
                k += m
                j += m
                if k == cap:
                    yield out
                    out = np.empty(cap, EVENT_DTYPE)
                    k = 0
        if k:
            yield out[:k]

    def _iter_raw(self, whole: bool = False) -> Iterator[np.ndarray]:
        n = self.n_events if whole else None
        return self._iter_from(self._data_start, n if n else None)

    def _packet_header_at(self, offset: int, size: int) -> int:
        """The packet header a table offset refers to (dv-processing points at the body, 8 bytes later)."""
        with open(self.path, "rb") as f:
            for start in (offset, offset - 8):
                if start < self._data_start:
                    continue
                f.seek(start)
                hdr = f.read(8)
                if len(hdr) == 8 and struct.unpack("<ii", hdr) == (self._stream, size):
                    return start
        raise fail(self.path, f"data table at byte offset {self._table_pos}",
                   f"packet offset {offset} does not point at a packet of stream {self._stream}")

    def read_time(self, t0_us: int, t1_us: int) -> np.ndarray:
        if self._table is None or len(self._table) == 0:
            return super().read_time(t0_us, t1_us)
        tab = self._table
        hit = np.flatnonzero((tab[:, 4] >= t0_us) & (tab[:, 3] < t1_us))
        if len(hit) == 0:
            return np.zeros(0, EVENT_DTYPE)
        parts = []
        for ev in self._iter_from(self._packet_header_at(int(tab[hit[0], 0]), int(tab[hit[0], 1]))):
            t = ev["t"]
            sel = (t >= t0_us) & (t < t1_us)
            if sel.any():
                parts.append(ev[sel])
            if len(t) and int(t.min()) >= t1_us:  # packets are time-ordered
                break
        return np.concatenate(parts) if parts else np.zeros(0, EVENT_DTYPE)


_INFO_XML = """<dv version="2.0">
    <node name="outInfo" path="/outInfo/">
        <node name="0" path="/outInfo/0/">
            <attr key="compression" type="string">{compression}</attr>
            <attr key="originalModuleName" type="string">foveate</attr>
            <attr key="originalOutputName" type="string">events</attr>
            <attr key="typeDescription" type="string">Array of events (polarity ON/OFF).</attr>
            <attr key="typeIdentifier" type="string">EVTS</attr>
            <node name="info" path="/outInfo/0/info/">
                <attr key="sizeX" type="int">{w}</attr>
                <attr key="sizeY" type="int">{h}</attr>
                <attr key="source" type="string">{source}</attr>
            </node>
        </node>
    </node>
</dv>
"""


def _io_header(compression: int, info: str) -> bytes:
    """The IOHeader FlatBuffer laid out as dv-processing lays it out (no data table)."""
    text = info.encode("utf-8")
    buf = bytearray()
    buf += struct.pack("<I", 24)  # root table offset
    buf += b"IOHE"
    buf += b"\x00" * 6
    buf += struct.pack("<HHHHH", 10, 20, 4, 12, 8)  # vtable: sizes, then compression, table pos, info offsets
    buf += struct.pack("<i", 10)  # table at 24: its vtable is 10 bytes before
    buf += struct.pack("<i", compression)  # 28
    buf += struct.pack("<I", 12)  # 32: info string at 44
    buf += struct.pack("<q", -1)  # 36: dataTablePosition
    buf += struct.pack("<I", len(text)) + text + b"\x00"
    buf += b"\x00" * (-len(buf) % 4)
    return bytes(buf)


def _event_packet(ev: np.ndarray) -> bytes:
    """A size-prefixed ``EVTS`` EventPacket FlatBuffer holding ``ev`` (dv-processing's layout)."""
    n = len(ev)
    body = np.zeros(n, _AEDAT_EVENT)
    body["t"] = ev["t"]
    body["x"] = ev["x"]
    body["y"] = ev["y"]
    body["p"] = ev["p"]
    head = struct.pack("<I4s", 16, b"EVTS") + b"\x00\x00" + struct.pack("<HHH", 6, 8, 4) + struct.pack("<iII", 6, 4, n)
    size = len(head) + 16 * n
    return struct.pack("<I", size) + head + body.tobytes()


class Aedat4Writer(EventWriter):
    """Writer of AEDAT 4.0 event-only files (see the module docstring)."""

    format = "aedat4"

    def _open(self, compression: str = "lz4", packet_events: int = 1 << 15, source: str = "foveate",
              **options: Any) -> None:
        if options:
            raise TypeError(f"unknown aedat4 writer option(s): {', '.join(options)}")
        codes = {"none": 0, "lz4": 1, "lz4_high": 2, "zstd": 3, "zstd_high": 4}
        if compression not in codes:
            raise ValueError(f"compression must be one of {', '.join(codes)}, got {compression!r}")
        if packet_events <= 0:
            raise ValueError(f"packet_events must be > 0, got {packet_events}")
        w, h = self.sensor_size
        if w > 32767 or h > 32767:
            raise ValueError(f"AEDAT4 stores int16 coordinates; sensor {w}x{h} is too large")
        self.compression = compression
        self.packet_events = int(packet_events)
        if compression.startswith("lz4"):
            import lz4.frame

            level = 9 if compression == "lz4_high" else 0
            self._compress = lambda b: lz4.frame.compress(b, compression_level=level)
        elif compression.startswith("zstd"):
            import zstandard

            cctx = zstandard.ZstdCompressor(level=19 if compression == "zstd_high" else 3)
            self._compress = cctx.compress
        else:
            self._compress = lambda b: b
        name = {"none": "NONE", "lz4": "LZ4", "lz4_high": "LZ4_HIGH", "zstd": "ZSTD", "zstd_high": "ZSTD_HIGH"}[compression]
        xml = _INFO_XML.format(compression=name, w=w, h=h, source=source.replace("<", "").replace("&", ""))
        header = _io_header(codes[compression], xml)
        self._f = open(self.path, "wb")
        self._f.write(MAGIC + struct.pack("<i", len(header)) + header)

    def _write(self, events: np.ndarray) -> None:
        for a in range(0, len(events), self.packet_events):
            body = self._compress(_event_packet(events[a : a + self.packet_events]))
            self._f.write(struct.pack("<ii", 0, len(body)))
            self._f.write(body)

    def _close(self) -> None:
        self._f.close()
