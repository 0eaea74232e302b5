"""Calibration: camera, galvo-mirror and laser-plane models and their procedures."""
