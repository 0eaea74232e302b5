"""Format registry, sniffing, ``open_events`` and ``create_writer``.

The format is chosen by header sniffing first (``%`` header with ``evt``
version, AEDAT magic, HDF5 signature and attributes, ``.npy`` magic), then by
extension, and can always be forced with ``format=``. Format modules are
imported on first use, so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foveate.system.errors import EventFormatError
from foveate.system.events._header import MAX_HEADER_BYTES, read_percent_header
from foveate.system.events.base import EventReader, EventWriter


@dataclass(frozen=True)
class FormatInfo:
    name: str
    description: str
    reader: str
    writer: str | None
    extensions: tuple[str, ...]


FORMATS: dict[str, FormatInfo] = {
    f.name: f
    for f in (
        FormatInfo("evt3", "Prophesee EVT 3.0 .raw", "evt3:Evt3Reader", "evt3:Evt3Writer", (".raw",)),
        FormatInfo("evt2", "Prophesee EVT 2.0 .raw", "evt2:Evt2Reader", "evt2:Evt2Writer", (".raw",)),
        FormatInfo("dat", "Prophesee DAT (CD events)", "dat:DatReader", "dat:DatWriter", (".dat",)),
        FormatInfo("aedat4", "iniVation AEDAT 4.0 (LZ4/ZSTD)", "aedat4:Aedat4Reader", "aedat4:Aedat4Writer", (".aedat4",)),
        FormatInfo("dsec", "DSEC events.h5 (Blosc/zstd HDF5)", "hdf5:DsecReader", "hdf5:DsecWriter", (".h5", ".hdf5")),
        FormatInfo("foveate", "foveate recording (.fev.h5: DSEC layout + metadata)", "hdf5:FoveateH5Reader",
                   "hdf5:FoveateH5Writer", (".fev.h5",)),
        FormatInfo("ess", "DDD17/ESS folder (events.dat.t + events.dat.xyp memmaps)", "memmap:EssReader",
                   "memmap:EssWriter", (".dat.t",)),
        FormatInfo("npy", "numpy structured array x:u2, y:u2, t:i8 µs, p:u1", "memmap:NpyReader", "memmap:NpyWriter", (".npy",)),
    )
}

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
AEDAT_PREFIX = b"#!AER-DAT"


def _load(target: str):
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(f"foveate.system.events.{module}"), attr)


def _check_name(fmt: str) -> FormatInfo:
    if fmt not in FORMATS:
        raise EventFormatError(f"unknown event format '{fmt}' (expected one of: {', '.join(FORMATS)})")
    return FORMATS[fmt]


def detect_format(path: str | Path) -> str:
    """The registry name of ``path``'s format, from its content and name; ``EventFormatError`` if unknown."""
    p = Path(path)
    name = p.name.lower()
    if p.is_dir():
        if (p / "events.dat.t").exists():
            return "ess"
        raise EventFormatError(f"{p}: a folder is only readable as an ESS/DDD17 event folder (events.dat.t + events.dat.xyp)")
    if not p.exists():
        raise EventFormatError(f"{p}: no such file or directory")
    if name.endswith((".dat.t", ".dat.xyp")):
        return "ess"
    with open(p, "rb") as f:
        head = f.read(MAX_HEADER_BYTES)
    if head.startswith(AEDAT_PREFIX):
        if head.startswith(b"#!AER-DAT4.0"):
            return "aedat4"
        version = head[9:12].decode("ascii", "replace")
        raise EventFormatError(f"{p}: AEDAT version {version} is not supported (only AEDAT 4.0)")
    if head.startswith(HDF5_MAGIC):
        return _sniff_h5(p)
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"%"):
        hdr = read_percent_header(p, head)
        v = hdr.evt_version
        if v == "3.0":
            return "evt3"
        if v == "2.0":
            return "evt2"
        if v is not None:
            raise EventFormatError(f"{p}: header declares EVT {v}, which is not supported (EVT 2.0, EVT 3.0)")
        text = " ".join(hdr.lines).lower()
        if name.endswith(".dat") or "cd events" in text or "version" in hdr.fields:
            return "dat"
        raise EventFormatError(
            f"{p}: the '%' header names no EVT version or DAT content; pass format= (CLI: --in-format) "
            f"one of {', '.join(FORMATS)}"
        )
    if name.endswith(".dat"):
        return "dat"  # legacy DAT without header
    if name.endswith(".raw"):
        raise EventFormatError(f"{p}: .raw file without a '%' header; pass format='evt2' or 'evt3' (CLI: --in-format)")
    raise EventFormatError(
        f"{p}: unknown event file format (first bytes {head[:8]!r}); readable formats: {', '.join(FORMATS)}"
    )


