"""The ``%`` text header of Prophesee RAW and DAT files.

Modern OpenEB files end the header with ``% end`` and declare
``% format EVT3;height=720;width=1280`` and ``% geometry 1280x720``; older
files only name the plugin (``% plugin_name hal_plugin_gen3_fx3``), so the
sensor size falls back to the sensor that plugin drives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from foveate.system.events.base import fail

#: Longest header accepted (real headers are well under 1 kB).
MAX_HEADER_BYTES = 1 << 16
#: Longest header line accepted.
MAX_LINE_BYTES = 4096

#: Sensor size of the camera a HAL plugin drives, for headers that give no geometry.
PLUGIN_SENSOR_SIZES = (
    ("genx320", (320, 320)),
    ("gen41", (1280, 720)),
    ("imx636", (1280, 720)),
    ("evk4", (1280, 720)),
    ("gen31", (640, 480)),
    ("gen3", (640, 480)),
)


@dataclass
class PercentHeader:
    lines: list[str] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)
    #: byte offset where the binary data starts
    data_offset: int = 0

    @property
    def evt_version(self) -> str | None:
        """``"2.0"``, ``"3.0"``, ``"2.1"`` or ``None``, from ``% evt`` or ``% format``."""
        if "evt" in self.fields:
            return self.fields["evt"].strip()
        fmt = self.fields.get("format", "")
        m = re.match(r"EVT(\d)(\d)?", fmt.strip(), re.I)
        if m:
            return f"{m.group(1)}.{m.group(2) or '0'}"
        return None

    def sensor_size(self, path: Path | str) -> tuple[int, int] | None:
        """``(width, height)`` from ``% format``, ``% geometry``, ``% Width/Height`` or the plugin name."""
        fmt = self.fields.get("format", "")
        if ";" in fmt:
            kv = dict(part.split("=", 1) for part in fmt.split(";")[1:] if "=" in part)
            if "width" in kv and "height" in kv:
                return _size(path, kv["width"], kv["height"], "% format")
        if "geometry" in self.fields:
            m = re.fullmatch(r"\s*(\S+)\s*[x,]\s*(\S+)\s*", self.fields["geometry"])
            if not m:
                raise fail(path, "header", f"'% geometry {self.fields['geometry']}' is not WIDTHxHEIGHT")
            return _size(path, m.group(1), m.group(2), "% geometry")
        if "width" in self.fields and "height" in self.fields:
            return _size(path, self.fields["width"], self.fields["height"], "% Width/% Height")
        plugin = self.fields.get("plugin_name", "").lower()
        for key, size in PLUGIN_SENSOR_SIZES:
            if key in plugin:
                return size
        return None


def _size(path, w: str, h: str, where: str) -> tuple[int, int]:
    try:
        wi, hi = int(w), int(h)
    except ValueError:
        raise fail(path, "header", f"{where}: sensor size '{w}x{h}' is not two integers") from None
    if not (0 < wi <= 1 << 14 and 0 < hi <= 1 << 14):
        raise fail(path, "header", f"{where}: sensor size {wi}x{hi} is out of range")
    return wi, hi


def read_percent_header(path: Path | str, head: bytes) -> PercentHeader:
    """Parse the ``%`` lines at the start of ``head`` (the first bytes of the file).

    The header is the run of lines that start with ``%`` and are printable
    text; it ends after ``% end``, at the first byte that is not ``%``, or
    (files without ``% end``) at a ``%`` that does not start a text line: the
    binary data can begin with the byte 0x25.
    """
    hdr = PercentHeader()
    pos = 0
    while pos < len(head) and head[pos : pos + 1] == b"%":
        nl = head.find(b"\n", pos, pos + MAX_LINE_BYTES)
        if nl < 0 and hdr.lines:  # binary data that happens to start with '%' (no '% end' line)
            break
        if nl < 0:
            if len(head) >= MAX_HEADER_BYTES:
                raise fail(path, f"byte offset {pos}", f"header line has no end within {MAX_HEADER_BYTES} bytes")
            raise fail(path, f"byte offset {pos}", "file ends inside the '%' header (truncated or not an event file)")
        raw = head[pos:nl]
        try:
            line = raw.decode("ascii").rstrip("\r")
        except UnicodeDecodeError:
            if hdr.lines:  # binary data that happens to start with '%': the header ended
                break
            raise fail(path, f"byte offset {pos}", "corrupt header: '%' line is not ASCII text") from None
        if any(ord(c) < 32 and c != "\t" for c in line):
            if hdr.lines:
                break
            raise fail(path, f"byte offset {pos}", "corrupt header: control characters in a '%' line")
        hdr.lines.append(line)
        pos = nl + 1
        body = line[1:].strip()
        if body == "end":
            break
        key, _, value = body.partition(" ")
        if key:
            hdr.fields[key.lower().rstrip(":")] = value.strip()
    hdr.data_offset = pos
    return hdr
