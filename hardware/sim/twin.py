"""The shared state of a simulated rig: one world, one clock, the sim devices."""

from __future__ import annotations

from typing import Any

from foveate.hardware.sim.world import World
from foveate.system.context import RigContext
from foveate.system.errors import ConfigError

_SIM_KEYS = {"seed", "n_humans", "n_vehicles"}


class Twin:
    """World plus a name → device map so simulated cameras can find their galvo."""

    def __init__(self, context: RigContext) -> None:
        cfg: dict[str, Any] = dict(context.sim)
        unknown = set(cfg) - _SIM_KEYS
        if unknown:
            raise ConfigError(
                f"{context.source}: sim.{sorted(unknown)[0]}: unknown key (expected one of: {', '.join(sorted(_SIM_KEYS))})"
            )
        self.clock = context.clock
        self.world = World(
            seed=int(cfg.get("seed", 0)),
            n_humans=int(cfg.get("n_humans", 8)),
            n_vehicles=int(cfg.get("n_vehicles", 5)),
        )
        self.devices: dict[str, Any] = {}

    def now_s(self) -> float:
        return self.clock.now_ns() * 1e-9


def twin_for(context: RigContext) -> Twin:
    """The rig's twin, created on first use and shared by all its sim devices."""
    twin = context.shared.get("sim.twin")
    if twin is None:
        twin = context.shared["sim.twin"] = Twin(context)
    return twin
