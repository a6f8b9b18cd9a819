"""playerlog's benchmarks: each figure beside its peer and its ceiling, as ratios.

Run them as modules (`python -m bench.append`); see bench/README.md. Not part of
the test suite: timings belong in tables, not in assertions.
"""
