"""A RabbitMQ cluster of real nodes on 127.0.0.1, started and stopped by the tests themselves.

Each node is Debian's ``rabbitmq-server`` run as the current user with its own node name, AMQP
and distribution ports, data and log directories and configuration file (so nothing of the
system broker's /etc/rabbitmq applies, and the system broker on 5672 is never touched); all
share one Erlang cookie through ``HOME``. Nodes 2.. join node 1 with ``rabbitmqctl
join_cluster``. Each node runs in a process group of its own, so a test can SIGKILL it (no
shutdown, as a crash or a power cut) and start it again on the same data directory, where it
rejoins its cluster. Every wait is bounded, and a node that does not come up fails the test
with the end of its log.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import free_port

SBIN = Path("/usr/lib/rabbitmq/bin")
SERVER = SBIN / "rabbitmq-server"
CTL = SBIN / "rabbitmqctl"
START_SECONDS = 120.0
CTL_SECONDS = 60.0
_INSTALL_HINT = "apt-get install -y rabbitmq-server (the Debian package)"


@dataclass
class RabbitNode:
    number: int
    name: str
    port: int
    dist_port: int
    root: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def log(self) -> Path:
        return self.root / "log" / f"{self.name}.log"

    @property
    def output(self) -> Path:
        return self.root / "output.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class RabbitCluster:
    """Nodes ``1..size``; :meth:`url` lists their AMQP URLs in any order."""

    def __init__(self, root: Path, size: int = 3) -> None:
        if not SERVER.exists() or not CTL.exists():
            pytest.fail(f"{SERVER} is missing; install RabbitMQ: {_INSTALL_HINT}", pytrace=False)
        self.root = root
        self.home = root / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(20).upper())
        cookie.chmod(0o400)
        # An empty rabbitmq-env.conf: the system's names the system node.
        self.env_file = root / "rabbitmq-env.conf"
        self.env_file.write_text("")
        prefix = f"ec{secrets.token_hex(3)}n"
        self.nodes = [
            RabbitNode(n, f"{prefix}{n}@localhost", free_port(), free_port(), root / f"node{n}")
            for n in range(1, size + 1)
        ]

    def url(self, order: Sequence[int] | None = None) -> str:
        """The nodes' URLs (numbers from 1) separated by commas, in ``order`` (default 1..n)."""
        numbers = order or [node.number for node in self.nodes]
        return ",".join(self.node(number).url for number in numbers)

    def node(self, number: int) -> RabbitNode:
        return self.nodes[number - 1]

    def number_of(self, url: str) -> int:
        """The node whose AMQP port ``url`` names (passwords redacted or not)."""
        for node in self.nodes:
            if f"127.0.0.1:{node.port}/" in url:
                return node.number
        raise AssertionError(f"{url} is no node of the cluster")

    # Lifecycle

    def start(self) -> None:
        for node in self.nodes:
            self._spawn(node)
        for node in self.nodes:
            self._wait_listening(node)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            self.ctl(node, "stop_app")
            self.ctl(node, "join_cluster", first.name)
            self.ctl(node, "start_app")
        self.ctl(first, "await_online_nodes", str(len(self.nodes)))

    def kill(self, number: int) -> None:
        """SIGKILL the node: the broker and every process it started, with no shutdown."""
        node = self.node(number)
        if node.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.process.pid, signal.SIGKILL)
            node.process.wait(30)

    def restart(self, number: int) -> None:
        """Start a killed node again on its data directory; back once the cluster counts it."""
        node = self.node(number)
        self._spawn(node)
        self._wait_listening(node)
        self.ctl(node, "await_online_nodes", str(len(self.nodes)))

    def stop(self) -> None:
        for node in self.nodes:
            self.kill(node.number)

    def ctl(self, node: RabbitNode, *args: str) -> str:
        """Run ``rabbitmqctl -n NODE ARGS`` (bounded in time); its output, or fail the test."""
        try:
            done = subprocess.run(
                [str(CTL), "-n", node.name, *args],
                env=self._environment(),
                capture_output=True,
                timeout=CTL_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"rabbitmqctl {' '.join(args)} on {node.name} took over {CTL_SECONDS} s")
        if done.returncode != 0:
            pytest.fail(
                f"rabbitmqctl {' '.join(args)} on {node.name} failed:\n"
                f"{done.stdout.decode(errors='replace')}{done.stderr.decode(errors='replace')}"
            )
        return done.stdout.decode(errors="replace")

    def members(self, queue: str, *, via: int = 1) -> list[str]:
        """The node names of a quorum queue's replication group (of the default vhost)."""
        listed = json.loads(
            self.ctl(self.node(via), "list_queues", "name", "members", "--formatter", "json")
        )
        for entry in listed:
            if entry["name"] == queue:
                members: list[str] = entry["members"]
                return members
        raise AssertionError(f"no queue {queue!r} on the cluster: {listed}")

    # Internals

    def _environment(self, node: RabbitNode | None = None) -> dict[str, str]:
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "RABBITMQ_CONF_ENV_FILE": str(self.env_file),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }
        if node is not None:
            environment |= {
                "RABBITMQ_NODENAME": node.name,
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
                "RABBITMQ_NODE_PORT": str(node.port),
                "RABBITMQ_DIST_PORT": str(node.dist_port),
                "RABBITMQ_CONFIG_FILE": str(node.root / "rabbitmq"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(node.root / "enabled_plugins"),
                "RABBITMQ_MNESIA_BASE": str(node.root / "mnesia"),
                "RABBITMQ_LOG_BASE": str(node.root / "log"),
                # One scheduler each: three nodes share two cores with everything else.
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "+S 1:1",
            }
        return environment

    def _spawn(self, node: RabbitNode) -> None:
        node.root.mkdir(parents=True, exist_ok=True)
        (node.root / "enabled_plugins").write_text("[].\n")
        (node.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{node.port}\n"
            "disk_free_limit.absolute = 50MB\n"
            "vm_memory_high_watermark.absolute = 512MB\n"
        )
        with node.output.open("ab") as output:
            node.process = subprocess.Popen(
                ["nice", "-n", "10", str(SERVER)],
                env=self._environment(node),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_listening(self, node: RabbitNode) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if not node.running:
                pytest.fail(f"RabbitMQ node {node.name} exited:\n{self._tail(node)}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", node.port), timeout=1),
            ):
                return
            time.sleep(0.2)
        pytest.fail(
            f"RabbitMQ node {node.name} not up within {START_SECONDS} s:\n{self._tail(node)}"
        )

    @staticmethod
    def _tail(node: RabbitNode) -> str:
        text = ""
        for path in (node.output, node.log):
            if path.exists():
                text += f"== {path}\n{path.read_text(errors='replace')[-3000:]}\n"
        return text


@contextlib.contextmanager
def rabbitmq_cluster(root: Path, size: int = 3) -> Iterator[RabbitCluster]:
    """A running cluster of ``size`` nodes under ``root``; killed and removed afterwards."""
    cluster = RabbitCluster(root, size)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
