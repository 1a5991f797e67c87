"""Benchmarks of the collection against the sandbox (`make bench`): API calls, scale, latency, memory."""
