"""Scenes: registry, determinism, save/load, layout facts (targets where they belong), DDD17 classes."""

import json

import numpy as np
import pytest

from foveate.hardware.sim.panorama import PanoramaScene, az_el_to_dirs
from foveate.hardware.sim.scene import CLASSES, HUMAN, SCENES, VEHICLE, Scene, load_scene, make_scene, save_scene
from foveate.hardware.sim.scenes import StreetScene
from foveate.system.errors import ConfigError


def test_classes_are_ddd17_six():
    assert CLASSES == ("flat", "construction+sky", "object", "nature", "human", "vehicle")


@pytest.mark.parametrize("name", ["street", "parking_lot", "plaza"])
def test_reference_scenes_have_5_to_50_targets_and_are_deterministic(name):
    a, b, c = make_scene(name, seed=4), make_scene(name, seed=4), make_scene(name, seed=5)
    assert isinstance(a, Scene)
    assert 5 <= len(a.targets) <= 50
    assert {t.cls for t in a.targets} == {HUMAN, VEHICLE}
    assert json.dumps(a.to_dict()) == json.dumps(b.to_dict())
    assert json.dumps(a.to_dict()) != json.dumps(c.to_dict())


def test_counts_speeds_and_sizes_are_configurable():
    s = make_scene("street", seed=1, n_humans=3, n_vehicles=2, human_speed_mps=[1.0, 1.0], size_scale=2.0)
    assert sum(t.cls == HUMAN for t in s.targets) == 3 and sum(t.cls == VEHICLE for t in s.targets) == 2
    assert all(abs(t.trajectory.speed_mps) == 1.0 for t in s.targets if t.cls == HUMAN)
    assert all(t.size_m[1] >= 3.2 for t in s.targets if t.cls == HUMAN)
    with pytest.raises(ConfigError, match="n_humans"):
        make_scene("street", n_humans=-1)
    with pytest.raises(ConfigError, match="human_speed_mps"):
        make_scene("street", human_speed_mps=[2.0, 1.0])
    with pytest.raises(ConfigError, match="does not take"):
        make_scene("street", n_bicycles=3)
    with pytest.raises(ConfigError, match="unknown scene 'moon'.*street"):
        make_scene("moon")


def test_street_people_walk_sidewalks_and_crossings_vehicles_drive_lanes():
    s = make_scene("street", seed=2, n_humans=30, n_vehicles=10)
    for t_s in (0.0, 7.3, 40.0):
        x, z, dx, dz = s.target_positions(t_s)
        for k, tg in enumerate(s.targets):
            if tg.cls == VEHICLE:
                assert z[k] in (57.5, 62.5) and abs(dx[k]) == pytest.approx(1.0)
            else:
                on_walk = StreetScene.Z_NEAR_WALK[0] <= z[k] <= StreetScene.Z_NEAR_WALK[1] or \
                    StreetScene.Z_FAR_WALK[0] <= z[k] <= StreetScene.Z_FAR_WALK[1]
                on_crossing = (-16 <= x[k] <= -6 or 7 <= x[k] <= 17) and 52.0 <= z[k] <= 68.0
                assert on_walk or on_crossing
    # Targets actually move at their speed.
    x0, z0, _, _ = s.target_positions(10.0)
    x1, z1, _, _ = s.target_positions(10.1)
    speeds = np.hypot(x1 - x0, z1 - z0) / 0.1
    for k, tg in enumerate(s.targets):
        if tg.trajectory.mode == "wrap" and abs(x1[k] - x0[k]) < 10:
            assert speeds[k] == pytest.approx(abs(tg.trajectory.speed_mps), rel=1e-6)


def test_save_load_round_trip_renders_identically(tmp_path):
    s = make_scene("plaza", seed=9)
    p = save_scene(s, tmp_path / "plaza.json")
    t = load_scene(p)
    assert isinstance(t, PanoramaScene) and t.name == "plaza"
    az, el = np.meshgrid(np.linspace(-10, 10, 120), np.linspace(0, -20, 90))
    dirs = az_el_to_dirs(az, el)
    a = s.render_rays(np.zeros(3), dirs, 3.0, None)
    b = t.render_rays(np.zeros(3), dirs, 3.0, None)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_bad_scene_files_name_file_and_key(tmp_path):
    with pytest.raises(ConfigError, match="scene file not found"):
        load_scene(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json: line 1"):
        load_scene(bad)
    bad.write_text(json.dumps({"format": 1, "scene": "street"}))
    with pytest.raises(ConfigError, match="bad.json: data: required key"):
        load_scene(bad)
    bad.write_text(json.dumps({"format": 1, "scene": "street", "data": {"layout": {}}}))
    with pytest.raises(ConfigError, match="bad.json: data: malformed street scene"):
        load_scene(bad)


def test_labels_cover_the_world_classes_and_sky_is_up():
    s = make_scene("street", seed=0)
    az, el = np.meshgrid(np.linspace(-30, 30, 300), np.linspace(20, -25, 225))
    inten, lab = s.render_rays(np.zeros(3), az_el_to_dirs(az, el), 5.0, None)
    assert inten.dtype == np.float32 and lab.dtype == np.uint8
    assert 0.0 <= inten.min() and inten.max() <= 1.0
    assert set(np.unique(lab)) >= {0, 1, 2, 3}
    assert np.all(lab[0] == 1)  # top row: sky
    assert np.mean(lab[-1] == 0) > 0.5 or np.mean(lab[-1] == 3) > 0.5  # bottom row: ground (flat or grass)


def test_registry_names_light_section_scene_by_import_string():
    assert SCENES["light_section_reference"].startswith("foveate.hardware.sim.light_section.scene:")
