"""Test, lint and type-check sessions. `nox` alone runs lint, typecheck, unit, integration,
faults, clusters, fuzz and browser."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = [
    "lint",
    "typecheck",
    "unit",
    "integration",
    "faults",
    "clusters",
    "fuzz",
    "browser",
]
nox.options.error_on_missing_interpreters = True

LINTED = ["src", "tests", "bench", "docs", "noxfile.py", "hatch_build.py"]
ROOT = Path(__file__).resolve().parent
# Where each source folder lands in the installed package (pyproject.toml, hatch_build.py).
INSTALLED_AS = {"adapters": "src/adapters", "entrypoints": "src/entrypoints", "": "src/eventcore"}
# Front-end files vendored from npm by `nox -s vendor`: for each folder of the package, each
# package at its pinned version and the files kept from it (name in the folder: path in the
# package). The API docs pages (src/entrypoints/http/docs.py): Swagger UI at the version
# Litestar's SwaggerRenderPlugin defaults to; Redoc's last 2.x, whose `Redoc.init` the Redoc page
# calls. The console's chart library (src/entrypoints/http/console.py): uPlot's browser build.
DOCS_ASSETS_DIR = ROOT / "src/entrypoints/http/static/docs"
CONSOLE_ASSETS_DIR = ROOT / "src/entrypoints/http/static/console/vendor"
VENDORED = {
    DOCS_ASSETS_DIR: {
        ("swagger-ui-dist", "5.18.2"): {
            "swagger-ui-bundle.js": "swagger-ui-bundle.js",
            "swagger-ui-standalone-preset.js": "swagger-ui-standalone-preset.js",
            "swagger-ui.css": "swagger-ui.css",
            "swagger-ui-dist.LICENSE": "LICENSE",
            "swagger-ui-dist.NOTICE": "NOTICE",
        },
        ("redoc", "2.5.4"): {
            "redoc.standalone.js": "bundles/redoc.standalone.js",
            "redoc.standalone.js.LICENSE.txt": "bundles/redoc.standalone.js.LICENSE.txt",
            "redoc.LICENSE": "LICENSE",
        },
    },
    CONSOLE_ASSETS_DIR: {
        ("uplot", "1.6.32"): {
            "uPlot.iife.min.js": "dist/uPlot.iife.min.js",
            "uPlot.min.css": "dist/uPlot.min.css",
            "uplot.LICENSE": "LICENSE",
        },
    },
}


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint rules and formatting."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", *LINTED)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over src/, checked as installed: there the three source folders are the one
    package ``eventcore`` (an editable install maps them with an import hook mypy cannot see).
    Errors are reported at their paths under src/."""
    session.install(".[dev]")
    # A reused environment already holds an eventcore of the same version: put this tree's in.
    fresh = "--reinstall-package=eventcore" if session.venv_backend == "uv" else "--force-reinstall"
    session.install("--no-deps", fresh, ".")
    package = session.run(
        "python",
        "-c",
        "import eventcore, os; print(os.path.dirname(eventcore.__file__))",
        silent=True,
    ).strip()
    # Elsewhere than the repository, so that mypy reads the installed package, not src/.
    session.chdir(session.create_tmp())
    output = session.run(
        "mypy", "--config-file", str(ROOT / "pyproject.toml"), silent=True, success_codes=[0, 1, 2]
    )
    for folder, source in INSTALLED_AS.items():
        installed = f"{package}/{folder}/" if folder else f"{package}/"
        output = output.replace(installed, f"{source}/")
    print(output, end="")
    if "Success:" not in output.splitlines()[-1]:
        session.error("mypy found errors")


@nox.session
def unit(session: nox.Session) -> None:
    """The core, the memory and SQLite adapters, and the HTTP API in process: no servers needed."""
    session.install("-e", ".[test]")
    # tests/browser needs Playwright, which only the browser session installs.
    session.run(
        "pytest",
        "-m",
        "not integration and not browser",
        "-q",
        "--ignore=tests/browser",
        *session.posargs,
    )


@nox.session
def integration(session: nox.Session) -> None:
    """Real PostgreSQL, Redis and RabbitMQ on 127.0.0.1, and real eventcore processes."""
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "-m",
        "integration and not browser",
        "-q",
        "--ignore=tests/faults",
        "--ignore=tests/clusters",
        "--ignore=tests/browser",
        *session.posargs,
    )


