"""Training and evaluation loops of SLTNet (the official recipe, sized for CPUs).

Recipe (official ``arguments.txt`` / ``train.py``): Adam (lr 1e-3, betas 0.9/0.999, weight
decay 1e-4), StepLR stepped per epoch (every 10 epochs x 0.92), loss OHEM-CE(main) + 0.4 x
CE(aux), random horizontal flip only, seed 1234. Every epoch writes ``last.pt`` (everything
needed to resume) and, when validation mIoU improves, ``best.pt``; ``history.json`` logs the
epochs. Shuffling and flips come from a generator seeded by (seed, epoch), so a resumed run
sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from foveate.models.sltnet.config import SLTNetConfig
from foveate.models.sltnet.losses import balanced_class_weights, sltnet_loss
from foveate.models.sltnet.metrics import ConfusionMatrix
from foveate.models.sltnet.model import SLTNet
from foveate.models.torch_device import cpu_state_dict, describe, resolve_device
from foveate.system.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class TrainSettings:
    epochs: int = 300
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    lr_step_epochs: int = 10
    lr_gamma: float = 0.92
    aux_weight: float = 0.4
    ohem: bool = True
    class_balance: bool = False  # sqrt median-frequency class weights from the training labels
    lovasz_weight: float = 0.0  # weight of a Lovasz-softmax term on the main head (0 = the paper's loss)
    flip: bool = True
    seed: int = 1234
    val_every: int = 1
    threads: int | None = None
    device: str = "cpu"  # a torch device ("cuda", "cuda:1"); checkpoints are stored on the CPU either way
    max_batches_per_epoch: int | None = None  # smoke runs only
    extra: dict = field(default_factory=dict)  # recorded in checkpoints (command line, data description)


def _batches(n: int, batch_size: int, rng: np.random.Generator | None):
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for i in range(0, n, batch_size):
        yield order[i:i + batch_size]


def _stack(dataset, idx, rng: np.random.Generator | None, flip: bool):
    vox, lab = [], []
    for i in idx:
        v, l_ = dataset[int(i)]
        if flip and rng is not None and rng.random() < 0.5:
            v, l_ = v[:, :, ::-1], l_[:, ::-1]
        vox.append(np.ascontiguousarray(v))
        lab.append(np.ascontiguousarray(l_))
    return torch.from_numpy(np.stack(vox)), torch.from_numpy(np.stack(lab).astype(np.int64))


def evaluate(predict: Callable[[np.ndarray], np.ndarray], dataset, class_names: tuple[str, ...],
             batch_size: int = 8, progress: bool = False) -> dict:
    """mIoU, per-class IoU and pixel accuracy over the whole ``dataset`` (one confusion matrix).

    ``predict`` maps voxel grids ``[B, bins, H, W]`` to label maps ``[B, H, W]`` (any runner).
    """
    from tqdm import tqdm

    k = len(class_names)
    cm = ConfusionMatrix(k)
    labelled, with_events = np.zeros(k, np.int64), np.zeros(k, np.int64)
    n = len(dataset)
    bar = tqdm(total=n, desc="evaluate", unit="win", disable=not progress, leave=False)
    for idx in _batches(n, batch_size, None):
        vox, lab = _stack(dataset, idx, None, False)
        v, y = vox.numpy(), lab.numpy()
        cm.update(predict(v), y)
        keep = y < k
        fired = (v != 0).any(axis=1)  # any event in the window at this (model-size) pixel
        labelled += np.bincount(y[keep], minlength=k)[:k]
        with_events += np.bincount(y[keep & fired], minlength=k)[:k]
        bar.update(len(idx))
    bar.close()
    out = cm.summary(class_names)
    # share of each class's pixels that carry an event: how much of it the input shows at all
    out["per_class_event_support"] = {c: (float(a / b) if b else None)
                                      for c, a, b in zip(class_names, with_events, labelled)}
    out["windows"] = n
    return out


def torch_predict(model: SLTNet) -> Callable[[np.ndarray], np.ndarray]:
    """Label maps from ``model`` on whatever device its parameters live."""
    device = next(model.parameters()).device

    def predict(v: np.ndarray) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            return model(torch.from_numpy(v).to(device)).argmax(1).cpu().numpy().astype(np.uint8)
    return predict


def label_pixel_counts(dataset, num_classes: int) -> np.ndarray:
    """Labelled pixels per class [C] over a whole split (the ignore label is not counted)."""
    counts = np.zeros(num_classes, dtype=np.int64)
    for i in range(len(dataset)):
        lab = dataset[i][1]
        counts += np.bincount(lab[lab < num_classes].ravel(), minlength=num_classes)[:num_classes]
    return counts


def _rng_for(seed: int, epoch: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch])


def train(config: SLTNetConfig, train_set, val_set, out_dir: str | Path, settings: TrainSettings,
          resume: bool = False, progress: bool = True) -> dict:
    """Train from scratch (or resume from ``out_dir/last.pt``); returns the final history entry."""
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    device = resolve_device(settings.device)
    torch.manual_seed(settings.seed)
    model = SLTNet(config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, betas=(0.9, 0.999), eps=1e-8,
                           weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=settings.lr_step_epochs, gamma=settings.lr_gamma)
    start_epoch, best, history = 0, -1.0, []
    last = out / "last.pt"
    if resume:
        if not last.is_file():
            raise ConfigError(f"{last}: nothing to resume from")
        ckpt = torch.load(str(last), map_location="cpu", weights_only=False)
        if SLTNetConfig.from_dict(ckpt["config"], str(last)) != config:
            raise ConfigError(f"{last}: checkpoint was trained for config {ckpt['config']['name']!r}, not {config.name!r}")
        model.load_state_dict(ckpt["state_dict"])  # onto the model's device
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["torch_rng"])
        start_epoch, best, history = ckpt["epoch"] + 1, ckpt["best_miou"], ckpt["history"]
        log.info("resumed from %s at epoch %d", last, start_epoch)
    if len(train_set) < settings.batch_size or settings.batch_size < 2:
        raise ConfigError(f"batch size {settings.batch_size} needs >= 2 and at most the {len(train_set)} training windows")

    class_weight = None
    if settings.class_balance:
        w = balanced_class_weights(label_pixel_counts(train_set, config.num_classes))
        class_weight = torch.tensor(w, dtype=torch.float32, device=device)
        log.info("class weights %s", dict(zip(config.classes, np.round(w, 3).tolist())))
    n_batches = len(train_set) // settings.batch_size  # drop_last: BN needs > 1 sample
    if settings.max_batches_per_epoch:
        n_batches = min(n_batches, settings.max_batches_per_epoch)
    t_start = time.perf_counter()
    entry: dict = history[-1] if history else {}
    t_before = float(entry.get("elapsed_s", 0.0))  # training time of the runs this one resumes
    for epoch in range(start_epoch, settings.epochs):
        model.train()
        rng = _rng_for(settings.seed, epoch)
        losses = []
        bar = tqdm(total=n_batches, desc=f"epoch {epoch + 1}/{settings.epochs}", unit="batch", disable=not progress)
        for b, idx in enumerate(_batches(len(train_set), settings.batch_size, rng)):
            if b >= n_batches:
                break
            x, y = _stack(train_set, idx, rng, settings.flip)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            out_main, out_aux = model(x)
            loss = sltnet_loss(out_main, out_aux, y, settings.aux_weight, settings.ohem, class_weight,
                               settings.lovasz_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", lr=f"{sched.get_last_lr()[0]:.2e}")
            bar.update(1)
        bar.close()
        sched.step()
        entry = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "lr": sched.get_last_lr()[0],
                 "elapsed_s": round(t_before + time.perf_counter() - t_start, 1)}
        if val_set is not None and ((epoch + 1) % settings.val_every == 0 or epoch + 1 == settings.epochs):
            metrics = evaluate(torch_predict(model), val_set, config.classes, settings.batch_size, progress)
            entry.update(val_miou=metrics["miou"], val_pixel_accuracy=metrics["pixel_accuracy"],
                         val_per_class_iou=metrics["per_class_iou"])
            log.info("epoch %d: loss %.4f val mIoU %.4f", epoch + 1, entry["train_loss"], metrics["miou"])
        history.append(entry)
        improved = entry.get("val_miou", -1.0) > best
        if improved:
            best = entry["val_miou"]
        state = {"config": config.as_dict(), "state_dict": cpu_state_dict(model), "optimizer": opt.state_dict(),
                 "scheduler": sched.state_dict(), "torch_rng": torch.get_rng_state(), "epoch": epoch,
                 "best_miou": best, "history": history, "settings": asdict(settings),
                 "card": _card(config, settings, entry)}
        torch.save(state, str(out / "last.pt.tmp"))
        (out / "last.pt.tmp").replace(last)
        if improved or val_set is None:
            torch.save({k: state[k] for k in ("config", "state_dict", "card")}, str(out / "best.pt"))
        (out / "history.json").write_text(json.dumps(history, indent=1))
    return entry


def _card(config: SLTNetConfig, settings: TrainSettings, entry: dict) -> dict:
    """What the shipped ``.json`` card says, as JSON types (tuples become lists), so both stay equal."""
    return json.loads(json.dumps({
        "model": "SLTNet",
        "config": config.as_dict(),
        "training": {k: v for k, v in asdict(settings).items() if k != "extra"} | settings.extra,
        "epoch": entry.get("epoch"),
        "training_time_s": entry.get("elapsed_s"),
        "metrics": {k: entry[k] for k in ("val_miou", "val_pixel_accuracy", "val_per_class_iou", "train_loss")
                    if k in entry},
        "machine": describe(settings.device),
    }))

