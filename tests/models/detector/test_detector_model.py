"""Targets, decoding (in graph and in numpy), ONNX export and the two runtimes behind the Detector protocol."""

import numpy as np
import pytest
import torch

from foveate.models.detector.config import DetectorConfig
from foveate.models.detector.export import decode_node_names, decode_raw, export_onnx
from foveate.models.detector.model import DET_COLUMNS, Decode, DetectorNet
from foveate.models.detector.runtime import OnnxDetector, TorchDetector, load_detector
from foveate.models.detector.targets import distill_loss, encode, flip_targets, focal_loss, gaussian_nll
from foveate.system.errors import ConfigError, FoveateError
from foveate.system.inference import Detector
from foveate.system.types import Detection

SMALL = dict(input_size=(64, 96), widths=(4, 8, 8, 8, 8), neck=8, head=8)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    n = DetectorNet(DetectorConfig(**SMALL, centre_var_scale=1.7, size_var_scale=0.6, input_norm="standardize"))
    with torch.no_grad():  # non-trivial BN statistics so export must fold them right
        for m in n.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
        n.heat_head[-1].bias.fill_(0.0)
        n.heat_head[-1].weight.mul_(30.0)  # spread the scores: near-equal neighbours would make peak tests flaky
    return n.eval()


def test_config_checks_and_round_trip():
    cfg = DetectorConfig(**SMALL)
    assert cfg.grid == (8, 12)
    assert DetectorConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ConfigError, match="multiples of 32"):
        DetectorConfig(input_size=(100, 64))
    with pytest.raises(ConfigError, match="unknown key 'colour'"):
        DetectorConfig.from_dict({"colour": 1})
    with pytest.raises(ConfigError, match="input_norm 'p99'"):
        DetectorConfig(input_norm="p99")
    # files written before input_norm existed hold networks trained on raw grey levels
    old = DetectorConfig(**SMALL, input_norm="standardize").to_json().replace(', "input_norm": "standardize"', "")
    assert "input_norm" not in old and DetectorConfig.from_json(old).input_norm == "none"


def test_standardized_input_ignores_gain_and_offset_of_the_view(net):
    x = torch.from_numpy(np.random.default_rng(1).random((1, 1, 64, 96), dtype=np.float32))
    dim = 0.02 + 0.2 * x  # a dark, low-contrast exposure of the same view
    with torch.no_grad():
        (h, r), (hd, rd) = net(x), net(dim)
    np.testing.assert_allclose(hd.numpy(), h.numpy(), atol=1e-4)
    np.testing.assert_allclose(rd.numpy(), r.numpy(), atol=1e-4)
    raw = DetectorNet(DetectorConfig(**SMALL, input_norm="none")).eval()
    with torch.no_grad():
        assert not np.allclose(raw(dim)[0].numpy(), raw(x)[0].numpy(), atol=1e-3)
    flat = torch.full((1, 1, 64, 96), 0.3)  # std below the floor: no division by ~0
    with torch.no_grad():
        assert all(torch.isfinite(t).all() for t in net(flat + 1e-4 * x))


def test_encoded_targets_decode_back_to_the_box():
    boxes = np.array([[13.0, 21.0, 45.0, 90.0], [100.0, 30.0, 180.0, 60.0]], np.float32)
    heat, reg, w = encode(boxes, np.array([0, 1]), 2, (16, 32), 8)
    for (x0, y0, x1, y1), c in zip(boxes, (0, 1)):
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        j, i = int(cy // 8), int(cx // 8)
        assert heat[c, j, i] == 1.0 and heat[c].max() == 1.0
        # every cell with a regression target points at the same centre and size
        cells = np.argwhere(w > 0)
        mine = [(jj, ii) for jj, ii in cells if abs((ii + 0.5 + reg[0, jj, ii]) * 8 - cx) < 1e-3]
        assert (j, i) in mine and len(mine) >= 2  # the centre cell and at least one neighbour
        np.testing.assert_allclose(np.exp(reg[2, j, i]) * 8, x1 - x0, rtol=1e-5)
        np.testing.assert_allclose(np.exp(reg[3, j, i]) * 8, y1 - y0, rtol=1e-5)


def test_flipped_targets_equal_targets_of_flipped_boxes():
    boxes = np.array([[13.0, 21.0, 45.0, 90.0], [100.0, 30.0, 180.0, 60.0]], np.float32)
    cls = np.array([0, 1])
    W = 256
    flipped = boxes.copy()
    flipped[:, [0, 2]] = W - boxes[:, [2, 0]]
    a = flip_targets(*encode(boxes, cls, 2, (16, 32), 8))
    b = encode(flipped, cls, 2, (16, 32), 8)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=1e-5)


