"""A project's allowed origins: the lists accepted, and which pages they let send."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventcore.defaults import MAX_ALLOWED_ORIGINS
from eventcore.errors import InvalidRequest
from eventcore.origins import OriginNotAllowed, check_origin, checked_origins


def test_origins_are_lower_cased_and_kept_once_in_order() -> None:
    """The list is kept as browsers send origins: lower case, each once, in the order given."""
    given_origins = ["HTTPS://Shop.Example", "http://127.0.0.1:5173", "https://shop.example"]

    assert checked_origins(given_origins) == ("https://shop.example", "http://127.0.0.1:5173")
    assert checked_origins(["http://[::1]:8080"]) == ("http://[::1]:8080",)
    assert checked_origins(None) == ()
    assert checked_origins([]) == ()


@pytest.mark.parametrize(
    "origins",
    [
        ["https://shop.example/"],
        ["https://shop.example/path"],
        ["https://shop.example?x=1"],
        ["https://user@shop.example"],
        ["ftp://shop.example"],
        ["shop.example"],
        ["null"],
        ["https://shop..example"],
        ["https://"],
        [1],
        "https://shop.example",
        {"origin": "https://shop.example"},
        ["https://a.example"] * (MAX_ALLOWED_ORIGINS + 1),
        ["https://" + "a" * 300 + ".example"],
    ],
)
def test_anything_but_a_list_of_origins_is_refused(origins: object) -> None:
    with pytest.raises(InvalidRequest) as refused:
        checked_origins(origins)
    assert refused.value.code == "invalid_request"


def test_an_empty_list_allows_every_page_and_a_list_only_its_own() -> None:
    """No list: any origin. A list: its origins (in any case) and requests with no Origin."""
    check_origin((), "https://anyone.example")
    allowed = ("https://shop.example",)
    check_origin(allowed, "https://shop.example")
    check_origin(allowed, "HTTPS://SHOP.EXAMPLE")
    check_origin(allowed, None)
    for other in ("https://evil.example", "http://shop.example", "null"):
        with pytest.raises(OriginNotAllowed) as refused:
            check_origin(allowed, other)
        assert refused.value.code == "origin_not_allowed"
        assert other in str(refused.value)


@given(st.text(max_size=400))
def test_a_refused_origin_is_never_stored_and_an_accepted_one_is_allowed(text: str) -> None:
    """Any text is either refused or kept as an origin that then allows exactly itself."""
    try:
        (kept,) = checked_origins([text])
    except InvalidRequest:
        return
    assert kept == text.lower()
    check_origin((kept,), text)
