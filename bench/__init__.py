"""Benchmarks (`make bench`): measurements with targets, kept out of the test suite on purpose."""
