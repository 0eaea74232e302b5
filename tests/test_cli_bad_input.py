"""Bad command-line input: every case is exit status 2 with one error line naming what is wrong, never a
traceback (argparse's usage line may precede its error line). Only cases that fail before heavy work."""

from __future__ import annotations

import pytest

from foveate.tools.cli import main


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "junk.raw").write_bytes(b"junk")
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    (tmp_path / "empty").mkdir()
    return tmp_path


CASES = [
    # (argv, text the error line must contain)
    (["run", "--seconds", "inf"], "--seconds must be a finite number > 0"),
    (["run", "--config", "missing.yaml"], "missing.yaml: rig file not found"),
    (["run", "--config", "empty"], "empty: is a directory"),
    (["run", "--config", "junk.raw"], "junk.raw: expected a mapping"),
    (["run", "--seconds", "0.01", "--out", "junk.raw/sub"], "--out junk.raw/sub: cannot create the output folder"),
    (["twin", "--seconds", "inf"], "argument --seconds: expected a finite number >= 0, got 'inf'"),
    (["twin", "--events-ms", "0"], "argument --events-ms: expected a finite number > 0, got '0'"),
    (["devices", "--sync-seconds", "nan"], "argument --sync-seconds: expected a finite number >= 0, got 'nan'"),
    (["devices", "--sync-seconds", "-1"], "argument --sync-seconds: expected a finite number >= 0"),
    (["galvo-sim", "--seconds", "-2"], "argument --seconds: expected a finite number > 0"),
    (["events", "info", "missing.raw"], "missing.raw: no such file"),
    (["events", "info", "junk.raw"], "junk.raw: .raw file without a '%' header"),
    (["events", "info", "junk.raw", "--in-format", "evt3", "--width", "-5", "--height", "3"],
     "argument --width: expected an integer >= 1, got '-5'"),
    (["events", "info", "junk.raw", "--in-format", "evt3", "--width", "4"], "give both --width and --height"),
    (["events", "convert", "junk.raw", "junk.raw/out.npy", "--in-format", "evt3", "--width", "4", "--height", "4"],
     "junk.raw"),
    (["replay", "missing.raw"], "missing.raw: no such file or folder"),
    (["replay", "empty"], "empty: a folder but not a run recording"),
    (["replay", "junk.raw", "--window-ms", "-1"], "argument --window-ms: expected a finite number > 0"),
    (["replay", "junk.raw", "--threads", "0"], "argument --threads: expected an integer >= 1, got '0'"),
    (["replay", "junk.raw", "--crop-bottom", "-4"], "argument --crop-bottom: expected an integer >= 0"),
    (["record", "verify", "missing"], "missing: not a recording"),
    (["record", "verify", "empty"], "empty: not a recording (no recording.json)"),
    (["record"], "the following arguments are required: ACTION"),
    (["calibrate", "galvo", "missing", "--out", "x.yaml"], "missing: capture directory not found"),
    (["calibrate", "intrinsics", "empty", "--out", "x.yaml"], "empty/captures.csv: not found"),
    (["quantize", "junk.onnx", "--out", "q.onnx"], "junk.onnx: not an ONNX model"),
    (["roofline", "junk.onnx"], "junk.onnx: not an ONNX model"),
    (["bench", "nope"], "unknown benchmark 'nope'"),
    (["galvo-sim", "--option", "bad"], "--option 'bad': expected KEY=VALUE"),
    (["nope"], "invalid choice: 'nope'"),
]


@pytest.mark.parametrize("argv,match", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_command_line_is_one_clear_line(files, capsys, argv, match):
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse: usage line, then one error line
        rc = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, err
    assert err and "Traceback" not in "\n".join(err)
    lines = [line for line in err if not line.startswith(("usage:", " "))]
    assert len(lines) == 1 and match in lines[0], err

