"""Where the search camera looks: mirror commands <-> wide-camera pixels <-> search-camera pixels.

Everything the search loop needs from a calibration, behind one small
interface so a fitted calibration, a nominal model or (on the twin) the true
geometry are interchangeable:

* ``command_to_wide(cmd)``: where the search view's centre lands in the wide
  image, (N, 2) mechanical degrees -> (N, 2) wide pixels; the PPM is
  resampled onto the command grid through it.
* ``search_jacobian(cmd)``: the local Jacobian d(command)/d(search pixel) at
  the search image centre, (N, 2) -> (N, 2, 2) deg/px; detections become
  mirror commands through it (``search_to_command``).

Distant scenes are assumed (baseline between the cameras much smaller than
the scene depth), as in the wide-to-galvo map of the calibration brief.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import cv2
import numpy as np

Limits = tuple[tuple[float, float], tuple[float, float]]


class SearchGeometry(ABC):
    """Mapping between mirror commands (mechanical deg) and wide/search pixels."""

    def __init__(self, limits_deg: Limits, search_wh: tuple[int, int], wide_wh: tuple[int, int]) -> None:
        self.limits_deg: Limits = (tuple(map(float, limits_deg[0])), tuple(map(float, limits_deg[1])))  # type: ignore[assignment]
        self.search_wh = (int(search_wh[0]), int(search_wh[1]))
        self.wide_wh = (int(wide_wh[0]), int(wide_wh[1]))

    @abstractmethod
    def command_to_wide(self, cmd: np.ndarray) -> np.ndarray:
        """(N, 2) commands -> (N, 2) wide pixels of the view centre (NaN where it leaves the wide view)."""

    @abstractmethod
    def search_jacobian(self, cmd: np.ndarray) -> np.ndarray:
        """(N, 2) commands -> (N, 2, 2) d(command)/d(search pixel) at the search image centre (deg/px)."""

    def command_to_sensor(self, cmd: np.ndarray, sensor: str | None = None) -> np.ndarray:
        """Like ``command_to_wide`` for another fixed camera (an event camera), when the geometry knows it.

        The base model knows one wide camera and scales to ``sensor_wh`` of
        the same field of view; subclasses with per-camera models override.
        """
        return self.command_to_wide(cmd)

    @property
    def search_centre_px(self) -> np.ndarray:
        w, h = self.search_wh
        return np.array([(w - 1) / 2, (h - 1) / 2])

    def search_to_command(self, uv: np.ndarray, cmd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Search pixels (N, 2) seen at command ``cmd`` (2,) -> commands that centre them (N, 2), and the Jacobian (2, 2)."""
        cmd = np.asarray(cmd, dtype=np.float64).reshape(1, 2)
        J = self.search_jacobian(cmd)[0]
        d = np.asarray(uv, dtype=np.float64).reshape(-1, 2) - self.search_centre_px
        return cmd + d @ J.T, J

    def footprint_deg(self) -> np.ndarray:
        """Full size (w, h) of the search view in command degrees, at the middle of the range."""
        (x0, x1), (y0, y1) = self.limits_deg
        J = self.search_jacobian(np.array([[(x0 + x1) / 2, (y0 + y1) / 2]]))[0]
        w, h = self.search_wh
        return np.abs(J @ np.array([w, 0.0])) + np.abs(J @ np.array([0.0, h]))


