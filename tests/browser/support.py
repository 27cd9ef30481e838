"""The browser tests' harness: a real `eventcore serve`, Debian's Chromium driven by Playwright,
and a page that fails the test on any request to another origin, any script or CSP error and
any failed load of the console's own files."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import ConsoleMessage, Page, Request, Response, Route

from tests.http.support import PASSWORD, unique_email

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
# How long the page may take to show what a test waits for (the embedded profile commits
# before its 202; the counts are read back at once).
WAIT_MS = 15_000
# The browser's own log line for an answer of 4xx to a request of the page: expected from the
# API (a session probe before login answers 401), never from the console's files.
_FAILED_LOAD = re.compile(r"^Failed to load resource: the server responded with a status of 4\d\d")


@dataclass
class Guard:
    """What went wrong in a page: each entry fails the test at its end."""

    origin: str
    problems: list[str] = field(default_factory=list)

    def route(self, route: Route) -> None:
        """Every request of the page: to the server's origin it goes on, to any other it is
        refused and recorded."""
        request = route.request
        target = urlsplit(request.url)
        if f"{target.scheme}://{target.netloc}" == self.origin or target.scheme in ("data", "blob"):
            route.continue_()
        else:
            self.problems.append(f"request to another origin: {request.method} {request.url}")
            route.abort("blockedbyclient")

    def console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        where = urlsplit(str(message.location.get("url", ""))).path
        if _FAILED_LOAD.match(message.text) and where.startswith("/v1/"):
            return
        self.problems.append(f"console error: {message.text} ({message.location})")

    def page_error(self, error: Exception) -> None:
        self.problems.append(f"uncaught script error: {error}")

    def response(self, response: Response) -> None:
        path = urlsplit(response.url).path
        if response.status >= 500 or (response.status >= 400 and not path.startswith("/v1/")):
            self.problems.append(f"{response.status} for {response.request.method} {response.url}")

    def request_failed(self, request: Request) -> None:
        failure = request.failure or ""
        # An EventSource closed by the page, or a navigation away, cancels its request.
        if "ERR_ABORTED" not in failure:
            self.problems.append(f"request failed: {request.url} ({failure})")


@dataclass
class Person:
    """A user of the console, signed up over the API (or in the console by the test)."""

    email: str
    password: str = PASSWORD
    token: str = ""
    user_id: str = ""
    workspace_id: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Backend:
    """The server under test, called over HTTP as a script or an SDK would."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=10.0)

    def signup(self, workspace: str, label: str = "owner") -> Person:
        person = Person(unique_email(label))
        answer = self.http.post(
            "/v1/auth/signup",
            json={"email": person.email, "password": person.password, "workspace": workspace},
        )
        assert answer.status_code == 201, answer.text
        body = answer.json()
        person.token, person.user_id = body["access_token"], body["user_id"]
        person.workspace_id = body["workspace_id"]
        return person

    def call(self, method: str, path: str, person: Person, **kwargs: Any) -> Any:
        answer = self.http.request(method, path, headers=person.headers, **kwargs)
        assert answer.status_code < 300, answer.text
        return answer.json() if answer.content else None

    def project_with_key(self, person: Person, name: str) -> tuple[str, str]:
        project = self.call("POST", "/v1/projects", person, json={"name": name})
        key = self.call(
            "POST", f"/v1/projects/{project['id']}/api-keys", person, json={"name": "k"}
        )
        return project["id"], key["key"]

    def ingest(self, key: str, events: list[dict[str, Any]]) -> httpx.Response:
        return self.http.post("/v1/ingest", json={"events": events}, headers={"X-API-Key": key})


def log_in(page: Page, person: Person) -> None:
    """Log in through the console's form, with the keyboard's Enter."""
    page.goto("/login")
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_label("Password").press("Enter")
    page.get_by_role("heading", name="Projects").wait_for()


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
