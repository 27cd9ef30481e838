"""Login throttling over HTTP: 429 with Retry-After, in the JSON error shape."""

from __future__ import annotations

from tests.http.support import PASSWORD, ApiFactory, assert_error


def test_too_many_login_attempts_answer_429(make_api: ApiFactory) -> None:
    """After the per-account allowance, login answers 429 too_many_login_attempts with Retry-After."""
    api = make_api(env={"EVENTCORE_LOGIN_ATTEMPTS_PER_MINUTE": "3"})
    account = api.signup()
    for _ in range(3):
        wrong = api.client.post(
            "/v1/auth/login", json={"email": account.email, "password": "not it at all"}
        )
        assert_error(wrong, 401)
    refused = api.client.post("/v1/auth/login", json={"email": account.email, "password": PASSWORD})
    assert_error(refused, 429, "too_many_login_attempts")
    assert int(refused.headers["retry-after"]) >= 1


def test_login_throttle_can_be_switched_off(make_api: ApiFactory) -> None:
    """With the setting at 0, attempts are not throttled."""
    api = make_api(
        env={
            "EVENTCORE_LOGIN_ATTEMPTS_PER_MINUTE": "0",
            "EVENTCORE_LOGIN_ATTEMPTS_PER_MINUTE_PER_ADDRESS": "0",
        }
    )
    account = api.signup()
    for _ in range(15):
        assert api.login(account.email).status_code == 200