@nox.session
def faults(session: nox.Session) -> None:
    """Crash and outage tests: workers killed, servers cut off through a proxy, SIGTERM under
    load; ends with a report of what was lost or duplicated (nothing, or it fails)."""
    session.install("-e", ".[test]")
    session.run("pytest", "tests/faults", "-m", "integration", "-q", *session.posargs)


@nox.session
def clusters(session: nox.Session) -> None:
    """Failover on real clusters the tests start on free 127.0.0.1 ports: a streaming PostgreSQL
    replica, a Redis Cluster and a 3-node RabbitMQ cluster, nodes SIGKILLed under load; nothing
    acknowledged lost or stored twice (or it fails)."""
    session.install("-e", ".[test]")
    session.run("pytest", "tests/clusters", "-m", "integration", "-q", *session.posargs)


@nox.session
def fuzz(session: nox.Session) -> None:
    """Bad input: schemathesis over the app's own OpenAPI document (every operation, valid
    credentials, real ids), and the hostile-body and stateful suites with more examples.

    Unlike the other sessions (derandomized on CI), each run explores new examples: the
    ``fuzz`` Hypothesis profile (tests/conftest.py) draws a fresh seed and prints it first
    (replay the run with ``nox -s fuzz -- --hypothesis-seed=N``), keeps failing examples in
    ``.hypothesis/`` to replay them first next time, and prints an ``@reproduce_failure`` blob."""
    session.install("-e", ".[fuzz]")
    session.run(
        "pytest",
        "tests/fuzz",
        "-m",
        "fuzz or not integration",
        "-q",
        "--hypothesis-profile=fuzz",
        *session.posargs,
        env={"FUZZ_EXAMPLES_SCALE": "4"},
    )


@nox.session
def browser(session: nox.Session) -> None:
    """The console end to end, and the browser SDKs (analytics.js, RudderStack's) from npm on a
    page of another origin: Playwright drives Debian's Chromium (/usr/bin/chromium, which
    `.ci/run` installs when missing, as it runs `npm ci --prefix tests/browser/sdk`) against real
    `eventcore serve` processes; every request to an unexpected origin, script error, CORS error
    or CSP violation fails the test. Screenshots of each scenario land in test-artifacts/browser/."""
    session.install("-e", ".[browser]")
    session.run("pytest", "tests/browser", "-m", "browser", "-q", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmark (bench/README.md): eventcore against the bare limits of its parts, on the
    real servers, in about 10 minutes; not part of the default run. Installs wrk if missing."""
    import shutil

    if shutil.which("wrk") is None:
        session.run("apt-get", "update", "-qq", external=True)
        session.run("apt-get", "install", "-y", "-qq", "wrk", external=True)
    session.install("-e", ".[bench]")
    session.run("python", "-m", "bench.run", *session.posargs)


@nox.session(venv_backend="none")
def vendor(session: nox.Session) -> None:
    """The front-end files of the API docs pages and the console refreshed from npm at the
    versions VENDORED pins (`npm pack` checks each tarball against the registry's integrity
    hash), with each folder's manifest ASSETS.json: each file's package, version, source path,
    licence and sha256. Not part of the default run; needs npm."""
    import hashlib
    import json
    import tarfile
    import tempfile

    for folder, packages in VENDORED.items():
        folder.mkdir(parents=True, exist_ok=True)
        manifest = []
        with tempfile.TemporaryDirectory() as scratch:
            for (package, version), files in packages.items():
                packed = session.run(
                    "npm",
                    "pack",
                    "--silent",
                    "--pack-destination",
                    scratch,
                    f"{package}@{version}",
                    external=True,
                    silent=True,
                )
                tarball = Path(scratch) / str(packed).strip().splitlines()[-1]
                with tarfile.open(tarball) as archive:
                    described = archive.extractfile("package/package.json")
                    if described is None:
                        session.error(f"{package}@{version} has no package.json")
                    license = json.loads(described.read())["license"]
                    for name, source in files.items():
                        member = archive.extractfile(f"package/{source}")
                        if member is None:
                            session.error(f"{package}@{version} has no file {source}")
                        data = member.read()
                        (folder / name).write_bytes(data)
                        manifest.append(
                            {
                                "name": name,
                                "package": package,
                                "version": version,
                                "source": source,
                                "license": license,
                                "sha256": hashlib.sha256(data).hexdigest(),
                            }
                        )
        kept = {entry["name"] for entry in manifest} | {"ASSETS.json"}
        for stale in folder.iterdir():
            if stale.name not in kept:
                stale.unlink()
        text = json.dumps({"assets": manifest}, indent=2) + "\n"
        (folder / "ASSETS.json").write_text(text)
