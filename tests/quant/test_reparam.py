"""RepQuant-style folding: exact float equivalence, equalised ranges, unsafe sites untouched."""

from __future__ import annotations

import numpy as np
import torch

from foveate.models.quant.ptq import session
from foveate.models.quant.reparam import absorb_lif_scales, candidates, channel_ranges, equalize, lif_input_ranges

from .nets import TinyNet, export, inputs


def _run(proto, xs):
    s = session(proto, 1, optimize=False)
    return np.concatenate([s.run(None, {"x": x[None]})[0] for x in xs])


def test_conv_conv_equalisation_is_exact_and_equalises_ranges():
    proto = export(TinyNet())
    xs = inputs(6)
    feeds = [{"x": x[None]} for x in xs[:4]]
    q, folds = equalize(proto, feeds)
    # c1 (-> c2, dw through relu+maxpool), c3 (-> c4 through relu), c4 (-> head, linear); not c2/dw (add)
    assert sorted(f.producer for f in folds) == ['/c1/Conv', '/c3/Conv', '/c4/Conv'], folds
    assert all(f.spread_before > 2 and abs(f.spread_after - 1) < 1e-9 for f in folds)
    np.testing.assert_allclose(_run(q, xs), _run(proto, xs), rtol=1e-4, atol=1e-6)  # float32 rounding only
    # the equalised tensors now have equal per-channel ranges on the calibration inputs
    r = channel_ranges(q, feeds, [f.tensor for f in folds])
    for f in folds:
        live = r[f.tensor] > 1e-6
        assert r[f.tensor][live].max() / r[f.tensor][live].min() < 1 + 1e-4


def test_sites_skip_additions_and_graph_outputs():
    proto = export(TinyNet())
    names = [conv.name for conv, _, _ in candidates(proto)]
    assert sorted(names) == ["/c1/Conv", "/c3/Conv", "/c4/Conv"], names


def test_partial_migration_is_exact_too():
    proto = export(TinyNet())
    xs = inputs(3, seed=1)
    q, folds = equalize(proto, [{"x": x[None]} for x in xs], alpha=0.5)
    assert all(1 < f.spread_after < f.spread_before for f in folds)
    np.testing.assert_allclose(_run(q, xs), _run(proto, xs), rtol=1e-4, atol=1e-6)  # float32 rounding only


def test_lif_threshold_absorption_keeps_every_spike():
    from foveate.models.sltnet.export import fold_for_inference, with_spikes
    from foveate.models.sltnet.model import SLTNet

    torch.manual_seed(0)
    model = SLTNet("twin")
    model.config = model.config.with_(height=32, width=48, time_steps=2)
    net = fold_for_inference(model).double()
    net.config = model.config
    x = torch.randn(3, model.config.bins, 32, 48, dtype=torch.float64)
    ref_logits, ref_spikes = with_spikes(net)(x)
    ranges = lif_input_ranges(net, [x[:2]])
    spread = absorb_lif_scales(net, ranges)
    assert len(spread) >= 2 and max(spread.values()) > 1.2
    logits, spikes = with_spikes(net)(x)
    assert ref_spikes.sum() > 0 and torch.equal(spikes, ref_spikes)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-9, atol=1e-9)
    after = lif_input_ranges(net, [x[:2]])
    for name in spread:
        live = after[name] > 1e-6
        assert after[name][live].max() / after[name][live].min() < 1 + 1e-6
