"""Accounts: sign-up and login, access tokens, roles and permissions, and the API key lifecycle."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import jwt
import pytest

from eventcore import (
    AuthenticationFailed,
    Conflict,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    Principal,
    Role,
)
from eventcore.adapters.security import JwtCodec
from eventcore.usecases.accounts import hash_api_key
from tests.fuzz.support import write
from tests.support.tokens import (
    CLAIMS,
    JSON_VALUES,
    good_claims,
    odd_payloads,
    sign,
    with_claim,
    without_claim,
    wrong_types,
)
from tests.unit.conftest import JWT_SECRET, PASSWORD, App, Tenant
from tests.unit.helpers import body, event

# -- sign-up and login


async def test_signup_makes_the_user_owner_of_a_new_workspace(app: App) -> None:
    """Sign-up creates a user who owns a fresh workspace and returns a token for it."""
    result = await app.accounts.signup("new@example.com", PASSWORD, "  Acme  ")
    principal = app.accounts.authenticate(result.access_token)
    assert principal == Principal(result.user_id, result.workspace_id, Role.OWNER)
    assert app.memory.workspaces[result.workspace_id].name == "Acme"
    assert result.expires_in > 0


async def test_signup_normalises_the_email(app: App) -> None:
    """Emails are trimmed and lower-cased, so any spelling logs in to the same account."""
    await app.accounts.signup("  Alice@Example.COM ", PASSWORD, "Acme")
    (user,) = app.memory.users.values()
    assert user.email == "alice@example.com"
    token = await app.accounts.login("ALICE@example.com", PASSWORD)
    assert app.accounts.authenticate(token.access_token).user_id == user.id


async def test_signup_never_keeps_the_password(app: App) -> None:
    """Only a hash of the password is stored."""
    await app.accounts.signup("a@example.com", PASSWORD, "Acme")
    (user,) = app.memory.users.values()
    assert PASSWORD not in user.password_hash


async def test_duplicate_email_is_a_conflict(app: App) -> None:
    """A second sign-up with the same email, in any case, is refused and creates nothing."""
    await app.accounts.signup("alice@example.com", PASSWORD, "Acme")
    with pytest.raises(Conflict):
        await app.accounts.signup(" ALICE@example.com", "another password", "Other")
    assert len(app.memory.users) == 1
    assert len(app.memory.workspaces) == 1


@pytest.mark.parametrize(
    ("email", "password", "workspace"),
    [
        ("not-an-email", PASSWORD, "Acme"),
        ("a@b", PASSWORD, "Acme"),
        ("a b@example.com", PASSWORD, "Acme"),
        ("a@example.com", "short", "Acme"),
        ("a@example.com", "x" * 1025, "Acme"),
        ("a@example.com", PASSWORD, "   "),
        ("a@example.com", PASSWORD, "w" * 201),
    ],
)
async def test_signup_input_is_validated(
    app: App, email: str, password: str, workspace: str
) -> None:
    """Bad emails, weak passwords and blank or long names are refused."""
    with pytest.raises(InvalidRequest):
        await app.accounts.signup(email, password, workspace)
    assert app.memory.users == {}


async def test_wrong_password_fails(app: App, tenant: Tenant) -> None:
    """Login with the wrong password is refused."""
    with pytest.raises(AuthenticationFailed) as caught:
        await app.accounts.login(tenant.email, PASSWORD + "!")
    assert caught.value.code == "invalid_credentials"


async def test_unknown_email_fails_like_a_wrong_password(app: App, tenant: Tenant) -> None:
    """An unknown email answers exactly as a wrong password does (no account probing)."""
    with pytest.raises(AuthenticationFailed) as unknown:
        await app.accounts.login("nobody@example.com", PASSWORD)
    with pytest.raises(AuthenticationFailed) as wrong:
        await app.accounts.login(tenant.email, "wrong password")
    assert (unknown.value.code, unknown.value.message) == (wrong.value.code, wrong.value.message)


async def test_login_defaults_to_the_oldest_workspace(app: App, tenant: Tenant) -> None:
    """Without a workspace id, login signs in to the user's own first workspace."""
    token = await app.accounts.login(tenant.email, PASSWORD)
    assert app.accounts.authenticate(token.access_token) == tenant.principal


