"""Settings shared by every suite.

Two Hypothesis profiles besides the default:

- ``ci`` (loaded when ``CI`` is set): every property test replays the same examples, so the verdict
  of the everyday sessions (``nox -s unit``, ``integration``, ``faults``) does not depend on luck.
- ``fuzz`` (``--hypothesis-profile=fuzz``, as ``nox -s fuzz`` passes): each run explores new
  examples. The run draws one seed, prints it at the start (and again after a failure), and every
  property test of the run generates from it, exactly as ``pytest --hypothesis-seed=N`` does, so
  that option replays the run. Unlike that option, the example database stays on: a failing
  example is saved under ``.hypothesis/`` in the repository (ignored by git) and replayed first on
  the next run, and the failure report carries an ``@reproduce_failure`` blob to keep it for good
  as an ``@example``. (schemathesis derives each operation's seed from the run's.)
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
from hypothesis import is_hypothesis_test, settings
from hypothesis.database import DirectoryBasedExampleDatabase

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / ".hypothesis" / "examples"

settings.register_profile("ci", derandomize=True, print_blob=True)
# Built on "default", not on whatever profile is loaded now: Hypothesis loads its own "ci" profile
# (derandomized, no database) by itself when it sees a CI environment.
settings.register_profile(
    "fuzz",
    settings.get_profile("default"),
    derandomize=False,
    database=DirectoryBasedExampleDatabase(EXAMPLES),
    print_blob=True,
)
if os.environ.get("CI"):
    settings.load_profile("ci")

# The seed of a fuzz run, and whether it was given (--hypothesis-seed) rather than drawn.
SEED = pytest.StashKey[tuple[int, bool]]()


@pytest.hookimpl(trylast=True)  # after Hypothesis' own hook has loaded --hypothesis-profile
def pytest_configure(config: pytest.Config) -> None:
    if settings.get_current_profile_name() != "fuzz":
        return
    given = config.getoption("hypothesis_seed", None)
    if given is None:
        config.stash[SEED] = (secrets.randbits(32), False)
    else:
        # Hypothesis' plugin already forces that seed on every test (and then skips the
        # example database, as it does for any fixed seed).
        config.stash[SEED] = (int(given), True)
    try:
        from schemathesis.config import SchemathesisConfig
    except ImportError:  # schemathesis comes with the `fuzz` extra only
        return
    # schemathesis seeds each operation's test itself, from this seed mixed with the operation's
    # label (a fresh random one by default): make it the run's, so that it is replayed too.
    SchemathesisConfig.shared_seed = config.stash[SEED][0]


def _seed_line(config: pytest.Config) -> str | None:
    if SEED not in config.stash:
        return None
    seed, given = config.stash[SEED]
    if given:
        return f"hypothesis seed: {seed} (given); the example database is not used"
    return (
        f"hypothesis seed: {seed} (fresh); replay this run with --hypothesis-seed={seed}; "
        f"failing examples are kept in {EXAMPLES.relative_to(ROOT)}/"
    )


def pytest_report_header(config: pytest.Config) -> str | None:
    return _seed_line(config)


def pytest_sessionstart(session: pytest.Session) -> None:
    # With -q pytest shows no header, so the seed is written on its own line.
    line = _seed_line(session.config)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if line and reporter is not None and session.config.get_verbosity() < 0:
        reporter.write_line(line)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a fuzz run with a drawn seed, make every property test generate from that seed.

    This is what ``--hypothesis-seed`` does (each test draws from ``Random(seed)``), set through the
    attribute that ``@seed`` sets, but without ``@seed``'s ``database=None``: failures found here are
    saved, and saved ones are replayed before the new examples. A test with its own ``@seed`` keeps
    it.
    """
    if SEED not in config.stash or config.stash[SEED][1]:
        return
    seed = config.stash[SEED][0]
    for item in items:
        test = getattr(getattr(item, "obj", None), "__func__", getattr(item, "obj", None))
        if test is None or not is_hypothesis_test(test):
            continue
        # A RuleBasedStateMachine's TestCase: the seed goes on the machine class.
        target = getattr(test, "_hypothesis_state_machine_class", test)
        if getattr(target, "_hypothesis_internal_use_seed", None) is None:
            target._hypothesis_internal_use_seed = seed


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    line = _seed_line(config)
    if line and exitstatus == pytest.ExitCode.TESTS_FAILED:
        terminalreporter.write_line(line)
