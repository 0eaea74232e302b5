"""Inference form: BN folding and RepConv collapse are exact; ONNX matches PyTorch; energy report."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from foveate.models.sltnet.blocks import ConvBN, RepConvBN
from foveate.models.sltnet.energy import E_AC_PJ, E_MAC_PJ, measure_energy, summarise
from foveate.models.sltnet.export import export_onnx, fold_for_inference, with_spikes
from foveate.models.sltnet.runtime import OnnxRunner, TorchRunner


def _randomise_bn(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in module.modules():
            if isinstance(bn, torch.nn.modules.batchnorm._BatchNorm):
                n = bn.num_features
                bn.weight.copy_(torch.rand(n, generator=g) + 0.5)
                bn.bias.copy_(torch.randn(n, generator=g) * 0.3)
                bn.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
                bn.running_var.copy_(torch.rand(n, generator=g) + 0.2)


def _official_bn_and_pad(bn, y):
    """The official BNAndPadLayer: BN, zero-pad by one, overwrite the border with BN(0)."""
    out = F.pad(bn(y), [1, 1, 1, 1])
    pv = (bn.bias - bn.running_mean * bn.weight / torch.sqrt(bn.running_var + bn.eps)).view(1, -1, 1, 1)
    out[:, :, :1, :] = pv
    out[:, :, -1:, :] = pv
    out[:, :, :, :1] = pv
    out[:, :, :, -1:] = pv
    return out


def test_conv_bn_fold_is_exact_in_float64():
    torch.manual_seed(1)
    m = ConvBN(6, 8, (3, 1), padding=(1, 0), lif=False).double()
    _randomise_bn(m)
    m.eval()
    x = torch.randn(1, 2, 6, 9, 7, dtype=torch.float64)
    with torch.no_grad():
        ref = m(x)
        m.fold_bn()
        got = m(x)
    assert isinstance(m.bn, torch.nn.Identity)
    assert torch.allclose(got, ref, rtol=0, atol=1e-12)


def test_repconv_padding_matches_official_layer_and_collapses_exactly():
    torch.manual_seed(2)
    m = RepConvBN(8).double()
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.3)
    _randomise_bn(m)
    m.eval()
    x = torch.randn(1, 2, 8, 7, 5, dtype=torch.float64)
    with torch.no_grad():
        y = m.conv1x1(x.flatten(0, 1))
        official = m.bn_out(m.bn_rep(m.pw1x1(m.dw3x3(_official_bn_and_pad(m.bn_pad, y)))))
        ours = m(x).flatten(0, 1)
        collapsed = m.collapse()(x).flatten(0, 1)
    assert torch.allclose(ours, official, rtol=0, atol=1e-12)
    assert torch.allclose(collapsed, official, rtol=0, atol=1e-11)


def test_folded_model_is_the_same_function(small_cfg, calibrate):
    model = calibrate(small_cfg).double()
    folded = fold_for_inference(model)
    assert not any(isinstance(m, RepConvBN) for m in folded.modules())
    assert all(isinstance(m.bn, torch.nn.Identity) for m in folded.modules() if isinstance(m, ConvBN))
    x = torch.randn(2, 5, small_cfg.height, small_cfg.width, dtype=torch.float64)
    with torch.no_grad():
        lo_a, sp_a = with_spikes(model)(x)
        lo_b, sp_b = with_spikes(folded)(x)
    rate = sp_a.mean().item()
    assert 0.02 < rate < 0.6, f"degenerate test model: firing rate {rate}"
    assert torch.equal(sp_a, sp_b)
    assert torch.allclose(lo_a, lo_b, rtol=0, atol=1e-9)


@pytest.fixture(scope="module")
def onnx_pair(small_cfg, calibrate):
    model = calibrate(small_cfg)
    return model, export_onnx(model, with_spikes=True)


def test_onnx_matches_pytorch_spikes_and_logits(onnx_pair, small_cfg):
    import onnxruntime as ort

    model, data = onnx_pair
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    agree, total = 0, 0
    for seed in range(3):
        x = torch.randn(1, 5, small_cfg.height, small_cfg.width, generator=torch.Generator().manual_seed(seed))
        logits, spikes = sess.run(None, {"voxel": x.numpy()})
        with torch.no_grad():
            lo_ref, sp_ref = with_spikes(model)(x)
        agree += int((spikes == sp_ref.numpy()).sum())
        total += spikes.size
        np.testing.assert_allclose(logits, lo_ref.numpy(), atol=1e-3, rtol=0)
    assert agree / total >= 0.999


def test_onnx_and_torch_runners_share_one_interface(small_cfg, calibrate, tmp_path):
    model = calibrate(small_cfg)
    path = tmp_path / "m.onnx"
    export_onnx(model, path)
    ort_seg, torch_seg = OnnxRunner(path), TorchRunner(model)
    assert ort_seg.config == torch_seg.config == small_cfg
    v = np.random.default_rng(0).normal(size=(2, 5, small_cfg.height, small_cfg.width)).astype(np.float32)
    a, b = ort_seg.predict(v), torch_seg.predict(v)
    assert a.shape == (2, small_cfg.height, small_cfg.width) and a.dtype == np.uint8
    assert (a == b).mean() > 0.999
    with pytest.raises(ValueError, match="expected"):
        ort_seg.predict(v[:, :, :32])


def test_energy_report_costs_real_inputs_as_macs_and_spikes_as_sops(small_cfg, calibrate):
    model = calibrate(small_cfg)
    x = torch.randn(2, 5, small_cfg.height, small_cfg.width)
    rows = {r.name: r for r in measure_energy(model, [x])}
    first = rows["stem.0.conv"]  # voxel grid input: real-valued
    assert not first.binary_input and first.energy_pj == pytest.approx(first.macs * E_MAC_PJ)
    cls = rows["classifier"]  # fed by bn_lif_7 spikes
    assert cls.binary_input and 0 < cls.firing_rate < 1
    assert cls.sops == pytest.approx(cls.firing_rate * cls.macs)
    assert cls.energy_pj == pytest.approx(cls.sops * E_AC_PJ)
    assert not rows["stage1.0.conv3x1.conv"].binary_input  # after the no-BN 1x1: real-valued
    assert rows["stage1.0.conv1x1_in.conv"].binary_input
    s = summarise(list(rows.values()))
    assert 0 < s["energy_mj"] < s["ann_equivalent_energy_mj"]


def test_segmenter_fits_the_run_loop_protocol(small_cfg, calibrate):
    from foveate.models.sltnet.segmenter import SLTNetSegmenter
    from foveate.system.inference import Segmenter
    from foveate.system.types import EventPacket, make_events

    seg = SLTNetSegmenter(runner=TorchRunner(calibrate(small_cfg)), crop_bottom=10)
    assert isinstance(seg, Segmenter) and seg.classes == small_cfg.classes
    rng = np.random.default_rng(0)
    n = 3000
    ev = make_events(rng.integers(0, 200, n), rng.integers(0, 150, n), np.sort(rng.integers(0, 50_000, n)),
                     rng.integers(0, 2, n))
    prob = seg.segment_events(EventPacket(ev, (200, 150), 0, 50_000))
    assert prob.shape == (6, 150, 200) and prob.dtype == np.float32
    assert np.allclose(prob[:, :140].sum(0), 1.0, atol=1e-5) and np.all(prob[:, 140:] == 0)


def test_onnx_export_with_more_time_steps(small_cfg, calibrate):
    cfg = small_cfg.with_(height=32, width=48)
    model = calibrate(cfg)
    runner = OnnxRunner(export_onnx(model, time_steps=3))
    assert runner.config.time_steps == 3
    x = np.random.default_rng(1).normal(size=(1, 5, 32, 48)).astype(np.float32)
    model3 = copy.deepcopy(model)  # same weights, T=3
    model3.config = cfg.with_(time_steps=3)
    with torch.no_grad():
        ref = model3(torch.from_numpy(x)).numpy()
        ref1 = model(torch.from_numpy(x)).numpy()
    got = runner.logits(x)
    np.testing.assert_allclose(got, ref, atol=1e-3, rtol=0)
    assert not np.allclose(got, ref1, atol=1e-3)


def test_full_res_skip_variant_folds_exports_and_reloads_exactly(small_cfg, calibrate, tmp_path):
    """The optional full-resolution skip (not in the paper) goes through folding, ONNX and the runners."""
    import onnxruntime as ort

    cfg = small_cfg.with_(full_res_skip=True)
    model = calibrate(cfg)
    x = torch.randn(1, 5, cfg.height, cfg.width, generator=torch.Generator().manual_seed(3))
    m64 = copy.deepcopy(model).double()
    with torch.no_grad():
        lo_ref, sp_ref = with_spikes(model)(x)
        lo_a, sp_a = with_spikes(m64)(x.double())
        lo_b, sp_b = with_spikes(fold_for_inference(m64))(x.double())
    assert torch.equal(sp_a, sp_b) and torch.allclose(lo_a, lo_b, atol=1e-9, rtol=0)  # folding is exact
    sess = ort.InferenceSession(export_onnx(model, with_spikes=True), providers=["CPUExecutionProvider"])
    logits, spikes = sess.run(None, {"voxel": x.numpy()})
    assert (spikes == sp_ref.numpy()).mean() >= 0.999
    # a last-layer spike that float rounding flips moves its pixel's logits by a weight: allow those few
    assert np.isclose(logits, lo_ref.numpy(), atol=1e-3, rtol=0).mean() >= 0.995
    path = tmp_path / "skip.onnx"
    export_onnx(model, path)
    assert OnnxRunner(path).config == cfg  # the option travels in the ONNX metadata
