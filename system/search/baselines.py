"""Baselines behind the planner interface: a raster sweep and uniform random views.

Both ignore the map and the tracks (the scheduler still runs the detector
and tracker on their frames, so their metrics are comparable with the
probability search).
"""

from __future__ import annotations

import numpy as np

from foveate.system.raster_run import raster_grid
from foveate.system.search.planner import PlanContext, Planner, View


class RasterPlanner(Planner):
    """Serpentine sweep of footprint-tiling views over the galvo limits, repeated."""

    name = "raster"

    def __init__(self, limits_deg, footprint_deg) -> None:
        super().__init__(limits_deg)
        self.grid = raster_grid(limits_deg, (float(footprint_deg[0]), float(footprint_deg[1])))
        self._i = 0

    def next_view(self, ctx: PlanContext) -> View:
        x, y = self.grid[self._i % len(self.grid)]
        self._i += 1
        if self._i % len(self.grid) == 0:
            self.rounds += 1
        return View(self.clip(x, y), "raster")


class RandomPlanner(Planner):
    """Independent uniformly random view centres within the galvo limits (seeded)."""

    name = "random"

    def __init__(self, limits_deg, seed: int = 0) -> None:
        super().__init__(limits_deg)
        self.rng = np.random.default_rng(seed)

    def next_view(self, ctx: PlanContext) -> View:
        (x0, x1), (y0, y1) = self.limits_deg
        return View((float(self.rng.uniform(x0, x1)), float(self.rng.uniform(y0, y1))), "random")
