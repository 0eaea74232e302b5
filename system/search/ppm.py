"""The panoramic probability map (PPM) on the grid of mirror commands.

``mass(t) = prior * visited(t) * (1 - explained) + evidence`` per grid cell:

* ``prior``: the wide view's segmentation (C class probabilities per pixel)
  times the rig's F(class, target) table, summed over target classes and
  resampled onto the command grid through the geometry (wide pixel of each
  cell's view centre). Refreshed whenever a new segmentation arrives.
* ``visited``: ``1 - (1 - floor) exp(-(t - t_visit) / tau)``: a region just
  searched keeps only ``floor`` of its mass, which returns over ``tau``.
* ``explained``: a confirmed track claims the mass around its predicted
  position (its own revisits keep it; exploration should look elsewhere).
* ``evidence``: a Gaussian bump (prediction covariance widened by the
  footprint) for each tentative or lost track, so the search returns to it.

Arrays are (ny, nx), row ``i`` at command ``y = ys[i]`` (increasing), column
``j`` at ``x = xs[j]``; commands in mechanical degrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from foveate.system.search.geometry import SearchGeometry, remap_to_grid
from foveate.system.search.settings import PPMSettings


@dataclass(frozen=True)
class CommandGrid:
    """Cell centres covering the galvo limits at ``cell_deg`` spacing."""

    xs: np.ndarray
    ys: np.ndarray
    cell_deg: float

    @staticmethod
    def cover(limits_deg, cell_deg: float) -> "CommandGrid":
        (x0, x1), (y0, y1) = limits_deg
        nx = max(1, int(round((x1 - x0) / cell_deg)))
        ny = max(1, int(round((y1 - y0) / cell_deg)))
        xs = x0 + (np.arange(nx) + 0.5) * (x1 - x0) / nx
        ys = y0 + (np.arange(ny) + 0.5) * (y1 - y0) / ny
        return CommandGrid(xs, ys, float(cell_deg))

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.ys), len(self.xs))

    def centres(self) -> np.ndarray:
        """(ny * nx, 2) cell centres, row-major."""
        X, Y = np.meshgrid(self.xs, self.ys)
        return np.stack([X.ravel(), Y.ravel()], axis=1)

    def index(self, cmd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest (row, col) of commands (N, 2), clipped to the grid."""
        cmd = np.asarray(cmd, dtype=np.float64).reshape(-1, 2)
        dx, dy = self.xs[1] - self.xs[0] if len(self.xs) > 1 else 1.0, self.ys[1] - self.ys[0] if len(self.ys) > 1 else 1.0
        j = np.clip(np.round((cmd[:, 0] - self.xs[0]) / dx).astype(int), 0, len(self.xs) - 1)
        i = np.clip(np.round((cmd[:, 1] - self.ys[0]) / dy).astype(int), 0, len(self.ys) - 1)
        return i, j

    def box(self, centre, half_wh) -> tuple[slice, slice]:
        """Row and column slices of the cells within ``centre +- half_wh``."""
        x, y = float(centre[0]), float(centre[1])
        hw, hh = float(half_wh[0]), float(half_wh[1])
        j0, j1 = np.searchsorted(self.xs, [x - hw, x + hw], side="left")
        i0, i1 = np.searchsorted(self.ys, [y - hh, y + hh], side="left")
        return slice(int(i0), int(i1)), slice(int(j0), int(j1))


class PriorTable:
    """F(segmentation class, target class) as a (C_seg, C_target) matrix."""

    def __init__(self, table: dict[str, dict[str, float]], seg_classes: tuple[str, ...], where: str = "search.ppm.prior"):
        from foveate.system.errors import ConfigError

        self.targets = tuple(table)
        self.seg_classes = tuple(seg_classes)
        F = np.zeros((len(seg_classes), len(self.targets)), np.float32)
        for k, target in enumerate(self.targets):
            for cls, w in table[target].items():
                if cls not in self.seg_classes:
                    raise ConfigError(f"{where}.{target}.{cls}: unknown segmentation class "
                                      f"(the segmenter's classes are: {', '.join(self.seg_classes)})")
                if w < 0:
                    raise ConfigError(f"{where}.{target}.{cls}: weight must be >= 0, got {w}")
                F[self.seg_classes.index(cls), k] = w
        self.F = F

    def target_maps(self, probs: np.ndarray) -> np.ndarray:
        """(C_seg, H, W) class probabilities -> (C_target, H, W) target likelihoods."""
        C, H, W = probs.shape
        return (self.F.T @ probs.reshape(C, -1)).reshape(len(self.targets), H, W)


