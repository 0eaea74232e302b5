"""Wide-to-galvo map: where the search view lands in the wide image, for every mirror command.

For a grid of commands the search image is registered into the wide image
(coarse: normalised cross-correlation of the search image shrunk to the
wide camera's scale around the nominal position; fine: ECC with an affine
warp). Each registration gives the wide pixel of the search image centre and
the local affine (wide px per search px). Smooth polynomial maps are fitted:
command -> wide pixel (``command_to_wide_pixel``) and its inverse
(``wide_pixel_to_command``, polynomial start then Newton on the forward map,
so the two agree to 1e-9 px), plus the search-pixel Jacobian for turning a
detection into a command. Residuals are reported in search-camera pixels.

Distant scene assumed (the cameras' baseline is small against the depth), as
in the calibration brief.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from foveate.calibration.calib_file import header, load_calibration, save_calibration
from foveate.calibration.errors import CalibrationError
from foveate.system.errors import ConfigError

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- polynomials
def _exponents(degree: int) -> list[tuple[int, int]]:
    return [(i, t - i) for t in range(degree + 1) for i in range(t, -1, -1)]


@dataclass
class Poly2D:
    """Vector polynomial of two variables on a normalised domain: ``(x - centre) / scale``."""

    degree: int
    centre: np.ndarray  # (2,)
    scale: np.ndarray  # (2,)
    coef: np.ndarray  # (n_terms, n_out)

    @staticmethod
    def design(xy: np.ndarray, degree: int, centre, scale) -> np.ndarray:
        z = (np.asarray(xy, float).reshape(-1, 2) - centre) / scale
        return np.stack([z[:, 0] ** i * z[:, 1] ** j for i, j in _exponents(degree)], axis=1)

    @classmethod
    def fit(cls, xy: np.ndarray, values: np.ndarray, degree: int, centre=None, scale=None,
            weights: np.ndarray | None = None) -> "Poly2D":
        xy = np.asarray(xy, float).reshape(-1, 2)
        centre = np.asarray(centre if centre is not None else (xy.min(0) + xy.max(0)) / 2, float)
        scale = np.asarray(scale if scale is not None else np.maximum((xy.max(0) - xy.min(0)) / 2, 1e-9), float)
        A = cls.design(xy, degree, centre, scale)
        V = np.asarray(values, float).reshape(len(xy), -1)
        if weights is not None:
            A, V = A * weights[:, None], V * weights[:, None]
        coef = np.linalg.lstsq(A, V, rcond=None)[0]
        return cls(degree, centre, scale, coef)

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        return self.design(xy, self.degree, self.centre, self.scale) @ self.coef

    def jacobian(self, xy: np.ndarray) -> np.ndarray:
        """(N, n_out, 2) derivatives with respect to the (unnormalised) inputs."""
        z = (np.asarray(xy, float).reshape(-1, 2) - self.centre) / self.scale
        ex = _exponents(self.degree)
        dx = np.stack([i * z[:, 0] ** max(i - 1, 0) * z[:, 1] ** j if i else np.zeros(len(z)) for i, j in ex], axis=1)
        dy = np.stack([j * z[:, 0] ** i * z[:, 1] ** max(j - 1, 0) if j else np.zeros(len(z)) for i, j in ex], axis=1)
        return np.stack([dx @ self.coef / self.scale[0], dy @ self.coef / self.scale[1]], axis=2)

    def as_dict(self) -> dict:
        return {"degree": self.degree, "centre": self.centre.tolist(), "scale": self.scale.tolist(),
                "coef": self.coef.tolist()}

    @classmethod
    def from_dict(cls, d: dict, where: str) -> "Poly2D":
        try:
            p = cls(int(d["degree"]), np.asarray(d["centre"], float), np.asarray(d["scale"], float),
                    np.asarray(d["coef"], float))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: expected degree, centre, scale and coef ({exc})") from None
        if p.coef.ndim != 2 or p.coef.shape[0] != len(_exponents(p.degree)) or p.centre.shape != (2,):
            raise ConfigError(f"{where}: coef has shape {p.coef.shape}, expected ({len(_exponents(p.degree))}, outputs)")
        return p


# ----------------------------------------------------------------------------- the map
@dataclass
class WideMap:
    """Mirror commands (mechanical deg) <-> wide-camera pixels of the search view's centre; vectorised."""

    forward: Poly2D  # command -> wide pixel (2 outputs)
    inverse: Poly2D  # wide pixel -> command (start of the Newton refinement)
    affine: Poly2D  # command -> 4 entries of d(wide px)/d(search px), row-major
    limits_deg: tuple[tuple[float, float], tuple[float, float]]
    search_wh: tuple[int, int]
    wide_wh: tuple[int, int]

    def command_to_wide_pixel(self, cmd) -> np.ndarray:
        """(N, 2) commands (deg) -> (N, 2) wide pixels of the search image centre."""
        return self.forward(np.asarray(cmd, float).reshape(-1, 2))

    def wide_pixel_to_command(self, uv, iterations: int = 3) -> np.ndarray:
        """(N, 2) wide pixels -> (N, 2) commands whose search view is centred there (may lie outside the limits)."""
        uv = np.asarray(uv, float).reshape(-1, 2)
        cmd = self.inverse(uv)
        for _ in range(iterations):
            J = self.forward.jacobian(cmd)  # (N, 2, 2) wide px per deg
            cmd = cmd - np.linalg.solve(J, (self.forward(cmd) - uv)[..., None])[..., 0]
        return cmd

    def in_range(self, cmd) -> np.ndarray:
        cmd = np.asarray(cmd, float).reshape(-1, 2)
        (x0, x1), (y0, y1) = self.limits_deg
        return (cmd[:, 0] >= x0) & (cmd[:, 0] <= x1) & (cmd[:, 1] >= y0) & (cmd[:, 1] <= y1)

    def wide_per_search(self, cmd) -> np.ndarray:
        """(N, 2, 2) d(wide px)/d(search px) at the search image centre."""
        return self.affine(np.asarray(cmd, float).reshape(-1, 2)).reshape(-1, 2, 2)

    def search_jacobian(self, cmd) -> np.ndarray:
        """(N, 2, 2) d(command)/d(search px) at the search image centre (deg/px)."""
        cmd = np.asarray(cmd, float).reshape(-1, 2)
        return np.linalg.solve(self.forward.jacobian(cmd), self.wide_per_search(cmd))