def test_losses_are_finite_and_nll_prefers_the_right_variance():
    tgt = torch.zeros(1, 4, 2, 2)
    w = torch.ones(1, 2, 2)
    err = torch.full((1, 4, 2, 2), 0.5)
    losses = []
    for lv in (-4.0, float(np.log(0.25)), 2.0):
        out = torch.cat([err, torch.full((1, 4, 2, 2), lv)], 1)
        losses.append(float(gaussian_nll(out, tgt, w, beta=0.0)))
    assert losses[1] < losses[0] and losses[1] < losses[2]  # minimum at variance = squared error
    heat = torch.zeros(1, 1, 4, 4)
    heat[0, 0, 1, 1] = 1.0
    good = torch.full((1, 1, 4, 4), -6.0)
    good[0, 0, 1, 1] = 6.0
    assert float(focal_loss(good, heat)) < float(focal_loss(torch.zeros(1, 1, 4, 4), heat))


def test_distill_loss_is_zero_at_the_teacher_and_pulls_towards_it():
    heat = torch.zeros(1, 2, 4, 4)
    heat[0, 0, 1, 1] = heat[0, 1, 2, 3] = 1.0  # two positives normalise the sum
    teacher = torch.full((1, 2, 4, 4), 0.02)
    teacher[0, 0, 1, 1], teacher[0, 1, 2, 2] = 0.9, 0.4  # a confident peak, and a doubtful one
    at_teacher = torch.logit(teacher)
    assert float(distill_loss(at_teacher, teacher, heat)) == pytest.approx(0.0, abs=1e-5)
    logits = torch.zeros(1, 2, 4, 4, requires_grad=True)  # p = 0.5 everywhere
    loss = distill_loss(logits, teacher.half(), heat)  # the teacher's maps are stored as float16
    assert float(loss.detach()) > 0
    loss.backward()
    g = logits.grad[0]
    assert g[0, 0, 0] > 0 and g[0, 1, 1] < 0  # down on background, up at the teacher's peak
    assert g[1, 2, 2] > 0 and g[1, 2, 2] < g[0, 0, 0]  # 0.5 -> 0.4: pushed down less than to 0.02
    z = torch.zeros(1, 2, 4, 4)
    assert float(distill_loss(z, teacher, heat * 0)) == pytest.approx(2 * float(distill_loss(z, teacher, heat)))  # no positives: sum / 1


def test_decode_reads_a_known_peak():
    cfg = DetectorConfig(**SMALL, centre_var_scale=2.0, size_var_scale=3.0)
    heat = torch.full((1, 2, 8, 12), -9.0)
    heat[0, 1, 3, 5] = 2.0
    reg = torch.zeros(1, 8, 8, 12)
    reg[0, :, 3, 5] = torch.tensor([0.25, -0.5, np.log(4.0), np.log(2.0), np.log(0.01), np.log(0.04), np.log(0.09), 0.0])
    out = Decode(cfg)(heat, reg)[0, 0].numpy()
    row = dict(zip(DET_COLUMNS, out))
    assert row["cls"] == 1 and row["score"] == pytest.approx(1 / (1 + np.exp(-2.0)), rel=1e-5)
    assert row["cx"] == pytest.approx((5.5 + 0.25) * 8) and row["cy"] == pytest.approx((3.5 - 0.5) * 8)
    assert row["w"] == pytest.approx(32) and row["h"] == pytest.approx(16)
    assert row["var_cx"] == pytest.approx(0.01 * 64 * 2.0, rel=1e-4)
    assert row["var_cy"] == pytest.approx(0.04 * 64 * 2.0, rel=1e-4)
    assert row["var_w"] == pytest.approx(32**2 * 0.09 * 3.0, rel=1e-4)
    np.testing.assert_allclose(decode_raw(heat.numpy(), reg.numpy(), cfg)[0, 0], out, rtol=1e-5)


