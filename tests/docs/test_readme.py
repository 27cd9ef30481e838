"""The README's promises, run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_embedding_example_runs_and_prints_what_the_readme_says(tmp_path: Path) -> None:
    """The embedding example runs unchanged and prints the output the README states."""
    blocks = [b for b in python_blocks() if "open_embedded" in b]
    assert len(blocks) == 1
    result = subprocess.run(
        [sys.executable, "-c", blocks[0]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["1 1 ['invalid_event']", "1"]
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