async def test_login_to_a_workspace_the_user_is_not_in_is_refused(app: App) -> None:
    """A user cannot log in to somebody else's workspace."""
    alice, bob = await app.signup(), await app.signup()
    with pytest.raises(AuthenticationFailed):
        await app.accounts.login(alice.email, PASSWORD, bob.workspace_id)
    with pytest.raises(AuthenticationFailed):
        await app.accounts.login(alice.email, PASSWORD, "no-such-workspace")


async def test_a_user_s_workspaces_are_listed_with_its_role_in_each(
    app: App, tenant: Tenant
) -> None:
    """A member of two workspaces sees both, named, with its role in each; the list is the
    same from a token of either."""
    member = await signed_up(app, "two@example.com")
    issued = await app.accounts.invite(tenant.principal, "two@example.com", Role.VIEWER)
    await app.accounts.accept_invitation(member, issued.token)
    listed = {(w.id, w.name, role) for w, role in await app.accounts.workspaces(member)}
    assert listed == {
        (member.workspace_id, "Own", Role.OWNER),
        (tenant.workspace_id, "Acme", Role.VIEWER),
    }
    there = Principal(member.user_id, tenant.workspace_id, Role.VIEWER)
    assert {(w.id, role) for w, role in await app.accounts.workspaces(there)} == {
        (w_id, role) for w_id, _, role in listed
    }


async def test_switching_workspace_issues_a_token_there_with_the_role_it_has_now(
    app: App, tenant: Tenant
) -> None:
    member = await signed_up(app, "switch@example.com")
    issued = await app.accounts.invite(tenant.principal, "switch@example.com", Role.ADMIN)
    await app.accounts.accept_invitation(member, issued.token)
    token = await app.accounts.switch_workspace(member, tenant.workspace_id)
    assert app.accounts.authenticate(token.access_token) == Principal(
        member.user_id, tenant.workspace_id, Role.ADMIN
    )


async def test_switching_to_a_workspace_the_user_is_not_in_is_not_found(
    app: App, tenant: Tenant
) -> None:
    """Another's workspace answers as one that does not exist."""
    stranger = await signed_up(app, "stranger@example.com")
    for workspace_id in (tenant.workspace_id, "no-such-workspace"):
        with pytest.raises(NotFound):
            await app.accounts.switch_workspace(stranger, workspace_id)


async def signed_up(app: App, email: str) -> Principal:
    """A new user (owner of a workspace of their own) and the principal they sign in as."""
    result = await app.accounts.signup(email, PASSWORD, "Own")
    return app.accounts.authenticate(result.access_token)


@pytest.mark.parametrize("role", list(Role))
async def test_an_accepted_invitation_makes_a_member_with_its_role(
    app: App, tenant: Tenant, role: Role
) -> None:
    """Invited as an email (any case), the person accepts signed in as it and then logs in to
    the workspace with that role; their own workspace stays theirs."""
    invitee = await signed_up(app, "member@example.com")
    issued = await app.accounts.invite(tenant.principal, "Member@Example.com", role)
    assert (issued.record.email, issued.record.role) == ("member@example.com", role)
    assert issued.record.expires_at == app.clock.now() + timedelta(days=7)
    assert await app.memory.get_membership(tenant.workspace_id, invitee.user_id) is None

    membership = await app.accounts.accept_invitation(invitee, issued.token)
    assert (membership.workspace_id, membership.user_id, membership.role) == (
        tenant.workspace_id,
        invitee.user_id,
        role,
    )
    token = await app.accounts.login("member@example.com", PASSWORD, tenant.workspace_id)
    principal = app.accounts.authenticate(token.access_token)
    assert (principal.workspace_id, principal.role) == (tenant.workspace_id, role)
    own = app.accounts.authenticate(
        (await app.accounts.login("member@example.com", PASSWORD)).access_token
    )
    assert (own.workspace_id != tenant.workspace_id, own.role) == (True, Role.OWNER)


async def test_an_invitation_says_nothing_about_the_email(app: App, tenant: Tenant) -> None:
    """An email with an account and one without get the same kind of answer."""
    await signed_up(app, "known@example.com")
    known = await app.accounts.invite(tenant.principal, "known@example.com", Role.VIEWER)
    unknown = await app.accounts.invite(tenant.principal, "ghost@example.com", Role.VIEWER)
    for issued in (known, unknown):
        assert issued.token.startswith(tenant.workspace_id + ".")
        assert len(issued.token) == len(known.token)
        assert issued.record.accepted_at is None


