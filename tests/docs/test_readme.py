"""The README's promises, run as written."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from tests.support.processes import clean_environment, serve

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
HOUR = timedelta(hours=1)


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def section(title: str) -> str:
    """The README's text under ``## title``, up to the next section."""
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_embedding_example_runs_and_prints_what_the_readme_says(tmp_path: Path) -> None:
    """The embedding example runs unchanged, twice in a row in the same directory (a user runs
    it again), and prints the output the README states each time."""
    blocks = [b for b in python_blocks() if "open_embedded" in b]
    assert len(blocks) == 1
    for run in ("first", "second"):
        result = subprocess.run(
            [sys.executable, "-c", blocks[0]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, f"{run} run: {result.stderr}"
        assert result.stdout.splitlines() == ["1 1 ['invalid_event']", "1"], run
    assert "It prints `1 1 ['invalid_event']` and `1`, and the same when run again" in README
    assert (tmp_path / "my-service-events" / "eventcore.sqlite3").exists()


def test_readme_opens_with_exactly_two_setup_commands() -> None:
    """The first code block holds the two commands: serve, and run the tests."""
    first = re.search(r"```bash\n(.*?)```", README, flags=re.S)
    assert first is not None
    commands = [line for line in first.group(1).splitlines() if line.strip()]
    assert len(commands) == 2
    assert "eventcore serve" in commands[0]
    assert "nox" in commands[1]


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run runs the README's test command verbatim."""
    first = re.search(r"```bash\n(.*?)```", README, flags=re.S)
    assert first is not None
    test_command = first.group(1).splitlines()[1].split("#")[0].strip()
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()


def test_every_setting_is_documented() -> None:
    """Each field of Settings appears in the README as its EVENTCORE_ variable."""
    import msgspec

    from eventcore.entrypoints.settings import Settings

    for field in msgspec.structs.fields(Settings):
        assert f"EVENTCORE_{field.name.upper()}" in README, field.name


def table(title: str) -> dict[str, list[str]]:
    """The rows of the table under ``## title``, by their first cell."""
    rows: dict[str, list[str]] = {}
    for line in section(title).splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
            rows[cells[0]] = cells[1:]
    return rows


def _size(count: int) -> str:
    return f"{count // 1024**2} MiB" if count % 1024**2 == 0 else f"{count // 1024} KiB"


def test_the_limits_table_states_the_defaults() -> None:
    """Each limit the README states is the one eventcore.defaults defines."""
    from eventcore import defaults

    rows = table("Limits")
    rate = int(defaults.RATE_LIMIT_EVENTS_PER_SECOND)
    stated = {
        "events per ingest request": f"{defaults.MAX_BATCH_EVENTS:,}",
        "bytes per event (its JSON)": _size(defaults.MAX_EVENT_BYTES),
        "bytes per ingest request (after gzip decompression, too)": _size(
            defaults.MAX_REQUEST_BYTES
        ),
        "event `id` / `type` length": (
            f"{defaults.MAX_ID_LENGTH} / 1\N{EN DASH}{defaults.MAX_TYPE_LENGTH} characters"
        ),
        "event `user_id` / `anonymous_id` length": (
            f"1\N{EN DASH}{defaults.MAX_PERSON_LENGTH} characters"
        ),
        "declared dimensions per project / path length": (
            f"{defaults.MAX_DIMENSIONS} / {defaults.MAX_DIMENSION_PATH_LENGTH} characters"
        ),
        "distinct values kept per dimension, day and event type (the rest count as `other`)"
        " / value length": (
            f"{defaults.MAX_DIMENSION_VALUES} / {defaults.MAX_DIMENSION_VALUE_LENGTH} characters"
        ),
        "`where` filters per query / breakdown values per answer": (
            f"{defaults.MAX_WHERE} / 1\N{EN DASH}{defaults.MAX_BREAKDOWN_LIMIT}"
            f" (default {defaults.DEFAULT_BREAKDOWN_LIMIT})"
        ),
        "funnel steps / window": (
            f"{defaults.MIN_FUNNEL_STEPS}\N{EN DASH}{defaults.MAX_FUNNEL_STEPS} steps, "
            f"`window_seconds` 1\N{EN DASH}{defaults.MAX_FUNNEL_WINDOW_SECONDS:,} "
            f"({defaults.MAX_FUNNEL_WINDOW_SECONDS // 86400} days)"
        ),
        "stored events one filtered answer (`where`) or funnel reads (past it: 400"
        " `window_too_large`)": f"{defaults.MAX_RAW_EVENTS:,}",
        "event `timestamp`": f"from 1970-01-01 to {defaults.MAX_FUTURE // HOUR} hours ahead",
        "ingest rate per workspace (every event sent counts, valid or not)": (
            f"{rate:,} events/s, bursts of {2 * rate:,}"
        ),
        "events per `/v1/events` page": f"{defaults.MAX_PAGE:,} (default {defaults.DEFAULT_PAGE})",
        "persons / event ids one deletion request names / its body": (
            f"{defaults.MAX_DELETION_USER_IDS:,} / {defaults.MAX_DELETION_EVENT_IDS:,}"
            f" / {_size(defaults.MAX_DELETION_REQUEST_BYTES)}"
        ),
        "events one deletion transaction deletes (and recounts)": f"{defaults.DELETION_CHUNK:,}",
        "suppressed persons per project (past it: 409 `too_many_suppressions`) / per"
        " `/v1/suppressions` page": (
            f"{defaults.MAX_SUPPRESSIONS:,} / {defaults.MAX_PAGE:,} (default {defaults.DEFAULT_PAGE})"
        ),
        "time another API process may still accept a newly suppressed person's events at ingest"
        " (the append withholds them), or refuse a lifted one's": (
            f"{defaults.SUPPRESSION_CACHE_SECONDS:g} s"
        ),
        "a project's retention of its events": (
            f"{defaults.MIN_RETENTION_DAYS}\N{EN DASH}{defaults.MAX_RETENTION_DAYS:,} days"
            " (default: for ever)"
        ),
        "events one expiry transaction deletes": f"{defaults.EXPIRY_CHUNK:,}",
        "events an export reads at a time": f"{defaults.EXPORT_PAGE:,}",
        "signups per client address": (
            f"{defaults.SIGNUPS_PER_HOUR_PER_ADDRESS:g} an hour, "
            f"at most {defaults.SIGNUP_BURST:g} in a row"
        ),
        "login attempts per account and client address": (
            f"{defaults.LOGIN_ATTEMPTS_PER_MINUTE:g} a minute"
        ),
        "login attempts per account, from every address together": (
            f"{defaults.LOGIN_ATTEMPTS_PER_MINUTE_PER_ACCOUNT:g} a minute"
        ),
        "login attempts per client address": (
            f"{defaults.LOGIN_ATTEMPTS_PER_MINUTE_PER_ADDRESS:g} a minute"
        ),
        "request line (method, target, version)": _size(defaults.MAX_REQUEST_LINE_BYTES),
        "request headers, all together": _size(defaults.MAX_HEADER_BYTES),
        "time to send a whole request (from its first byte, or from connecting)": (
            f"{defaults.REQUEST_TIMEOUT_SECONDS:g} s"
        ),
        "password hashes computed at once, per process": (
            f"{defaults.PASSWORD_HASH_CONCURRENCY}, and {defaults.PASSWORD_HASH_WAITING} more waiting"
        ),
        "password": (
            f"{defaults.MIN_PASSWORD_LENGTH}\N{EN DASH}{defaults.MAX_PASSWORD_LENGTH:,} characters, "
            f"zxcvbn score at least {defaults.MIN_PASSWORD_SCORE} (of 0\N{EN DASH}4)"
        ),
    }
    for limit, value in stated.items():
        assert rows[limit][0] == value, limit
    assert rows["buckets per analytics query"][0].startswith(f"{defaults.MAX_BUCKETS:,} ")


def test_the_configuration_table_states_each_settings_default() -> None:
    """Where the README gives a setting's default as a value, it is the setting's own default."""
    import msgspec

    from eventcore.entrypoints.settings import Settings

    fields = {f"EVENTCORE_{f.name.upper()}": f.name for f in msgspec.structs.fields(Settings)}
    checked = 0
    for names_cell, (default, *_) in table("Configuration").items():
        names = re.findall(r"`(EVENTCORE_\w+)`", names_cell)
        values = default.split(", ")
        literal = all(re.fullmatch(r"`[^`<]*`|\d+", value) for value in values)
        if not literal or len(values) != len(names):
            continue  # a default in words: "see Limits", "(none: ...)", "twice the rate", ...
        for name, value in zip(names, values, strict=True):
            actual = getattr(Settings(), fields[name])
            if isinstance(actual, float) and actual.is_integer():
                actual = int(actual)
            assert value.strip("`") == str(actual), name
            checked += 1
    assert checked >= 15


def test_the_configuration_table_states_what_each_setting_accepts() -> None:
    """Each row's "accepted" cell is what load_settings checks, as its error message says it:
    for every setting, once (a row of several settings lists each distinct one)."""
    import msgspec

    from eventcore.entrypoints.settings import Settings, accepted

    documented: set[str] = set()
    for names_cell, (_, accepts, _) in table("Configuration").items():
        names = [name.lower() for name in re.findall(r"`EVENTCORE_(\w+)`", names_cell)]
        if not names:
            continue  # the header
        assert accepts == "; ".join(dict.fromkeys(accepted(name) for name in names)), names
        documented.update(names)
    assert documented == {field.name for field in msgspec.structs.fields(Settings)}


# --- the quick start, against a real `eventcore serve` -----------------------------------------


class Step(NamedTuple):
    """Shell lines of the quick start, and the answer the README shows after them (if any)."""

    command: str
    answer: str | None


def quick_start_steps() -> list[Step]:
    """The quick start's bash block cut after each answer it shows.

    An answer is a comment starting ``# {``; comment lines starting ``#  `` continue it (the
    answer is one line, broken to be read: the breaks and the indent are not part of it).
    """
    blocks = re.findall(r"```bash\n(.*?)```", section("Quick start"), flags=re.S)
    assert len(blocks) == 1, "the quick start is one bash block"
    steps: list[Step] = []
    command: list[str] = []
    answer: list[str] = []
    for line in blocks[0].splitlines():
        if line.startswith("# {"):
            answer.append(line.removeprefix("# "))
            continue
        if answer and line.startswith("#  "):
            answer.append(line.removeprefix("#  "))
            continue
        if answer:
            steps.append(Step("\n".join(command), "".join(answer)))
            command, answer = [], []
        command.append(line)
    if answer or any(line.strip() for line in command):
        steps.append(Step("\n".join(command), "".join(answer) if answer else None))
    return steps


class Ran(NamedTuple):
    output: str
    began: datetime
    ended: datetime


def run_quick_start(steps: list[Step], port: int, workdir: Path) -> tuple[list[Ran], str]:
    """Run the steps in one shell, as a user pastes them; each one's output and when it ran, and
    the project id the shell kept."""
    marks = "printf '\\n@@%s %s\\n' {} \"$EPOCHREALTIME\""
    script = ["set -u"]
    for index, step in enumerate(steps):
        script += [marks.format(f"begin-{index}"), step.command, marks.format(f"end-{index}")]
    script.append('printf "@@project %s\\n" "$PROJECT"')
    result = subprocess.run(
        ["bash", "-c", "\n".join(script).replace("localhost:8000", f"localhost:{port}")],
        cwd=workdir,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = re.findall(
        r"@@begin-(\d+) ([\d.]+)\n(.*?)\n@@end-\1 ([\d.]+)\n", result.stdout, flags=re.S
    )
    assert [int(index) for index, *_ in found] == list(range(len(steps))), result.stdout
    ran = [Ran(output.strip(), _moment(began), _moment(ended)) for _, began, output, ended in found]
    project = re.search(r"@@project (\S+)", result.stdout)
    assert project is not None, result.stdout
    return ran, project.group(1)


def _moment(epoch: str) -> datetime:
    return datetime.fromtimestamp(float(epoch), UTC)


def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(moment: datetime) -> datetime:
    floor = _floor_hour(moment)
    return floor if floor == moment else floor + HOUR


def match(expected: Any, actual: Any, found: dict[str, list[tuple[int, Any]]], step: int) -> None:
    """``actual`` holds ``expected``'s values, keys in the same order, except where ``expected``
    holds a placeholder (``"<...>"``): what stands there is collected in ``found``, by step."""
    if isinstance(expected, str) and re.fullmatch(r"<[^<>]+>", expected):
        found.setdefault(expected, []).append((step, actual))
    elif isinstance(expected, dict):
        assert isinstance(actual, dict), (expected, actual)
        assert list(actual) == list(expected), (expected, actual)
        for key, value in expected.items():
            match(value, actual[key], found, step)
    elif isinstance(expected, list):
        assert isinstance(actual, list), (expected, actual)
        assert len(actual) == len(expected), (expected, actual)
        for item, got in zip(expected, actual, strict=True):
            match(item, got, found, step)
    else:
        assert actual == expected, (expected, actual)


@pytest.mark.integration
def test_the_quick_start_answers_what_the_readme_shows(tmp_path: Path) -> None:
    """The quick start's commands, run as written against a fresh `eventcore serve` (its own
    port and data directory), print exactly the answers the README shows after them, on any
    date: each placeholder stands for the value the README says it does."""
    assert shutil.which("curl"), "the quick start needs curl"
    steps = quick_start_steps()
    workdir, logs = tmp_path / "work", tmp_path / "logs"
    workdir.mkdir()
    logs.mkdir()
    with serve(workdir, logs, "readme-serve") as server:
        ran, project = run_quick_start(steps, server.port, workdir)

    found: dict[str, list[tuple[int, Any]]] = {}
    for index, (step, result) in enumerate(zip(steps, ran, strict=True)):
        if step.answer is None:
            assert result.output == "", f"the README shows no answer for:\n{step.command}"
        else:
            match(json.loads(step.answer), json.loads(result.output), found, index)

    assert set(found) == {
        "<project id>",
        "<received at>",
        "<hour received>",
        "<window start>",
        "<window end>",
    }, "each placeholder is explained in the README and checked here"
    values = {name: {value for _, value in seen} for name, seen in found.items()}
    assert all(len(seen) == 1 for seen in values.values()), values
    value = {name: seen.pop() for name, seen in values.items()}
    assert value["<project id>"] == project

    # The events were received while the ingest call ran, and are counted in that hour.
    ingest = next(r for s, r in zip(steps, ran, strict=True) if "/v1/ingest" in s.command)
    received = datetime.fromisoformat(value["<received at>"])
    assert ingest.began <= received <= ingest.ended
    assert datetime.fromisoformat(value["<hour received>"]) == _floor_hour(received)
    # The window is the 24 hours before the counts call, rounded out to whole hours.
    (counts,) = {step for step, _ in found["<window start>"]}
    start = datetime.fromisoformat(value["<window start>"])
    end = datetime.fromisoformat(value["<window end>"])
    assert start in {
        _floor_hour(ran[counts].began - 24 * HOUR),
        _floor_hour(ran[counts].ended - 24 * HOUR),
    }
    assert end in {_ceil_hour(ran[counts].began), _ceil_hour(ran[counts].ended)}
    assert all(text.endswith("Z") for text in value.values() if text != project)

    # And to the letter: each answer is the README's, placeholders filled in.
    for step, result in zip(steps, ran, strict=True):
        if step.answer is not None:
            shown = step.answer
            for name, text in value.items():
                shown = shown.replace(json.dumps(name), json.dumps(text))
            assert result.output == shown