# ------------------------------------------------------------------------- registration
@dataclass
class Registration:
    centre_wide: np.ndarray  # (2,) wide px of the search image centre
    A: np.ndarray  # (2, 2) wide px per search px
    score: float  # ECC correlation (1 = perfect)


def _grey(img: np.ndarray) -> np.ndarray:
    g = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return g.astype(np.float32)


def register_search_in_wide(search: np.ndarray, wide: np.ndarray, guess_wide: np.ndarray, scale: float,
                            window_px: int = 40, min_texture: float = 3.0) -> Registration | None:
    """Where ``search`` lies in ``wide``; ``scale`` = wide px per search px (nominal), ``guess_wide`` its centre.

    Returns None where the registration cannot be trusted (no texture, no
    clear correlation peak, ECC not converging).
    """
    s, w = _grey(search), _grey(wide)
    hs, ws = s.shape
    k = 1.0 / scale
    small = cv2.resize(s, (max(8, int(round(ws * scale))), max(8, int(round(hs * scale)))), interpolation=cv2.INTER_AREA)
    if small.std() < min_texture:
        return None
    sh, sw = small.shape
    # exact scale of the resized template (rounding)
    kx, ky = ws / sw, hs / sh
    gx, gy = float(guess_wide[0]), float(guess_wide[1])
    x0 = int(np.clip(round(gx - sw / 2 - window_px), 0, w.shape[1] - sw))
    y0 = int(np.clip(round(gy - sh / 2 - window_px), 0, w.shape[0] - sh))
    x1 = int(np.clip(round(gx + sw / 2 + window_px), sw, w.shape[1]))
    y1 = int(np.clip(round(gy + sh / 2 + window_px), sh, w.shape[0]))
    roi = w[y0:y1, x0:x1]
    if roi.shape[0] < sh or roi.shape[1] < sw:
        return None
    cc = cv2.matchTemplate(roi, small, cv2.TM_CCOEFF_NORMED)
    _, peak, _, loc = cv2.minMaxLoc(cc)
    if peak < 0.5:
        return None
    warp = np.array([[1.0, 0.0, x0 + loc[0]], [0.0, 1.0, y0 + loc[1]]], np.float32)
    try:
        score, warp = cv2.findTransformECC(small, w, warp, cv2.MOTION_AFFINE,
                                           (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 200, 1e-6), None, 1)
    except cv2.error:
        return None
    # search pixel p -> small pixel q = (p + 0.5) / k - 0.5 -> wide pixel warp @ [q, 1]
    c_search = np.array([(ws - 1) / 2, (hs - 1) / 2])
    q = (c_search + 0.5) / np.array([kx, ky]) - 0.5
    centre = warp[:, :2].astype(float) @ q + warp[:, 2]
    A = warp[:, :2].astype(float) / np.array([kx, ky])[None, :]
    return Registration(centre, A, float(score))


