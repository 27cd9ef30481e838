"""Two embedded API processes on one data dir (`serve --workers 2`): neither serves a cached
answer from before the other's commit, and each sees the other's suppressions within the
suppression cache's second."""

from __future__ import annotations

import time
from pathlib import Path

from eventcore.defaults import SUPPRESSION_CACHE_SECONDS
from tests.http.support import ApiFactory


def test_a_cached_answer_gives_way_to_another_processes_commit(
    make_api: ApiFactory, tmp_path: Path
) -> None:
    here = make_api(data_dir=tmp_path / "shared-data")
    there = make_api(data_dir=tmp_path / "shared-data")
    tenant = here.tenant()
    counts = f"/v1/analytics/counts?project_id={tenant.project_id}"
    types = f"/v1/analytics/event-types?project_id={tenant.project_id}"

    def seen() -> tuple[int, list[dict[str, object]]]:
        total = there.client.get(counts, headers=tenant.headers)
        listed = there.client.get(types, headers=tenant.headers)
        assert total.status_code == listed.status_code == 200, (total.text, listed.text)
        return total.json()["total"], listed.json()["event_types"]

    assert seen() == (0, [])  # now cached in the other process
    assert here.ingest(tenant, {"id": "e1", "type": "signup"}).status_code == 202
    assert seen() == (1, [{"event_type": "signup", "count": 1}])
    assert there.ingest(tenant, {"id": "e2", "type": "signup"}).status_code == 202
    assert here.client.get(counts, headers=tenant.headers).json()["total"] == 2


def test_another_process_sees_a_suppression_and_its_lift_within_a_second(
    make_api: ApiFactory, tmp_path: Path
) -> None:
    """The other process reads the project's suppressions once a second: until then it may
    accept a newly suppressed person's event, which is not stored all the same; after, it
    refuses them; a lift is seen within the second too."""
    here = make_api(data_dir=tmp_path / "shared-data")
    there = make_api(data_dir=tmp_path / "shared-data")
    tenant = here.tenant()
    ada = {"type": "view", "user_id": "ada"}
    assert there.ingest(tenant, {**ada, "id": "e1"}).json()["accepted"] == 1  # cached: nobody
    read_at = time.monotonic()
    suppressed = here.client.post(
        "/v1/deletions",
        json={"project_id": tenant.project_id, "user_ids": ["ada"], "suppress": True},
        headers=tenant.headers,
    )
    assert suppressed.status_code == 202, suppressed.text

    there.ingest(tenant, {**ada, "id": "e2"})  # accepted or refused: either way not stored
    time.sleep(max(0.0, read_at + SUPPRESSION_CACHE_SECONDS + 0.1 - time.monotonic()))
    refused = there.ingest(tenant, {**ada, "id": "e3"}).json()

    assert (refused["accepted"], refused["rejected"][0]["code"]) == (0, "suppressed")
    ids = {e["id"] for e in here.all_events(tenant.owner, tenant.project_id)}
    assert ids.isdisjoint({"e2", "e3"})
    lifted = here.client.delete(
        f"/v1/suppressions/ada?project_id={tenant.project_id}", headers=tenant.headers
    )
    assert lifted.status_code == 204, lifted.text
    lifted_at = time.monotonic()
    n = 0
    while (answer := there.ingest(tenant, {**ada, "id": f"n{n}"}).json())["accepted"] == 0:
        assert time.monotonic() - lifted_at < SUPPRESSION_CACHE_SECONDS + 0.5, answer
        n += 1
        time.sleep(0.05)
    assert f"n{n}" in {e["id"] for e in here.all_events(tenant.owner, tenant.project_id)}
