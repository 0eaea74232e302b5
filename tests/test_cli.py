import json

from foveate.system import __version__
from foveate.tools.cli import main


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as e:
        assert e.code == 0
    assert __version__ in capsys.readouterr().out


def test_help_lists_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for cmd in ("devices", "run"):
        assert cmd in out


def test_devices_json(capsys):
    assert main(["devices", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    kinds = {d["kind"] for d in status["devices"].values()}
    assert kinds == {"frame_camera", "event_camera", "galvo", "line_laser"}
    assert all(d["open"] for d in status["devices"].values())


def test_run_writes_summary_and_picture(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--seconds", "0.1", "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["search_frames"] > 20  # ~3 ms per view: move, settle, expose, read out
    assert summary["sim_seconds"] >= 0.1
    assert summary["wide_frames"] >= 3
    png = (out / "overview.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_command_builds_its_options():
    from foveate.tools.cli import build_parser

    parser = build_parser([], all_commands=True)
    assert parser.format_help()


def test_light_commands_do_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from foveate.tools.cli import main; main(['devices']); "
            "assert 'torch' not in sys.modules, 'foveate devices imported torch'")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
