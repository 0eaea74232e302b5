"""SLTNet's training loss: OHEM cross-entropy on the main head + 0.4 x cross-entropy on the auxiliary head."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from foveate.models.sltnet.config import IGNORE_INDEX


def ohem_cross_entropy(logits: torch.Tensor, target: torch.Tensor, thresh: float = 0.7,
                       min_kept: int | None = None, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Cross-entropy over the hard pixels only (online hard example mining).

    Keeps pixels whose probability of the true class is at most ``max(thresh, p_k)``, where
    ``p_k`` is the ``min_kept``-th smallest such probability (default ``B*H*W / 16``): at least
    ``min_kept`` pixels always count. Pixels labelled ``ignore_index`` never do.
    """
    b, _, h, w = logits.shape
    if min_kept is None:
        min_kept = b * h * w // 16
    target = target.long()
    valid = target != ignore_index
    n_valid = int(valid.sum())
    if n_valid >= min_kept and n_valid > 0 and min_kept > 0:
        with torch.no_grad():
            prob = F.softmax(logits, 1)
            p_true = prob.gather(1, target.clamp(0, logits.shape[1] - 1).unsqueeze(1)).squeeze(1)
            p_true = p_true.masked_fill(~valid, 1.0)
            kth = torch.kthvalue(p_true.reshape(-1), min(min_kept, p_true.numel())).values
            threshold = max(thresh, float(kth))
            keep = valid & (p_true <= threshold)
        target = target.masked_fill(~keep, ignore_index)
    if not (target != ignore_index).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits, target, ignore_index=ignore_index)


def sltnet_loss(out: torch.Tensor, aux: torch.Tensor | None, target: torch.Tensor, aux_weight: float = 0.4,
                ohem: bool = True) -> torch.Tensor:
    main = ohem_cross_entropy(out, target) if ohem else F.cross_entropy(out, target.long(), ignore_index=IGNORE_INDEX)
    if aux is None:
        return main
    return main + aux_weight * F.cross_entropy(aux, target.long(), ignore_index=IGNORE_INDEX)
