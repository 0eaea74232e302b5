"""The lean ONNX export: the traced graph rewritten exactly, without the T = 1 time axis."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from foveate.models.sltnet.export import export_onnx
from foveate.models.sltnet.onnx_lean import _shapes, collapse_reshapes, drop_time_axis, fold_constants


pytestmark = pytest.mark.slow  # the fixture: two whole-graph exports (~10 s of CPU)


def _run(proto: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"voxel": x})


@pytest.fixture(scope="module")
def exports(small_cfg, calibrate):
    model = calibrate(small_cfg.with_(height=32, width=48))
    return (onnx.load_from_string(export_onnx(model, lean=False, with_spikes=True)),
            onnx.load_from_string(export_onnx(model, with_spikes=True)))


def _x(seed):
    return np.random.default_rng(seed).normal(size=(1, 5, 32, 48)).astype(np.float32)


def test_lean_export_is_the_traced_graph_without_time_axis(exports):
    traced, lean = exports
    assert len(lean.graph.node) * 8 < len(traced.graph.node)
    assert not [n for n, s in _shapes(lean).items() if len(s) == 5], "a tensor kept its time axis"
    ops = [n.op_type for n in lean.graph.node]
    assert "Shape" not in ops and "Gather" not in ops
    spike_concat = next(n for n in lean.graph.node if n.output[0] == "spikes")
    gates = sum(1 for o in ops if o == "GlobalAveragePool")
    reshapes = [n for n in lean.graph.node if n.op_type == "Reshape" and n.output[0] not in spike_concat.input]
    assert len(reshapes) <= 2 * gates  # only the ECA gates' [C] <-> [1, C] views remain
    assert [o.name for o in lean.graph.output] == ["logits", "spikes"]
    assert {p.key for p in lean.metadata_props} == {p.key for p in traced.metadata_props}
    for seed in range(2):
        (lo_t, sp_t), (lo_l, sp_l) = _run(traced, _x(seed)), _run(lean, _x(seed))
        assert 0.01 < sp_l.mean() < 0.6  # the model fires
        assert (sp_t == sp_l).mean() >= 0.9999  # conv+BN fusion may flip a spike at a float-rounding tie
        np.testing.assert_allclose(lo_l, lo_t, atol=1e-4, rtol=0)


def test_time_axis_pass_changes_no_arithmetic(exports):
    """Dropping the time axis and merging reshapes: bit-identical outputs, every spike included."""
    folded = fold_constants(exports[0])
    lowered = collapse_reshapes(drop_time_axis(folded))
    onnx.checker.check_model(lowered)
    assert len(lowered.graph.node) < len(folded.graph.node)
    for a, b in zip(_run(folded, _x(3)), _run(lowered, _x(3))):
        np.testing.assert_array_equal(a, b)
