#!/usr/bin/env bash
# Removes K3s and everything it stored from this node (all workloads and volumes). Idempotent:
# each step skips what is already gone. Destructive, so it asks for --yes.
#
#   sudo k3s/uninstall.sh --yes
set -euo pipefail
# shellcheck source=k3s/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  echo "usage: $0 --yes   (deletes K3s, its data and every volume on this node)" >&2
  exit 2
}

stop_k3s() {
  if systemctl list-unit-files k3s.service >/dev/null 2>&1; then
    systemctl disable --now k3s.service 2>/dev/null || true
  fi
  # KillMode=process leaves the pods' containerd shims running; stop exactly those.
  local pids
  pids=$(pgrep -f '^/var/lib/rancher/k3s/data/[^ ]*/bin/containerd-shim' || true)
  if [[ -n $pids ]]; then
    # shellcheck disable=SC2086  # one pid per word
    kill $pids 2>/dev/null || true
  fi
}

unmount_under() {
  local prefix=$1
  awk -v p="$prefix" '$2 ~ "^"p { print $2 }' /proc/self/mounts | sort -r | while read -r mount; do
    umount "$mount" 2>/dev/null || umount -l "$mount" || true
  done
}

remove_network() {
  local link
  for link in cni0 flannel.1 flannel-v6.1 kube-ipvs0; do
    if ip link show "$link" >/dev/null 2>&1; then
      ip link delete "$link"
    fi
  done
}

main() {
  [[ ${1:-} == --yes && $# -eq 1 ]] || usage
  require_root
  log "stopping K3s"
  stop_k3s
  unmount_under /run/k3s
  unmount_under /var/lib/kubelet/pods
  remove_network
  log "removing files"
  rm -f /etc/systemd/system/k3s.service /etc/default/k3s
  systemctl daemon-reload
  for tool in kubectl crictl ctr; do
    if [[ -L /usr/local/bin/$tool ]]; then rm -f "/usr/local/bin/$tool"; fi
  done
  rm -rf /usr/local/bin/k3s /etc/rancher/k3s /var/lib/rancher/k3s /var/lib/kubelet /run/k3s
  log "K3s removed"
}

main "$@"