def test_numpy_decode_matches_the_graph(net):
    x = torch.rand(3, 1, 64, 96)
    with torch.no_grad():
        heat, reg = net(x)
        ref = Decode(net.config)(heat, reg).numpy()
    got = decode_raw(heat.numpy(), reg.numpy(), net.config)
    np.testing.assert_allclose(got[..., 0], ref[..., 0], rtol=1e-5, atol=1e-6)
    top = ref[..., 0] > 1e-3
    np.testing.assert_allclose(got[top], ref[top], rtol=1e-4, atol=1e-4)


def test_onnx_export_matches_pytorch_and_marks_decode_nodes(net, tmp_path):
    path = tmp_path / "det.onnx"
    proto = export_onnx(net, path)
    names = decode_node_names(proto)
    assert any("TopK" in n for n in names) and not any("Conv" in n for n in names)
    conv_ops = {n.op_type for n in proto.graph.node if not n.name.startswith(("/decode/", "/net/input_norm/"))}
    assert conv_ops <= {"Conv", "Relu", "Add", "Resize", "BatchNormalization", "Constant", "Identity"}
    x = np.random.default_rng(0).random((2, 1, 64, 96), dtype=np.float32)
    with torch.no_grad():
        from foveate.models.detector.model import DetectorWithDecode

        ref = DetectorWithDecode(net)(torch.from_numpy(x)).numpy()
    ort = OnnxDetector(path, threads=1)
    got = ort._run(x)
    assert got.shape == ref.shape == (2, net.config.max_detections, 10)
    np.testing.assert_allclose(got[..., 0], ref[..., 0], atol=1e-5)
    for g, r in zip(got, ref):  # equal scores may come out of top-k in either order: compare sorted rows
        g = g[np.lexsort((g[:, 3], g[:, 2], g[:, 1], np.round(g[:, 0], 4)))]
        r = r[np.lexsort((r[:, 3], r[:, 2], r[:, 1], np.round(r[:, 0], 4)))]
        strong = r[:, 0] > 0.05
        np.testing.assert_allclose(g[strong], r[strong], rtol=1e-3, atol=1e-3)
    assert ort.config == net.config  # config travels in the metadata
    raw = export_onnx(net, None, decode=False)
    assert [o.name for o in raw.graph.output] == ["heat", "reg"]


def test_runtimes_fit_the_protocol_and_agree(net, tmp_path):
    export_onnx(net, tmp_path / "det.onnx")
    images = [np.random.default_rng(i).integers(0, 255, (64, 96), np.uint8) for i in range(3)]
    tdet = TorchDetector(net, score_threshold=0.2)
    odet = load_detector(tmp_path / "det.onnx", score_threshold=0.2, threads=1)
    for det in (tdet, odet):
        assert isinstance(det, Detector)
        assert det.classes == ("human", "vehicle")
    a, b = tdet.detect_batch(images), odet.detect_batch(images)
    assert sum(len(x) for x in a) > 0
    for da, db in zip(a, b):
        assert len(da) == len(db)
        for p, q in zip(da, db):
            assert isinstance(p, Detection) and p.label == net.config.classes[p.cls]
            assert p.centre_cov.shape == (2, 2) and p.centre_cov[0, 0] > 0 and p.size_var[0] > 0
            np.testing.assert_allclose(p.centre_xy, q.centre_xy, atol=1e-3)
            np.testing.assert_allclose(p.centre_cov, q.centre_cov, rtol=1e-3)
    one = tdet.detect(images[0])
    assert [d.centre_xy for d in one] == [d.centre_xy for d in a[0]]
    assert tdet.detect_batch([]) == []


