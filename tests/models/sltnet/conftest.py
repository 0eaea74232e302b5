"""Shared helpers of the SLTNet tests: small configs and a model with realistic BN statistics."""

from __future__ import annotations

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


@pytest.fixture(scope="module")
def small_model() -> SLTNet:
    return calibrated_model()


@pytest.fixture(scope="session")
def small_cfg():
    return SMALL


@pytest.fixture(scope="session")
def calibrate():
    return calibrated_model
