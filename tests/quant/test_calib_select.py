"""EDA-style calibration selection: density shares, a rare cluster is covered, diversity beats random."""

from __future__ import annotations

import numpy as np
import pytest

from foveate.models.quant.calib_select import coverage, embed, random_selection, select
from foveate.system.errors import ConfigError

from .nets import TinyNet, export, inputs


def _clusters(seed=0):
    rng = np.random.default_rng(seed)
    big = rng.normal(0, 0.3, (180, 4))
    mid = rng.normal(0, 0.3, (60, 4)) + [4, 0, 0, 0]
    rare = rng.normal(0, 0.3, (6, 4)) + [0, 8, 0, 0]  # the night scenes
    return np.concatenate([big, mid, rare])


def test_selection_is_unique_sized_and_covers_the_rare_cluster():
    emb = _clusters()
    idx = select(emb, 16, seed=0)
    assert len(idx) == 16 == len(set(idx.tolist()))
    assert ((idx >= 240) & (idx < 246)).any()
    assert ((idx < 180).sum() > (idx >= 180).sum())  # density: the big cluster gets most picks


def test_eda_covers_the_candidates_better_than_random():
    emb = _clusters(1)
    eda = coverage(emb, select(emb, 16, seed=0))
    rnd = [coverage(emb, random_selection(len(emb), 16, s)) for s in range(10)]
    assert eda < np.mean(rnd)


def test_bad_sizes_are_refused():
    with pytest.raises(ConfigError, match="calibration size"):
        select(np.zeros((5, 2)), 6)
    with pytest.raises(ConfigError, match="calibration size"):
        random_selection(5, 0)


def test_embedding_from_the_float_model():
    e = embed(export(TinyNet()), inputs(10))
    assert e.shape[0] == 10 and e.shape[1] >= 8 and np.isfinite(e).all()