def _sniff_h5(p: Path) -> str:
    from foveate.system.events.hdf5 import FOVEATE_FORMAT, _h5

    h5py = _h5()
    try:
        with h5py.File(p, "r") as f:
            fmt = f.attrs.get("format")
            if isinstance(fmt, bytes):
                fmt = fmt.decode()
            if fmt == FOVEATE_FORMAT:
                return "foveate"
            if "events" in f and "x" in f["events"]:
                return "dsec"
    except OSError as exc:
        raise EventFormatError(f"{p}: HDF5 file cannot be opened: {exc}") from None
    raise EventFormatError(f"{p}: HDF5 file has no /events/x dataset (not a DSEC or foveate event file)")


def open_events(path: str | Path, format: str | None = None, **options: Any) -> EventReader:
    """Open an event file for reading; the format is sniffed unless given.

    Options go to the reader: ``sensor_size=(w, h)`` overrides the file's
    size, ``repair=True`` applies the documented repairs with a warning
    instead of raising, ``chunk_events`` bounds each decoded chunk. Format
    specific: ``add_t_offset`` (DSEC), ``stream`` (AEDAT4).
    """
    p = Path(path)
    if p.exists() and not p.is_file() and not p.is_dir():  # a pipe or device: reading would block
        raise EventFormatError(f"{p}: not a regular file (event files are read from disk; readers seek)")
    fmt = format or detect_format(path)
    cls = _load(_check_name(fmt).reader)
    return cls(path, **options)


def writer_format_for(path: str | Path) -> str:
    """The format a writer picks from the output name (``.raw`` gives EVT 3.0)."""
    name = Path(path).name.lower()
    if name.endswith(".fev.h5") or name.endswith((".h5", ".hdf5")):
        return "foveate"
    if name.endswith(".raw"):
        return "evt3"
    if name.endswith(".dat"):
        return "dat"
    if name.endswith(".npy"):
        return "npy"
    if name.endswith(".aedat4"):
        return "aedat4"
    if Path(path).is_dir() or name.endswith(".dat.t") or name.endswith(".ess"):
        return "ess"
    raise EventFormatError(
        f"{path}: cannot tell the output format from the name; pass format= (CLI: --format) one of "
        f"{', '.join(k for k, v in FORMATS.items() if v.writer)}"
    )


def create_writer(path: str | Path, sensor_size: tuple[int, int], format: str | None = None, **options: Any) -> EventWriter:
    """A streaming writer for ``path``; the format comes from the name unless given."""
    fmt = format or writer_format_for(path)
    info = _check_name(fmt)
    if info.writer is None:
        raise EventFormatError(f"{path}: format '{fmt}' is read-only here ({info.description})")
    return _load(info.writer)(path, sensor_size, **options)


def write_events(path: str | Path, events, sensor_size: tuple[int, int], format: str | None = None, **options: Any) -> Path:
    """Write one array (or an iterable of arrays) of events to ``path``."""
    import numpy as np

    with create_writer(path, sensor_size, format, **options) as w:
        if isinstance(events, np.ndarray):
            events = [events]
        for ev in events:
            w.write(ev)
    return Path(path)
