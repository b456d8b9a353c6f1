"""Loopback servers that speak each provider's exact wire format, for tests and benchmarks."""