async def test_an_invitation_is_accepted_once_by_its_email_before_it_expires(
    app: App, tenant: Tenant
) -> None:
    invitee = await signed_up(app, "m@example.com")
    other = await signed_up(app, "other@example.com")
    issued = await app.accounts.invite(tenant.principal, "m@example.com", Role.ADMIN)

    with pytest.raises(PermissionDenied):
        await app.accounts.accept_invitation(other, issued.token)
    assert await app.memory.get_membership(tenant.workspace_id, other.user_id) is None
    for forged in ("", "nodot", ".x", issued.token + "x", "other-ws." + issued.token.split(".")[1]):
        with pytest.raises(NotFound):
            await app.accounts.accept_invitation(invitee, forged)

    await app.accounts.accept_invitation(invitee, issued.token)
    with pytest.raises(NotFound):
        await app.accounts.accept_invitation(invitee, issued.token)

    late = await signed_up(app, "late@example.com")
    expiring = await app.accounts.invite(tenant.principal, "late@example.com", Role.VIEWER)
    app.clock.advance(7 * 24 * 3600)
    with pytest.raises(NotFound):
        await app.accounts.accept_invitation(late, expiring.token)
    assert await app.memory.get_membership(tenant.workspace_id, late.user_id) is None


async def test_accepting_while_a_member_already_is_a_conflict(app: App, tenant: Tenant) -> None:
    """A user is a member of a workspace once, with one role; the invitation stays open."""
    invitee = await signed_up(app, "m@example.com")
    first = await app.accounts.invite(tenant.principal, "m@example.com", Role.VIEWER)
    second = await app.accounts.invite(tenant.principal, "m@example.com", Role.ADMIN)
    await app.accounts.accept_invitation(invitee, first.token)
    with pytest.raises(Conflict) as raised:
        await app.accounts.accept_invitation(invitee, second.token)
    assert raised.value.code == "already_member"
    token = await app.accounts.login("m@example.com", PASSWORD, tenant.workspace_id)
    assert app.accounts.authenticate(token.access_token).role is Role.VIEWER


# -- access tokens


async def test_token_expires(app: App, tenant: Tenant) -> None:
    """An access token works until its lifetime has passed, then is refused as expired."""
    token = await app.accounts.login(tenant.email, PASSWORD)
    app.clock.advance(token.expires_in - 1)
    assert app.accounts.authenticate(token.access_token) == tenant.principal
    app.clock.advance(1)
    with pytest.raises(AuthenticationFailed) as caught:
        app.accounts.authenticate(token.access_token)
    assert caught.value.code == "token_expired"


async def test_token_signed_with_another_secret_is_refused(app: App, tenant: Tenant) -> None:
    """A token signed with any other secret is refused."""
    forged, _ = JwtCodec("another-secret-that-is-also-long-enough").issue(
        tenant.principal, app.clock.now()
    )
    with pytest.raises(AuthenticationFailed) as caught:
        app.accounts.authenticate(forged)
    assert caught.value.code == "invalid_token"


