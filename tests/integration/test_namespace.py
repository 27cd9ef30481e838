"""eventcore installs one import package of its own, beside whatever else an application uses.

Installed into a fresh virtual environment next to PyPI's ``entrypoints`` (a package named like
eventcore's entrypoints folder, and among the most installed), both import and work.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from eventcore import __version__

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def run(*args: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(arg) for arg in args], capture_output=True, text=True, cwd=cwd, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new environment holding eventcore (built from this tree, not editable) and entrypoints."""
    where = tmp_path_factory.mktemp("namespace") / "venv"
    uv = shutil.which("uv")
    if uv is not None:
        run(uv, "venv", "--quiet", "--python", sys.executable, where)
        install: list[str | Path] = [
            uv,
            "pip",
            "install",
            "--quiet",
            "--python",
            where / "bin/python",
        ]
    else:
        run(sys.executable, "-m", "venv", where)
        install = [where / "bin/python", "-m", "pip", "install", "--quiet"]
    run(*install, ROOT, "entrypoints==0.4")
    return where


def test_the_wheel_installs_only_names_of_its_own(venv: Path) -> None:
    """Every top-level name eventcore's wheel puts in site-packages starts with eventcore."""
    listing = run(
        venv / "bin/python",
        "-c",
        "import importlib.metadata as m, json;"
        "print(json.dumps([str(f) for f in m.distribution('eventcore').files]))",
    )
    top_level = {Path(name).parts[0] for name in json.loads(listing)}
    top_level -= {"..", "__pycache__"}  # the console script lives outside site-packages
    assert top_level == {"eventcore", f"eventcore-{__version__}.dist-info"}


def test_pypi_entrypoints_and_eventcore_both_work(venv: Path, tmp_path: Path) -> None:
    """PyPI's entrypoints still finds entry points (eventcore's command among them), and
    eventcore's own entrypoints package serves the embedded profile."""
    script = textwrap.dedent(
        """
        import asyncio, json, sys

        import entrypoints
        from eventcore.entrypoints.embedded import open_embedded
        from eventcore import ProjectRef

        scripts = {e.name: e.module_name for e in entrypoints.get_group_all("console_scripts")}

        async def ingest():
            async with open_embedded(sys.argv[1]) as ec:
                owner = await ec.accounts.signup("ns@example.com", "a long passphrase 42", "Ns")
                me = ec.accounts.authenticate(owner.access_token)
                project = await ec.accounts.create_project(me, "web")
                receipt = await ec.ingestor.submit(
                    ProjectRef(owner.workspace_id, project.id), [{"id": "1", "type": "t"}]
                )
                return receipt.accepted

        try:
            import adapters  # noqa: F401
            leaked = True
        except ImportError:
            leaked = False
        print(json.dumps({
            "entrypoints": entrypoints.__file__,
            "command": scripts.get("eventcore"),
            "accepted": asyncio.run(ingest()),
            "adapters_leaked": leaked,
        }))
        """
    )
    outcome = json.loads(run(venv / "bin/python", "-c", script, tmp_path / "data", cwd=tmp_path))
    assert outcome["entrypoints"].endswith("site-packages/entrypoints.py")
    assert outcome["command"] == "eventcore.entrypoints.cli"
    assert outcome["accepted"] == 1
    assert outcome["adapters_leaked"] is False
    assert run(venv / "bin/eventcore", "--version").strip() == f"eventcore {__version__}"


def test_the_wheel_holds_the_console(venv: Path) -> None:
    """Every file of the console (its page, scripts, styles and vendored chart library) is in
    the installed package, where `eventcore serve` serves it from."""
    installed = Path(
        run(
            venv / "bin/python",
            "-c",
            "from eventcore.entrypoints.http.console import CONSOLE_DIR; print(CONSOLE_DIR)",
        ).strip()
    )
    source = ROOT / "src/entrypoints/http/static/console"
    assert installed != source
    expected = sorted(p.relative_to(source) for p in source.rglob("*") if p.is_file())
    assert sorted(p.relative_to(installed) for p in installed.rglob("*") if p.is_file()) == expected
    assert Path("vendor/uPlot.iife.min.js") in expected
