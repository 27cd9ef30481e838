"""The Segment routes run on the same app the HTTP suite builds: its fixtures, reused as they are."""

from __future__ import annotations

from tests.http.conftest import api, either, make_api, tenant

__all__ = ["api", "either", "make_api", "tenant"]
