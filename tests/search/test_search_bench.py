"""``foveate bench search``: rig variants of the throughput baselines, one short timed run."""

from __future__ import annotations

import pytest

from foveate.tools.bench import search as bench


def test_variants_change_only_what_they_name():
    rig = bench.rig_config("plaza")
    inline = bench.rig_config("plaza", "events_streamed")
    oracle = bench.rig_config("plaza", "oracle_detector")
    assert rig.sim["scene"] == inline.sim["scene"] == oracle.sim["scene"] == "plaza"
    assert rig.devices["wide_events"].settings["stream_ahead_s"] == 0
    assert inline.devices["wide_events"].settings["stream_ahead_s"] > 0
    assert {k: v for k, v in inline.devices["wide_events"].settings.items() if k != "stream_ahead_s"} == \
        {k: v for k, v in rig.devices["wide_events"].settings.items() if k != "stream_ahead_s"}
    assert rig.models["detector"].path.name == "detector_int8.onnx" == inline.models["detector"].path.name
    assert oracle.models["detector"].backend.endswith(":OracleDetector") and oracle.models["detector"].path is None
    assert oracle.devices["wide_events"].settings == rig.devices["wide_events"].settings


def test_a_timed_run_reports_frames_wall_and_cpu():
    s = bench.run_one("street", "ppm", 0.05, warm=False)
    assert s["detector"] == "OnnxDetector" and s["frames"] > 5
    assert s["wall_seconds"] > 0 and s["process_cpu_seconds"] > 0
    assert 0 < s["device_wall_seconds"] < s["wall_seconds"]
    assert s["evaluation"]["targets_total"] > 0
    assert bench.cpu_fps(s) > 0
    runs = [s, {**s, "frames": 3 * s["frames"], "wall_seconds": 2 * s["wall_seconds"],
                "device_wall_seconds": 2 * s["device_wall_seconds"]}]
    assert bench._fps(runs) == pytest.approx(4 * s["frames"] / (3 * s["wall_seconds"]))



def test_recall_pools_targets_over_runs_not_run_shares():
    def run(rows):
        return {"evaluation": {"recall_over_time": rows}}

    a = run([[0.5, 0.5, 0.25, 4], [1.0, 0.75, 0.5, 4], [1.5, 1.0, 1.0, 4]])  # 3 of 4 found by 1 s
    b = run([[0.4, 1.0, 1.0, 16], [1.2, 1.0, 1.0, 16]])  # 16 of 16 by 1 s (row at 0.4 s)
    assert bench.pooled_recall([a]) == pytest.approx(0.75)
    assert bench.pooled_recall([a, b]) == pytest.approx(19 / 20)  # not the mean of shares, 0.875
    assert bench.pooled_recall([a, b], 2.0, which=2) == pytest.approx(1.0)
    assert bench.pooled_recall([run([[1.5, 0.0, 0.0, 3]])]) == 1.0  # nothing visible yet at 1 s


@pytest.mark.slow
def test_warm_up_builds_the_twin_caches_before_the_timed_run():
    from foveate.system.rig import Rig
    from foveate.system.search.scheduler import SearchLoop

    with Rig(bench.rig_config("street", "oracle_detector")) as rig:  # the whole panorama texture: slow
        loop = SearchLoop(rig, "ppm")
        fine = rig.context.shared["sim.twin"].scene.fine
        assert not fine.filled.all() and loop.wide_cam._fixed._static is None
        bench.warm_up(rig, loop)
        assert fine.filled.all() and loop.wide_cam._fixed._static is not None
