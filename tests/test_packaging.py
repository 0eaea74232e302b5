"""Packaging rules: everything lives under the ``foveate`` namespace; no bare top-level imports."""

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("system", "drivers", "models", "calibration", "tools", "hardware")
BARE = re.compile(rf"^\s*(?:from|import)\s+({'|'.join(FOLDERS)})(?:\.|\s|$)", re.M)
SIM = re.compile(r"^\s*(?:from|import)\s+foveate\.hardware\.sim", re.M)


def _py_files(*folders):
    for folder in folders:
        yield from (ROOT / folder).rglob("*.py")


def test_no_bare_imports_of_project_folders():
    offenders = [f"{p.relative_to(ROOT)}: {m.group(0).strip()}"
                 for p in _py_files(*FOLDERS, "tests") for m in BARE.finditer(p.read_text())]
    assert not offenders, "use 'foveate.<folder>' imports:\n" + "\n".join(offenders)


def test_runtime_code_never_imports_the_simulator():
    offenders = [str(p.relative_to(ROOT)) for p in _py_files("system", "drivers", "models", "calibration")
                 if SIM.search(p.read_text())]
    assert not offenders, "only the registry may name the simulator (by string): " + ", ".join(offenders)


@pytest.mark.slow
def test_wheel_holds_only_the_foveate_namespace(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    wheel = next(tmp_path.glob("foveate-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"foveate", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}
    assert "foveate/hardware/rigs/sim_default.yaml" in names
    assert "foveate/__init__.py" not in names  # PEP 420 namespace root
    for folder in FOLDERS:
        assert f"foveate/{folder}/__init__.py" in names
    # Import from the unpacked wheel, in another directory, without the editable hook (-S skips .pth files).
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    import numpy

    deps = str(Path(numpy.__file__).parents[1])
    code = ("import foveate.drivers, foveate.system, foveate.tools.cli, foveate.hardware.sim.backends; "
            "import foveate.system.config as c; c.load_rig(); print(foveate.system.__file__)")
    res = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": f"{unpacked}:{deps}", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().startswith(str(unpacked))
