"""End to end: train (smoke), resume, evaluate and replay through the ``foveate`` command line."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from foveate.models.sltnet import segmenter as segmenter_mod
from foveate.models.sltnet.datasets import SegmentationDataset
from foveate.models.sltnet.train import TrainSettings, train
from foveate.system.events import write_events
from foveate.system.types import make_events
from foveate.tools.cli import main


class _Stripes(SegmentationDataset):
    """Learnable toy data: the label is which half of the frame has ON events."""

    def __init__(self, cfg, n=4):
        super().__init__(cfg.height, cfg.width, cfg.bins)
        self.n = n

    def __len__(self):
        return self.n

    def load(self, i):
        v = np.zeros((self.bins, self.height, self.width), np.float32)
        lab = np.zeros((self.height, self.width), np.uint8)
        half = self.width // 2
        side = slice(0, half) if i % 2 else slice(half, None)
        v[:, :, side] = np.random.default_rng(i).normal(1.0, 0.5, v[:, :, side].shape)
        lab[:, side] = 5
        return v, lab


def test_training_reduces_the_loss(tmp_path, small_cfg):
    ds = _Stripes(small_cfg)
    settings = TrainSettings(epochs=12, batch_size=2, lr=3e-3, threads=1, val_every=100)
    first = train(small_cfg, ds, None, tmp_path, TrainSettings(**{**settings.__dict__, "epochs": 1}), progress=False)
    last = train(small_cfg, ds, None, tmp_path, settings, resume=True, progress=False)
    assert last["epoch"] == 12
    assert last["train_loss"] < 0.7 * first["train_loss"]
    assert (tmp_path / "best.pt").is_file() and (tmp_path / "history.json").is_file()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, write_ddd17):
    """A one-batch DDD17 training run through the CLI, plus the same run split by a resume."""
    root = write_ddd17(tmp_path_factory.mktemp("ddd17"))
    base = ["train", "sltnet", "--config", "ddd17", "--data", str(root), "--batch-size", "2", "--max-batches", "1",
            "--input-size", "64x96", "--threads", "1", "--no-progress"]
    whole = tmp_path_factory.mktemp("whole")
    assert main([*base, "--epochs", "2", "--out", str(whole)]) == 0
    split = tmp_path_factory.mktemp("split")
    assert main([*base, "--epochs", "1", "--out", str(split)]) == 0
    assert main([*base, "--epochs", "2", "--out", str(split), "--resume"]) == 0
    return root, whole, split


def test_resume_continues_exactly(trained):
    _, whole, split = trained
    a = torch.load(str(whole / "last.pt"), weights_only=False)
    b = torch.load(str(split / "last.pt"), weights_only=False)
    assert a["epoch"] == b["epoch"] == 1 and len(b["history"]) == 2
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k
    card = b["card"]
    assert card["training"]["command"].startswith("foveate train sltnet")
    assert "val_miou" in card["metrics"]


def test_eval_scores_the_whole_split(trained, tmp_path):
    root, whole, _ = trained
    out = tmp_path / "eval.json"
    assert main(["eval", "sltnet", "--data", str(root), "--weights", str(whole / "best.pt"), "--json", str(out),
                 "--no-progress", "--energy", "--energy-windows", "2", "--threads", "1"]) == 0
    res = json.loads(out.read_text())
    m = res["metrics"]
    assert m["windows"] == 3 and 0 < m["pixels"] < 3 * 64 * 96  # the left 100 label columns are ignore (255)
    assert 0 <= m["miou"] <= 1 and set(m["per_class_iou"]) == {"flat", "construction+sky", "object", "nature",
                                                                 "human", "vehicle"}
    assert res["energy"]["summary"]["energy_mj"] > 0


def test_eval_grid_round_trip_scores_the_labels_on_a_coarser_grid(trained, tmp_path):
    root, whole, _ = trained
    assert "--input-size 64x96" in torch.load(str(whole / "last.pt"), weights_only=False)["card"]["training"]["command"]
    res = {}
    for f in (1, 4):
        out = tmp_path / f"round_trip{f}.json"
        assert main(["eval", "sltnet", "--data", str(root), "--weights", str(whole / "best.pt"), "--grid-round-trip",
                     "--grid-factor", str(f), "--input-size", "32x48", "--json", str(out), "--no-progress",
                     "--threads", "1"]) == 0
        res[f] = json.loads(out.read_text())["grid_round_trip"]
    assert res[1]["grid"] == [32, 48] and res[4]["grid"] == [8, 12] and res[1]["windows"] == 3
    assert res[1]["majority"]["miou"] == res[1]["bilinear"]["miou"] == 1.0  # no round trip: the labels themselves
    # the fixture's masks are one class plus ignored columns: any grid holds them, and ignored pixels never count
    assert res[4]["majority"]["miou"] == res[4]["bilinear"]["miou"] == 1.0


@pytest.mark.parametrize("extra, message", [
    (["--input-size", "32x48"], "--input-size goes with --grid-round-trip"),
    (["--grid-round-trip", "--energy"], "give one of them"),
])
def test_eval_grid_round_trip_refuses_options_that_do_not_go_with_it(trained, capsys, extra, message):
    root, whole, _ = trained
    assert main(["eval", "sltnet", "--data", str(root), "--weights", str(whole / "best.pt"), "--no-progress",
                 *extra]) != 0
    assert message in capsys.readouterr().err


def _event_file(path, w=346, h=260, seconds=0.12):
    rng = np.random.default_rng(0)
    n = int(seconds * 100_000)
    t = np.sort(rng.integers(0, int(seconds * 1e6), n))
    x = (40 + t / 1e6 * 800).astype(int) % w  # a moving edge plus noise
    ev = make_events(np.where(rng.random(n) < 0.8, x, rng.integers(0, w, n)), rng.integers(0, h, n), t,
                     rng.integers(0, 2, n))
    return write_events(path, ev, (w, h))


def test_replay_writes_labels_overlays_and_summary(trained, tmp_path):
    _, whole, _ = trained
    src = _event_file(tmp_path / "rec.npy")
    out = tmp_path / "replay"
    assert main(["replay", str(src), "--weights", str(whole / "best.pt"), "--out", str(out), "--window-ms", "40",
                 "--crop-bottom", "20", "--threads", "1", "--no-progress"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["windows"] == 3 and s["sensor_size"] == [346, 260]
    assert s["windows_per_s"] > 0 and s["model"]["runtime"] == "onnxruntime"
    assert sum(s["class_histogram"].values()) == 3 * 346 * 260
    assert s["class_histogram"]["unlabelled"] == 3 * 346 * 20
    labels = sorted((out / "labels").glob("*.png"))
    assert len(labels) == 3 and len(list((out / "overlay").glob("*.png"))) == 3
    import cv2

    lab = cv2.imread(str(labels[0]), cv2.IMREAD_UNCHANGED)
    assert lab.shape == (260, 346) and np.all(lab[-20:] == 255) and lab[:-20].max() < 6
    with open(out / "windows.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][:4] == ["window", "t_start_us", "t_end_us", "events"] and len(rows) == 4


def test_replay_refuses_without_weights(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(segmenter_mod, "SHIPPED_WEIGHTS", tmp_path / "none.pt")
    src = _event_file(tmp_path / "rec.npy", seconds=0.01)
    assert main(["replay", str(src), "--out", str(tmp_path / "o")]) == 2
    assert "no trained SLTNet weights" in capsys.readouterr().err


def test_train_refuses_a_device_it_does_not_have(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["train", "sltnet", "--device", "cuda", "--no-progress"]) == 2
    assert "sees no CUDA GPU" in capsys.readouterr().err
    assert main(["train", "sltnet", "--device", "tpu7", "--no-progress"]) == 2
    assert "expected cpu, cuda or cuda:N" in capsys.readouterr().err


def test_lovasz_option_is_recorded_and_checked(tmp_path, write_ddd17, capsys):
    root = write_ddd17(tmp_path / "ddd17")
    base = ["train", "sltnet", "--config", "ddd17", "--data", str(root), "--batch-size", "2", "--max-batches", "1",
            "--input-size", "64x96", "--threads", "1", "--no-progress", "--epochs", "1"]
    assert main([*base, "--lovasz", "-0.5", "--out", str(tmp_path / "bad")]) == 2
    assert "--lovasz must be >= 0, got -0.5" in capsys.readouterr().err
    assert main([*base, "--lovasz", "0.5", "--out", str(tmp_path / "run")]) == 0
    card = torch.load(str(tmp_path / "run" / "last.pt"), weights_only=False)["card"]
    assert "--lovasz 0.5" in card["training"]["command"] and card["training"]["lovasz_weight"] == 0.5


def test_evaluate_reports_how_much_of_each_class_the_events_show(small_cfg):
    from foveate.models.sltnet.train import evaluate

    ds = _Stripes(small_cfg, n=3)  # class 5 where the events are, class 0 (no events) elsewhere
    out = evaluate(lambda v: np.zeros((len(v), small_cfg.height, small_cfg.width), np.uint8), ds, small_cfg.classes,
                   batch_size=2)
    support = out["per_class_event_support"]
    assert support[small_cfg.classes[5]] == 1.0 and support[small_cfg.classes[0]] == 0.0
    assert support[small_cfg.classes[1]] is None  # no pixels of that class
    assert out["windows"] == 3 and out["per_class_iou"][small_cfg.classes[5]] == 0.0
