"""Event file decoding: our readers against the fastest independent reader of each format.

All readers decode the **same files** in the same run: the real Gen4.1
recording (``../shared/data/events/real/evt3_sample.raw``, when present; a
synthetic stream otherwise) tiled in time to 1.5 M events, written by
independent tools (faery for EVT 3.0/2.0 and AEDAT4-LZ4, expelliarmus for
DAT, h5py + hdf5plugin for DSEC), so neither side reads its own output.
Throughput is events per second of a full decode into arrays, file in page
cache, best of several runs.

With ``FOVEATE_BENCH_CONVERT_GB`` (default 10; ``--quick``: 0.25) it also
generates an EVT 3.0 file of that size, runs ``foveate events convert`` to
EVT 2.0 in a subprocess and reports wall time and peak RSS (bounded-memory
promise: ≤ 256 MB whatever the size). ``FOVEATE_BENCH_EVENT_FORMATS`` (comma
separated, e.g. ``dsec``) limits the decode rows to those formats.

For DSEC two more figures are reported: our reader on one thread (it decodes
on two by default) and h5py producing what our reader returns (one record
array with absolute int64 t); the goal ratio is against the fastest reference,
plain h5py stopping at the four stored arrays.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from foveate.tools.bench.common import Row

NAME = "event-io"
DESCRIPTION = "event file decode throughput vs independent readers; bounded-memory convert of a 10 GB-scale file"

REAL_EVT3 = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "events" / "real" / "evt3_sample.raw"
N_EVENTS = 1_500_000


def _source_events(n: int) -> tuple[np.ndarray, tuple[int, int], str]:
    """Real events tiled in time to ``n`` events (or a synthetic stream when the recording is absent)."""
    from foveate.system.events import open_events
    from foveate.system.types import EVENT_DTYPE

    if REAL_EVT3.exists():
        with open_events(REAL_EVT3) as r:
            base, size = r.read_all(), r.sensor_size
        what = "real Gen4.1 recording tiled"
    else:
        rng = np.random.default_rng(0)
        m = 200_000
        base = np.empty(m, EVENT_DTYPE)
        base["t"] = np.sort(rng.integers(0, 10_000, m))
        base["x"] = rng.integers(0, 1280, m)
        base["y"] = rng.integers(0, 720, m)
        base["p"] = rng.integers(0, 2, m)
        size, what = (1280, 720), "synthetic"
    span = int(base["t"][-1] - base["t"][0]) + 1000
    reps = -(-n // len(base))
    ev = np.concatenate([base] * reps)[:n]
    ev["t"] = ev["t"] - base["t"][0] + np.repeat(np.arange(reps, dtype=np.int64) * span, len(base))[:n]
    return ev, size, what


def _faery_array(ev: np.ndarray):
    import faery

    fa = np.zeros(len(ev), faery.EVENTS_DTYPE)
    fa["t"], fa["x"], fa["y"], fa["on"] = ev["t"], ev["x"], ev["y"], ev["p"] == 1
    return fa


def _write_files(d: Path, ev: np.ndarray, size: tuple[int, int]) -> dict[str, Path]:
    """The benchmark files, each written by an independent tool when it is installed (else by ours)."""
    from foveate.system.events import write_events

    files: dict[str, Path] = {}
    try:
        import faery

        for fmt, name in (("evt3", "evt3.raw"), ("evt2", "evt2.raw")):
            faery.events_stream_from_array(_faery_array(ev), size).to_file(d / name, version=fmt, zero_t0=False)
            files[fmt] = d / name
        faery.events_stream_from_array(_faery_array(ev), size).to_file(d / "lz4.aedat4")
        files["aedat4"] = d / "lz4.aedat4"
    except ImportError:
        for fmt, name in (("evt3", "evt3.raw"), ("evt2", "evt2.raw")):
            files[fmt] = write_events(d / name, ev, size, format=fmt)
    try:
        import expelliarmus

        arr = np.zeros(len(ev), [("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")])
        for k in "txyp":
            arr[k] = ev[k]
        expelliarmus.Wizard(encoding="dat").save(str(d / "cd.dat"), arr)
        files["dat"] = d / "cd.dat"
    except ImportError:
        files["dat"] = write_events(d / "cd.dat", ev, size, format="dat")
    import h5py
    import hdf5plugin

    with h5py.File(d / "events.h5", "w") as f:
        comp = hdf5plugin.Blosc(cname="zstd", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE)
        for k, dt in (("x", "<u2"), ("y", "<u2"), ("t", "<u4"), ("p", "u1")):
            f.create_dataset(f"events/{k}", data=ev[k].astype(dt), chunks=(1 << 16,), **comp)
        f.create_dataset("t_offset", data=np.int64(0))
        ms = np.searchsorted(ev["t"], np.arange(int(ev["t"][-1]) // 1000 + 1) * 1000)
        f.create_dataset("ms_to_idx", data=ms.astype("<u8"))
    files["dsec"] = d / "events.h5"
    return files


def _references(files: dict[str, Path]) -> dict[str, list[tuple[str, Callable[[], int]]]]:
    refs: dict[str, list[tuple[str, Callable[[], int]]]] = {k: [] for k in files}

    def add(fmt, name, make):
        try:
            fn = make()
        except ImportError:
            return
        refs[fmt].append((name, fn))

    def expel(enc):
        import expelliarmus

        w = expelliarmus.Wizard(encoding=enc)
        return lambda: len(w.read(str(files[enc])))

    def evt3_ref():
        import evt3

        return lambda: len(evt3.decode_file(str(files["evt3"])).x)

    def aedat_ref():
        import aedat

        def run():
            n = 0
            parts = []
            for packet in aedat.Decoder(str(files["aedat4"])):
                if "events" in packet:
                    parts.append(packet["events"])
                    n += len(packet["events"])
            np.concatenate(parts)
            return n

        return run

    def h5_ref():
        import h5py
        import hdf5plugin  # noqa: F401

        def run():
            with h5py.File(files["dsec"], "r") as f:
                g = f["events"]
                x, y, t, p = g["x"][:], g["y"][:], g["t"][:], g["p"][:]
            return len(t)

        return run

    def h5_records_ref():
        """h5py producing what our reader returns: one record array, t as absolute int64 µs."""
        import h5py
        import hdf5plugin  # noqa: F401

        from foveate.system.types import EVENT_DTYPE

        def run():
            with h5py.File(files["dsec"], "r") as f:
                g = f["events"]
                out = np.empty(g["t"].shape[0], EVENT_DTYPE)
                for k in ("x", "y", "t", "p"):
                    out[k] = g[k][:]
                out["t"] += int(f["t_offset"][()])
            return len(out)

        return run

    add("evt2", "expelliarmus", lambda: expel("evt2"))
    add("evt3", "evt3", evt3_ref)
    add("dat", "expelliarmus", lambda: expel("dat"))
    add("aedat4", "aedat", aedat_ref)
    add("dsec", "h5py", h5_ref)
    add("dsec", "h5py to records", h5_records_ref)
    return refs


_CONVERT = (
    "import argparse, sys; from foveate.tools.commands import events; "
    "p = argparse.ArgumentParser(); events.add_arguments(p); rc = events.run(p.parse_args(sys.argv[1:])); "
    "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM'))); sys.exit(rc)"
)


def _convert_once(src: Path, dst: Path) -> tuple[float, float]:
    """Run ``events convert SRC DST --format evt2`` in a fresh process: (wall s, peak RSS MB)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CONVERT, "convert", str(src), str(dst), "--format", "evt2",
                           "--no-progress", "--force"], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"convert failed: {proc.stderr.strip()}")
    return wall, int(proc.stdout.strip().splitlines()[-1]) / 1024


