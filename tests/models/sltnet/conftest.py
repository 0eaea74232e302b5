"""Shared helpers of the SLTNet tests: small configs and a model with realistic BN statistics."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn

from foveate.models.sltnet.config import get_config
from foveate.models.sltnet.model import SLTNet

SMALL = get_config("ddd17").with_(name="small", height=64, width=96)


def calibrated_model(cfg=SMALL, seed: int = 0) -> SLTNet:
    """An SLTNet whose BN running statistics are the exact statistics of a random batch and whose
    BN affines are random, so every layer sees inputs of unit scale and fires at realistic rates."""
    torch.manual_seed(seed)
    model = SLTNet(cfg)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for bn in bns:
            bn.weight.uniform_(0.6, 1.6)
            bn.bias.uniform_(-0.3, 0.4)
            bn.momentum = None  # cumulative average: one pass gives the batch's exact statistics
            bn.reset_running_stats()
        model.train()
        model(torch.randn(4, cfg.bins, cfg.height, cfg.width))
        for bn in bns:
            bn.momentum = 0.1
    return model.eval()


import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One intra-op thread: on a shared 2-core machine two OpenMP threads can run 30x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def small_model() -> SLTNet:
    return calibrated_model()


@pytest.fixture(scope="session")
def small_cfg():
    return SMALL


@pytest.fixture(scope="session")
def calibrate():
    return calibrated_model


def _write_ddd17_layout(root, n_dirs=7, n_images=3, per_window=400, seed=0):
    rng = np.random.default_rng(seed)
    for d in range(n_dirs):
        folder = root / f"dir{d}"
        (folder / "index").mkdir(parents=True)
        (folder / "segmentation_masks").mkdir()
        n = per_window * (n_images + 1)
        t_ns = np.sort(rng.integers(0, 60_000_000 * (n_images + 1), n)).astype("<i8")
        xyp = np.stack([rng.integers(0, 346, n), rng.integers(0, 260, n), rng.integers(0, 2, n)], 1).astype("<i2")
        t_ns.tofile(folder / "events.dat.t")
        xyp.tofile(folder / "events.dat.xyp")
        rows = []
        for k in range(n_images):
            end = per_window * (k + 2)
            rows.append((t_ns[end - 1], end, end - per_window))
        np.save(folder / "index" / "index_50ms.npy", np.array(rows, dtype=np.int64))
        for k in range(n_images):
            mask = np.full((200, 346), d % 6, np.uint8)
            mask[:, :100] = 255
            cv2.imwrite(str(folder / "segmentation_masks" / f"segmentation_{k + 1:010d}.png"), mask)
    return root


@pytest.fixture(scope="session")
def write_ddd17():
    """Writes a small DDD17 dataset in the ESS layout (7 dir*/ folders) under a given folder."""
    return _write_ddd17_layout