# ------------------------------------------------------------------------------- fitting
@dataclass
class WideMapFit:
    wide_map: WideMap
    commands: np.ndarray  # (N, 2) registered commands
    centres: np.ndarray  # (N, 2) measured wide pixels
    residual_search_px: np.ndarray  # (N,) |residual| in search pixels
    failed: list[tuple[float, float]]
    scores: np.ndarray

    @property
    def rms_search_px(self) -> float:
        return float(np.sqrt(np.mean(self.residual_search_px**2)))


def fit_wide_map(commands: np.ndarray, regs: list[Registration | None], limits_deg, search_wh, wide_wh,
                 degree: int = 3, min_score: float = 0.85) -> WideMapFit:
    """Fit the polynomial maps to the registrations (one robust refit drops 4-sigma outliers)."""
    commands = np.asarray(commands, float)
    ok = np.array([r is not None and r.score >= min_score for r in regs])
    failed = [tuple(map(float, c)) for c, good in zip(commands, ok) if not good]
    n_terms = len(_exponents(degree))
    if ok.sum() < max(2 * n_terms, 12):
        raise CalibrationError(
            f"only {int(ok.sum())} of {len(regs)} commands could be registered in the wide image (need at least "
            f"{max(2 * n_terms, 12)} for a degree-{degree} map): the scene needs texture where the search camera looks"
        )
    cmd = commands[ok]
    cen = np.array([r.centre_wide for r in regs if r is not None and r.score >= min_score])
    aff = np.array([r.A.ravel() for r in regs if r is not None and r.score >= min_score])
    scores = np.array([r.score for r in regs if r is not None and r.score >= min_score])
    (x0, x1), (y0, y1) = limits_deg
    c_centre, c_scale = np.array([(x0 + x1) / 2, (y0 + y1) / 2]), np.array([(x1 - x0) / 2, (y1 - y0) / 2])
    keep = np.ones(len(cmd), bool)
    for _ in range(2):
        fwd = Poly2D.fit(cmd[keep], cen[keep], degree, c_centre, c_scale)
        res_w = cen - fwd(cmd)
        Ainv = np.linalg.inv(aff.reshape(-1, 2, 2))
        res_s = np.linalg.norm(np.einsum("nij,nj->ni", Ainv, res_w), axis=1)
        sigma = 1.4826 * np.median(res_s[keep])
        new_keep = res_s <= max(4 * sigma, 0.5)
        if new_keep.sum() == keep.sum():
            break
        keep = new_keep & keep if new_keep.sum() >= 2 * n_terms else keep
    for c in cmd[~keep]:
        failed.append(tuple(map(float, c)))
    affine = Poly2D.fit(cmd[keep], aff[keep], min(degree, 2), c_centre, c_scale)
    inv = Poly2D.fit(cen[keep], cmd[keep], degree)
    wm = WideMap(fwd, inv, affine, ((float(x0), float(x1)), (float(y0), float(y1))), tuple(search_wh), tuple(wide_wh))
    return WideMapFit(wm, cmd[keep], cen[keep], res_s[keep], failed, scores[keep])


