"""SLTNet architecture: faithfulness figures, shapes, time steps, the LIF neuron and its surrogate."""

from __future__ import annotations

import math

import numpy as np

import pytest
import torch

from foveate.models.sltnet.complexity import faithfulness_report, official_unused_params
from foveate.models.sltnet.config import get_config
from foveate.models.sltnet.model import SLTNet
from foveate.models.sltnet.neuron import LIF, TanhSurrogate
from foveate.system.errors import ConfigError


def test_parameter_count_matches_official_forward_modules():
    model = SLTNet("ddd17")
    rep = faithfulness_report(model)
    assert rep["params"] == 368_932
    # what we build + what the official code builds but never runs = its logged total
    assert rep["params_plus_unused"] == 413_508
    assert sum(official_unused_params().values()) == 44_576
    assert rep["params_ok"] and rep["gmacs_ok"]
    assert abs(rep["gmacs"] - 1.39) / 1.39 < 0.05


def test_dsec_config_differs_only_in_classifier():
    assert sum(p.numel() for p in SLTNet("dsec").parameters()) == 368_932 + 5 * 16


def test_forward_shapes_train_and_eval(small_cfg):
    torch.manual_seed(0)
    model = SLTNet(small_cfg).train()
    x = torch.randn(2, 5, small_cfg.height, small_cfg.width)
    out, aux = model(x)
    assert out.shape == aux.shape == (2, 6, small_cfg.height, small_cfg.width)
    (out.mean() + aux.mean()).backward()
    grad = model.stem[0].conv.weight.grad
    assert grad is not None and grad.abs().sum() > 0, "no surrogate gradient reached the first layer"
    model.eval()
    with torch.no_grad():
        y = model(x)
    assert isinstance(y, torch.Tensor) and y.shape == out.shape


def test_more_time_steps_run_and_change_the_dynamics(small_cfg, calibrate):
    m1 = calibrate(small_cfg)
    m3 = calibrate(small_cfg.with_(time_steps=3))
    x = torch.randn(1, 5, small_cfg.height, small_cfg.width)
    with torch.no_grad():
        y1, y3 = m1(x), m3(x)
        y_seq = m3(x.unsqueeze(0).expand(3, *x.shape))
    assert y3.shape == y1.shape
    assert torch.equal(y3, y_seq)  # [B,C,H,W] input is repeated over T
    assert not torch.equal(y1, y3)


def test_input_size_must_be_multiple_of_8():
    with pytest.raises(ConfigError, match="multiples of 8"):
        SLTNet(get_config("ddd17").with_(width=346))


def test_lif_dynamics_leak_threshold_hard_reset():
    lif = LIF()
    x = torch.tensor([0.3, 0.3, 0.6, 0.0, 0.45]).view(5, 1)
    # u: 0.3 -> 0.375 -> 0.69375 (spike, reset 0) -> 0 -> 0.45
    assert lif(x).view(-1).tolist() == [0.0, 0.0, 1.0, 0.0, 0.0]
    # exactly at threshold does not fire (u > 0.5, as the official code)
    assert lif(torch.tensor([[0.5]])).item() == 0.0
    assert lif(torch.tensor([[0.5001]])).item() == 1.0


def test_surrogate_gradient_is_the_official_tanh_shape():
    u = torch.linspace(-0.5, 1.5, 81, dtype=torch.float64, requires_grad=True)
    LIF()(u.view(1, -1)).sum().backward()
    v = u.detach()
    # official: d/dv of (tanh(3(clip(v,0,1)-0.5)) + tanh(1.5)) / (2 tanh(1.5))
    want = torch.where((v >= 0) & (v <= 1), 3 * (1 - torch.tanh(3 * (v - 0.5)) ** 2) / (2 * math.tanh(1.5)),
                       torch.zeros_like(v))
    assert torch.allclose(u.grad, want)
    assert u.grad.max().item() == pytest.approx(1.5 / math.tanh(1.5), rel=1e-6)
    # the primitive function is the official smooth step
    sg = TanhSurrogate(spiking=False)
    assert sg(torch.tensor([-1.0, 0.0, 1.0])).tolist() == pytest.approx([0.0, 0.5, 1.0])


