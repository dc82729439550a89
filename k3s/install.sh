#!/usr/bin/env bash
# Installs the pinned K3s version as a systemd service on a single Ubuntu LTS node.
# Idempotent: re-running changes nothing when the binary, config and unit are already current,
# and restarts K3s only when one of them changed.
#
#   sudo k3s/install.sh
#
# Environment (optional): REGISTRY_USERNAME/REGISTRY_PASSWORD (ghcr.io pull credentials),
# KUBECONFIG_USER (whose ~/.kube/config to write; default: the sudo user, else root).
set -euo pipefail
# shellcheck source=k3s/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Overridable so the download and checksum logic can be exercised without touching the host.
BIN=${K3S_BIN:-/usr/local/bin/k3s}
CONF_DIR=/etc/rancher/k3s
UNIT=/etc/systemd/system/k3s.service

# The release asset of the K3s binary for an architecture.
k3s_asset() {
  case $1 in
    amd64) echo k3s ;;
    *) echo "k3s-$1" ;;
  esac
}

installed_version() {
  [[ -x $BIN ]] || return 0
  "$BIN" --version 2>/dev/null | awk 'NR == 1 { print $3 }'
}

# Downloads the release binary and installs it only when its SHA-256 equals the pin in
# versions.env (K3S_SHA256_AMD64 / _ARM64), never a checksum fetched from the same release.
download_k3s() {
  local arch binary base work
  arch=$(host_arch)
  binary=$(k3s_asset "$arch")
  base="https://github.com/k3s-io/k3s/releases/download/${K3S_VERSION//+/%2B}"
  work=$(mktemp -d)
  trap 'rm -rf "$work"; trap - RETURN' RETURN
  log "downloading K3s $K3S_VERSION ($binary)"
  fetch_verified "$base/$binary" "$work/$binary" "K3S_SHA256_${arch^^}"
  install -D -m 0755 "$work/$binary" "$BIN"
  for tool in kubectl crictl ctr; do
    ln -sfn "$BIN" "$(dirname "$BIN")/$tool"
  done
  log "installed $BIN"
}

write_registries() {
  local target=$1
  cp "$K3S_DIR/registries.yaml" "$target"
  if [[ -n ${REGISTRY_USERNAME:-} && -n ${REGISTRY_PASSWORD:-} ]]; then
    # Credentials come from the environment and go only to a root-only file on the host.
    printf 'configs:\n  ghcr.io:\n    auth:\n      username: "%s"\n      password: "%s"\n' \
      "$REGISTRY_USERNAME" "$REGISTRY_PASSWORD" >>"$target"
  fi
}

write_unit() {
  cat >"$1" <<'UNIT'
[Unit]
Description=Lightweight Kubernetes (K3s server)
Documentation=https://docs.k3s.io
Wants=network-online.target
After=network-online.target

[Service]
Type=notify
EnvironmentFile=-/etc/default/k3s
ExecStartPre=-/sbin/modprobe br_netfilter
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/local/bin/k3s server
KillMode=process
Delegate=yes
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
Restart=always
RestartSec=5s

[Install]
WantedBy=multi-user.target
UNIT
}

install_config() {
  local work changed=""
  work=$(mktemp -d)
  trap 'rm -rf "$work"; trap - RETURN' RETURN
  write_registries "$work/registries.yaml"
  write_unit "$work/k3s.service"
  changed+=$(install_if_changed "$K3S_DIR/config.yaml" "$CONF_DIR/config.yaml" 0600)
  changed+=$(install_if_changed "$K3S_DIR/pod-security.yaml" "$CONF_DIR/pod-security.yaml" 0600)
  changed+=$(install_if_changed "$work/registries.yaml" "$CONF_DIR/registries.yaml" 0600)
  changed+=$(install_if_changed "$work/k3s.service" "$UNIT" 0644)
  echo "$changed"
}

setup_kubeconfig() {
  local user=${KUBECONFIG_USER:-${SUDO_USER:-root}} home
  home=$(getent passwd "$user" | cut -d: -f6)
  [[ -n $home ]] || die "no home directory for $user"
  install -d -m 0700 -o "$user" "$home/.kube"
  install -m 0600 -o "$user" /etc/rancher/k3s/k3s.yaml "$home/.kube/config"
  log "kubeconfig for $user: $home/.kube/config"
}

wait_for_node() {
  log "waiting for the API server and the node"
  for _ in $(seq 1 60); do
    [[ -f /etc/rancher/k3s/k3s.yaml ]] && "$BIN" kubectl get nodes >/dev/null 2>&1 && break
    sleep 5
  done
  "$BIN" kubectl wait --for=condition=Ready node --all --timeout=300s
}

main() {
  require_root
  require_command curl "apt-get install -y curl"
  require_command sha256sum "apt-get install -y coreutils"
  local restart=""
  if [[ $(installed_version) == "$K3S_VERSION" ]]; then
    log "K3s $K3S_VERSION already installed"
  else
    download_k3s
    restart=yes
  fi
  [[ -n $(install_config) ]] && restart=yes
  systemctl daemon-reload
  systemctl enable k3s.service >/dev/null
  if [[ -n $restart ]] || ! systemctl is-active --quiet k3s.service; then
    log "(re)starting k3s.service"
    systemctl restart k3s.service
  fi
  wait_for_node
  setup_kubeconfig
  log "K3s $K3S_VERSION is up; next: k3s/bootstrap.sh"
}

# Run when executed; only define the functions when sourced (tests).
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
