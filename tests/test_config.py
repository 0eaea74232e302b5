"""Rig files: the default loads; each kind of mistake gives one clear line naming file and key."""

from pathlib import Path

import pytest
import yaml

from foveate.system.config import default_rig_path, load_rig
from foveate.system.errors import ConfigError
from foveate.tools.cli import main


def _write(tmp_path: Path, data, name="rig.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return p


@pytest.fixture
def default_data():
    return yaml.safe_load(default_rig_path().read_text())


def _error(path) -> str:
    with pytest.raises(ConfigError) as exc:
        load_rig(path)
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_default_rig_is_all_sim():
    cfg = load_rig()
    assert cfg.simulated
    assert {d.backend for d in cfg.devices.values()} == {"sim"}
    for role in ("wide_camera", "wide_events", "search_camera", "search_galvo", "laser"):
        assert cfg.device_by_role(role)


def test_typo_in_key(tmp_path, default_data):
    default_data["devices"]["galvo"]["backnd"] = default_data["devices"]["galvo"].pop("backend")
    msg = _error(_write(tmp_path, default_data))
    assert "devices.galvo.backnd" in msg and "unknown key" in msg and "backend" in msg


def test_typo_in_backend_settings(tmp_path, default_data):
    default_data["devices"]["galvo"]["settings"]["natural_freq"] = 1000
    msg = _error(_write(tmp_path, default_data))
    assert "devices.galvo.settings.natural_freq" in msg and "natural_freq_hz" in msg


def test_wrong_type(tmp_path, default_data):
    default_data["devices"]["search"]["settings"]["width"] = "wide"
    msg = _error(_write(tmp_path, default_data))
    assert "devices.search.settings.width" in msg and "integer" in msg and "'wide'" in msg


def test_wrong_type_top_level(tmp_path, default_data):
    default_data["clock"] = 3
    msg = _error(_write(tmp_path, default_data))
    assert ": clock:" in msg


def test_missing_calibration_file(tmp_path, default_data):
    default_data["calibration"] = {"galvo": "calib/galvo.yaml"}
    msg = _error(_write(tmp_path, default_data))
    assert "calibration.galvo" in msg and "file not found" in msg and str(tmp_path / "calib" / "galvo.yaml") in msg


def test_missing_model_file(tmp_path, default_data):
    default_data["models"] = {"detector": {"path": "nope.onnx"}}
    msg = _error(_write(tmp_path, default_data))
    assert "models.detector.path" in msg and "file not found" in msg


def test_relative_paths_resolve_against_rig_folder(tmp_path, default_data):
    (tmp_path / "g.yaml").write_text("x: 1\n")
    default_data["calibration"] = {"galvo": "g.yaml"}
    sub = tmp_path / "elsewhere"
    sub.mkdir()
    cfg = load_rig(_write(tmp_path, default_data))
    assert cfg.calibration["galvo"] == Path("g.yaml")


def test_missing_required_key(tmp_path, default_data):
    del default_data["devices"]["laser"]["kind"]
    msg = _error(_write(tmp_path, default_data))
    assert "devices.laser.kind" in msg and "missing" in msg


def test_unknown_backend(tmp_path, default_data):
    default_data["devices"]["galvo"]["backend"] = "warp-drive"
    msg = _error(_write(tmp_path, default_data))
    assert "devices.galvo.backend" in msg and "warp-drive" in msg and "sim" in msg


def test_duplicate_role(tmp_path, default_data):
    default_data["devices"]["wide"]["role"] = "search_camera"
    msg = _error(_write(tmp_path, default_data))
    assert "role 'search_camera' already taken" in msg


def test_invalid_yaml(tmp_path):
    msg = _error(_write(tmp_path, "name: [unclosed\n"))
    assert "invalid YAML" in msg and "line" in msg


def test_missing_rig_file(tmp_path):
    msg = _error(tmp_path / "absent.yaml")
    assert "not found" in msg


def test_not_a_mapping(tmp_path):
    assert "expected a mapping" in _error(_write(tmp_path, "- 1\n- 2\n"))


def test_cli_prints_one_line_error(tmp_path, default_data, capsys):
    default_data["devices"]["galvo"]["settings"]["damping"] = "high"
    rc = main(["devices", "--config", str(_write(tmp_path, default_data))])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("foveate: error: ") and len(err.splitlines()) == 1
    assert "devices.galvo.settings.damping" in err


def test_binary_rig_file_names_the_byte_offset(tmp_path):
    p = tmp_path / "rig.yaml"
    p.write_bytes(b"name: x\n\xff\xfe\x00")
    assert "byte offset 8: not UTF-8 text" in _error(p)


def test_rig_path_that_is_a_folder_or_a_pipe(tmp_path):
    import os

    from foveate.system.config import read_yaml

    with pytest.raises(ConfigError, match="is a folder, expected a rig file"):
        read_yaml(tmp_path)
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    assert "not a regular file" in _error(fifo)  # would block forever if opened


def test_oversized_and_deeply_nested_rig_files(tmp_path):
    from foveate.system.config import MAX_YAML_BYTES

    big = tmp_path / "big.yaml"
    with open(big, "wb") as f:
        f.truncate(MAX_YAML_BYTES + 1)
    assert f"at most {MAX_YAML_BYTES} bytes" in _error(big)
    deep = _write(tmp_path, "a: " + "[" * 100_000 + "]" * 100_000 + "\n", "deep.yaml")
    assert "invalid YAML" in _error(deep)


def test_control_characters_in_keys_stay_on_one_line(tmp_path, default_data):
    default_data["devices"]["galvo"]["bad\nkey"] = 1
    msg = _error(_write(tmp_path, default_data))
    assert "unknown key 'bad\\nkey'" in msg
