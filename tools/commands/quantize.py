"""``foveate quantize MODEL --calib DATA --out FILE``: static INT8 (or W4A8) post-training quantization."""

from __future__ import annotations

import json
from pathlib import Path

NAME = "quantize"
HELP = "post-training quantization (onnxruntime static QDQ, INT8 or W4A8) of SLTNet or the detector"
DESCRIPTION = (
    "Quantize a model with onnxruntime static QDQ: per-channel symmetric weights (8 or 4 bits), u8 activations "
    "calibrated with minmax, percentile or entropy; 7-bit weights (reduce_range) automatically on x86 without VNNI. "
    "MODEL is 'detector' (the shipped models/weights/detector.onnx), 'sltnet' (models/weights/sltnet_twin.pt), "
    "a detector .onnx, or an SLTNet .pt checkpoint. DATA is 'twin' (the model's own twin data: the detector's calib "
    "split, SLTNet's training windows) or a .npy file of model inputs [N, ...]. Calibration samples are chosen "
    "from DATA by EDA-DM-style density+diversity selection (--select eda), at random, or all. Writes FILE and "
    "FILE's recipe card (<stem>.recipe.json: recipe, chosen samples, fused-kernel check, accuracy with --eval). "
    "Spike layers (Greater -> Cast) are folded into the integer convs that feed them (exact; --no-fuse-spikes "
    "keeps them as float ops). SLTNet defaults: convs only, gate convs under 20k MACs and the first conv in float. "
    "With '--calib FILE.npy' and no --eval an SLTNet checkpoint needs no twin data."
)


