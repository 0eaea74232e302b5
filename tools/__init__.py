"""The ``foveate`` command line and benchmarks."""
