"""``foveate replay SOURCE``: replay a recording through the models.

SOURCE an event file (any format of ``foveate.system.events``): SLTNet segments it window
by window (label PNGs, overlay PNGs, windows.csv, summary.json in --out). SOURCE a run
recording folder (``foveate run --record DIR``): the search loop is re-run on it
(``foveate.system.search.replay``), writing summary.json and pictures in --out.
"""

from __future__ import annotations

import json
from pathlib import Path

from foveate.system.errors import ConfigError
from foveate.tools.argtypes import nonnegative_int, positive_float, positive_int

NAME = "replay"
HELP = "segment an event file with SLTNet, or re-run the search loop on a run recording"
DESCRIPTION = (
    "Replay a recording. For an event file (EVT2/EVT3 .raw, .dat, .aedat4, DSEC .h5, .npy, .fev.h5) SLTNet "
    "segments each --window-ms window: the sensor's voxel grid is resized (bilinear) to the model input, "
    "after dropping --crop-bottom rows, and the class probabilities are resized back to the sensor. "
    "Writes labels/ and overlay/ PNG sequences, windows.csv and summary.json (windows/s, class histogram). "
    "Without --weights the shipped twin weights are used; the command refuses when there are none."
)


def add_arguments(p) -> None:
    p.add_argument("source", type=Path, metavar="SOURCE", help="event file, or a run recording folder (foveate run --record)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR", help="output folder (default out/replay/<name>)")
    p.add_argument("--weights", type=Path, default=None, help="SLTNet checkpoint .pt or .onnx (default: shipped)")
    p.add_argument("--runtime", default="onnxruntime", choices=["onnxruntime", "torch"])
    p.add_argument("--window-ms", type=positive_float, default=50.0, help="window length (default 50 ms, as DDD17)")
    p.add_argument("--crop-bottom", type=nonnegative_int, default=0, metavar="ROWS", help="sensor rows to drop at the bottom")
    p.add_argument("--max-windows", type=positive_int, default=None, metavar="N", help="stop after N windows")
    p.add_argument("--format", default=None, help="event format (default: sniffed)")
    p.add_argument("--no-images", action="store_true", help="skip the overlay PNGs")
    p.add_argument("--threads", type=positive_int, default=2)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--models", choices=("recorded", "rig"), default="recorded",
                   help="run recording: replay the recorded detections/segmentations (default, deterministic) "
                        "or run the recording's rig models on the recorded images")


def run(args) -> int:
    from foveate.system.search.recorder import check_not_in_recording

    src: Path = args.source
    if args.out is not None:
        check_not_in_recording(args.out, "--out")
    if src.is_dir():
        return _replay_folder(args)
    if not src.is_file():
        raise ConfigError(f"{src}: no such file or folder")
    return _replay_event_file(args)


def _replay_folder(args) -> int:
    """A run recording (``foveate run --record DIR``): re-run the search loop on it (docs/search.md)."""
    if not (args.source / "recording.json").is_file():
        raise ConfigError(f"{args.source}: a folder but not a run recording (no recording.json)")
    from foveate.system.search.recorder import check_not_in_recording
    from foveate.system.search.replay import replay
    from foveate.system.search.report import write_outputs

    loop, report = replay(args.source, models=args.models, progress=not args.no_progress)
    out = args.out or Path("out") / "replay" / args.source.name
    check_not_in_recording(out, "--out")
    summary, pictures = write_outputs(loop, out, extra={"replay": report})
    print(json.dumps(report, indent=1))
    print(f"wrote {out}/summary.json")
    for p in pictures:
        print(f"wrote {p}")
    return 0


def _replay_event_file(args) -> int:
    from foveate.models.sltnet.replay import replay_events
    from foveate.models.sltnet.segmenter import SLTNetSegmenter
    from foveate.system.events import open_events

    if args.window_ms <= 0:
        raise ConfigError(f"--window-ms must be > 0, got {args.window_ms}")
    segmenter = SLTNetSegmenter(args.weights, args.runtime, args.crop_bottom, args.threads)
    out = args.out or Path("out") / "replay" / args.source.name.split(".")[0]
    with open_events(args.source, args.format) as reader:
        summary = replay_events(reader, out, segmenter, int(round(args.window_ms * 1000)), args.max_windows,
                                not args.no_images, not args.no_progress, str(args.source))
    print(json.dumps({k: summary[k] for k in ("windows", "events", "windows_per_s", "class_fraction")}, indent=1))
    print(f"wrote {out}/summary.json")
    return 0
