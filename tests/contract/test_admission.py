"""The Admission contract: one ingest call's rate limit and committed-ids lookup, asked together.

Every implementation is built with a burst of ADMISSION_BURST events and a refill so slow (one
event an hour) that no test can see it, so each answer depends on the calls before it alone.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from msgspec import Raw

from eventcore.events import Event, IngestBatch
from eventcore.tenancy import ProjectRef
from tests.contract.implementations import ADMISSION_BURST, AdmissionKit

WEB = ProjectRef("ws-a", "web")
APP = ProjectRef("ws-a", "app")
OTHER = ProjectRef("ws-b", "web")
AT = datetime(2026, 1, 1, tzinfo=UTC)


def committed(tenant: ProjectRef, *ids: str) -> IngestBatch:
    events = [Event(i, "t", AT, Raw(b"{}")) for i in ids]
    return IngestBatch(tenant.workspace_id, tenant.project_id, AT, events)


async def test_an_allowed_call_learns_which_of_its_ids_are_committed(
    admission_kit: AdmissionKit,
) -> None:
    """Allowed: the answer names exactly the ids of the tenant's project known committed."""
    await admission_kit.committed.remember([committed(WEB, "a", "b"), committed(APP, "c")])
    admitted = await admission_kit.admission.admit(WEB, 3, ["a", "c", "d"])
    assert admitted.wait == 0
    assert admitted.known == frozenset({"a"})


async def test_ids_of_another_workspace_are_never_known(admission_kit: AdmissionKit) -> None:
    """The same id committed in another workspace is not known here."""
    await admission_kit.committed.remember([committed(OTHER, "a")])
    admitted = await admission_kit.admission.admit(WEB, 1, ["a"])
    assert (admitted.wait, admitted.known) == (0, frozenset())


async def test_every_event_sent_counts_against_the_rate(admission_kit: AdmissionKit) -> None:
    """The allowance counts the events sent, with or without ids to look up; once spent, a call
    is refused with a wait and nothing is looked up."""
    await admission_kit.committed.remember([committed(WEB, "a")])
    first = await admission_kit.admission.admit(WEB, ADMISSION_BURST - 1, [])
    assert first.wait == 0
    second = await admission_kit.admission.admit(WEB, 1, ["a"])
    assert (second.wait, second.known) == (0, frozenset({"a"}))
    refused = await admission_kit.admission.admit(WEB, 1, ["a"])
    assert refused.wait > 0
    assert refused.known == frozenset()


async def test_the_allowance_belongs_to_the_workspace(admission_kit: AdmissionKit) -> None:
    """Projects of a workspace share one allowance; another workspace has its own."""
    assert (await admission_kit.admission.admit(WEB, ADMISSION_BURST, [])).wait == 0
    assert (await admission_kit.admission.admit(APP, 1, [])).wait > 0
    assert (await admission_kit.admission.admit(OTHER, ADMISSION_BURST, [])).wait == 0


async def test_a_call_larger_than_the_burst_passes_from_a_full_bucket(
    admission_kit: AdmissionKit,
) -> None:
    """As the rate limiter: a call over the burst is possible at all, from a full bucket only."""
    assert (await admission_kit.admission.admit(WEB, ADMISSION_BURST + 3, [])).wait == 0
    assert (await admission_kit.admission.admit(WEB, 1, [])).wait > 0


async def test_concurrent_calls_each_get_their_own_answer(admission_kit: AdmissionKit) -> None:
    """Calls made at once (which a shared cache may send in one round trip) are each answered
    for themselves, and together they spend the allowance exactly: the burst admits that many
    single-event calls and refuses the rest."""
    tenants = [ProjectRef("ws-c", f"p{n}") for n in range(3)]
    await admission_kit.committed.remember([committed(t, f"id-{t.project_id}") for t in tenants])
    calls = [
        admission_kit.admission.admit(tenants[n % 3], 1, [f"id-p{n % 3}", "new"])
        for n in range(ADMISSION_BURST + 4)
    ]
    answers = await asyncio.gather(*calls)
    allowed = [(n, a) for n, a in enumerate(answers) if a.wait == 0]
    assert len(allowed) == ADMISSION_BURST
    for n, admitted in allowed:
        assert admitted.known == frozenset({f"id-p{n % 3}"})
    assert all(a.known == frozenset() for a in answers if a.wait > 0)
