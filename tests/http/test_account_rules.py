"""The rules on accounts and credentials over HTTP: every refusal is a 4xx (or a 503 with
Retry-After) in the JSON error shape, and creates nothing."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest
from dependency_injector import providers

from eventcore.adapters.memory import FakePasswordHasher
from eventcore.defaults import SIGNUP_BURST
from eventcore.entrypoints.bootstrap import ApiContainer
from tests.http.support import PASSWORD, Api, ApiFactory, assert_error, unique_email

ATTACKER = "203.0.113.9"


def post_from(api: Api, address: str, path: str, body: dict[str, Any]) -> httpx.Response:
    """A POST that reaches the running app from ``address`` (the test client has one fixed)."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=api.client.app, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.post(path, json=body)

    response: httpx.Response = api.client.blocking_portal.call(send)
    return response


def signup_body(email: str, password: str = PASSWORD) -> dict[str, str]:
    return {"email": email, "password": password, "workspace": "Acme"}


def can_log_in(api: Api, email: str, password: str = PASSWORD) -> bool:
    response = api.client.post("/v1/auth/login", json={"email": email, "password": password})
    return response.status_code == 200


# --- signups per client address ---------------------------------------------------------------


def test_forty_signups_from_one_address_do_not_all_succeed(make_api: ApiFactory) -> None:
    """With the default setting, an address gets its burst, then 429 too_many_signups with
    Retry-After; the refused ones create no account; another address still signs up."""
    api = make_api(env={"EVENTCORE_SIGNUPS_PER_HOUR_PER_ADDRESS": "10"})
    answers = [
        api.client.post("/v1/auth/signup", json=signup_body(f"flood{n}@example.com"))
        for n in range(40)
    ]
    created = [n for n, answer in enumerate(answers) if answer.status_code == 201]
    assert created == list(range(int(SIGNUP_BURST)))
    for answer in answers[int(SIGNUP_BURST) :]:
        assert_error(answer, 429, "too_many_signups")
        assert int(answer.headers["retry-after"]) >= 1
    assert not can_log_in(api, f"flood{len(created)}@example.com")
    other = post_from(api, "198.51.100.7", "/v1/auth/signup", signup_body(unique_email()))
    assert other.status_code == 201, other.text


def test_the_signup_throttle_can_be_switched_off(make_api: ApiFactory) -> None:
    """At 0, signups from one address are not throttled."""
    api = make_api(env={"EVENTCORE_SIGNUPS_PER_HOUR_PER_ADDRESS": "0"})
    for _ in range(int(SIGNUP_BURST) + 3):
        api.signup()


# --- passwords --------------------------------------------------------------------------------


@pytest.mark.parametrize("password", ["password1", "12345678", "qwertyuiop", "abcd1234"])
def test_a_guessable_password_is_refused_and_says_why(api: Api, password: str) -> None:
    """400 weak_password with zxcvbn's reasons, not the password; no account is made."""
    email = unique_email()
    response = api.client.post("/v1/auth/signup", json=signup_body(email, password))
    error = assert_error(response, 400, "weak_password")
    assert password not in response.text
    assert "too easy to guess" in error["message"]
    assert not can_log_in(api, email, password)
    assert api.client.post("/v1/auth/signup", json=signup_body(email)).status_code == 201


def test_the_quick_start_password_is_strong_enough(api: Api) -> None:
    """The README's quick start password passes the policy."""
    response = api.client.post(
        "/v1/auth/signup",
        json={"email": "you@example.com", "password": "correct horse battery", "workspace": "Acme"},
    )
    assert response.status_code == 201, response.text


# --- emails -----------------------------------------------------------------------------------

BAD_EMAILS = [
    "not-an-email",
    "a@b",
    "nul\x00@example.com",
    "<script>alert(1)</script>@example.com",
    "a@example.com<img src=x>",
    '"quoted"@example.com',
    "a@localhost",
]


