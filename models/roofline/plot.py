"""Roofline picture: the hardware's two roofs and one point per layer (size ∝ predicted time)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from foveate.models.roofline.analyze import Hardware, Layer


def plot_roofline(layers: list[Layer], hw: Hardware, path: str | Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [x for x in layers if x.ops > 0 and x.bytes > 0]
    fig, ax = plt.subplots(figsize=(7.5, 5))
    ai = np.logspace(-2, 4, 200)
    for prec, peak, style in (("FP32", hw.fp32_gops, "-"), ("INT8", hw.int8_gops, "--")):
        ax.loglog(ai, np.minimum(peak, ai * hw.bandwidth_gbs), "k" + style, lw=1.2, label=f"{prec} roof ({peak:g} GOP/s)")
    colours = {"fp32": "tab:blue", "int8": "tab:orange", "w4": "tab:green"}
    for prec in ("fp32", "int8", "w4"):
        sel = [x for x in pts if x.precision == prec]
        if not sel:
            continue
        x = np.array([s.ai for s in sel])
        t = np.array([max(s.predicted_us - hw.dispatch_us, 1e-3) for s in sel])
        perf = np.array([s.ops for s in sel]) / (t * 1e3)  # GOP/s without dispatch
        ax.scatter(x, perf, s=8 + 200 * t / t.max(), c=colours[prec], alpha=0.6, label=f"{prec} layers")
        meas = [(s.ai, s.ops / (s.measured_us * 1e3)) for s in sel if s.measured_us]
        if meas:
            m = np.array(meas)
            ax.scatter(m[:, 0], m[:, 1], marker="x", c=colours[prec], alpha=0.8, label=f"{prec} measured")
    ax.set_xlabel("arithmetic intensity (ops / byte)")
    ax.set_ylabel("attainable GOP/s")
    ax.set_title(title or hw.name, fontsize=10)
    ax.grid(True, which="both", alpha=0.2)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
