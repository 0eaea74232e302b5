"""SLTNet's training loss: OHEM cross-entropy on the main head + 0.4 x cross-entropy on the auxiliary head."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from foveate.models.sltnet.config import IGNORE_INDEX


def ohem_cross_entropy(logits: torch.Tensor, target: torch.Tensor, thresh: float = 0.7,
                       min_kept: int | None = None, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Cross-entropy averaged over the hard pixels only (the official ``ProbOhemCrossEntropy2d``).

    Among the labelled pixels, sorted by the predicted probability of their true class, ``p_k``
    is the probability at index ``min(min_kept, n - 1)`` (default ``min_kept = B*H*W / 16``);
    pixels with a probability below ``max(thresh, p_k)`` count. Pixels labelled
    ``ignore_index`` never do.
    """
    b, _, h, w = logits.shape
    if min_kept is None:
        min_kept = b * h * w // 16
    target = target.long()
    valid = target != ignore_index
    losses = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="none")[valid]
    n = losses.numel()
    if n == 0:
        return logits.sum() * 0.0
    with torch.no_grad():
        p_true = F.softmax(logits, 1).gather(1, target.clamp(0, logits.shape[1] - 1).unsqueeze(1)).squeeze(1)[valid]
        kth = torch.kthvalue(p_true, min(min_kept, n - 1) + 1).values
        keep = p_true < max(thresh, float(kth))
    if not keep.any():
        return logits.sum() * 0.0
    return losses[keep].mean()


def sltnet_loss(out: torch.Tensor, aux: torch.Tensor | None, target: torch.Tensor, aux_weight: float = 0.4,
                ohem: bool = True) -> torch.Tensor:
    main = ohem_cross_entropy(out, target) if ohem else F.cross_entropy(out, target.long(), ignore_index=IGNORE_INDEX)
    if aux is None:
        return main
    return main + aux_weight * F.cross_entropy(aux, target.long(), ignore_index=IGNORE_INDEX)