def _claims(principal: Principal, now: float, **overrides: Any) -> dict[str, Any]:
    claims = {
        "iss": "eventcore",
        "sub": principal.user_id,
        "ws": principal.workspace_id,
        "role": principal.role.value,
        "iat": int(now),
        "exp": int(now) + 3600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


async def test_unsigned_token_is_refused(app: App, tenant: Tenant) -> None:
    """A token with `alg: none` is refused, however valid its claims."""
    claims = _claims(tenant.principal, app.clock.now().timestamp())
    for header in ({"alg": "none", "typ": "JWT"}, {"alg": "None"}, {"alg": "NONE"}):
        unsigned = f"{_b64(header)}.{_b64(claims)}."
        with pytest.raises(AuthenticationFailed):
            app.accounts.authenticate(unsigned)
    with pytest.raises(AuthenticationFailed):
        app.accounts.authenticate(jwt.encode(claims, None, algorithm="none"))


async def test_tampered_token_is_refused(app: App, tenant: Tenant) -> None:
    """Changing any claim of a signed token breaks it."""
    viewer = await app.member(tenant, Role.VIEWER)
    token, _ = app.tokens.issue(viewer, app.clock.now())
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    for change in ({"role": "owner"}, {"ws": "another-workspace"}, {"exp": claims["exp"] + 10**6}):
        tampered = f"{header}.{_b64({**claims, **change})}.{signature}"
        with pytest.raises(AuthenticationFailed):
            app.accounts.authenticate(tampered)
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    with pytest.raises(AuthenticationFailed):
        app.accounts.authenticate(f"{header}.{payload}.{flipped}")


@pytest.mark.parametrize(
    "overrides",
    [{"role": "superuser"}, {"ws": None}, {"sub": None}, {"exp": None}, {"iss": "someone-else"}],
)
async def test_token_with_bad_claims_is_refused(
    app: App, tenant: Tenant, overrides: dict[str, Any]
) -> None:
    """A correctly signed token with a missing or unknown claim is refused."""
    claims = _claims(tenant.principal, app.clock.now().timestamp(), **overrides)
    with pytest.raises(AuthenticationFailed):
        app.accounts.authenticate(jwt.encode(claims, JWT_SECRET, algorithm="HS256"))


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "ek_looks-like-an-api-key"])
async def test_garbage_token_is_refused(app: App, token: str) -> None:
    """Anything that is not a token is refused as invalid."""
    with pytest.raises(AuthenticationFailed):
        app.accounts.authenticate(token)


def issued_claims(app: App, tenant: Tenant) -> dict[str, Any]:
    """The claims the server issues for the tenant's owner now."""
    return good_claims(tenant.principal.user_id, tenant.workspace_id, app.clock.now().timestamp())


@pytest.mark.parametrize(
    ("claim", "kind"), [(claim, kind) for claim in CLAIMS for kind in wrong_types(claim)]
)
async def test_a_claim_of_the_wrong_type_is_an_invalid_token(
    app: App, tenant: Tenant, claim: str, kind: str
) -> None:
    """A token signed with the server's secret whose claim holds any other JSON type than the
    one the server issues (NaN, a list, an object, null, a bool, a float...) is invalid."""
    claims = issued_claims(app, tenant)
    token = with_claim(claims, claim, JSON_VALUES[kind], JWT_SECRET)
    with pytest.raises(AuthenticationFailed) as caught:
        app.accounts.authenticate(token)
    assert caught.value.code == "invalid_token"


@pytest.mark.parametrize("claim", CLAIMS)
async def test_a_token_missing_a_claim_is_invalid(app: App, tenant: Tenant, claim: str) -> None:
    """Every claim the server issues is required."""
    claims = issued_claims(app, tenant)
    with pytest.raises(AuthenticationFailed) as caught:
        app.accounts.authenticate(without_claim(claims, claim, JWT_SECRET))
    assert caught.value.code == "invalid_token"


@pytest.mark.parametrize("kind", list(odd_payloads({})))
async def test_a_payload_that_is_not_flat_claims_is_invalid(
    app: App, tenant: Tenant, kind: str
) -> None:
    """Claims nested in an object or a list, a payload that is no object, or one that repeats
    a claim with another type, make an invalid token."""
    claims = issued_claims(app, tenant)
    with pytest.raises(AuthenticationFailed) as caught:
        app.accounts.authenticate(sign(odd_payloads(claims)[kind], JWT_SECRET))
    assert caught.value.code == "invalid_token"


async def test_the_claims_the_server_issues_are_accepted(app: App, tenant: Tenant) -> None:
    """The helpers above sign what the server itself issues: that token is accepted."""
    claims = issued_claims(app, tenant)
    assert app.accounts.authenticate(sign(write(claims), JWT_SECRET)) == tenant.principal


# -- permissions

Action = Callable[[App, Principal, Tenant], Awaitable[object]]


async def _invite(app: App, principal: Principal, tenant: Tenant) -> object:
    return await app.accounts.invite(principal, "newcomer@example.com", Role.VIEWER)


