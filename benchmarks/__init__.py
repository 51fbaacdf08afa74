"""Benchmarks: plain scripts (``.venv/bin/python benchmarks/bench_X.py``); see docs/benchmarks.md."""
