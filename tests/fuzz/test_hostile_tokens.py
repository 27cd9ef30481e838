"""Access tokens signed with the server's own secret but holding claims it never issues.

Whoever holds the secret (or finds a way to have the server sign) is not this suite's concern: the
point is that no claim of any JSON type, however nested, can make the server answer anything but
401 `invalid_token` (the client raises on a 500), nor log an error, nor let the request through.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.conftest import start_api
from tests.fuzz.support import Token, examples, no_error_logged, write
from tests.http.support import Api, Tenant, assert_error, bearer
from tests.support.tokens import CLAIMS, TEXT_CLAIMS, good_claims, sign

# Any JSON value, with the numbers Python's `json` also reads (NaN, Infinity, huge exponents).
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from([Token(b"NaN"), Token(b"Infinity"), Token(b"-Infinity"), Token(b"1e999")]),
)
JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def _issued_type(claim: str, value: Any) -> bool:
    """Whether ``value`` has the JSON type the server issues for ``claim``."""
    if claim in TEXT_CLAIMS:
        return isinstance(value, str)
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class Target:
    api: Api
    tenant: Tenant
    secret: str

    def claims(self) -> dict[str, Any]:
        return good_claims(self.tenant.owner.user_id, self.tenant.owner.workspace_id, time.time())

    def get_projects(self, token: str) -> Any:
        with no_error_logged():
            return self.api.client.get("/v1/projects", headers=bearer(token))


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    api = start_api(tmp_path_factory.mktemp("tokens") / "eventcore-data")
    tenant = api.tenant()
    yield Target(api, tenant, (api.data_dir / "jwt-secret").read_text().strip())
    api.stop()


SETTINGS = settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@SETTINGS
@given(claim=st.sampled_from(CLAIMS), value=JSON)
def test_a_claim_of_any_other_type_is_an_invalid_token(
    target: Target, claim: str, value: Any
) -> None:
    """Any JSON value of another type than the server issues, in any claim: 401."""
    if _issued_type(claim, value):
        value = [value]  # the same value, one level deeper: never the issued type
    token = sign(write({**target.claims(), claim: value}), target.secret)

    assert_error(target.get_projects(token), 401, "invalid_token")


@SETTINGS
@given(extra=st.dictionaries(st.sampled_from(["nbf", "aud", "jti", "kid"]), JSON, min_size=1))
def test_extra_claims_never_break_the_server(target: Target, extra: dict[str, Any]) -> None:
    """Claims the server does not issue (some of which PyJWT checks on its own) give a 200 or
    a 401, never anything else."""
    token = sign(write({**target.claims(), **extra}), target.secret)

    response = target.get_projects(token)

    if response.status_code != 200:
        assert_error(response, 401, "invalid_token")
