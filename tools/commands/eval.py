"""``foveate eval sltnet``: accuracy over a whole split, the faithfulness report, the energy report."""

from __future__ import annotations

import json
from pathlib import Path

from foveate.tools.argtypes import positive_int, size_hw

NAME = "eval"
HELP = "evaluate a model (sltnet, detector): mIoU, per-class IoU, pixel accuracy; --report, --energy"
DESCRIPTION = (
    "Evaluate SLTNet weights on a split (one confusion matrix over every window). --report prints the "
    "architecture's faithfulness check (parameters and MACs against the official model) and needs no data; "
    "--energy measures per-layer firing rates on the split and prints the SOP/MAC energy estimate."
)


def add_arguments(p) -> None:
    models = p.add_subparsers(dest="model", metavar="MODEL", required=True)
    _add_sltnet_arguments(models.add_parser("sltnet", help="SLTNet", description=DESCRIPTION))
    from foveate.models.detector import cli as detector_cli

    detector = models.add_parser("detector", help="the search-camera detector: mAP, uncertainty calibration", description=detector_cli.EVAL_DESCRIPTION)
    detector_cli.add_eval_arguments(detector)


def _add_sltnet_arguments(p) -> None:
    p.add_argument("--data", default=None, help="'twin' or a dataset root folder (DDD17 / DSEC-Semantic)")
    p.add_argument("--split", default="val", choices=["train", "val", "test"])
    p.add_argument("--weights", type=Path, default=None, help="checkpoint .pt or exported .onnx (default: shipped twin weights)")
    p.add_argument("--config", default=None, help="config for --report without weights (default: the weights' config, else ddd17)")
    p.add_argument("--runtime", default="torch", choices=["torch", "onnxruntime"])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-workers", type=int, default=2, metavar="N",
                   help="processes generating missing twin data (default 2; same data for any N)")
    p.add_argument("--report", action="store_true", help="print the faithfulness report (params, MACs)")
    p.add_argument("--energy", action="store_true", help="measure firing rates and print the energy estimate")
    p.add_argument("--energy-windows", type=int, default=32, metavar="N", help="windows for --energy (default 32)")
    p.add_argument("--twin-seed", type=int, default=None,
                   help="seed of the generated twin data (default: the data the weights' card names, else 0)")
    p.add_argument("--grid-round-trip", action="store_true",
                   help="score the split's labels themselves after a round trip through a grid --grid-factor "
                        "times coarser than the input: how small the split's objects are next to the network's "
                        "decision grid (no network runs)")
    p.add_argument("--grid-factor", type=positive_int, default=2, metavar="F",
                   help="for --grid-round-trip: the decision grid is F times coarser than the input "
                        "(default 2: SLTNet's decoder ends at half resolution)")
    p.add_argument("--input-size", type=size_hw, default=None, metavar="HxW",
                   help="for --grid-round-trip: labels at this input size instead of the weights' "
                        "(e.g. 240x320, the twin sensor's own)")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the results as JSON")
    p.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    if args.model == "detector":
        from foveate.models.detector.cli import run_eval

        return run_eval(args)
    return _run_sltnet(args)


