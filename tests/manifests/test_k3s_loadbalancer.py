"""k3s/loadbalancer.sh: the cluster's virtual IP (keepalived) in front of every server (HAProxy).

The real script on a fake root (systemctl stubbed), its configs checked by Debian's haproxy and
keepalived, then a failover for real: two network namespaces on one bridge, each running
HAProxy and keepalived from the generated configs; the holder's keepalived is killed and the
address must appear on the other host.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from chartkit import K3S
from harness.lifetime import bound_to_parent

SCRIPT = K3S / "loadbalancer.sh"
SERVERS = ["192.0.2.21", "192.0.2.22", "192.0.2.23"]
VIP = "192.0.2.100"
SYSTEMCTL_STUB = """#!/bin/sh
echo "$*" >> "$STUB_LOG"
case "$1" in
  is-active) [ -f "$STUB_LOG.active" ] ;;
  restart) touch "$STUB_LOG.active" ;;
esac
exit 0
"""
FAILOVER_DEADLINE = 60.0  # VRRP needs ~3 s; the shared machine is slow


def debian_tools() -> None:
    missing = [tool for tool in ("haproxy", "keepalived") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: make setup installs .ci/system-packages.txt")


def run_script(
    tmp_path: Path, name: str, *args: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """loadbalancer.sh for one host `name`: its fake root and its systemctl log."""
    root, stubs = tmp_path / name, tmp_path / "stubs"
    root.mkdir(exist_ok=True)
    stubs.mkdir(exist_ok=True)
    (stubs / "systemctl").write_text(SYSTEMCTL_STUB)
    (stubs / "systemctl").chmod(0o755)
    result = subprocess.run(
        ["bash", str(SCRIPT), *args],
        env={
            **os.environ,
            "PATH": f"{stubs}:{os.environ['PATH']}",
            "K3S_ROOT": str(root),
            "STUB_LOG": str(tmp_path / f"{name}.systemctl"),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result, root


def host_args(priority: int, interface: str = "eth0") -> list[str]:
    return [
        *("--vip", f"{VIP}/24", "--interface", interface, "--priority", str(priority)),
        *("--servers", ",".join(SERVERS)),
    ]


def systemctl_calls(tmp_path: Path, name: str) -> list[str]:
    log = tmp_path / f"{name}.systemctl"
    return log.read_text().splitlines() if log.exists() else []


def test_generated_configs_pass_haproxy_and_keepalived_and_list_every_server(
    tmp_path: Path,
) -> None:
    debian_tools()
    result, root = run_script(tmp_path, "lb", *host_args(150))
    assert result.returncode == 0, result.stderr
    haproxy = root / "etc/haproxy/haproxy.cfg"
    keepalived = root / "etc/keepalived/keepalived.conf"
    for check in (
        ["haproxy", "-c", "-f", str(haproxy)],
        ["keepalived", "-t", "-f", str(keepalived)],
    ):
        checked = subprocess.run(check, capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    servers = [
        line.split()[2] for line in haproxy.read_text().splitlines() if "server server-" in line
    ]
    assert servers == [f"{address}:6443" for address in SERVERS]
    assert f"{VIP}/24 dev eth0" in keepalived.read_text()
    assert "priority 150" in keepalived.read_text()
    calls = systemctl_calls(tmp_path, "lb")
    assert {"restart haproxy.service", "restart keepalived.service"} <= set(calls)

    again, _ = run_script(tmp_path, "lb", *host_args(150))
    assert again.returncode == 0, again.stderr
    assert systemctl_calls(tmp_path, "lb").count("restart haproxy.service") == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("--vip", "192.0.2.100"), "--vip 192.0.2.100: an IPv4 address with its prefix"),
        (("--vip", "192.0.2.300/24"), "an IPv4 address with its prefix"),
        (("--priority", "255"), "--priority 255: 1-254"),
        (("--router-id", "0"), "--router-id 0: 1-255"),
        (("--servers", "192.0.2.21,k3s-2"), "k3s-2 is not an IPv4 address"),
        (("--interface", "eth0; reboot"), "--interface"),
    ],
)
def test_bad_arguments_are_usage_errors_and_install_nothing(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    options = dict(zip(host_args(150)[::2], host_args(150)[1::2], strict=True))
    options[change[0]] = change[1]
    args = [part for option in options.items() for part in option]
    result, root = run_script(tmp_path, "lb", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert not list(root.iterdir())
    assert not systemctl_calls(tmp_path, "lb")


def test_a_config_its_tool_refuses_is_not_installed(tmp_path: Path) -> None:
    debian_tools()
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    # keepalived refusing (as it does for a bad value) stops the script before any change.
    (stubs / "keepalived").write_text('#!/bin/sh\necho "invalid" >&2\nexit 5\n')
    (stubs / "keepalived").chmod(0o755)
    result = subprocess.run(
        ["bash", str(SCRIPT), *host_args(150)],
        env={
            **os.environ,
            "PATH": f"{stubs}:{os.environ['PATH']}",
            "K3S_ROOT": str(tmp_path / "root"),
            "STUB_LOG": str(tmp_path / "systemctl.log"),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "keepalived refused the generated config" in result.stderr
    assert not (tmp_path / "root/etc/haproxy").exists()
    assert not (tmp_path / "root/etc/keepalived/keepalived.conf").exists()
    assert not (tmp_path / "systemctl.log").exists()


# --- failover in network namespaces ---


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=60)


def netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"lbprobe{os.getpid()}"
    try:
        ip("netns", "add", probe)
        ip("netns", "delete", probe)
    except (OSError, subprocess.CalledProcessError) as error:
        return f"ip netns does not work here: {error}"
    return None


@pytest.fixture
def lan() -> Iterator[list[str]]:
    """Two hosts (namespaces, eth0 192.0.2.11 and .12) on one bridge in a third namespace."""
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    tag = f"lb{os.getpid()}"
    switch, hosts = f"{tag}sw", [f"{tag}a", f"{tag}b"]
    try:
        for name in (switch, *hosts):
            ip("netns", "add", name)
        ip("-n", switch, "link", "add", "br0", "type", "bridge")
        ip("-n", switch, "link", "set", "br0", "up")
        for index, host in enumerate(hosts):
            port = f"port{index}"
            ip(
                "-n",
                switch,
                "link",
                "add",
                port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                host,
            )
            ip("-n", switch, "link", "set", port, "master", "br0", "up")
            ip("-n", host, "addr", "add", f"192.0.2.{11 + index}/24", "dev", "eth0")
            ip("-n", host, "link", "set", "eth0", "up")
            ip("-n", host, "link", "set", "lo", "up")
        yield hosts
    finally:
        for name in (switch, *hosts):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=60)


def holds_vip(host: str) -> bool:
    shown = subprocess.run(
        ["ip", "-n", host, "-4", "-o", "addr", "show", "dev", "eth0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return f" {VIP}/24 " in shown


def wait_until(
    condition: str, check: Callable[[], bool], processes: list[subprocess.Popen[bytes]]
) -> float:
    """Seconds until `check` holds; fails at the deadline or when a process died."""
    start = time.monotonic()
    while not check():
        for process in processes:
            assert process.poll() is None, f"{process.args!r} exited with {process.returncode}"
        assert time.monotonic() - start < FAILOVER_DEADLINE, (
            f"not within {FAILOVER_DEADLINE} s: {condition}"
        )
        time.sleep(0.2)
    return time.monotonic() - start


def start_in(host: str, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(
            bound_to_parent(["ip", "netns", "exec", host, *argv]),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: keepalived and its VRRP child
        )


@pytest.mark.parametrize("killed", ["keepalived", "haproxy"])
def test_the_virtual_ip_moves_when_the_holder_loses_a_process(
    lan: list[str], tmp_path: Path, killed: str
) -> None:
    """keepalived killed: the other host stops hearing adverts; HAProxy killed: the holder's
    check fails and it gives the address up."""
    debian_tools()
    processes: dict[tuple[str, str], subprocess.Popen[bytes]] = {}
    try:
        for host, priority in zip(lan, (150, 100), strict=True):
            result, root = run_script(tmp_path, host, *host_args(priority))
            assert result.returncode == 0, result.stderr
            haproxy = ["haproxy", "-db", "-f", str(root / "etc/haproxy/haproxy.cfg")]
            keepalived = ["keepalived", "-n", "-l", "-P"]
            keepalived += ["-f", str(root / "etc/keepalived/keepalived.conf")]
            keepalived += ["-p", str(tmp_path / f"{host}.pid")]
            keepalived += ["-r", str(tmp_path / f"{host}-vrrp.pid")]
            for name, argv in (("haproxy", haproxy), ("keepalived", keepalived)):
                processes[host, name] = start_in(host, argv, tmp_path / f"{host}-{name}.log")
        first, second = lan
        took = wait_until(
            "the higher priority holds the address alone",
            lambda: holds_vip(first) and not holds_vip(second),
            list(processes.values()),
        )
        print(f"\nVIP on the priority-150 host after {took:.1f} s")

        victim = processes.pop((first, killed))
        os.killpg(victim.pid, signal.SIGKILL)  # a crash: no goodbye advertisement
        victim.wait(timeout=60)
        moved = (
            (lambda: holds_vip(second))
            if killed == "keepalived"
            else (lambda: holds_vip(second) and not holds_vip(first))
        )
        took = wait_until("the other host takes the address", moved, list(processes.values()))
        print(f"VIP on the priority-100 host {took:.1f} s after the holder's {killed} was killed")
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=60)
