"""The rules on accounts and credentials: signups throttled per address, strong passwords, real
emails, password hashes bounded in concurrency, and a login throttle that locks nobody out."""

from __future__ import annotations

import asyncio

import pytest

from eventcore import InvalidRequest, Role
from eventcore.adapters.clock import ManualClock
from eventcore.adapters.memory import FakePasswordHasher, MemoryRateLimiter
from eventcore.adapters.security import BoundedHasher
from eventcore.entrypoints.settings import ConfigurationError, load_settings
from eventcore.errors import AuthenticationFailed, RateLimited, Unavailable
from tests.unit.conftest import NOW, PASSWORD, App, AppFactory

ATTACKER = "203.0.113.9"
OWNER = "198.51.100.1"


def per_hour(signups: float, burst: float, clock: ManualClock) -> MemoryRateLimiter:
    return MemoryRateLimiter(clock, signups / 3600, burst)


def per_minute(attempts: float, clock: ManualClock) -> MemoryRateLimiter:
    return MemoryRateLimiter(clock, attempts / 60, attempts)


# -- signups per client address


async def test_signups_from_one_address_are_throttled(make_app: AppFactory) -> None:
    """Past its burst an address's signups are refused, create nothing, and come back in time."""
    clock = ManualClock(NOW)
    app = make_app(signup_limiter=per_hour(10, 3, clock))
    for n in range(3):
        await app.accounts.signup(f"a{n}@example.com", PASSWORD, "Acme", client_address=ATTACKER)
    with pytest.raises(RateLimited) as refused:
        await app.accounts.signup("a3@example.com", PASSWORD, "Acme", client_address=ATTACKER)
    assert refused.value.code == "too_many_signups"
    assert refused.value.retry_after >= 1
    assert len(app.memory.users) == 3
    clock.advance(360)
    await app.accounts.signup("a3@example.com", PASSWORD, "Acme", client_address=ATTACKER)
    assert len(app.memory.users) == 4


async def test_another_address_still_signs_up(make_app: AppFactory) -> None:
    """One address at its limit leaves other addresses their own allowance."""
    clock = ManualClock(NOW)
    app = make_app(signup_limiter=per_hour(1, 1, clock))
    await app.accounts.signup("a@example.com", PASSWORD, "Acme", client_address=ATTACKER)
    with pytest.raises(RateLimited):
        await app.accounts.signup("b@example.com", PASSWORD, "Acme", client_address=ATTACKER)
    await app.accounts.signup("b@example.com", PASSWORD, "Acme", client_address=OWNER)


# -- passwords


@pytest.mark.parametrize(
    "password",
    ["password1", "12345678", "qwertyuiop", "aaaaaaaaaaaa", "abcd1234", "P@ssw0rd!", "iloveyou1"],
)
async def test_common_and_guessable_passwords_are_refused(app: App, password: str) -> None:
    """zxcvbn scores them under 3: weak_password, with its reasons and without the password."""
    with pytest.raises(InvalidRequest) as refused:
        await app.accounts.signup("a@example.com", password, "Acme")
    assert refused.value.code == "weak_password"
    assert password not in str(refused.value)
    assert "too easy to guess" in str(refused.value)
    assert app.memory.users == {}


@pytest.mark.parametrize(
    ("email", "workspace", "password", "unrelated"),
    [
        ("xkcdzebrafish@example.com", "Acme", "xkcdzebrafish", ("b@example.com", "Acme")),
        (
            "a@example.com",
            "quintessential lighthouse",
            "quintessential lighthouse",
            ("a@example.com", "Acme"),
        ),
    ],
    ids=["the-email", "the-workspace-name"],
)
async def test_a_password_made_of_the_users_own_inputs_is_refused(
    make_app: AppFactory, email: str, workspace: str, password: str, unrelated: tuple[str, str]
) -> None:
    """The email and the workspace name count as guessable: a password that is strong for
    another account is weak when it repeats them."""
    app = make_app()
    with pytest.raises(InvalidRequest) as refused:
        await app.accounts.signup(email, password, workspace)
    assert refused.value.code == "weak_password"
    assert app.memory.users == {}
    await app.accounts.signup(unrelated[0], password, unrelated[1])


