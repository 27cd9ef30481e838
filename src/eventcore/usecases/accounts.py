"""Accounts: sign-up, login, projects, API keys and members."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import secrets
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from functools import partial

import msgspec
import zxcvbn
from email_validator import EmailNotValidError, validate_email

from eventcore.audit import AuditAction, AuditEntry, Detail, NoRequest, RequestOrigin, entry
from eventcore.defaults import (
    INVITATION_SECONDS,
    MAX_EMAIL_LENGTH,
    MAX_NAME_LENGTH,
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    MIN_PASSWORD_SCORE,
    PASSWORD_SCORED_CHARACTERS,
)
from eventcore.dimensions import check_paths
from eventcore.errors import (
    AuthenticationFailed,
    EmailTaken,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
)
from eventcore.origins import check_origin, checked_origins
from eventcore.ports import (
    AccountStore,
    ApiKeyCache,
    Clock,
    MembershipCache,
    PasswordHasher,
    ProjectCache,
    RateLimiter,
    RequestContext,
    TokenCodec,
    WorkspaceCaches,
)
from eventcore.retention import checked_days
from eventcore.tenancy import (
    ApiKey,
    Invitation,
    Member,
    Membership,
    Permission,
    Principal,
    Project,
    Role,
    User,
    Workspace,
    normalise_email,
)

API_KEY_PREFIX = "ek_"
_PREFIX_LENGTH = len(API_KEY_PREFIX) + 8
_NOT_AN_EMAIL = "That is not an email address"


class SignupResult(msgspec.Struct, frozen=True):
    user_id: str
    workspace_id: str
    access_token: str
    expires_in: int


class AccessToken(msgspec.Struct, frozen=True):
    access_token: str
    expires_in: int


_NO_INVITATION = "No open invitation has this token (it may have been used or have expired)."


class IssuedApiKey(msgspec.Struct, frozen=True):
    """A new key with its secret, which exists only in this value."""

    record: ApiKey
    secret: str


class IssuedInvitation(msgspec.Struct, frozen=True):
    """A new invitation with its one-time token, which exists only in this value."""

    record: Invitation
    token: str


def _digest(value: str) -> str:
    # Throttle keys never hold an email or an address in the clear.
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def new_id() -> str:
    return str(uuid.uuid4())


def hash_api_key(secret: str) -> str:
    """The SHA-256 kept in place of a secret (an API key, an invitation token)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def email_address(value: str) -> str:
    """The email in its stored form (email-validator's normalised syntax, lower-cased as the
    accounts are keyed), or InvalidRequest ``invalid_email``: syntax only, no DNS lookup, so
    no NUL, markup, quoted local part or single-label domain."""
    if len(value) > MAX_EMAIL_LENGTH:
        raise InvalidRequest(f"{_NOT_AN_EMAIL}: it is too long.", code="invalid_email")
    try:
        checked = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        # email-validator names the offending character by its code point (U+0000), never
        # echoing markup back.
        raise InvalidRequest(f"{_NOT_AN_EMAIL}: {exc}", code="invalid_email") from None
    return normalise_email(checked.normalized)