class ProbabilityMap:
    """The PPM: see the module docstring for the formula."""

    def __init__(self, geometry: SearchGeometry, settings: PPMSettings, prior: PriorTable | None = None,
                 sensor: str | None = None, sensor_wh: tuple[int, int] | None = None) -> None:
        """``sensor``/``sensor_wh``: the camera whose view is segmented (default: the geometry's wide camera)."""
        self.geometry = geometry
        self.settings = settings
        self.prior_table = prior
        self.grid = CommandGrid.cover(geometry.limits_deg, settings.cell_deg)
        ny, nx = self.grid.shape
        uv = geometry.command_to_sensor(self.grid.centres(), sensor).reshape(ny, nx, 2).astype(np.float32)
        self._wide_uv = np.nan_to_num(uv, nan=-1e4)
        # The geometry's own camera size unless it models the sensor itself.
        self.sensor_wh = tuple(sensor_wh) if sensor_wh is not None and sensor in getattr(geometry, "sensors", {}) \
            else geometry.wide_wh
        # Until a segmentation arrives every reachable direction is equally likely.
        self.prior = np.full((ny, nx), 0.5, np.float32)
        self.last_visit_s = np.full((ny, nx), -np.inf)
        self.updated_t_ns: int | None = None
        self.refreshes = 0

    def update_segmentation(self, probs: np.ndarray, t_ns: int) -> None:
        """New segmentation (C, H, W) of the wide view (at any resolution with the wide camera's aspect)."""
        if self.prior_table is None:
            raise RuntimeError("a segmentation needs a prior table")
        probs = np.asarray(probs, dtype=np.float32)
        H, W = probs.shape[1:]
        sx, sy = W / self.sensor_wh[0], H / self.sensor_wh[1]
        mx = ((self._wide_uv[..., 0] + 0.5) * sx - 0.5).astype(np.float32)
        my = ((self._wide_uv[..., 1] + 0.5) * sy - 0.5).astype(np.float32)
        # Resample the class maps onto the (smaller) command grid first, then apply F(class, target).
        on_grid = remap_to_grid(probs, (mx, my))
        self.prior = np.clip(self.prior_table.target_maps(on_grid).sum(axis=0), 0, None).astype(np.float32)
        self.updated_t_ns = int(t_ns)
        self.refreshes += 1

    def mark_visited(self, cmd, half_wh, t_ns: int) -> None:
        rows, cols = self.grid.box(cmd, half_wh)
        self.last_visit_s[rows, cols] = t_ns * 1e-9

    def visited_factor(self, t_ns: int) -> np.ndarray:
        s = self.settings
        age = t_ns * 1e-9 - self.last_visit_s
        return 1.0 - (1.0 - s.visit_floor) * np.exp(-age / s.visit_return_s)

    def mass(self, t_ns: int, tracks=(), footprint_half=(0.8, 0.8)) -> np.ndarray:
        """The map at ``t_ns`` given the tracker's tracks (objects with ``predict(t_ns)`` and ``confirmed``)."""
        vf = self.visited_factor(t_ns)
        m = self.prior * vf
        if not tracks:
            return m.astype(np.float32)
        explained = np.zeros_like(m)
        evidence = np.zeros_like(m)
        if not hasattr(self, "_XY"):
            self._XY = np.meshgrid(self.grid.xs, self.grid.ys)
        X, Y = self._XY
        fp = np.diag(np.square(np.asarray(footprint_half, dtype=np.float64)) / 4)
        for tr in tracks:
            mu, P = tr.predict(t_ns)
            S = P[:2, :2] + fp
            rows, cols = self.grid.box(mu, 3 * np.sqrt(np.diag(S)))
            if rows.start >= rows.stop or cols.start >= cols.stop:
                continue
            d = np.stack([X[rows, cols] - mu[0], Y[rows, cols] - mu[1]], axis=-1)
            q = np.einsum("...i,ij,...j->...", d, np.linalg.inv(S), d)
            g = np.exp(-0.5 * q)
            if tr.confirmed:
                explained[rows, cols] = np.maximum(explained[rows, cols], self.settings.track_explain * g)
            else:
                evidence[rows, cols] += self.settings.evidence_weight * g
        return (m * (1.0 - explained) + evidence * vf).astype(np.float32)
