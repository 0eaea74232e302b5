"""``foveate calibrate``: capture calibration images and fit camera, galvo, event and wide-map calibrations."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from foveate.system.errors import FoveateError

NAME = "calibrate"
HELP = "calibrate cameras and galvos: capture, galvo, check, intrinsics, wide-map, events"
DESCRIPTION = (
    "Calibration procedures. Typical galvo session: 'capture' (drives the galvo, saves images and captures.csv), "
    "'galvo DIR --out calib.yaml' (fits the two-mirror model, writes residual and geometry pictures), then "
    "'check calib.yaml OTHER_DIR' on a second capture. See docs/calibration.md."
)


def _grid(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise argparse.ArgumentTypeError(f"expected COLSxROWS such as 6x5, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="calib_command", metavar="STEP")

    c = sub.add_parser("capture", help="drive the rig and save a capture directory (board placed by you or by the twin)",
                       description="Capture board images for a calibration. On a live rig you are asked to move the board "
                       "between placements; on the simulated rig the twin places it.")
    c.add_argument("--config", metavar="RIG", help="rig YAML file (default: the embedded simulated rig)")
    c.add_argument("--out", type=Path, required=True, help="new capture directory")
    c.add_argument("--what", choices=("galvo", "intrinsics", "wide-map"), default="galvo",
                   help="what to capture for (default: galvo)")
    c.add_argument("--camera", metavar="ROLE", default=None, help="camera role (default: search_camera for galvo, "
                   "wide_camera for intrinsics)")
    c.add_argument("--galvo", metavar="ROLE", default="search_galvo", help="galvo role (default: search_galvo)")
    c.add_argument("--intrinsics", type=Path, metavar="FILE", help="known intrinsics (camera.yaml or a camera calibration)")
    c.add_argument("--board", type=_grid, metavar="COLSxROWS", help="inner corners (default: sized for the view)")
    c.add_argument("--square-mm", type=float, help="square size in mm (with --board)")
    c.add_argument("--grid", type=_grid, default=(6, 5), metavar="NXxNY", help="placements over the mirror range (default 6x5)")
    c.add_argument("--local", type=int, default=3, help="commands per axis at each placement (default 3)")
    c.add_argument("--step-deg", type=float, help="local command step, mechanical deg (default: from the field of view)")
    c.add_argument("--frames", type=int, default=4, metavar="N",
                   help="frames per galvo command, each after its own random dwell; the fit averages them (default 4). "
                   "A galvo that records its position also gives each frame's measured angles at mid-exposure")
    c.add_argument("--views", type=int, default=20, help="board poses for --what intrinsics (default 20)")
    c.add_argument("--seed", type=int, default=0, help="seed of the placement tilts (default 0)")
    c.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    g = sub.add_parser("galvo", help="fit the galvo-camera model to a capture directory",
                       description="Detect corners, solve per-view poses, initialise the mirror axes from pose changes "
                       "and refine everything jointly. Writes the calibration YAML plus NAME_residuals.png and "
                       "NAME_geometry.png next to it.")
    g.add_argument("captures", type=Path, metavar="DIR", help="capture directory (captures.csv, board.yaml[, camera.yaml])")
    g.add_argument("--out", type=Path, required=True, help="calibration file to write (YAML)")
    g.add_argument("--refine-intrinsics", action="store_true",
                   help="refine camera.yaml's intrinsics too (without camera.yaml they are always fitted)")
    g.add_argument("--allow-missing", action="store_true", help="skip images where the board is not found")
    g.add_argument("--json", action="store_true", help="print the summary as JSON")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    k = sub.add_parser("check", help="reprojection RMS of a galvo calibration on (other) captures",
                       description="Holds the calibration fixed and solves one board pose per pose group, so the "
                       "mirror model alone must explain how each board moves across commands.")
    k.add_argument("calibration", type=Path, metavar="CALIB", help="galvo calibration file")
    k.add_argument("captures", type=Path, metavar="DIR", help="capture directory")
    k.add_argument("--json", action="store_true", help='print {"rms_px": ..., "views": ...} as JSON')
    k.add_argument("--allow-missing", action="store_true", help="skip images where the board is not found")
    k.add_argument("--plot", type=Path, metavar="PNG", help="also write a residual plot")
    k.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    i = sub.add_parser("intrinsics", help="camera intrinsics from checkerboard images, with coverage guidance",
                       description="Zhang's method (OpenCV) on a capture directory; reports per-view error and which "
                       "parts of the image and which tilts are missing.")
    i.add_argument("captures", type=Path, metavar="DIR", help="capture directory (captures.csv with an image column)")
    i.add_argument("--out", type=Path, required=True, help="camera calibration file to write (YAML)")
    i.add_argument("--fix-k3", action=argparse.BooleanOptionalAction, default=True, help="keep k3 = 0 (default)")
    i.add_argument("--allow-missing", action="store_true", help="skip images where the board is not found")
    i.add_argument("--json", action="store_true", help="print the summary as JSON")

    w = sub.add_parser("wide-map", help="map galvo commands to wide-camera pixels and back",
                       description="For each command, registers the search image in the wide image; fits a smooth "
                       "polynomial map and its inverse.")
    w.add_argument("--config", metavar="RIG", help="rig YAML file (default: the embedded simulated rig)")
    w.add_argument("--out", type=Path, required=True, help="wide-map calibration file to write (YAML)")
    w.add_argument("--grid", type=_grid, default=(13, 9), metavar="NXxNY", help="command grid (default 13x9)")
    w.add_argument("--degree", type=int, default=3, help="polynomial degree (default 3)")
    w.add_argument("--json", action="store_true", help="print the summary as JSON")

    e = sub.add_parser("events", help="event camera intrinsics and alignment to the wide frame camera",
                       description="Shows a blinking board to both cameras, reconstructs frames from the events, "
                       "calibrates the event camera and the extrinsics to the frame camera.")
    e.add_argument("--config", metavar="RIG", help="rig YAML file (default: the embedded simulated rig)")
    e.add_argument("--out", type=Path, required=True, help="alignment calibration file to write (YAML)")
    e.add_argument("--views", type=int, default=15, help="board poses (default 15)")
    e.add_argument("--depth-mm", type=float, default=3000.0, help="depth of the pixel-to-pixel map (default 3000)")
    e.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(_parser=p)


def run(args) -> int:
    cmd = getattr(args, "calib_command", None)
    if cmd is None:
        args._parser.print_help()
        return 0
    return {"capture": _capture, "galvo": _galvo, "check": _check, "intrinsics": _intrinsics,
            "wide-map": _wide_map, "events": _events}[cmd](args)


def _ask(message: str) -> str:
    if not sys.stdin.isatty():
        raise FoveateError("a live capture needs a terminal: the operator moves the board between placements")
    return input(message)


def _capture(args) -> int:
    from foveate.calibration.board import BoardSpec
    from foveate.calibration.capture_set import load_camera
    from foveate.system.rig import Rig

    intr = load_camera(args.intrinsics) if args.intrinsics else None
    board = None
    if args.board:
        if not args.square_mm:
            raise FoveateError("--board needs --square-mm")
        board = BoardSpec(args.board[0], args.board[1], args.square_mm)
    rig = Rig.from_file(args.config)
    with rig:
        if args.what == "galvo":
            from foveate.calibration.capture import capture_galvo

            s = capture_galvo(rig, args.out, board, camera_role=args.camera or "search_camera", galvo_role=args.galvo,
                              intrinsics=intr, grid=args.grid, local=args.local, step_deg=args.step_deg, seed=args.seed,
                              ask=_ask, progress=not args.no_progress, frames=args.frames)
        elif args.what == "intrinsics":
            from foveate.calibration.intrinsics import capture_intrinsics

            s = capture_intrinsics(rig, args.out, board, camera_role=args.camera or "wide_camera", views=args.views,
                                   seed=args.seed, ask=_ask, progress=not args.no_progress)
        else:
            raise FoveateError("wide-map captures are taken by 'foveate calibrate wide-map' directly")
    print(f"wrote {s.images} images from {s.placements} placements to {s.out}")
    if s.skipped:
        print(f"skipped placements: {', '.join(s.skipped)}")
    return 0


def _galvo(args) -> int:
    from foveate.calibration.galvo_procedure import calibrate_galvo_dir

    r = calibrate_galvo_dir(args.captures, args.out, allow_missing=args.allow_missing,
                            refine_intrinsics=args.refine_intrinsics, progress=not args.no_progress)
    fit = r.fit
    summary = {**fit.stats(), "out": str(r.out), "pictures": [str(p) for p in r.pictures],
               "not_determined": fit.not_determined, "weakly_determined": fit.weakly_determined, "notes": fit.notes}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    g = fit.model
    print(f"galvo calibration: RMS {fit.rms_px:.3f} px (median {fit.median_px:.3f}, max {fit.max_px:.3f}) over "
          f"{len(fit.views)} views of {len(fit.board_poses)} poses")
    for i, m in ((1, g.mirror1), (2, g.mirror2)):
        s = fit.sigma
        print(f"  mirror {i}: gain {m.gain:.5f} (+-{s.get(f'mirror{i}.gain', float('nan')):.1e}), axis "
              f"[{', '.join(f'{v:+.4f}' for v in m.axis_dir)}], point [{', '.join(f'{v:+.2f}' for v in m.axis_point)}] mm, "
              f"surface offset {m.surface_offset_mm:+.3f} mm")
    worst = sorted(fit.views, key=lambda v: -v.rms_px)[:5]
    print("  worst views: " + ", ".join(f"{v.name} {v.rms_px:.3f} px" for v in worst))
    print("  not determined by the data:")
    for t in fit.not_determined:
        print(f"    - {t}")
    if fit.weakly_determined:
        print("  weakly determined: " + "; ".join(fit.weakly_determined))
    for n in fit.notes:
        print(f"  note: {n}")
    print(f"wrote {r.out}")
    for p in r.pictures:
        print(f"wrote {p}")
    return 0


def _check(args) -> int:
    from foveate.calibration.galvo_procedure import check_galvo_dir

    fit = check_galvo_dir(args.calibration, args.captures, allow_missing=args.allow_missing, progress=not args.no_progress)
    if args.plot:
        from foveate.calibration.plots import residual_plot

        residual_plot(fit.views, (fit.model.camera.width, fit.model.camera.height), args.plot,
                      f"check of {args.calibration.name} on {args.captures}: RMS {fit.rms_px:.3f} px")
    if args.json:
        print(json.dumps({"rms_px": round(fit.rms_px, 5), "views": len(fit.views), "poses": len(fit.board_poses),
                          "median_px": round(fit.median_px, 5), "max_px": round(fit.max_px, 5)}))
        return 0
    print(f"check: RMS {fit.rms_px:.3f} px (median {fit.median_px:.3f}, max {fit.max_px:.3f}) over {len(fit.views)} "
          f"views of {len(fit.board_poses)} poses, calibration held fixed")
    worst = sorted(fit.views, key=lambda v: -v.rms_px)[:5]
    print("  worst views: " + ", ".join(f"{v.name} {v.rms_px:.3f} px" for v in worst))
    return 0


def _intrinsics(args) -> int:
    from foveate.calibration.intrinsics import calibrate_intrinsics_dir

    r = calibrate_intrinsics_dir(args.captures, args.out, fix_k3=args.fix_k3, allow_missing=args.allow_missing)
    if args.json:
        print(json.dumps(r.summary(), indent=2))
        return 0
    print(r.text())
    return 0


def _wide_map(args) -> int:
    from foveate.calibration.wide_map import calibrate_wide_map_rig
    from foveate.system.rig import Rig

    rig = Rig.from_file(args.config)
    with rig:
        r = calibrate_wide_map_rig(rig, args.out, grid=args.grid, degree=args.degree)
    print(json.dumps(r, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in r.items()))
    return 0


def _events(args) -> int:
    from foveate.calibration.event_alignment import calibrate_events_rig
    from foveate.system.rig import Rig

    rig = Rig.from_file(args.config)
    with rig:
        r = calibrate_events_rig(rig, args.out, views=args.views, depth_mm=args.depth_mm)
    print(json.dumps(r, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in r.items()))
    return 0
