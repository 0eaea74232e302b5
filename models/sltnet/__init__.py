"""SLTNet: spiking segmentation of event streams (model, export, runtimes, data, training).

Import the pieces from their modules (``foveate.models.sltnet.model``, ``.export``,
``.runtime``, ...): this package does not import torch on its own.
"""
