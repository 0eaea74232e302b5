"""SLTNet's rows of ``foveate bench quant`` alone: FP32 vs INT8 latency (wall and CPU time), graph, accuracy
when trained weights exist. For re-measuring the SLTNet speed-up without the detector's data."""

from __future__ import annotations

NAME = "quant-sltnet"
DESCRIPTION = "SLTNet FP32 vs INT8 onnxruntime only (the SLTNet rows of 'quant')"


def run(quick: bool = False):
    from foveate.tools.bench.quant import sltnet_rows

    return sltnet_rows(quick)
