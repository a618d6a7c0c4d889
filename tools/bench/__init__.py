"""``make bench``: the sandbox's figures under load, written to docs/benchmarks.md."""
