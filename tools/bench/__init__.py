"""Benchmarks, run through ``foveate bench``; each module defines NAME, DESCRIPTION and run()."""
