"""``foveate record verify DIR``: check a recording and say what survives.

A recording (``foveate.system.search.recorder``) is intact when its manifest and geometry
are readable, every index line names a chunk whose size and sha256 match, every chunk
holds the record counts its index line promises, no chunk file lies outside the index and
the run closed it (``closed.json``, with the same chunk count). Anything else is damage:
the report says how many chunks are intact, whether the tail is truncated (crash, kill or
power loss: the run did not close the recording), how many bytes on disk cannot be
trusted, and the clock-time range the intact chunks cover.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from foveate.system.search.recorder import Recording, RecordingError


def _chunk_problem(rec: Recording, entry: dict) -> str | None:
    """Why a checksummed chunk's content does not match its index line (None when it does)."""
    try:
        arrays = rec.load_chunk(entry)
    except RecordingError as exc:
        return str(exc)
    counts = entry["counts"]
    by_stream: dict[str, dict[str, np.ndarray]] = {}
    for key, arr in arrays.items():
        stream, _, field = key.partition(".")
        if not field:
            return f"{rec.path / entry['file']}: array {key!r} is not named <stream>.<field>"
        by_stream.setdefault(stream, {})[field] = arr
    for stream in set(by_stream) | {s for s, n in counts.items() if n}:
        fields = by_stream.get(stream, {})
        n = counts.get(stream, 0)
        if not fields:
            return f"{rec.path / entry['file']}: stream {stream!r}: index promises {n} records, chunk has none"
        for field, arr in fields.items():
            if stream == "events" and field == "events":
                want = int(np.sum(fields["count"])) if "count" in fields else None
            else:
                want = n
            got = arr.shape[0] if arr.ndim else 1
            if want is not None and got != want:
                return (f"{rec.path / entry['file']}: {stream}.{field}: {got} rows, "
                        f"index promises {want}")
    return None


def verify_recording(path: str | Path, deep: bool = True) -> dict:
    """The integrity report of a recording folder (``damaged`` says whether anything is wrong).

    ``deep`` also opens every intact chunk and checks its record counts. Raises
    ``RecordingError`` only when the folder is not a readable recording at all.
    """
    path = Path(path)
    rec = Recording(path, verify=True)
    problems = list(rec.problems)
    chunks = list(rec.chunks)
    if deep:
        for i, entry in enumerate(chunks):
            why = _chunk_problem(rec, entry)
            if why is not None:
                problems.append(f"{why}; the recording ends before it")
                chunks = chunks[:i]
                break
    trusted = {path / c["file"] for c in chunks}
    lost_files, lost_bytes = [], 0
    chunk_dir = path / "chunks"
    if chunk_dir.is_dir():
        for f in sorted(chunk_dir.iterdir()):
            if f not in trusted and f.is_file():
                lost_files.append(f.name)
                lost_bytes += f.stat().st_size
    index_tail = rec.index_bytes_total - rec.index_bytes_trusted
    if lost_files:
        problems.append(f"{chunk_dir}: {len(lost_files)} chunk file(s) not covered by the intact index "
                        f"({', '.join(lost_files[:3])}{', ...' if len(lost_files) > 3 else ''})")
    try:
        rec.geometry_tables()
    except RecordingError as exc:
        problems.append(str(exc))
    closed = rec.closed
    if closed:
        try:
            closed_chunks = json.loads((path / "closed.json").read_bytes()).get("chunks")
        except (OSError, ValueError, AttributeError):
            closed_chunks = None
        if closed_chunks != len(rec.chunks) or len(chunks) != len(rec.chunks):
            problems.append(f"{path / 'closed.json'}: the clean close recorded {closed_chunks!r} chunks, "
                            f"{len(chunks)} are intact")
    else:
        problems.append(f"{path}: not closed cleanly (no closed.json): the run was interrupted; "
                        "what it held after the last intact chunk is lost")
    t0 = rec.t0_ns
    t1 = int(chunks[-1]["t1_ns"]) if chunks else t0
    counts: dict[str, int] = {}
    for c in chunks:
        for k, v in c["counts"].items():
            counts[k] = counts.get(k, 0) + v
    return {
        "path": str(path),
        "rig": rec.manifest["rig"].get("name"),
        "loop": rec.manifest.get("loop"),
        "closed_cleanly": closed,
        "chunks_ok": len(chunks),
        "truncated_tail": (not closed or bool(rec.problems) or len(chunks) < len(rec.chunks) or bool(lost_files)
                           or index_tail > 0),
        "bytes_ok": int(sum(c["bytes"] for c in chunks)),
        "bytes_lost": int(lost_bytes + index_tail),
        "t0_ns": t0,
        "t1_ns": t1,
        "seconds": round((t1 - t0) * 1e-9, 6),
        "counts": counts,
        "problems": problems,
        "damaged": bool(problems),
    }


def format_report(r: dict) -> str:
    """The report as a few lines of text."""
    state = "DAMAGED" if r["damaged"] else "intact"
    lines = [f"{r['path']}: {state}",
             f"  chunks ok     {r['chunks_ok']}  ({r['bytes_ok']} bytes)",
             f"  time range    {r['t0_ns'] * 1e-9:.6f} .. {r['t1_ns'] * 1e-9:.6f} s  ({r['seconds']:.3f} s of rig clock)",
             f"  closed        {'yes' if r['closed_cleanly'] else 'no'}",
             f"  truncated     {'yes' if r['truncated_tail'] else 'no'}",
             f"  bytes lost    {r['bytes_lost']}",
             "  records       " + (", ".join(f"{k} {v}" for k, v in sorted(r["counts"].items())) or "none")]
    lines += [f"  problem: {p}" for p in r["problems"]]
    return "\n".join(lines)