def _convert_rows(gb: float) -> list[Row]:
    """Generate EVT 3.0 files of ``gb``/10 and ``gb`` GB, convert each to EVT 2.0; wall time and peak RSS.

    The command runs as the ``events`` command module in a fresh process (the full ``foveate``
    parser also imports other commands' dependencies); peak RSS is the process's VmHWM (``ru_maxrss``
    would include the pages of the forking parent).
    """
    from foveate.system.events import create_writer

    ev, size, _ = _source_events(N_EVENTS)
    rows = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("FOVEATE_BENCH_TMP")) as d:
        src, dst = Path(d) / "big.raw", Path(d) / "big_evt2.raw"
        span = int(ev["t"][-1]) + 1000
        k = 0
        n_small = 0
        with create_writer(src, size, format="evt3") as w:
            for target_gb in (gb / 10, gb):
                while src.stat().st_size < target_gb * 1e9:
                    block = ev.copy()
                    block["t"] += k * span
                    w.write(block)
                    w._f.flush()
                    k += 1
                if not n_small:  # a copy at a tenth of the size: same peak RSS expected
                    n_small = k * len(ev)
                    shutil.copyfile(src, Path(d) / "small.raw")
        wall_s, peak_s = _convert_once(Path(d) / "small.raw", dst)
        os.unlink(Path(d) / "small.raw")
        wall, peak = _convert_once(src, dst)
        n_events = k * len(ev)
        size_gb = src.stat().st_size / 1e9
        rows.append(Row(NAME, f"convert {size_gb / 10:.1f} GB EVT3 ({n_small / 1e6:.0f} M events) to EVT2: peak RSS",
                        round(peak_s, 1), "MB", goal="<= 256 MB"))
        rows.append(Row(NAME, f"convert {size_gb:.1f} GB EVT3 ({n_events / 1e6:.0f} M events) to EVT2: peak RSS",
                        round(peak, 1), "MB", baseline=f"{peak_s:.1f} MB at 1/10 the size", ratio=peak / peak_s,
                        goal="<= 256 MB whatever the size"))
        rows.append(Row(NAME, f"convert {size_gb:.1f} GB EVT3 to EVT2: throughput", round(n_events / wall / 1e6, 1),
                        "M events/s", baseline=f"wall {wall:.0f} s"))
    return rows


