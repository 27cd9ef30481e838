"""Unit tests: the pure core and its use cases over the in-memory adapters."""
