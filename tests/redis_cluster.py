"""A Redis Cluster of a test's own: 3 masters and a replica of each (or one master alone), `redis-server`
processes on free loopback ports, their files in the test's tmp_path; stopped by pid at the end (never a
server the test did not start).

Every wait has a deadline (`WAIT_SECONDS`) and fails saying what did not happen.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis import Redis
from redis.cluster import key_slot

from tests.conftest import free_port_outside_ephemeral

WAIT_SECONDS = 60
NODE_TIMEOUT_MS = 1000  # a dead master is failed over about this long after it stopped answering


def wait_for(condition: Callable[[], Any], *, what: str, within: float = WAIT_SECONDS) -> Any:
    """Poll `condition` until it is truthy and return that; fail naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {within} s waiting for {what}"
        time.sleep(0.05)


@dataclass
class Node:
    port: int
    argv: list[str]
    proc: subprocess.Popen[bytes]

    def client(self) -> Redis:
        return Redis(port=self.port, socket_connect_timeout=1, socket_timeout=5)

    def ask(self, *command: str) -> Any:
        """One command to this node alone; None if it does not answer."""
        try:
            with self.client() as client:
                return client.execute_command(*command)
        except OSError:
            return None
        except Exception as exc:  # noqa: BLE001 - redis-py's ConnectionError, LOADING, ...
            if "Connection" in type(exc).__name__ or "Loading" in type(exc).__name__:
                return None
            raise

    def info(self, section: str) -> dict[str, Any]:
        answer = self.ask("INFO", section)
        return answer if isinstance(answer, dict) else {}

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