def check_password(password: str, user_inputs: list[str]) -> None:
    """InvalidRequest ``weak_password`` unless the password has 8 to 1024 characters and zxcvbn
    scores it at least ``MIN_PASSWORD_SCORE``, with ``user_inputs`` (the email, the workspace)
    counted as guessable. The message gives zxcvbn's reasons, never the password."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidRequest(
            f"A password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters.",
            code="weak_password",
        )
    verdict = zxcvbn.zxcvbn(password[:PASSWORD_SCORED_CHARACTERS], user_inputs=user_inputs)
    if verdict["score"] >= MIN_PASSWORD_SCORE:
        return
    feedback = verdict["feedback"]
    reasons = [feedback["warning"], *feedback["suggestions"]]
    said = " ".join(reason for reason in reasons if reason)
    raise InvalidRequest(
        "This password is too easy to guess"
        + (f": {said}" if said else "; use a longer one, of several uncommon words."),
        code="weak_password",
    )


def _name(value: str, what: str) -> str:
    value = value.strip()
    if not value or len(value) > MAX_NAME_LENGTH:
        raise InvalidRequest(
            f"The {what} name must be 1 to {MAX_NAME_LENGTH} characters.", code="invalid_name"
        )
    return value


class Accounts:
    """Who may use a workspace, and with which projects and keys."""

    def __init__(
        self,
        store: AccountStore,
        hasher: PasswordHasher,
        tokens: TokenCodec,
        clock: Clock,
        key_cache: ApiKeyCache,
        *,
        login_limiter: RateLimiter | None = None,
        address_limiter: RateLimiter | None = None,
        account_limiter: RateLimiter | None = None,
        signup_limiter: RateLimiter | None = None,
        membership_cache: MembershipCache | None = None,
        project_cache: ProjectCache | None = None,
        request_context: RequestContext | None = None,
        workspace_caches: WorkspaceCaches | None = None,
    ) -> None:
        self._context = request_context or NoRequest()
        self._workspace_caches = workspace_caches
        self._memberships = membership_cache
        self._projects = project_cache
        self._store = store
        self._hasher = hasher
        self._tokens = tokens
        self._clock = clock
        self._key_cache = key_cache
        self._login_limiter = login_limiter
        self._address_limiter = address_limiter
        self._account_limiter = account_limiter
        self._signup_limiter = signup_limiter
        self._dummy_hash: str | None = None
        # Records written after their answer (failed logins), until they are.
        self._pending: set[asyncio.Task[None]] = set()

    async def signup(
        self,
        email: str,
        password: str,
        workspace_name: str,
        *,
        client_address: str | None = None,
    ) -> SignupResult:
        """A new account owning a new workspace, after the request passes the per-address
        signup throttle and the email and password rules."""
        email = email_address(email)
        workspace_name = _name(workspace_name, "workspace")
        # Throttled before the password is scored, so that a flood of attempts costs neither
        # zxcvbn's nor argon2's time beyond the allowance.
        if client_address and self._signup_limiter is not None:
            wait = await self._signup_limiter.acquire(
                f"signup-address:{_digest(client_address)}", 1
            )
            if wait > 0:
                raise RateLimited(
                    "Too many signups from this address; wait before trying again.",
                    retry_after=max(1, math.ceil(wait)),
                    code="too_many_signups",
                )
        check_password(password, [email, email.partition("@")[0], workspace_name])
        if await self._store.get_user_by_email(email) is not None:
            raise EmailTaken()
        now = self._clock.now()
        user = User(new_id(), email, await self._hasher.hash(password), now)
        workspace = Workspace(new_id(), workspace_name, now)
        owner = Membership(workspace.id, user.id, Role.OWNER, now)
        audit = self._entry(
            AuditAction.SIGNUP,
            workspace.id,
            now,
            user_id=user.id,
            target=("workspace", workspace.id),
            details={"email": email},
        )
        await self._store.create_signup(user, workspace, owner, audit=audit)
        token, expires_in = self._tokens.issue(Principal(user.id, workspace.id, Role.OWNER), now)
        return SignupResult(user.id, workspace.id, token, expires_in)

    async def login(
        self,
        email: str,
        password: str,
        workspace_id: str | None = None,
        *,
        client_address: str | None = None,
    ) -> AccessToken:
        """An access token, after the attempt passes the per-address, per-account-and-address
        and per-account throttles."""
        email = email_address(email)
        await self._throttle(email, client_address)
        user = await self._store.get_user_by_email(email)
        if user is None:
            # Verify against a dummy hash anyway, so the answer takes as long as for a real
            # account and does not tell which emails have one.
            if self._dummy_hash is None:
                self._dummy_hash = await self._hasher.hash(secrets.token_urlsafe(16))
            await self._hasher.verify(self._dummy_hash, password)
        if user is None or not await self._hasher.verify(user.password_hash, password):
            if user is not None:
                # Recorded after the answer, so that it takes no longer than for an email
                # without an account (which has no workspace to record it in).
                self._after_answer(self._record_failed_login(user, self._context.origin()))
            raise AuthenticationFailed(
                "The email or password is wrong.", code="invalid_credentials"
            )
        memberships = await self._store.list_memberships(user.id)
        if workspace_id is not None:
            memberships = [m for m in memberships if m.workspace_id == workspace_id]
        if not memberships:
            raise AuthenticationFailed(
                "This account has no access to that workspace.", code="invalid_credentials"
            )
        membership = memberships[0]
        now = self._clock.now()
        await self._store.record_audit(
            self._entry(
                AuditAction.LOGIN_SUCCEEDED,
                membership.workspace_id,
                now,
                user_id=user.id,
                target=("user", user.id),
            )
        )
        token, expires_in = self._tokens.issue(
            Principal(user.id, membership.workspace_id, membership.role), now
        )
        return AccessToken(token, expires_in)

    async def _record_failed_login(self, user: User, origin: RequestOrigin) -> None:
        """A wrong password for ``user``, recorded in each workspace it belongs to."""
        now = self._clock.now()
        for membership in await self._store.list_memberships(user.id):
            await self._store.record_audit(
                entry(
                    AuditAction.LOGIN_FAILED,
                    membership.workspace_id,
                    now,
                    origin=origin,
                    user_id=user.id,
                    target=("user", user.id),
                    details={"reason": "wrong_password"},
                )
            )

    def _entry(
        self,
        action: AuditAction,
        workspace_id: str,
        at: datetime,
        *,
        actor: Principal | None = None,
        user_id: str | None = None,
        target: tuple[str, str] | None = None,
        details: dict[str, Detail] | None = None,
    ) -> AuditEntry:
        """An audit entry made in the request being served."""
        return entry(
            action,
            workspace_id,
            at,
            origin=self._context.origin(),
            actor=actor,
            user_id=user_id,
            target=target,
            details=details,
        )

    def _after_answer(self, work: Coroutine[None, None, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if not task.cancelled():
            # A record the store could not take (it was away) is lost: the answer is sent.
            task.exception()

    async def settled(self) -> None:
        """Wait until every record made after an answer is written (tests, shutdown)."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def _throttle(self, email: str, client_address: str | None) -> None:
        # The narrowest allowance first: an attempt refused for its address or its pair spends
        # nothing of the account's ceiling, so an attacker on one address uses up only the
        # pair's share of it, and the owner on another address still gets in.
        address = client_address or ""
        checks: list[tuple[RateLimiter | None, str]] = []
        if client_address:
            checks.append((self._address_limiter, f"login-address:{_digest(client_address)}"))
        checks.append((self._login_limiter, f"login-pair:{_digest(email + chr(0) + address)}"))
        checks.append((self._account_limiter, f"login-account:{_digest(email)}"))
        for limiter, key in checks:
            if limiter is None:
                continue
            wait = await limiter.acquire(key, 1)
            if wait > 0:
                raise RateLimited(
                    "Too many login attempts; wait before trying again.",
                    retry_after=max(1, math.ceil(wait)),
                    code="too_many_login_attempts",
                )

    def authenticate(self, token: str) -> Principal:
        """The principal a token was issued for, as it was then (signature and expiry only)."""
        return self._tokens.verify(token, self._clock.now())

    async def principal(self, token: str) -> Principal:
        """The token's user in its workspace with the role it has now: AuthenticationFailed
        if the membership has ended (removed, left, or never existed: a token naming a user or
        workspace that does not exist). Read through the membership cache, so a change made by
        another process is seen within its TTL (a second by default)."""
        return await self.current(self.authenticate(token))

    async def current(self, claimed: Principal) -> Principal:
        """The user of ``claimed`` in its workspace with the role it has now (as
        :meth:`principal` reads it): AuthenticationFailed if the membership has ended."""
        workspace_id, user_id = claimed.workspace_id, claimed.user_id
        role = await self._memberships.role(workspace_id, user_id) if self._memberships else None
        if role is None:
            membership = await self._store.get_membership(workspace_id, user_id)
            if membership is None:
                raise AuthenticationFailed(
                    "The access token's user is not a member of its workspace (any more).",
                    code="invalid_token",
                )
            role = membership.role
            if self._memberships is not None:
                await self._memberships.remember(workspace_id, user_id, role)
        return claimed if role is claimed.role else Principal(user_id, workspace_id, role)

    async def create_project(self, principal: Principal, name: str) -> Project:
        principal.require(Permission.MANAGE_PROJECTS)
        project = Project(
            new_id(), principal.workspace_id, _name(name, "project"), self._clock.now()
        )
        audit = self._entry(
            AuditAction.PROJECT_CREATED,
            principal.workspace_id,
            project.created_at,
            actor=principal,
            target=("project", project.id),
            details={"name": project.name},
        )
        await self._store.create_project(project, audit=audit)
        return project

    async def list_projects(self, principal: Principal) -> list[Project]:
        principal.require(Permission.READ_PROJECTS)
        return await self._store.list_projects(principal.workspace_id)

    async def project(self, principal: Principal, project_id: str) -> Project:
        """The project if it is in the principal's workspace; NotFound otherwise, whoever owns it."""
        project = await self._store.get_project(principal.workspace_id, project_id)
        if project is None:
            raise NotFound("No such project.")
        return project

    async def set_dimensions(
        self, principal: Principal, project_id: str, paths: list[str]
    ) -> Project:
        """Declare the project's dimensions (owner, admin), replacing those it had: events
        committed from then on count their values; ``eventcore rollup rebuild`` counts the
        past ones too."""
        principal.require(Permission.MANAGE_PROJECTS)
        checked = check_paths(paths)
        # The cache entry forgotten: queries in this process check paths against the new
        # declaration at once.
        return await self._change_project(
            principal,
            project_id,
            AuditAction.DIMENSIONS_CHANGED,
            {"properties": list(checked)},
            partial(self._store.set_dimensions, principal.workspace_id, project_id, checked),
        )

    async def set_retention(
        self, principal: Principal, project_id: str, retention_days: int | None
    ) -> Project:
        """Set how many days the project keeps its events (owner, admin); None keeps them for
        ever. Appends withhold events past it from now on; the next retention run (within the
        hour, or ``eventcore retention run``) expires the stored ones."""
        principal.require(Permission.MANAGE_PROJECTS)
        days = checked_days(retention_days)
        return await self._change_project(
            principal,
            project_id,
            AuditAction.RETENTION_CHANGED,
            {"retention_days": days},
            partial(self._store.set_retention, principal.workspace_id, project_id, days),
        )

    async def set_allowed_origins(
        self, principal: Principal, project_id: str, origins: object
    ) -> Project:
        """Set the origins whose pages may send with the project's keys (owner, admin); None
        or an empty list allows any (:mod:`eventcore.origins`). API processes apply it within
        the project cache's lifetime."""
        principal.require(Permission.MANAGE_PROJECTS)
        checked = checked_origins(origins)
        return await self._change_project(
            principal,
            project_id,
            AuditAction.ORIGINS_CHANGED,
            {"allowed_origins": list(checked)},
            partial(self._store.set_allowed_origins, principal.workspace_id, project_id, checked),
        )

    async def _change_project(
        self,
        principal: Principal,
        project_id: str,
        action: AuditAction,
        details: dict[str, Detail],
        change: Callable[..., Awaitable[Project | None]],
    ) -> Project:
        """One change of a project's settings, checked by the caller: stored with its audit
        entry (``change(audit=...)``), and this process's cache entry of the project forgotten;
        NotFound if the project is not in the workspace."""
        audit = self._entry(
            action,
            principal.workspace_id,
            self._clock.now(),
            actor=principal,
            target=("project", project_id),
            details=details,
        )
        project = await change(audit=audit)
        if project is None:
            raise NotFound("No such project.")
        if self._projects is not None:
            await self._projects.forget(principal.workspace_id, project_id)
        return project

    async def delete_project(self, principal: Principal, project_id: str) -> None:
        """Delete a project (owner, admin): its API keys are revoked with it (refused at once
        here, within the key cache's second elsewhere) and its data is reachable no more."""
        principal.require(Permission.MANAGE_PROJECTS)
        now = self._clock.now()
        audit = self._entry(
            AuditAction.PROJECT_DELETED,
            principal.workspace_id,
            now,
            actor=principal,
            target=("project", project_id),
        )
        revoked = await self._store.delete_project(
            principal.workspace_id, project_id, now, audit=audit
        )
        if revoked is None:
            raise NotFound("No such project.")
        for key in revoked:
            await self._key_cache.evict(key.key_hash)
        if self._projects is not None:
            await self._projects.forget(principal.workspace_id, project_id)

    async def delete_workspace(self, principal: Principal, workspace_id: str, name: str) -> None:
        """Delete the principal's workspace (owner), ``name`` repeating its name to confirm:
        every row of it goes (its API keys are refused at once here, within the key cache's
        second elsewhere; its members' tokens within the membership cache's), batches of it
        still queued are dropped, and what a shared cache holds of it is removed."""
        if workspace_id != principal.workspace_id:
            raise NotFound("No such workspace.")
        principal.require(Permission.DELETE_WORKSPACE)
        workspace = await self._store.get_workspace(workspace_id)
        if workspace is None:
            raise NotFound("No such workspace.")
        if name != workspace.name:
            raise InvalidRequest(
                "`name` must repeat the workspace's name exactly, to confirm its deletion.",
                code="confirmation_mismatch",
            )
        keys = await self._store.delete_workspace(workspace_id, self._clock.now())
        if keys is None:
            raise NotFound("No such workspace.")
        for key in keys:
            await self._key_cache.evict(key.key_hash)
        await self._forget(workspace_id, principal.user_id)
        if self._workspace_caches is not None:
            await self._workspace_caches.drop(workspace_id)

    async def create_api_key(
        self, principal: Principal, project_id: str, name: str
    ) -> IssuedApiKey:
        principal.require(Permission.MANAGE_API_KEYS)
        await self.project(principal, project_id)
        secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
        record = ApiKey(
            id=new_id(),
            workspace_id=principal.workspace_id,
            project_id=project_id,
            name=_name(name, "key"),
            prefix=secret[:_PREFIX_LENGTH],
            key_hash=hash_api_key(secret),
            created_at=self._clock.now(),
        )
        audit = self._entry(
            AuditAction.API_KEY_CREATED,
            principal.workspace_id,
            record.created_at,
            actor=principal,
            target=("api_key", record.id),
            details={"project_id": project_id, "name": record.name, "prefix": record.prefix},
        )
        await self._store.create_api_key(record, audit=audit)
        return IssuedApiKey(record, secret)

    async def list_api_keys(self, principal: Principal, project_id: str) -> list[ApiKey]:
        principal.require(Permission.MANAGE_API_KEYS)
        await self.project(principal, project_id)
        return await self._store.list_api_keys(principal.workspace_id, project_id)

    async def revoke_api_key(self, principal: Principal, key_id: str) -> None:
        principal.require(Permission.MANAGE_API_KEYS)
        now = self._clock.now()
        audit = self._entry(
            AuditAction.API_KEY_REVOKED,
            principal.workspace_id,
            now,
            actor=principal,
            target=("api_key", key_id),
        )
        record = await self._store.revoke_api_key(principal.workspace_id, key_id, now, audit=audit)
        if record is None:
            raise NotFound("No such API key.")
        await self._key_cache.evict(record.key_hash)

    async def invite(self, principal: Principal, email: str, role: Role) -> IssuedInvitation:
        """An invitation for ``email`` to take ``role`` (owner). It makes nobody a member: the
        person does, by accepting it signed in as that email. Whether the email has an account
        is neither checked nor said: every well-formed email gets the same answer."""
        principal.require(Permission.MANAGE_MEMBERS)
        now = self._clock.now()
        # The token names its workspace, so that accepting it is a lookup inside that workspace.
        token = f"{principal.workspace_id}.{secrets.token_urlsafe(32)}"
        record = Invitation(
            id=new_id(),
            workspace_id=principal.workspace_id,
            email=email_address(email),
            role=role,
            token_hash=hash_api_key(token),
            created_at=now,
            expires_at=now + timedelta(seconds=INVITATION_SECONDS),
        )
        audit = self._entry(
            AuditAction.MEMBER_INVITED,
            principal.workspace_id,
            now,
            actor=principal,
            target=("invitation", record.id),
            details={"email": record.email, "role": role.value},
        )
        await self._store.create_invitation(record, audit=audit)
        return IssuedInvitation(record, token)

    async def accept_invitation(self, principal: Principal, token: str) -> Membership:
        """Become a member with the invitation's role, signed in as the email it was made for.

        NotFound for a token that is unknown, used or expired (the same answer for each);
        PermissionDenied when signed in as another email; AlreadyMember if one already."""
        workspace_id, dot, _ = token.partition(".")
        if not dot or not workspace_id:
            raise NotFound(_NO_INVITATION)
        invitation = await self._store.find_invitation(workspace_id, hash_api_key(token))
        now = self._clock.now()
        if invitation is None or invitation.accepted_at is not None or invitation.expires_at <= now:
            raise NotFound(_NO_INVITATION)
        user = await self._store.get_user(principal.user_id)
        if user is None or user.email != invitation.email:
            raise PermissionDenied("This invitation is for another email; sign in as that one.")
        membership = Membership(workspace_id, user.id, invitation.role, now)
        audit = self._entry(
            AuditAction.INVITATION_ACCEPTED,
            workspace_id,
            now,
            actor=principal,
            target=("user", user.id),
            details={"invitation_id": invitation.id, "role": invitation.role.value},
        )
        if not await self._store.accept_invitation(
            workspace_id, invitation.id, membership, now, audit=audit
        ):
            raise NotFound(_NO_INVITATION)
        return membership

    async def workspaces(self, principal: Principal) -> list[tuple[Workspace, Role]]:
        """The workspaces the signed-in user belongs to, each with the user's role there."""
        found = []
        for membership in await self._store.list_memberships(principal.user_id):
            workspace = await self._store.get_workspace(membership.workspace_id)
            if workspace is not None:
                found.append((workspace, membership.role))
        return found

    async def switch_workspace(self, principal: Principal, workspace_id: str) -> AccessToken:
        """An access token for the same user in another of its workspaces (NotFound for one it
        does not belong to, as for one that does not exist), recorded there as a login."""
        membership = await self._store.get_membership(workspace_id, principal.user_id)
        if membership is None:
            raise NotFound("You are not a member of that workspace.")
        now = self._clock.now()
        await self._store.record_audit(
            self._entry(
                AuditAction.LOGIN_SUCCEEDED,
                workspace_id,
                now,
                user_id=principal.user_id,
                target=("user", principal.user_id),
            )
        )
        token, expires_in = self._tokens.issue(
            Principal(principal.user_id, workspace_id, membership.role), now
        )
        return AccessToken(token, expires_in)

    async def list_members(self, principal: Principal) -> list[Member]:
        """The workspace's members (any member may see who they are)."""
        return await self._store.list_members(principal.workspace_id)

    async def change_role(self, principal: Principal, user_id: str, role: Role) -> Membership:
        """The member's new role (owner); LastOwner rather than leave the workspace ownerless."""
        principal.require(Permission.MANAGE_MEMBERS)
        audit = self._entry(
            AuditAction.ROLE_CHANGED,
            principal.workspace_id,
            self._clock.now(),
            actor=principal,
            target=("user", user_id),
            details={"role": role.value},
        )
        changed = await self._store.change_role(principal.workspace_id, user_id, role, audit=audit)
        if changed is None:
            raise NotFound("No such member.")
        await self._forget(principal.workspace_id, user_id)
        return changed

    async def remove_member(self, principal: Principal, user_id: str) -> None:
        """Remove a member (owner), or leave the workspace (any member, for itself); LastOwner
        rather than leave the workspace ownerless."""
        if user_id != principal.user_id:
            principal.require(Permission.MANAGE_MEMBERS)
        audit = self._entry(
            AuditAction.MEMBER_REMOVED,
            principal.workspace_id,
            self._clock.now(),
            actor=principal,
            target=("user", user_id),
            details={"left": user_id == principal.user_id},
        )
        if not await self._store.remove_membership(principal.workspace_id, user_id, audit=audit):
            raise NotFound("No such member.")
        await self._forget(principal.workspace_id, user_id)

    async def _forget(self, workspace_id: str, user_id: str) -> None:
        if self._memberships is not None:
            await self._memberships.forget(workspace_id, user_id)


