"""Fuzz the project's own event files (``.fev.h5``, ``.npy``) with byte damage: any file decodes or gives
one EventFormatError line naming it. (EVT2/EVT3/DAT/AEDAT4 and sniffing: tests/events/test_event_bad_input.py.)"""

from __future__ import annotations

import itertools
import os
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foveate.system.errors import EventFormatError
from foveate.system.events import EventFormatWarning, TimeWindows, open_events, write_events
from foveate.system.types import EVENT_DTYPE


_SEQ = itertools.count()


def budget(n: int) -> int:
    """``n`` examples in CI; the profile's (larger) count under HYPOTHESIS_PROFILE=fuzz-long."""
    return n if os.environ.get("HYPOTHESIS_PROFILE", "ci") == "ci" else settings.default.max_examples


def _events(n=300, size=(64, 48)):
    ev = np.zeros(n, EVENT_DTYPE)
    ev["t"] = np.arange(n) * 7 + 50
    ev["x"] = np.arange(n) % size[0]
    ev["y"] = (np.arange(n) * 5) % size[1]
    ev["p"] = np.arange(n) % 2
    return ev


@pytest.fixture(scope="module")
def own_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("own")
    out = {}
    for name in ("ok.fev.h5", "ok.npy"):
        p = write_events(d / name, _events(), (64, 48))
        out[name] = p.read_bytes()
    return out


def _decode_or_clean_error(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EventFormatWarning)
        try:
            with open_events(path, **kw) as r:
                ev = r.read_all()
                list(r.windows(TimeWindows(1000)))
                size = r.sensor_size
        except EventFormatError as exc:
            msg = str(exc)
            assert path.name in msg and "\n" not in msg, msg
            return None
    assert ev.dtype == EVENT_DTYPE
    if len(ev):
        assert int(ev["x"].max()) < size[0] and int(ev["y"].max()) < size[1] and int(ev["p"].max()) <= 1
    return ev


@settings(max_examples=budget(60))
@given(data=st.data(), name=st.sampled_from(["ok.fev.h5", "ok.npy"]), repair=st.booleans())
def test_fuzz_own_event_files(tmp_path, own_files, data, name, repair):
    buf = bytearray(own_files[name])
    for _ in range(data.draw(st.integers(0, 8))):
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    # A fresh name per example: HDF5 reuses a file that is still open under the same name.
    p = tmp_path / f"{next(_SEQ)}.{name}"
    p.write_bytes(bytes(buf[:cut]))
    kw = {"sensor_size": (64, 48)} if name.endswith(".npy") else {}
    _decode_or_clean_error(p, repair=repair, **kw)


def test_a_pipe_is_refused_not_read(tmp_path):
    fifo = tmp_path / "live.raw"
    os.mkfifo(fifo)
    with pytest.raises(EventFormatError, match="live.raw: not a regular file"):
        open_events(fifo)  # opening a pipe for reading would block forever
    with pytest.raises(EventFormatError, match="not a regular file"):
        open_events(fifo, format="evt3")


def test_npy_header_cut_inside_the_dtype(tmp_path):
    """Found by the fuzzer: numpy raises tokenize.TokenError for an unclosed header."""
    import struct

    h = b"{'descr': [('t', '<i8'"
    h += b" " * (118 - 10 - len(h)) + b"\n"
    p = tmp_path / "cut.npy"
    p.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h)
    with pytest.raises(EventFormatError, match=r"cut.npy: npy header: cannot read: .*EOF in multi-line"):
        open_events(p, sensor_size=(64, 48))