@dataclass
class RedisClusterNodes:
    """`masters` masters (3, or 1 holding every slot) and `replicas` replicas of each, redis-server
    processes in cluster mode."""

    home: Path
    masters: int = 3
    replicas: int = 1
    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        """A URL naming one node (the first), as SCIMSVC_LIMITER_REDIS_URL does."""
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> None:
        buses: list[int] = []
        for _ in range(self.masters * (1 + self.replicas)):
            # The bus port given: port + 10000 may be taken or too high. Outside the ephemeral range, so
            # that no outgoing connection takes a killed node's port before it is started again.
            taken = {n.port for n in self.nodes} | set(buses)
            port = free_port_outside_ephemeral(taken)
            bus = free_port_outside_ephemeral(taken | {port})
            buses.append(bus)
            folder = self.home / f"node-{port}"
            folder.mkdir(parents=True)
            argv = [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(folder),
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                str(bus),
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                # A replica takes over whenever its master fails, however long ago they spoke (tests
                # hold a failover back with cluster-replica-no-failover, then let it go).
                "--cluster-replica-validity-factor",
                "0",
                "--repl-diskless-sync-delay",
                "0",
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                str(folder / "redis.log"),
            ]
            self.nodes.append(Node(port, argv, self._run(argv)))
        self._answering(self.nodes)
        if self.masters == 1:  # redis-cli creates clusters of 3 masters or more
            assert self.replicas == 0, "a one-master cluster of this module has no replica"
            self.nodes[0].ask("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
            self.wait_ok(self.nodes)
            return
        created = subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{node.port}" for node in self.nodes),
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=WAIT_SECONDS,
        )
        assert created.returncode == 0, f"redis-cli --cluster create failed: {created.stdout}{created.stderr}"
        self.wait_ok(self.nodes)
        # Every node knows every other, and each replica has its master's data (redis-cli returns before
        # that; a replica not in sync would not take over).
        wait_for(
            lambda: all(self._replicas_known(node) for node in self.nodes),
            what="every node of the new cluster to know all its masters and replicas",
        )
        wait_for(
            lambda: sum(self._in_sync(node) for node in self.nodes) == self.masters * self.replicas,
            what="the replicas of the new cluster to be in sync with their masters",
        )

    @staticmethod
    def _run(argv: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _answering(self, nodes: list[Node]) -> None:
        for node in nodes:
            wait_for(
                lambda node=node: self._running(node) and node.ask("PING"),
                what=f"redis-server on port {node.port} to answer PING",
            )

    def _in_sync(self, node: Node) -> bool:
        replication = node.info("replication")
        return replication.get("role") == "slave" and replication.get("master_link_status") == "up"

    def _running(self, node: Node) -> bool:
        assert node.alive, f"redis-server on port {node.port} exited ({node.proc.returncode})"
        return True

    def _replicas_known(self, node: Node) -> bool:
        listing = node.ask("CLUSTER", "NODES")
        if not listing:
            return False
        lines = (listing if isinstance(listing, str) else listing.decode()).splitlines()
        flags = [line.split()[2] for line in lines]
        return (
            sum("master" in f for f in flags) == self.masters
            and sum("slave" in f for f in flags) == self.masters * self.replicas
        )

    def wait_ok(self, nodes: list[Node], state: str = "ok") -> None:
        """Until `cluster info` says cluster_state:ok (or `state`) on each of `nodes`."""
        for node in nodes:
            wait_for(
                lambda node=node: f"cluster_state:{state}".encode() in (node.ask("CLUSTER", "INFO") or b""),
                what=f"cluster_state:{state} on the node at port {node.port}",
            )

    def wait_taken_over(self, replica: Node) -> None:
        """Until `replica` is a master and every node still running says cluster_state:ok."""
        wait_for(
            lambda: replica.info("replication").get("role") == "master",
            what=f"the replica at port {replica.port} to take over as master",
        )
        self.wait_ok([node for node in self.nodes if node.alive])

    def master_of(self, key: str) -> Node:
        """The node that serves `key`'s slot now, as every node still running says."""
        slot = key_slot(key.encode())
        master = self.master_of_slot(slot)
        assert master is not None, f"the nodes of the cluster do not agree on who serves slot {slot}"
        return master

    def master_of_slot(self, slot: int) -> Node | None:
        """The node that serves `slot` now if every node still running says the same, else None."""
        ports = set()
        for node in self.nodes:
            if not node.alive:
                continue
            for start, end, master, *_ in node.ask("CLUSTER", "SLOTS") or []:
                if start <= slot <= end:
                    ports.add(int(master[1]))
        if len(ports) != 1:
            return None
        (port,) = ports
        return next(n for n in self.nodes if n.port == port)

    def replica_of(self, master: Node) -> Node:
        """The replica of `master`."""
        for node in self.nodes:
            replication = node.info("replication")
            if replication.get("role") == "slave" and int(replication.get("master_port", 0)) == master.port:
                return node
        raise AssertionError(f"the master at port {master.port} has no replica")

    def keys(self, pattern: str) -> list[bytes]:
        """The keys matching `pattern` on every master that answers."""
        found: list[bytes] = []
        for node in self.nodes:
            if node.alive and node.info("replication").get("role") == "master":
                with node.client() as client:
                    found += list(client.scan_iter(match=pattern))
        return found

    def begin_moving(self, slot: int, source: Node, target: Node) -> None:
        """Start moving `slot` from `source` to `target`: keys still on `source` are served there, the
        others get ASK to `target`."""
        assert target.ask("CLUSTER", "SETSLOT", str(slot), "IMPORTING", self._id(source)) in (b"OK", True)
        assert source.ask("CLUSTER", "SETSLOT", str(slot), "MIGRATING", self._id(target)) in (b"OK", True)

    def move_keys(self, slot: int, source: Node, target: Node) -> int:
        """MIGRATE every key of `slot` from `source` to `target`; how many there were."""
        keys = source.ask("CLUSTER", "GETKEYSINSLOT", str(slot), "1000")
        if keys:
            source.ask("MIGRATE", "127.0.0.1", str(target.port), "", "0", "5000", "KEYS", *keys)
        return len(keys)

    def end_moving(self, slot: int, target: Node) -> None:
        """Give `slot` to `target` on every master: clients that still send there get MOVED."""
        masters = [n for n in self.nodes if n.alive and n.info("replication").get("role") == "master"]
        for node in sorted(masters, key=lambda n: n is not target):  # the target first
            assert node.ask("CLUSTER", "SETSLOT", str(slot), "NODE", self._id(target)) in (b"OK", True)
        wait_for(
            lambda: self.master_of_slot(slot) is target, what=f"slot {slot} to be served by its new master"
        )

    @staticmethod
    def _id(node: Node) -> str:
        answer = node.ask("CLUSTER", "MYID")
        return answer.decode() if isinstance(answer, bytes) else str(answer)

    def kill(self, node: Node) -> None:
        """SIGKILL one node of this cluster by its pid."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(node.proc.pid, signal.SIGKILL)
        node.proc.wait(timeout=WAIT_SECONDS)

    def pause(self, node: Node) -> None:
        """SIGSTOP one node of this cluster: it still accepts connections and answers nothing."""
        os.kill(node.proc.pid, signal.SIGSTOP)

    def resume(self, node: Node) -> None:
        """SIGCONT a node `pause` stopped."""
        os.kill(node.proc.pid, signal.SIGCONT)

    def restart(self) -> None:
        """Start again, on their ports and with their files, every node that was killed; until the cluster
        they read back from their nodes.conf says cluster_state:ok on each."""
        stopped = [node for node in self.nodes if not node.alive]
        for node in stopped:
            node.proc = self._run(node.argv)
        self._answering(stopped)
        self.wait_ok(self.nodes)

    def stop(self) -> None:
        """Kill every node this cluster started, by pid."""
        for node in self.nodes:
            if node.alive:
                self.kill(node)
