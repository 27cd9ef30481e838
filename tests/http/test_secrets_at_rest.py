"""Secrets at rest: passwords only as argon2id hashes, API keys only as SHA-256 digests."""

from __future__ import annotations

import hashlib
import sqlite3

from dependency_injector import providers

from eventcore.adapters.security import Argon2Hasher
from eventcore.entrypoints.bootstrap import ApiContainer
from tests.http.support import PASSWORD, ApiFactory


def test_the_database_holds_no_password_and_no_api_key_in_clear(make_api: ApiFactory) -> None:
    """After sign-up and key creation, the store has an argon2id hash and a SHA-256, never the secrets."""

    def real_hasher(container: ApiContainer) -> None:
        container.hash_function.override(providers.Singleton(Argon2Hasher))

    api = make_api(configure=real_hasher)
    account = api.signup()
    project_id = api.create_project(account)
    secret = api.create_key(account, project_id)["key"]
    assert api.login(account.email).status_code == 200

    database = api.data_dir / "eventcore.sqlite3"
    with sqlite3.connect(database) as db:
        (password_hash,) = db.execute("SELECT password_hash FROM users").fetchone()
        (key_hash,) = db.execute("SELECT key_hash FROM api_keys").fetchone()
    assert password_hash.startswith("$argon2id$")
    assert key_hash == hashlib.sha256(secret.encode()).hexdigest()
    files = b"".join(path.read_bytes() for path in api.data_dir.iterdir() if path.is_file())
    assert PASSWORD.encode() not in files
    assert secret.encode() not in files
