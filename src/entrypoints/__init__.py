"""Entry points: the composition root and the thin edges (HTTP API, queue worker, CLI)."""
