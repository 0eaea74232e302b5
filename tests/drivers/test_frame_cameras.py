"""Frame-camera backends: OpenCV on a generated video, an image folder, GenICam (missing package; a stand-in harvesters)."""

import sys
import types

import cv2
import numpy as np
import pytest

from foveate.drivers.cameras.folder import ImageFolderCamera
from foveate.drivers.cameras.genicam import GenICamCamera
from foveate.drivers.cameras.opencv import OpenCVCamera
from foveate.drivers.testing.conformance import FrameCameraConformance
from foveate.system.clock import ManualClock
from foveate.system.config import parse_rig
from foveate.system.errors import BackendUnavailableError, ConfigError, DeviceError, DeviceTimeoutError
from foveate.system.rig import Rig

pytestmark = pytest.mark.timeout(60)


def _write_video(path, n=12, fps=25.0, size=(64, 48)):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert w.isOpened()
    for i in range(n):
        img = np.zeros((size[1], size[0], 3), np.uint8)
        cv2.putText(img, str(i), (5, 35), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
        img[:, :, 2] = i * 20  # red channel encodes the frame index
        w.write(img)
    w.release()
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return _write_video(tmp_path_factory.mktemp("video") / "clip.avi")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("frames")
    for i in range(12):
        img = np.full((30, 40), i * 10, np.uint8)
        cv2.imwrite(str(d / f"frame{i}.png"), img)  # natural order: frame2 before frame10
    return d


class TestOpenCVVideoFile(FrameCameraConformance):
    @pytest.fixture
    def device(self, video):
        yield OpenCVCamera("wide", ManualClock(), source=str(video), loop=True)


class TestImageFolder(FrameCameraConformance):
    @pytest.fixture
    def device(self, folder):
        yield ImageFolderCamera("wide", ManualClock(), path=folder, frame_rate_hz=50.0, loop=True)


def test_video_frames_are_stamped_at_exposure_middle(video):
    clock = ManualClock(start_ns=1_000_000_000)
    cam = OpenCVCamera("wide", clock, source=str(video), exposure_s=0.004, grayscale=False)
    with cam:
        frames = [cam.read() for _ in range(12)]
        assert cam.shape == (48, 64)
        with pytest.raises(DeviceTimeoutError, match="end of video file"):
            cam.read()
    t = np.array([f.t_ns for f in frames])
    assert np.all(np.diff(t) == 40_000_000)  # 25 fps presentation times
    assert t[0] == 1_000_000_000 + 2_000_000  # opened at 1 s, frame 0 exposed [0, 4 ms): middle 2 ms
    assert [f.device_t_ns for f in frames][:3] == [0, 40_000_000, 80_000_000]
    assert frames[0].image.shape == (48, 64, 3)
    assert [int(round(f.image[:, :, 2].mean() / 20)) for f in frames[:3]] == [0, 1, 2]  # right frames, in order
    assert cam.frames_dropped == 0


def test_video_live_mode_counts_dropped_frames(video):
    clock = ManualClock()
    cam = OpenCVCamera("wide", clock, source=str(video), mode="live")
    with cam:
        a = cam.read()
        clock.sleep_s(0.2)  # five frame periods without reading
        b = cam.read()
    assert b.seq == a.seq + 1
    assert (b.t_ns - a.t_ns) // 40_000_000 >= 4
    assert cam.frames_dropped >= 3


def test_opencv_roi_and_errors(video, tmp_path):
    cam = OpenCVCamera("wide", ManualClock(), source=str(video), roi=(8, 4, 32, 20))
    with cam:
        assert cam.read().image.shape == (20, 32)
    with pytest.raises(DeviceError, match="roi .* does not fit"):
        OpenCVCamera("wide", ManualClock(), source=str(video), roi=(50, 0, 32, 20)).open()
    with pytest.raises(DeviceError, match="OpenCV cannot open source"):
        OpenCVCamera("wide", ManualClock(), source=str(tmp_path / "nothing.avi")).open()


def test_folder_with_csv_timestamps(folder, tmp_path):
    csv = tmp_path / "stamps.csv"
    t_us = [1_000_000 + 10_000 * i + (3_000 if i == 5 else 0) for i in range(12)]
    csv.write_text("filename,t_us\n" + "".join(f"frame{i}.png,{t}\n" for i, t in enumerate(t_us)))
    clock = ManualClock(start_ns=7_000_000_000)
    cam = ImageFolderCamera("wide", clock, path=folder, timestamps=csv, exposure_s=0.002)
    with cam:
        frames = [cam.read() for _ in range(12)]
    assert [f.meta["file"] for f in frames[:3]] == ["frame0.png", "frame1.png", "frame2.png"]
    assert [int(f.image.mean()) for f in frames] == [i * 10 for i in range(12)]
    t = np.array([f.t_ns for f in frames]) - frames[0].t_ns
    assert list(t) == [(v - t_us[0]) * 1000 for v in t_us]  # the CSV's spacing, to the ns
    assert frames[0].t_ns == 7_000_000_000 and frames[0].device_t_ns == 1_000_000_000


def test_folder_live_mode_skips_and_counts(folder):
    clock = ManualClock()
    cam = ImageFolderCamera("wide", clock, path=folder, frame_rate_hz=100.0, mode="live")
    with cam:
        cam.read()
        clock.sleep_s(0.05)
        f = cam.read()
    assert f.seq >= 5 and cam.frames_dropped == f.seq - 1


@pytest.mark.parametrize("content, message", [
    ("name,t_us\nframe0.png,1\n", "line 1: expected a header with 'filename'"),
    ("filename,t_ms\nframe0.png,abc\n", "line 2: expected '<filename>,<t_ms>'"),
    ("filename,t_s\nframe0.png,0.5\n", "no timestamp for frame1.png"),
])
def test_folder_csv_errors_name_the_line(folder, tmp_path, content, message):
    csv = tmp_path / "bad.csv"
    csv.write_text(content)
    with pytest.raises(ConfigError, match=message):
        ImageFolderCamera("wide", ManualClock(), path=folder, timestamps=csv)


def test_folder_rig_settings_are_validated(folder, tmp_path):
    rig = {"name": "r", "devices": {"cam": {"kind": "frame_camera", "backend": "folder",
                                            "settings": {"path": str(folder)}}}}
    with pytest.raises(ConfigError, match="devices.cam.settings: .*exactly one of 'timestamps'"):
        parse_rig(rig, source="rig.yaml")
    rig["devices"]["cam"]["settings"]["frame_rate_hz"] = 30
    with Rig(parse_rig(rig, source="rig.yaml", rig_dir=tmp_path)) as r:
        assert r.devices["cam"].read().image.shape == (30, 40)


# ----------------------------------------------------------------------------- GenICam
def test_genicam_without_harvesters_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "harvesters", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "harvesters.core", None)
    cam = GenICamCamera("search", ManualClock(), cti=["/opt/vendor/producer.cti"])
    with pytest.raises(BackendUnavailableError, match="backend 'genicam' needs the Python package 'harvesters'.*"
                                                      "pip install harvesters"):
        cam.open()


