"""The twin's ground-truth API and settings: true geometry, nominal geometry, scenes from the rig file."""

import numpy as np
import pytest

from foveate.hardware.sim.scene import save_scene
from foveate.system.clock import ManualClock
from foveate.system.errors import ConfigError

from .conftest import make_rig


def test_true_geometry_is_the_nominal_design_plus_small_errors():
    r = make_rig(drop=("laser",))
    twin = r.devices["search"].twin
    true_g = twin.galvo_camera("search")
    nom = twin.nominal_galvo_camera("search")
    axes = r.devices["galvo"].axes
    assert true_g.mirror1.gain == pytest.approx(1 + axes[0].gain_error)
    assert true_g.mirror2.offset_deg == pytest.approx(axes[1].offset_error_deg)
    assert true_g.mirror1.gain != 1.0 and nom.mirror1.gain == 1.0
    # Small: the lines of sight agree to a fraction of a degree over the range.
    for cmd in ((0, 0), (10, -8), (-14, 10)):
        d_true = true_g.line_of_sight(*cmd)[1]
        d_nom = nom.line_of_sight(*cmd)[1]
        ang = np.degrees(np.arccos(np.clip(d_true @ d_nom, -1, 1)))
        assert 0.001 < ang < 1.0
    cam, T = twin.camera_model("wide")
    assert cam.width == 640 and T.shape == (4, 4)
    assert np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3))
    ecam, eT = twin.camera_model("wide_events")
    assert (ecam.width, ecam.height) == (320, 240)
    assert not np.allclose(T[:3, 3], eT[:3, 3])  # different places on the rig
    # Deterministic: a second rig with the same seed has the same truth.
    twin2 = make_rig(drop=("laser",)).devices["search"].twin
    assert np.allclose(twin2.galvo_camera("search").virtual_extrinsics(3, 4), true_g.virtual_extrinsics(3, 4))


def test_zero_assembly_error_gives_the_design_with_the_axis_errors_only():
    r = make_rig(sim={"assembly_error_scale": 0.0}, devices={"galvo": {"gain_error": [0.0, 0.0], "offset_error_deg": [0.0, 0.0]}},
                 drop=("laser",))
    twin = r.devices["search"].twin
    a, b = twin.galvo_camera("search"), twin.nominal_galvo_camera("search")
    assert np.allclose(a.virtual_extrinsics(5, -3), b.virtual_extrinsics(5, -3))
    assert np.allclose(a.camera.K, b.camera.K)


def test_ground_truth_api_errors_name_the_device():
    twin = make_rig(drop=("laser",)).devices["search"].twin
    with pytest.raises(ConfigError, match="no simulated device named 'nope'"):
        twin.galvo_camera("nope")
    with pytest.raises(ConfigError, match="devices.wide: a wide view has no galvo"):
        twin.galvo_camera("wide")
    with pytest.raises(ConfigError, match="not a fixed sim camera"):
        twin.camera_model("galvo")
    with pytest.raises(ConfigError, match="rigid motion"):
        twin.set_board(np.diag([1.0, 1.0, -1.0, 1.0]), 9, 6, 20.0)


@pytest.mark.parametrize("scene", ["parking_lot", "plaza"])
def test_scene_by_name_from_the_rig_file(scene):
    r = make_rig(sim={"scene": scene}, drop=("wide", "wide_events", "laser"))
    assert r.devices["search"].twin.scene.name == scene
    with r:
        f = r.devices["search"].read()
        assert f.image.shape == (256, 256) and f.meta["labels"].shape == (256, 256)


def test_scene_file_in_the_rig_and_bad_sim_keys(tmp_path):
    r = make_rig(sim={"scene": "plaza", "seed": 3})
    path = save_scene(r.devices["search"].twin.scene, tmp_path / "p.json")
    with pytest.raises(ConfigError, match="sim.n_humans: not allowed with sim.scene_file"):
        make_rig(sim={"scene_file": str(path), "seed": 3, "n_humans": 1})
    from foveate.system.config import default_rig_path, parse_rig
    import yaml

    data = yaml.safe_load(default_rig_path().read_text())
    data["sim"] = {"scene_file": str(path)}
    from foveate.system.rig import Rig

    r3 = Rig(parse_rig(data, source="<t>"))
    assert r3.devices["search"].twin.scene.to_dict() == r.devices["search"].twin.scene.to_dict()
    data["sim"] = {"scene": "street", "n_cats": 3}
    with pytest.raises(ConfigError, match="n_cats"):
        Rig(parse_rig(data, source="<t>"))
    data["sim"] = {"scene": "atlantis"}
    with pytest.raises(ConfigError, match="<t>: sim.scene: unknown scene 'atlantis'"):
        Rig(parse_rig(data, source="<t>"))


def test_fast_mode_uses_the_manual_clock():
    r = make_rig(drop=("wide", "wide_events", "laser"))
    assert isinstance(r.clock, ManualClock)


def test_frame_ground_truth_is_computed_on_access_and_pickles():
    import pickle

    r = make_rig(drop=("wide", "wide_events", "laser"))
    with r:
        f = r.devices["search"].read()
    assert callable(f.meta._items["labels"])  # not computed yet: the run loop never pays for it
    assert f.meta["labels"].shape == (256, 256) and isinstance(f.meta["boxes"], list)
    g = pickle.loads(pickle.dumps(f))
    assert isinstance(g.meta, dict) and (g.meta["labels"] == f.meta["labels"]).all()
