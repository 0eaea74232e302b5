"""The whole ``foveate quantize`` recipe: pick calibration samples, (re)parameterise, quantize, check.

:func:`run` returns the quantized model and a card (recipe, calibration indices and how they
were chosen, equalisation sites, fused-kernel check, float and quantized accuracy when
asked), written next to the model as ``<out>.recipe.json``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from foveate.models.quant.ptq import QuantRecipe, input_name, quantize_model, recipe_of
from foveate.system.errors import ConfigError

SELECTIONS = ("eda", "random", "all")


@dataclass
class Plan:
    recipe: QuantRecipe
    calib_size: int = 64
    selection: str = "eda"   # eda | random | all
    seed: int = 0
    equalize: bool = False   # RepQuant-style conv->conv folding before quantization
    equalize_alpha: float = 0.5
    corrupted_share: float = 0.0  # share of calibration samples replaced by corrupted copies
    threads: int = 2

    def __post_init__(self) -> None:
        if self.selection not in SELECTIONS:
            raise ConfigError(f"calibration selection '{self.selection}': expected one of {', '.join(SELECTIONS)}")
        if self.calib_size < 1:
            raise ConfigError(f"calibration size {self.calib_size}: expected at least 1")
        if not 0.0 <= self.corrupted_share < 1.0:
            raise ConfigError(f"corrupted share {self.corrupted_share}: expected a value in [0, 1)")


def choose(float_model: bytes, candidates: np.ndarray, plan: Plan) -> tuple[np.ndarray, dict]:
    """Calibration indices into ``candidates`` and a description of the choice."""
    from foveate.models.quant.calib_select import coverage, embed, random_selection, select

    n = min(plan.calib_size, len(candidates))
    if plan.selection == "all" or n == len(candidates):
        return np.arange(len(candidates)), {"selection": "all", "n": len(candidates)}
    proto = onnx.load_from_string(float_model)
    emb = embed(proto, candidates, plan.threads)
    idx = select(emb, n, seed=plan.seed) if plan.selection == "eda" else random_selection(len(candidates), n, plan.seed)
    return idx, {"selection": plan.selection, "n": int(n), "candidates": int(len(candidates)), "seed": plan.seed,
                 "coverage": coverage(emb, idx), "indices": idx.tolist()}


def run(float_model: bytes, candidates: np.ndarray, plan: Plan, out: Path | None = None, *,
        kind: str = "", accuracy=None, check_inputs: np.ndarray | None = None) -> tuple[onnx.ModelProto, dict]:
    from foveate.models.quant.check import kernel_agreement
    from foveate.models.quant.corrupt import corrupt_events, corrupt_images
    from foveate.models.quant.reparam import equalize

    t0 = time.perf_counter()
    idx, info = choose(float_model, candidates, plan)
    calib = candidates[idx].astype(np.float32)
    if plan.corrupted_share > 0:
        k = int(round(plan.corrupted_share * len(calib)))
        rng = np.random.default_rng(plan.seed)
        pick = rng.choice(len(calib), k, replace=False)
        kinds = ("noise", "blur", "low_contrast", "low_light") if calib.shape[1] == 1 else ("rate_drop", "rate_up", "blur")
        for j, i in enumerate(pick):
            f = corrupt_images if calib.shape[1] == 1 else corrupt_events
            calib[i] = f(calib[i:i + 1], kinds[j % len(kinds)], plan.seed + j)[0]
        info["corrupted"] = int(k)
    proto = onnx.load_from_string(float_model)
    folds = []
    if plan.equalize:
        name = input_name(proto)
        proto, folds = equalize(proto, [{name: c[None]} for c in calib], alpha=plan.equalize_alpha,
                                threads=plan.threads)
    q, unfused = quantize_model(proto, [c[None] for c in calib], plan.recipe, None, calib_info={
        k: v for k, v in info.items() if k != "indices"} | {"equalized_sites": len(folds)}, return_unfused=True)
    card = {"kind": kind, "recipe": plan.recipe.as_dict(), "calibration": info,
            "equalize": {"alpha": plan.equalize_alpha, "sites": [f.__dict__ for f in folds]} if plan.equalize else None,
            "spikes": (recipe_of(q) or {}).get("spikes"),
            "quantize_s": round(time.perf_counter() - t0, 2), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_average": [round(v, 2) for v in os.getloadavg()]}
    if plan.recipe.weight_bits == 8:
        chk = check_inputs if check_inputs is not None else candidates[:4]
        # on the graph before spike fusion: the same integer conv kernels, no threshold ties (ptq.quantize_model)
        card["kernel_check"] = kernel_agreement(unfused, chk[:4], plan.threads)
    if accuracy is not None:
        fp = accuracy(float_model, None)
        qa = accuracy(q.SerializeToString(), None)
        card["accuracy"] = {"float": fp, "quantized": qa, "drop_points": fp["score"] - qa["score"]}
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(q, str(out))
        recipe_path(out).write_text(json.dumps(card, indent=1, default=float) + "\n")
    return q, card


def recipe_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.stem + ".recipe.json")
