"""Product analytics through the library API (the platform on in-memory adapters, as code that
embeds eventcore tests itself): persons, unique users, dimensions, breakdowns and funnels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from eventcore import FunnelQuery, FunnelStep, Granularity, InvalidRequest, ProjectRef
from eventcore.adapters.clock import ManualClock
from eventcore.adapters.memory import build_memory_platform

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)


async def test_the_library_answers_who_how_many_by_what_and_in_which_order() -> None:
    ec = build_memory_platform(clock=ManualClock(NOW))
    token = (
        await ec.accounts.signup("me@example.com", "correct horse battery", "Acme")
    ).access_token
    me = ec.accounts.authenticate(token)
    shop = await ec.accounts.create_project(me, "shop")
    declared = await ec.accounts.set_dimensions(me, shop.id, ["plan"])
    assert declared.dimensions == ("plan",)

    base = NOW - timedelta(hours=3)
    events = [
        {
            "id": f"e{n}",
            "type": kind,
            "user_id": who,
            "timestamp": (base + timedelta(minutes=n)).isoformat(),
            "properties": {"plan": plan},
        }
        for n, (kind, who, plan) in enumerate(
            [
                ("view", "ada", "pro"),
                ("buy", "ada", "pro"),
                ("view", "bob", "free"),
                ("view", "cy", "free"),
            ]
        )
    ]
    receipt = await ec.ingestor.submit(ProjectRef(me.workspace_id, shop.id), events)
    assert receipt.accepted == 4

    users = await ec.analytics.users(me, shop.id, granularity=Granularity.DAY)
    assert (users.total, users.relative_error) == (3, 0.0)
    free = await ec.analytics.users(me, shop.id, where=["plan:free"])
    assert free.total == 2
    plans = await ec.analytics.breakdown(me, shop.id, "plan")
    assert [(v.value, v.count, v.users) for v in plans.values] == [("free", 2, 2), ("pro", 2, 1)]
    funnel = await ec.analytics.funnel(
        me,
        FunnelQuery(
            project_id=shop.id,
            steps=[FunnelStep("view"), FunnelStep("buy")],
            window_seconds=3600,
            start=NOW - timedelta(days=1),
            end=NOW,
        ),
    )
    assert [s.users for s in funnel.steps] == [3, 1]
    with pytest.raises(InvalidRequest):
        await ec.analytics.breakdown(me, shop.id, "country")