class LinearGeometry(SearchGeometry):
    """The ideal decoupled galvo: the line of sight turns by twice each mechanical angle.

    ``wide_projection`` says how the wide camera maps directions to pixels:
    ``pinhole`` (a distortion-free lens) or ``equiangular`` (constant degrees
    per pixel). The nominal model of an uncalibrated rig, from its cameras'
    fields of view.
    """

    def __init__(self, limits_deg: Limits, search_wh, search_hfov_deg: float, wide_wh, wide_hfov_deg: float,
                 wide_projection: str = "pinhole") -> None:
        super().__init__(limits_deg, search_wh, wide_wh)
        if wide_projection not in ("pinhole", "equiangular"):
            raise ValueError(f"wide_projection must be 'pinhole' or 'equiangular', got {wide_projection!r}")
        self.search_step_deg = float(search_hfov_deg) / self.search_wh[0]
        self.wide_hfov_deg = float(wide_hfov_deg)
        self.wide_projection = wide_projection

    def command_to_wide(self, cmd: np.ndarray) -> np.ndarray:
        cmd = np.asarray(cmd, dtype=np.float64).reshape(-1, 2)
        az, el = 2.0 * cmd[:, 0], 2.0 * cmd[:, 1]
        w, h = self.wide_wh
        cx, cy = (w - 1) / 2, (h - 1) / 2
        if self.wide_projection == "equiangular":
            step = self.wide_hfov_deg / w
            u, v = cx + az / step, cy - el / step
        else:
            f = (w / 2) / np.tan(np.deg2rad(self.wide_hfov_deg) / 2)
            d = np.stack([np.cos(np.deg2rad(el)) * np.sin(np.deg2rad(az)), -np.sin(np.deg2rad(el)),
                          np.cos(np.deg2rad(el)) * np.cos(np.deg2rad(az))], axis=1)
            u, v = cx + f * d[:, 0] / d[:, 2], cy + f * d[:, 1] / d[:, 2]
        return np.stack([u, v], axis=1)

    def search_jacobian(self, cmd: np.ndarray) -> np.ndarray:
        n = np.asarray(cmd).reshape(-1, 2).shape[0]
        J = np.array([[self.search_step_deg / 2, 0.0], [0.0, -self.search_step_deg / 2]])
        return np.broadcast_to(J, (n, 2, 2)).copy()


class GalvoCameraGeometry(SearchGeometry):
    """From a calibrated ``GalvoCamera`` (search camera behind the mirrors) and the wide camera's model.

    ``R_wide_rig`` (3, 3) rotates rig-frame directions into the wide camera's
    frame (translation is ignored: distant scene). The Jacobian is computed
    by finite differences on a grid of commands at construction and
    interpolated bilinearly, so a lookup costs microseconds.
    """

    def __init__(self, search, wide_camera, limits_deg: Limits, R_wide_rig: np.ndarray | None = None,
                 grid_step_deg: float = 1.0, sensors: dict | None = None) -> None:
        super().__init__(limits_deg, (search.camera.width, search.camera.height), (wide_camera.width, wide_camera.height))
        self.search = search
        self.wide_camera = wide_camera
        self.R_wide_rig = np.eye(3) if R_wide_rig is None else np.asarray(R_wide_rig, dtype=np.float64)
        #: other fixed cameras by device name: (PinholeCamera, R rig -> camera)
        self.sensors = dict(sensors or {})
        (x0, x1), (y0, y1) = self.limits_deg
        self._gx = np.linspace(x0, x1, max(2, int(np.ceil((x1 - x0) / grid_step_deg)) + 1))
        self._gy = np.linspace(y0, y1, max(2, int(np.ceil((y1 - y0) / grid_step_deg)) + 1))
        los = np.empty((len(self._gy), len(self._gx), 3))
        jac = np.empty((len(self._gy), len(self._gx), 2, 2))
        c = search.camera.K[:2, 2]
        eps, dpx = 1e-3, 2.0
        for i, ty in enumerate(self._gy):
            for j, tx in enumerate(self._gx):
                los[i, j] = search.line_of_sight(tx, ty)[1]
                # d(az, el)/d(command) and d(az, el)/d(pixel) at the image centre.
                a0 = _az_el(los[i, j])
                ax = _az_el(search.line_of_sight(tx + eps, ty)[1])
                ay = _az_el(search.line_of_sight(tx, ty + eps)[1])
                A = np.stack([(ax - a0) / eps, (ay - a0) / eps], axis=1)
                _, d = search.pixel_rays(np.array([c, c + [dpx, 0.0], c + [0.0, dpx]]), tx, ty)
                p = _az_el(d)
                B = np.stack([(p[1] - p[0]) / dpx, (p[2] - p[0]) / dpx], axis=1)
                jac[i, j] = np.linalg.solve(A, B)
        self._los = los
        self._jac = jac

    def _interp(self, table: np.ndarray, cmd: np.ndarray) -> np.ndarray:
        return bilinear(self._gx, self._gy, table, cmd)

    def command_to_direction(self, cmd: np.ndarray) -> np.ndarray:
        """(N, 2) commands -> (N, 3) unit rig-frame line-of-sight directions."""
        d = self._interp(self._los, cmd)
        return d / np.linalg.norm(d, axis=1, keepdims=True)

    def prepare_inverse(self) -> None:
        """Build the direction -> command interpolator now (a Delaunay triangulation and scipy's import,
        a fraction of a second), so that a timed or real-time loop's first call does not pay for it."""
        if not hasattr(self, "_inv"):
            from scipy.interpolate import LinearNDInterpolator

            ae = _az_el(self._los.reshape(-1, 3))
            X, Y = np.meshgrid(self._gx, self._gy)
            self._inv = LinearNDInterpolator(ae, np.stack([X.ravel(), Y.ravel()], axis=1))

    def direction_to_command(self, dirs: np.ndarray) -> np.ndarray:
        """(N, 3) rig-frame directions -> (N, 2) commands whose line of sight points there (NaN outside the range).

        Linear interpolation on the construction grid, then two Newton steps with the tabulated lines of sight.
        """
        self.prepare_inverse()
        goal = _az_el(np.asarray(dirs, dtype=np.float64).reshape(-1, 3))
        cmd = self._inv(goal)
        for _ in range(2):
            ok = np.all(np.isfinite(cmd), axis=1)
            if not ok.any():
                break
            c = cmd[ok]
            eps = 1e-3
            (x0, x1), (y0, y1) = self.limits_deg
            cd = np.stack([np.clip(c[:, 0], x0 + 2 * eps, x1 - 2 * eps), np.clip(c[:, 1], y0 + 2 * eps, y1 - 2 * eps)], 1)
            a0 = _az_el(self._interp(self._los, c))
            ad = _az_el(self._interp(self._los, cd))
            ax = _az_el(self._interp(self._los, cd + [eps, 0]))
            ay = _az_el(self._interp(self._los, cd + [0, eps]))
            J = np.stack([(ax - ad) / eps, (ay - ad) / eps], axis=2)
            cmd[ok] = c - np.linalg.solve(J, (a0 - goal[ok])[..., None])[..., 0]
        return cmd

    def _project(self, camera, R, cmd) -> np.ndarray:
        d = self._interp(self._los, cmd) @ R.T
        uv = camera.project_cam(d)
        uv[d[:, 2] <= 0] = np.nan
        return uv

    def command_to_wide(self, cmd: np.ndarray) -> np.ndarray:
        return self._project(self.wide_camera, self.R_wide_rig, cmd)

    def command_to_sensor(self, cmd: np.ndarray, sensor: str | None = None) -> np.ndarray:
        if sensor in self.sensors:
            camera, R = self.sensors[sensor]
            return self._project(camera, np.asarray(R, dtype=np.float64), cmd)
        return self.command_to_wide(cmd)

    def search_jacobian(self, cmd: np.ndarray) -> np.ndarray:
        return self._interp(self._jac, cmd)


