"""charts/redis's production pods, run for real: the rendered redis.conf, primary.sh and both
containers' commands, in three "pods" of their own (network, UTS and mount namespaces, like a
pod's pause container), on one bridge, each with the pod's hostname and the cluster's DNS names
in its /etc/hosts. Debian's redis-server, redis-sentinel and redis-cli stand in for
valkey-server, valkey-sentinel and valkey-cli (Valkey keeps their protocol and configuration).
The only edit to the scripts: the pod's volume paths point into a temporary directory.

First start: pod 0 becomes the primary, the others its replicas, three Sentinels agree. A node
loss (both containers of the primary's pod SIGKILLed): the Sentinels promote a replica. The pod
comes back: it asks the Sentinels and rejoins as a replica of the new primary.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from chartkit import containers, render_environment
from harness.lifetime import bound_to_parent
from harness.sentinel import wait_for

NAMESPACE = "chat-production"
HEADLESS = f"redis-headless.{NAMESPACE}.svc"
PASSWORD = "test-only-sentinel-password"
SUBNET = "10.77.0"
# Where the chart mounts the pod's volumes -> the pod's folder here; one pass, whole paths.
VOLUMES = {"/etc/redis-auth": "auth", "/etc/redis": "config", "/tmp": "tmp", "/data": "data",
           "/sentinel": "sentinel"}  # fmt: skip
MOUNT = re.compile(r"(?<![\w/])(/etc/redis-auth|/etc/redis|/tmp|/data|/sentinel)(?=/|\s|$)")
STAND_INS = {"valkey-server": "redis-server", "valkey-sentinel": "redis-sentinel",
             "valkey-cli": "redis-cli"}  # fmt: skip

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(b) for b in ("ip", "unshare", "nsenter")),
    reason="needs root and iproute2/util-linux to make network namespaces (CI runs as root)",
)


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60).stdout


def pause_process(unshare: list[str]) -> subprocess.Popen[bytes]:
    """`sleep` in new namespaces, returned once unshare has made them all (it then runs sleep):
    nothing may enter it before, or it would act on the host's own namespaces."""
    process = subprocess.Popen(bound_to_parent([*unshare, "sleep", "infinity"]))

    def sleeping() -> bool:
        try:
            return os.readlink(f"/proc/{process.pid}/exe").endswith("/sleep")
        except OSError:
            return False

    wait_for(sleeping, 30, f"{' '.join(unshare)} never ran sleep")
    return process


@dataclass
class Pod:
    """A pause process holding the pod's namespaces, and the containers entered into them."""

    index: int
    root: Path
    pause: subprocess.Popen[bytes] | None = None
    containers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"redis-{self.index}"

    @property
    def address(self) -> str:
        return f"{self.name}.{HEADLESS}"

    @property
    def ip(self) -> str:
        return f"{SUBNET}.{self.index + 1}"

    def enter(self, *argv: str) -> list[str]:
        assert self.pause is not None
        return ["nsenter", "-t", str(self.pause.pid), "-n", "-u", "-m", "--", *argv]

    def cli(self, *args: str, port: int = 6379) -> str:
        env = {**os.environ, "REDISCLI_AUTH": PASSWORD}
        argv = self.enter("redis-cli", "-h", self.ip, "-p", str(port), "--raw", *args)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
        return done.stdout.strip() if done.returncode == 0 else ""


