"""The console on the distributed profile: `serve` and a `worker` on PostgreSQL, Redis and
RabbitMQ, driven in Chromium as on the embedded one."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import open_page
from tests.browser.support import Backend, screenshot
from tests.http.support import unique_email

# The stack's settings (a fresh database, unique queues and Redis prefix, cleaned up after).
from tests.integration.test_distributed_e2e import stack  # noqa: F401
from tests.support.processes import Server, eventually, run_command, serve, worker

pytestmark = pytest.mark.integration


@pytest.fixture
def distributed(stack: tuple[dict[str, str], str], tmp_path: Path) -> Iterator[Server]:  # noqa: F811
    settings, _ = stack
    settings = {**settings, "EVENTCORE_SIGNUPS_PER_HOUR_PER_ADDRESS": "0"}
    assert run_command(["migrate"], workdir=tmp_path, settings=settings).returncode == 0
    with (
        serve(tmp_path, tmp_path, "api", settings) as api,
        worker(tmp_path, tmp_path, "worker", settings),
    ):
        yield api


def test_the_console_on_the_distributed_profile(distributed: Server, browser: Browser) -> None:
    """Sign up, a project and a key in the console; events sent with the key, committed by the
    worker, appear in the dashboard and the events list. (The stack is asked for before the
    browser: it sets up with asyncio.run, which cannot run beside Playwright's loop.)"""
    origin = f"http://127.0.0.1:{distributed.port}"
    page, guard = open_page(browser, origin)
    backend = Backend(origin)
    try:
        page.goto("/signup")
        page.get_by_label("Email").fill(unique_email("distributed"))
        page.get_by_label("Password").fill("correct horse battery staple")
        page.get_by_label("Workspace name").fill("Distributed")
        page.get_by_role("button", name="Create account").click()
        page.get_by_label("Project name").fill("Queue site")
        page.get_by_role("button", name="Create project").click()
        page.get_by_label("Key name").fill("server")
        page.get_by_role("button", name="Create key").click()
        key = page.get_by_label("New API key")
        expect(key).to_have_text(re.compile(r"^ek_"))
        events = [{"id": f"d{n}", "type": "queued"} for n in range(7)]
        assert backend.ingest(key.inner_text(), events).status_code == 202

        def listed() -> bool:
            page.get_by_role("link", name="Events").click()
            page.get_by_role("heading", name="Events").wait_for()
            page.wait_for_load_state("networkidle")
            return page.locator("tbody tr").count() == 7

        eventually(listed, within=20, what="the worker's commit shown in the events list")
        page.get_by_role("link", name="Dashboard").click()
        expect(page.locator(".chart")).to_have_attribute("data-total", "7")
        expect(page.get_by_role("cell", name="queued")).to_be_visible()
        screenshot(page, "distributed")
    finally:
        page.context.close()
        backend.http.close()
    assert not guard.problems, "\n".join(guard.problems)
