"""Routes about persons and dimensions: unique users over time, funnels, declared dimensions
and breakdowns by them.

The analytics answers go out as the use case's JSON bytes with an ``ETag``, as the counts do.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK
from litestar.types import ControllerRouterHandler

from eventcore.aggregation import Granularity
from eventcore.defaults import DEFAULT_BREAKDOWN_LIMIT, MAX_BREAKDOWN_LIMIT
from eventcore.dimensions import Breakdown
from eventcore.entrypoints.http.analytics import END, READ, START, WHERE, parse_time
from eventcore.entrypoints.http.conditional import json_answer
from eventcore.entrypoints.http.errors import (
    ACCESS_TOKEN,
    JSON_BODY,
    NOT_FOUND,
    PATH_PARAMETERS,
    ROLE,
    api_errors,
)
from eventcore.entrypoints.http.openapi import USER_AUTH
from eventcore.errors import InvalidRequest
from eventcore.funnels import FunnelQuery, FunnelResult
from eventcore.persons import UserSeries
from eventcore.platform import Platform
from eventcore.tenancy import Principal, Project


@get(
    "/v1/analytics/users",
    tags=["analytics"],
    security=USER_AUTH,
    summary="Distinct persons per bucket and over the window (hour or day buckets)",
    responses=api_errors(READ, {400: ("window_too_large",)}),
)
async def users(
    request: Request[Any, Any, Any],
    platform: NamedDependency[Platform],
    principal: NamedDependency[Principal],
    project_id: FromQuery[str],
    start: Annotated[str | None, START] = None,
    end: Annotated[str | None, END] = None,
    granularity: FromQuery[Granularity] = Granularity.HOUR,
    event_type: FromQuery[str | None] = None,
    where: Annotated[list[str] | None, QueryParameter(description=WHERE)] = None,
) -> Response[UserSeries]:
    answer = await platform.analytics.users_json(
        principal,
        project_id,
        start=parse_time("start", start),
        end=parse_time("end", end),
        granularity=granularity,
        event_type=event_type,
        where=where or (),
    )
    return json_answer(request, answer)


@get(
    "/v1/analytics/breakdown",
    tags=["analytics"],
    security=USER_AUTH,
    summary="Events and persons per value of a declared dimension, largest first",
    responses=api_errors(READ, {400: ("window_too_large",)}),
)
async def breakdown(
    request: Request[Any, Any, Any],
    platform: NamedDependency[Platform],
    principal: NamedDependency[Principal],
    project_id: FromQuery[str],
    prop: Annotated[
        str | None, QueryParameter(name="property", description="A declared dimension (required)")
    ] = None,
    start: Annotated[str | None, START] = None,
    end: Annotated[str | None, END] = None,
    event_type: FromQuery[str | None] = None,
    where: Annotated[list[str] | None, QueryParameter(description=WHERE)] = None,
    limit: Annotated[
        int, QueryParameter(description=f"Values listed at most, 1 to {MAX_BREAKDOWN_LIMIT}")
    ] = DEFAULT_BREAKDOWN_LIMIT,
) -> Response[Breakdown]:
    if prop is None:
        raise InvalidRequest("`property` is required: a declared dimension.", code="invalid_query")
    answer = await platform.analytics.breakdown_json(
        principal,
        project_id,
        prop,
        start=parse_time("start", start),
        end=parse_time("end", end),
        event_type=event_type,
        where=where or (),
        limit=limit,
    )
    return json_answer(request, answer)


class DimensionsRequest(msgspec.Struct, forbid_unknown_fields=True):
    # Up to MAX_DIMENSIONS paths: the use case checks them, with a message saying which rule.
    properties: list[str]


class DimensionsView(msgspec.Struct):
    project_id: str
    properties: list[str]

    @classmethod
    def of(cls, project: Project) -> DimensionsView:
        return cls(project.id, list(project.dimensions))


@put(
    "/v1/projects/{project_id:str}/dimensions",
    tags=["projects"],
    security=USER_AUTH,
    status_code=HTTP_200_OK,
    summary="Declare the project's dimensions, replacing its list (owner, admin)",
    responses=api_errors(
        JSON_BODY, ACCESS_TOKEN, ROLE, NOT_FOUND, PATH_PARAMETERS, {400: ("invalid_dimensions",)}
    ),
)
async def set_dimensions(
    project_id: FromPath[str],
    data: JSONBody[DimensionsRequest],
    platform: NamedDependency[Platform],
    principal: NamedDependency[Principal],
) -> DimensionsView:
    return DimensionsView.of(
        await platform.accounts.set_dimensions(principal, project_id, data.properties)
    )


@get(
    "/v1/projects/{project_id:str}/dimensions",
    tags=["projects"],
    security=USER_AUTH,
    summary="The project's declared dimensions (any member)",
    responses=api_errors(ACCESS_TOKEN, NOT_FOUND, PATH_PARAMETERS),
)
async def dimensions(
    project_id: FromPath[str],
    platform: NamedDependency[Platform],
    principal: NamedDependency[Principal],
) -> DimensionsView:
    return DimensionsView.of(await platform.accounts.project(principal, project_id))


@post(
    "/v1/analytics/funnel",
    tags=["analytics"],
    security=USER_AUTH,
    status_code=HTTP_200_OK,
    summary="Persons who did the steps in order, each within the window of their first step",
    responses=api_errors(READ, JSON_BODY, {400: ("window_too_large",)}),
)
async def funnel(
    request: Request[Any, Any, Any],
    data: JSONBody[FunnelQuery],
    platform: NamedDependency[Platform],
    principal: NamedDependency[Principal],
) -> Response[FunnelResult]:
    return json_answer(request, await platform.analytics.funnel_json(principal, data))


ROUTES: list[ControllerRouterHandler] = [users, breakdown, funnel, set_dimensions, dimensions]