ACTIONS: dict[str, Action] = {
    "create_project": lambda app, p, t: app.accounts.create_project(p, "New"),
    "list_projects": lambda app, p, t: app.accounts.list_projects(p),
    "project": lambda app, p, t: app.accounts.project(p, t.project_id),
    "create_api_key": lambda app, p, t: app.accounts.create_api_key(p, t.project_id, "k"),
    "list_api_keys": lambda app, p, t: app.accounts.list_api_keys(p, t.project_id),
    "revoke_api_key": lambda app, p, t: app.accounts.revoke_api_key(p, t.key.id),
    "invite": _invite,
    "counts": lambda app, p, t: app.analytics.counts(p, t.project_id),
    "event_types": lambda app, p, t: app.analytics.event_types(p, t.project_id),
    "list_events": lambda app, p, t: app.analytics.list_events(p, t.project_id),
}
READ = {"list_projects", "project", "counts", "event_types", "list_events"}
ALLOWED = {
    Role.OWNER: set(ACTIONS),
    Role.ADMIN: set(ACTIONS) - {"invite"},
    Role.VIEWER: READ,
}


@pytest.mark.parametrize("action", sorted(ACTIONS))
@pytest.mark.parametrize("role", list(Role))
async def test_permissions_matrix(app: App, tenant: Tenant, role: Role, action: str) -> None:
    """Owners may do everything, admins all but members, viewers only read; refusals change nothing."""
    principal = tenant.principal if role is Role.OWNER else await app.member(tenant, role)
    await app.accounts.signup("newcomer@example.com", PASSWORD, "Theirs")
    before = (dict(app.memory.projects), dict(app.memory.api_keys), dict(app.memory.memberships))
    if action in ALLOWED[role]:
        await ACTIONS[action](app, principal, tenant)
    else:
        with pytest.raises(PermissionDenied) as caught:
            await ACTIONS[action](app, principal, tenant)
        assert caught.value.code == "forbidden"
        after = (dict(app.memory.projects), dict(app.memory.api_keys), dict(app.memory.memberships))
        assert after == before


def test_the_matrix_covers_every_role_and_the_documented_rules() -> None:
    """The table above is the documented one: owner everything, admin no members, viewer reads."""
    assert ALLOWED[Role.OWNER] > ALLOWED[Role.ADMIN] > ALLOWED[Role.VIEWER]
    assert set(ALLOWED) == set(Role)


# -- API keys


async def test_created_key_resolves_to_its_project(app: App, tenant: Tenant) -> None:
    """A new key resolves to its workspace and project; only its hash and prefix are stored."""
    issued = await app.accounts.create_api_key(tenant.principal, tenant.project_id, "Server")
    record = await app.platform.keys.resolve(issued.secret)
    assert record.tenant == tenant.ref
    assert record.id == issued.record.id
    assert issued.secret.startswith(record.prefix)
    assert record.key_hash == hash_api_key(issued.secret)
    assert all(issued.secret not in repr(key) for key in app.memory.api_keys.values())


async def test_listed_keys_carry_no_secret(app: App, tenant: Tenant) -> None:
    """Listing keys shows every key of the project, revoked ones included, without secrets."""
    second = await app.accounts.create_api_key(tenant.principal, tenant.project_id, "Second")
    await app.accounts.revoke_api_key(tenant.principal, tenant.key.id)
    keys = await app.accounts.list_api_keys(tenant.principal, tenant.project_id)
    assert [k.id for k in keys] == [tenant.key.id, second.record.id]
    assert keys[0].revoked_at is not None
    assert keys[1].revoked_at is None
    assert all(tenant.api_key not in repr(k) and second.secret not in repr(k) for k in keys)


async def test_revoked_key_is_refused(app: App, tenant: Tenant) -> None:
    """Once revoked, a key is refused at once, even though it was cached."""
    await app.ingestor.ingest(tenant.api_key, body(event("a")))
    await app.accounts.revoke_api_key(tenant.principal, tenant.key.id)
    with pytest.raises(AuthenticationFailed) as caught:
        await app.platform.keys.resolve(tenant.api_key)
    assert caught.value.code == "revoked_api_key"
    with pytest.raises(AuthenticationFailed):
        await app.ingestor.ingest(tenant.api_key, body(event("b")))
    assert [e.id for e in app.stored(tenant.ref)] == ["a"]


