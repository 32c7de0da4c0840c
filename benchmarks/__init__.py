"""Benchmark scripts: ``python -m benchmarks.<name>`` from the repository root."""
