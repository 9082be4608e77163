"""Benchmark harness for sevrouter (`python -m bench.run`). Not part of the installed package."""
