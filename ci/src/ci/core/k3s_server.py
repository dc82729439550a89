"""How the ephemeral K3s of the integration stage starts: the server's and the agents' command
lines, their kubelets' eviction settings and the wipe of their data directories.

Pure (no dagger): ci.engine.k3s turns these into the service's container; the host tests run
the wipe script and read the arguments.
"""

from __future__ import annotations

import shlex

DATA_DIR = "/var/lib/rancher/k3s"
IMPORT_DIR = f"{DATA_DIR}/agent/images"
# Kubelet's default hard eviction (imagefs.available<15%, nodefs.available<10%) evicts pods on a
# CI runner whose disk is mostly the engine's cache, and image garbage collection (from 85%)
# would delete the run's imported images, which nothing can pull back. The cluster lives for one
# run: evict only when the disk is really full, never collect images.
KUBELET_ARGS = (
    "eviction-hard=imagefs.available<1%,nodefs.available<1%",
    "eviction-minimum-reclaim=imagefs.available=1%,nodefs.available=1%",
    "image-gc-high-threshold=100",
    "image-gc-low-threshold=99",
)
DISABLED = ("traefik", "metrics-server")  # the gateway is NGINX Gateway Fabric
# The run's cluster token: a secret mounted as this file in the server and every agent, so it
# is never an argument (visible in the process list) or a log line.
TOKEN_FILE = "/run/secrets/k3s-token"  # noqa: S105 (a path; the token is in the file)
API_PORT = 6443


def wipe_script(data_dir: str = DATA_DIR, keep: str = IMPORT_DIR) -> str:
    """Empties the data directory of an earlier run (one volume reused, never one per run),
    but not the image folder mounted inside it."""
    if not keep.startswith(f"{data_dir}/"):
        raise ValueError(f"{keep} is not inside {data_dir}")
    lines = ["set -eu"]
    # From the data directory down to the mounted folder: remove every sibling on the way.
    here = data_dir
    for part in keep.removeprefix(f"{data_dir}/").split("/"):
        lines.append(
            f"find {shlex.quote(here)} -mindepth 1 -maxdepth 1 ! -name {shlex.quote(part)} "
            "-exec rm -rf {} +"
        )
        here = f"{here}/{part}"
    return "\n".join(lines) + "\n"


def kubelet_args() -> list[str]:
    return [f"--kubelet-arg={arg}" for arg in KUBELET_ARGS]


def server_command(
    bind_address: str, tls_san: str, kubeconfig: str, token_file: str = TOKEN_FILE
) -> list[str]:
    """`k3s server` for one run: API certificate valid for `tls_san`, the kubeconfig written
    where the runner reads it, agents admitted with the token in `token_file`, the kubelet's
    eviction relaxed (KUBELET_ARGS)."""
    args = ["k3s", "server", "--bind-address", bind_address]
    args += [part for name in DISABLED for part in ("--disable", name)]
    args += ["--egress-selector-mode=disabled", "--tls-san", tls_san]
    args += ["--write-kubeconfig", kubeconfig, "--write-kubeconfig-mode", "0600"]
    return [*args, "--token-file", token_file, *kubelet_args()]


def agent_command(server_host: str, node_name: str, token_file: str = TOKEN_FILE) -> list[str]:
    """`k3s agent` joining the run's server by its service name, under a fixed node name (the
    engine gives its containers random host names)."""
    if not node_name or not node_name.replace("-", "").isalnum() or node_name != node_name.lower():
        raise ValueError(f"agent node name {node_name!r}: lower-case letters, digits and '-'")
    args = ["k3s", "agent", "--server", f"https://{server_host}:{API_PORT}"]
    args += ["--token-file", token_file, "--node-name", node_name]
    return args + kubelet_args()


def service_script(tls_san: str, kubeconfig: str) -> str:
    """The service's shell command: wipe the data of an earlier run, then K3s on the address
    of the container's own route (the engine gives no fixed one)."""
    args = server_command("", tls_san, kubeconfig)
    bind = "\"$(ip route | grep src | awk '{print $NF}')\""
    command = f"exec {shlex.join(args[:3])} {bind} {shlex.join(args[4:])}"
    return f"{wipe_script()}{command}\n"


def agent_script(server_host: str, node_name: str) -> str:
    """An agent service's shell command: wipe its own data volume, then join the server."""
    return f"{wipe_script()}exec {shlex.join(agent_command(server_host, node_name))}\n"


def agent_names(count: int) -> list[str]:
    """The node names of `count` agents (0 to 5: the engine's runner has room for a few)."""
    if not 0 <= count <= 5:
        raise ValueError(f"--agents {count}: 0 to 5")
    return [f"agent-{index}" for index in range(1, count + 1)]
