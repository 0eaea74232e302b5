"""Crash-safe recordings of a search run: append-only chunks with an index.

Format (version 2), one directory::

    recording.json        manifest, written once at the start (atomically): format, version,
                          created, rig (the whole rig config), loop, search settings, chunk_period_s,
                          galvo limits, camera names and sizes
    geometry.npz          the search geometry as tables (TabulatedGeometry), for replays
    chunks/000000.npz     one chunk: every stream's records of one window of clock time
    index.jsonl           one JSON line per completed chunk, appended only after its file is durable:
                          {"chunk", "file", "t0_ns", "t1_ns", "bytes", "sha256", "counts": {stream: n},
                          "check"}; "check" (version 2) is the first 16 hex digits of the SHA-256 of the
                          line's other keys as compact sorted JSON, so a damaged line is never trusted
    closed.json           written by a clean close: totals (absent after a crash)

A chunk is written to ``NNNNNN.npz.tmp``, fsynced, renamed, the directory
fsynced, and only then its index line is appended and fsynced. A reader
trusts the index only: a crash (even SIGKILL) loses at most the chunk being
filled (``chunk_period_s`` of clock time, 0.1 s by default) and a partial last
index line is ignored. Chunks are plain ``numpy.savez`` files (uncompressed:
writing keeps up with the loop); names inside are ``<stream>.<field>``.

Streams (every record has clock timestamps in ns; events in µs as in the project dtype):

| stream | fields |
|---|---|
| ``search`` | ``image`` (N, H, W) u8, ``t_ns`` (mid-exposure), ``ready_ns``, ``seq``, ``exposure_s``, ``cmd_t_ns``, ``cmd`` (N, 2), ``purpose``, ``track_id``, ``state_t_ns``, ``measured`` (N, 2), ``settled``, ``truth`` (JSON of ground-truth boxes, twin only) |
| ``wide`` | ``image`` (N, H, W[, 3]) u8, ``t_ns``, ``ready_ns``, ``seq`` |
| ``events`` | ``events`` (EVENT_DTYPE), ``t_start_us``, ``t_end_us``, ``count``, ``ready_ns`` (one row per packet) |
| ``commands`` | ``t_ns``, ``cmd`` (N, 2), ``purpose`` |
| ``detections`` | ``frame_seq``, ``frame_t_ns``, ``done_ns``, ``cls``, ``score``, ``box`` (N, 4), ``centre`` (N, 2), ``cov`` (N, 2, 2), ``size`` (N, 2), ``z`` (N, 2), ``R`` (N, 2, 2) |
| ``frames_done`` | ``frame_seq``, ``done_ns``, ``n`` (one row per detected frame, also when empty) |
| ``segmentation`` | ``probs`` (N, C, H, W) f32, ``t_ns``, ``done_ns`` |
| ``tracks`` | ``t_ns``, ``id``, ``cls``, ``x`` (N, 4), ``P`` (N, 4, 4), ``confirmed``, ``hits``, ``misses`` (snapshot at each chunk end) |
| ``ppm`` | ``mass`` (N, ny, nx) f32, ``t_ns`` (snapshot at each chunk end) |
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import logging
import os
import queue
import re
import shutil
import threading
from collections import defaultdict
from pathlib import Path

import numpy as np

from foveate.system.errors import FoveateError
from foveate.system.search.scheduler import LoopObserver
from foveate.system.types import EVENT_DTYPE

log = logging.getLogger(__name__)

FORMAT = "foveate-recording"
VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1: index lines without "check"
PURPOSES = ("explore", "revisit", "raster", "random")


class RecordingError(FoveateError):
    """A recording directory is missing, malformed or would be overwritten."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durable(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def recording_root(path: Path) -> Path | None:
    """The recording folder ``path`` is or lies in (it or a parent holds ``recording.json``), else None."""
    p = Path(path).absolute()
    for d in (p, *p.parents):
        if (d / "recording.json").is_file():
            return d
    return None


