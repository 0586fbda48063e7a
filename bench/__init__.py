"""Benchmarks against the peers and the shared timing tools (bench.timing)."""
