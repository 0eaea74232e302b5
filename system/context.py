"""What a backend gets when a rig builds it: the shared clock and rig-wide settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from foveate.system.clock import Clock


@dataclass
class RigContext:
    """Shared by every device of one rig.

    ``shared`` lets backends of one family share one object (the simulated
    world, an open serial controller) without the runtime knowing about it.
    """

    clock: Clock
    rig_dir: Path = Path(".")
    source: str = "<memory>"
    sim: dict[str, Any] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)

    def resolve(self, path: str | Path) -> Path:
        """A path from the rig file, relative to the rig file's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.rig_dir / p)
