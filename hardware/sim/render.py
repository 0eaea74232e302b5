"""Cameras looking at a scene: pixel rays from the project's camera models, fast paths, ground truth.

``FixedView`` (wide frame and event cameras: ``PinholeCamera`` at a fixed
pose) and ``GalvoView`` (search camera: ``GalvoCamera`` at given mirror
angles) both end in ``Render``: intensity, labels, target ids and boxes.

Generic path: compute the pixel rays and call ``scene.render_rays``.
Panorama fast paths (same result, to interpolation accuracy):
* fixed views cache their rays' angles and the static layer (2 x 2
  supersampled, with its depth) once; each frame only draws targets;
* galvo views compute exact rays on a sparse grid of pixels, interpolate
  texture coordinates to every pixel (the view is narrow, so the map is
  smooth) and sample the fine panorama texture with ``cv2.remap``.
A calibration board set on the twin is drawn over both with exact rays.
"""

from __future__ import annotations

import cv2
import numpy as np

from foveate.calibration.galvo_geometry import GalvoCamera, PinholeCamera
from foveate.hardware.sim.board import Board, composite_board
from foveate.hardware.sim.panorama import PanoramaScene, TargetView, az_el_to_dirs, dirs_to_az_el
from foveate.hardware.sim.scene import CLASSES


class Render:
    """One rendered view: intensity (H, W) float32 in [0, 1], labels (H, W) uint8, ground-truth boxes.

    ``labels`` and ``boxes`` may be given as callables: ground truth is then computed
    on first access only (the run loop never reads it, training and tests do).
    """

    def __init__(self, intensity: np.ndarray, labels, boxes=()) -> None:
        self.intensity = intensity
        self._labels = labels
        self._boxes = boxes

    @property
    def labels(self) -> np.ndarray:
        if callable(self._labels):
            self._labels = self._labels()
        return self._labels

    @property
    def boxes(self) -> list[dict]:
        if callable(self._boxes):
            self._boxes = self._boxes()
        return list(self._boxes)


def _pixel_grid(width: int, height: int) -> np.ndarray:
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    return np.stack([u.ravel(), v.ravel()], axis=1)


def _project_dirs(cam: PinholeCamera, R_cw: np.ndarray, dirs: np.ndarray) -> np.ndarray | None:
    """Pixels of directions at infinity (N, 3) seen by a camera with rotation ``R_cw``; None if any is behind."""
    Xc = dirs @ R_cw.T
    if np.any(Xc[:, 2] <= 1e-6):
        return None
    return cam.project_cam(Xc)


def _target_windows(cam: PinholeCamera, R_cw: np.ndarray, views: list[TargetView],
                    shift_deg: tuple[float, float] = (0.0, 0.0), margin: int = 2) -> list:
    """Pixel windows ``(rows, cols)`` (or None: behind the camera or outside the image) that hold each target.

    All outlines go through one projection (a render draws every visible target, a few hundred times a
    second in a loop); ``shift_deg`` (pan, tilt) is subtracted from the targets' angles (a vibrating camera)."""
    if not views:
        return []
    outlines = [v.outline_deg() for v in views]
    n = outlines[0][0].shape[0]  # every outline has the same number of points
    az = np.concatenate([a for a, _ in outlines]) - shift_deg[0]
    el = np.concatenate([e for _, e in outlines]) - shift_deg[1]
    Xc = az_el_to_dirs(az, el) @ R_cw.T
    front = Xc[:, 2] > 1e-6
    Xc[~front, 2] = 1.0  # projected, then discarded below
    uv = cam.project_cam(Xc).reshape(len(views), n, 2)
    ok = front.reshape(len(views), n).all(axis=1)
    lo = np.floor(uv.min(axis=1)).astype(int) - margin
    hi = np.ceil(uv.max(axis=1)).astype(int) + margin + 1
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [cam.width, cam.height])
    ok &= (hi > lo).all(axis=1)
    return [(slice(int(lo[k, 1]), int(hi[k, 1])), slice(int(lo[k, 0]), int(hi[k, 0]))) if ok[k] else None
            for k in range(len(views))]