def test_ohem_keeps_the_hard_pixels_like_the_official_loss():
    import torch.nn.functional as F

    from foveate.models.sltnet.losses import ohem_cross_entropy, sltnet_loss

    torch.manual_seed(0)
    logits = torch.randn(2, 6, 8, 8) * 3
    target = torch.randint(0, 6, (2, 8, 8))
    target[0, 0] = 255
    # reference: the official ProbOhemCrossEntropy2d computation, sort-based
    valid = target != 255
    p = F.softmax(logits, 1).gather(1, target.clamp(0, 5).unsqueeze(1)).squeeze(1)[valid]
    pl = F.cross_entropy(logits, target, ignore_index=255, reduction="none")[valid]
    sp, ind = p.sort()
    min_kept = 2 * 8 * 8 // 16
    thr = max(float(sp[min(min_kept, sp.numel() - 1)]), 0.7)
    ref = pl[ind][sp < thr].mean()
    assert torch.allclose(ohem_cross_entropy(logits, target), ref)
    aux = torch.randn(2, 6, 8, 8)
    want = ref + 0.4 * F.cross_entropy(aux, target, ignore_index=255)
    assert torch.allclose(sltnet_loss(logits, aux, target), want)
    assert ohem_cross_entropy(logits, torch.full_like(target, 255)).item() == 0.0


def test_class_weighted_ohem_is_the_weighted_mean_of_the_kept_pixels():
    import torch.nn.functional as F

    from foveate.models.sltnet.losses import ohem_cross_entropy

    torch.manual_seed(1)
    logits = torch.randn(2, 6, 8, 8) * 3
    target = torch.randint(0, 6, (2, 8, 8))
    w = torch.tensor([0.5, 1.0, 2.0, 0.25, 8.0, 3.0])
    # all pixels kept (thresh 1.01): the weighted OHEM is F.cross_entropy's weighted mean
    want = F.cross_entropy(logits, target, weight=w)
    assert torch.allclose(ohem_cross_entropy(logits, target, thresh=1.01, weight=w), want)
    # equal weights change nothing
    assert torch.allclose(ohem_cross_entropy(logits, target, weight=torch.full((6,), 3.0)),
                          ohem_cross_entropy(logits, target))


def test_lovasz_softmax_equals_one_minus_iou_at_hard_predictions():
    from foveate.models.sltnet.losses import lovasz_softmax, sltnet_loss

    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (2, 6, 7), generator=g)
    target[0, 0, :3] = 255  # ignored pixels
    pred = torch.where(torch.rand(target.shape, generator=g) < 0.7, target.clamp(max=3), torch.randint(0, 5, target.shape, generator=g))
    logits = torch.nn.functional.one_hot(pred, 5).permute(0, 3, 1, 2).float() * 60.0  # softmax is one-hot
    valid = target != 255
    ious = []
    for c in range(4):  # class 4 is predicted but never labelled: not counted, as in the paper's 'present'
        t, q = (target == c) & valid, (pred == c) & valid
        ious.append((t & q).sum().item() / (t | q).sum().item())
    assert float(lovasz_softmax(logits, target)) == pytest.approx(1 - np.mean(ious), abs=1e-5)
    assert float(lovasz_softmax(torch.nn.functional.one_hot(target.clamp(max=3), 5).permute(0, 3, 1, 2).float() * 60.0,
                                target)) == pytest.approx(0.0, abs=1e-6)
    # As a term of the training loss: added to the main head only, with gradients.
    x = torch.randn(2, 5, 6, 7, requires_grad=True)
    base = sltnet_loss(x, None, target, ohem=False)
    both = sltnet_loss(x, None, target, ohem=False, lovasz_weight=0.5)
    assert float((both - base).detach()) == pytest.approx(0.5 * float(lovasz_softmax(x, target).detach()), rel=1e-5)
    both.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_balanced_class_weights_follow_sqrt_median_frequency():
    from foveate.models.sltnet.losses import balanced_class_weights

    counts = np.array([3300, 4900, 37, 1700, 0, 33])
    w = balanced_class_weights(counts)
    freq = counts / counts.sum()
    assert w[4] == 0.0  # absent class
    present = counts > 0
    raw = np.sqrt(np.median(freq[present]) / freq[present])
    assert np.allclose(w[present] / w[present][0], raw / raw[0])  # the sqrt median-frequency shape
    assert (w * freq).sum() == pytest.approx(1.0)  # weighted pixel mean 1: the loss keeps its scale
    assert w[2] > w[3] > w[0] > w[1]  # rarer classes weigh more
    with pytest.raises(ValueError):
        balanced_class_weights(np.zeros(6))


