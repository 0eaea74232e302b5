"""``foveate train sltnet``: train SLTNet on the twin or on DDD17 / DSEC-Semantic."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from foveate.tools.argtypes import size_hw

NAME = "train"
HELP = "train a model (sltnet, detector) with checkpoints, resume and a progress bar"
DESCRIPTION = (
    "Train SLTNet with the official recipe (Adam 1e-3, OHEM CE + 0.4 x aux CE, StepLR 10 epochs x 0.92, "
    "horizontal flips, seed 1234). '--data twin' generates and caches the digital-twin set under .cache/; "
    "a folder path reads DDD17 (ESS layout, --config ddd17) or DSEC-Semantic (--config dsec). "
    "Checkpoints go to --out (last.pt every epoch, best.pt on the best validation mIoU); --resume continues."
)


def add_arguments(p) -> None:
    models = p.add_subparsers(dest="model", metavar="MODEL", required=True)
    _add_sltnet_arguments(models.add_parser("sltnet", help="SLTNet", description=DESCRIPTION))
    from foveate.models.detector import cli as detector_cli

    detector = models.add_parser("detector", help="the search-camera detector on twin views", description=detector_cli.TRAIN_DESCRIPTION)
    detector_cli.add_train_arguments(detector)


def _add_sltnet_arguments(p) -> None:
    p.add_argument("--config", default="twin", help="model config: twin (default), ddd17, dsec")
    p.add_argument("--data", default="twin", help="'twin' (generated, cached) or a dataset root folder")
    p.add_argument("--out", type=Path, default=None, metavar="DIR", help="checkpoint folder (default out/train/sltnet-CONFIG)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: 60 on the twin, 300 otherwise)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=1234, help="training seed (init, shuffling, flips)")
    p.add_argument("--time-steps", type=int, default=None, metavar="T", help="override the config's T")
    p.add_argument("--input-size", type=size_hw, default=None, metavar="HxW",
                   help="override the config's input size (multiples of 8)")
    p.add_argument("--full-res-skip", action="store_true",
                   help="not in the paper: add the stem's full-resolution spikes to the decoder's output before "
                        "the last LIF (docs/sltnet.md)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--device", default="cpu", help="torch device to train on: cpu (default), cuda, cuda:N")
    p.add_argument("--data-workers", type=int, default=2, metavar="N",
                   help="processes generating the twin data (default 2; same data for any N)")
    p.add_argument("--val-every", type=int, default=1, metavar="N", help="validate every N epochs")
    p.add_argument("--class-balance", action="store_true",
                   help="weigh the loss by sqrt median-frequency class weights from the training labels "
                        "(the twin's people and vehicles cover <1%% of the pixels)")
    p.add_argument("--lovasz", type=float, default=0.0, metavar="W",
                   help="not in the paper: add W x Lovasz-softmax (an IoU surrogate) to the main head's loss "
                        "(default 0: off)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--twin-seed", type=int, default=0, help="seed of the generated twin data")
    p.add_argument("--twin-train-sequences", type=int, default=None, metavar="N",
                   help="twin training sequences of 32 windows (default 30)")
    p.add_argument("--twin-val-sequences", type=int, default=None, metavar="N")
    p.add_argument("--twin-windows", type=int, default=None, metavar="N", help="windows per twin sequence")
    p.add_argument("--max-batches", type=int, default=None, help="cap batches per epoch (smoke runs)")
    p.add_argument("--ship", action="store_true",
                   help="copy the best weights and their card to models/weights/sltnet_twin.{pt,json}")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def twin_spec_from_args(args):
    from dataclasses import replace

    from foveate.models.sltnet.twin_data import TwinDataSpec

    spec = TwinDataSpec(seed=args.twin_seed)
    changes = {k: v for k, v in (("train_sequences", args.twin_train_sequences),
                                 ("val_sequences", args.twin_val_sequences),
                                 ("windows_per_sequence", args.twin_windows)) if v is not None}
    return replace(spec, **changes)


def command_line(args) -> str:
    """The canonical command that repeats this training (recorded in checkpoints and weight cards)."""
    parts = ["foveate", "train", "sltnet", "--config", args.config, "--data", str(args.data),
             "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
             "--seed", str(args.seed), "--threads", str(args.threads)]
    if args.device != "cpu":
        parts += ["--device", args.device]
    size = "x".join(map(str, args.input_size)) if args.input_size else None
    for flag, value in (("--time-steps", args.time_steps), ("--input-size", size),
                        ("--twin-seed", args.twin_seed if args.data == "twin" else None),
                        ("--twin-train-sequences", args.twin_train_sequences),
                        ("--twin-val-sequences", args.twin_val_sequences), ("--twin-windows", args.twin_windows),
                        ("--max-batches", args.max_batches)):
        if value is not None:
            parts += [flag, str(value)]
    if args.full_res_skip:
        parts.append("--full-res-skip")
    if args.class_balance:
        parts.append("--class-balance")
    if args.lovasz:
        parts += ["--lovasz", str(args.lovasz)]
    return " ".join(shlex.quote(p) for p in parts)


def run(args) -> int:
    if args.model == "detector":
        from foveate.models.detector.cli import run_train

        return run_train(args)
    return _run_sltnet(args)


def _run_sltnet(args) -> int:
    from dataclasses import asdict

    from foveate.models.sltnet.config import get_config
    from foveate.models.sltnet.segmenter import SHIPPED_CARD, SHIPPED_WEIGHTS
    from foveate.models.sltnet.sources import open_split
    from foveate.models.sltnet.train import TrainSettings, train
    from foveate.models.torch_device import resolve_device
    from foveate.system.errors import ConfigError

    resolve_device(args.device)  # before minutes of data generation
    if args.lovasz < 0:
        raise ConfigError(f"--lovasz must be >= 0, got {args.lovasz}")

    config = get_config(args.config)
    if args.time_steps:
        config = config.with_(time_steps=args.time_steps)
    if args.input_size:
        config = config.with_(height=args.input_size[0], width=args.input_size[1])
    if args.full_res_skip:
        config = config.with_(full_res_skip=True)
    out = args.out or Path("out") / "train" / f"sltnet-{config.name}"
    spec = twin_spec_from_args(args) if args.data == "twin" else None
    progress = not args.no_progress
    import torch

    torch.set_num_threads(args.threads)
    train_set = open_split(config, args.data, "train", spec, progress=progress, workers=args.data_workers)
    val_set = open_split(config, args.data, "val", spec, progress=progress, workers=args.data_workers)
    epochs = args.epochs = args.epochs or (60 if args.data == "twin" else 300)
    data_desc = {"data": args.data}
    if spec is not None:
        data_desc["twin_spec"] = asdict(spec)
    settings = TrainSettings(epochs=epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                             val_every=args.val_every, threads=args.threads, max_batches_per_epoch=args.max_batches,
                             class_balance=args.class_balance, lovasz_weight=args.lovasz, device=args.device,
                             extra={"command": command_line(args), **data_desc,
                                    "train_windows": len(train_set), "val_windows": len(val_set)})
    print(f"training SLTNet/{config.name} on {args.data}: {len(train_set)} train, {len(val_set)} val windows, "
          f"{epochs} epochs -> {out}")
    final = train(config, train_set, val_set, out, settings, resume=args.resume, progress=progress)
    print(json.dumps({k: v for k, v in final.items() if k != "val_per_class_iou"}))
    if args.ship:
        if config.name != "twin":
            raise ConfigError("--ship stores twin weights only (config twin)")
        best = torch.load(str(out / "best.pt"), map_location="cpu", weights_only=False)
        SHIPPED_WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
        torch.save(best, str(SHIPPED_WEIGHTS))
        SHIPPED_CARD.write_text(json.dumps(best["card"], indent=1) + "\n")
        # the ONNX export next to it: what the embedded rig runs (no torch needed at run time)
        from foveate.models.sltnet.export import export_onnx
        from foveate.models.sltnet.runtime import load_model

        onnx_path = SHIPPED_WEIGHTS.with_suffix(".onnx")
        export_onnx(load_model(SHIPPED_WEIGHTS), onnx_path)
        print(f"shipped {SHIPPED_WEIGHTS} ({SHIPPED_WEIGHTS.stat().st_size / 1e6:.1f} MB), {onnx_path.name} "
              f"and {SHIPPED_CARD}")
    return 0
