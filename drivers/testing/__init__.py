"""Test helpers for backend authors: conformance suites every backend must pass."""
