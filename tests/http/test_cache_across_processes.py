"""Two embedded API processes on one data dir (`serve --workers 2`): neither serves a cached
answer from before the other's commit."""

from __future__ import annotations

from pathlib import Path

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
