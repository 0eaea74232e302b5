"""Models: SLTNet, the search-camera detector, training, export, quantization, runtimes."""