async def test_revoke_evicts_the_cached_key(app: App, tenant: Tenant) -> None:
    """Revoking a key removes it from the key cache."""
    await app.platform.keys.resolve(tenant.api_key)
    assert await app.key_cache.get(tenant.key.key_hash) is not None
    await app.accounts.revoke_api_key(tenant.principal, tenant.key.id)
    assert await app.key_cache.get(tenant.key.key_hash) is None


async def test_revocation_elsewhere_is_seen_within_a_second(app: App, tenant: Tenant) -> None:
    """A key revoked behind this process's back stops working once its cache entry expires."""
    await app.platform.keys.resolve(tenant.api_key)
    await app.memory.revoke_api_key(tenant.workspace_id, tenant.key.id, app.clock.now())
    app.clock.advance(1)
    with pytest.raises(AuthenticationFailed) as caught:
        await app.platform.keys.resolve(tenant.api_key)
    assert caught.value.code == "revoked_api_key"


async def test_revoking_twice_keeps_the_first_time(app: App, tenant: Tenant) -> None:
    """A second revoke is harmless and keeps the original revocation time."""
    await app.accounts.revoke_api_key(tenant.principal, tenant.key.id)
    first = app.memory.api_keys[tenant.key.id].revoked_at
    app.clock.advance(60)
    await app.accounts.revoke_api_key(tenant.principal, tenant.key.id)
    assert app.memory.api_keys[tenant.key.id].revoked_at == first


async def test_revoking_an_unknown_key_is_not_found(app: App, tenant: Tenant) -> None:
    """Revoking a key id that does not exist answers NotFound."""
    with pytest.raises(NotFound):
        await app.accounts.revoke_api_key(tenant.principal, "no-such-key")


@pytest.mark.parametrize("secret", [None, "", "ek_unknown", "x" * 1000])
async def test_unknown_key_is_refused(app: App, tenant: Tenant, secret: str | None) -> None:
    """A missing or unknown key is refused."""
    with pytest.raises(AuthenticationFailed) as caught:
        await app.platform.keys.resolve(secret)
    assert caught.value.code in {"unauthorized", "invalid_api_key"}


async def test_api_key_for_an_unknown_project_is_not_found(app: App, tenant: Tenant) -> None:
    """Keys can only be made for a project of the caller's workspace."""
    with pytest.raises(NotFound):
        await app.accounts.create_api_key(tenant.principal, "no-such-project", "k")


async def test_each_project_key_is_distinct(app: App, tenant: Tenant) -> None:
    """Every issued key is a different secret with a different hash."""
    issued = [
        await app.accounts.create_api_key(tenant.principal, tenant.project_id, f"k{i}")
        for i in range(20)
    ]
    assert len({k.secret for k in issued} | {tenant.api_key}) == 21
    assert len({k.record.key_hash for k in issued}) == 20


async def test_a_token_for_a_user_or_workspace_that_does_not_exist_is_refused(
    app: App, tenant: Tenant
) -> None:
    """Signed with the server's secret and unexpired, but naming no membership: refused, and
    nothing can be created with it (no orphan project)."""
    now = app.clock.now()
    for principal in (
        Principal("no-such-user", tenant.principal.workspace_id, Role.OWNER),
        Principal(tenant.principal.user_id, "no-such-workspace", Role.OWNER),
        Principal("no-such-user", "no-such-workspace", Role.OWNER),
    ):
        token, _ = app.tokens.issue(principal, now)
        with pytest.raises(AuthenticationFailed) as raised:
            await app.accounts.principal(token)
        assert raised.value.code == "invalid_token"
    assert await app.memory.list_projects("no-such-workspace") == []


async def test_a_token_carries_the_role_the_member_has_now(app: App, tenant: Tenant) -> None:
    """The role in the token is what it was at login; the principal has the current one."""
    member = await app.member(tenant, Role.ADMIN)
    token, _ = app.tokens.issue(member, app.clock.now())
    assert (await app.accounts.principal(token)).role is Role.ADMIN

    await app.accounts.change_role(tenant.principal, member.user_id, Role.VIEWER)
    current = await app.accounts.principal(token)
    assert current == Principal(member.user_id, member.workspace_id, Role.VIEWER)
    with pytest.raises(PermissionDenied):
        await app.accounts.create_project(current, "not allowed now")

    await app.accounts.remove_member(tenant.principal, member.user_id)
    with pytest.raises(AuthenticationFailed):
        await app.accounts.principal(token)