def test_confusion_matrix_summary_matches_hand_counts():
    from foveate.models.sltnet.metrics import ConfusionMatrix

    cm = ConfusionMatrix(3)
    truth = np.array([0, 0, 0, 1, 1, 2, 255])
    pred = np.array([0, 0, 1, 1, 0, 1, 2])  # the ignored pixel does not count
    cm.update(pred, truth)
    s = cm.summary(("a", "b", "c"))
    assert s["confusion_matrix"] == [[2, 1, 0], [1, 1, 0], [0, 1, 0]]
    assert s["per_class_iou"] == {"a": pytest.approx(2 / 4), "b": pytest.approx(1 / 4), "c": 0.0}
    assert s["per_class_recall"] == {"a": pytest.approx(2 / 3), "b": pytest.approx(1 / 2), "c": 0.0}
    assert s["per_class_precision"] == {"a": pytest.approx(2 / 3), "b": pytest.approx(1 / 3), "c": None}
    assert s["pixel_accuracy"] == pytest.approx(3 / 6) and s["pixels"] == 6


def test_grid_round_trip_keeps_what_the_grid_can_hold_and_loses_the_rest():
    from foveate.models.sltnet.metrics import grid_round_trip_scores, grid_round_trip

    lab = np.zeros((8, 8), np.uint8)
    lab[2:4, 4:6] = 5  # a 2x2 block on the 2x grid: representable
    lab[5, 1] = 4  # one pixel off the grid points: a 2x coarser grid cannot draw it
    lab[7, 7] = 255
    for mode in ("majority", "bilinear"):
        out = grid_round_trip(lab, 1, 6, mode)
        assert np.array_equal(out, lab)  # factor 1: the labels unchanged
        out = grid_round_trip(lab, 2, 6, mode)
        assert out[7, 7] == 255 and np.all(out[2:4, 4:6] == 5) and not np.any(out == 4)
    res = grid_round_trip_scores([lab, lab], 6, 2, ("a", "b", "c", "d", "human", "vehicle"))
    for mode in ("majority", "bilinear"):
        iou = res[mode]["per_class_iou"]
        assert iou["human"] == 0.0 and iou["b"] is None  # absent from truth and predictions: no IoU
    assert res["majority"]["per_class_iou"]["vehicle"] == 1.0  # exactly the block, nothing around it
    assert res["majority"]["per_class_iou"]["a"] == pytest.approx(58 / 59)  # one human pixel became background
    with pytest.raises(ValueError, match="unknown"):
        grid_round_trip(lab, 2, 6, "cubic")


def test_full_res_skip_is_an_option_the_named_configs_leave_off():
    from foveate.models.sltnet.config import CONFIGS, SLTNetConfig
    from foveate.models.sltnet.model import SLTNet

    assert not any(c.full_res_skip for c in CONFIGS.values())
    cfg = CONFIGS["twin"]
    base = SLTNet(cfg)
    skip = SLTNet(cfg.with_(full_res_skip=True))
    assert not hasattr(base, "skip0")
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(skip) - n(base) == 32 * 16 + 2 * 16  # a 1x1 conv 32 -> 16 and its BN
    skip.eval()
    with torch.no_grad():
        assert skip(torch.zeros(1, 5, cfg.height, cfg.width)).shape == (1, 6, cfg.height, cfg.width)
    d = cfg.with_(full_res_skip=True).as_dict()
    assert SLTNetConfig.from_dict(d).full_res_skip is True
    assert SLTNetConfig.from_dict({k: v for k, v in d.items() if k != "full_res_skip"}).full_res_skip is False
    with pytest.raises(ConfigError, match="full_res_skip must be true or false"):
        SLTNetConfig.from_dict({**d, "full_res_skip": "yes"}, "card.json")