async def test_a_long_password_is_scored_on_its_start(make_app: AppFactory) -> None:
    """zxcvbn reads 72 characters at most: a 1024-character password is scored, not an error."""
    app = make_app()
    await app.accounts.signup("a@example.com", PASSWORD + "x" * (1024 - len(PASSWORD)), "Acme")
    with pytest.raises(InvalidRequest):
        await app.accounts.signup("b@example.com", "a" * 1024, "Acme")


# -- emails


BAD_EMAILS = [
    "not-an-email",
    "a@b",
    "a b@example.com",
    "nul\x00@example.com",
    "<script>@example.com",
    "a@example.com<b>",
    '"quoted"@example.com',
    "a@localhost",
    "a@@example.com",
    "a@" + "d" * 320 + ".com",
]


@pytest.mark.parametrize("email", BAD_EMAILS)
async def test_a_bad_email_is_refused_at_signup(make_app: AppFactory, email: str) -> None:
    """Signup refuses it as invalid_email and creates nothing."""
    app = make_app()
    with pytest.raises(InvalidRequest) as refused:
        await app.accounts.signup(email, PASSWORD, "Acme")
    assert refused.value.code == "invalid_email"
    assert "\x00" not in str(refused.value)
    assert app.memory.users == {}


@pytest.mark.parametrize("email", BAD_EMAILS)
async def test_a_bad_email_is_refused_at_login(make_app: AppFactory, email: str) -> None:
    """Login gives the same code as signup for the same email."""
    app = make_app()
    with pytest.raises(InvalidRequest) as refused:
        await app.accounts.login(email, PASSWORD)
    assert refused.value.code == "invalid_email"


@pytest.mark.parametrize("email", BAD_EMAILS)
async def test_a_bad_email_is_refused_at_invitation(make_app: AppFactory, email: str) -> None:
    """An invitation for it is refused with the same code and none is stored."""
    app = make_app()
    tenant = await app.signup()
    with pytest.raises(InvalidRequest) as refused:
        await app.accounts.invite(tenant.principal, email, Role.VIEWER)
    assert refused.value.code == "invalid_email"
    assert app.memory.invitations == {}


async def test_the_normalised_email_is_stored_and_matched(make_app: AppFactory) -> None:
    """Stored in one form; login and invitations find it whatever the case and spacing."""
    app = make_app()
    owner = await app.signup()
    signed_up = await app.accounts.signup("  Ada.Lovelace@Example.COM ", PASSWORD, "Own")
    assert [u.email for u in app.memory.users.values() if u.id == signed_up.user_id] == [
        "ada.lovelace@example.com"
    ]
    invitation = await app.accounts.invite(owner.principal, "ADA.lovelace@example.com", Role.ADMIN)
    assert invitation.record.email == "ada.lovelace@example.com"
    invitee = app.accounts.authenticate(signed_up.access_token)
    await app.accounts.accept_invitation(invitee, invitation.token)
    assert (await app.accounts.login("ada.LOVELACE@example.com ", PASSWORD)).access_token


# -- password hashes bounded in concurrency


class BlockingHasher(FakePasswordHasher):
    """Every hash and verification waits for ``release``; ``running`` counts those inside."""

    def __init__(self, concurrency: int) -> None:
        self.release = asyncio.Event()
        self.all_in = asyncio.Event()
        self.running = 0
        self._concurrency = concurrency

    async def _enter(self) -> None:
        self.running += 1
        if self.running == self._concurrency:
            self.all_in.set()
        await self.release.wait()
        self.running -= 1

    async def hash(self, password: str) -> str:
        await self._enter()
        return await super().hash(password)

    async def verify(self, password_hash: str, password: str) -> bool:
        await self._enter()
        return await super().verify(password_hash, password)


