"""Fuzz the recording reader: damaged manifest, index and chunk bytes give either the intact prefix of
the recording or one RecordingError line; never another exception, never a trusted damaged chunk."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foveate.system.search.recorder import Recorder, Recording, RecordingError
from foveate.system.search.verify import verify_recording


def budget(n: int) -> int:
    """``n`` examples in CI; the profile's (larger) count under HYPOTHESIS_PROFILE=fuzz-long."""
    return n if os.environ.get("HYPOTHESIS_PROFILE", "ci") == "ci" else settings.default.max_examples


@pytest.fixture
def base(kit, tmp_path):
    d = tmp_path / "base"
    rig = kit.MiniRig()
    rec = Recorder(d, rig.config, loop="ppm", chunk_period_s=0.03)
    rig.loop(observers=[rec]).run(0.1)
    rec.close()
    full = Recording(d)
    files = {p.relative_to(d).as_posix(): p.read_bytes() for p in d.rglob("*") if p.is_file()}
    return d, files, full.chunks, full.stream("search")["seq"]


def _damage(data, blob: bytes) -> bytes:
    buf = bytearray(blob)
    for _ in range(data.draw(st.integers(0, 6))):
        if not buf:
            break
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    tail = data.draw(st.sampled_from([b"", b"\x00" * 16, b"\n", b"{}\n", b'{"chunk": 9}\n']))
    return bytes(buf[:cut]) + tail


@settings(max_examples=budget(60))
@given(data=st.data())
def test_fuzz_recording_reader(base, tmp_path, data):
    d0, files, chunks, seq_full = base
    work = tmp_path / "work"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(d0, work)
    targets = sorted(files)
    for name in data.draw(st.lists(st.sampled_from(targets), min_size=1, max_size=3, unique=True)):
        (work / name).write_bytes(_damage(data, files[name]))
    try:
        r = Recording(work)
        rep = verify_recording(work)
        seq = r.stream("search").get("seq", np.zeros(0, np.int64))
    except RecordingError as exc:
        msg = str(exc)
        assert "\n" not in msg and str(work) in msg, msg
        return
    # What is trusted is a prefix of the original recording, byte for byte.
    assert r.chunks == chunks[: len(r.chunks)]
    assert rep["chunks_ok"] <= len(r.chunks)
    np.testing.assert_array_equal(seq, seq_full[: len(seq)])
    assert rep["damaged"] == (rep["problems"] != [])
    if rep["chunks_ok"] < len(chunks):
        assert rep["damaged"] and rep["truncated_tail"]