class _Node:
    def __init__(self, value, lo=None, hi=None):
        self.value, self.min, self.max = value, lo, hi


class FakeGenICamCamera:
    """Stands in for harvesters + a GenTL camera: free-running frames on a device clock with offset and drift."""

    def __init__(self, clock, fps=200.0, offset_ns=5_000_000_000, drift_ppm=30.0, transfer_ns=(400_000, 900_000)):
        self.clock, self.fps, self.offset_ns, self.drift = clock, fps, offset_ns, drift_ppm * 1e-6
        self.transfer_ns = transfer_ns
        self.rng = np.random.default_rng(0)
        self.nm = types.SimpleNamespace(
            PixelFormat=_Node("Mono8"), Width=_Node(64), Height=_Node(32), OffsetX=_Node(0), OffsetY=_Node(0),
            ExposureAuto=_Node("Continuous"), ExposureTime=_Node(1000.0, 10.0, 1e6), GainAuto=_Node("Off"),
            Gain=_Node(0.0), TriggerSelector=_Node(""), TriggerMode=_Node("Off"), TriggerSource=_Node(""),
            TriggerActivation=_Node(""), AcquisitionFrameRateEnable=_Node(False), AcquisitionFrameRate=_Node(0.0),
            DeviceModelName=_Node("FakeCam"))
        self.k = 0
        self.skip = set()
        self.starts_host_ns = []

    def module(self):
        fake = self

        class Buffer:
            def __init__(self, img, ts):
                comp = types.SimpleNamespace(width=img.shape[1], height=img.shape[0], data=img.ravel())
                self.payload = types.SimpleNamespace(components=[comp])
                self.timestamp_ns = ts

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

        class IA:
            remote_device = types.SimpleNamespace(node_map=fake.nm)

            def start(self):
                fake.t0 = fake.clock.now_ns()

            def stop(self):
                pass

            def destroy(self):
                pass

            def fetch(self, timeout=0):
                while fake.k in fake.skip:
                    fake.k += 1
                period = 1e9 / fake.nm.AcquisitionFrameRate.value
                start = fake.t0 + int(fake.k * period)
                exp = int(fake.nm.ExposureTime.value * 1000)
                arrival = start + exp + int(fake.rng.uniform(*fake.transfer_ns))
                if arrival - fake.clock.now_ns() > timeout * 1e9:
                    fake.clock.sleep_s(timeout)
                    raise type("TimeoutException", (Exception,), {})("timeout")
                fake.clock.sleep_until_ns(arrival)
                fake.starts_host_ns.append(start)
                fake.k += 1
                img = np.full((fake.nm.Height.value, fake.nm.Width.value), fake.k % 256, np.uint8)
                return Buffer(img, int(start * (1 + fake.drift) + fake.offset_ns))

        class Harvester:
            device_info_list = [types.SimpleNamespace(model="FakeCam", serial_number="42")]

            def add_file(self, path):
                self.path = path

            def update(self):
                pass

            def create(self, key):
                if key not in (0, {"serial_number": "42"}):
                    raise ValueError("no such device")
                return IA()

            def reset(self):
                pass

        core = types.ModuleType("harvesters.core")
        core.Harvester = Harvester
        return core