def boxes_from(views: list[TargetView], ids: np.ndarray, cam: PinholeCamera, R_cw: np.ndarray) -> list[dict]:
    """Ground-truth boxes of drawn targets: projected billboard box clipped to the image, visible fraction.

    ``visible_frac`` = pixels showing the target (after occlusion and image borders)
    over the pixels its silhouette would cover unoccluded and uncropped.
    """
    out = []
    if not views:
        return out
    counts = np.bincount(ids.ravel(), minlength=max(v.id for v in views) + 2)
    for v in views:
        n = int(counts[v.id + 1]) if v.id + 1 < counts.shape[0] else 0
        if n == 0:
            continue
        az, el = v.outline_deg()
        uv = _project_dirs(cam, R_cw, az_el_to_dirs(az, el))
        if uv is None:
            continue
        (x0, y0), (x1, y1) = uv.min(axis=0), uv.max(axis=0)
        # Area of the projected billboard (shoelace over its outline, walked in order): galvo views turn the
        # image a little, so the axis-aligned box is larger than the billboard.
        n3 = uv.shape[0] // 4
        ring = np.concatenate([uv[:n3], uv[3 * n3:][::1], uv[n3:2 * n3][::-1], uv[2 * n3:3 * n3][::-1]])
        area = 0.5 * abs(float(np.dot(ring[:, 0], np.roll(ring[:, 1], -1)) - np.dot(ring[:, 1], np.roll(ring[:, 0], -1))))
        full = max(v.sprite.coverage * area, 1.0)
        box = [float(np.clip(x0, 0, cam.width)), float(np.clip(y0, 0, cam.height)),
               float(np.clip(x1, 0, cam.width)), float(np.clip(y1, 0, cam.height))]
        out.append({"class_id": int(v.cls), "class_name": CLASSES[v.cls], "target_id": int(v.id),
                    "box": box, "visible_frac": round(min(n / full, 1.0), 4), "dist_m": round(v.dist_m, 3)})
    return out