def check_recording_target(path: Path, force: bool) -> bool:
    """Whether ``path`` may receive a new recording; True when an old recording must be removed first.

    A non-empty folder is refused without ``force``; with ``force`` only a recording is replaced
    (never another folder), and never a folder inside another recording.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RecordingError(f"{path}: exists and is not a folder (a recording is a folder)")
    outer = recording_root(path.parent) if path.parent != path else None
    if outer is not None:
        raise RecordingError(f"{path}: lies inside the recording {outer}; choose a folder outside it")
    if path.exists() and any(path.iterdir()):
        if not force:
            raise RecordingError(f"{path}: exists and is not empty (use --force to overwrite the recording)")
        if not (path / "recording.json").exists():
            raise RecordingError(f"{path}: not a recording; refusing to delete it even with --force")
        return True
    return False


def check_not_in_recording(path: Path, what: str) -> None:
    """Refuse to write other outputs (``what``, e.g. ``--out``) into a recording folder."""
    root = recording_root(path)
    if root is not None:
        raise RecordingError(f"{path}: {what} lies in the recording {root}; a recording is never written "
                             "into after its run: choose another folder")


class _Chunk:
    """Records of one window, by stream and field."""

    def __init__(self, t0_ns: int) -> None:
        self.t0_ns = t0_ns
        self.data: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, stream: str, **fields) -> None:
        d = self.data[stream]
        for k, v in fields.items():
            d[k].append(v)
        self.counts[stream] += 1

    def arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for stream, fields in self.data.items():
            for k, vals in fields.items():
                if stream == "events" and k == "events":
                    out[f"{stream}.{k}"] = np.concatenate(vals) if vals else np.zeros(0, EVENT_DTYPE)
                else:
                    out[f"{stream}.{k}"] = np.asarray(vals) if k != "truth" else np.asarray(vals, dtype=str)
        return out


class Recorder(LoopObserver):
    """Records a running ``SearchLoop``; chunks are written by a background thread (never dropped)."""

    wants_events = True  # the loop reads the event camera even when the map does not use it

    def __init__(self, path: Path, rig_config, force: bool = False, loop: str = "ppm", chunk_period_s: float = 0.1,
                 max_pending: int = 8) -> None:
        self.path = Path(path)
        if check_recording_target(self.path, force):
            shutil.rmtree(self.path)
        self.rig_config = rig_config
        self.loop_kind = loop
        self.chunk_period_ns = int(chunk_period_s * 1e9)
        self.chunks_written = 0
        self._chunk: _Chunk | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self._index = None
        self._thread: threading.Thread | None = None
        self._loop = None
        self._closed = False

    def _begin(self) -> None:
        """Create the folder and start the writer (when the loop starts, so a failed set-up leaves nothing)."""
        (self.path / "chunks").mkdir(parents=True, exist_ok=True)
        self._index = open(self.path / "index.jsonl", "ab")
        # The new entries themselves durable: a power loss must not drop chunks/ or the index file.
        for d in (self.path, self.path.parent):
            _fsync_dir(d)
        self._thread = threading.Thread(target=self._writer, name="recorder", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------- writing
    def _writer(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            n, chunk = item
            try:
                self._write_chunk(n, chunk)
            except BaseException as exc:  # noqa: BLE001 - reported on the loop's next call
                self._error = exc
                log.exception("recorder: writing chunk %d failed", n)

    def _write_chunk(self, n: int, chunk: _Chunk) -> None:
        buf = io.BytesIO()
        np.savez(buf, **chunk.arrays())
        data = buf.getvalue()
        name = f"chunks/{n:06d}.npz"
        _write_durable(self.path / name, data)
        t1 = chunk.t0_ns + self.chunk_period_ns
        line = {"chunk": n, "file": name, "t0_ns": chunk.t0_ns, "t1_ns": t1, "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(), "counts": dict(chunk.counts)}
        line["check"] = index_line_check(line)
        self._index.write((json.dumps(line) + "\n").encode())
        self._index.flush()
        os.fsync(self._index.fileno())
        self.chunks_written += 1

    def _check(self) -> None:
        if self._error is not None:
            raise RecordingError(f"{self.path}: recording failed: {self._error}")

    def _flush(self, t_ns: int, final: bool = False) -> None:
        """Close the current chunk if its window ended (or at the end), hand it to the writer."""
        c = self._chunk
        if c is None:
            return
        if not final and t_ns < c.t0_ns + self.chunk_period_ns:
            return
        self._snapshot(c, t_ns)
        n = self._next_chunk
        self._next_chunk += 1
        self._queue.put((n, c))  # blocks when the writer lags: recordings never drop
        self._chunk = _Chunk(c.t0_ns + self.chunk_period_ns * max(1, (t_ns - c.t0_ns) // self.chunk_period_ns))
        self._check()

    def _snapshot(self, c: _Chunk, t_ns: int) -> None:
        loop = self._loop
        if loop is None:
            return
        for tr in loop.tracker.tracks:
            x, P = tr.predict(t_ns)
            c.add("tracks", t_ns=t_ns, id=tr.id, cls=tr.cls, x=x, P=P, confirmed=tr.confirmed, hits=tr.hits,
                  misses=tr.misses)
        if loop.ppm is not None:
            c.add("ppm", t_ns=t_ns, mass=loop.ppm.mass(t_ns, loop.tracker.tracks, loop.footprint_half))

    # ------------------------------------------------------------ observer
    def on_start(self, loop) -> None:
        self._begin()
        self._loop = loop
        t0 = loop.clock.now_ns()
        manifest = {
            "format": FORMAT, "version": VERSION,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "rig": self.rig_config.model_dump(mode="json"), "rig_source": self.rig_config.source,
            "loop": self.loop_kind, "settings": loop.settings.model_dump(mode="json"),
            "chunk_period_s": self.chunk_period_ns * 1e-9, "t0_ns": t0,
            "start_cmd": list(loop.galvo.commanded_deg), "detector": type(loop.detector).__name__,
            "segmenter": type(loop.segmenter).__name__ if loop.segmenter is not None else None,
            "ppm_source": loop.source,
            "detector_classes": list(getattr(loop.detector, "classes", ())),
            "segmenter_classes": list(loop.segmenter.classes) if loop.segmenter is not None else [],
        }
        manifest["galvo"] = {"name": loop.galvo.name, "limits_deg": [list(a) for a in loop.galvo.limits_deg],
                             "park_deg": list(loop.galvo.park_deg)}
        manifest["cameras"] = {role: {"name": d.name, "width": getattr(d, "width", None), "height": getattr(d, "height", None),
                                      "sensor_size": list(getattr(d, "sensor_size", ())) or None}
                               for role, d in (("search_camera", loop.search_cam), ("wide_camera", loop.wide_cam),
                                               ("wide_events", loop.events_cam)) if d is not None}
        # The geometry as tables, so a replay needs neither the rig's calibration nor the twin.
        from foveate.system.search.geometry import TabulatedGeometry
        from foveate.system.search.ppm import CommandGrid

        grid = loop.ppm.grid if loop.ppm is not None else CommandGrid.cover(loop.galvo.limits_deg, loop.settings.ppm.cell_deg)
        names = [None] + [d.name for d in (loop.wide_cam, loop.events_cam) if d is not None]
        buf = io.BytesIO()
        np.savez(buf, **TabulatedGeometry.freeze(loop.geometry, grid.xs, grid.ys, names))
        _write_durable(self.path / "geometry.npz", buf.getvalue())
        _write_durable(self.path / "recording.json", (json.dumps(manifest, indent=2) + "\n").encode())
        self._next_chunk = 0
        self._chunk = _Chunk(t0)

    def on_tick(self, loop, t_ns: int) -> None:
        self._flush(t_ns)

    def on_wide_frame(self, frame) -> None:
        self._chunk.add("wide", image=frame.image, t_ns=frame.t_ns, ready_ns=self._loop.clock.now_ns(), seq=frame.seq)

    def on_events(self, packet) -> None:
        self._chunk.add("events", events=packet.events, t_start_us=packet.t_start_us, t_end_us=packet.t_end_us,
                        count=len(packet), ready_ns=self._loop.clock.now_ns())

    def on_segmentation(self, t_ns, probs, done_ns) -> None:
        self._chunk.add("segmentation", probs=np.asarray(probs, np.float32), t_ns=t_ns, done_ns=done_ns)

    def on_command(self, t_ns, view) -> None:
        self._chunk.add("commands", t_ns=t_ns, cmd=np.asarray(view.cmd), purpose=PURPOSES.index(view.purpose))

    def on_frame(self, frame, state, view) -> None:
        truth = json.dumps((frame.meta or {}).get("boxes", []), default=float)
        self._chunk.add("search", image=frame.image, t_ns=frame.t_ns, ready_ns=self._loop.clock.now_ns(), seq=frame.seq,
                        exposure_s=frame.exposure_s, cmd_t_ns=self._loop.path[-1][0], cmd=np.asarray(view.cmd),
                        purpose=PURPOSES.index(view.purpose), track_id=view.track_id, state_t_ns=state.t_ns,
                        measured=np.asarray(state.measured_deg), settled=state.settled, truth=truth)

    def on_detections(self, frame, state, view, detections, measurements, update, done_ns) -> None:
        self._chunk.add("frames_done", frame_seq=frame.seq, done_ns=done_ns, n=len(detections))
        # Measurements exist for the detections above the tracker's score threshold, in the same order.
        min_score = self._loop.settings.tracker.min_score if self._loop is not None else 0.0
        it = iter(measurements)
        for d in detections:
            m = next(it, None) if d.score >= min_score else None
            self._chunk.add("detections", frame_seq=frame.seq, frame_t_ns=frame.t_ns, done_ns=done_ns, cls=d.cls,
                            label=d.label, score=d.score, box=np.asarray(d.box_xyxy, float), centre=np.asarray(d.centre_xy, float),
                            cov=np.asarray(d.centre_cov, float), size=np.asarray(d.size_wh, float),
                            size_var=np.asarray(d.size_var, float),
                            z=m.z if m is not None else np.full(2, np.nan), R=m.R if m is not None else np.full((2, 2), np.nan))

    def on_end(self, loop) -> None:
        self._flush(loop.clock.now_ns(), final=True)

    def close(self) -> None:
        """Write what is left and wait for the writer (also after an error in the loop)."""
        if self._closed:
            return
        self._closed = True
        if self._thread is None:  # the loop never started: nothing was written
            return
        if self._chunk is not None and self._loop is not None and any(self._chunk.counts.values()):
            self._flush(self._loop.clock.now_ns(), final=True)
        self._queue.put(None)
        self._thread.join()
        self._index.close()
        if self._error is None:
            _write_durable(self.path / "closed.json", json.dumps({"chunks": self.chunks_written}).encode())
        self._check()


# -------------------------------------------------------------------- reading
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_manifest(m, where: Path) -> None:
    """The manifest keys readers rely on, with their types; ``RecordingError`` naming the first bad one."""
    if not isinstance(m, dict):
        raise RecordingError(f"{where}: expected a JSON object, got {type(m).__name__}")
    if m.get("format") != FORMAT:
        raise RecordingError(f"{where}: format is {m.get('format')!r}, expected {FORMAT!r}")
    if m.get("version") not in READABLE_VERSIONS or isinstance(m.get("version"), bool):
        raise RecordingError(f"{where}: version {m.get('version')!r} (this foveate reads versions "
                             f"{', '.join(map(str, READABLE_VERSIONS))})")
    need = {"t0_ns": (_is_int, "an integer (ns)"),
            "chunk_period_s": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0,
                               "a number > 0 (s)"),
            "rig": (lambda v: isinstance(v, dict), "a mapping (the rig config)"),
            "loop": (lambda v: isinstance(v, str), "a string"),
            "settings": (lambda v: isinstance(v, dict), "a mapping (search settings)"),
            "galvo": (lambda v: isinstance(v, dict), "a mapping"),
            "cameras": (lambda v: isinstance(v, dict), "a mapping")}
    for key, (ok, expected) in need.items():
        if key not in m:
            raise RecordingError(f"{where}: {key}: required key is missing (expected {expected})")
        if not ok(m[key]):
            raise RecordingError(f"{where}: {key}: expected {expected}, got {m[key]!r}"[:300])


def index_line_check(entry: dict) -> str:
    """The ``check`` of an index line: SHA-256 (16 hex digits) of its other keys as compact sorted JSON."""
    body = {k: v for k, v in entry.items() if k != "check"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def _index_entry_problem(e, n: int, prev_t1_ns: int | None, version: int = VERSION) -> str | None:
    """Why index line number ``n`` is not a valid entry for chunk ``n`` (None when it is)."""
    if not isinstance(e, dict):
        return f"expected a JSON object, got {type(e).__name__}"
    if version >= 2 and e.get("check") != index_line_check(e):
        return f"check: {e.get('check')!r} does not match the line (damaged line)"
    if e.get("chunk") != n or not _is_int(e.get("chunk")):
        return f"chunk: expected {n}, got {e.get('chunk')!r}"
    if e.get("file") != f"chunks/{n:06d}.npz":
        return f"file: expected 'chunks/{n:06d}.npz', got {e.get('file')!r}"
    for k in ("t0_ns", "t1_ns", "bytes"):
        if not _is_int(e.get(k)):
            return f"{k}: expected an integer, got {e.get(k)!r}"
    if e["t1_ns"] <= e["t0_ns"]:
        return f"t1_ns {e['t1_ns']} is not after t0_ns {e['t0_ns']}"
    if prev_t1_ns is not None and e["t0_ns"] < prev_t1_ns:
        return f"t0_ns {e['t0_ns']} overlaps the previous chunk (ends at {prev_t1_ns})"
    if not isinstance(e.get("sha256"), str) or not _HEX64.match(e["sha256"]):
        return f"sha256: expected 64 lower-case hex digits, got {e.get('sha256')!r}"
    counts = e.get("counts")
    if not isinstance(counts, dict) or not all(isinstance(k, str) and _is_int(v) and v >= 0 for k, v in counts.items()):
        return f"counts: expected a mapping of stream -> record count, got {counts!r}"
    return None


def _load_npz(f: Path, what: str) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file; ``RecordingError`` naming the file when it is missing or damaged."""
    try:
        data = f.read_bytes()
    except FileNotFoundError:
        raise RecordingError(f"{f}: missing {what}") from None
    except OSError as exc:
        raise RecordingError(f"{f}: cannot read {what}: {exc.strerror}") from None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - zipfile, zlib and numpy raise many types for a damaged file
        why = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RecordingError(f"{f}: unreadable {what}: {why}") from None


