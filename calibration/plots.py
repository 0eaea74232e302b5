"""Pictures of calibration results (matplotlib, Agg backend; PNG files)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from foveate.calibration.galvo_geometry import GalvoCamera  # noqa: E402


def residual_plot(views, image_size: tuple[int, int], path: Path, title: str = "reprojection residuals",
                  uv_of_view=None) -> Path:
    """Three panels: residual vectors over the image, per-view RMS over the command grid, histogram.

    ``views``: objects with ``residuals`` (N, 2), ``rms_px``, ``theta_x_deg``,
    ``theta_y_deg``; ``uv_of_view(i)`` gives the observed corners of view i.
    """
    fig, ax = plt.subplots(1, 3, figsize=(16, 5))
    w, h = image_size
    res = np.concatenate([v.residuals for v in views])
    mag = np.hypot(res[:, 0], res[:, 1])
    rms = float(np.sqrt(np.mean(mag**2)))
    if uv_of_view is not None:
        uv = np.concatenate([uv_of_view(i) for i in range(len(views))])
        scale = 0.1 * max(w, h) / max(1e-9, np.percentile(mag, 99))
        ax[0].quiver(uv[:, 0], uv[:, 1], res[:, 0], res[:, 1], mag, angles="xy", scale_units="xy", scale=1 / scale,
                     cmap="viridis", width=0.002)
        ax[0].set_xlim(0, w)
        ax[0].set_ylim(h, 0)
        ax[0].set_aspect("equal")
        ax[0].set_title(f"residual vectors x{scale:.0f} (observed - model)")
        ax[0].set_xlabel("u [px]")
        ax[0].set_ylabel("v [px]")
    tx = np.array([v.theta_x_deg for v in views])
    ty = np.array([v.theta_y_deg for v in views])
    vr = np.array([v.rms_px for v in views])
    sc = ax[1].scatter(tx, ty, c=vr, cmap="magma_r", s=30, edgecolors="k", linewidths=0.3)
    fig.colorbar(sc, ax=ax[1], label="view RMS [px]")
    worst = np.argsort(vr)[-3:]
    for i in worst:
        ax[1].annotate(f"{vr[i]:.2f}", (tx[i], ty[i]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax[1].set_xlabel("theta_x_deg (mirror 1)")
    ax[1].set_ylabel("theta_y_deg (mirror 2)")
    ax[1].set_title("per-view RMS over the commands")
    ax[2].hist(mag, bins=50, color="tab:blue")
    ax[2].axvline(rms, color="k", ls="--", label=f"RMS {rms:.3f} px")
    ax[2].set_xlabel("|residual| [px]")
    ax[2].set_ylabel("corners")
    ax[2].legend()
    ax[2].set_title(f"{len(views)} views, {len(mag)} corners")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


def _mirror_patch(g: GalvoCamera, which: int, cmd: float, half_mm: float, centre: np.ndarray) -> np.ndarray:
    """Square of the mirror plane around ``centre`` (where the principal ray meets it)."""
    m = g.mirror1 if which == 1 else g.mirror2
    n, _ = m.plane(cmd)
    u = np.asarray(m.axis_dir, float)
    v = np.cross(n, u)
    return np.array([centre + s * half_mm * u + t * half_mm * v for s, t in ((-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1))])


def _trace(g: GalvoCamera, tx: float, ty: float, length_mm: float) -> np.ndarray:
    """Principal ray from the camera centre via mirror 1 and mirror 2, then ``length_mm`` out (world coords)."""
    Tinv = np.linalg.inv(g.T_cw)
    o = Tinv[:3, 3].copy()
    d = Tinv[:3, :3] @ np.array([0.0, 0.0, 1.0])
    pts = [o]
    for m, c in ((g.mirror1, tx), (g.mirror2, ty)):
        n, dd = m.plane(c)
        s = (dd - n @ o) / (n @ d)
        o = o + s * d
        pts.append(o)
        d = d - 2 * (d @ n) * n
    pts.append(o + length_mm * d)
    return np.array(pts)


def mirror_geometry_plot(g: GalvoCamera, path: Path, limits_deg=None, title: str = "recovered galvo geometry") -> Path:
    """3-D view and two projections of the camera, both mirror axes and plates, and principal rays."""
    fig = plt.figure(figsize=(15, 5))
    ax3 = fig.add_subplot(1, 3, 1, projection="3d")
    axes2 = [fig.add_subplot(1, 3, 2), fig.add_subplot(1, 3, 3)]
    a1 = np.asarray(g.mirror1.axis_point)
    a2 = np.asarray(g.mirror2.axis_point)
    scale = max(10.0, 1.5 * np.linalg.norm(a2 - a1), 0.6 * np.linalg.norm(a1 - np.linalg.inv(g.T_cw)[:3, 3]))
    cmds = [(0.0, 0.0)]
    if limits_deg is not None:
        (x0, x1), (y0, y1) = limits_deg
        cmds += [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    items = []
    hits = _trace(g, 0.0, 0.0, 0.0)[1:3]
    for which, m, col in ((1, g.mirror1, "tab:blue"), (2, g.mirror2, "tab:orange")):
        a, u = np.asarray(m.axis_point, float), np.asarray(m.axis_dir, float)
        h = hits[which - 1]
        a = a + ((h - a) @ u) * u  # the axis point nearest the ray's hit (points along an axis are equivalent)
        items.append((np.array([a - 0.6 * scale * u, a + 0.6 * scale * u]), col, "--", f"axis {which} (gain {m.gain:.4f})"))
        items.append((_mirror_patch(g, which, 0.0, 0.25 * scale, h), col, "-", f"mirror {which} at 0"))
    for k, (tx, ty) in enumerate(cmds):
        items.append((_trace(g, tx, ty, 2.5 * scale), "tab:green" if k == 0 else "0.6", "-",
                      "principal ray (0, 0)" if k == 0 else ("rays at the range corners" if k == 1 else None)))
    cam = np.linalg.inv(g.T_cw)[:3, 3]
    for pts, col, ls, label in items:
        ax3.plot(pts[:, 0], pts[:, 1], pts[:, 2], color=col, ls=ls, label=label)
    ax3.scatter(*cam, color="k", s=30, label="camera centre")
    ax3.set_xlabel("x [mm]")
    ax3.set_ylabel("y [mm]")
    ax3.set_zlabel("z [mm]")
    ax3.legend(fontsize=7, loc="upper left")
    for ax, (i, j) in zip(axes2, ((0, 2), (1, 2))):
        for pts, col, ls, label in items:
            ax.plot(pts[:, i], pts[:, j], color=col, ls=ls)
        ax.scatter(cam[i], cam[j], color="k", s=20)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel("xyz"[i] + " [mm]")
        ax.set_ylabel("xyz"[j] + " [mm]")
        ax.set_title(f"projection on {'xyz'[i]}{'xyz'[j]} (world = camera frame)")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)
