"""SLTNet's training loss: OHEM cross-entropy on the main head + 0.4 x cross-entropy on the auxiliary head."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from foveate.models.sltnet.config import IGNORE_INDEX


def ohem_cross_entropy(logits: torch.Tensor, target: torch.Tensor, thresh: float = 0.7,
                       min_kept: int | None = None, ignore_index: int = IGNORE_INDEX,
                       weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy averaged over the hard pixels only (the official ``ProbOhemCrossEntropy2d``).

    Among the labelled pixels, sorted by the predicted probability of their true class, ``p_k``
    is the probability at index ``min(min_kept, n - 1)`` (default ``min_kept = B*H*W / 16``);
    pixels with a probability below ``max(thresh, p_k)`` count. Pixels labelled
    ``ignore_index`` never do. With class ``weight`` [C] the kept pixels are averaged with
    their class weights (a weighted mean, as ``F.cross_entropy(weight=...)`` does).
    """
    b, _, h, w = logits.shape
    if min_kept is None:
        min_kept = b * h * w // 16
    target = target.long()
    valid = target != ignore_index
    losses = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="none")[valid]
    pixel_w = weight[target[valid]] if weight is not None else None
    n = losses.numel()
    if n == 0:
        return logits.sum() * 0.0
    with torch.no_grad():
        p_true = F.softmax(logits, 1).gather(1, target.clamp(0, logits.shape[1] - 1).unsqueeze(1)).squeeze(1)[valid]
        kth = torch.kthvalue(p_true, min(min_kept, n - 1) + 1).values
        keep = p_true < max(thresh, float(kth))
    if not keep.any():
        return logits.sum() * 0.0
    if pixel_w is None:
        return losses[keep].mean()
    return (losses[keep] * pixel_w[keep]).sum() / pixel_w[keep].sum()


def sltnet_loss(out: torch.Tensor, aux: torch.Tensor | None, target: torch.Tensor, aux_weight: float = 0.4,
                ohem: bool = True, class_weight: torch.Tensor | None = None) -> torch.Tensor:
    if ohem:
        main = ohem_cross_entropy(out, target, weight=class_weight)
    else:
        main = F.cross_entropy(out, target.long(), weight=class_weight, ignore_index=IGNORE_INDEX)
    if aux is None:
        return main
    return main + aux_weight * F.cross_entropy(aux, target.long(), weight=class_weight, ignore_index=IGNORE_INDEX)


def balanced_class_weights(pixel_counts: np.ndarray) -> np.ndarray:
    """Square-root median-frequency weights ``sqrt(median(f) / f_c)`` for pixel counts [C].

    Median-frequency balancing (Eigen & Fergus 2015) under a square root, so that a class
    with 1/600 of the largest class's pixels (a person in a wide street view) weighs about
    25x, not 600x, which would trade its recall for false positives. Classes absent from
    the counts get weight 0 (they cannot be learned from these data). Scaled so that the
    weighted mean over pixels is 1, which keeps the loss scale of the unweighted recipe.
    """
    counts = np.asarray(pixel_counts, dtype=np.float64)
    present = counts > 0
    if not present.any():
        raise ValueError("no labelled pixels to weigh classes by")
    freq = counts / counts.sum()
    w = np.zeros_like(freq)
    w[present] = np.sqrt(np.median(freq[present]) / freq[present])
    return w / float((w * freq).sum())
