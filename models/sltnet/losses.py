"""SLTNet's training loss: OHEM cross-entropy on the main head + 0.4 x cross-entropy on the auxiliary head.

Outside the paper, optionally plus a weighted Lovasz-softmax term on the main head, a surrogate of
the per-class IoU that the evaluation averages.
"""

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


def _lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss w.r.t. sorted errors (Berman et al., alg. 1)."""
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1.0 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    if gt_sorted.numel() > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
    return jaccard


def lovasz_softmax(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Lovasz-softmax loss (Berman, Rannen Triki & Blaschko, CVPR 2018) over the whole batch.

    ``logits`` (B, C, H, W), ``target`` (B, H, W). The mean over the classes present in the
    batch's labels of the Lovasz extension of ``1 - IoU_c``, evaluated at the softmax
    probabilities: a convex surrogate that ranks each class's pixel errors and weighs them by
    their effect on that class's IoU, so a class of 0.1 % of the pixels counts as much as one of
    50 %, as it does in mIoU. Pixels labelled ``ignore_index`` are left out.
    """
    c = logits.shape[1]
    probs = F.softmax(logits, 1).permute(0, 2, 3, 1).reshape(-1, c)
    labels = target.long().reshape(-1)
    valid = labels != ignore_index
    probs, labels = probs[valid], labels[valid]
    losses = []
    for k in range(c):
        fg = (labels == k).float()
        if fg.sum() == 0:
            continue
        errors = (fg - probs[:, k]).abs()
        errors_sorted, perm = torch.sort(errors, descending=True)
        losses.append(torch.dot(errors_sorted, _lovasz_grad(fg[perm])))
    if not losses:
        return logits.sum() * 0.0
    return torch.stack(losses).mean()


def sltnet_loss(out: torch.Tensor, aux: torch.Tensor | None, target: torch.Tensor, aux_weight: float = 0.4,
                ohem: bool = True, class_weight: torch.Tensor | None = None, lovasz_weight: float = 0.0) -> torch.Tensor:
    if ohem:
        main = ohem_cross_entropy(out, target, weight=class_weight)
    else:
        main = F.cross_entropy(out, target.long(), weight=class_weight, ignore_index=IGNORE_INDEX)
    if lovasz_weight > 0:
        main = main + lovasz_weight * lovasz_softmax(out, target)
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
