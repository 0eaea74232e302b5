"""Event streams: exact, streaming readers and writers of the real event file formats.

>>> from foveate.system.events import open_events, TimeWindows
>>> with open_events("recording.raw") as r:                      # doctest: +SKIP
...     for packet in r.windows(TimeWindows(10_000, origin_us=0)):
...         ...

Formats (``FORMATS``): Prophesee EVT 3.0 / EVT 2.0 ``.raw`` and DAT, iniVation
AEDAT 4.0, DSEC ``events.h5``, DDD17/ESS memmaps, ``.npy`` structured
arrays and the project's ``.fev.h5`` recordings. See ``docs/events.md``.
"""

from foveate.system.events.base import (
    DEFAULT_CHUNK_EVENTS,
    TRIGGER_DTYPE,
    DecodeStats,
    EventFormatWarning,
    EventReader,
    EventWriter,
)
from foveate.system.events.formats import (
    FORMATS,
    create_writer,
    detect_format,
    open_events,
    write_events,
    writer_format_for,
)
from foveate.system.events.slicing import CountWindows, Slicer, TimeCursor, TimeWindows, ordered_chunks

__all__ = [
    "DEFAULT_CHUNK_EVENTS",
    "FORMATS",
    "TRIGGER_DTYPE",
    "CountWindows",
    "DecodeStats",
    "EventFormatWarning",
    "EventReader",
    "EventWriter",
    "Slicer",
    "TimeCursor",
    "TimeWindows",
    "create_writer",
    "detect_format",
    "open_events",
    "ordered_chunks",
    "write_events",
    "writer_format_for",
]
