"""``foveate bench sltnet`` measures every row it reports, the INT8 model included (no speed asserted here)."""

from __future__ import annotations

from foveate.tools.bench import sltnet


def test_bench_rows_cover_pytorch_onnxruntime_and_int8():
    rows = {r.metric: r for r in sltnet.run(quick=True)}
    assert set(rows) == {"PyTorch FP32, as trained, 200x352", "PyTorch FP32, folded, 200x352",
                         "onnxruntime FP32, folded, 200x352", "onnxruntime INT8 (foveate quantize), 200x352"}
    assert all(r.value > 0 and r.unit == "frames/s" for r in rows.values())
    int8 = rows["onnxruntime INT8 (foveate quantize), 200x352"]
    assert int8.baseline == "onnxruntime FP32" and int8.ratio > 0 and "60 frames/s" in int8.goal
