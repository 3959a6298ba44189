"""Lab runs: tests that build real labs in network namespaces (root and `ip netns`
needed; tests/chaos/conftest.py skips them cleanly without)."""