def bilinear(gx: np.ndarray, gy: np.ndarray, table: np.ndarray, cmd: np.ndarray) -> np.ndarray:
    """Bilinear lookup of ``table`` (ny, nx, ...) on the grid ``gx`` x ``gy`` at commands (N, 2), clamped at the edges.

    Written as nested lerps (``a + w (b - a)``): exact at the nodes and for constant tables,
    so a geometry and its frozen tables (``TabulatedGeometry``) agree to the last bit.
    """
    cmd = np.asarray(cmd, dtype=np.float64).reshape(-1, 2)
    fx = np.interp(cmd[:, 0], gx, np.arange(len(gx)))
    fy = np.interp(cmd[:, 1], gy, np.arange(len(gy)))
    j0 = np.clip(np.floor(fx).astype(int), 0, max(len(gx) - 2, 0))
    i0 = np.clip(np.floor(fy).astype(int), 0, max(len(gy) - 2, 0))
    j1 = np.minimum(j0 + 1, len(gx) - 1)
    i1 = np.minimum(i0 + 1, len(gy) - 1)
    wx = (fx - j0).reshape((-1,) + (1,) * (table.ndim - 2))
    wy = (fy - i0).reshape((-1,) + (1,) * (table.ndim - 2))
    top = table[i0, j0] + wx * (table[i0, j1] - table[i0, j0])
    bot = table[i1, j0] + wx * (table[i1, j1] - table[i1, j0])
    return top + wy * (bot - top)