def save_wide_map(fit: WideMapFit, out: Path, source: dict, wide_camera: str = "", search_camera: str = "") -> Path:
    wm = fit.wide_map
    res = fit.residual_search_px
    data = header("wide_map", source, {
        "rms_search_px": round(fit.rms_search_px, 4), "max_search_px": round(float(res.max()), 4),
        "registered": int(len(res)), "failed": len(fit.failed), "failed_commands_deg": [list(c) for c in fit.failed],
    })
    data.update({
        "wide_camera": wide_camera, "search_camera": search_camera, "degree": wm.forward.degree,
        "forward": {**wm.forward.as_dict(), "maps": "command_deg (theta_x, theta_y) -> wide_px (u, v)"},
        "inverse": {**wm.inverse.as_dict(), "maps": "wide_px (u, v) -> command_deg, refined by Newton on forward",
                    "affine": {**wm.affine.as_dict(), "maps": "command_deg -> d(wide px)/d(search px), row-major"}},
        "limits_deg": [list(a) for a in wm.limits_deg],
        "wide_size": list(wm.wide_wh),
    })
    data["source"]["search_size"] = list(wm.search_wh)
    return save_calibration(out, data)


def load_wide_map(path: str | Path) -> WideMap:
    cal = load_calibration(path, expect_kind="wide_map")
    d = cal.data
    inv = dict(d.inverse)
    aff = inv.pop("affine", None)
    if aff is None:
        raise ConfigError(f"{path}: inverse.affine: required key is missing")
    lim = d.limits_deg
    if len(lim) != 2 or any(len(a) != 2 for a in lim):
        raise ConfigError(f"{path}: limits_deg: expected [[x_min, x_max], [y_min, y_max]]")
    search_wh = tuple(d.source.get("search_size", (0, 0)))
    return WideMap(Poly2D.from_dict(d.forward, f"{path}: forward"), Poly2D.from_dict(inv, f"{path}: inverse"),
                   Poly2D.from_dict(aff, f"{path}: inverse.affine"), (tuple(lim[0]), tuple(lim[1])),
                   search_wh, tuple(d.wide_size))


def load_search_geometry(path: str | Path, rig=None):
    """A ``SearchGeometry`` for the search loop from a wide-map calibration file (``calibration.search_geometry``)."""
    from foveate.system.search.geometry import SearchGeometry

    wm = load_wide_map(path)
    if rig is not None and wm.search_wh == (0, 0):
        dev = rig.role("search_camera")
        wm.search_wh = (dev.width, dev.height)

    class WideMapGeometry(SearchGeometry):
        """The fitted wide-to-galvo map behind the search loop's geometry interface."""

        def __init__(self, m: WideMap) -> None:
            super().__init__(m.limits_deg, m.search_wh, m.wide_wh)
            self.wide_map = m

        def command_to_wide(self, cmd: np.ndarray) -> np.ndarray:
            return self.wide_map.command_to_wide_pixel(cmd)

        def search_jacobian(self, cmd: np.ndarray) -> np.ndarray:
            return self.wide_map.search_jacobian(cmd)

        def wide_to_command(self, uv: np.ndarray) -> np.ndarray:
            return self.wide_map.wide_pixel_to_command(uv)

    return WideMapGeometry(wm)


# ----------------------------------------------------------------------------- on a rig
def nominal_scale(rig) -> float:
    """Nominal wide px per search px from the cameras' fields of view (only the magnitude is trusted)."""
    search, wide = rig.role("search_camera"), rig.role("wide_camera")
    s_hfov = rig.config.devices[search.name].settings.get("hfov_deg")
    w_hfov = rig.config.devices[wide.name].settings.get("hfov_deg")
    if s_hfov is None or w_hfov is None:
        raise CalibrationError("the rig's search and wide cameras need hfov_deg settings for a first guess of the scale")
    return (float(s_hfov) / search.width) / (float(w_hfov) / wide.width)


def _small_template(search: np.ndarray, scale: float) -> np.ndarray:
    s = _grey(search)
    return cv2.resize(s, (max(8, int(round(s.shape[1] * scale))), max(8, int(round(s.shape[0] * scale)))),
                      interpolation=cv2.INTER_AREA)


