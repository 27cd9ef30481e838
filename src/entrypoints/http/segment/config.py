"""The configuration each browser SDK loads before it sends anything, for a write key.

analytics.js (``@segment/analytics-next``) is given eventcore's address as its ``cdnURL`` and
asks ``GET /v1/projects/<writeKey>/settings``: the answer enables its Segment.io destination,
with eventcore's ``/v1`` as its ``apiHost`` (it then posts to ``/v1/t``, ``/v1/p``, ...), and
nothing else: no third-party integration, no remote plugin or middleware, no metrics (which it
would send to Segment). RudderStack's JavaScript SDK is given it as its ``configUrl`` and asks
``GET /sourceConfig/?...&writeKey=<writeKey>`` (with the key as Basic credentials too): the
answer is an enabled source with no destinations and its error and metrics reports off.

The key is checked as on ingest: unknown or revoked is a 401, in the protocol's error shape.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK
from litestar.types import ControllerRouterHandler

from eventcore.entrypoints.http.errors import EVERY_REQUEST, Codes, describe_errors, merge_codes
from eventcore.entrypoints.http.segment.keys import check_key, query_write_key
from eventcore.entrypoints.http.segment.openapi import ERROR_MEANINGS, SegmentError
from eventcore.errors import InvalidRequest
from eventcore.platform import Platform

# A Host header as a browser sends it: a name or an address, and a port.
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$")
_CONFIG_CODES: Codes = {
    400: ("invalid_path", "invalid_host"),
    401: ("unauthorized", "invalid_api_key", "revoked_api_key"),
    403: ("origin_not_allowed",),
    503: ("database_unavailable",),
}
_CODES = merge_codes(EVERY_REQUEST, _CONFIG_CODES)
_RESPONSES = describe_errors(
    _CODES, {s: m for s, m in ERROR_MEANINGS.items() if s in _CODES}, SegmentError
)


def _address(request: Request[Any, Any, Any]) -> tuple[str, str]:
    """The scheme and host the browser reached eventcore at: where the SDK is to send."""
    host = request.headers.get("host", "")
    if not _HOST.match(host):
        raise InvalidRequest("The Host header is not a host name and port.", code="invalid_host")
    return request.url.scheme, host


def segment_settings(write_key: str, scheme: str, host: str) -> dict[str, Any]:
    """analytics.js's settings: its Segment.io destination to eventcore, and nothing more."""
    return {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": f"{host}/v1",
                "protocol": scheme,
                "unbundledIntegrations": [],
                "addBundledMetadata": False,
                "maybeBundledConfigIds": {},
            }
        },
        "plan": {},
        "edgeFunction": {},
        "analyticsNextEnabled": True,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
    }


@get(
    "/projects/{write_key:str}/settings",
    status_code=HTTP_200_OK,
    operation_id="analyticsJsSettings",
    summary="analytics.js settings for a write key",
    description="What `@segment/analytics-next` loads first when given eventcore's address as"
    " its `cdnURL`: its Segment.io destination sends to this server's `/v1` (the scheme and"
    " host of this request), and nothing else is enabled. The write key is in the path.",
    security=[{}],
    response_description="The settings (`integrations.Segment.io.apiHost` is `<host>/v1`).",
    responses=_RESPONSES,
)
async def analytics_js_settings(
    request: Request[Any, Any, Any],
    platform: NamedDependency[Platform],
    write_key: str = Parameter(description="The eventcore API key"),
) -> dict[str, Any]:
    scheme, host = _address(request)
    await check_key(request, platform, write_key)
    return segment_settings(write_key, scheme, host)


@get(
    ["/sourceConfig", "/sourceConfig/"],
    status_code=HTTP_200_OK,
    operation_id="rudderstackSourceConfig",
    summary="RudderStack JavaScript SDK source configuration for a write key",
    description="What `@rudderstack/analytics-js` loads first when given eventcore's address as"
    " its `configUrl`: an enabled source with no destinations. The write key is the query's"
    " `writeKey` or the user name of `Authorization: Basic`.",
    response_description="The source (`source.id` is the key's project).",
    responses=_RESPONSES,
)
async def rudderstack_source_config(
    request: Request[Any, Any, Any], platform: NamedDependency[Platform]
) -> dict[str, Any]:
    record = await check_key(request, platform, query_write_key(request))
    return {
        "isHosted": False,
        "source": {
            "id": record.project_id,
            "name": record.project_id,
            "workspaceId": record.workspace_id,
            "enabled": True,
            "config": {
                "statsCollection": {
                    "errors": {"enabled": False},
                    "metrics": {"enabled": False},
                }
            },
            "destinations": [],
        },
    }


SEGMENT_ROUTES: list[ControllerRouterHandler] = [analytics_js_settings]
RUDDERSTACK_ROUTES: list[ControllerRouterHandler] = [rudderstack_source_config]
