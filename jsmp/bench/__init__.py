"""Benchmarks: `python -m jsmp.bench NAME [options]`, one module per benchmark in this package.

Each reports ratios against a baseline measured in the same invocation, never absolute
timings alone. Shared helpers live in `jsmp.bench.common`.
"""