class Cluster:
    def __init__(self, root: Path) -> None:
        rendered = render_environment("redis", "production")
        (config,) = rendered.of_kind("ConfigMap")
        (statefulset,) = rendered.of_kind("StatefulSet")
        self.files = config["data"]
        self.commands = {
            c["name"]: c["command"][-1]
            for c in containers(statefulset["spec"]["template"]["spec"])
            if c["name"] in {"redis", "sentinel"}
        }
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir()
        for name, stand_in in STAND_INS.items():
            shim = self.bin / name
            shim.write_text(f'#!/bin/sh\nexec {stand_in} "$@"\n')
            shim.chmod(0o755)
        self.switch = pause_process(["unshare", "--net"])
        self.pods = [Pod(i, root / f"pod-{i}") for i in range(3)]

    def hosts(self, pod: Pod) -> str:
        # The Service `redis` reaches a ready Sentinel: here the next pod's.
        service = self.pods[(pod.index + 1) % len(self.pods)]
        lines = ["127.0.0.1 localhost", f"{service.ip} redis redis.{NAMESPACE}.svc"]
        lines += [f"{p.ip} {p.address}" for p in self.pods]
        return "\n".join(lines) + "\n"

    def make_pod(self, pod: Pod) -> None:
        """The pause process: own network (a veth on the switch's bridge), hostname, mounts."""
        for folder in ("config", "auth", "data", "tmp", "sentinel"):
            (pod.root / folder).mkdir(parents=True, exist_ok=True)
        for name, text in self.files.items():
            (pod.root / "config" / name).write_text(self.in_pod(pod, text))
        (pod.root / "auth" / "password").write_text(PASSWORD)
        (pod.root / "hosts").write_text(self.hosts(pod))
        unshare = ["unshare", "--net", "--uts", "--mount", "--propagation", "private"]
        pod.pause = pause_process(unshare)
        veth = f"vk{os.getpid()}-{pod.index}"[:15]  # unique on the host while it lives
        run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0",
            "netns", str(pod.pause.pid))  # fmt: skip
        run("ip", "link", "set", veth, "netns", str(self.switch.pid))
        switch = ["nsenter", "-t", str(self.switch.pid), "-n", "--"]
        run(*switch, "ip", "link", "set", veth, "master", "br0", "up")
        run(*pod.enter("ip", "addr", "add", f"{pod.ip}/24", "dev", "eth0"))
        run(*pod.enter("ip", "link", "set", "eth0", "up"))
        run(*pod.enter("ip", "link", "set", "lo", "up"))
        run(*pod.enter("hostname", pod.name))
        run(*pod.enter("mount", "--bind", str(pod.root / "hosts"), "/etc/hosts"))

    @staticmethod
    def in_pod(pod: Pod, text: str) -> str:
        """A script or config with the pod's volumes where the chart mounts them."""
        return MOUNT.sub(lambda found: f"{pod.root}/{VOLUMES[found.group(1)]}", text)

    def start(self, pod: Pod) -> None:
        env = {**os.environ, "PATH": f"{self.bin}:{os.environ['PATH']}", "REDISCLI_AUTH": PASSWORD}
        for container in ("redis", "sentinel"):
            log = (pod.root / f"{container}.log").open("ab")
            argv = pod.enter("sh", "-c", self.in_pod(pod, self.commands[container]))
            pod.containers[container] = subprocess.Popen(
                bound_to_parent(argv), env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def kill(self, pod: Pod) -> None:
        """A node loss: both containers SIGKILLed, the pod's network gone with its pause."""
        for process in [*pod.containers.values(), pod.pause]:
            assert process is not None
            process.kill()
            process.wait(timeout=60)
        pod.containers.clear()

    def bring_up(self) -> None:
        run("nsenter", "-t", str(self.switch.pid), "-n", "--", "ip", "link", "add", "br0",
            "type", "bridge")  # fmt: skip
        run("nsenter", "-t", str(self.switch.pid), "-n", "--", "ip", "link", "set", "br0", "up")
        for pod in self.pods:
            self.make_pod(pod)
        for pod in self.pods:
            self.start(pod)

    def knows_the_group(self, by: Pod) -> bool:
        """By's Sentinel knows both replicas, in sync, and both other Sentinels: it can fail over
        (Sentinel learns replicas from the primary's INFO, every 10 s)."""
        replicas = by.cli("sentinel", "replicas", "chat", port=26379).splitlines()
        in_sync = sum(
            1 for key, value in itertools.pairwise(replicas)
            if key == "master-link-status" and value == "ok"
        )  # fmt: skip
        others = by.cli("sentinel", "sentinels", "chat", port=26379).splitlines()
        return in_sync == 2 and others.count("runid") == 2

    def primary_named(self, by: Pod) -> str:
        return by.cli("sentinel", "get-master-addr-by-name", "chat", port=26379).split("\n")[0]

    def destroy(self) -> None:
        for pod in self.pods:
            for process in [*pod.containers.values(), pod.pause]:
                if process is not None and process.poll() is None:
                    process.kill()
                    process.wait(timeout=60)
        self.switch.kill()
        self.switch.wait(timeout=60)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    made = Cluster(tmp_path)
    try:
        yield made
    finally:
        made.destroy()


def role(pod: Pod) -> dict[str, str]:
    lines = pod.cli("info", "replication").splitlines()
    return dict(line.split(":", 1) for line in lines if ":" in line)


def test_the_chart_pods_elect_fail_over_and_rejoin(cluster: Cluster) -> None:
    cluster.bring_up()
    first, second, third = cluster.pods
    wait_for(
        lambda: all(cluster.primary_named(p) == first.address for p in cluster.pods),
        120,
        "the three Sentinels never agreed on pod 0 as the primary",
    )
    wait_for(
        lambda: all(cluster.knows_the_group(p) for p in cluster.pods),
        120,
        "the Sentinels never knew both replicas and one another",
    )
    assert first.cli("set", "before", "1") == "OK"
    assert first.cli("wait", "2", "5000") == "2"

    cluster.kill(first)
    wait_for(
        lambda: cluster.primary_named(second) in {second.address, third.address},
        120,
        "the Sentinels never promoted a replica",
    )
    promoted = next(p for p in (second, third) if p.address == cluster.primary_named(second))
    wait_for(lambda: role(promoted).get("role") == "master", 60, "promoted, not primary")
    assert promoted.cli("get", "before") == "1"
    assert promoted.cli("set", "after", "2") == "OK"

    # The pod comes back: primary.sh asks the Sentinels, so it starts as a replica of the
    # promoted one (never a second primary, even for the seconds Sentinel would need to notice).
    cluster.make_pod(first)
    cluster.start(first)
    wait_for(lambda: role(first).get("role") is not None, 60, "the restarted pod never answered")
    runtime = (first.root / "tmp" / "runtime.conf").read_text().splitlines()
    assert f"replicaof {promoted.address} 6379" in runtime
    wait_for(
        lambda: (
            role(first).get("role") == "slave"
            and role(first).get("master_host") == promoted.address
            and role(first).get("master_link_status") == "up"
        ),
        120,
        "the restarted pod never rejoined as a replica of the promoted one",
    )
    assert first.cli("get", "after") == "2"