def run(quick: bool = False) -> list[Row]:
    from foveate.system.events import open_events

    repeats = 2 if quick else 15
    ev, size, what = _source_events(200_000 if quick else N_EVENTS)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as d:
        files = _write_files(Path(d), ev, size)
        refs = _references(files)
        only = [f for f in os.environ.get("FOVEATE_BENCH_EVENT_FORMATS", "").split(",") if f]
        for fmt, path in files.items():
            if only and fmt not in only:
                continue
            # interleaved runs, best of each: a busy shared machine slows both sides alike
            def ours(p=path, f=fmt):
                with open_events(p, format=f, sensor_size=size) as r:  # closed: no HDF5 chunk cache left warm
                    return len(r.read_all())

            cands = [("ours", ours)]
            if fmt == "dsec":  # our DSEC reader decodes on 2 threads by default: also show it on one
                def ours_1(p=path, f=fmt):
                    with open_events(p, format=f, sensor_size=size, threads=1) as r:
                        return len(r.read_all())

                cands.append(("ours, 1 thread", ours_1))
            cands += refs.get(fmt, [])
            for _, fn in cands:
                fn()  # warm: page cache, numba cache load
            best_s = {name: float("inf") for name, _ in cands}
            n = len(ev)
            for _ in range(repeats):
                for name, fn in cands:
                    t0 = time.perf_counter()
                    n = fn()
                    best_s[name] = min(best_s[name], time.perf_counter() - t0)
            ref = [(n / best_s[name] / 1e6, name) for name, _ in cands if not name.startswith("ours")]
            best, best_name = max(ref) if ref else (None, "")
            others = ", ".join(f"{nm} {r:.1f}" for r, nm in ref if nm != best_name)
            for name, _ in cands:
                if not name.startswith("ours"):
                    continue
                ours = n / best_s[name] / 1e6
                label = "" if name == "ours" else f", {name[6:]}"
                rows.append(Row(
                    NAME, f"decode {fmt}{label} ({len(ev) / 1e6:.1f} M events, {what})", round(ours, 1), "M events/s",
                    baseline="" if best is None else f"{best_name} {best:.1f}" + (f" (also: {others})" if others else ""),
                    ratio=None if not best else ours / best,
                    goal=">= 1.0x the fastest independent reader",
                ))
    gb = float(os.environ.get("FOVEATE_BENCH_CONVERT_GB", "0.25" if quick else "10"))
    if gb > 0:
        rows.extend(_convert_rows(gb))
    return rows