class Recording:
    """A recording directory opened for reading; only indexed, intact chunks are trusted.

    Reading stops at the first index line that is partial, malformed or whose chunk is missing
    or fails its size and sha256 check: everything before it is intact (``chunks``), the rest is
    described in ``problems``. ``index_bytes_trusted`` is where the trusted index ends.
    """

    def __init__(self, path: Path, verify: bool = True) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise RecordingError(f"{self.path}: not a recording (not a folder)")
        mf = self.path / "recording.json"
        if not mf.is_file():
            raise RecordingError(f"{self.path}: not a recording (no recording.json)")
        try:
            self.manifest = json.loads(mf.read_bytes())
        except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise RecordingError(f"{mf}: unreadable manifest: {str(exc).splitlines()[0]}") from None
        _check_manifest(self.manifest, mf)
        self.chunks: list[dict] = []
        self.problems: list[str] = []
        idx = self.path / "index.jsonl"
        raw = idx.read_bytes() if idx.is_file() else b""
        self.index_bytes_total = len(raw)
        offset = 0
        prev_t1 = None
        for line in raw.split(b"\n"):
            end = offset + len(line) + 1
            if not line.strip():
                if line:  # blank filler (e.g. spaces): not written by the recorder
                    self.problems.append(f"{idx}: byte {offset}: blank index line ignored with all after it")
                    break
                offset = end
                continue
            complete = end <= len(raw)
            try:
                entry = json.loads(line)
            except ValueError:
                kind = "partial" if not complete else "corrupt"
                self.problems.append(f"{idx}: byte {offset}: {kind} index line ignored with all after it")
                break
            if not complete:
                self.problems.append(f"{idx}: byte {offset}: index line without newline ignored")
                break
            why = _index_entry_problem(entry, len(self.chunks), prev_t1, self.manifest["version"])
            if why is not None:
                self.problems.append(f"{idx}: byte {offset}: malformed index line ({why}); the recording ends before it")
                break
            f = self.path / entry["file"]
            if not f.is_file():
                self.problems.append(f"{f}: indexed chunk missing; the recording ends before it")
                break
            if verify:
                data = f.read_bytes()
                if len(data) != entry["bytes"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
                    self.problems.append(f"{f}: checksum mismatch; the recording ends before it")
                    break
            self.chunks.append(entry)
            prev_t1 = entry["t1_ns"]
            offset = end
        self.index_bytes_trusted = min(offset, len(raw))
        self.closed = (self.path / "closed.json").is_file()

    @property
    def t0_ns(self) -> int:
        return int(self.manifest["t0_ns"])

    @property
    def t1_ns(self) -> int:
        return int(self.chunks[-1]["t1_ns"]) if self.chunks else self.t0_ns

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for c in self.chunks:
            for k, v in c["counts"].items():
                out[k] += v
        return dict(out)

    def load_chunk(self, entry: dict) -> dict[str, np.ndarray]:
        return _load_npz(self.path / entry["file"], "chunk")

    def geometry_tables(self) -> dict[str, np.ndarray]:
        """The search geometry tables (``geometry.npz``), for ``TabulatedGeometry.thaw``."""
        return _load_npz(self.path / "geometry.npz", "geometry tables (a replay needs them)")

    def stream(self, name: str) -> dict[str, np.ndarray]:
        """Every field of one stream, concatenated over the chunks (empty dict when never recorded)."""
        parts: dict[str, list] = defaultdict(list)
        for c in self.chunks:
            if not c["counts"].get(name):
                continue
            for k, v in self.load_chunk(c).items():
                s, _, field = k.partition(".")
                if s == name:
                    parts[field].append(v)
        try:
            return {k: np.concatenate(v) for k, v in parts.items()}
        except ValueError as exc:
            raise RecordingError(f"{self.path}: stream {name!r}: chunks do not fit together: {exc}") from None

    def summary(self) -> dict:
        rig = self.manifest["rig"]
        return {"path": str(self.path), "chunks": len(self.chunks), "closed_cleanly": self.closed,
                "seconds": round((self.t1_ns - self.t0_ns) * 1e-9, 6), "counts": self.counts(),
                "problems": self.problems, "loop": self.manifest.get("loop"), "rig": rig.get("name")}
