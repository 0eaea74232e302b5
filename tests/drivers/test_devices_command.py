"""``foveate devices`` on the example rigs: residual sync error of the serial galvo; the live rig listed without hardware."""

import argparse
import json

import pytest

from foveate.tools.cli import main
from foveate.tools.commands import devices


def _devices(**kw) -> int:
    """The command itself, without building the whole CLI (whose other commands import heavy packages)."""
    args = dict(config=None, json=False, list=False, sync_seconds=0.0)
    args.update(kw)
    return devices.run(argparse.Namespace(**args))

pytestmark = pytest.mark.timeout(60)


def test_devices_reports_residual_sync_error_on_sim_serial_rig(capsys):
    assert _devices(config="hardware/rigs/sim_serial.yaml", sync_seconds=1.1, json=True) == 0
    st = json.loads(capsys.readouterr().out)
    sync = st["devices"]["galvo"]["sync"]
    assert sync["drift_ppm"] == pytest.approx(-35.0, abs=1.5)  # the controller's clock runs 35 ppm fast
    assert sync["residual_us"] < 5.0
    assert st["devices"]["galvo"]["faults"] == []
    assert _devices(config="hardware/rigs/sim_serial.yaml") == 0
    out = capsys.readouterr().out
    galvo_sync = next(line for line in out.splitlines() if "residual sync error" in line and "ppm" in line)
    assert "half round trip" in galvo_sync
    assert "worst residual sync error" in out
    assert "no device clock" in out  # the simulated cameras stamp on the rig clock itself


def test_live_example_rig_is_listed_without_hardware(capsys):
    assert main(["devices", "--config", "hardware/rigs/live_example.yaml", "--list", "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    backends = {n: d["backend"] for n, d in st["devices"].items()}
    assert backends == {"wide": "opencv", "wide_events": "openeb", "galvo": "serial", "search": "genicam",
                        "laser": "serial"}
    assert st["devices"]["galvo"]["settings"]["watchdog_ms"] == 250
    assert main(["devices", "--config", "hardware/rigs/live_example.yaml", "--list"]) == 0
    assert "listed, not opened" in capsys.readouterr().out


def test_live_example_without_hardware_fails_with_one_clear_line(capsys, tmp_path):
    # only the serial galvo, on a port that does not exist
    rig = tmp_path / "rig.yaml"
    rig.write_text("name: t\ndevices:\n  galvo:\n    kind: galvo\n    backend: serial\n"
                   "    settings: {port: /dev/ttyACM-missing}\n")
    assert main(["devices", "--config", str(rig)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("foveate: error: /dev/ttyACM-missing: cannot open the galvo controller's port")


def test_galvo_sim_command_serves_a_pty(capsys):
    import threading

    from foveate.drivers.serial_galvo import SerialGalvo
    from foveate.system.clock import MonotonicClock
    from foveate.tools.commands import galvo_sim

    result = {}
    th = threading.Thread(target=lambda: result.setdefault(
        "rc", galvo_sim.run(argparse.Namespace(option=["seed=4"], seconds=1.5))))
    th.start()
    for _ in range(100):
        out = capsys.readouterr().out
        if "/dev/pts/" in out:
            break
        th.join(0.02)
    path = out.split(" on ")[1].split()[0]
    with SerialGalvo("g", MonotonicClock(), port=path, sync_burst=1) as g:
        g.move_to(0.5, 0.5)
    th.join(5)
    assert result["rc"] == 0
    assert "served" in capsys.readouterr().out
    with pytest.raises(Exception, match="expected KEY=VALUE"):
        galvo_sim.run(argparse.Namespace(option=["seed"], seconds=0.1))
