"""``foveate events``: inspect and convert event files (streaming, bounded memory)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from foveate.system.errors import EventFormatError
from foveate.tools.argtypes import positive_int

NAME = "events"
HELP = "event files: info, convert, formats"
DESCRIPTION = (
    "Inspect and convert event-camera recordings: Prophesee EVT 3.0/2.0 .raw and DAT, AEDAT4, "
    "DSEC events.h5, DDD17/ESS folders, .npy structured arrays and foveate .fev.h5. Files are streamed "
    "chunk by chunk, so memory stays bounded whatever their size."
)


def _reader_args(p) -> None:
    p.add_argument("--in-format", metavar="FMT", help="input format (default: sniffed from header and name)")
    p.add_argument("--width", type=positive_int, help="sensor width, when the file does not say (or to override it)")
    p.add_argument("--height", type=positive_int, help="sensor height (with --width)")
    p.add_argument("--repair", action="store_true",
                   help="apply documented repairs (drop a truncated tail, events outside the sensor, "
                        "events far out of time order) with a warning instead of failing")


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="events_command", metavar="ACTION", required=True)
    info = sub.add_parser("info", help="format, sensor size, event count, time range and rate of a file")
    info.add_argument("file", type=Path)
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    info.add_argument("--no-progress", action="store_true", help="no progress bar while scanning")
    _reader_args(info)
    conv = sub.add_parser("convert", help="convert between formats (streaming); OUT .npy keeps file order")
    conv.add_argument("input", type=Path, metavar="IN")
    conv.add_argument("output", type=Path, metavar="OUT")
    conv.add_argument("--format", metavar="FMT",
                      help="output format: evt3, evt2, dat, dsec, foveate, ess, npy (default: from OUT's name; .raw → evt3)")
    conv.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    conv.add_argument("--no-progress", action="store_true", help="no progress bar")
    _reader_args(conv)
    sub.add_parser("formats", help="list the formats and what each can do")


def _open(args, path: Path):
    from foveate.system.events import open_events

    if (args.width is None) != (args.height is None):
        raise EventFormatError("give both --width and --height, or neither")
    size = None if args.width is None else (args.width, args.height)
    return open_events(path, args.in_format, sensor_size=size, repair=args.repair)


def _progress(total, desc: str, disable: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="ev", unit_scale=True, disable=disable, leave=False, dynamic_ncols=True)


def info(args) -> int:
    with _open(args, args.file) as r:
        n, t_range = r.n_events, r.t_range
        back_steps = 0
        max_back = 0
        trig = None
        scanned = False
        if n is None or t_range is None or not r.indexed:
            count, t_min, t_max = 0, None, None
            last = None
            with _progress(n, f"scanning {args.file.name}", args.no_progress or args.json) as bar:
                for ev in r.chunks():
                    if len(ev) == 0:
                        continue
                    t = ev["t"]
                    count += len(ev)
                    lo, hi = int(t.min()), int(t.max())
                    t_min = lo if t_min is None else min(t_min, lo)
                    t_max = hi if t_max is None else max(t_max, hi)
                    d = np.diff(t, prepend=t[0] if last is None else last)
                    back = d < 0
                    if back.any():
                        back_steps += int(back.sum())
                        max_back = max(max_back, int(-d[back].min()))
                    last = int(t[-1])
                    bar.update(len(ev))
            n, t_range, scanned = count, (None if t_min is None else (t_min, t_max)), True
            trig = int(len(r.triggers()))
        out = {
            "file": str(args.file),
            "format": r.format,
            "bytes": _size_on_disk(args.file),
            "sensor_size": list(r.sensor_size),
            "sensor_size_source": r.sensor_size_source,
            "events": n,
            "t_first_us": None if t_range is None else t_range[0],
            "t_last_us": None if t_range is None else t_range[1],
        }
        dur = 0 if t_range is None else t_range[1] - t_range[0]
        out["duration_s"] = dur / 1e6
        out["rate_mev_s"] = (n / dur) if dur > 0 else None  # events per µs = M events/s
        if scanned:
            out["triggers"] = trig
            out["backward_time_steps"] = back_steps
            out["largest_backward_step_us"] = max_back
            st = r.stats
            out["decode"] = {k: v for k, v in st.as_dict().items() if k not in ("events", "notes") and v not in (0, -1)}
            if st.notes:
                out["decode"]["notes"] = st.notes
        meta = {k: v for k, v in r.metadata.items() if k != "header_lines"}
        out["metadata"] = json.loads(json.dumps(meta, default=str))
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{out['file']}: {out['format']}, {_human(out['bytes'])}")
    print(f"  sensor     {out['sensor_size'][0]} x {out['sensor_size'][1]} ({out['sensor_size_source']})")
    print(f"  events     {out['events']:,}")
    if t_range is not None:
        print(f"  time       {out['t_first_us']} .. {out['t_last_us']} µs ({out['duration_s']:.6f} s)")
        if out["rate_mev_s"] is not None:
            print(f"  rate       {out['rate_mev_s']:.3f} M events/s (mean)")
    if scanned:
        print(f"  triggers   {out['triggers']}")
        if back_steps:
            print(f"  order      {back_steps} backward time step(s), largest {max_back} µs")
        for k, v in out["decode"].items():
            print(f"  {k:<10} {v}")
    for k, v in out["metadata"].items():
        print(f"  {k}: {v}")
    return 0


def _size_on_disk(p: Path) -> int:
    if p.is_dir():
        return sum(f.stat().st_size for f in p.iterdir() if f.is_file())
    return p.stat().st_size


def _human(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)  # pragma: no cover


def convert(args) -> int:
    from foveate.system.events import create_writer, ordered_chunks, writer_format_for

    src, dst = args.input, args.output
    if src.resolve() == dst.resolve():
        raise EventFormatError(f"{dst}: output is the input file")
    if dst.exists() and not args.force:
        raise EventFormatError(f"{dst}: exists (use --force to overwrite)")
    fmt = args.format or writer_format_for(dst)
    with _open(args, src) as r:
        size = r.sensor_size
        writer = create_writer(dst, size, fmt)
        ok = False
        try:
            # .npy keeps file order; every other writer needs time order (small disorder is sorted in)
            stream = r.chunks() if writer.needs_sorted is False else ordered_chunks(r)
            with _progress(r.n_events, f"{src.name} → {dst.name}", args.no_progress) as bar:
                for ev in stream:
                    writer.write(ev)
                    bar.update(len(ev))
            trig = r.triggers() if r.stats.triggers or r.format in ("foveate",) else None
            if trig is not None and len(trig) and hasattr(writer, "write_triggers"):
                writer.write_triggers(trig)
                trig = None
            writer.close()
            ok = True
        finally:
            if not ok:
                writer.close()
                _remove(dst)
    msg = f"{dst}: {writer.n_written:,} events written as {fmt} ({size[0]}x{size[1]})"
    if trig is not None and len(trig):
        msg += f"; {len(trig)} trigger events not written ({fmt} has no trigger store here)"
    print(msg)
    return 0


def _remove(p: Path) -> None:
    try:
        if p.is_dir():
            for f in p.iterdir():
                f.unlink()
            p.rmdir()
        elif p.exists():
            os.unlink(p)
    except OSError:
        pass


def formats(args) -> int:
    from foveate.system.events import FORMATS

    print(f"{'format':<9} {'read':<5} {'write':<6} {'extensions':<14} description")
    for f in FORMATS.values():
        print(f"{f.name:<9} {'yes':<5} {'yes' if f.writer else 'no':<6} {' '.join(f.extensions):<14} {f.description}")
    return 0


def run(args) -> int:
    return {"info": info, "convert": convert, "formats": formats}[args.events_command](args)