def test_genicam_device_stamps_through_a_standin_harvesters(monkeypatch, tmp_path):
    cti = tmp_path / "producer.cti"
    cti.write_bytes(b"")
    clock = ManualClock(start_ns=10**9)
    fake = FakeGenICamCamera(clock)
    monkeypatch.setitem(sys.modules, "harvesters", types.ModuleType("harvesters"))
    monkeypatch.setitem(sys.modules, "harvesters.core", fake.module())
    cam = GenICamCamera("search", clock, cti=[str(cti)], device={"serial_number": "42"}, exposure_s=0.001,
                        frame_rate_hz=200.0, latency_s=0.0004, roi=(0, 0, 64, 32))
    with cam:
        assert fake.nm.ExposureAuto.value == "Off" and fake.nm.ExposureTime.value == 1000.0
        assert fake.nm.TriggerMode.value == "Off" and fake.nm.AcquisitionFrameRate.value == 200.0
        assert cam.exposure_range_s == pytest.approx((1e-5, 1.0))
        frames = [cam.read() for _ in range(300)]
        fake.skip.update({fake.k + 2, fake.k + 3})
        frames += [cam.read() for _ in range(20)]
        cam.set_exposure(0.002)
        assert fake.nm.ExposureTime.value == 2000.0
        st = cam.status()
    assert cam.frames_dropped == 2
    mids_true = np.array(fake.starts_host_ns[-100:]) + 500_000  # 1 ms exposure: middle 0.5 ms after the start
    mids = np.array([f.t_ns for f in frames[-100:]])
    # device stamps remove the 0.4-0.9 ms transfer jitter: stamps within ~50 us of the true exposure middles
    assert np.abs(mids - mids_true).max() < 50_000
    assert st["model"] == "FakeCam" and st["sync"]["samples"] > 0
    with pytest.raises(DeviceError, match="no camera matches device"):
        GenICamCamera("search", clock, cti=[str(cti)], device={"serial_number": "7"}).open()
    with pytest.raises(DeviceError, match="cti: file not found"):
        GenICamCamera("search", clock, cti=[str(tmp_path / "missing.cti")]).open()


class TestGenICamConformance(FrameCameraConformance):
    @pytest.fixture
    def device(self, monkeypatch, tmp_path):
        cti = tmp_path / "producer.cti"
        cti.write_bytes(b"")
        clock = ManualClock(start_ns=10**9)
        monkeypatch.setitem(sys.modules, "harvesters", types.ModuleType("harvesters"))
        monkeypatch.setitem(sys.modules, "harvesters.core", FakeGenICamCamera(clock).module())
        yield GenICamCamera("search", clock, cti=[str(cti)], exposure_s=0.001, frame_rate_hz=200.0)


class TestOpenCVThreaded(FrameCameraConformance):
    """The live-source path (grabber thread, bounded queue, arrival stamps) on a file read as a stream."""

    @pytest.fixture
    def device(self, video):
        from foveate.system.clock import MonotonicClock

        yield OpenCVCamera("wide", MonotonicClock(), source=str(video), threaded=True, queue_frames=64)


def test_threaded_reader_too_slow_loses_oldest_frames_and_ends_cleanly(video):
    import time

    from foveate.system.clock import MonotonicClock

    cam = OpenCVCamera("wide", MonotonicClock(), source=str(video), threaded=True, queue_frames=2, latency_s=0.0)
    with cam:
        time.sleep(0.3)  # the grabber decodes all 12 frames meanwhile; the queue keeps the newest 2
        frames = []
        with pytest.raises(DeviceTimeoutError, match="the source stopped delivering frames"):
            while True:
                frames.append(cam.read(timeout_s=0.2))
    assert len(frames) == 2 and cam.frames_dropped == 10
    assert all(f.meta["arrival_ns"] >= f.t_ns for f in frames)  # stamped before arrival (exposure middle)
