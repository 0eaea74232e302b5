"""``foveate twin``: the side-by-side picture and the saved scene."""

import json

import cv2

from foveate.hardware.sim.scene import load_scene
from foveate.tools.cli import main


def test_twin_command_writes_picture_and_scene(tmp_path, capsys):
    out = tmp_path / "twin"
    scene_file = tmp_path / "scene.json"
    assert main(["twin", "--out", str(out), "--seconds", "0.1", "--save-scene", str(scene_file)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    info = json.loads(lines[-2])
    assert info["scene"] == "street" and 5 <= info["targets"] <= 50
    img = cv2.imread(str(out / "twin.png"))
    assert img is not None and img.shape[1] > 1000 and img.shape[0] > 600  # two rows of panels
    assert load_scene(scene_file).name == "street"
