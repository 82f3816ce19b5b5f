"""Benchmarks (`pytest bench --benchmark-only`) and their report (`python -m bench.report`)."""