@pytest.mark.parametrize("email", BAD_EMAILS)
def test_a_bad_email_is_the_same_400_at_signup_login_and_invitation(api: Api, email: str) -> None:
    """invalid_email everywhere; nothing is created."""
    owner = api.signup()
    signup = api.client.post("/v1/auth/signup", json=signup_body(email))
    assert_error(signup, 400, "invalid_email")
    login = api.client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert_error(login, 400, "invalid_email")
    invite = api.client.post(
        "/v1/members", json={"email": email, "role": "viewer"}, headers=owner.headers
    )
    assert_error(invite, 400, "invalid_email")
    assert "\x00" not in signup.text
    listed = api.client.get("/v1/members", headers=owner.headers).json()["members"]
    assert [m["user_id"] for m in listed] == [owner.user_id]


def test_the_email_is_stored_normalised(api: Api) -> None:
    """Signed up with capitals and spaces, the account logs in and is listed in one form."""
    owner = api.signup(email=" Grace.Hopper@Example.COM ")
    assert can_log_in(api, "grace.hopper@example.com")
    listed = api.client.get("/v1/members", headers=owner.headers).json()["members"]
    assert [m["email"] for m in listed] == ["grace.hopper@example.com"]


# --- password hashes bounded in concurrency ---------------------------------------------------


class HeldHasher(FakePasswordHasher):
    """The first hash waits until the test releases it; the rest are immediate."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    async def hash(self, password: str) -> str:
        if not self.entered.is_set():
            self.entered.set()
            await asyncio.to_thread(self.release.wait)
        return await super().hash(password)


def test_a_hash_beyond_the_bound_is_503_busy_with_retry_after(make_api: ApiFactory) -> None:
    """With one hash at a time and nobody waiting, a login while a signup hashes is refused at
    once (503 busy, Retry-After); the signup then completes."""
    held = HeldHasher()

    def configure(container: ApiContainer) -> None:
        container.hash_function.override(providers.Object(held))

    api = make_api(
        env={"EVENTCORE_PASSWORD_HASH_CONCURRENCY": "1", "EVENTCORE_PASSWORD_HASH_WAITING": "0"},
        configure=configure,
    )
    email = unique_email()
    answers: list[httpx.Response] = []
    signup = threading.Thread(
        target=lambda: answers.append(api.client.post("/v1/auth/signup", json=signup_body(email)))
    )
    signup.start()
    try:
        assert held.entered.wait(30)
        busy = api.client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert_error(busy, 503, "busy")
        assert int(busy.headers["retry-after"]) >= 1
    finally:
        held.release.set()
        signup.join()
    assert answers[0].status_code == 201, answers[0].text
    assert can_log_in(api, email)


# --- the login throttle cannot lock the owner out ---------------------------------------------


def test_an_attacker_address_cannot_lock_the_owner_out(make_api: ApiFactory) -> None:
    """The attacker's address runs out of attempts on the account (429); the owner, from
    another address, still logs in."""
    api = make_api(env={"EVENTCORE_LOGIN_ATTEMPTS_PER_MINUTE": "3"})
    owner = api.signup()
    guess = {"email": owner.email, "password": "not the password at all"}
    for _ in range(3):
        assert_error(post_from(api, ATTACKER, "/v1/auth/login", guess), 401)
    for _ in range(10):
        assert_error(post_from(api, ATTACKER, "/v1/auth/login", guess), 429)
    assert can_log_in(api, owner.email)


def test_the_per_account_ceiling_holds_across_addresses(make_api: ApiFactory) -> None:
    """Guesses from many addresses share the account's ceiling: past it, 429 from anywhere."""
    api = make_api(
        env={
            "EVENTCORE_LOGIN_ATTEMPTS_PER_MINUTE": "3",
            "EVENTCORE_LOGIN_ATTEMPTS_PER_MINUTE_PER_ACCOUNT": "4",
        }
    )
    owner = api.signup()
    guess = {"email": owner.email, "password": "not the password at all"}
    for n in range(4):
        assert_error(post_from(api, f"203.0.113.{n}", "/v1/auth/login", guess), 401)
    right = {"email": owner.email, "password": PASSWORD}
    assert_error(post_from(api, "198.51.100.9", "/v1/auth/login", right), 429)
