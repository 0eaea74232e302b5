"""Map the repository's top-level folders onto the ``foveate`` namespace.

``system/`` installs as ``foveate.system``, ``drivers/`` as ``foveate.drivers``
and so on; the root ``foveate`` is a PEP 420 namespace package, so no generic
top-level name (``models``, ``tools``, ``system``) lands in site-packages.
Subpackages are found automatically so new folders need no edit here.
"""

from setuptools import find_packages, setup

FOLDERS = ("system", "drivers", "models", "calibration", "tools", "hardware")
DATA_PATTERNS = ["*.yaml", "*.yml", "*.json", "*.onnx", "*.pt", "*.npz", "*.md", "*.csv", "*.txt"]

packages: list[str] = []
package_dir: dict[str, str] = {}
package_data: dict[str, list[str]] = {}
for folder in FOLDERS:
    top = f"foveate.{folder}"
    package_dir[top] = folder
    packages.append(top)
    package_data[top] = DATA_PATTERNS + [f"**/{p}" for p in DATA_PATTERNS]
    for sub in find_packages(where=folder):
        packages.append(f"{top}.{sub}")
        package_data[f"{top}.{sub}"] = DATA_PATTERNS

setup(packages=packages, package_dir=package_dir, package_data=package_data, include_package_data=True)
