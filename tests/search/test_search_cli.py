"""End to end on the twin: ``foveate run --record`` survives SIGKILL; ``foveate replay DIR`` re-runs a recording."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from foveate.system.search.recorder import Recording
from foveate.tools.cli import main


def test_sigkill_mid_run_keeps_every_completed_chunk(tmp_path):
    rec = tmp_path / "rec"
    proc = subprocess.Popen([sys.executable, "-m", "foveate.tools.cli", "run", "--seconds", "60", "--record", str(rec),
                             "--out", str(tmp_path / "out"), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            idx = rec / "index.jsonl"
            if idx.is_file() and idx.read_bytes().count(b"\n") >= 3:
                break
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.05)
        else:
            raise AssertionError("the recorder wrote no 3 chunks in time")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    r = Recording(rec)
    assert not r.closed and len(r.chunks) >= 3
    # Chunks of at most 100 ms of clock time, back to back from the start, nothing missing before the last one.
    assert [c["chunk"] for c in r.chunks] == list(range(len(r.chunks)))
    assert all(c["t1_ns"] - c["t0_ns"] <= 100_000_000 for c in r.chunks)
    assert all(a["t1_ns"] == b["t0_ns"] for a, b in zip(r.chunks, r.chunks[1:]))
    search = r.stream("search")
    assert len(search["seq"]) == sum(c["counts"]["search"] for c in r.chunks) > 0
    assert np.array_equal(search["seq"], np.arange(len(search["seq"])))  # every frame up to the last chunk
    assert search["image"].shape[1:] == (256, 256)
    ev = r.stream("events")
    assert np.array_equal(ev["t_start_us"][1:], ev["t_end_us"][:-1])  # event packets tile time
    assert len(ev["events"]) == int(ev["count"].sum())
    # foveate record verify: damaged (killed before closing), every indexed chunk intact, exit 1.
    from foveate.system.search.verify import verify_recording

    rep = verify_recording(rec)
    assert rep["damaged"] and rep["truncated_tail"] and rep["chunks_ok"] == len(r.chunks)
    assert rep["seconds"] == round((r.t1_ns - r.t0_ns) * 1e-9, 6)
    assert main(["record", "verify", "--quick", str(rec)]) == 1


def test_record_then_replay_from_the_command_line(tmp_path, capsys):
    rec, out = tmp_path / "rec", tmp_path / "replay"
    assert main(["run", "--loop", "ppm", "--seconds", "0.06", "--record", str(rec), "--out", str(tmp_path / "run"),
                 "--no-progress"]) == 0
    assert main(["replay", str(rec), "--out", str(out), "--no-progress"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["replay"]["deterministic"] and s["replay"]["commands_diverged"] == 0
    run = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["frames"] == run["frames"] and s["tracks"] == run["tracks"]
    assert main(["run", "--seconds", "0.06", "--record", str(rec), "--out", str(tmp_path / "run2"), "--no-progress"]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
