"""The ephemeral K3s's start (ci.core.k3s_server): the wipe of its reused data volume, run for
real with sh over a directory laid out as K3s leaves it, its kubelet's eviction settings, and
the server and agents of a run sharing one token file."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from ci.core import k3s_server
from ci.core.catalog import load_catalog
from ci.engine.k3s import Cluster
from ci.engine.stages import Pipeline

from ci import cluster

REPO = Path(__file__).resolve().parents[2]

# What a K3s run leaves in its data directory, plus the run's image archives mounted inside.
LEFT_BY_A_RUN = [
    "server/db/state.db",
    "server/tls/server-ca.key",
    "agent/containerd/io.containerd.content.v1.content/blobs/sha256/aa",
    "agent/etc/containerd/config.toml",
    "agent/images/auth.tar",
    "agent/images/frontend.tar",
    "data/current/bin/k3s",
]


def test_the_wipe_empties_the_data_volume_but_keeps_the_mounted_images(tmp_path: Path) -> None:
    data = tmp_path / "k3s"
    for name in LEFT_BY_A_RUN:
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_text(name)
    script = k3s_server.wipe_script(str(data), str(data / "agent" / "images"))

    subprocess.run(["sh", "-c", script], check=True, timeout=60)

    left = sorted(p.relative_to(data).as_posix() for p in data.rglob("*") if p.is_file())
    assert left == ["agent/images/auth.tar", "agent/images/frontend.tar"]


def test_the_wipe_refuses_an_image_folder_outside_the_data_directory() -> None:
    with pytest.raises(ValueError, match="/images is not inside /var/lib/rancher/k3s"):
        k3s_server.wipe_script(keep="/images")


def kubelet_settings(command: list[str]) -> dict[str, str]:
    args = [a.removeprefix("--kubelet-arg=") for a in command if a.startswith("--kubelet-arg=")]
    return dict(arg.split("=", 1) for arg in args)


def test_the_kubelet_evicts_only_on_a_full_disk_and_never_collects_imported_images() -> None:
    command = k3s_server.server_command("10.0.0.2", "k3s", "/etc/rancher/k3s/run.yaml")

    settings = kubelet_settings(command)
    # kubelet's defaults (imagefs.available<15%, nodefs.available<10%) would evict the pods on
    # a CI runner whose disk holds the engine's cache.
    thresholds = dict(t.split("<") for t in settings["eviction-hard"].split(","))
    assert thresholds == {"imagefs.available": "1%", "nodefs.available": "1%"}
    assert settings["image-gc-high-threshold"] == "100"
    assert int(settings["image-gc-low-threshold"]) < 100


def test_the_service_script_is_valid_sh_and_runs_k3s_with_a_private_kubeconfig() -> None:
    script = k3s_server.service_script("k3s", "/etc/rancher/k3s/run.yaml")

    subprocess.run(["sh", "-n", "-c", script], check=True, timeout=60)
    exec_line = script.strip().splitlines()[-1]
    bind, rest = exec_line.split(')"', 1)
    words = shlex.split(rest)
    assert bind.startswith('exec k3s server --bind-address "$(ip route')
    assert words[words.index("--write-kubeconfig-mode") + 1] == "0600"
    assert "--kubelet-arg=image-gc-high-threshold=100" in words


# --- a server and agents: one token, given as a file to both ---


def test_server_and_agent_read_the_runs_token_from_the_same_file_never_an_argument() -> None:
    server = k3s_server.server_command("10.0.0.2", "k3s", "/etc/rancher/k3s/run.yaml")
    agent = k3s_server.agent_command("k3s", "agent-1")

    for command in (server, agent):
        assert command[command.index("--token-file") + 1] == k3s_server.TOKEN_FILE
        assert "--token" not in command
        assert not any(arg.startswith("--token=") for arg in command)
    assert agent[:2] == ["k3s", "agent"]
    assert agent[agent.index("--server") + 1] == f"https://k3s:{k3s_server.API_PORT}"
    assert agent[agent.index("--node-name") + 1] == "agent-1"
    # The agent's kubelet keeps the run's imported images too.
    assert kubelet_settings(agent) == kubelet_settings(server)


def test_the_agent_script_is_valid_sh_wipes_its_volume_and_execs_the_agent(tmp_path: Path) -> None:
    script = k3s_server.agent_script("k3s", "agent-2")

    subprocess.run(["sh", "-n", "-c", script], check=True, timeout=60)
    assert script.startswith(k3s_server.wipe_script())
    exec_line = script.strip().splitlines()[-1]
    assert shlex.split(exec_line) == ["exec", *k3s_server.agent_command("k3s", "agent-2")]


def test_agent_names_and_counts_are_checked() -> None:
    assert k3s_server.agent_names(0) == []
    assert k3s_server.agent_names(2) == ["agent-1", "agent-2"]
    with pytest.raises(ValueError, match="--agents 6: 0 to 5"):
        k3s_server.agent_names(6)
    with pytest.raises(ValueError, match="--agents -1"):
        k3s_server.agent_names(-1)
    with pytest.raises(ValueError, match="agent node name 'Agent 1'"):
        k3s_server.agent_command("k3s", "Agent 1")


@pytest.mark.parametrize("agents", [0, 2])
def test_the_engine_asks_ci_cluster_to_wait_for_the_server_and_every_agent(agents: int) -> None:
    """The engine's runner arguments parse with ci.cluster's own parser (no engine needed)."""
    pipeline = cast(Pipeline, SimpleNamespace(run="run-1"))
    args = Cluster(pipeline=pipeline, agents=agents).run_args(load_catalog(REPO), "k3s", e2e=True)

    assert args[:3] == ["python", "-m", "ci.cluster"]
    parsed = cluster.parser().parse_args(args[3:])
    assert parsed.nodes == 1 + agents
    assert parsed.kubeconfig == Path("/etc/rancher/k3s/run-1.yaml")
