"""A Redis Cluster of its own for the cluster tests: 3 masters with 1 replica each.

Six ``redis-server --cluster-enabled yes`` processes on free 127.0.0.1 ports, their files in a
temporary directory, joined with ``redis-cli --cluster create --cluster-replicas 1``; killed and
removed at the end. The system Redis on 6379 is not touched. A missing binary fails the test.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

HOST = "127.0.0.1"
# How long a master may be silent before the others fail it over: short, for the tests.
NODE_TIMEOUT_MS = 1000
_SETTLE_SECONDS = 60


@dataclass
class Node:
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    def client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                HOST,
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(self.directory / "nodes.conf"),
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "no",
                "--repl-diskless-sync-delay",
                "0",
                "--logfile",
                str(self.directory / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def kill(self) -> None:
        """SIGKILL: the node dies without a word, as a crashed machine does."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Cluster:
    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        """EVENTCORE_REDIS_URL for the cluster: every node, as an operator would list them."""
        return "redis+cluster://" + ",".join(f"{HOST}:{node.port}" for node in self.nodes)

    def masters(self) -> dict[int, Node]:
        """The living masters, by port."""
        found = {}
        for node in self.nodes:
            if not node.alive():
                continue
            with node.client() as client:
                if client.info("replication")["role"] == "master":
                    found[node.port] = node
        return found

    def replica_of(self, master: Node) -> Node:
        """The living replica of ``master``."""
        for node in self.nodes:
            if node.alive() and node is not master:
                with node.client() as client:
                    info = client.info("replication")
                if info["role"] == "slave" and int(info["master_port"]) == master.port:
                    return node
        raise AssertionError(f"port {master.port} has no living replica")

    def master_of(self, key: str) -> Node:
        """The node that holds ``key``'s slot now."""
        for node in self.nodes:
            if not node.alive():
                continue
            with node.client() as client:
                slot = int(client.execute_command("CLUSTER KEYSLOT", key))
                for start, end, master, *_ in client.execute_command("CLUSTER SLOTS"):
                    if start <= slot <= end:
                        port = int(master[1])
                        return next(n for n in self.nodes if n.port == port)
        raise AssertionError("no living node knows the slot")

    def wait_failed_over(self, dead: Node) -> None:
        """Until a replica has taken over every slot of ``dead`` (a killed master), as every
        living node sees it, and the cluster is healthy again."""
        deadline = time.monotonic() + _SETTLE_SECONDS
        while True:
            masters: set[int] = set()
            for node in self.nodes:
                if node.alive():
                    with contextlib.suppress(redis.RedisError), node.client() as client:
                        slots = client.execute_command("CLUSTER SLOTS")
                        masters.update(int(master[1]) for _, _, master, *_ in slots)
            if masters and dead.port not in masters:
                self.wait_healthy()
                return
            if time.monotonic() > deadline:
                pytest.fail(f"no replica took over from port {dead.port} in time", pytrace=False)
            time.sleep(0.1)

    def wait_healthy(self) -> None:
        """Until every living node says the cluster is ok and each slot has a living master."""
        deadline = time.monotonic() + _SETTLE_SECONDS
        while True:
            states = []
            for node in self.nodes:
                if node.alive():
                    with contextlib.suppress(redis.RedisError), node.client() as client:
                        info = client.execute_command("CLUSTER INFO")
                        if isinstance(info, bytes):
                            info = dict(
                                line.split(":", 1) for line in info.decode().split() if ":" in line
                            )
                        states.append(info.get("cluster_state") == "ok")
                        continue
                    states.append(False)
            if states and all(states):
                return
            if time.monotonic() > deadline:
                pytest.fail("the Redis Cluster did not become healthy in time", pytrace=False)
            time.sleep(0.2)


def _cluster_port(taken: set[int]) -> int:
    """A free port whose cluster bus port (10,000 higher, so at most 55535) is free too."""
    while True:
        port = random.randint(20_000, 45_000)
        if port in taken or port + 10_000 in taken:
            continue
        try:
            for each in (port, port + 10_000):
                with socket.socket() as probe:
                    probe.bind((HOST, each))
        except OSError:
            continue
        taken.update((port, port + 10_000))
        return port


@contextlib.contextmanager
def redis_cluster() -> Iterator[Cluster]:
    """Six nodes joined as 3 masters with 1 replica each, healthy; killed at the end."""
    for binary in ("redis-server", "redis-cli"):
        if shutil.which(binary) is None:
            pytest.fail(f"{binary} is not installed (apt-get install redis-server)", pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="eventcore-redis-cluster-"))
    taken: set[int] = set()
    cluster = Cluster([Node(_cluster_port(taken), root / f"node{n}") for n in range(6)])
    try:
        for node in cluster.nodes:
            node.start()
        for node in cluster.nodes:
            _wait_answers(node)
        created = subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"{HOST}:{node.port}" for node in cluster.nodes),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=_SETTLE_SECONDS,
            env={k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"},
        )
        if created.returncode != 0:
            pytest.fail(f"redis-cli --cluster create failed:\n{created.stdout}\n{created.stderr}")
        cluster.wait_healthy()
        _wait_replicas_linked(cluster)
        yield cluster
    finally:
        for node in cluster.nodes:
            node.kill()
        shutil.rmtree(root, ignore_errors=True)


def _wait_answers(node: Node) -> None:
    deadline = time.monotonic() + _SETTLE_SECONDS
    while True:
        try:
            with node.client() as client:
                client.ping()
                return
        except redis.RedisError:
            if time.monotonic() > deadline or not node.alive():
                pytest.fail(f"redis-server on port {node.port} did not start", pytrace=False)
            time.sleep(0.05)


def _wait_replicas_linked(cluster: Cluster) -> None:
    """Until each master has its replica attached and in sync (so that a failover can happen)."""
    deadline = time.monotonic() + _SETTLE_SECONDS
    while True:
        linked = 0
        for node in cluster.masters().values():
            with node.client() as client:
                info = client.info("replication")
                replica = info.get("slave0")
                if isinstance(replica, dict) and replica.get("state") == "online":
                    linked += 1
        if linked == 3:
            return
        if time.monotonic() > deadline:
            pytest.fail("the Redis Cluster replicas did not attach in time", pytrace=False)
        time.sleep(0.2)
