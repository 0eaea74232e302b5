"""``foveate events info|convert|formats``."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from foveate.system.events import open_events, write_events
from foveate.tools.cli import main


def run_cli(capsys, *args):
    rc = main(["events", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_info_text_and_json(capsys, real_evt3):
    rc, out, _ = run_cli(capsys, "info", real_evt3, "--no-progress")
    assert rc == 0
    assert "evt3" in out and "1280 x 720" in out and "219,596" in out and "11718656 .. 11727457" in out
    rc, out, _ = run_cli(capsys, "info", real_evt3, "--json")
    d = json.loads(out)
    assert d["format"] == "evt3" and d["events"] == 219_596 and d["sensor_size"] == [1280, 720]
    assert d["t_first_us"] == 11_718_656 and d["t_last_us"] == 11_727_457
    assert d["backward_time_steps"] == 0 and d["triggers"] == 0
    assert d["metadata"]["plugin_name"] == "hal_plugin_gen41_evk3"


def test_info_of_indexed_file_needs_no_scan(capsys, tmp_path, make_events):
    ev = make_events(1000)
    write_events(tmp_path / "a.fev.h5", ev, (640, 480))
    rc, out, _ = run_cli(capsys, "info", tmp_path / "a.fev.h5", "--json")
    d = json.loads(out)
    assert d["events"] == 1000 and d["t_last_us"] == int(ev["t"][-1]) and "backward_time_steps" not in d


@pytest.mark.parametrize("out_name,fmt", [("o.fev.h5", None), ("o.aedat4", None), ("o.npy", None), ("o.dat", None), ("o.raw", "evt2"),
                                          ("o.raw", None), ("o.h5", "dsec"), ("o_ess", "ess")])
def test_convert_round_trip(capsys, tmp_path, real_evt2, out_name, fmt):
    out = tmp_path / out_name
    args = ["convert", real_evt2, out, "--no-progress"] + (["--format", fmt] if fmt else [])
    if fmt == "ess":
        args += ["--width", "640", "--height", "480"]
    rc, stdout, _ = run_cli(capsys, *args)
    assert rc == 0 and "539,481 events written" in stdout
    ref = open_events(real_evt2).read_all()
    np.testing.assert_array_equal(open_events(out, format=fmt, sensor_size=(640, 480)).read_all(), ref)


def test_convert_npy_keeps_file_order(capsys, tmp_path, make_events):
    ev = make_events(100)
    ev["t"][50] -= 300  # small disorder
    write_events(tmp_path / "in.npy", ev, (640, 480))
    rc, _, _ = run_cli(capsys, "convert", tmp_path / "in.npy", tmp_path / "out.npy", "--no-progress", "--width", "640", "--height", "480")
    assert rc == 0
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), ev)
    rc, _, _ = run_cli(capsys, "convert", tmp_path / "in.npy", tmp_path / "out.raw", "--no-progress", "--width", "640", "--height", "480")
    assert rc == 0  # time-ordered formats get the small disorder sorted in
    np.testing.assert_array_equal(open_events(tmp_path / "out.raw").read_all(), ev[np.argsort(ev["t"], kind="stable")])


def test_cli_errors_are_one_line(capsys, tmp_path, make_events):
    rc, _, err = run_cli(capsys, "info", tmp_path / "missing.raw")
    assert rc == 2 and "missing.raw: no such file" in err and "Traceback" not in err
    write_events(tmp_path / "a.raw", make_events(10), (640, 480))
    (tmp_path / "b.dat").write_bytes(b"")
    rc, _, err = run_cli(capsys, "convert", tmp_path / "a.raw", tmp_path / "b.dat")
    assert rc == 2 and "exists (use --force" in err
    rc, _, err = run_cli(capsys, "convert", tmp_path / "a.raw", tmp_path / "b.xyz")
    assert rc == 2 and "cannot tell the output format" in err
    rc, _, err = run_cli(capsys, "convert", tmp_path / "a.raw", tmp_path / "a.raw")
    assert rc == 2 and "output is the input file" in err
    data = (tmp_path / "a.raw").read_bytes()
    (tmp_path / "t.raw").write_bytes(data[:-1])
    rc, _, err = run_cli(capsys, "convert", tmp_path / "t.raw", tmp_path / "t.npy", "--no-progress")
    assert rc == 2 and "file is truncated" in err and "--repair" in err
    assert not (tmp_path / "t.npy").exists(), "a failed convert leaves no partial output"
    with pytest.warns(UserWarning, match="truncated"):
        rc, _, _ = run_cli(capsys, "convert", tmp_path / "t.raw", tmp_path / "t.npy", "--no-progress", "--repair")
    assert rc == 0


def test_formats_lists_everything(capsys):
    rc, out, _ = run_cli(capsys, "formats")
    for name in ("evt3", "evt2", "dat", "aedat4", "dsec", "foveate", "ess", "npy"):
        assert name in out


@pytest.mark.slow
def test_convert_memory_is_bounded(tmp_path):
    """Converting a file larger than the memory budget keeps peak RSS under 256 MB."""
    rng = np.random.default_rng(0)
    block = np.empty(1 << 20, np.uint32)  # EVT 2.0 words: 64 events per TIME_HIGH
    n_ev = len(block)
    idx = np.arange(n_ev)
    block[:] = (rng.integers(0, 2, n_ev).astype(np.uint32) << 28) | ((idx % 64).astype(np.uint32) << 22) \
        | (rng.integers(0, 640, n_ev).astype(np.uint32) << 11) | rng.integers(0, 480, n_ev).astype(np.uint32)
    src = tmp_path / "big.raw"
    reps = 80  # 80 x (4 MB + time highs) ~ 340 MB, 84 M events
    with open(src, "wb") as f:
        f.write(b"% evt 2.0\n% geometry 640x480\n% end\n")
        th = np.arange(n_ev // 64, dtype=np.uint32)
        for r in range(reps):
            words = block.reshape(-1, 64)
            hi = ((0x8 << 28) | (th + r * (n_ev // 64))).astype(np.uint32)
            np.concatenate([hi[:, None], words], axis=1).tofile(f)
    assert src.stat().st_size > 300e6
    dst = tmp_path / "big_out.raw"
    # the events command alone: the full CLI parser also imports other commands' dependencies (torch)
    code = ("import argparse, sys; from foveate.tools.commands import events; "
            "p = argparse.ArgumentParser(); events.add_arguments(p); rc = events.run(p.parse_args(sys.argv[1:])); "
            "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM'))); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, "convert", str(src), str(dst), "--format", "evt3",
                           "--no-progress"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    peak_mb = int(proc.stdout.strip().splitlines()[-1]) / 1024
    assert peak_mb < 256, f"peak RSS {peak_mb:.0f} MB"
    with open_events(dst) as r:
        n = sum(len(c) for c in r.chunks())
    assert n == reps * n_ev
