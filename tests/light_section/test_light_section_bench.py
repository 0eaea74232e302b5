"""``foveate bench light-section`` (quick): every method's rates and CPU time per frame, against the centroid baseline."""

from __future__ import annotations

import pytest

from foveate.tools.bench import light_section


@pytest.mark.slow
def test_light_section_bench_quick_reports_rates_and_cpu_time():
    rows = {r.metric: r for r in light_section.run(quick=True)}
    for method in ("centroid", "gauss3", "steger"):
        for what in ("1 thread", "2 threads"):
            assert rows[f"{method}, {what}"].value > 0
        cpu = rows[f"{method}, CPU time per frame (1 thread)"]
        assert cpu.unit == "ms" and 0 < cpu.value < 1000
    assert rows["centroid, CPU time per frame (1 thread)"].ratio == 1.0
    # Steger fits Gaussian-derivative patches on top of the coarse peak search: it costs more than the centroid
    assert rows["steger, CPU time per frame (1 thread)"].ratio > 1.0
    assert rows["points per frame (centroid)"].value > 100
