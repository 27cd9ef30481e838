"""Takes docs/console.png, the README's picture of the console: a real `eventcore serve` with a
day of events sent over HTTP, its dashboard opened in Debian's Chromium by Playwright.

Run from the repository root: `.venv/bin/python docs/console_screenshot.py`.
"""

from __future__ import annotations

import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import expect, sync_playwright
from tests.browser.support import CHROMIUM, Backend, log_in
from tests.support.processes import serve

OUTPUT = Path(__file__).resolve().parent / "console.png"
TYPES = {"page_view": 12, "click": 5, "signup": 1, "purchase": 1}


def main() -> None:
    shuffle = random.Random(16)  # noqa: S311 (made-up data, the same each run)
    with (
        tempfile.TemporaryDirectory() as scratch,
        serve(
            Path(scratch), Path(scratch), "serve", {"EVENTCORE_SIGNUPS_PER_HOUR_PER_ADDRESS": "0"}
        ) as server,
    ):
        backend = Backend(f"http://127.0.0.1:{server.port}")
        owner = backend.signup("Acme")
        project_id, key = backend.project_with_key(owner, "Website")
        backend.call(
            "PUT", f"/v1/projects/{project_id}/dimensions", owner, json={"properties": ["plan"]}
        )
        now = datetime.now(UTC)
        events = []
        for hour in range(24):
            # Busier in the day than at night.
            volume = 20 + int(60 * max(0.0, 1 - abs(hour - 10) / 10)) + shuffle.randint(0, 15)
            for n in range(volume):
                kind = shuffle.choices(list(TYPES), weights=list(TYPES.values()))[0]
                at = now - timedelta(hours=hour, minutes=shuffle.randint(0, 59))
                events.append(
                    {
                        "id": f"e{hour}-{n}",
                        "type": kind,
                        "timestamp": at.isoformat(),
                        "user_id": f"user-{shuffle.randint(1, 120)}",
                        "properties": {"plan": shuffle.choice(["free", "free", "team", "pro"])},
                    }
                )
        for start in range(0, len(events), 500):
            assert backend.ingest(key, events[start : start + 500]).status_code == 202
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=["--no-sandbox"]
            )
            page = browser.new_page(
                base_url=backend.base_url, viewport={"width": 1280, "height": 900}
            )
            log_in(page, owner)
            page.get_by_role("link", name="Website").click()
            expect(page.locator(".chart")).to_have_attribute("data-total", str(len(events)))
            expect(page.get_by_role("cell", name="free")).to_be_visible()
            page.screenshot(path=str(OUTPUT), full_page=True)
            browser.close()
        backend.http.close()
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
