"""``foveate bench event-io`` runs (quick, without the large conversion) and reports every format."""

from __future__ import annotations

import pytest

from foveate.tools.bench import event_io


def test_event_io_bench_quick(monkeypatch):
    pytest.importorskip("faery")
    monkeypatch.setenv("FOVEATE_BENCH_CONVERT_GB", "0")
    rows = event_io.run(quick=True)
    names = " ".join(r.metric for r in rows)
    for fmt in ("evt3", "evt2", "aedat4", "dat", "dsec"):
        assert f"decode {fmt}" in names
    assert all(r.value > 0 for r in rows)
    assert all(r.ratio is None or r.ratio > 0 for r in rows)
