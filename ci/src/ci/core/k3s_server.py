"""How the ephemeral K3s of the integration stage starts: its command line, its kubelet's
eviction settings and the wipe of its data directory.

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


def server_command(bind_address: str, tls_san: str, kubeconfig: str) -> list[str]:
    """`k3s server` for one run: API certificate valid for `tls_san`, the kubeconfig written
    where the runner reads it, the kubelet's eviction relaxed (KUBELET_ARGS)."""
    args = ["k3s", "server", "--bind-address", bind_address]
    args += [part for name in DISABLED for part in ("--disable", name)]
    args += ["--egress-selector-mode=disabled", "--tls-san", tls_san]
    args += ["--write-kubeconfig", kubeconfig, "--write-kubeconfig-mode", "0600"]
    return args + [f"--kubelet-arg={arg}" for arg in KUBELET_ARGS]


def service_script(tls_san: str, kubeconfig: str) -> str:
    """The service's shell command: wipe the data of an earlier run, then K3s on the address
    of the container's own route (the engine gives no fixed one)."""
    args = server_command("", tls_san, kubeconfig)
    bind = "\"$(ip route | grep src | awk '{print $NF}')\""
    command = f"exec {shlex.join(args[:3])} {bind} {shlex.join(args[4:])}"
    return f"{wipe_script()}{command}\n"