def _az_el(d: np.ndarray) -> np.ndarray:
    """Rig-frame directions (..., 3) -> (..., 2) (az, el) degrees (x right, y down, z forward)."""
    d = np.asarray(d, dtype=np.float64)
    return np.degrees(np.stack([np.arctan2(d[..., 0], d[..., 2]), np.arctan2(-d[..., 1], np.hypot(d[..., 0], d[..., 2]))],
                               axis=-1))


def remap_to_grid(image: np.ndarray, uv_maps: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Sample ``image`` (H, W) or (C, H, W) at float pixel maps (ny, nx) (bilinear, 0 outside)."""
    mx, my = uv_maps
    if image.ndim == 2:
        return cv2.remap(image.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return np.stack([remap_to_grid(ch, uv_maps) for ch in image])


class TabulatedGeometry(SearchGeometry):
    """A geometry frozen into tables (recordings carry one, so a replay needs neither the rig nor the twin).

    ``gx``/``gy``/``jac``: the Jacobian on a command grid; ``sensors``: name ->
    (xs, ys, uv (ny, nx, 2)) pixel tables on the PPM grid, ``None`` naming the wide camera.
    Lookups interpolate bilinearly, so at the tabulated nodes they return the stored values exactly.
    """

    def __init__(self, limits_deg, search_wh, wide_wh, gx, gy, jac, sensors: dict) -> None:
        super().__init__(limits_deg, search_wh, wide_wh)
        self._gx, self._gy, self._jac = np.asarray(gx), np.asarray(gy), np.asarray(jac)
        self.tables = {k: tuple(np.asarray(a) for a in v) for k, v in sensors.items()}
        self.sensors = dict.fromkeys(k for k in self.tables if k is not None)  # cameras modelled by their own table

    _bilinear = staticmethod(lambda gx, gy, table, cmd: bilinear(gx, gy, table, cmd))

    def search_jacobian(self, cmd: np.ndarray) -> np.ndarray:
        return self._bilinear(self._gx, self._gy, self._jac, cmd)

    def command_to_wide(self, cmd: np.ndarray) -> np.ndarray:
        return self.command_to_sensor(cmd, None)

    def command_to_sensor(self, cmd: np.ndarray, sensor: str | None = None) -> np.ndarray:
        xs, ys, uv = self.tables.get(sensor, self.tables.get(None))
        return self._bilinear(xs, ys, uv, cmd)

    @staticmethod
    def freeze(geometry: SearchGeometry, xs: np.ndarray, ys: np.ndarray, sensors: list[str | None]) -> dict:
        """Arrays describing ``geometry`` on the command grid ``xs`` x ``ys`` (for ``numpy.savez``)."""
        gx = getattr(geometry, "_gx", None)
        gy = getattr(geometry, "_gy", None)
        if gx is None:
            (x0, x1), (y0, y1) = geometry.limits_deg
            gx, gy = np.linspace(x0, x1, 31), np.linspace(y0, y1, 23)
        X, Y = np.meshgrid(gx, gy)
        jac = geometry.search_jacobian(np.stack([X.ravel(), Y.ravel()], 1)).reshape(len(gy), len(gx), 2, 2)
        out = {"limits_deg": np.asarray(geometry.limits_deg, float), "search_wh": np.asarray(geometry.search_wh),
               "wide_wh": np.asarray(geometry.wide_wh), "gx": np.asarray(gx), "gy": np.asarray(gy), "jac": jac,
               "xs": np.asarray(xs), "ys": np.asarray(ys)}
        PX, PY = np.meshgrid(xs, ys)
        names = []
        for name in sensors:
            uv = geometry.command_to_sensor(np.stack([PX.ravel(), PY.ravel()], 1), name).reshape(len(ys), len(xs), 2)
            key = "" if name is None else name
            out[f"uv.{key}"] = uv
            names.append(key)
        out["sensors"] = np.asarray(names, dtype=str)
        return out

    @staticmethod
    def thaw(d: dict) -> "TabulatedGeometry":
        lim = d["limits_deg"]
        sensors = {(None if k == "" else str(k)): (d["xs"], d["ys"], d[f"uv.{k}"]) for k in d["sensors"]}
        return TabulatedGeometry(((lim[0, 0], lim[0, 1]), (lim[1, 0], lim[1, 1])), tuple(d["search_wh"]),
                                 tuple(d["wide_wh"]), d["gx"], d["gy"], d["jac"], sensors)
