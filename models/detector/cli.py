"""Arguments and entry points of ``foveate train detector`` and ``foveate eval detector``.

Kept here (light imports only at module level) so ``foveate.tools.commands.train`` /
``eval`` only dispatch to it.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from foveate.models.detector.data import DEFAULT_CACHE

TRAIN_DESCRIPTION = (
    "Train the search-camera detector on digital-twin views: generates (and caches under .cache/detector) "
    "three disjoint splits, trains with a Gaussian NLL on centre and size, fits the variance scale on the "
    "calib split, evaluates on the test split with PyTorch and onnxruntime, and writes detector.pt, "
    "detector.onnx, detector.card.json and reliability plots to --out. --ship copies them to models/weights/."
)
EVAL_DESCRIPTION = (
    "Evaluate detector weights on the held-out twin views their card names: mAP@0.5, mAP@0.5:0.95, "
    "coverage of the true centres by the predicted 1-sigma/2-sigma ellipses, reliability plot (PNG)."
)


def add_train_arguments(p) -> None:
    from foveate.models.detector.config import INPUT_NORMS, DetectorConfig
    from foveate.models.detector.pipeline import DataPlan
    from foveate.models.detector.train import TrainSettings

    d, t = DataPlan(), TrainSettings()
    p.add_argument("--out", type=Path, default=Path("out/train/detector"), metavar="DIR",
                   help="checkpoints and results (default out/train/detector)")
    p.add_argument("--epochs", type=int, default=t.epochs, help=f"epochs (default {t.epochs})")
    p.add_argument("--batch-size", type=int, default=t.batch_size, help=f"batch size (default {t.batch_size})")
    p.add_argument("--lr", type=float, default=t.lr, help=f"peak learning rate, cosine schedule (default {t.lr})")
    p.add_argument("--seed", type=int, default=t.seed, help=f"training seed: init, shuffling, augmentation (default {t.seed})")
    p.add_argument("--threads", type=int, default=t.threads, help=f"torch CPU threads (default {t.threads})")
    p.add_argument("--device", default=t.device, help="torch device to train on: cpu (default), cuda, cuda:N")
    p.add_argument("--data-seed", type=int, default=d.data_seed, help="offset of the twin world seeds of every split (default 0)")
    p.add_argument("--train-views", type=int, default=d.train_views, metavar="N", help=f"default {d.train_views}")
    p.add_argument("--calib-views", type=int, default=d.calib_views, metavar="N", help=f"default {d.calib_views}")
    p.add_argument("--test-views", type=int, default=d.test_views, metavar="N", help=f"default {d.test_views}")
    p.add_argument("--input-size", type=int, default=256, metavar="PX", help="square input size, multiple of 32 (default 256)")
    c = DetectorConfig()
    p.add_argument("--widths", default=",".join(map(str, c.widths)), metavar="C1,...,C5",
                   help=f"channels of the five backbone stages (default {','.join(map(str, c.widths))})")
    p.add_argument("--neck", type=int, default=c.neck, metavar="C", help=f"channels of the stride-8 map (default {c.neck})")
    p.add_argument("--head", type=int, default=c.head, metavar="C", help=f"channels of the heads' 3x3 convs (default {c.head})")
    p.add_argument("--input-norm", choices=INPUT_NORMS, default=DetectorConfig.input_norm,
                   help="first step of the network: standardize each view's grey levels, or none (default)")
    p.add_argument("--init", type=Path, default=None, metavar="FILE",
                   help="detector checkpoint (.pt) to start from instead of a random init; same network shape")
    p.add_argument("--teacher", type=Path, action="append", default=[], metavar="FILE",
                   help="detector checkpoint (.pt), usually a wider one, whose heatmaps on the training views are "
                        "distilled into this network (any shape, same classes and grid); repeat it to distil the "
                        "mean of several (an ensemble)")
    p.add_argument("--teacher-mirror", action="store_true",
                   help="average each teacher's heatmaps with its heatmaps of the mirrored view (test-time "
                        "augmentation of the teacher)")
    p.add_argument("--kd-weight", type=float, default=t.kd_weight, metavar="W",
                   help=f"weight of the distillation loss with --teacher (default {t.kd_weight})")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, metavar="DIR", help=f"view cache (default {DEFAULT_CACHE})")
    p.add_argument("--data-workers", type=int, default=2, metavar="N",
                   help="processes rendering twin views that are not cached yet (same views for any N; default 2)")
    p.add_argument("--no-resume", action="store_true", help="start over even if DIR/last.pt matches")
    p.add_argument("--ship", action="store_true", help="copy the results to models/weights/detector.*")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run_train(args) -> int:
    from foveate.models.detector.config import DetectorConfig
    from foveate.models.detector.pipeline import DataPlan, build
    from foveate.models.detector.train import TrainSettings
    from foveate.system.errors import ConfigError

    for name in ("epochs", "batch_size", "threads", "train_views", "calib_views", "test_views", "data_workers"):
        if getattr(args, name) <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    try:
        widths = tuple(int(v) for v in str(args.widths).split(","))
    except ValueError:
        raise ConfigError(f"--widths {args.widths!r}: expected five comma-separated channel counts, e.g. 16,24,48,64,96") from None
    config = DetectorConfig(input_size=(args.input_size, args.input_size), input_norm=args.input_norm,
                            widths=widths, neck=args.neck, head=args.head)
    plan = DataPlan(args.train_views, args.calib_views, args.test_views, args.data_seed, args.input_size)
    from foveate.models.torch_device import resolve_device

    resolve_device(args.device)  # before minutes of view rendering
    for name, path in [("init", args.init)] + [("teacher", t) for t in args.teacher]:
        if path is not None and not path.is_file():
            raise ConfigError(f"--{name} {path}: no such file (expected a detector checkpoint .pt)")
    if args.teacher_mirror and not args.teacher:
        raise ConfigError("--teacher-mirror needs at least one --teacher")
    if args.kd_weight < 0:
        raise ConfigError(f"--kd-weight must be >= 0, got {args.kd_weight}")
    settings = TrainSettings(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                             threads=args.threads, device=args.device, init=str(args.init or ""),
                             teacher=tuple(str(t) for t in args.teacher), teacher_mirror=args.teacher_mirror,
                             kd_weight=args.kd_weight)
    command = "foveate " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    print(f"training the detector: {plan.train_views} train / {plan.calib_views} calib / {plan.test_views} test "
          f"twin views, {settings.epochs} epochs -> {args.out}")
    card = build(plan, config, settings, args.out, command=command, cache_dir=args.cache,
                 progress=not args.no_progress, resume=not args.no_resume, ship=args.ship, data_workers=args.data_workers)
    _print_metrics(card["metrics_test_torch"], "test split, PyTorch")
    _print_metrics(card["metrics_test_onnxruntime"], "test split, onnxruntime")
    print(f"wrote {args.out}/detector.pt, detector.onnx, detector.card.json")
    if args.ship:
        print("shipped to models/weights/detector.{pt,onnx,card.json} and detector_reliability.png")
    return 0


def add_eval_arguments(p) -> None:
    p.add_argument("--weights", type=Path, default=None, metavar="FILE",
                   help="detector .pt or .onnx (default: the shipped models/weights/detector.pt)")
    p.add_argument("--runtime", choices=["auto", "torch", "onnxruntime"], default="auto",
                   help="auto: by file type (default)")
    p.add_argument("--split", choices=["test", "calib"], default="test", help="held-out split (default test)")
    p.add_argument("--views", type=int, default=None, metavar="N", help="evaluate on the first N views of the split")
    p.add_argument("--mc-samples", type=int, default=1, metavar="K",
                   help="MC-dropout samples added to the predicted variance (PyTorch only; default 1 = off)")
    p.add_argument("--ensemble", type=Path, action="append", default=[], metavar="FILE",
                   help="another detector .pt whose heatmap is averaged with --weights' (repeatable; PyTorch "
                        "only): measures a set of teachers before distilling them")
    p.add_argument("--mirror", action="store_true",
                   help="also run every network on the mirrored view and average (test-time augmentation; "
                        "PyTorch only)")
    p.add_argument("--out", type=Path, default=Path("out/eval/detector"), metavar="DIR",
                   help="metrics.json and reliability.png go here (default out/eval/detector)")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, metavar="DIR", help=f"view cache (default {DEFAULT_CACHE})")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the metrics to FILE")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run_eval(args) -> int:
    from foveate.models.detector.pipeline import evaluate_weights, shipped_weights
    from foveate.system.errors import ConfigError

    weights = args.weights or shipped_weights(".pt")
    for e in args.ensemble:
        if not e.is_file():
            raise ConfigError(f"--ensemble {e}: no such file (expected a detector checkpoint .pt)")
    m = evaluate_weights(weights, args.runtime, args.split, args.views, args.out, args.cache,
                         progress=not args.no_progress, threads=args.threads, mc_samples=args.mc_samples,
                         ensemble=tuple(args.ensemble), mirror=args.mirror)
    extra = (f", heatmaps averaged over {1 + len(args.ensemble)} network(s)"
             f"{' and their mirrored views' if args.mirror else ''}") if (args.ensemble or args.mirror) else ""
    _print_metrics(m, f"{args.split} split, {m['runtime']}{extra}")
    print(f"wrote {args.out / 'metrics.json'} and {args.out / 'reliability.png'}")
    if args.json:
        args.json.write_text(json.dumps(m, indent=2))
    return 0


def _print_metrics(m: dict, title: str) -> None:
    c = m.get("calibration", {})
    print(f"detector, {title}: {m['n_views']} views, {m['n_gt']} targets")
    print(f"  mAP@0.5 {m['map50']:.4f}   mAP@0.5:0.95 {m['map50_95']:.4f}   "
          f"AP@0.5 per class {', '.join(f'{v:.4f}' for v in m['ap50_per_class'])}")
    if c.get("n_matched"):
        print(f"  centre coverage ({c['n_matched']} matched): 1-sigma ellipse {c['centre_ellipse_1sigma']:.3f} "
              f"(band 0.60-0.76), 2-sigma ellipse {c['centre_ellipse_2sigma']:.3f} (band 0.90-0.98); "
              f"per axis {c['centre_per_axis_1sigma']:.3f} / {c['centre_per_axis_2sigma']:.3f}; "
              f"Mahalanobis r<=1 / r<=2 {c['centre_mahalanobis_r1']:.3f} / {c['centre_mahalanobis_r2']:.3f}")
        print(f"  centre RMSE {c['centre_rmse_px']:.2f} px, median predicted sigma {c['centre_median_sigma_px']:.2f} px")
    if m.get("recall_by_brightness"):
        bands = [f"{b['p99_from']}-{b['p99_to']}: {b['recall']:.2f} of {b['targets']}"
                 for b in m["recall_by_brightness"] if b["targets"]]
        print(f"  recall at score 0.3, IoU 0.5, by view brightness (99th grey-level percentile): {'; '.join(bands)}")
