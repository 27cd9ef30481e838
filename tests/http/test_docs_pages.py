"""The API docs pages under /schema load everything from eventcore itself: they work offline."""

from __future__ import annotations

import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from eventcore.entrypoints.http.docs import ASSETS_DIR, ASSETS_PATH, DROPPED_PAGES, MANIFEST
from tests.http.support import Api, assert_error

README = Path(__file__).resolve().parents[2] / "README.md"
# Every HTML page served under /schema (Swagger UI's OAuth2 redirect page included).
PAGES = ["/schema", "/schema/redoc", "/schema/swagger", "/schema/oauth2-redirect.html"]
CONTENT_TYPES = {".js": ("text/javascript", "application/javascript"), ".css": ("text/css",)}
YEAR = 365 * 24 * 3600


class References(HTMLParser):
    """Every URL a page's tags name (``src=``, ``href=``)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls.extend(value or "" for name, value in attrs if name in {"src", "href"})


def references(html: str) -> list[str]:
    parser = References()
    parser.feed(html)
    parser.close()
    return parser.urls


def manifest() -> list[dict[str, str]]:
    entries: list[dict[str, str]] = json.loads(MANIFEST.read_text())["assets"]
    return entries


@pytest.fixture
def pages(api: Api) -> dict[str, str]:
    """Each page's HTML, as served."""
    served = {}
    for page in PAGES:
        response = api.client.get(page)
        assert response.status_code == 200, (page, response.text)
        assert response.headers["content-type"].startswith("text/html"), page
        served[page] = response.text
    return served


def test_every_page_names_only_same_origin_urls(pages: dict[str, str]) -> None:
    """Each src= and href= of each page is a path on this server or inline data, never a host."""
    for page, html in pages.items():
        for url in references(html):
            parts = urlsplit(url)
            if parts.scheme == "data":
                continue
            assert not parts.scheme, (page, url)
            assert not parts.netloc, (page, url)
            assert url.startswith("/"), (page, url)


def test_no_page_mentions_another_host(pages: dict[str, str]) -> None:
    """Nothing in a page (its scripts, styles or embedded schema) points at http:// or https://."""
    for page, html in pages.items():
        assert re.findall(r"https?://\S*", html) == [], page


def test_every_asset_a_page_names_is_served_from_the_package(
    api: Api, pages: dict[str, str]
) -> None:
    """Each script and style a page loads answers 200 with its content type, a long cache life and
    the bytes of the file packaged in static/docs; every vendored script and style is loaded."""
    loaded = set()
    for page, html in pages.items():
        for url in references(html):
            if url.startswith("data:"):
                continue
            path = urlsplit(url).path
            assert path.startswith(f"{ASSETS_PATH}/"), (page, url)
            name = path.removeprefix(f"{ASSETS_PATH}/")
            response = api.client.get(url)
            assert response.status_code == 200, (page, url)
            suffix = Path(name).suffix
            assert response.headers["content-type"].split(";")[0] in CONTENT_TYPES[suffix], url
            assert f"max-age={YEAR}" in response.headers["cache-control"], url
            assert response.content == (ASSETS_DIR / name).read_bytes(), url
            loaded.add(name)
    vendored = {
        entry["name"] for entry in manifest() if Path(entry["name"]).suffix in CONTENT_TYPES
    }
    assert loaded == vendored


def test_the_manifest_states_each_vendored_file() -> None:
    """ASSETS.json lists exactly the files in static/docs, each with its npm package, version and
    sha256, and the hashes are the files'."""
    entries = manifest()
    for entry in entries:
        assert set(entry) == {"name", "package", "version", "source", "license", "sha256"}, entry
        assert re.fullmatch(r"\d+\.\d+\.\d+", entry["version"]), entry
        data = (ASSETS_DIR / entry["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["name"]
    files = {path.name for path in ASSETS_DIR.iterdir()} - {MANIFEST.name}
    assert files == {entry["name"] for entry in entries}
    assert {entry["package"] for entry in entries} == {"swagger-ui-dist", "redoc"}
    # The licences travel with the code they cover.
    assert {"swagger-ui-dist.LICENSE", "swagger-ui-dist.NOTICE", "redoc.LICENSE"} <= files


def test_the_readme_states_the_vendored_versions() -> None:
    """The README names the versions of Redoc and Swagger UI that the package holds."""
    versions = {entry["package"]: entry["version"] for entry in manifest()}
    text = README.read_text()
    assert f"Redoc {versions['redoc']}" in text
    assert f"Swagger UI {versions['swagger-ui-dist']}" in text


def test_the_schema_documents_are_served(api: Api) -> None:
    """The schema itself, as JSON and as YAML, the same document."""
    as_json = api.client.get("/schema/openapi.json")
    assert as_json.status_code == 200
    as_yaml = api.client.get("/schema/openapi.yaml")
    assert as_yaml.status_code == 200
    assert yaml.safe_load(as_yaml.text) == as_json.json()


def test_the_docs_routes_are_not_in_the_schema(api: Api) -> None:
    """Neither the pages nor their assets are operations of the API."""
    paths = api.client.get("/schema/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/schema")], sorted(paths)


@pytest.mark.parametrize("page", DROPPED_PAGES)
def test_a_page_without_vendored_assets_is_not_found(api: Api, page: str) -> None:
    """The pages Litestar would load from a CDN are not served: 404 in the JSON error shape."""
    assert_error(api.client.get(f"/schema{page}"), 404, "not_found")


def test_an_unknown_asset_is_not_found(api: Api) -> None:
    assert_error(api.client.get(f"{ASSETS_PATH}/swagger-ui.js"), 404, "not_found")
