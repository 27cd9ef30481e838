"""The API docs pages under /schema, every script, style and icon of them served by eventcore.

Redoc (``/schema``, ``/schema/redoc``) and Swagger UI (``/schema/swagger``) load their bundles
from ``/schema/assets/``, which serves the files vendored in ``static/docs`` (``nox -s vendor``
refreshes them from npm; ``ASSETS.json`` there gives each one's package, version and sha256);
the favicon is inline and Redoc's web fonts are off, so the pages need no other host and work
offline. The schema itself is at ``/schema/openapi.json`` and ``/schema/openapi.yaml``. The pages
Litestar would load from a CDN and whose assets are not vendored are not served.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from litestar import get
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import (
    JsonRenderPlugin,
    OpenAPIRenderPlugin,
    RedocRenderPlugin,
    SwaggerRenderPlugin,
    YamlRenderPlugin,
)
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

PATH = "/schema"
ASSETS_PATH = f"{PATH}/assets"
ASSETS_DIR = Path(__file__).resolve().parent / "static" / "docs"
MANIFEST = ASSETS_DIR / "ASSETS.json"
# Pages Litestar offers with assets from a CDN, not vendored here: a JSON 404 like any unknown
# route (rather than Litestar's HTML one for an unknown page under /schema).
DROPPED_PAGES = ("/rapidoc", "/elements", "/scalar")
# An asset's URL carries its hash (`?v=`), so that a browser may keep it for a year and still
# fetches the new file once it changes.
CACHE_SECONDS = 365 * 24 * 3600

_FAVICON_SVG = (
    b"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'>"
    b"<rect width='16' height='16' rx='3' fill='#1f4e8c'/>"
    b"<path d='M4 4h8v2H6v1h5v2H6v1h6v2H4z' fill='#fff'/></svg>"
)
FAVICON = (
    "<link rel='icon' type='image/svg+xml' "
    f"href='data:image/svg+xml;base64,{base64.b64encode(_FAVICON_SVG).decode()}'>"
)


def _digests() -> dict[str, str]:
    """Each vendored file's sha256, by its name in ``static/docs``."""
    manifest = json.loads(MANIFEST.read_text())
    return {entry["name"]: entry["sha256"] for entry in manifest["assets"]}


_DIGESTS = _digests()


def asset_url(name: str) -> str:
    """The same-origin URL of a vendored file, with its hash to tell versions apart."""
    return f"{ASSETS_PATH}/{name}?v={_DIGESTS[name][:16]}"


RENDER_PLUGINS: list[OpenAPIRenderPlugin] = [
    # The first is also the page at /schema itself.
    RedocRenderPlugin(
        path="/redoc",
        js_url=asset_url("redoc.standalone.js"),
        google_fonts=False,
        favicon=FAVICON,
    ),
    SwaggerRenderPlugin(
        path="/swagger",
        js_url=asset_url("swagger-ui-bundle.js"),
        css_url=asset_url("swagger-ui.css"),
        standalone_preset_js_url=asset_url("swagger-ui-standalone-preset.js"),
        favicon=FAVICON,
    ),
    JsonRenderPlugin(),
    YamlRenderPlugin(),
]


@get(
    [f"{PATH}{page}" for page in DROPPED_PAGES],
    include_in_schema=False,
    sync_to_thread=False,
)
def dropped_page() -> None:
    raise NotFoundException


ROUTES: list[ControllerRouterHandler] = [
    create_static_files_router(
        ASSETS_PATH,
        directories=[ASSETS_DIR],
        name="docs_assets",
        cache_control=CacheControlHeader(max_age=CACHE_SECONDS, public=True, immutable=True),
        include_in_schema=False,
    ),
    dropped_page,
]
