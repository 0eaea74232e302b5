"""Calibration-set selection in the spirit of EDA-DM's TDAC: density and diversity of features.

EDA-DM (arXiv 2401.04585) picks calibration samples from the density and diversity of the
float model's feature maps so that they follow the whole data distribution. Here:

1. **Embed** every candidate with the float model: the spatial mean of |activation| per
   channel of three convolutions (a third of the way in, two thirds, the last), the
   statistics activation ranges depend on; each feature standardised over the candidates.
2. **Density**: k-means (``scipy.cluster.vq.kmeans2``, seeded) into ``k`` clusters; each
   cluster gets a share of ``n - n_diverse`` picks proportional to its size (at least one),
   filled with the members nearest its centre.
3. **Diversity**: ``n_diverse`` (a quarter) farthest-point picks: the candidates farthest
   from everything chosen so far (rare scenes, night, clutter).

:func:`random_selection` is the baseline of the same size.
"""

from __future__ import annotations

import numpy as np
import onnx

from foveate.system.errors import ConfigError


def embed(proto: onnx.ModelProto, inputs: np.ndarray, threads: int = 2) -> np.ndarray:
    """``(N, D)`` standardised feature embedding of ``inputs`` (``[N, ...]``, batch added per sample)."""
    from foveate.models.quant.ptq import input_name, session

    convs = [n.output[0] for n in proto.graph.node if n.op_type == "Conv"]
    if not convs:
        raise ConfigError("model has no Conv nodes to embed calibration candidates with")
    picks = sorted({convs[len(convs) // 3], convs[(2 * len(convs)) // 3], convs[-1]}, key=convs.index)
    p = onnx.ModelProto()
    p.CopyFrom(proto)
    for t in picks:
        p.graph.output.append(onnx.helper.make_empty_tensor_value_info(t))
    sess = session(p, threads)
    name = input_name(proto)
    rows = []
    for x in inputs:
        outs = sess.run(picks, {name: np.ascontiguousarray(x[None], dtype=np.float32)})
        rows.append(np.concatenate([np.abs(o).mean(axis=tuple(i for i in range(o.ndim) if i != 1)) for o in outs]))
    e = np.asarray(rows, np.float64)
    sd = e.std(0)
    return (e - e.mean(0)) / np.where(sd > 0, sd, 1.0)


def select(emb: np.ndarray, n: int, clusters: int | None = None, diverse_share: float = 0.25, seed: int = 0
           ) -> np.ndarray:
    """Indices of ``n`` calibration samples chosen by density (k-means) and diversity (farthest points)."""
    from scipy.cluster.vq import kmeans2

    m = len(emb)
    if not 0 < n <= m:
        raise ConfigError(f"calibration size {n}: expected 1..{m} (the number of candidates)")
    if n == m:
        return np.arange(m)
    n_div = int(round(n * diverse_share))
    n_den = n - n_div
    k = clusters or max(1, min(n_den, int(np.sqrt(m))))
    centres, labels = kmeans2(emb, k, seed=seed, minit="++")
    sizes = np.bincount(labels, minlength=k)
    live = np.flatnonzero(sizes)
    quota = np.zeros(k, int)
    quota[live] = np.maximum(1, np.floor(n_den * sizes[live] / m)).astype(int)
    while quota.sum() > n_den:  # too many (the at-least-one rule): trim the largest
        quota[np.argmax(quota)] -= 1
    while quota.sum() < n_den:  # hand the remainder to the clusters with the most unpicked members
        quota[np.argmax(np.where(sizes > quota, sizes - quota, -1))] += 1
    chosen: list[int] = []
    for c in live:
        members = np.flatnonzero(labels == c)
        d = np.linalg.norm(emb[members] - centres[c], axis=1)
        chosen.extend(members[np.argsort(d)[:quota[c]]].tolist())
    chosen_arr = np.asarray(chosen, int)
    dmin = np.min(np.linalg.norm(emb[:, None] - emb[chosen_arr][None], axis=2), axis=1) if len(chosen_arr) else \
        np.full(m, np.inf)
    for _ in range(n - len(chosen)):
        dmin[chosen] = -1.0
        j = int(np.argmax(dmin))
        chosen.append(j)
        dmin = np.minimum(dmin, np.linalg.norm(emb - emb[j], axis=1))
    return np.asarray(sorted(chosen), int)


def random_selection(m: int, n: int, seed: int = 0) -> np.ndarray:
    if not 0 < n <= m:
        raise ConfigError(f"calibration size {n}: expected 1..{m} (the number of candidates)")
    return np.sort(np.random.default_rng(seed).choice(m, n, replace=False))


def coverage(emb: np.ndarray, idx: np.ndarray) -> float:
    """Mean distance from every candidate to its nearest selected sample (lower: better coverage)."""
    d = np.linalg.norm(emb[:, None] - emb[idx][None], axis=2)
    return float(d.min(1).mean())
