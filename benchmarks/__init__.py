"""Benchmarks (run from the Makefile: ``make bench``), never part of the default test run."""
