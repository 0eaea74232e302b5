"""Recording integrity: power-loss-like truncation keeps every completed chunk, ``foveate record verify``
reports damage with a non-zero exit, and no recording is overwritten without ``--force``."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from foveate.system.search.recorder import Recorder, Recording, RecordingError
from foveate.system.search.verify import verify_recording
from foveate.tools.cli import main


def _make_recording(kit, path, force=False):
    rig = kit.MiniRig()
    rec = Recorder(path, rig.config, force=force, loop="ppm", chunk_period_s=0.02)
    loop = rig.loop(observers=[rec])
    loop.run(0.1)
    rec.close()
    return loop


@pytest.fixture
def rec_dir(kit, tmp_path):
    d = tmp_path / "rec"
    _make_recording(kit, d)
    return d


def _lines(d):
    raw = (d / "index.jsonl").read_bytes()
    return raw, [json.loads(x) for x in raw.splitlines()]


def test_intact_recording_verifies_clean(rec_dir, capsys):
    r = verify_recording(rec_dir)
    _, entries = _lines(rec_dir)
    assert not r["damaged"] and r["problems"] == [] and not r["truncated_tail"]
    assert r["chunks_ok"] == len(entries) >= 5 and r["bytes_lost"] == 0
    assert r["bytes_ok"] == sum(e["bytes"] for e in entries)
    assert r["t0_ns"] == entries[0]["t0_ns"] and r["t1_ns"] == entries[-1]["t1_ns"]
    assert r["counts"]["search"] == sum(e["counts"].get("search", 0) for e in entries)
    assert main(["record", "verify", str(rec_dir)]) == 0
    out = capsys.readouterr().out
    assert "intact" in out and f"chunks ok     {len(entries)}" in out
    assert main(["record", "verify", "--json", "--quick", str(rec_dir)]) == 0
    assert json.loads(capsys.readouterr().out)["chunks_ok"] == len(entries)


def test_power_loss_truncation_of_the_index_keeps_every_completed_chunk(rec_dir, tmp_path):
    """Cut index.jsonl throughout its last two lines, or leave a zero-filled tail (power loss
    on a journaling file system): exactly the complete lines before the cut survive, with their data."""
    full = Recording(rec_dir)
    seq_full = full.stream("search")["seq"]
    raw, entries = _lines(rec_dir)
    n = len(entries)
    ends = np.cumsum([len(x) + 1 for x in raw.splitlines()])
    work = tmp_path / "cut"
    shutil.copytree(rec_dir, work)
    (work / "closed.json").unlink()  # a power loss never closes the recording
    # Every byte around the line ends, every 5th byte of the last line, every 13th of the one before.
    edges = {c for e in (ends[-3], ends[-2], ends[-1]) for c in range(int(e) - 4, int(e) + 4)}
    cuts = sorted(c for c in edges | set(range(int(ends[-2]), len(raw) + 1, 5)) | set(range(int(ends[-3]), int(ends[-2]), 13))
                  if int(ends[-3]) <= c <= len(raw))
    for cut in cuts:
        for tail in (b"", b"\x00" * 37):
            (work / "index.jsonl").write_bytes(raw[:cut] + tail)
            complete = int(np.searchsorted(ends, cut, side="right"))
            r = Recording(work)
            assert len(r.chunks) == complete, (cut, tail)
            rep = verify_recording(work, deep=False)
            assert rep["damaged"] and rep["truncated_tail"] and rep["chunks_ok"] == complete
            kept = sum(e["bytes"] for e in entries[:complete])
            orphans = sum(e["bytes"] for e in entries[complete:])
            assert rep["bytes_ok"] == kept
            assert rep["bytes_lost"] == orphans + (cut - int(ends[complete - 1]) if complete else cut) + len(tail)
    # Nothing before the last complete chunk is lost: the surviving records are a prefix of the full run's.
    (work / "index.jsonl").write_bytes(raw[: int(ends[n - 2])])
    seq = Recording(work).stream("search")["seq"]
    assert len(seq) == sum(e["counts"].get("search", 0) for e in entries[: n - 1])
    np.testing.assert_array_equal(seq, seq_full[: len(seq)])


@pytest.mark.parametrize("damage", ["truncate", "zeros", "delete", "flip"])
def test_damaged_last_chunk_ends_the_recording_before_it(rec_dir, damage, capsys):
    raw, entries = _lines(rec_dir)
    last = rec_dir / entries[-1]["file"]
    data = last.read_bytes()
    if damage == "truncate":
        last.write_bytes(data[: len(data) // 3])
    elif damage == "zeros":
        last.write_bytes(data[:100] + bytes(len(data) - 100))
    elif damage == "delete":
        last.unlink()
    else:
        last.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    (rec_dir / "closed.json").unlink()
    r = Recording(rec_dir)
    assert len(r.chunks) == len(entries) - 1
    assert ("missing" if damage == "delete" else "checksum mismatch") in r.problems[0]
    assert main(["record", "verify", str(rec_dir)]) == 1
    out = capsys.readouterr().out
    assert "DAMAGED" in out and f"chunks ok     {len(entries) - 1}" in out and "problem:" in out
    rep = verify_recording(rec_dir)
    assert rep["bytes_lost"] == (last.stat().st_size if last.exists() else 0) + len(raw.splitlines()[-1]) + 1


def test_crash_between_chunk_rename_and_index_append(rec_dir):
    """A chunk file without its index line (kill after the rename) is reported, not trusted."""
    raw, entries = _lines(rec_dir)
    (rec_dir / "index.jsonl").write_bytes(b"".join(x + b"\n" for x in raw.splitlines()[:-1]))
    (rec_dir / "chunks" / f"{len(entries):06d}.npz.tmp").write_bytes(b"half a chunk")
    (rec_dir / "closed.json").unlink()
    rep = verify_recording(rec_dir)
    assert rep["chunks_ok"] == len(entries) - 1 and rep["damaged"] and rep["truncated_tail"]
    assert rep["bytes_lost"] == entries[-1]["bytes"] + len(b"half a chunk")
    assert any("not covered by the intact index" in p for p in rep["problems"])
    assert any("not closed cleanly" in p for p in rep["problems"])


def test_a_damaged_index_line_is_never_trusted(rec_dir):
    """Found by the fuzzer: one digit of a count or time changed still parses as JSON; the line's check catches it."""
    raw, entries = _lines(rec_dir)
    lines = raw.splitlines()
    k = lines[1].index(b'"t1_ns": ') + len(b'"t1_ns": ')
    digit = lines[1][k:k + 1]
    damaged = lines[1][:k] + (b"9" if digit != b"9" else b"8") + lines[1][k + 1:]
    (rec_dir / "index.jsonl").write_bytes(b"\n".join([lines[0], damaged] + lines[2:]) + b"\n")
    r = Recording(rec_dir)
    assert r.chunks == entries[:1] and "check:" in r.problems[0] and "damaged line" in r.problems[0]


