"""Accuracy of a point cloud against a known scene, feature by feature.

The scene is duck-typed (runtime code never imports the simulator): an object
with ``distance(X) -> (dist (N,), surface index (N,))`` and ``surfaces``,
each with ``name``, ``kind`` (plane, sphere, block, freeform) and
``describe()`` giving its exact geometry in mm. Points farther than
``gate_mm`` from every surface count as outliers (reported, not scored).

Per feature: spheres get a fitted radius and centre; planes a fitted plane
(flatness RMS and peak-to-valley, tilt and offset against the truth); gauge
blocks the plane of their camera-facing top and the step heights between
neighbouring tops (the first step from the plane behind them), each compared
with the true heights; every surface its RMS point-to-surface distance.
"""

from __future__ import annotations

import numpy as np

from foveate.calibration.light_section.shapes import ShapeFitError, fit_plane, fit_sphere


def _stats(d: np.ndarray) -> dict:
    if d.size == 0:
        return {"points": 0}
    return {"points": int(d.size), "rms_mm": round(float(np.sqrt(np.mean(d**2))), 4),
            "mean_mm": round(float(np.mean(d)), 4), "p95_mm": round(float(np.percentile(d, 95)), 4),
            "max_mm": round(float(np.max(d)), 4)}


def _block_top(X: np.ndarray, desc: dict, margin_mm: float, gate_mm: float):
    lo, hi = np.asarray(desc["lo_mm"]), np.asarray(desc["hi_mm"])
    m = ((np.abs(X[:, 2] - lo[2]) < gate_mm) & (X[:, 0] > lo[0] + margin_mm) & (X[:, 0] < hi[0] - margin_mm)
         & (X[:, 1] > lo[1] + margin_mm) & (X[:, 1] < hi[1] - margin_mm))
    return X[m]


def _z_on(plane, x: float, y: float) -> float:
    n, d = plane.normal, plane.d
    return float((d - n[0] * x - n[1] * y) / n[2])


def accuracy_report(X: np.ndarray, scene, gate_mm: float = 2.0, min_points: int = 30,
                    edge_margin_mm: float = 3.0, depth_bins_mm: float = 100.0) -> dict:
    """Feature-by-feature accuracy of points (N, 3) (mm, the scene's frame) against ``scene``."""
    X = np.asarray(X, np.float64).reshape(-1, 3)
    dist, idx = scene.distance(X) if X.size else (np.zeros(0), np.zeros(0, int))
    inl = dist <= gate_mm
    out: dict = {"points": int(X.shape[0]), "gate_mm": gate_mm,
                 "outliers": int(np.count_nonzero(~inl)),
                 "outlier_fraction": round(float(np.mean(~inl)), 5) if X.size else 0.0,
                 "overall": _stats(dist[inl])}
    # Over the volume: error per depth slab.
    if np.any(inl):
        z = X[inl, 2]
        edges = np.arange(np.floor(z.min() / depth_bins_mm) * depth_bins_mm, z.max() + depth_bins_mm, depth_bins_mm)
        slabs = []
        for a, b in zip(edges[:-1], edges[1:]):
            m = (z >= a) & (z < b)
            if m.sum() >= min_points:
                slabs.append({"z_mm": [float(a), float(b)], **_stats(dist[inl][m])})
        out["by_depth"] = slabs
    features = []
    planes_fit: dict[str, object] = {}
    blocks = []
    for i, s in enumerate(scene.surfaces):
        desc = s.describe()
        m = inl & (idx == i)
        P = X[m]
        f: dict = {"name": s.name, "kind": s.kind, **_stats(dist[m])}
        if P.shape[0] >= min_points:
            try:
                if s.kind == "sphere":
                    sf = fit_sphere(P)
                    c_true = np.asarray(desc["centre_mm"], float)
                    f.update({"radius_true_mm": desc["radius_mm"], "radius_fit_mm": round(sf.radius, 4),
                              "radius_error_mm": round(sf.radius - desc["radius_mm"], 4),
                              "centre_true_mm": [round(float(v), 3) for v in c_true],
                              "centre_fit_mm": [round(float(v), 3) for v in sf.centre],
                              "centre_error_mm": round(float(np.linalg.norm(sf.centre - c_true)), 4),
                              "fit_rms_mm": round(sf.rms_mm, 4)})
                elif s.kind == "plane":
                    pf = fit_plane(P, facing=desc["normal"])
                    n_true = np.asarray(desc["normal"], float)
                    c_true = np.asarray(desc["centre_mm"], float)
                    ang = float(np.degrees(np.arccos(min(1.0, abs(pf.normal @ n_true)))))
                    off = float(pf.normal @ c_true - pf.d)  # true plane's centre seen from the fitted plane
                    f.update({"flatness_rms_mm": round(pf.rms_mm, 4), "flatness_pv_mm": round(pf.peak_to_valley_mm, 4),
                              "tilt_error_deg": round(ang, 5), "offset_error_mm": round(off, 4)})
                    planes_fit[s.name] = pf
                elif s.kind == "block":
                    top = _block_top(X[inl], desc, edge_margin_mm, gate_mm)
                    if top.shape[0] >= min_points:
                        pf = fit_plane(top)
                        f.update({"top_points": int(top.shape[0]), "top_flatness_rms_mm": round(pf.rms_mm, 4)})
                        blocks.append((desc, pf))
            except ShapeFitError as exc:
                f["fit_error"] = str(exc)
        features.append(f)
    out["features"] = features
    # Step heights: blocks left to right along x, the first one from the plane behind it.
    steps = []
    blocks.sort(key=lambda b: b[0]["lo_mm"][0])
    base = next((p for n, p in planes_fit.items() if "back" in n), None)
    prev = ("base", base, None)
    for desc, pf in blocks:
        lo, hi = desc["lo_mm"], desc["hi_mm"]
        y_mid = 0.5 * (lo[1] + hi[1])
        x_edge = lo[0]
        z_top = lo[2]
        if prev[1] is not None:
            z_prev_true = hi[2] if prev[2] is None else prev[2]["lo_mm"][2]
            true_h = z_prev_true - z_top
            meas = _z_on(prev[1], x_edge, y_mid) - _z_on(pf, x_edge, y_mid)
            steps.append({"from": prev[0], "to": desc["name"], "true_mm": round(true_h, 4),
                          "measured_mm": round(meas, 4), "error_mm": round(meas - true_h, 4)})
        prev = (desc["name"], pf, desc)
    out["steps"] = steps
    sph = [f for f in features if "radius_error_mm" in f]
    out["summary"] = {
        "rms_point_to_surface_mm": out["overall"].get("rms_mm"),
        "max_abs_sphere_radius_error_mm": max((abs(f["radius_error_mm"]) for f in sph), default=None),
        "max_abs_step_height_error_mm": max((abs(s["error_mm"]) for s in steps), default=None),
        "max_plane_flatness_rms_mm": max((f["flatness_rms_mm"] for f in features if "flatness_rms_mm" in f), default=None),
        "spheres_measured": len(sph),
        "steps_measured": len(steps),
    }
    return out


