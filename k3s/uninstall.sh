#!/usr/bin/env bash
# Removes K3s and everything it left on this node, as K3s's own k3s-killall.sh and
# k3s-uninstall.sh do: stops the service, kills every container process (each shim with its whole
# process tree), unmounts what the pods mounted, deletes the pods' network namespaces, the CNI
# links and state and K3s's iptables rules, then removes data, config, unit and binaries.
# Idempotent: each step skips what is already gone. Destructive, so it asks for --yes.
#
#   sudo k3s/uninstall.sh --yes
set -euo pipefail
# shellcheck source=k3s/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Every host path below ROOT (empty on a real host), so tests can run the script on a fake root.
ROOT=${K3S_ROOT:-}
DATA_DIR=$ROOT/var/lib/rancher/k3s
CNI_LINKS=(cni0 flannel.1 flannel-v6.1 kube-ipvs0 flannel-wg flannel-wg-v6)

usage() {
  echo "usage: $0 --yes   (deletes K3s, its data and every volume on this node)" >&2
  exit 2
}

# A server runs k3s.service, an agent k3s-agent.service (install.sh --role agent).
stop_service() {
  local unit
  for unit in k3s.service k3s-agent.service; do
    if systemctl list-unit-files "$unit" >/dev/null 2>&1; then
      systemctl disable --now "$unit" 2>/dev/null || true
    fi
  done
}

# A process and all its descendants, children first (SIGKILL: the service is already stopped,
# nothing is left to shut down cleanly).
kill_tree() {
  local child
  for child in $(pgrep -P "$1" || true); do
    kill_tree "$child"
  done
  kill -9 "$1" 2>/dev/null || true
}

# KillMode=process leaves the containerd shims and the containers they run: kill each shim of
# K3s's containerd with its whole tree.
kill_containers() {
  local shim
  for shim in $(pgrep -f "^$DATA_DIR/data/[^ ]*/bin/containerd-shim" || true); do
    kill_tree "$shim"
  done
}

# Mount points under a prefix, deepest first.
mounts_under() {
  awk -v p="$1" 'index($2, p) == 1 { print $2 }' "$ROOT/proc/self/mounts" | sort -r
}

unmount_under() {
  local mount
  while read -r mount; do
    [[ -n $mount ]] || continue
    umount "$mount" 2>/dev/null || umount -l "$mount" || true
  done < <(mounts_under "$1")
}

remove_network() {
  local netns link
  for netns in $(ip netns list 2>/dev/null | awk '$1 ~ /^cni-/ { print $1 }'); do
    ip netns delete "$netns" || true
  done
  for link in "${CNI_LINKS[@]}"; do
    if ip link show "$link" >/dev/null 2>&1; then
      ip link delete "$link" || true
    fi
  done
  rm -rf "$ROOT/var/lib/cni" "$ROOT/run/flannel"
}

# Drops K3s's, flannel's and the CNI plugins' rules and keeps every other rule of the host.
remove_firewall_rules() {
  local family
  for family in iptables ip6tables; do
    command -v "$family-save" >/dev/null 2>&1 || continue
    "$family-save" | { grep -v -e 'KUBE-' -e 'CNI-' -e 'FLANNEL' -e 'flannel' || [[ $? -eq 1 ]]; } |
      "$family-restore"
  done
}

remove_files() {
  local tool
  rm -f "$ROOT/etc/systemd/system/k3s.service" "$ROOT/etc/systemd/system/k3s-agent.service" \
    "$ROOT/etc/default/k3s" "$ROOT/etc/default/k3s-agent"
  systemctl daemon-reload
  for tool in kubectl crictl ctr; do
    if [[ -L $ROOT/usr/local/bin/$tool ]]; then rm -f "$ROOT/usr/local/bin/$tool"; fi
  done
  rm -rf "$ROOT/usr/local/bin/k3s" "$ROOT/etc/rancher/k3s" "$DATA_DIR" \
    "$ROOT/var/lib/kubelet" "$ROOT/run/k3s"
}

main() {
  [[ ${1:-} == --yes && $# -eq 1 ]] || usage
  require_root
  log "stopping K3s and every container"
  stop_service
  kill_containers
  unmount_under "$ROOT/run/k3s"
  unmount_under "$DATA_DIR"
  unmount_under "$ROOT/var/lib/kubelet/pods"
  unmount_under "$ROOT/var/lib/kubelet/plugins"
  unmount_under "$ROOT/run/netns/cni-"
  log "removing network namespaces, CNI links and state, firewall rules"
  remove_network
  remove_firewall_rules
  log "removing files"
  remove_files
  log "K3s removed"
}

# Run when executed; only define the functions when sourced (tests).
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