def test_forged_index_and_chunk_content_are_caught(rec_dir):
    from foveate.system.search.recorder import index_line_check

    raw, entries = _lines(rec_dir)
    lines = raw.splitlines()

    def forged(e):  # a forgery that also recomputes the line's check
        return json.dumps(dict(e, check=index_line_check(e))).encode()

    # An index line pointing outside the recording is never followed.
    bad = dict(entries[1], file="../../etc/passwd")
    (rec_dir / "index.jsonl").write_bytes(lines[0] + b"\n" + forged(bad) + b"\n")
    r = Recording(rec_dir)
    assert len(r.chunks) == 1 and "file: expected 'chunks/000001.npz'" in r.problems[0]
    # A chunk whose checksum matches a rewritten index line but whose counts do not (deep check).
    e = dict(entries[0])
    e["counts"] = dict(e["counts"], search=e["counts"].get("search", 0) + 1)
    (rec_dir / "index.jsonl").write_bytes(forged(e) + b"\n")
    rep = verify_recording(rec_dir)
    assert rep["chunks_ok"] == 0 and any("search." in p and "index promises" in p for p in rep["problems"])
    assert verify_recording(rec_dir, deep=False)["chunks_ok"] == 1


@pytest.mark.parametrize("manifest,match", [
    (b"{not json", "unreadable manifest"),
    (b"\xff\xfe", "unreadable manifest"),
    (b"[]", "expected a JSON object"),
    (json.dumps({"format": "foveate-recording", "version": 1}).encode(), "t0_ns: required key is missing"),
])
def test_bad_manifest_is_one_clear_line(rec_dir, manifest, match, capsys):
    m = json.loads((rec_dir / "recording.json").read_text())
    (rec_dir / "recording.json").write_bytes(manifest)
    with pytest.raises(RecordingError, match=match):
        Recording(rec_dir)
    assert main(["record", "verify", str(rec_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("foveate: error: ") and len(err.splitlines()) == 1 and "recording.json" in err
    m["t0_ns"] = "soon"
    (rec_dir / "recording.json").write_text(json.dumps(m))
    with pytest.raises(RecordingError, match=r"t0_ns: expected an integer \(ns\), got 'soon'"):
        Recording(rec_dir)


def test_verify_refuses_what_is_not_a_recording(tmp_path, capsys):
    assert main(["record", "verify", str(tmp_path / "absent")]) == 2
    assert "not a recording" in capsys.readouterr().err
    (tmp_path / "f").write_text("x")
    assert main(["record", "verify", str(tmp_path / "f")]) == 2


def test_no_recording_is_overwritten_without_force(kit, rec_dir, tmp_path):
    before = (rec_dir / "index.jsonl").read_bytes()
    with pytest.raises(RecordingError, match="exists and is not empty .*--force"):
        Recorder(rec_dir, kit.MiniRig().config)
    assert (rec_dir / "index.jsonl").read_bytes() == before
    with pytest.raises(RecordingError, match="lies inside the recording"):
        Recorder(rec_dir / "chunks" / "inner", kit.MiniRig().config)
    (tmp_path / "file").write_text("x")
    with pytest.raises(RecordingError, match="exists and is not a folder"):
        Recorder(tmp_path / "file", kit.MiniRig().config)
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("precious")
    with pytest.raises(RecordingError, match="not a recording; refusing to delete it even with --force"):
        Recorder(other, kit.MiniRig().config, force=True)
    assert (other / "keep.txt").read_text() == "precious"
    (rec_dir / "index.jsonl").write_bytes(b"")  # an emptied index must come back whole after --force
    _make_recording(kit, rec_dir, force=True)
    assert (rec_dir / "index.jsonl").read_bytes() == before and Recording(rec_dir).closed


def test_cli_refuses_to_mix_outputs_into_a_recording(rec_dir, tmp_path, capsys):
    cases = [
        (["run", "--seconds", "0.01", "--out", str(rec_dir / "out"), "--no-progress"], "lies in the recording"),
        (["run", "--seconds", "0.01", "--record", str(tmp_path / "r"), "--out", str(tmp_path / "r"), "--no-progress"],
         "lies in --record"),
        (["run", "--seconds", "0.01", "--record", str(rec_dir), "--out", str(tmp_path / "o"), "--no-progress"],
         "exists and is not empty"),
        (["run", "--seconds", "inf", "--out", str(tmp_path / "o")], "finite number > 0"),
        (["replay", str(rec_dir), "--out", str(rec_dir)], "lies in the recording"),
    ]
    for argv, match in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert match in err and len(err.splitlines()) == 1, (argv, err)
    assert not (tmp_path / "r").exists() and not (rec_dir / "out").exists()


def test_version_1_recordings_without_line_checks_still_read(rec_dir):
    raw, entries = _lines(rec_dir)
    m = json.loads((rec_dir / "recording.json").read_text())
    assert m["version"] == 2 and all("check" in e for e in entries)
    (rec_dir / "recording.json").write_text(json.dumps(dict(m, version=1)))
    (rec_dir / "index.jsonl").write_bytes(b"".join(json.dumps({k: v for k, v in e.items() if k != "check"}).encode()
                                                   + b"\n" for e in entries))
    assert len(Recording(rec_dir).chunks) == len(entries)
    (rec_dir / "recording.json").write_text(json.dumps(dict(m, version=3)))
    with pytest.raises(RecordingError, match=r"version 3 \(this foveate reads versions 1, 2\)"):
        Recording(rec_dir)
