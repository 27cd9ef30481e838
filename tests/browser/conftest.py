"""Browser end-to-end tests: Playwright (from PyPI) drives Debian's Chromium against a real
`eventcore serve` on a free port of 127.0.0.1. A missing Chromium fails the run, loudly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.browser.support import CHROMIUM, WAIT_MS, Backend, Guard, screenshot
from tests.support.processes import Server, serve

expect.set_options(timeout=WAIT_MS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.browser)


# One browser per test, not per session: Playwright's sync API runs an event loop on the main
# thread while it is started, and fixtures that call asyncio.run (the distributed stack's)
# must set up before it and tear down after it.
@pytest.fixture
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's Chromium (apt-get install -y chromium);"
            " Playwright cannot download its own browsers here."
        )
    with sync_playwright() as playwright:
        # As root (CI), Chromium's sandbox needs namespaces the container may not give.
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One embedded `eventcore serve` for the browser tests (each test signs up its own users,
    all from 127.0.0.1: the per-address signup throttle is off)."""
    workdir = tmp_path_factory.mktemp("console")
    settings = {"EVENTCORE_SIGNUPS_PER_HOUR_PER_ADDRESS": "0"}
    with serve(workdir, workdir, "serve", settings) as running:
        yield running


@pytest.fixture
def backend(server: Server) -> Iterator[Backend]:
    api = Backend(f"http://127.0.0.1:{server.port}")
    yield api
    api.http.close()


def open_page(browser: Browser, origin: str, **options: object) -> tuple[Page, Guard]:
    context = browser.new_context(base_url=origin, **options)  # type: ignore[arg-type]
    context.set_default_timeout(WAIT_MS)
    guard = Guard(origin)
    context.route("**/*", guard.route)
    # A CSP violation is logged by Chromium as a console error; said here too, with what broke
    # which directive (the listener runs as Playwright's, outside the page's policy).
    context.add_init_script(
        "document.addEventListener('securitypolicyviolation', (e) => console.error("
        "`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline code'}`));"
    )
    page = context.new_page()
    page.on("console", guard.console)
    page.on("pageerror", guard.page_error)
    page.on("response", guard.response)
    page.on("requestfailed", guard.request_failed)
    return page, guard


@pytest.fixture
def pages(
    browser: Browser, server: Server, request: pytest.FixtureRequest
) -> Iterator[list[tuple[Page, Guard]]]:
    """The test's pages (``new_page``); at the end each one's screenshot is saved and its guard
    must have recorded nothing."""
    opened: list[tuple[Page, Guard]] = []
    yield opened
    problems = []
    for number, (page, guard) in enumerate(opened):
        suffix = f"-{number}" if number else ""
        screenshot(page, f"{request.node.name}{suffix}")
        page.context.close()
        problems.extend(guard.problems)
    assert not problems, "\n".join(problems)


@pytest.fixture
def new_page(browser: Browser, server: Server, pages: list[tuple[Page, Guard]]):  # type: ignore[no-untyped-def]
    """A fresh browser context (no cookies) and its page, on the server's origin."""

    def make(**options: object) -> Page:
        page, guard = open_page(browser, f"http://127.0.0.1:{server.port}", **options)
        pages.append((page, guard))
        return page

    return make
