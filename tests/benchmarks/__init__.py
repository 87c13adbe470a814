"""Smoke tests of the benchmark suites (benchmarks/): quick mode, well-formed outputs."""