def report_markdown(rep: dict, title: str = "Light-section accuracy") -> str:
    """The report as Markdown tables (for humans; the JSON holds everything)."""
    s = rep["summary"]
    lines = [f"# {title}", "",
             f"points {rep['points']}, outliers beyond {rep['gate_mm']} mm: {rep['outliers']} "
             f"({100 * rep['outlier_fraction']:.3f} %)", "",
             "| summary | value |", "|---|---|"]
    for k, v in s.items():
        lines.append(f"| {k} | {v} |")
    lines += ["", "| feature | kind | points | RMS to surface (mm) | fit |", "|---|---|---|---|---|"]
    for f in rep["features"]:
        if "radius_error_mm" in f:
            fit = (f"r {f['radius_fit_mm']:.3f} (true {f['radius_true_mm']}, err {f['radius_error_mm']:+.3f}), "
                   f"centre err {f['centre_error_mm']:.3f}")
        elif "flatness_rms_mm" in f:
            fit = (f"flatness RMS {f['flatness_rms_mm']:.3f}, PV {f['flatness_pv_mm']:.3f}, "
                   f"tilt {f['tilt_error_deg']:.4f} deg, offset {f['offset_error_mm']:+.3f}")
        elif "top_flatness_rms_mm" in f:
            fit = f"top flatness RMS {f['top_flatness_rms_mm']:.3f} ({f['top_points']} pts)"
        else:
            fit = f.get("fit_error", "")
        lines.append(f"| {f['name']} | {f['kind']} | {f['points']} | {f.get('rms_mm', '-')} | {fit} |")
    if rep["steps"]:
        lines += ["", "| step | true (mm) | measured (mm) | error (mm) |", "|---|---|---|---|"]
        for st in rep["steps"]:
            lines.append(f"| {st['from']} -> {st['to']} | {st['true_mm']} | {st['measured_mm']} | {st['error_mm']:+.4f} |")
    if rep.get("by_depth"):
        lines += ["", "| depth slab (mm) | points | RMS (mm) | p95 (mm) |", "|---|---|---|---|"]
        for sl in rep["by_depth"]:
            lines.append(f"| {sl['z_mm'][0]:.0f}-{sl['z_mm'][1]:.0f} | {sl['points']} | {sl['rms_mm']} | {sl['p95_mm']} |")
    return "\n".join(lines) + "\n"