def test_other_image_sizes_and_colour_are_scaled_back(net):
    det = TorchDetector(net, score_threshold=0.2)
    img = np.random.default_rng(1).integers(0, 255, (64, 96), np.uint8)
    big = np.repeat(np.repeat(img, 2, 0), 2, 1)  # 128 x 192, same content
    small_dets, big_dets = det.detect(img), det.detect(np.dstack([big] * 3))
    assert len(small_dets) == len(big_dets) > 0
    for s, b in zip(small_dets, big_dets):
        np.testing.assert_allclose(np.array(b.centre_xy), 2 * np.array(s.centre_xy), rtol=1e-2, atol=0.5)
        np.testing.assert_allclose(b.centre_cov, 4 * s.centre_cov, rtol=0.05, atol=0.05)


def test_bad_inputs_and_files_give_clear_errors(net, tmp_path):
    det = TorchDetector(net)
    with pytest.raises(FoveateError, match="expected uint8"):
        det.detect(np.zeros((64, 96), np.float32))
    with pytest.raises(FoveateError, match="expected an"):
        det.detect(np.zeros((64, 96, 2), np.uint8))
    with pytest.raises(ConfigError, match="not found"):
        load_detector(tmp_path / "missing.pt")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"junk")
    with pytest.raises(ConfigError, match="bad.onnx: not an ONNX detector"):
        load_detector(bad)
    with pytest.raises(ConfigError, match="unknown detector file type"):
        load_detector(tmp_path / "x.h5")


def test_mc_dropout_only_widens_the_variance(net):
    img = np.random.default_rng(2).integers(0, 255, (64, 96), np.uint8)
    torch.manual_seed(0)
    base = TorchDetector(net, score_threshold=0.2).detect(img)
    mc = TorchDetector(net, score_threshold=0.2, mc_samples=8).detect(img)
    assert len(base) == len(mc) > 0
    for a, b in zip(base, mc):
        assert a.score == pytest.approx(b.score)
        assert b.centre_cov[0, 0] >= a.centre_cov[0, 0] * 0.999


def test_teacher_heatmaps_average_an_ensemble_and_its_mirror_images():
    from foveate.models.detector.train import teacher_heatmaps

    class Views:  # what teacher_heatmaps reads of a ViewSet
        def __init__(self, images):
            self.images = images

        def __len__(self):
            return len(self.images)

    torch.manual_seed(1)
    cfg = DetectorConfig(**SMALL)
    a, b = DetectorNet(cfg).eval(), DetectorNet(cfg).eval()
    with torch.no_grad():
        for m in [*a.modules(), *b.modules()]:  # the initial net is near its prior everywhere: spread it
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight)
    images = np.random.default_rng(0).integers(0, 256, (5, 64, 96), dtype=np.uint8)
    x = torch.from_numpy(images[:, None].astype(np.float32) / 255)
    with torch.no_grad():
        pa, pb = torch.sigmoid(a(x)[0]).numpy(), torch.sigmoid(b(x)[0]).numpy()
    one = teacher_heatmaps([a], Views(images), "cpu", batch_size=2, progress=False)
    assert one.dtype == np.float16 and one.shape == pa.shape
    np.testing.assert_allclose(one, pa, atol=1e-3)
    both = teacher_heatmaps([a, b], Views(images), "cpu", batch_size=2, progress=False)
    np.testing.assert_allclose(both, (pa + pb) / 2, atol=1e-3)
    assert np.abs(pa - pb).max() > 0.01  # the two teachers differ, so the mean is not either one
    # With the mirror, a mirrored view gets the mirrored target: symmetric like the flip augmentation.
    m = teacher_heatmaps([a, b], Views(images), "cpu", progress=False, mirror=True)
    mf = teacher_heatmaps([a, b], Views(np.ascontiguousarray(images[..., ::-1])), "cpu", progress=False, mirror=True)
    np.testing.assert_allclose(mf, m[..., ::-1], atol=2e-3)
    assert np.abs(m - both).max() > 1e-3