def _run_sltnet(args) -> int:
    import torch

    from foveate.models.sltnet.complexity import faithfulness_report, format_report
    from foveate.models.sltnet.config import get_config
    from foveate.models.sltnet.model import SLTNet
    from foveate.models.sltnet.runtime import load_model, load_runner
    from foveate.models.sltnet.segmenter import default_weights
    from foveate.models.sltnet.sources import open_split
    from foveate.models.sltnet.train import evaluate
    from foveate.system.errors import ConfigError

    torch.set_num_threads(args.threads)
    results: dict = {}
    if args.report:
        if args.weights is not None and args.weights.suffix == ".pt":
            model = load_model(args.weights)
        else:
            model = SLTNet(get_config(args.config or "ddd17"))
        rep = faithfulness_report(model)
        print(format_report(rep))
        results["faithfulness"] = rep
    if args.data is None:
        if args.energy:
            raise ConfigError("--energy needs --data (firing rates are measured on real windows)")
        if not args.report:
            raise ConfigError("give --data twin|FOLDER to evaluate (or --report for the faithfulness check)")
    else:
        if args.grid_round_trip and args.energy:
            raise ConfigError("--grid-round-trip scores the labels, --energy the network: give one of them")
        if args.input_size and not args.grid_round_trip:
            raise ConfigError("--input-size goes with --grid-round-trip (trained weights have their own input size)")
        weights = args.weights or default_weights()
        runner = load_runner(weights, args.runtime, args.threads)
        config = runner.config
        if args.input_size:
            config = config.with_(height=args.input_size[0], width=args.input_size[1])
        spec = None
        if args.data == "twin":
            from foveate.models.sltnet.twin_data import TwinDataSpec

            spec = TwinDataSpec(seed=args.twin_seed or 0)
            if args.twin_seed is None and weights.suffix == ".pt":  # the data the card says it was validated on
                saved = (load_model(weights).card or {}).get("training", {}).get("twin_spec")
                if saved:
                    spec = TwinDataSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()})
        dataset = open_split(config, args.data, args.split, spec, progress=not args.no_progress,
                             workers=args.data_workers)
        if args.grid_round_trip:
            results["grid_round_trip"] = _print_grid_round_trip(dataset, config, args)
            if args.json:
                args.json.write_text(json.dumps(results, indent=1))
            return 0
        metrics = evaluate(runner.predict, dataset, config.classes, args.batch_size, not args.no_progress)
        results["metrics"] = metrics
        print(f"SLTNet/{config.name} on {args.data} ({args.split}, {metrics['windows']} windows, {args.runtime}):")
        print(f"  mIoU {metrics['miou']:.4f}   pixel accuracy {metrics['pixel_accuracy']:.4f}")
        fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        print(f"  {'class':<18} {'IoU':>6}  {'recall':>6}  {'precision':>9}  {'events':>6}")
        for name, iou in metrics["per_class_iou"].items():
            print(f"  {name:<18} {fmt(iou):>6}  {fmt(metrics['per_class_recall'][name]):>6}  "
                  f"{fmt(metrics['per_class_precision'][name]):>9}  {fmt(metrics['per_class_event_support'][name]):>6}")
        print("  (events: share of the class's labelled pixels with at least one event in the window)")
        if args.energy:
            from foveate.models.sltnet.energy import format_energy, measure_energy, summarise

            model = load_model(weights) if weights.suffix == ".pt" else None
            if model is None:
                raise ConfigError("--energy needs a .pt checkpoint (firing rates are measured in PyTorch)")
            n = min(args.energy_windows, len(dataset))
            wins = (torch.from_numpy(dataset[i][0][None]) for i in range(n))
            rows = measure_energy(model, wins)
            print(format_energy(rows))
            results["energy"] = {"summary": summarise(rows), "layers": [r.as_dict() for r in rows], "windows": n}
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def _print_grid_round_trip(dataset, config, args) -> dict:
    from foveate.models.sltnet.metrics import GRID_ROUND_TRIPS, grid_round_trip_scores

    f = args.grid_factor
    res = grid_round_trip_scores((dataset[i][1] for i in range(len(dataset))), config.num_classes, f, config.classes)
    print(f"Label round trip through a {config.height // f}x{config.width // f} grid (1/{f} of the "
          f"{config.height}x{config.width} input), {args.data} {args.split}, {len(dataset)} windows:")
    print(f"  {'class':<18} " + "  ".join(f"{m:>8}" for m in GRID_ROUND_TRIPS))
    for name in config.classes:
        row = [res[m]["per_class_iou"][name] for m in GRID_ROUND_TRIPS]
        print(f"  {name:<18} " + "  ".join("       -" if v is None else f"{v:8.4f}" for v in row))
    print(f"  {'mIoU':<18} " + "  ".join(f"{res[m]['miou']:8.4f}" for m in GRID_ROUND_TRIPS))
    print("  (majority: each grid cell takes its most common class; bilinear: class shares per cell resized back "
          "bilinearly, as SLTNet's last resize does. Not a bound on a network: its features can place a boundary "
          "between grid points.)")
    return {"grid_factor": f, "grid": [config.height // f, config.width // f], "windows": len(dataset),
            **{m: {k: res[m][k] for k in ("miou", "per_class_iou")} for m in GRID_ROUND_TRIPS}}