def add_arguments(p) -> None:
    p.description = DESCRIPTION
    p.add_argument("model", help="detector | sltnet | PATH (.onnx detector export or .pt SLTNet checkpoint)")
    p.add_argument("--calib", default="twin", help="'twin' or a .npy file of inputs [N, ...] (default twin)")
    p.add_argument("--out", type=Path, required=True, help="output .onnx")
    p.add_argument("--method", default="percentile", choices=["minmax", "percentile", "entropy"])
    p.add_argument("--percentile", type=float, default=99.999)
    p.add_argument("--bits", type=int, default=8, choices=[8, 4], help="weight bits: 8 (INT8) or 4 (W4A8)")
    p.add_argument("--reduce-range", default="auto", choices=["auto", "on", "off"],
                   help="7-bit weights: auto = only on x86 without VNNI")
    p.add_argument("--input-conv-bits", type=int, default=8, choices=[8, 4],
                   help="with --bits 4: weight bits of the first conv, the one reading the model input (default 8)")
    p.add_argument("--u8u8", action="store_true", help="unsigned 8-bit weights (U8U8 kernels; for x86 without VNNI)")
    p.add_argument("--calib-size", type=int, default=None,
                   help="calibration samples (default: 64 for the detector, 200 for SLTNet)")
    p.add_argument("--select", default="eda", choices=["eda", "random", "all"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--equalize", action="store_true", help="RepQuant-style conv->conv range equalisation first")
    p.add_argument("--alpha", type=float, default=0.5, help="equalisation migration strength (0..1)")
    p.add_argument("--corrupted", type=float, default=0.0, help="share of calibration samples corrupted (0..1)")
    p.add_argument("--op-types", default=None,
                   help="comma-separated op types to quantize (default: all supported; SLTNet: Conv)")
    p.add_argument("--exclude", default=None,
                   help="comma-separated node names kept in float (default: none; SLTNet: its 5-channel first conv)")
    p.add_argument("--min-conv-macs", type=int, default=None,
                   help="convs with fewer multiply-accumulates stay float (default 0; SLTNet: 20000)")
    p.add_argument("--no-fuse-spikes", action="store_true",
                   help="keep spike layers as float Greater/Cast between Q/DQ (default: thresholds folded into "
                        "the integer convs, exact)")
    p.add_argument("--quantize-heads", action="store_true", help="also quantize the convs producing the outputs")
    p.add_argument("--data", type=Path, default=None, help="SLTNet twin cache folder (default: from the checkpoint's card)")
    p.add_argument("--eval", action="store_true", help="measure float and quantized accuracy (twin data only)")
    p.add_argument("--threads", type=int, default=2)


def _target(args, calib):
    from foveate.models.quant.targets import (SLTNET_WEIGHTS, detector_target, sltnet_inputs_target,
                                              sltnet_target)
    from foveate.system.errors import ConfigError

    m = args.model
    if m == "detector" or (m.endswith(".onnx") and _onnx_kind(Path(m)) == "detector"):
        return detector_target(None if m == "detector" else m, threads=args.threads, progress=True)
    if m == "sltnet" or m.endswith(".pt"):
        path = SLTNET_WEIGHTS if m == "sltnet" else Path(m)
        if calib is not None and not args.eval:  # inputs given, nothing to score: no twin data needed
            from foveate.models.sltnet.runtime import load_model

            return sltnet_inputs_target(load_model(path), calib, args.calib)
        return sltnet_target(path, args.data, args.threads, progress=True)
    if m.endswith(".onnx"):
        raise ConfigError(f"{m}: an SLTNet model is quantized from its .pt checkpoint (the ONNX is exported with it)")
    raise ConfigError(f"model '{m}': expected detector, sltnet, a detector .onnx or an SLTNet .pt")


def command_line(args) -> str:
    """The command that reproduces this run, every option spelled out (from the parsed arguments, so it
    is right however the command was invoked: shell, ``main([...])``, a script)."""
    import shlex

    parts = ["foveate", "quantize", args.model]
    for key, value in sorted(vars(args).items()):
        if key in ("model", "command", "log_level") or key.startswith("_") or value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        parts += [flag] if value is True else [flag, str(value)]
    return " ".join(shlex.quote(p) for p in parts)


def _onnx_kind(path: Path) -> str:
    import onnx

    from foveate.system.errors import ConfigError

    if not path.is_file():
        raise ConfigError(f"{path}: model file not found")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and friends
        raise ConfigError(f"{path}: not an ONNX model (protobuf parsing failed: {type(exc).__name__})") from None
    meta = {p.key for p in proto.metadata_props}
    return "detector" if "foveate.detector.config" in meta else "sltnet" if "sltnet_config" in meta else "other"


def run(args) -> int:
    import numpy as np

    from foveate.models.quant.pipeline import Plan, recipe_path
    from foveate.models.quant.pipeline import run as quantize
    from foveate.models.quant.ptq import QuantRecipe
    from foveate.system.errors import ConfigError

    choices = dict(method=args.method, percentile=args.percentile, weight_bits=args.bits,
                   reduce_range={"auto": "auto", "on": True, "off": False}[args.reduce_range],
                   op_types=tuple(args.op_types.split(",")) if args.op_types else None,
                   exclude=tuple(x for x in args.exclude.split(",") if x) if args.exclude is not None else None,
                   min_conv_macs=args.min_conv_macs, keep_head_float=not args.quantize_heads, u8u8=args.u8u8,
                   input_conv_bits=args.input_conv_bits,
                   fuse_spikes=False if args.no_fuse_spikes else None)
    QuantRecipe(**{k: v for k, v in choices.items() if v is not None})  # bad values fail before any loading
    Plan(QuantRecipe(), 1 if args.calib_size is None else args.calib_size, args.select, corrupted_share=args.corrupted)
    cand = None
    if args.calib != "twin":
        path = Path(args.calib)
        if not path.is_file():
            raise ConfigError(f"{path}: calibration file not found (expected 'twin' or a .npy file of inputs [N, ...])")
        try:
            cand = np.load(path).astype(np.float32)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: not a readable .npy array of model inputs ({exc})") from None
    target = _target(args, cand)
    recipe = target.recipe(**choices)
    plan = Plan(recipe, target.calib_size if args.calib_size is None else args.calib_size, args.select, args.seed, args.equalize, args.alpha, args.corrupted, args.threads)
    if cand is None:
        cand = target.candidates
    elif cand.ndim < 2 or cand.shape[1:] != target.candidates.shape[1:]:
        raise ConfigError(f"{args.calib}: inputs of shape {cand.shape[1:]}, the model wants {target.candidates.shape[1:]}")
    q, card = quantize(target.float_model, cand, plan, args.out, kind=target.name,
                       accuracy=target.accuracy if args.eval else None, check_inputs=target.eval_inputs[:4])
    import os

    # Recipes ship with the weights: record the source relative to the working folder, not this machine.
    source = str(target.source)
    if os.path.isabs(source) and not os.path.relpath(source).startswith(".."):
        source = os.path.relpath(source)
    card = {"command": command_line(args), **card, "source": source}
    recipe_path(args.out).write_text(json.dumps(card, indent=1, default=float) + "\n")
    chk = card.get("kernel_check")
    print(f"{args.out}: {target.name}, W{args.bits}A8, {args.method}, {card['calibration']['n']} calibration "
          f"samples ({card['calibration']['selection']}), {args.out.stat().st_size / 1e3:.0f} kB")
    if card.get("spikes"):
        sp = card["spikes"]
        print(f"  spike layers: {sp['conv_spikes']} thresholds folded into integer convs, {sp['cast_spikes']} "
              f"cast to u8, {sp['bn_thresholds']} batch norms folded into thresholds")
    if chk:
        print(f"  fused INT8 kernels vs reference Q/DQ: relative L2 {chk['relative_l2_worst']:.4f} "
              f"({'ok' if chk['ok'] else 'FAILED: kernels disagree, try --reduce-range on'})")
    if "accuracy" in card:
        a = card["accuracy"]
        print(f"  {target.metric}: float {a['float']['score']:.2f}, quantized {a['quantized']['score']:.2f} "
              f"(drop {a['drop_points']:+.2f} points)")
    print(f"  recipe: {recipe_path(args.out)}")
    return 0 if not chk or chk["ok"] else 1
