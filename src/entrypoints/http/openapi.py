"""What the OpenAPI document says beyond what Litestar derives from the handlers: the credentials
each route takes, and the rules the edge applies to every request."""

from __future__ import annotations

from collections.abc import Iterator

from litestar import Litestar
from litestar.openapi.spec import (
    OpenAPIHeader,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Reference,
    Schema,
    SecurityRequirement,
    SecurityScheme,
)


def _header(name: str, description: str) -> SecurityScheme:
    return SecurityScheme(
        type="apiKey", name=name, security_scheme_in="header", description=description
    )


SECURITY_SCHEMES: dict[str, SecurityScheme | Reference] = {
    "AccessToken": SecurityScheme(
        type="http",
        scheme="bearer",
        bearer_format="JWT",
        description="A user's access token, from `POST /v1/auth/signup` or `/v1/auth/login`."
        " The console sends it in its HttpOnly session cookie instead (`POST /v1/auth/session`),"
        " and then, with any method but GET and HEAD, the `eventcore_csrf` cookie's value as"
        " `X-CSRF-Token` (else 403 `csrf_failed`).",
    ),
    "ApiKey": _header("X-API-Key", "A project's API key."),
    "ApiKeyBearer": SecurityScheme(
        type="http", scheme="bearer", description="A project's API key as a bearer token."
    ),
    "WriteKey": _header("X-Write-Key", "A project's API key as a Segment write key."),
    "WriteKeyBasic": SecurityScheme(
        type="http",
        scheme="basic",
        description=(
            'A project\'s API key as the user name, the password empty: `Basic base64("<key>:")`.'
            " Credentials that are not base64 are a 401 `invalid_api_key`."
        ),
    ),
}

USER_AUTH: list[SecurityRequirement] = [{"AccessToken": []}]
API_KEY_AUTH: list[SecurityRequirement] = [{"ApiKey": []}, {"ApiKeyBearer": []}]
# The Segment routes, in the order they look for the key (`segment.keys.header_write_key`);
# the empty requirement last is a body that carries the key itself as `writeKey`, which no
# security scheme can state.
WRITE_KEY_AUTH: list[SecurityRequirement] = [
    {"WriteKey": []},
    {"WriteKeyBasic": []},
    {"ApiKeyBearer": []},
    {"ApiKey": []},
    {},
]

# What `deps.refuse_unusable_parameters` refuses in any query or path parameter: NUL (and text
# that is not UTF-8, which no JSON string can hold).
STORABLE_TEXT = "^[^\\u0000]*$"

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def complete_document(app: Litestar) -> None:
    """State in the app's OpenAPI document what its response specs and parameters cannot."""
    for method, operation in _operations(app):
        _document_retry_after(operation)
        if method not in ("get", "head"):
            _document_csrf(operation)
        for parameter in operation.parameters or ():
            if isinstance(parameter, Parameter) and parameter.param_in in ("query", "path"):
                _document_storable(parameter)


def _operations(app: Litestar) -> Iterator[tuple[str, Operation]]:
    for item in (app.openapi_schema.paths or {}).values():
        for method in _METHODS:
            operation = getattr(item, method, None)
            if operation is not None:
                yield method, operation


_RETRY_AFTER = OpenAPIHeader(
    schema=Schema(type=OpenAPIType.INTEGER, minimum=1),
    description="Seconds to wait before sending again",
    required=True,
)


def _document_retry_after(operation: Operation) -> None:
    """Every 429 and 503 answer carries `Retry-After` (``errors.domain_error``)."""
    for status in ("429", "503"):
        response = (operation.responses or {}).get(status)
        if isinstance(response, OpenAPIResponse):
            response.headers = {**(response.headers or {}), "Retry-After": _RETRY_AFTER}


def _document_csrf(operation: Operation) -> None:
    """A route that takes the access token, called with an unsafe method, refuses the session
    cookie without its CSRF value (``deps.session_token``): 403 `csrf_failed`."""
    if not any("AccessToken" in requirement for requirement in operation.security or ()):
        return
    response = (operation.responses or {}).get("403")
    if not isinstance(response, OpenAPIResponse) or "`csrf_failed`" in response.description:
        return
    described = response.description.rstrip(".")
    joiner = ", " if "Codes: " in described else ". Codes: "
    response.description = f"{described}{joiner}`csrf_failed`."


def _document_storable(parameter: Parameter) -> None:
    """A text parameter's schema excludes what the edge refuses, unless a pattern or format of
    its own does already."""
    schema = parameter.schema
    if not isinstance(schema, Schema) or schema.pattern or schema.format:
        return
    texts = [schema, *(s for s in schema.one_of or () if isinstance(s, Schema))]
    if any(s.type == OpenAPIType.STRING for s in texts):
        schema.pattern = STORABLE_TEXT
