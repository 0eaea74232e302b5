"""Training: fixed seed, tqdm progress, a checkpoint every epoch, resumable.

Loss = focal heatmap loss + Gaussian NLL of centre offset and log size (see
:mod:`foveate.models.detector.targets`), plus, with teacher networks, the squared difference
from their mean heatmap probabilities (computed once on the clean views). Augmentation: horizontal
mirror, gain and sensor noise. Single-threaded by default: the project's machines have two shared cores.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from foveate.models.detector.config import DetectorConfig
from foveate.models.detector.data import ViewSet
from foveate.models.detector.targets import distill_loss, encode, flip_targets, focal_loss, gaussian_nll

log = logging.getLogger(__name__)


@dataclass
class TrainSettings:
    epochs: int = 15
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    seed: int = 0
    threads: int = 1
    nll_weight: float = 1.0
    device: str = "cpu"  # a torch device ("cuda", "cuda:1"); checkpoints are stored on the CPU either way
    init: str = ""  # detector checkpoint whose weights the training starts from ("" = random init)
    teacher: tuple[str, ...] = ()  # detector checkpoints whose mean heatmap is distilled (() = no distillation)
    teacher_mirror: bool = False  # average each teacher's heatmaps with those of the mirrored view
    kd_weight: float = 2.0  # weight of the distillation term (with a teacher): about the focal loss at the end of training


def _resumable(settings: dict) -> dict:
    """The settings a checkpoint must share to be resumed (the device may change)."""
    return {k: v for k, v in settings.items() if k != "device"}


def encode_all(views: ViewSet, config: DetectorConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Targets of every view: heat (N, C, gh, gw), reg (N, 4, gh, gw), weight (N, gh, gw)."""
    n = len(views)
    gh, gw = config.grid
    heat = np.zeros((n, len(config.classes), gh, gw), np.float32)
    reg = np.zeros((n, 4, gh, gw), np.float32)
    weight = np.zeros((n, gh, gw), np.float32)
    if views.images.shape[1:] != tuple(config.input_size):
        raise ValueError(f"views are {views.images.shape[1:]}, the model expects {config.input_size}")
    for i in range(n):
        b, c, _ = views.targets(i)
        heat[i], reg[i], weight[i] = encode(b, c, len(config.classes), (gh, gw), config.stride)
    return heat, reg, weight


def augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gain and sensor noise on a uint8 batch (B, H, W); returns float32 in [0, 1]."""
    x = images.astype(np.float32)
    gain = rng.uniform(0.75, 1.3, size=(len(x), 1, 1)).astype(np.float32)
    noise = rng.uniform(0.0, 4.0, size=(len(x), 1, 1)).astype(np.float32)
    x = x * gain + rng.standard_normal(x.shape, dtype=np.float32) * noise
    return np.clip(x, 0, 255) / 255.0


def teacher_heatmaps(teachers, views: ViewSet, device, batch_size: int = 64, progress: bool = True,
                     mirror: bool = False) -> np.ndarray:
    """Mean heatmap probabilities (N, C, gh, gw) float16 of ``teachers`` on the clean (not augmented)
    views (:class:`HeatmapEnsemble`); with ``mirror`` each teacher also sees the mirrored view, which
    makes the target symmetric like the augmentation that flips it."""
    import torch
    from tqdm import tqdm

    from foveate.models.detector.model import HeatmapEnsemble

    ensemble = HeatmapEnsemble(list(teachers), mirror).to(device).eval()
    out = []
    with torch.no_grad():
        for i in tqdm(range(0, len(views), batch_size), desc="teacher heatmaps", unit="batch",
                      disable=not progress, leave=False):
            x = torch.from_numpy(views.images[i:i + batch_size, None].astype(np.float32) / 255.0).to(device)
            out.append(ensemble.heat_prob(x).cpu().numpy().astype(np.float16))
    return np.concatenate(out)


def _load_net(path: str, what: str, config: DetectorConfig, same_shape: bool):
    """A :class:`DetectorNet` from a checkpoint. Its classes and grid must match ``config``'s;
    with ``same_shape`` (``--init``) its layers too, while a teacher may be of any width."""
    from foveate.models.detector.runtime import load_checkpoint
    from foveate.system.errors import ConfigError

    net, _ = load_checkpoint(path)
    a, b = net.config, config
    if (a.classes, a.grid) != (b.classes, b.grid):
        raise ConfigError(f"{path}: {what} has classes {a.classes} / grid {a.grid}; the network being trained "
                          f"has {b.classes} / {b.grid}")
    if same_shape and (a.widths, a.neck, a.head, a.input_norm) != (b.widths, b.neck, b.head, b.input_norm):
        raise ConfigError(f"{path}: {what} has widths {a.widths}, neck {a.neck}, head {a.head}, input_norm "
                          f"{a.input_norm!r}; the network being trained has {b.widths}, {b.neck}, {b.head}, "
                          f"{b.input_norm!r}")
    return net


def save_checkpoint(path: Path, net, config: DetectorConfig, card: dict, extra: dict | None = None) -> None:
    import torch

    from foveate.models.torch_device import cpu_state_dict

    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {"config": config.to_json(), "state_dict": cpu_state_dict(net), "card": card, **(extra or {})}
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def train(views: ViewSet, config: DetectorConfig, settings: TrainSettings, out_dir: Path,
          progress: bool = True, resume: bool = True):
    """Train a :class:`DetectorNet` on ``views``; returns the trained network (eval mode).

    ``out_dir/last.pt`` is written after every epoch (network, optimiser, epoch) and
    picked up again when ``resume`` is set.
    """
    import torch
    from tqdm import tqdm

    from foveate.models.detector.model import DetectorNet
    from foveate.models.torch_device import resolve_device

    device = resolve_device(settings.device)
    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    heat, reg, weight = encode_all(views, config)
    net = DetectorNet(config)
    if settings.init:
        net.load_state_dict(_load_net(settings.init, "--init", config, same_shape=True).state_dict())
    net = net.to(device)
    teacher_heat = None
    if settings.teacher:
        teachers = [_load_net(t, "--teacher", config, same_shape=False) for t in settings.teacher]
        teacher_heat = teacher_heatmaps(teachers, views, device, progress=progress, mirror=settings.teacher_mirror)
        del teachers
    opt = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    n = len(views)
    steps_per_epoch = max(1, n // settings.batch_size)
    total = steps_per_epoch * settings.epochs

    def lr_at(step: int) -> float:
        if step < settings.warmup_steps:
            return settings.lr * (step + 1) / settings.warmup_steps
        p = (step - settings.warmup_steps) / max(1, total - settings.warmup_steps)
        return settings.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, p)))

    start_epoch = 0
    history: list[dict] = []
    ckpt = out_dir / "last.pt"
    if resume and ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        if (state.get("config") == config.to_json()
                and _resumable(state.get("settings") or {}) == _resumable(asdict(settings))):
            net.load_state_dict(state["state_dict"])
            opt.load_state_dict(state["optimizer"])
            rng.bit_generator.state = state["rng"]
            torch.set_rng_state(state["torch_rng"])
            start_epoch = int(state["epoch"])
            history = list(state["card"].get("history", []))
            log.info("resuming from %s at epoch %d", ckpt, start_epoch)
    t0 = time.perf_counter()
    for epoch in range(start_epoch, settings.epochs):
        net.train()
        order = rng.permutation(n)
        sums = np.zeros(3)
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{settings.epochs}", unit="batch",
                   disable=not progress, leave=False)
        for s in bar:
            step = epoch * steps_per_epoch + s
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            idx = order[s * settings.batch_size:(s + 1) * settings.batch_size]
            imgs = augment(views.images[idx], rng)
            h, r, w = heat[idx], reg[idx], weight[idx]
            th = teacher_heat[idx] if teacher_heat is not None else None
            flip = rng.random(len(idx)) < 0.5
            if flip.any():
                imgs[flip] = imgs[flip][..., ::-1]
                fh, fr, fw = zip(*(flip_targets(h[j], r[j], w[j]) for j in np.nonzero(flip)[0]))
                h, r, w = h.copy(), r.copy(), w.copy()
                h[flip], r[flip], w[flip] = np.stack(fh), np.stack(fr), np.stack(fw)
                if th is not None:
                    th[flip] = th[flip][..., ::-1]
            x = torch.from_numpy(np.ascontiguousarray(imgs[:, None])).to(device)
            heat_logits, reg_out = net(x)
            lf = focal_loss(heat_logits, torch.from_numpy(h).to(device))
            lr_ = gaussian_nll(reg_out, torch.from_numpy(r).to(device), torch.from_numpy(w).to(device))
            loss = lf + settings.nll_weight * lr_
            lk = torch.zeros(())
            if th is not None:
                lk = distill_loss(heat_logits, torch.from_numpy(np.ascontiguousarray(th)).to(device),
                                  torch.from_numpy(h).to(device))
                loss = loss + settings.kd_weight * lk
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
            opt.step()
            sums += (lf.detach().item(), lr_.detach().item(), lk.detach().item())
            bar.set_postfix(focal=f"{sums[0] / (s + 1):.3f}", nll=f"{sums[1] / (s + 1):.3f}",
                            **({"kd": f"{sums[2] / (s + 1):.3f}"} if th is not None else {}))
        bar.close()
        rec = {"epoch": epoch + 1, "focal": sums[0] / steps_per_epoch, "nll": sums[1] / steps_per_epoch,
               **({"kd": sums[2] / steps_per_epoch} if teacher_heat is not None else {}),
               "wall_s": round(time.perf_counter() - t0, 1)}
        history.append(rec)
        log.info("epoch %d: focal %.4f nll %.4f", epoch + 1, rec["focal"], rec["nll"])
        save_checkpoint(ckpt, net, config, {"history": history},
                        {"optimizer": opt.state_dict(), "epoch": epoch + 1, "settings": asdict(settings),
                         "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state()})
    (out_dir / "history.json").write_text(json.dumps(history, indent=1))
    net.cpu().eval()  # evaluation, calibration and export run on the CPU
    return net, history
