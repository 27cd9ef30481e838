"""Real `eventcore` processes for tests: start, wait until ready, stop with SIGTERM, always kill."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_environment(settings: Mapping[str, str] | None = None) -> dict[str, str]:
    """The runner's environment without EVENTCORE_* settings, plus ``settings``; sources importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTCORE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env.update(settings or {})
    return env


class Process:
    """A running `eventcore` command whose output goes to a log file."""

    def __init__(self, process: subprocess.Popen[bytes], name: str, log: Path) -> None:
        self.process = process
        self.name = name
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def check_running(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.output()}")

    def terminate(self) -> int:
        """SIGTERM, as a process manager stops it; the exit status."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.name} did not stop on SIGTERM:\n{self.output()}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Server(Process):
    """A running `eventcore serve` and an HTTP client that refuses any 5xx other than 503."""

    def __init__(self, process: subprocess.Popen[bytes], name: str, log: Path, port: int) -> None:
        super().__init__(process, name, log)
        self.port = port
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            timeout=10.0,
            event_hooks={"response": [self._refuse_server_errors]},
        )

    def _refuse_server_errors(self, response: httpx.Response) -> None:
        if response.status_code >= 500 and response.status_code != 503:
            response.read()
            raise AssertionError(
                f"{response.request.method} {response.request.url} answered "
                f"{response.status_code}: {response.text}\n{self.output()}"
            )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            self.check_running()
            try:
                if self.client.get("/health/ready", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"{self.name} was not ready in {START_TIMEOUT_SECONDS} s:\n{self.output()}")


def _start(
    args: list[str], *, workdir: Path, logs: Path, name: str, settings: Mapping[str, str] | None
) -> tuple[subprocess.Popen[bytes], Path]:
    log = logs / f"{name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "eventcore.entrypoints.cli", *args],
            cwd=workdir,
            env=clean_environment(settings),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return process, log


@contextmanager
def serve(
    workdir: Path, logs: Path, name: str, settings: Mapping[str, str] | None = None
) -> Iterator[Server]:
    """`eventcore serve` in ``workdir`` on a free port, ready; always killed at the end."""
    port = free_port()
    process, log = _start(
        ["serve", "--port", str(port)], workdir=workdir, logs=logs, name=name, settings=settings
    )
    server = Server(process, name, log, port)
    try:
        server.wait_ready()
        yield server
    finally:
        server.client.close()
        server.kill()


@contextmanager
def worker(
    workdir: Path, logs: Path, name: str, settings: Mapping[str, str] | None = None
) -> Iterator[Process]:
    """`eventcore worker`; always killed at the end."""
    process, log = _start(["worker"], workdir=workdir, logs=logs, name=name, settings=settings)
    running = Process(process, name, log)
    try:
        yield running
    finally:
        running.kill()


def run_command(
    args: list[str], *, workdir: Path, settings: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A one-shot `eventcore` command, e.g. ``["migrate"]``; its result."""
    return subprocess.run(
        [sys.executable, "-m", "eventcore.entrypoints.cli", *args],
        cwd=workdir,
        env=clean_environment(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def eventually(check: Callable[[], bool], *, within: float = 20.0, what: str = "condition") -> None:
    """Poll ``check`` until it holds; fail saying ``what`` did not happen in time."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"{what} did not happen within {within} s")