def vote_linear_prior(seeds: list[tuple[np.ndarray, np.ndarray, np.ndarray]], scale: float, gain_px_per_deg: float,
                      ) -> tuple[np.ndarray, np.ndarray, float]:
    """Where the seed views lie, by consensus: returns (reference command, its wide centre, J (2, 2) px/deg).

    A small search image shrunk to the wide scale matches many places of a
    street (windows repeat), so no single view is trusted: for each of the
    8 ways the mirror axes can map onto the image axes (signs, swap), every
    seed's correlation map is shifted by the displacement that hypothesis
    predicts and the maps are summed; the true hypothesis piles the peaks up.
    ``seeds``: (command (2,), search image, wide image).
    """
    c_ref = seeds[0][0]
    maps = []
    for cmd, s_img, w_img in seeds:
        small = _small_template(s_img, scale)
        cc = cv2.matchTemplate(_grey(w_img), small, cv2.TM_CCOEFF_NORMED)
        maps.append((cmd, cv2.dilate(cc, np.ones((7, 7), np.uint8))))
    th, tw = maps[0][1].shape
    best = (-np.inf, None, None)
    for swap in (False, True):
        for sx in (1.0, -1.0):
            for sy in (1.0, -1.0):
                J = np.array([[sx * gain_px_per_deg, 0.0], [0.0, sy * gain_px_per_deg]])
                if swap:
                    J = J[::-1].copy()
                total = np.zeros((th, tw), np.float32)
                for cmd, cc in maps:
                    d = J @ (cmd - c_ref)
                    M = np.float32([[1, 0, -d[0]], [0, 1, -d[1]]])  # total(p) += cc(p + d)
                    total += cv2.warpAffine(cc, M, (tw, th), flags=cv2.INTER_LINEAR, borderValue=-1.0)
                _, peak, _, loc = cv2.minMaxLoc(total)
                if peak > best[0]:
                    best = (peak, np.array(loc, float), J)
    peak, loc, J = best
    small = _small_template(seeds[0][1], scale)
    centre = loc + (np.array([small.shape[1], small.shape[0]]) - 1) / 2
    return c_ref, centre, J, float(peak) / len(seeds)


def register_grid(commands: np.ndarray, grab, scale: float, wide_px_per_deg: float, progress: bool = True,
                  min_score: float = 0.8, n_seeds: int = 9) -> list[Registration | None]:
    """Register every command's view, walking outwards from the centre so each search window is small.

    ``grab(cmd) -> (search_image, wide_image)``. The views nearest the middle
    of the grid are located together by consensus (``vote_linear_prior``);
    every other view is searched for in a small window around the position
    predicted from its registered neighbours (local affine in command
    space), so repetitive texture cannot pull a view far off. Nothing about
    the mirrors' signs or axes is assumed.
    """
    n = len(commands)
    centre = commands.mean(axis=0)
    order = list(np.argsort(np.linalg.norm(commands - centre, axis=1)))
    regs: list[Registration | None] = [None] * n
    bar = tqdm(total=n, desc="registering", unit="view", disable=not progress, leave=False)
    seeds, images = [], {}
    for k in order:
        s_img, w_img = grab(commands[k])
        bar.update(1)
        images[k] = (s_img, w_img)
        if _small_template(s_img, scale).std() >= 3.0:
            seeds.append(k)
        if len(seeds) >= n_seeds:
            break
    if len(seeds) < 3:
        raise CalibrationError("fewer than 3 textured views near the middle of the command range: "
                               "the wide-to-galvo map needs a textured scene in front of the rig")
    c_ref, w_ref, J, score = vote_linear_prior([(commands[k], *images[k]) for k in seeds], scale, wide_px_per_deg)
    log.info("seed consensus %.3f, reference %s -> %s px", score, c_ref, w_ref)
    for k in order:
        c = commands[k]
        if k in images:
            s_img, w_img = images.pop(k)
        else:
            s_img, w_img = grab(c)
            bar.update(1)
        done = [i for i in range(n) if regs[i] is not None]
        window = 12
        guess = w_ref + J @ (c - c_ref)
        if done:
            d = np.linalg.norm(commands[done] - c, axis=1)
            near = [done[i] for i in np.argsort(d)[:6]]
            P = commands[near]
            if len(near) >= 3 and np.linalg.matrix_rank(np.c_[P, np.ones(len(P))]) == 3:
                M = np.linalg.lstsq(np.c_[P, np.ones(len(P))], np.array([regs[i].centre_wide for i in near]), rcond=None)[0]
                guess = np.r_[c, 1.0] @ M
                window = int(8 + 0.1 * wide_px_per_deg * float(d.min()))
            else:
                guess = regs[near[0]].centre_wide + J @ (c - commands[near[0]])
                window = int(8 + 0.2 * wide_px_per_deg * float(d.min()))
        r = register_search_in_wide(s_img, w_img, guess, scale, window_px=window, min_texture=1.5)
        regs[k] = r if r is not None and r.score >= min_score else None
    bar.close()
    return regs


