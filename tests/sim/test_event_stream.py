"""The wide event camera streaming beside the reader (``stream_ahead_s``): same events whatever the read times."""

import numpy as np
import pytest

from foveate.hardware.sim.backends import GroundTruthMeta

from .conftest import make_rig


def _events(stream_ahead_s: float, read_every_ms: list[float], end_ms: float):
    """Packets read on a schedule (cycling through ``read_every_ms``) until ``end_ms`` of clock time."""
    r = make_rig(drop=("wide", "search", "galvo", "laser"), devices={"wide_events": {"stream_ahead_s": stream_ahead_s}})
    packets = []
    with r:
        cam = r.devices["wide_events"]
        t0 = r.clock.now_us()
        k = 0
        while r.clock.now_us() - t0 < end_ms * 1000:
            step = min(read_every_ms[k % len(read_every_ms)], end_ms - (r.clock.now_us() - t0) / 1000)
            r.clock.sleep_s(step / 1000)
            packets.append(cam.read())
            k += 1
        thread = cam._stream.thread if cam._stream is not None else None
    return packets, thread


def test_streamed_events_do_not_depend_on_when_they_are_read():
    a, thread = _events(0.05, [10.0], 240.0)
    b, _ = _events(0.05, [37.0, 3.0, 61.0], 240.0)
    assert thread is not None and not thread.is_alive()  # closing the rig stops the worker
    for packets in (a, b):
        for p, q in zip(packets, packets[1:]):
            assert q.t_start_us == p.t_end_us  # packets tile time
        for p in packets:
            assert np.all((p.events["t"] >= p.t_start_us) & (p.events["t"] < p.t_end_us))
    ea = np.concatenate([p.events for p in a])
    eb = np.concatenate([p.events for p in b])
    assert len(ea) > 100
    assert np.array_equal(ea, eb)


def test_streamed_events_match_the_inline_emulation_in_number():
    inline, _ = _events(0.0, [20.0], 300.0)
    streamed, _ = _events(0.15, [20.0], 300.0)
    n_inline = sum(len(p) for p in inline)
    n_streamed = sum(len(p) for p in streamed)
    # Internal frames follow the motion in both modes, only their boundaries differ: the same physics.
    assert n_streamed == pytest.approx(n_inline, rel=0.15)


def test_a_failing_emulation_reaches_the_reader():
    r = make_rig(drop=("wide", "search", "galvo", "laser"), devices={"wide_events": {"stream_ahead_s": 0.01}})
    with r:
        cam = r.devices["wide_events"]

        def broken(t_us):
            raise RuntimeError("render failed")

        cam._log_frame = broken
        r.clock.sleep_s(0.1)
        with pytest.raises(RuntimeError, match="render failed"):
            cam.read()


def test_target_centres_are_the_views_centres():
    r = make_rig(drop=("wide", "search", "galvo", "laser"))
    scene = r.context.shared["sim.twin"].scene
    for t_s in (0.0, 0.7, 3.1):
        az, el, ok = scene.target_centres_deg(t_s)
        views = scene.target_views(t_s)
        assert len(views) == int(ok.sum()) > 0
        by_id = {tg.id: n for n, tg in enumerate(scene.targets)}
        for v in views:
            n = by_id[v.id]
            assert (az[n], el[n]) == pytest.approx(v.centre_deg, abs=1e-9)


def test_ground_truth_is_not_computed_to_test_membership():
    calls = []
    meta = GroundTruthMeta({"boxes": lambda: calls.append(1) or [1, 2], "view": "wide"})
    assert "boxes" in meta and "labels" not in meta
    assert calls == []
    assert meta["boxes"] == [1, 2] and calls == [1]
