"""The browser SDKs, unmodified, on a page of another origin, against a real `eventcore serve`:
Segment's analytics.js (@segment/analytics-next) and RudderStack's JavaScript SDK
(@rudderstack/analytics-js), at the versions tests/browser/sdk/package.json pins (`npm ci` there
installs them; `.ci/run` does). Each page is configured with eventcore's address and a write key
only. What they send is listed and counted with its persons; no request of the page fails or is
blocked by CORS; eventcore's own 503 (the broker away, on the distributed profile) and 429 (a
workspace over its rate) are retried by each SDK on its own and every event is stored once; a
refused origin and a revoked key are refused, readably."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Response, Route

from tests.browser.support import WAIT_MS, Backend, Person, screenshot

# The distributed stack (serve and a worker on a fresh database, queues and Redis prefix).
from tests.browser.test_distributed import distributed  # noqa: F401
from tests.integration.test_distributed_e2e import stack  # noqa: F401
from tests.support.processes import Server, run_command, serve, worker
from tests.support.proxy import FaultProxy, fault_proxy
from tests.support.rabbitmq import AMQP_URL, RABBITMQ_PORT

SDK_DIR = Path(__file__).parent / "sdk"
# What each SDK posts its messages to, under eventcore's address.
SEGMENT_PATHS = ("/v1/t", "/v1/p", "/v1/i", "/v1/g", "/v1/a", "/v1/s", "/v1/b")
RUDDERSTACK_PATHS = ("/v1/track", "/v1/page", "/v1/identify", "/v1/group", "/v1/alias")


class _Files(SimpleHTTPRequestHandler):
    """The fixture pages and the SDKs' files, quietly."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def pages_origin() -> Iterator[str]:
    """Another origin of 127.0.0.1 (its own free port) serving tests/browser/sdk."""
    for package in ("@segment/analytics-next", "@rudderstack/analytics-js"):
        if not (SDK_DIR / "node_modules" / package / "package.json").exists():
            pytest.fail(f"{package} is not installed: run `npm ci --prefix {SDK_DIR}`.")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Files, directory=str(SDK_DIR)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


