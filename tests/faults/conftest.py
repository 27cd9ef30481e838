"""Fault tests: each records what it tried and what it found; the run ends with a fault report."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

_REPORTS = pytest.StashKey[list[dict[str, Any]]]()
# tests/clusters registers this hook too: the report is printed once when both run.
_PRINTED = pytest.StashKey[bool]()


@pytest.fixture
def fault_report(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Record one line of the fault report: the fault tried and its result."""

    def record(fault: str, **result: Any) -> None:
        reports = request.config.stash.setdefault(_REPORTS, [])
        reports.append({"test": request.node.name, "fault": fault, **result})

    return record


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    reports = config.stash.get(_REPORTS, [])
    if not reports or config.stash.get(_PRINTED, False):
        return
    config.stash[_PRINTED] = True
    terminalreporter.section("fault report")
    for report in reports:
        details = ", ".join(
            f"{key}={value:.1f}" if isinstance(value, float) else f"{key}={value}"
            for key, value in report.items()
            if key not in ("test", "fault")
        )
        terminalreporter.write_line(f"{report['fault']}: {details}")
