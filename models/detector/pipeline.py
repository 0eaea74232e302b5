"""The whole recipe behind ``foveate train detector`` and ``foveate eval detector``.

1. Twin views for three disjoint splits (train, calib, test), cached under ``.cache/detector``.
2. Training (:mod:`foveate.models.detector.train`).
3. Variance scales fitted on the calib split (never on test).
4. Evaluation on the test split with PyTorch and with the exported ONNX model (onnxruntime).
5. Checkpoint, ONNX file, model card and reliability plot written to the output folder;
   ``ship`` copies them to ``models/weights/detector.*``.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from foveate.models.detector.config import DetectorConfig
from foveate.models.detector.data import DEFAULT_CACHE, ViewSpec, load_views
from foveate.models.detector.train import TrainSettings, save_checkpoint, train
from foveate.models.torch_device import describe

log = logging.getLogger(__name__)

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "weights"
SHIPPED_NAME = "detector"
EVAL_SCORE_THRESHOLD = 0.01  # low, so the precision-recall curve is complete


def shipped_weights(suffix: str = ".pt") -> Path:
    return SHIPPED_DIR / f"{SHIPPED_NAME}{suffix}"


@dataclass
class DataPlan:
    """Sizes and seed of the three splits (each split's world seeds are disjoint)."""

    train_views: int = 38400
    calib_views: int = 400
    test_views: int = 800
    data_seed: int = 0
    size: int = 256

    def spec(self, split: str) -> ViewSpec:
        n = {"train": self.train_views, "calib": self.calib_views, "test": self.test_views}[split]
        base = ViewSpec.split(split, n, size=self.size)
        return replace(base, seed=base.seed + self.data_seed)


def spec_from_dict(d: dict) -> ViewSpec:
    return ViewSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def build(plan: DataPlan, config: DetectorConfig, settings: TrainSettings, out_dir: Path, *,
          command: str = "", cache_dir: Path | None = DEFAULT_CACHE, progress: bool = True,
          resume: bool = True, ship: bool = False, data_workers: int = 1) -> dict:
    """Run the recipe; returns the model card (also written to ``out_dir/detector.card.json``)."""
    from foveate.models.detector.evaluate import evaluate, fit_variance_scales, reliability_plot, residuals, Predictions
    from foveate.models.detector.export import export_onnx
    from foveate.models.detector.runtime import OnnxDetector, TorchDetector

    t0 = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    specs = {s: plan.spec(s) for s in ("train", "calib", "test")}
    views = {s: load_views(sp, cache_dir, progress, data_workers) for s, sp in specs.items()}
    t_data = time.perf_counter() - t0
    net, history = train(views["train"], config, settings, out_dir, progress=progress, resume=resume)
    t_train = time.perf_counter() - t0 - t_data

    # Variance scales from the calibration split.
    raw = TorchDetector(net, score_threshold=EVAL_SCORE_THRESHOLD)
    calib_res = residuals(Predictions.collect(raw, views["calib"]), views["calib"], len(config.classes))
    c_scale, s_scale = fit_variance_scales(calib_res)
    net.config = replace(config, centre_var_scale=c_scale, size_var_scale=s_scale)
    if len(calib_res.err):
        reliability_plot(calib_res, out_dir / "reliability_calib_before_scaling.png",
                         f"calib split before variance scaling, {len(calib_res.err)} matched detections")

    metrics = evaluate(TorchDetector(net, score_threshold=EVAL_SCORE_THRESHOLD), views["test"], out_dir / "test_torch",
                       progress=progress)
    onnx_path = out_dir / f"{SHIPPED_NAME}.onnx"
    export_onnx(net, onnx_path)
    metrics_ort = evaluate(OnnxDetector(onnx_path, EVAL_SCORE_THRESHOLD), views["test"], out_dir / "test_onnxruntime",
                           progress=progress)
    card = {
        "model": "foveate search-camera detector (CenterNet-style head, Gaussian centre/size)",
        "command": command,
        "config": json.loads(net.config.to_json()),
        "training": {**asdict(settings), "history": history},
        "data": {"generator": "foveate.models.detector.data (digital twin via Rig)", "box_source": views["train"].box_source,
                 **{f"{s}_spec": asdict(sp) for s, sp in specs.items()}},
        "variance_scales": {"centre": c_scale, "size": s_scale, "fitted_on": "calib split"},
        "metrics_test_torch": metrics,
        "metrics_test_onnxruntime": metrics_ort,
        "parameters": int(sum(p.numel() for p in net.parameters())),
        **({"teacher": [_provenance(t) for t in settings.teacher]} if settings.teacher else {}),
        **({"init": _provenance(settings.init)} if settings.init else {}),
        "wall_s": {"data": round(t_data, 1), "train": round(t_train, 1), "total": round(time.perf_counter() - t0, 1)},
        "machine": describe(settings.device),
        "date": time.strftime("%Y-%m-%d"),
    }
    ckpt = out_dir / f"{SHIPPED_NAME}.pt"
    save_checkpoint(ckpt, net, net.config, card)
    (out_dir / f"{SHIPPED_NAME}.card.json").write_text(json.dumps(card, indent=1) + "\n")
    if ship:
        SHIPPED_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copy(ckpt, shipped_weights(".pt"))
        shutil.copy(onnx_path, shipped_weights(".onnx"))
        shutil.copy(out_dir / f"{SHIPPED_NAME}.card.json", shipped_weights(".card.json"))
        if (out_dir / "test_torch" / "reliability.png").is_file():
            shutil.copy(out_dir / "test_torch" / "reliability.png", SHIPPED_DIR / f"{SHIPPED_NAME}_reliability.png")
    return card


def _provenance(path: str) -> dict:
    """Where a teacher or starting checkpoint came from: its path, command, size and test mAP."""
    from foveate.models.detector.runtime import card_of

    c = card_of(path)
    m = c.get("metrics_test_torch", {})
    return {"path": path, "command": c.get("command", ""), "parameters": c.get("parameters"),
            "map50": m.get("map50"), "date": c.get("date")}


def evaluate_weights(weights: Path, runtime: str = "auto", split: str = "test", n_views: int | None = None,
                     out_dir: Path | None = None, cache_dir: Path | None = DEFAULT_CACHE, progress: bool = True,
                     threads: int | None = None, mc_samples: int = 1, ensemble: tuple = (),
                     mirror: bool = False) -> dict:
    """Metrics of ``weights`` on the split its card names (the data it was tested on).

    ``ensemble`` (more ``.pt`` files) and ``mirror`` evaluate a :class:`HeatmapEnsemble`: the mean
    heatmap of all the networks (and of their mirrored views) with the regression of ``weights``,
    which is what ``foveate train detector --teacher ... --teacher-mirror`` distils.
    """
    from foveate.models.detector.evaluate import evaluate
    from foveate.models.detector.runtime import OnnxDetector, TorchDetector, card_of, load_checkpoint
    from foveate.system.errors import ConfigError

    card = card_of(weights)
    key = f"{split}_spec"
    if key not in card.get("data", {}):
        raise ConfigError(f"{weights}: its card has no data.{key} (cannot tell which twin views to evaluate on)")
    spec = spec_from_dict(card["data"][key])
    if n_views is not None:
        spec = replace(spec, n_views=int(n_views))
    views = load_views(spec, cache_dir, progress)
    if runtime == "auto":
        runtime = "onnxruntime" if weights.suffix == ".onnx" else "torch"
    if runtime == "onnxruntime":
        path = weights if weights.suffix == ".onnx" else weights.with_suffix(".onnx")
        if mc_samples > 1 or ensemble or mirror:
            raise ConfigError("MC-dropout (--mc-samples), --ensemble and --mirror run in the PyTorch runtime only")
        det = OnnxDetector(path, EVAL_SCORE_THRESHOLD, threads=threads or 2)
    else:
        path = weights if weights.suffix == ".pt" else weights.with_suffix(".pt")
        net, _ = load_checkpoint(path)
        if ensemble or mirror:
            from foveate.models.detector.model import HeatmapEnsemble
            from foveate.models.detector.train import _load_net

            if mc_samples > 1:
                raise ConfigError("--mc-samples does not combine with --ensemble / --mirror")
            others = [_load_net(str(e), "--ensemble", net.config, same_shape=False) for e in ensemble]
            net = HeatmapEnsemble([net, *others], mirror)
        det = TorchDetector(net, EVAL_SCORE_THRESHOLD, mc_samples=mc_samples, threads=threads)
    metrics = evaluate(det, views, out_dir, progress=progress)
    metrics["runtime"] = runtime
    metrics["split"] = split
    metrics["weights"] = str(path)
    if ensemble or mirror:
        metrics["ensemble"] = [str(e) for e in ensemble]
        metrics["mirror"] = bool(mirror)
    return metrics