@dataclass
class Watch:
    """What a page did: its requests to eventcore, and anything that went wrong (each entry of
    ``problems`` fails the test); ``expected`` answers (a refusal the test provokes) are kept
    apart."""

    origins: tuple[str, ...]
    api: str
    sent: list[tuple[str, str]] = field(default_factory=list)
    answers: list[tuple[int, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    refusals_expected: bool = False

    def route(self, route: Route) -> None:
        target = urlsplit(route.request.url)
        if f"{target.scheme}://{target.netloc}" in self.origins or target.scheme == "data":
            route.continue_()
        else:
            self.problems.append(f"request to another origin: {route.request.url}")
            route.abort("blockedbyclient")

    def request(self, request: Request) -> None:
        if request.url.startswith(self.api):
            self.sent.append((request.method, urlsplit(request.url).path))

    def console(self, message: ConsoleMessage) -> None:
        text = message.text
        if "CORS" in text or "Access-Control" in text:
            self.problems.append(f"CORS error: {text}")
        elif message.type == "error" and not self.refusals_expected:
            self.problems.append(f"console error: {text}")

    def response(self, response: Any) -> None:
        if response.url.startswith(self.api):
            self.answers.append((response.status, urlsplit(response.url).path))
            if response.status >= 400 and not self.refusals_expected:
                self.problems.append(f"{response.status} for {response.url}")

    def request_failed(self, request: Request) -> None:
        self.problems.append(f"request failed: {request.url} ({request.failure})")


@pytest.fixture
def open_sdk_page_of(
    browser: Browser, pages_origin: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., tuple[Page, Watch]]]:
    """``open(api, page_name, key, **query)``: the fixture page loaded with the address of the
    eventcore at ``api`` and the key; at the end, each page's screenshot is saved and its watch
    must hold no problem."""
    opened: list[tuple[Page, Watch]] = []

    def open_page(
        api: str, name: str, key: str, *, refusals_expected: bool = False, **query: str
    ) -> tuple[Page, Watch]:
        context = browser.new_context()
        context.set_default_timeout(WAIT_MS)
        watch = Watch((pages_origin, api), api, refusals_expected=refusals_expected)
        context.route("**/*", watch.route)
        page = context.new_page()
        context.on("request", watch.request)
        page.on("response", watch.response)
        page.on("console", watch.console)
        page.on("pageerror", lambda error: watch.problems.append(f"script error: {error}"))
        page.on("requestfailed", watch.request_failed)
        opened.append((page, watch))
        page.goto(f"{pages_origin}/{name}.html?{urlencode({'api': api, 'key': key, **query})}")
        return page, watch

    yield open_page
    problems = []
    for number, (page, watch) in enumerate(opened):
        screenshot(page, f"{request.node.name}-{number}")
        page.context.close()
        problems.extend(watch.problems)
    assert not problems, "\n".join(problems)


@pytest.fixture
def open_sdk_page(
    server: Server, open_sdk_page_of: Callable[..., tuple[Page, Watch]]
) -> Callable[..., tuple[Page, Watch]]:
    """``open(page_name, key, **query)``: as ``open_sdk_page_of``, on the embedded server."""
    return partial(open_sdk_page_of, f"http://127.0.0.1:{server.port}")


def eventually(page: Page, read: Callable[[], Any], done: Callable[[Any], bool]) -> Any:
    """What ``read`` gives once ``done`` holds for it, read again until then (WAIT_MS at most).

    The wait is the page's: Playwright's sync API routes the page's requests and reports its
    events only while it is called, never during a plain sleep."""
    deadline = time.monotonic() + WAIT_MS / 1000
    value = read()
    while not done(value) and time.monotonic() < deadline:
        page.wait_for_timeout(200)
        value = read()
    return value


def listed(backend: Backend, person: Person, project_id: str) -> list[dict[str, Any]]:
    answer = backend.call(
        "GET", "/v1/events", person, params={"project_id": project_id, "limit": 100}
    )
    events: list[dict[str, Any]] = answer["events"]
    return events


def wait_for_events(
    page: Page, backend: Backend, person: Person, project_id: str, count: int
) -> list[dict[str, Any]]:
    return eventually(  # type: ignore[no-any-return]
        page, lambda: listed(backend, person, project_id), lambda events: len(events) >= count
    )


def counted(backend: Backend, person: Person, project_id: str) -> tuple[dict[str, int], int]:
    """The totals per event type, and the unique users, of the last day."""
    params = {"project_id": project_id}
    types = backend.call("GET", "/v1/analytics/event-types", person, params=params)
    users = backend.call("GET", "/v1/analytics/users", person, params=params)
    return {t["event_type"]: t["count"] for t in types["event_types"]}, users["total"]


def new_project(backend: Backend, name: str) -> tuple[Person, str, str]:
    person = backend.signup(name)
    project_id, key = backend.project_with_key(person, name)
    return person, project_id, key


# --- analytics.js ------------------------------------------------------------------------------

SEGMENT_CALLS = """async () => {
    await analytics.identify("user-7", { plan: "pro" });
    await analytics.page("Docs", "Home", { path: "/docs" });
    await analytics.track("Signed Up", { plan: "pro" });
}"""


def test_analytics_js_delivers_identify_page_and_track(
    backend: Backend, open_sdk_page: Callable[..., tuple[Page, Watch]]
) -> None:
    """analytics.js loads its settings from eventcore, sends identify, page and track to the
    short paths, and they are listed and counted with their person."""
    person, project_id, key = new_project(backend, "Segment")
    page, watch = open_sdk_page("segment", key)

    page.evaluate(SEGMENT_CALLS)

    events = wait_for_events(page, backend, person, project_id, 3)
    assert sorted(e["type"] for e in events) == ["Signed Up", "identify", "page"]
    assert {e["user_id"] for e in events} == {"user-7"}
    assert len({e["anonymous_id"] for e in events}) == 1
    track = next(e for e in events if e["type"] == "Signed Up")
    assert track["properties"]["properties"] == {"plan": "pro"}
    assert "writeKey" not in json.dumps(events)
    types, users = counted(backend, person, project_id)
    assert types == {"Signed Up": 1, "identify": 1, "page": 1}
    assert users == 1
    assert ("GET", f"/v1/projects/{key}/settings") in watch.sent
    assert {path for method, path in watch.sent if method == "POST"} == {"/v1/i", "/v1/p", "/v1/t"}


def test_analytics_js_batching_mode_delivers_in_batches(
    backend: Backend, open_sdk_page: Callable[..., tuple[Page, Watch]]
) -> None:
    """In its batching mode analytics.js posts its messages together to /v1/b."""
    person, project_id, key = new_project(backend, "Batching")
    page, watch = open_sdk_page("segment", key, batching="1")

    page.evaluate(
        """async () => {
            analytics.identify("user-8");
            analytics.track("Viewed", { n: 1 });
            analytics.track("Viewed", { n: 2 });
        }"""
    )

    events = wait_for_events(page, backend, person, project_id, 3)
    assert sorted(e["type"] for e in events) == ["Viewed", "Viewed", "identify"]
    assert {e["user_id"] for e in events} == {"user-8"}
    assert counted(backend, person, project_id) == ({"Viewed": 2, "identify": 1}, 1)
    posts = [path for method, path in watch.sent if method == "POST"]
    assert set(posts) == {"/v1/b"}, posts


# --- RudderStack -------------------------------------------------------------------------------

RUDDERSTACK_CALLS = """async () => {
    await new Promise((ready) => rudderanalytics.ready(ready));
    rudderanalytics.identify("user-9", { plan: "pro" });
    rudderanalytics.page("Docs", "Home", { path: "/docs" });
    rudderanalytics.track("Signed Up", { plan: "pro" });
}"""


def test_rudderstack_delivers_identify_page_and_track(
    backend: Backend, open_sdk_page: Callable[..., tuple[Page, Watch]]
) -> None:
    """RudderStack's SDK loads its source configuration from eventcore, sends identify, page and
    track to /v1/<type> with Basic auth, and they are listed and counted with their person."""
    person, project_id, key = new_project(backend, "Rudder")
    page, watch = open_sdk_page("rudderstack", key)

    page.evaluate(RUDDERSTACK_CALLS)

    events = wait_for_events(page, backend, person, project_id, 3)
    assert sorted(e["type"] for e in events) == ["Signed Up", "identify", "page"]
    assert {e["user_id"] for e in events} == {"user-9"}
    assert len({e["anonymous_id"] for e in events}) == 1
    types, users = counted(backend, person, project_id)
    assert types == {"Signed Up": 1, "identify": 1, "page": 1}
    assert users == 1
    assert any(path.startswith("/sourceConfig") for _, path in watch.sent), watch.sent
    posts = {path for method, path in watch.sent if method == "POST"}
    assert posts == {"/v1/identify", "/v1/page", "/v1/track"}, posts


# --- a 503 during delivery ---------------------------------------------------------------------


def answer_503_after_storing(page: Page, api: str, paths: tuple[str, ...]) -> list[str]:
    """The first request to each of ``paths`` reaches eventcore (which stores it) but the page
    gets a 503 instead of its answer, as when the answer is lost to an outage after the commit;
    returns the paths so answered."""
    failed: list[str] = []

    def handle(route: Route) -> None:
        path = urlsplit(route.request.url).path
        if route.request.method != "POST" or path in failed:
            route.continue_()
            return
        reached = route.fetch()
        assert reached.status == 200, reached.text()
        failed.append(path)
        route.fulfill(
            status=503,
            headers={
                "Access-Control-Allow-Origin": "*",
                "Content-Type": "application/json",
                "Retry-After": "1",
            },
            body=json.dumps({"code": "queue_unavailable", "message": "Try again."}),
        )

    for path in paths:
        page.route(f"{api}{path}", handle)
    return failed


@pytest.mark.parametrize("sdk", ["segment", "rudderstack"])
def test_each_sdk_resends_a_delivery_whose_answer_was_lost_and_it_is_stored_once(
    backend: Backend,
    server: Server,
    open_sdk_page: Callable[..., tuple[Page, Watch]],
    sdk: str,
) -> None:
    """A 503 to a delivery that eventcore had stored (its answer lost on the way back): the SDK
    sends it again, and messageId idempotency stores and counts it once."""
    person, project_id, key = new_project(backend, f"Lost answer {sdk}")
    api = f"http://127.0.0.1:{server.port}"
    page, watch = open_sdk_page(sdk, key, refusals_expected=True)
    paths = SEGMENT_PATHS if sdk == "segment" else RUDDERSTACK_PATHS
    failed = answer_503_after_storing(page, api, paths)

    page.evaluate(track_paid(sdk))

    tracked = TRACKED[sdk]
    eventually(page, lambda: watch.sent.count(("POST", tracked)), lambda n: n >= 2)
    assert failed == [tracked]
    assert watch.sent.count(("POST", tracked)) >= 2, watch.sent
    events = wait_for_events(page, backend, person, project_id, 1)
    assert [e["type"] for e in events] == ["Paid"]
    assert counted(backend, person, project_id)[0] == {"Paid": 1}


TRACKED = {"segment": "/v1/t", "rudderstack": "/v1/track"}


def track_paid(sdk: str, count: int = 1) -> str:
    """The page's script that tracks ``count`` "Paid" events with the SDK (once it is ready)."""
    if sdk == "segment":
        return f"""async () => {{
            for (let n = 0; n < {count}; n++) analytics.track("Paid", {{ n }});
        }}"""
    return f"""async () => {{
        await new Promise((ready) => rudderanalytics.ready(ready));
        for (let n = 0; n < {count}; n++) rudderanalytics.track("Paid", {{ n }});
    }}"""


@dataclass
class Answers:
    """Every answer of eventcore to the page's deliveries (POSTs), in order."""

    api: str
    responses: list[Response] = field(default_factory=list)

    def __call__(self, response: Response) -> None:
        if response.url.startswith(self.api) and response.request.method == "POST":
            self.responses.append(response)

    def statuses(self) -> list[int]:
        return [response.status for response in self.responses]

    def refusals(self, status: int) -> list[Response]:
        return [response for response in self.responses if response.status == status]


@dataclass
class RefusedRun:
    """A page of ``sdk`` sending with a new project's key, which eventcore may refuse."""

    sdk: str
    backend: Backend
    person: Person
    project_id: str
    page: Page
    watch: Watch
    answers: Answers

    def assert_each_stored_once(self, count: int) -> None:
        """The ``count`` events of ``track_paid`` are listed and counted, each exactly once."""
        events = wait_for_events(self.page, self.backend, self.person, self.project_id, count)
        assert sorted(e["properties"]["properties"]["n"] for e in events) == list(range(count))
        assert counted(self.backend, self.person, self.project_id)[0] == {"Paid": count}

    def assert_refused_then_resent(self, status: int, code: str, *, sent: int) -> None:
        """eventcore refused some of the page's ``sent`` deliveries with ``status`` (its error in
        the Segment routes' shape, readable by the page: the code and a Retry-After) and
        accepted the rest, and the SDK posted each refused one again by itself."""
        statuses = self.answers.statuses()
        refusals = self.answers.refusals(status)
        assert refusals, f"eventcore answered no {status}: {statuses}"
        for refusal in refusals:
            assert refusal.json()["code"] == code, refusal.text()
            assert int(refusal.headers["retry-after"]) >= 1, refusal.headers
            assert refusal.headers["access-control-allow-origin"], refusal.headers
        assert all(s == status or s < 300 for s in statuses), statuses
        posted = [path for method, path in self.watch.sent if method == "POST"]
        assert set(posted) == {TRACKED[self.sdk]}, posted
        assert len(posted) > sent, posted  # the refused deliveries were posted again


@contextlib.contextmanager
def refused_page(
    open_sdk_page_of: Callable[..., tuple[Page, Watch]], api: str, sdk: str, name: str
) -> Iterator[RefusedRun]:
    """A new project on the eventcore at ``api`` and the ``sdk`` page sending with its key,
    whose refusals are expected (and recorded in ``answers``)."""
    backend = Backend(api)
    try:
        person, project_id, key = new_project(backend, name)
        page, watch = open_sdk_page_of(api, sdk, key, refusals_expected=True)
        answers = Answers(api)
        page.on("response", answers)
        yield RefusedRun(sdk, backend, person, project_id, page, watch, answers)
    finally:
        backend.http.close()


@pytest.fixture
def amqp_proxy() -> Iterator[FaultProxy]:
    """A proxy to RabbitMQ that the test cuts (tests/support/proxy.py)."""
    with fault_proxy(RABBITMQ_PORT) as proxy:
        yield proxy


@pytest.fixture
def distributed_through_proxy(
    stack: tuple[dict[str, str], str],  # noqa: F811
    amqp_proxy: FaultProxy,
    tmp_path: Path,
) -> Iterator[Server]:
    """The distributed profile whose `serve` reaches RabbitMQ through ``amqp_proxy`` only (its
    worker directly): cutting the proxy makes the broker vanish for the API alone."""
    settings, _ = stack
    settings = {**settings, "EVENTCORE_SIGNUPS_PER_HOUR_PER_ADDRESS": "0"}
    proxied = AMQP_URL.replace(f":{RABBITMQ_PORT}/", f":{amqp_proxy.port}/")
    assert proxied != AMQP_URL
    assert run_command(["migrate"], workdir=tmp_path, settings=settings).returncode == 0
    with (
        serve(tmp_path, tmp_path, "api", {**settings, "EVENTCORE_AMQP_URL": proxied}) as api,
        worker(tmp_path, tmp_path, "worker", settings),
    ):
        yield api


@pytest.mark.integration
@pytest.mark.parametrize("sdk", ["segment", "rudderstack"])
def test_each_sdk_retries_a_503_of_eventcore_and_every_event_is_stored_once(
    amqp_proxy: FaultProxy,
    distributed_through_proxy: Server,
    open_sdk_page_of: Callable[..., tuple[Page, Watch]],
    sdk: str,
) -> None:
    """RabbitMQ unreachable for `serve` while the SDK sends: eventcore itself answers 503
    (queue_unavailable, Retry-After) and stores nothing; once the broker is reachable again the
    SDK sends again on its own (nothing in the page asks it to), and each event is committed by
    the worker, listed and counted exactly once."""
    api = f"http://127.0.0.1:{distributed_through_proxy.port}"
    with refused_page(open_sdk_page_of, api, sdk, f"Broker away {sdk}") as run:
        run.page.evaluate(track_paid(sdk, 0))  # the SDK is loaded and ready

        amqp_proxy.cut()
        run.page.evaluate(track_paid(sdk, 2))
        eventually(run.page, run.answers.statuses, lambda statuses: 503 in statuses)
        amqp_proxy.restore()

        run.assert_each_stored_once(2)
        run.assert_refused_then_resent(503, "queue_unavailable", sent=2)


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """An embedded `eventcore serve` whose workspaces may send one event a second, one at once."""
    workdir = tmp_path_factory.mktemp("rate")
    settings = {
        "EVENTCORE_SIGNUPS_PER_HOUR_PER_ADDRESS": "0",
        "EVENTCORE_RATE_LIMIT_EVENTS_PER_SECOND": "1",
        "EVENTCORE_RATE_LIMIT_BURST": "1",
    }
    with serve(workdir, workdir, "serve", settings) as running:
        yield running


@pytest.mark.parametrize("sdk", ["segment", "rudderstack"])
def test_each_sdk_retries_a_429_and_every_event_is_stored_once(
    slow_server: Server, open_sdk_page_of: Callable[..., tuple[Page, Watch]], sdk: str
) -> None:
    """Three events sent at once to a workspace allowed one a second: eventcore answers 429
    (rate_limited, Retry-After) to those over its rate, the SDK sends them again on its own, and
    each is stored and counted once as the rate allows."""
    api = f"http://127.0.0.1:{slow_server.port}"
    with refused_page(open_sdk_page_of, api, sdk, f"Over the rate {sdk}") as run:
        run.page.evaluate(track_paid(sdk, 3))

        run.assert_each_stored_once(3)
        run.assert_refused_then_resent(429, "rate_limited", sent=3)


# --- refusals ----------------------------------------------------------------------------------


def allow_origins(backend: Backend, person: Person, project_id: str, origins: list[str]) -> None:
    backend.call("PATCH", f"/v1/projects/{project_id}", person, json={"allowed_origins": origins})


@pytest.mark.parametrize("sdk", ["segment", "rudderstack"])
def test_a_page_of_an_origin_the_project_does_not_allow_is_refused(
    backend: Backend,
    open_sdk_page: Callable[..., tuple[Page, Watch]],
    pages_origin: str,
    sdk: str,
) -> None:
    """With the project's origins set to others, the SDK's configuration is refused with a 403
    the page reads (no CORS error), and nothing is stored; with its origin allowed, it sends."""
    person, project_id, key = new_project(backend, f"Origins {sdk}")
    allow_origins(backend, person, project_id, ["https://www.example.com"])

    page, watch = open_sdk_page(sdk, key, refusals_expected=True)
    refused = eventually(page, lambda: list(watch.answers), lambda answers: len(answers) >= 1)
    # A message posted as analytics.js posts it, from this page: the refusal is readable.
    status = page.evaluate(
        """async ([url, key]) => {
            const message = { writeKey: key, event: "Refused", anonymousId: "a-1" };
            const answer = await fetch(url, { method: "POST", body: JSON.stringify(message) });
            return answer.status;
        }""",
        [f"{watch.api}/v1/t", key],
    )

    assert [status for status, _ in refused] == [403], refused
    assert status == 403
    assert listed(backend, person, project_id) == []
    allow_origins(backend, person, project_id, ["https://www.example.com", pages_origin])
    allowed, _ = open_sdk_page(sdk, key)
    if sdk == "segment":
        allowed.evaluate('async () => { await analytics.track("Allowed"); }')
    else:
        allowed.evaluate(
            """async () => {
                await new Promise((ready) => rudderanalytics.ready(ready));
                rudderanalytics.track("Allowed");
            }"""
        )
    assert [e["type"] for e in wait_for_events(allowed, backend, person, project_id, 1)] == [
        "Allowed"
    ]


@pytest.mark.parametrize("sdk", ["segment", "rudderstack"])
def test_a_revoked_key_is_refused(
    backend: Backend, open_sdk_page: Callable[..., tuple[Page, Watch]], sdk: str
) -> None:
    """A revoked key's configuration is a 401 the page reads; nothing is sent or stored."""
    person, project_id, key = new_project(backend, f"Revoked {sdk}")
    keys = backend.call("GET", f"/v1/projects/{project_id}/api-keys", person)["api_keys"]
    backend.call("DELETE", f"/v1/api-keys/{keys[0]['id']}", person)

    page, watch = open_sdk_page(sdk, key, refusals_expected=True)
    refused = eventually(page, lambda: list(watch.answers), lambda answers: len(answers) >= 1)

    assert [status for status, _ in refused] == [401], refused
    assert [method for method, _ in watch.sent] == ["GET"]
    assert listed(backend, person, project_id) == []


# --- the distributed profile -------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("sdk", ["segment", "rudderstack"])
def test_each_sdk_delivers_on_the_distributed_profile(
    distributed: Server,  # noqa: F811
    open_sdk_page_of: Callable[..., tuple[Page, Watch]],
    sdk: str,
) -> None:
    """`serve` and a `worker` on PostgreSQL, Redis and RabbitMQ: each SDK's configuration,
    messages and CORS answers are the same, and what it sends is committed by the worker,
    listed and counted with its person. (The stack is asked for before the browser: it sets up
    with asyncio.run, which cannot run beside Playwright's loop.)"""
    api = f"http://127.0.0.1:{distributed.port}"
    backend = Backend(api)
    try:
        person, project_id, key = new_project(backend, f"Distributed {sdk}")
        page, _ = open_sdk_page_of(api, sdk, key)

        page.evaluate(SEGMENT_CALLS if sdk == "segment" else RUDDERSTACK_CALLS)

        events = wait_for_events(page, backend, person, project_id, 3)
        assert sorted(e["type"] for e in events) == ["Signed Up", "identify", "page"]
        assert len({e["user_id"] for e in events}) == 1
        assert counted(backend, person, project_id) == (
            {"Signed Up": 1, "identify": 1, "page": 1},
            1,
        )
    finally:
        backend.http.close()


def test_rudderstack_beacon_mode_delivers_with_send_beacon(
    backend: Backend, server: Server, open_sdk_page: Callable[..., tuple[Page, Watch]]
) -> None:
    """With `useBeacon`, RudderStack sends its batch with navigator.sendBeacon (no header: the
    key in the query) to /beacon/v1/batch, at the latest when the page is left; it is stored."""
    person, project_id, key = new_project(backend, "Beacon")
    page, watch = open_sdk_page("rudderstack", key, beacon="1")

    page.evaluate(
        """async () => {
            await new Promise((ready) => rudderanalytics.ready(ready));
            rudderanalytics.track("Left", { via: "beacon" });
        }"""
    )
    page.goto("about:blank")

    events = wait_for_events(page, backend, person, project_id, 1)
    assert [e["type"] for e in events] == ["Left"]
    # Playwright does not report a beacon among the page's requests; the server's log does.
    lines = server.log.read_text().splitlines()
    logged = [json.loads(line) for line in lines if line.startswith("{")]
    beacons = [
        entry["status"]
        for entry in logged
        if entry.get("route") == "/beacon/v1/batch"
        and entry.get("workspace_id") == person.workspace_id
    ]
    assert beacons == [200], beacons
    assert [method for method, _ in watch.sent] == ["GET"], watch.sent  # no XHR delivery