def calibrate_wide_map_rig(rig, out: str | Path, grid=(13, 9), degree: int = 3, margin_frac: float = 0.03,
                           progress: bool = True, picture: bool = True) -> dict:
    """Drive the search galvo over a command grid, register each view in the wide image, fit, save."""
    galvo, search, wide = rig.role("search_galvo"), rig.role("search_camera"), rig.role("wide_camera")
    (x0, x1), (y0, y1) = galvo.limits_deg
    mx, my = margin_frac * (x1 - x0), margin_frac * (y1 - y0)
    xs, ys = np.linspace(x0 + mx, x1 - mx, grid[0]), np.linspace(y0 + my, y1 - my, grid[1])
    commands = np.array([(x, y) for y in ys for x in xs])
    scale = nominal_scale(rig)
    w_hfov = float(rig.config.devices[wide.name].settings.get("hfov_deg", 60.0))
    last = {}

    def grab(c):
        galvo.move_to(*c)
        galvo.wait_settled(0.05)
        s_img = search.read().image
        last["wide"] = wide.read().image
        return s_img, last["wide"]

    # a mechanical degree turns the view by about two optical degrees
    regs = register_grid(commands, grab, scale, 2.0 * wide.width / w_hfov, progress)
    fit = fit_wide_map(commands, regs, galvo.limits_deg, (search.width, search.height), (wide.width, wide.height), degree)
    out = Path(out)
    source = {"rig": rig.config.name, "rig_file": rig.config.source, "grid": list(grid), "commands": len(commands)}
    save_wide_map(fit, out, source, wide.name, search.name)
    pics = [wide_map_picture(fit, last["wide"], Path(f"{out.with_suffix('')}_wide.png"))] if picture else []
    return {"rms_search_px": round(fit.rms_search_px, 4), "max_search_px": round(float(fit.residual_search_px.max()), 4),
            "registered": int(len(fit.commands)), "failed": len(fit.failed), "out": str(out),
            "pictures": [str(p) for p in pics]}


def wide_map_picture(fit: WideMapFit, wide_img: np.ndarray, path: Path) -> Path:
    """The wide image with the fitted command grid and each registration's residual (magnified 10x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wm = fit.wide_map
    fig, ax = plt.subplots(figsize=(10, 7.5))
    ax.imshow(wide_img if wide_img.ndim == 2 else wide_img[..., ::-1], cmap="gray")
    (x0, x1), (y0, y1) = wm.limits_deg
    for x in np.linspace(x0, x1, 7):
        p = wm.command_to_wide_pixel(np.stack([np.full(50, x), np.linspace(y0, y1, 50)], 1))
        ax.plot(p[:, 0], p[:, 1], color="tab:cyan", lw=0.8)
    for y in np.linspace(y0, y1, 5):
        p = wm.command_to_wide_pixel(np.stack([np.linspace(x0, x1, 50), np.full(50, y)], 1))
        ax.plot(p[:, 0], p[:, 1], color="tab:cyan", lw=0.8)
    pred = wm.command_to_wide_pixel(fit.commands)
    sc = ax.scatter(fit.centres[:, 0], fit.centres[:, 1], c=fit.residual_search_px, cmap="magma_r", s=18,
                    edgecolors="k", linewidths=0.3)
    d = 10 * (fit.centres - pred)
    ax.quiver(pred[:, 0], pred[:, 1], d[:, 0], d[:, 1], angles="xy", scale_units="xy", scale=1, color="tab:red", width=0.002)
    fig.colorbar(sc, ax=ax, label="residual [search px]")
    if fit.failed:
        f = wm.command_to_wide_pixel(np.array(fit.failed))
        ax.scatter(f[:, 0], f[:, 1], marker="x", color="tab:orange", label=f"not registered ({len(fit.failed)})")
        ax.legend(loc="lower right")
    ax.set_title(f"wide-to-galvo map: RMS {fit.rms_search_px:.2f} search px over {len(fit.commands)} views "
                 "(cyan: command grid lines; red: residual x10)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
