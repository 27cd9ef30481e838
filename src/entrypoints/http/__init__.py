"""The HTTP API (Litestar)."""

from entrypoints.http.app import create_app

__all__ = ["create_app"]