class KeyResolver:
    """API key secret to its stored record, through a short-lived cache."""

    def __init__(
        self, store: AccountStore, cache: ApiKeyCache, projects: ProjectCache | None = None
    ) -> None:
        self._store = store
        self._cache = cache
        self._projects = projects

    async def resolve(self, secret: str | None) -> ApiKey:
        if not secret:
            raise AuthenticationFailed(
                "Send an API key as `Authorization: Bearer <key>` or `X-API-Key`."
            )
        key_hash = hash_api_key(secret)
        record = await self._cache.get(key_hash)
        if record is None:
            record = await self._store.find_api_key(key_hash)
            if record is None:
                raise AuthenticationFailed("Unknown API key.", code="invalid_api_key")
            await self._cache.put(record)
        if not hmac.compare_digest(record.key_hash, key_hash):
            raise AuthenticationFailed("Unknown API key.", code="invalid_api_key")
        if record.revoked_at is not None:
            raise AuthenticationFailed("This API key has been revoked.", code="revoked_api_key")
        return record

    async def check_origin(self, record: ApiKey, origin: str | None) -> None:
        """OriginNotAllowed if the key's project does not allow pages of ``origin`` (read
        through the project cache: a change applies within its lifetime)."""
        if origin is None:
            return
        project = (
            None
            if self._projects is None
            else await self._projects.get(record.workspace_id, record.project_id)
        )
        if project is None:
            project = await self._store.get_project(record.workspace_id, record.project_id)
            if project is None:
                # A deleted project's keys are revoked: nothing sent with one is accepted.
                return
            if self._projects is not None:
                await self._projects.remember(project)
        check_origin(project.allowed_origins, origin)