async def test_hashes_beyond_the_bound_wait_then_are_refused() -> None:
    """With 2 at once and 1 waiting: the third call waits its turn, the fourth is refused at
    once with 503 busy, and the waiting one runs when a turn frees."""
    inner = BlockingHasher(concurrency=2)
    hasher = BoundedHasher(inner, concurrency=2, waiting=1)
    first = [asyncio.create_task(hasher.hash("one")), asyncio.create_task(hasher.hash("two"))]
    await inner.all_in.wait()
    third = asyncio.create_task(hasher.verify("salt$digest", "three"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not third.done()
    assert inner.running == 2
    with pytest.raises(Unavailable) as refused:
        await hasher.hash("four")
    assert refused.value.code == "busy"
    assert refused.value.retry_after >= 1
    inner.release.set()
    hashes = await asyncio.gather(*first)
    assert await hasher.verify(hashes[0], "one")
    assert await third is False
    assert inner.running == 0


async def test_a_refused_or_failed_hash_gives_its_turn_back() -> None:
    """Turns are returned whatever happens: after refusals and a failing hash, calls still run."""

    class FailingHasher(FakePasswordHasher):
        async def hash(self, password: str) -> str:
            raise RuntimeError("boom")

    hasher = BoundedHasher(FailingHasher(), concurrency=1, waiting=0)
    for _ in range(3):
        with pytest.raises(RuntimeError):
            await hasher.hash("x")
    assert await hasher.verify(await FakePasswordHasher().hash("y"), "y")


# -- the login throttle cannot lock the owner out


async def test_an_attacker_on_one_address_does_not_lock_the_owner_out(
    make_app: AppFactory,
) -> None:
    """The attacker's address exhausts its allowance for the account; the owner on another
    address still logs in."""
    clock = ManualClock(NOW)
    app = make_app(login_limiter=per_minute(3, clock), account_limiter=per_minute(10, clock))
    victim = await app.signup()
    for _ in range(3):
        with pytest.raises(AuthenticationFailed):
            await app.accounts.login(victim.email, "guess", client_address=ATTACKER)
    for _ in range(20):
        with pytest.raises(RateLimited) as refused:
            await app.accounts.login(victim.email, "guess", client_address=ATTACKER)
        assert refused.value.code == "too_many_login_attempts"
    token = await app.accounts.login(victim.email, PASSWORD, client_address=OWNER)
    assert token.access_token


async def test_the_per_account_ceiling_holds_across_addresses(make_app: AppFactory) -> None:
    """Attempts from many addresses share the account's ceiling; past it even the right
    password waits, and time gives attempts back."""
    clock = ManualClock(NOW)
    app = make_app(login_limiter=per_minute(3, clock), account_limiter=per_minute(5, clock))
    victim = await app.signup()
    for n in range(5):
        with pytest.raises(AuthenticationFailed):
            await app.accounts.login(victim.email, "guess", client_address=f"203.0.113.{n}")
    with pytest.raises(RateLimited):
        await app.accounts.login(victim.email, PASSWORD, client_address=OWNER)
    clock.advance(60)
    assert (await app.accounts.login(victim.email, PASSWORD, client_address=OWNER)).access_token


# -- settings


@pytest.mark.parametrize(
    ("variable", "value", "accepts"),
    [
        ("EVENTCORE_SIGNUPS_PER_HOUR_PER_ADDRESS", "-1", "a number from 0 to 1,000,000,000"),
        ("EVENTCORE_LOGIN_ATTEMPTS_PER_MINUTE_PER_ACCOUNT", "x", "a number from 0"),
        ("EVENTCORE_PASSWORD_HASH_CONCURRENCY", "0", "an integer from 1 to 64"),
        ("EVENTCORE_PASSWORD_HASH_CONCURRENCY", "65", "an integer from 1 to 64"),
        ("EVENTCORE_PASSWORD_HASH_WAITING", "-1", "an integer from 0 to 10,000"),
    ],
)
def test_the_new_settings_are_refused_out_of_bounds(
    variable: str, value: str, accepts: str
) -> None:
    """One line naming the variable and what it accepts."""
    with pytest.raises(ConfigurationError) as refused:
        load_settings({variable: value})
    assert str(refused.value).startswith(f"{variable} must be {accepts}")
