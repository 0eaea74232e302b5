"""Roofline analysis of ONNX graphs: per-layer ops, bytes, bound and predicted time per hardware profile."""
