"""The console in a real browser against a real server: what a newcomer and a team see."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import Error as PlaywrightError

from tests.browser.conftest import open_page
from tests.browser.support import Backend, log_in, screenshot
from tests.http.support import unique_email
from tests.support.processes import Server, eventually

NewPage = Callable[..., Page]


def new_key(page: Page) -> str:
    """Create an API key on the project's keys page; the secret the console shows once."""
    page.get_by_label("Key name").fill("website")
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_label("New API key")
    expect(key).to_have_text(re.compile(r"^ek_"))
    return key.inner_text()


def test_a_newcomer_signs_up_creates_a_key_and_sees_the_events_arrive(
    new_page: NewPage, backend: Backend
) -> None:
    """Sign up (an API error shown first), create a project and a key, send events with the key
    over HTTP, and see them in the chart, the tables and the paged events list."""
    page = new_page(permissions=["clipboard-read", "clipboard-write"])
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.get_by_role("link", name="Sign up").first.click()
    email = unique_email("newcomer")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("password")
    page.get_by_label("Workspace name").fill("Newcomer Inc")
    page.get_by_role("button", name="Create account").click()
    # The server's own message for a weak password, shown where the form is.
    expect(page.get_by_role("alert").filter(has_text="weak_password")).to_be_visible()
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Create account").click()

    expect(page.get_by_text("No project yet")).to_be_visible()
    page.get_by_label("Project name").fill("Web shop")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", name="Web shop")).to_be_visible()
    expect(page.get_by_text("No API key yet")).to_be_visible()
    key = new_key(page)
    expect(page.get_by_text(f"x-api-key: {key}")).to_be_visible()
    page.get_by_role("button", name="Copy key").click()
    expect(page.get_by_role("status").filter(has_text="Copied.")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == key

    events = [
        {"id": f"view-{n}", "type": "page_view", "user_id": f"u{n % 3}", "properties": {"n": n}}
        for n in range(52)
    ] + [{"id": "signup-1", "type": "signup", "user_id": "u1"}]
    answer = backend.ingest(key, events)
    assert answer.status_code == 202, answer.text
    assert answer.json()["accepted"] == 53

    page.get_by_role("link", name="Dashboard").click()
    expect(page.get_by_text(re.compile(r"^53 events from"))).to_be_visible()
    chart = page.locator(".chart")
    expect(chart).to_have_attribute("data-total", "53")
    expect(chart.locator("canvas")).to_be_visible()
    types = page.locator(".card", has=page.get_by_role("heading", name="Event types"))
    expect(types.get_by_role("row", name="page_view 52")).to_be_visible()
    expect(types.get_by_role("row", name="signup 1")).to_be_visible()
    users = page.locator(".card", has=page.get_by_role("heading", name="Unique users"))
    expect(users.locator(".big")).to_have_text("3")
    page.get_by_label("Event type").select_option("signup")
    expect(page.get_by_text(re.compile(r"^1 event of type signup"))).to_be_visible()
    page.get_by_label("Range").select_option("7d")
    expect(page.get_by_label("Granularity")).to_have_value("hour")
    screenshot(page, "dashboard")

    page.get_by_role("link", name="Events").click()
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(50)
    page.get_by_role("button", name="Load more").click()
    expect(rows).to_have_count(53)
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    page.get_by_label("Event type").fill("signup")
    page.get_by_role("button", name="Apply filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("signup-1")


def test_a_key_revoked_in_the_console_is_refused_at_ingest(
    new_page: NewPage, backend: Backend
) -> None:
    """Revoking (after confirming) stops the key: ingest with it answers 401."""
    owner = backend.signup("Revokers")
    project_id, key = backend.project_with_key(owner, "App")
    assert backend.ingest(key, [{"type": "open"}]).status_code == 202
    page = new_page()
    log_in(page, owner)
    page.goto(f"/projects/{project_id}/keys")
    page.get_by_role("button", name="Revoke key k").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke key").click()
    expect(page.get_by_role("cell", name=re.compile("^revoked"))).to_be_visible()
    eventually(
        lambda: backend.ingest(key, [{"type": "open"}]).status_code == 401,
        within=5,
        what="the revoked key refused",
    )


def test_a_viewer_sees_no_management_controls(new_page: NewPage, backend: Backend) -> None:
    """An invited viewer accepts in the console, switches to the workspace, reads its project
    and finds no control to create, delete, invite, or manage keys and settings."""
    owner = backend.signup("Team")
    project_id, key = backend.project_with_key(owner, "Team site")
    backend.ingest(key, [{"type": "page_view"}])
    viewer = backend.signup("Viewer's own", label="viewer")
    invitation = backend.call(
        "POST", "/v1/members", owner, json={"email": viewer.email, "role": "viewer"}
    )
    page = new_page()
    log_in(page, viewer)
    page.goto(f"/invitations/{invitation['token']}")
    page.get_by_role("button", name="Accept invitation").click()
    expect(page.get_by_role("link", name="Team site")).to_be_visible()
    expect(page.get_by_label("Workspace")).to_have_value(owner.workspace_id)
    expect(page.get_by_role("button", name="Create project")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^Delete"))).to_have_count(0)

    page.get_by_role("link", name="Team site").click()
    expect(page.get_by_text(re.compile(r"^1 event from"))).to_be_visible()
    tabs = page.get_by_role("navigation", name="Project")
    expect(tabs.get_by_role("link")).to_have_text(["Dashboard", "Live", "Events"])
    screenshot(page, "viewer")
    page.goto(f"/projects/{project_id}/keys")
    expect(page.get_by_text("Your role does not give access to this page.")).to_be_visible()
    page.get_by_role("link", name="Members").click()
    expect(page.get_by_role("cell", name=f"{viewer.email} (you)")).to_be_visible()
    expect(page.get_by_role("button", name="Create invitation")).to_have_count(0)
    expect(page.get_by_role("combobox", name=re.compile("^Role of"))).to_have_count(0)
    expect(page.get_by_role("button", name="Remove")).to_have_count(0)
    expect(page.get_by_role("button", name="Leave")).to_have_count(1)

    # Back to the viewer's own workspace, where it is the owner.
    page.get_by_label("Workspace").select_option(viewer.workspace_id)
    expect(page.get_by_role("button", name="Create project")).to_be_visible()


def test_a_second_workspace_s_data_never_appears(new_page: NewPage, backend: Backend) -> None:
    """Signed in to one workspace, nothing of another shows, even by a deep link to it."""
    other = backend.signup("Other Corp")
    other_project, other_key = backend.project_with_key(other, "Secret project")
    backend.ingest(other_key, [{"type": "confidential_event"}])
    me = backend.signup("Mine")
    mine, my_key = backend.project_with_key(me, "My project")
    backend.ingest(my_key, [{"type": "my_event"}])

    page = new_page()
    log_in(page, me)
    expect(page.get_by_role("link", name="My project")).to_be_visible()
    expect(page.get_by_text("Secret project")).to_have_count(0)
    page.goto(f"/projects/{other_project}")
    expect(page.get_by_role("heading", name="Project not found")).to_be_visible()
    page.goto(f"/projects/{mine}")
    expect(page.get_by_role("cell", name="my_event")).to_be_visible()
    page.goto(f"/projects/{mine}/events")
    expect(page.locator("tbody tr")).to_have_count(1)
    body = page.locator("body").inner_text()
    assert "confidential_event" not in body
    assert "Secret project" not in body
    # The page's own session asking for the other project's events: not found.
    status = page.evaluate(
        "async (id) => (await fetch(`/v1/events?project_id=${id}`)).status", other_project
    )
    assert status == 404


def test_the_console_fits_a_phone(new_page: NewPage, backend: Backend) -> None:
    """At a phone's width nothing of the page is wider than the screen."""
    owner = backend.signup("Phones")
    backend.project_with_key(owner, "Mobile app")
    page = new_page(viewport={"width": 390, "height": 844})
    log_in(page, owner)
    page.get_by_role("link", name="Mobile app").click()
    expect(page.locator(".chart canvas")).to_be_visible()
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= 390


@pytest.mark.needs_live
def test_the_live_view_shows_events_as_they_arrive(new_page: NewPage, backend: Backend) -> None:
    """Events sent after the live view opens appear; paused, they are held and counted; resumed,
    they appear; a filter shows only its type."""
    owner = backend.signup("Live")
    project_id, key = backend.project_with_key(owner, "Live site")
    page = new_page()
    log_in(page, owner)
    page.goto(f"/projects/{project_id}/live")
    expect(page.get_by_role("status").filter(has_text="Live:")).to_be_visible()
    backend.ingest(key, [{"id": "a1", "type": "page_view", "properties": {"path": "/a"}}])
    live = page.get_by_role("list", name="Arriving events")
    expect(live.get_by_role("listitem")).to_have_count(1)
    expect(live).to_contain_text("page_view")
    page.get_by_role("button", name="Pause").click()
    backend.ingest(key, [{"id": "a2", "type": "signup"}])
    expect(page.get_by_text("1 new event held")).to_be_visible()
    expect(live.get_by_role("listitem")).to_have_count(1)
    page.get_by_role("button", name="Resume").click()
    expect(live.get_by_role("listitem")).to_have_count(2)
    page.get_by_label("Event type").fill("signup")
    page.get_by_role("button", name="Apply filter").click()
    expect(page.get_by_role("status").filter(has_text="Live:")).to_be_visible()
    backend.ingest(key, [{"id": "a3", "type": "page_view"}, {"id": "a4", "type": "signup"}])
    expect(live.get_by_role("listitem")).to_have_count(1)
    expect(live).to_contain_text("signup")
    screenshot(page, "live")


def test_logging_out_ends_the_session(new_page: NewPage, backend: Backend) -> None:
    """After logging out, the console asks to log in again and the API refuses the old page."""
    owner = backend.signup("Leavers")
    page = new_page()
    log_in(page, owner)
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    cookies = {c["name"] for c in page.context.cookies()}
    assert "eventcore_session" not in cookies
    status = page.evaluate("async () => (await fetch('/v1/projects')).status")
    assert status == 401
    page.goto("/projects")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fprojects$"))


def test_the_guard_reports_other_origins_and_policy_violations(
    browser: Browser, server: Server
) -> None:
    """The harness itself: a request to another host is blocked and reported, and so are an
    inline script and an inline style the page's policy refuses."""
    page, guard = open_page(browser, f"http://127.0.0.1:{server.port}")
    try:
        page.goto("/login")
        page.get_by_role("heading", name="Log in").wait_for()
        # The page's policy refuses this request before it is sent.
        page.evaluate("fetch('http://example.com/beacon').catch(() => {})")
        page.evaluate(
            """() => {
                const script = document.createElement('script');
                script.textContent = 'window.injected = 1';
                document.body.append(script);
                document.body.setAttribute('style', 'color: red');
            }"""
        )
        page.wait_for_timeout(500)
        assert page.evaluate("window.injected") is None
        # The route guard refuses a navigation away, which no policy of the page covers.
        with pytest.raises(PlaywrightError):
            page.goto("http://example.com/away")
    finally:
        page.context.close()
    problems = "\n".join(guard.problems)
    assert "CSP violation: connect-src blocked http://example.com/beacon" in problems
    assert "request to another origin: GET http://example.com/away" in problems
    assert "CSP violation: script-src" in problems
    assert "CSP violation: style-src" in problems


def tab_to(page: Page, name: str, limit: int = 30) -> None:
    """Press Tab until the focused element's accessible name (its label or text) is ``name``."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => { const e = document.activeElement;"
            " return (e.labels && e.labels[0] ? e.labels[0].textContent : e.textContent).trim(); }"
        )
        if focused == name:
            return
    pytest.fail(f"{name!r} was not reached with Tab")


def test_the_console_works_from_the_keyboard(new_page: NewPage, backend: Backend) -> None:
    """The skip link comes first; logging in and creating a project need only Tab, typing and
    Enter; the focused control is outlined."""
    owner = backend.signup("Keyboard")
    page = new_page()
    page.goto("/login")
    page.get_by_role("heading", name="Log in").wait_for()
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    tab_to(page, "Email")
    page.keyboard.type(owner.email)
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    tab_to(page, "Password")
    page.keyboard.type(owner.password)
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Projects").wait_for()
    tab_to(page, "Project name")
    page.keyboard.type("Typed")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Typed")).to_be_visible()


def test_an_ended_session_sends_to_the_login_page_with_the_reason(
    new_page: NewPage, backend: Backend
) -> None:
    """When the API stops taking the session (here its cookies are gone), the next page asks
    to log in again and shows the API's error."""
    owner = backend.signup("Expiring")
    page = new_page()
    log_in(page, owner)
    page.context.clear_cookies()
    page.get_by_role("link", name="Members").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_role("alert").filter(has_text="unauthorized")).to_be_visible()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()


def test_project_settings_retention_dimensions_and_deletions(
    new_page: NewPage, backend: Backend
) -> None:
    """Retention and dimensions are saved (an API refusal shown with its message), the
    dashboard breaks events down by the declared dimension, and a deletion request is listed."""
    owner = backend.signup("Settings")
    project_id, key = backend.project_with_key(owner, "Shop")
    events = [
        {"id": f"s{n}", "type": "buy", "user_id": f"p{n % 2}", "properties": {"plan": plan}}
        for n, plan in enumerate(["free", "free", "pro"])
    ]
    assert backend.ingest(key, events).status_code == 202
    page = new_page()
    log_in(page, owner)
    page.goto(f"/projects/{project_id}/settings")
    page.get_by_label("Keep events for (days)").fill("30")
    page.get_by_role("button", name="Save retention").click()
    expect(page.get_by_text("Saved: events are kept 30 days.")).to_be_visible()

    paths = page.get_by_label("Property paths, one a line")
    paths.fill("\n".join(f"p{n}" for n in range(11)))
    page.get_by_role("button", name="Save dimensions").click()
    refused = page.locator("form", has_text="Dimensions").get_by_role("alert")
    expect(refused).to_contain_text("holds 11 paths; a project declares at most 10")
    expect(refused).to_contain_text("invalid_dimensions")
    paths.fill("plan")
    page.get_by_role("button", name="Save dimensions").click()
    expect(page.get_by_text("Saved: 1 dimension.")).to_be_visible()

    page.get_by_label("Person ids (user_id), comma-separated").fill("p1")
    page.get_by_role("button", name="Delete matching events").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete events").click()
    requests = page.locator(".card", has=page.get_by_role("heading", name="Deletion requests"))
    expect(requests.get_by_role("row")).to_have_count(2)
    expect(requests).to_contain_text('"user_ids":["p1"]')

    page.get_by_role("link", name="Dashboard").click()
    breakdown = page.locator(".card", has=page.get_by_role("heading", name="Breakdown"))
    expect(breakdown.get_by_role("row", name=re.compile(r"^free "))).to_be_visible()
    assert backend.call("GET", "/v1/projects", owner)["projects"][0]["retention_days"] == 30