class FixedView:
    """A camera at a fixed pose: rays computed once."""

    def __init__(self, camera: PinholeCamera, T_cw: np.ndarray) -> None:
        self.camera = camera
        self.T_cw = np.asarray(T_cw, dtype=np.float64)
        self.R_cw = self.T_cw[:3, :3]
        self.origin = -self.R_cw.T @ self.T_cw[:3, 3]
        W, H = camera.width, camera.height
        self.dirs = (camera.normalised_rays(_pixel_grid(W, H)) @ self.R_cw).reshape(H, W, 3)
        self.az, self.el = dirs_to_az_el(self.dirs)
        self._static: tuple | None = None
        self._static_scene = None
        self.bounds = (float(self.az.min()), float(self.az.max()), float(self.el.min()), float(self.el.max()))
        self.pitch_deg = float(np.degrees(1.0 / camera.K[0, 0]))

    def subpixel_rays(self, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.origin, self.camera.normalised_rays(uv) @ self.R_cw

    def _static_layer(self, scene: PanoramaScene):
        """Static intensity, labels and depth, 2 x 2 supersampled, cached per scene."""
        if self._static is None or self._static_scene is not scene:
            W, H = self.camera.width, self.camera.height
            acc = np.zeros((H, W), np.float32)
            tex = scene.coarse if self.pitch_deg >= 2.5 * scene.fine_step_deg else scene.fine
            tex.ensure(float(self.az.min()) - 1, float(self.az.max()) + 1, float(self.el.min()) - 1, float(self.el.max()) + 1)
            for du in (-0.25, 0.25):
                for dv in (-0.25, 0.25):
                    uv = _pixel_grid(W, H) + [du, dv]
                    d = (self.camera.normalised_rays(uv) @ self.R_cw).reshape(H, W, 3)
                    a, e = dirs_to_az_el(d)
                    acc += tex.sample(a, e, labels=False)[0]
            inten = acc * 0.25
            labels = tex.sample(self.az, self.el)[1]
            depth = tex.depth_m(self.az, self.el)
            self._static = (inten, labels, depth)
            self._static_scene = scene
        return self._static

    def render(self, scene, t_s: float, board: Board | None = None, twin=None,
               offset_deg: tuple[float, float] = (0.0, 0.0), with_boxes: bool = True, with_labels: bool = True,
               windows_out: list | None = None) -> Render:
        """Render at ``t_s``; ``offset_deg`` (pan, tilt) turns the camera slightly (vibration, panoramas only).

        ``with_labels=False`` skips the class map (event emulation needs intensity only);
        ``windows_out`` collects the pixel windows where targets were drawn over the static layer.
        """
        if isinstance(scene, PanoramaScene):
            vib = offset_deg != (0.0, 0.0)
            b = self.bounds
            if not vib:
                s_int, s_lab, depth = self._static_layer(scene)
                inten = s_int.copy()
                labels = s_lab.copy() if with_labels else None
                az, el = self.az, self.el
                windows = lambda vs: _target_windows(self.camera, self.R_cw, vs)  # noqa: E731
            else:
                pan, tilt = offset_deg
                az, el = self.az + pan, self.el + tilt
                inten, labels = self._vibrated_static(scene, pan, tilt, with_labels)
                depth = None  # sampled in the targets' windows only
                windows = lambda vs: _target_windows(self.camera, self.R_cw, vs, (pan, tilt))  # noqa: E731
                b = (b[0] + pan, b[1] + pan, b[2] + tilt, b[3] + tilt)
            ids = np.zeros(inten.shape, np.uint16)
            if windows_out is not None:
                base = windows

                def windows(vs):
                    ws = base(vs)
                    windows_out.extend(w for w in ws if w is not None)
                    return ws

            views = scene.draw_targets(inten, labels, ids, az, el, t_s, windows=windows, depth=depth,
                                       pitch_deg=self.pitch_deg, bounds=b)
            boxes = (lambda: boxes_from(views, ids, self.camera, self.R_cw)) if with_boxes and not vib and views else []
        else:
            inten, labels = scene.render_rays(self.origin, self.dirs, t_s, twin)
            inten = np.array(inten, dtype=np.float32)
            labels = np.array(labels, dtype=np.uint8)
            boxes = []
        if board is not None:
            if labels is None:
                labels = np.zeros(inten.shape, np.uint8)
            composite_board(board, inten, labels, self.subpixel_rays)
        return Render(inten, labels, boxes)

    def _vibrated_static(self, scene: PanoramaScene, pan_deg: float, tilt_deg: float, with_labels: bool):
        """Static layer of the camera turned by (pan, tilt): bilinear from a texture pre-blurred to the pixel size.

        A small turn shifts the rays' azimuth and elevation by (pan, tilt) (exact for pan about the vertical
        axis, first order for tilt), i.e. a shift of the precomputed texture coordinates.
        """
        tex = scene.coarse
        if getattr(self, "_blurred", None) is None or self._blur_scene is not scene:
            tex.ensure(float(self.az.min()) - 2, float(self.az.max()) + 2, float(self.el.min()) - 2, float(self.el.max()) + 2)
            sigma = max(0.5 * self.pitch_deg / tex.step, 0.1)
            # uint16: remap is several times faster on 16-bit than on float32 sources.
            self._blurred = (np.clip(cv2.GaussianBlur(tex.I, (0, 0), sigma), 0, 1) * 65535).astype(np.uint16)
            self._blur_scene = scene
            mx, my = tex.texel(self.az, self.el)
            self._texel0 = (mx.astype(np.float32), my.astype(np.float32))
        mx = self._texel0[0] + np.float32(pan_deg / tex.step)
        my = self._texel0[1] - np.float32(tilt_deg / tex.step)
        inten = cv2.remap(self._blurred, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        inten = inten.astype(np.float32) * np.float32(1.0 / 65535.0)
        labels = cv2.remap(tex.L, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE) if with_labels else None
        return inten, labels


class GalvoView:
    """A camera behind a two-mirror galvo: rays depend on the mirror angles of each render."""

    def __init__(self, gcam: GalvoCamera, grid: int = 16) -> None:
        self.gcam = gcam
        cam = gcam.camera
        W, H = cam.width, cam.height
        self.pitch_deg = float(np.degrees(1.0 / cam.K[0, 0]))
        # Sparse grid of pixels with exact rays, every ``grid`` pixels, from half a cell outside the image:
        # cv2.resize by ``grid`` then interpolates bilinearly between them at every pixel (cropped).
        s = int(grid)
        gx, gy = -(-W // s) + 2, -(-H // s) + 2
        GU, GV = np.meshgrid(s * np.arange(gx) - (s + 1) / 2, s * np.arange(gy) - (s + 1) / 2)
        self._grid_rays = cam.normalised_rays(np.stack([GU.ravel(), GV.ravel()], axis=1))
        self._grid_shape = (gy, gx)
        self._cell = s
        self._all_rays: np.ndarray | None = None
        self._m1 = _MirrorMatrix(gcam.mirror1)
        self._m2 = _MirrorMatrix(gcam.mirror2)

    def extrinsics(self, theta_x_deg: float, theta_y_deg: float) -> tuple[np.ndarray, np.ndarray]:
        """(R_cw, origin) of the virtual camera at these mirror angles (same math as
        ``GalvoCamera.virtual_extrinsics``, with the per-mirror constants precomputed)."""
        T = self.gcam.T_cw @ self._m1(theta_x_deg) @ self._m2(theta_y_deg)
        R = T[:3, :3]
        return R, -R.T @ T[:3, 3]

    def pixel_dirs(self, R: np.ndarray) -> np.ndarray:
        """Exact unit rig-frame directions of every pixel (H, W, 3)."""
        if self._all_rays is None:
            cam = self.gcam.camera
            self._all_rays = cam.normalised_rays(_pixel_grid(cam.width, cam.height)).reshape(cam.height, cam.width, 3)
        return self._all_rays @ R

    def _upsample(self, grid: np.ndarray) -> np.ndarray:
        """Grid values (gy, gx, C) -> every pixel (H, W, C), bilinear (see ``__init__``)."""
        s = self._cell
        gy, gx = self._grid_shape
        cam = self.gcam.camera
        up = cv2.resize(grid, (gx * s, gy * s), interpolation=cv2.INTER_LINEAR)
        return up[s:s + cam.height, s:s + cam.width]

    def angle_maps(self, R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Azimuth and elevation of every pixel (H, W), interpolated from the sparse grid of exact rays."""
        az, el = dirs_to_az_el(self._grid_rays @ R)
        ref = az[0]
        az = (az - ref + 180.0) % 360.0 - 180.0  # relative, never across the +-180 seam
        up = self._upsample(np.stack([az, el], axis=-1).reshape(*self._grid_shape, 2).astype(np.float32))
        return up[..., 0].astype(np.float64) + ref, up[..., 1].astype(np.float64)

    def _render_panorama(self, scene: PanoramaScene, R: np.ndarray, t_s: float):
        """Fast path: texel coordinates from the sparse grid of exact rays, bilinear to every pixel, one remap."""
        tex = scene.texture_for(self.pitch_deg)
        az, el = dirs_to_az_el(self._grid_rays @ R)
        ref = az[0]
        az = ref + (az - ref + 180.0) % 360.0 - 180.0  # never interpolate across the +-180 seam
        bounds = (float(az.min()), float(az.max()), float(el.min()), float(el.max()))
        tex.ensure(*bounds)
        gx, gy = tex.texel(az, el)
        grid = np.stack([gx, gy], axis=-1).reshape(*self._grid_shape, 2).astype(np.float32)
        maps = np.ascontiguousarray(self._upsample(grid))
        inten = cv2.remap(tex.I, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        inten = inten.astype(np.float32) * np.float32(1.0 / tex.scale) if tex.scale != 1.0 else inten
        ids = np.zeros(inten.shape, np.uint16)
        cam = self.gcam.camera
        lazy_az = _TexelAngles(maps, tex, 0)
        lazy_el = _TexelAngles(maps, tex, 1)
        views = scene.draw_targets(inten, None, ids, lazy_az, lazy_el, t_s, windows=lambda vs: _target_windows(cam, R, vs),
                                   pitch_deg=self.pitch_deg, bounds=bounds)

        def labels() -> np.ndarray:
            """Static classes from the texture, then each drawn target's class where it is solid."""
            lab = cv2.remap(tex.L, maps, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
            if views:
                lut = np.zeros(max(v.id for v in views) + 2, np.uint8)
                for v in views:
                    lut[v.id + 1] = v.cls
                m = ids > 0
                lab[m] = lut[ids[m]]
            return lab

        return inten, labels, ids, views

    def render(self, scene, theta_x_deg: float, theta_y_deg: float, t_s: float, board: Board | None = None,
               twin=None, exact: bool = False, with_boxes: bool = True) -> Render:
        """Render with the mirrors at these angles (command units, as the true ``GalvoCamera`` takes them)."""
        R, origin = self.extrinsics(theta_x_deg, theta_y_deg)
        cam = self.gcam.camera
        dirs = None
        if isinstance(scene, PanoramaScene) and not exact:
            inten, labels, ids, views = self._render_panorama(scene, R, t_s)
            if board is None:
                return Render(inten, labels, (lambda: boxes_from(views, ids, cam, R)) if with_boxes and views else [])
            labels = labels()
            boxes = boxes_from(views, ids, cam, R) if with_boxes and views else []
        elif isinstance(scene, PanoramaScene):
            dirs = self.pixel_dirs(R)
            az, el = dirs_to_az_el(dirs)
            inten, labels = scene.static_angles(az, el, self.pitch_deg)
            ids = np.zeros(labels.shape, np.uint16)
            views = scene.draw_targets(inten, labels, ids, az, el, t_s, pitch_deg=self.pitch_deg)
            boxes = boxes_from(views, ids, cam, R) if with_boxes else []
        else:
            dirs = self.pixel_dirs(R)
            inten, labels = scene.render_rays(origin, dirs, t_s, twin)
            inten = np.array(inten, dtype=np.float32)
            labels = np.array(labels, dtype=np.uint8)
            boxes = []
        if board is not None:
            composite_board(board, inten, labels, lambda uv: self.gcam.pixel_rays(uv, theta_x_deg, theta_y_deg))
        return Render(inten, labels, boxes)


class _TexelAngles:
    """Azimuth (axis 0) or elevation (axis 1) of pixels, computed from texel maps only where sliced."""

    def __init__(self, maps: np.ndarray, tex, axis: int) -> None:
        self.maps, self.tex, self.axis = maps, tex, axis
        self.shape = maps.shape[:2]

    def __getitem__(self, key) -> np.ndarray:
        m = self.maps[key][..., self.axis].astype(np.float64) + 0.5
        if self.axis == 0:
            return self.tex.az0 + m * self.tex.step
        return self.tex.el1 - m * self.tex.step


class _MirrorMatrix:
    """``Mirror.matrix(command)`` with the Rodrigues terms precomputed (called for every render)."""

    def __init__(self, m) -> None:
        k = np.asarray(m.axis_dir, dtype=np.float64)
        k = k / np.linalg.norm(k)
        n0 = np.asarray(m.normal0, dtype=np.float64)
        self.a, self.b, self.c = n0, np.cross(k, n0), k * (k @ n0)
        self.p = np.asarray(m.axis_point, dtype=np.float64)
        self.off = float(m.surface_offset_mm)
        self.gain, self.offset = float(m.gain), float(m.offset_deg)

    def __call__(self, command_deg: float) -> np.ndarray:
        ang = np.radians(self.gain * command_deg + self.offset)
        ca, sa = np.cos(ang), np.sin(ang)
        n = self.a * ca + self.b * sa + self.c * (1.0 - ca)
        d = float(n @ self.p) + self.off
        M = np.eye(4)
        M[:3, :3] -= 2.0 * np.outer(n, n)
        M[:3, 3] = 2.0 * d * n
        return M
