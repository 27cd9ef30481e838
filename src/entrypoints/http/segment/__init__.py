"""Segment-compatible routes: unmodified Segment and RudderStack SDKs send to eventcore.

``protocol`` translates the wire format (bodies, messages, write keys) to eventcore events,
``openapi`` documents it, and ``routes`` serves ``POST /v1/batch`` and ``POST /v1/<type>``.
"""

from __future__ import annotations

from eventcore.entrypoints.http.segment.routes import ROUTES

__all__ = ["ROUTES"]
