"""Post-training quantization of the project's ONNX models (onnxruntime static QDQ).

Pieces: ``cpu`` (VNNI detection: which INT8 kernels are safe here), ``ptq`` (the recipe and
``quantize_model``), ``calib_select`` (EDA-DM-style calibration subset vs random),
``reparam`` (RepQuant-style exact scale folding: conv→conv and conv→LIF thresholds),
``check`` (fused INT8 kernels vs the reference Q/DQ arithmetic: catches saturation),
``corrupt`` (domain-shift corruptions for robustness), ``targets`` (SLTNet and detector
adapters: calibration inputs, accuracy). Importing this package does not import torch.
"""
