"""Login attempts are throttled per account and per client address, on the clock."""

from __future__ import annotations

import pytest

from eventcore.adapters.clock import ManualClock
from eventcore.adapters.memory import MemoryRateLimiter
from eventcore.errors import AuthenticationFailed, RateLimited
from tests.unit.conftest import NOW, PASSWORD, AppFactory


def limiter(attempts_per_minute: float, clock: ManualClock) -> MemoryRateLimiter:
    return MemoryRateLimiter(clock, attempts_per_minute / 60, attempts_per_minute)


async def test_an_account_is_refused_after_its_attempts_then_allowed_again(
    make_app: AppFactory,
) -> None:
    """Past the per-account allowance even the right password waits; time gives attempts back."""
    clock = ManualClock(NOW)
    app = make_app(login_limiter=limiter(3, clock))
    tenant = await app.signup()
    for _ in range(3):
        with pytest.raises(AuthenticationFailed):
            await app.accounts.login(tenant.email, "wrong password")
    with pytest.raises(RateLimited) as refused:
        await app.accounts.login(tenant.email, PASSWORD)
    assert refused.value.code == "too_many_login_attempts"
    assert refused.value.retry_after >= 1
    clock.advance(60)
    assert (await app.accounts.login(tenant.email, PASSWORD)).access_token


async def test_throttling_one_account_leaves_another_alone(make_app: AppFactory) -> None:
    """An attacker guessing one account's password does not lock out other accounts."""
    clock = ManualClock(NOW)
    app = make_app(login_limiter=limiter(2, clock))
    victim = await app.signup()
    bystander = await app.signup()
    for _ in range(2):
        with pytest.raises(AuthenticationFailed):
            await app.accounts.login(victim.email, "guess")
    with pytest.raises(RateLimited):
        await app.accounts.login(victim.email, "guess")
    assert (await app.accounts.login(bystander.email, PASSWORD)).access_token


async def test_one_address_spraying_many_accounts_is_throttled(make_app: AppFactory) -> None:
    """Attempts from one address across many accounts share the per-address allowance."""
    clock = ManualClock(NOW)
    app = make_app(login_limiter=limiter(100, clock), address_limiter=limiter(4, clock))
    emails = [(await app.signup()).email for _ in range(5)]
    for email in emails[:4]:
        with pytest.raises(AuthenticationFailed):
            await app.accounts.login(email, "spray", client_address="203.0.113.9")
    with pytest.raises(RateLimited):
        await app.accounts.login(emails[4], PASSWORD, client_address="203.0.113.9")
    ok = await app.accounts.login(emails[4], PASSWORD, client_address="198.51.100.1")
    assert ok.access_token


async def test_email_case_does_not_escape_the_throttle(make_app: AppFactory) -> None:
    """The throttle is keyed by the normalised email, as the account is."""
    clock = ManualClock(NOW)
    app = make_app(login_limiter=limiter(1, clock))
    tenant = await app.signup()
    with pytest.raises(AuthenticationFailed):
        await app.accounts.login(tenant.email, "guess")
    with pytest.raises(RateLimited):
        await app.accounts.login(tenant.email.upper(), PASSWORD)


async def test_an_unknown_email_is_refused_like_a_wrong_password(make_app: AppFactory) -> None:
    """No account and a wrong password give the same error, so emails cannot be probed."""
    app = make_app()
    tenant = await app.signup()
    with pytest.raises(AuthenticationFailed) as unknown:
        await app.accounts.login("nobody@example.com", PASSWORD)
    with pytest.raises(AuthenticationFailed) as wrong:
        await app.accounts.login(tenant.email, "wrong password")
    assert (unknown.value.code, unknown.value.message) == (wrong.value.code, wrong.value.message)
