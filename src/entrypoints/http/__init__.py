"""The HTTP API (Litestar)."""

from eventcore.entrypoints.http.app import create_app

__all__ = ["create_app"]
